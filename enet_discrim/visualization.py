"""Pictures of instances, lanes and embeddings, for people and for TensorBoard.

All functions take and return plain numpy arrays (RGB, uint8) and leave their inputs untouched.
Plots use matplotlib's object API with the Agg canvas, never pyplot, so nothing global (backend,
current figure) changes and they work in training threads without a display.
"""

import collections
import colorsys

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from enet_discrim.formats.images import resize_labels

# Tableau's 10 colours first: designed to be told apart. Then hues a golden-ratio step apart.
_TABLEAU = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
            "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
_GOLDEN_RATIO_CONJUGATE = 0.6180339887498949


def instance_colors(n):
    """Distinct colours for instances 1..n (instance k gets row k - 1); deterministic.

    Args:
        n: number of colours (>= 0).

    Returns:
        uint8 [n, 3] RGB.
    """
    colours = [to_rgb(name) for name in _TABLEAU[:n]]
    for index in range(max(0, n - len(_TABLEAU))):
        hue = (0.05 + index * _GOLDEN_RATIO_CONJUGATE) % 1.0
        # Alternate saturation and value so that colours with close hues still differ.
        saturation, value = ((0.9, 0.95), (0.6, 0.8), (0.95, 0.6))[index % 3]
        colours.append(colorsys.hsv_to_rgb(hue, saturation, value))
    return np.rint(np.asarray(colours, dtype=np.float64).reshape(-1, 3) * 255).astype(np.uint8)


def class_instance_colors(instance_classes, classes):
    """Colours of instances of several classes: a hue per class, a shade per instance.

    Class `classes[i]` gets hue i / len(classes) (evenly around the circle, so that any two
    classes are told apart by hue alone, in every frame alike); the j-th of a class's n instances
    (in instance order) gets HSV value 1 - 0.6 j / (n - 1), and saturation 1 or 0.55 alternately,
    so that neighbouring instances of one class differ in two ways.

    Args:
        instance_classes: int [K], the class of instance k at index k - 1 (e.g. Cityscapes train
            ids, `Prediction.instance_classes`).
        classes: every class that may occur, in a fixed order (e.g. the model's thing classes).

    Returns:
        uint8 [K, 3] RGB.

    Raises:
        ValueError: an instance class not in `classes`.
    """
    instance_classes = [int(c) for c in np.asarray(instance_classes).ravel()]
    classes = [int(c) for c in classes]
    unknown = sorted(set(instance_classes) - set(classes))
    if unknown:
        raise ValueError(f"instance classes {unknown} are not among the classes {classes}")
    counts, seen = collections.Counter(instance_classes), collections.Counter()
    colours = []
    for class_id in instance_classes:
        shade, count = seen[class_id], counts[class_id]
        seen[class_id] += 1
        value = 1.0 - 0.6 * shade / max(count - 1, 1)
        saturation = 1.0 if shade % 2 == 0 else 0.55
        colours.append(colorsys.hsv_to_rgb(classes.index(class_id) / len(classes), saturation,
                                           value))
    return np.rint(np.asarray(colours, dtype=np.float64).reshape(-1, 3) * 255).astype(np.uint8)


def _check_image(image_rgb):
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image_rgb.dtype} "
                         f"{image_rgb.shape}")
    return image_rgb


def overlay_instances(image_rgb, instance_map, alpha=0.5, instance_classes=None, classes=None):
    """Tint each instance's pixels with its colour; background pixels stay as they are.

    Args:
        image_rgb: uint8 [H, W, 3].
        instance_map: int [h, w], 0 background, k > 0 instance k; resized nearest to [H, W].
        alpha: weight of the colour (0: image only, 1: colour only).
        instance_classes: None: instance k gets `instance_colors` row k - 1 (one class, e.g.
            lanes). Else int [K], the class of instance k at index k - 1: each class its own hue,
            each instance its own shade of it (`class_instance_colors`).
        classes: with `instance_classes`, every class in a fixed order (e.g. the model's thing
            classes), so that a class keeps its hue from frame to frame.

    Returns:
        uint8 [H, W, 3] new image.
    """
    image_rgb = _check_image(image_rgb)
    height, width = image_rgb.shape[:2]
    instance_map = np.asarray(instance_map)
    largest = int(instance_map.max(initial=0))
    if instance_classes is not None:
        if classes is None:
            raise ValueError("instance_classes need the classes in a fixed order (classes=...)")
        colours = class_instance_colors(instance_classes, classes)
        if largest > len(colours):
            raise ValueError(f"instance {largest} has no class (only {len(colours)} given)")
    if largest <= 0:
        return image_rgb.copy()
    if instance_classes is None:
        colours = instance_colors(largest)
    # Colour and mask at the map's size, then resized as `resize_labels` resizes labels, and
    # blended over the whole frame by OpenCV: indexing a frame with a mask in NumPy costs 3-4x more.
    palette = np.zeros((len(colours) + 1, 3), np.uint8)
    palette[1:] = colours
    tint = cv2.resize(palette[np.maximum(instance_map, 0)], (width, height),
                      interpolation=cv2.INTER_NEAREST_EXACT)
    mask = resize_labels((instance_map > 0).astype(np.uint8), width, height)
    blended = cv2.addWeighted(image_rgb, 1.0 - alpha, tint, alpha, 0.0)
    return cv2.copyTo(blended, mask, image_rgb.copy())


def draw_lanes(image_rgb, lanes, h_samples, thickness=3, radius=4):
    """Draw TuSimple-style lanes: a polyline through each run of present points, and the points.

    Args:
        image_rgb: uint8 [H, W, 3] frame the lanes' coordinates refer to.
        lanes: lists of x per row of `h_samples`, negative where absent (e.g. from `fit_lanes`).
        h_samples: the rows.
        thickness: line width in pixels.
        radius: point radius in pixels.

    Returns:
        uint8 [H, W, 3] new image; lane i in colour `instance_colors` row i.
    """
    drawn = _check_image(image_rgb).copy()
    colours = instance_colors(len(lanes))
    for lane, colour in zip(lanes, colours):
        colour = tuple(int(c) for c in colour)
        run = []
        for x, y in list(zip(lane, h_samples)) + [(-1, -1)]:  # sentinel closes the last run
            if x >= 0:
                run.append((int(x), int(y)))
                continue
            if len(run) > 1:
                cv2.polylines(drawn, [np.array(run, np.int32)], False, colour, thickness,
                              cv2.LINE_AA)
            for point in run:
                cv2.circle(drawn, point, radius, colour, -1, cv2.LINE_AA)
            run = []
    return drawn


def _project(points, dims):
    """Points [N, D] -> float64 [N, dims]: PCA when D > dims, zero columns added when D < dims."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape[1] > dims:
        if len(points) < 2:
            return np.zeros((len(points), dims))
        return PCA(n_components=dims, svd_solver="full").fit_transform(points)
    padding = np.zeros((len(points), dims - points.shape[1]))
    return np.concatenate([points, padding], axis=1)


def embedding_to_rgb(embeddings):
    """Embeddings as colours: the first 3 dimensions (PCA to 3 when D > 3), each min-max scaled.

    Args:
        embeddings: float [H, W, D].

    Returns:
        uint8 [H, W, 3]; a constant channel (including the zero padding when D < 3) is 0.
    """
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 3:
        raise ValueError(f"embeddings must be [H, W, D], got shape {embeddings.shape}")
    height, width, dims = embeddings.shape
    channels = _project(embeddings.reshape(-1, dims), 3)
    low, high = channels.min(axis=0), channels.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = np.rint((channels - low) / span * 255.0)
    return scaled.reshape(height, width, 3).astype(np.uint8)


def _scatter_figure(embeddings, instance_map, max_points, seed, size_inches, dpi):
    embeddings = np.asarray(embeddings)
    instance_map = np.asarray(instance_map)
    if embeddings.ndim != 3 or instance_map.shape != embeddings.shape[:2]:
        raise ValueError(f"embeddings [H, W, D] and instance_map [H, W] must match, got "
                         f"{embeddings.shape} and {instance_map.shape}")
    figure = Figure(figsize=size_inches, dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    rows, cols = np.nonzero(instance_map > 0)
    if len(rows) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), max_points, replace=False))
        rows, cols = rows[keep], cols[keep]
    labels = instance_map[rows, cols]
    if len(rows):
        points = _project(embeddings[rows, cols], 2)
        colours = instance_colors(int(labels.max()))[labels - 1] / 255.0
        axes.scatter(points[:, 0], points[:, 1], c=colours, s=9, linewidths=0)
    projection = "PCA of embeddings" if embeddings.shape[2] > 2 else "embeddings"
    axes.set_title(f"{projection}: {len(np.unique(labels))} instances, {len(rows)} pixels",
                   fontsize=8)
    axes.tick_params(labelsize=6)
    figure.tight_layout()
    return figure


def figure_to_array(figure):
    """Render a matplotlib figure on its Agg canvas: uint8 [height, width, 3] RGB."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else \
        FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def embedding_scatter(embeddings, instance_map, path=None, max_points=2000, seed=0,
                      size_inches=(4.0, 4.0), dpi=100):
    """Scatter plot of instance pixels' embeddings (PCA to 2-D when D > 2), coloured by instance.

    Args:
        embeddings: float [H, W, D].
        instance_map: int [H, W]; pixels > 0 are plotted in their instance's colour.
        path: PNG to write, or None to get the figure.
        max_points: most pixels plotted (a seeded random subset beyond that).
        seed: seed of the subset.
        size_inches, dpi: figure size.

    Returns:
        `path` after writing it, or the `matplotlib.figure.Figure` when path is None.
    """
    figure = _scatter_figure(embeddings, instance_map, max_points, seed, size_inches, dpi)
    if path is None:
        return figure
    figure.savefig(path, dpi=dpi)
    return path


def embedding_scatter_image(embeddings, instance_map, max_points=2000, seed=0,
                            size_inches=(4.0, 4.0), dpi=100):
    """`embedding_scatter` rendered to an image, e.g. for `tf.summary.image`.

    Returns:
        uint8 [size_inches[1] * dpi, size_inches[0] * dpi, 3] RGB.
    """
    return figure_to_array(_scatter_figure(embeddings, instance_map, max_points, seed,
                                           size_inches, dpi))
