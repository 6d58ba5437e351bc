"""Drawing helpers shared by the synthetic generators: smooth noise, sub-pixel polygons, blending.

Everything here is a pure function of its arguments (random numbers come from the caller's
`numpy.random.Generator`), so the generators stay reproducible by seed.
"""
import cv2
import numpy as np

# OpenCV draws with integer vertices; `shift` bits of fixed point give sub-pixel accuracy, which
# matters for thin, distant lane markings.
_SUBPIXEL_BITS = 3
_SUBPIXEL_SCALE = float(1 << _SUBPIXEL_BITS)
# Far beyond any image, but small enough that the fixed-point coordinates fit in int32.
_COORDINATE_LIMIT = 1.0e6


def value_noise(rng, height, width, cells_y, cells_x):
    """Smooth random field: a coarse grid of normal samples, upsampled bicubically.

    Args:
      rng: numpy.random.Generator.
      height, width: output size in pixels.
      cells_y, cells_x: size of the random grid; fewer cells give smoother noise (>= 2 each).

    Returns:
      float32 [height, width], roughly zero mean and unit standard deviation.
    """
    grid = rng.standard_normal((max(2, int(cells_y)), max(2, int(cells_x)))).astype(np.float32)
    return cv2.resize(grid, (int(width), int(height)), interpolation=cv2.INTER_CUBIC)


def fractal_noise(rng, height, width, cells_y, cells_x, octaves=3, persistence=0.5):
    """Sum of `octaves` value-noise layers, each with twice the cells and `persistence` times the amplitude.

    Args:
      rng: numpy.random.Generator.
      height, width: output size in pixels.
      cells_y, cells_x: grid size of the coarsest octave.
      octaves: number of layers.
      persistence: amplitude ratio between successive layers.

    Returns:
      float32 [height, width], normalised to unit standard deviation (zero mean).
    """
    total = np.zeros((int(height), int(width)), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        scale = 2 ** octave
        total += amplitude * value_noise(rng, height, width, cells_y * scale, cells_x * scale)
        amplitude *= persistence
    total -= total.mean()
    return total / max(float(total.std()), 1e-6)


def fill_polygons(image, polygons, colour, antialias=True):
    """Fills polygons given with float (sub-pixel) vertices, in place.

    Args:
      image: uint8 [H, W] or [H, W, C] image to draw on.
      polygons: list of float arrays [N, 2] of (x, y) pixel coordinates; off-image vertices are fine.
      colour: scalar or tuple, as cv2.fillPoly expects for `image`.
      antialias: smooth edges (cv2.LINE_AA, only effective on uint8 images).
    """
    polygons = [p for p in polygons if len(p) >= 3]
    if not polygons:
        return
    fixed = [to_fixed_point(p) for p in polygons]
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    cv2.fillPoly(image, fixed, cv_colour(colour), lineType=line_type, shift=_SUBPIXEL_BITS)


def draw_polyline(image, points, colour, thickness, antialias=True):
    """Draws an open polyline with float (sub-pixel) vertices, in place.

    Args:
      image: uint8 image to draw on.
      points: float array [N, 2] of (x, y) pixel coordinates.
      colour: scalar or tuple.
      thickness: line thickness in pixels (int >= 1).
    """
    if len(points) < 2:
        return
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    cv2.polylines(image, [to_fixed_point(points)], False, cv_colour(colour), int(max(1, thickness)),
                  lineType=line_type, shift=_SUBPIXEL_BITS)


def cv_colour(colour):
    """A scalar or a sequence of numbers (numpy scalars included) as the plain floats OpenCV wants."""
    if np.ndim(colour) == 0:
        return float(colour)
    return tuple(float(c) for c in colour)


def to_fixed_point(points):
    """float [N, 2] pixel coordinates -> int32 [N, 2] with `_SUBPIXEL_BITS` fractional bits."""
    clipped = np.clip(np.asarray(points, np.float64), -_COORDINATE_LIMIT, _COORDINATE_LIMIT)
    return np.round(clipped * _SUBPIXEL_SCALE).astype(np.int32)


def blend_colour(target, mask, colour, weight=None):
    """target <- target * (1 - alpha) + colour * alpha with alpha = mask / 255 (* weight), in place.

    Only the pixels where `mask` is non-zero are touched, which makes thin markings cheap.

    Args:
      target: float32 [H, W, 3] image.
      mask: uint8 [H, W] drawn opacity, 0..255.
      colour: 3 channel values.
      weight: optional float32 [H, W] factor on the opacity (e.g. wear of the paint).
    """
    support = cv2.findNonZero(np.ascontiguousarray(mask))
    if support is None:
        return
    support = support.reshape(-1, 2)  # (x, y) pairs; OpenCV versions differ in the shape
    cols, rows = support[:, 0], support[:, 1]
    alpha = mask[rows, cols].astype(np.float32) * (1.0 / 255.0)
    if weight is not None:
        alpha *= weight[rows, cols]
    pixels = target[rows, cols]
    pixels += alpha[:, None] * (np.asarray(colour, np.float32)[None, :] - pixels)
    target[rows, cols] = pixels


def blend_images(background, foreground, alpha):
    """background * (1 - alpha) + foreground * alpha for float32 [H, W, 3] images, alpha [H, W] in [0, 1].

    Returns:
      float32 [H, W, 3] (a new array).
    """
    alpha = np.ascontiguousarray(alpha, np.float32)
    return cv2.blendLinear(foreground, background, alpha, 1.0 - alpha)


def grain_tile(rng, size=256):
    """float32 [size, size] white noise (unit std) to be tiled over an image: far cheaper than
    drawing a full frame of normal samples, and a repeat of white noise is invisible."""
    return rng.standard_normal((size, size), dtype=np.float32)


def tile_to(tile, height, width, offset_y=0, offset_x=0):
    """Repeats a 2-D `tile` to cover [height, width], starting at (offset_y, offset_x) in it.

    Returns:
      array [height, width] of tile's dtype.
    """
    reps_y = (height + offset_y) // tile.shape[0] + 1
    reps_x = (width + offset_x) // tile.shape[1] + 1
    return np.tile(tile, (reps_y, reps_x))[offset_y:offset_y + height, offset_x:offset_x + width]
