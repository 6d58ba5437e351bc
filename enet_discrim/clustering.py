"""Pixel embeddings -> instance maps, by mean-shift clustering.

The discriminative loss (De Brabandere et al., 2017) pulls every embedding to within `delta_v` of
its instance mean and pushes instance means at least `2 * delta_d` apart. With the margins used
here (delta_v = 0.5, delta_d = 1.5) the embeddings of one instance lie in a ball of radius 0.5 and
two such balls are at least 2 * delta_d - 2 * delta_v = 2.0 apart. A flat mean-shift kernel of
radius r centred anywhere in one ball spans the whole ball when r >= 2 * delta_v = 1.0 and never
reaches another ball when r < 2.0. `DEFAULT_BANDWIDTH` = delta_d = 1.5 is the middle of that range:
a trained network meets the margins only approximately, and the middle leaves the most room on both
sides (docs/EXPERIMENTS.md has the measurements).

Clustering follows scikit-learn's `MeanShift(bandwidth, bin_seeding=True, cluster_all=...)`
exactly -- seeds on a grid of `bandwidth` as `sklearn.cluster.get_bin_seeds` places them, flat
kernel, the same stopping rule, the same removal of near-duplicate modes, and a point joins its
nearest mode (with `cluster_all=False` only when that mode is within `bandwidth`) -- with two
changes that make it fast enough for every frame:

1. The modes are found on a bounded random sample of the foreground (`max_samples` pixels, seeded,
   so the result is deterministic); every foreground pixel is then assigned to its nearest mode.
2. Binning and climbing are vectorised: all seeds climb together in one numpy loop. scikit-learn
   bins point by point in Python and climbs one seed at a time, validating its input on every
   step (about half a millisecond a step), which dominates at these sizes; the arithmetic is the
   same, and tests compare the modes with scikit-learn's.
"""

import numpy as np

#: Mean-shift kernel radius for the loss margins delta_v = 0.5, delta_d = 1.5 (see above).
DEFAULT_BANDWIDTH = 1.5
#: Clusters with fewer pixels are dropped (set to background). At 256x512 a lane 2 px wide must
#: span 25 rows to survive; smaller blobs are almost always stray embeddings.
DEFAULT_MIN_PIXELS = 50
#: Foreground pixels the modes are searched on. An instance with 1% of the foreground still gets
#: about 20 samples, plenty for a mode, while the search stays around a millisecond.
DEFAULT_MAX_SAMPLES = 2000
#: Whether a foreground pixel farther than the bandwidth from every mode still joins the nearest
#: one, as with scikit-learn's default (`MeanShift(cluster_all=True)`). Real frames give looser
#: embeddings than the synthetic ones trained on, and the pixels left out are mostly lane pixels.
DEFAULT_CLUSTER_ALL = True
#: scikit-learn's MeanShift default.
_MAX_ITER = 300
# Rows per block when assigning pixels to modes, to bound the [rows, modes] distance matrix.
_ASSIGN_BLOCK = 65536


def bin_seeds(points, bin_size):
    """Mean-shift seeds: the occupied cells of a grid of `bin_size`, as `get_bin_seeds` makes them.

    Vectorised `sklearn.cluster.get_bin_seeds(points, bin_size, min_bin_freq=1)`, seeds in
    lexicographic order; like it, falls back to the points themselves when every point has a
    cell of its own.

    Args:
        points: float [N, D].
        bin_size: grid spacing (> 0).

    Returns:
        float [S, D] seeds.
    """
    rounded = np.round(points / bin_size).astype(np.int64)
    low = rounded.min(axis=0)
    spans = rounded.max(axis=0) - low + 1
    if np.prod(spans.astype(np.float64)) < 2.0**62:
        # One int64 key per cell, first dimension most significant: a 1-D unique keeps the
        # lexicographic order and is several times faster than np.unique(axis=0).
        radix = np.concatenate([np.cumprod(spans[::-1])[::-1][1:], [1]])
        _, first = np.unique((rounded - low) @ radix, return_index=True)
        cells = rounded[first].astype(np.float32)
    else:
        cells = np.unique(rounded, axis=0).astype(np.float32)
    if len(cells) == len(points):
        return points
    return cells * bin_size


def _climb(points, seeds, bandwidth, max_iter):
    """Flat-kernel mean shift from each seed: (means float64 [S, D], counts int64 [S], the
    points within `bandwidth` of each final mean; 0 for a seed that reached no point)."""
    stop_shift = 1e-3 * bandwidth
    means = np.asarray(seeds, dtype=np.float64).copy()
    counts = np.zeros(len(means), dtype=np.int64)
    climbing = np.arange(len(means))
    points_sq = np.einsum("nd,nd->n", points, points)
    for step in range(max_iter + 1):
        if climbing.size == 0:
            break
        current = means[climbing]
        sq_dist = (np.einsum("sd,sd->s", current, current)[:, None] - 2.0 * current @ points.T
                   + points_sq[None, :])
        within = sq_dist <= bandwidth * bandwidth
        n_within = within.sum(axis=1)
        # A seed with no point in reach stops with count 0 and is discarded, as in scikit-learn.
        empty = n_within == 0
        counts[climbing[empty]] = 0
        current, within, n_within = current[~empty], within[~empty], n_within[~empty]
        climbing = climbing[~empty]
        new_means = (within.astype(np.float64) @ points) / n_within[:, None]
        shift = np.linalg.norm(new_means - current, axis=1)
        means[climbing] = new_means
        # The count reported with a mode is that of the window it was computed from.
        counts[climbing] = n_within
        done = (shift <= stop_shift) | (step == max_iter)
        climbing = climbing[~done]
    return means, counts


def find_modes(points, bandwidth=DEFAULT_BANDWIDTH, max_iter=_MAX_ITER):
    """Mean-shift modes of a point set, as `sklearn.cluster.MeanShift(bin_seeding=True)` finds them.

    Where no bin seed has a point within `bandwidth` (in D dimensions a point can lie up to
    sqrt(D) / 2 bandwidths from its cell's centre, so this happens to a few scattered points of
    8-D embeddings), scikit-learn raises; here the points themselves seed the search instead,
    each having at least itself in reach.

    Args:
        points: float [N, D], N >= 1.
        bandwidth: flat kernel radius (> 0).
        max_iter: most climbing steps per seed.

    Returns:
        float64 [K, D] modes ordered by decreasing number of points within `bandwidth`
        (scikit-learn's `cluster_centers_` order).
    """
    points = np.asarray(points, dtype=np.float64)
    means, counts = _climb(points, bin_seeds(points, bandwidth), bandwidth, max_iter)
    if not np.any(counts > 0):
        means, counts = _climb(points, points, bandwidth, max_iter)

    # Identical modes collapse (scikit-learn keys them by value); then sort by (count, mode).
    by_mode = {tuple(mode): int(count) for mode, count in zip(means, counts) if count > 0}
    ordered = sorted(by_mode.items(), key=lambda item: (item[1], item[0]), reverse=True)
    modes = np.array([mode for mode, _ in ordered])
    # Near-duplicates: a mode within `bandwidth` of a stronger kept mode is removed.
    near = np.linalg.norm(modes[:, None, :] - modes[None, :, :], axis=2) <= bandwidth
    keep = np.ones(len(modes), dtype=bool)
    for index in range(len(modes)):
        if keep[index]:
            keep[near[index]] = False
            keep[index] = True
    return modes[keep]


def _nearest_mode(points, modes):
    """Index of and distance to the nearest mode: int64 [N], float64 [N] for points [N, D]."""
    modes_sq = np.einsum("kd,kd->k", modes, modes)
    nearest = np.empty(len(points), dtype=np.int64)
    distance = np.empty(len(points), dtype=np.float64)
    for start in range(0, len(points), _ASSIGN_BLOCK):
        block = points[start:start + _ASSIGN_BLOCK]
        sq_dist = (np.einsum("nd,nd->n", block, block)[:, None] - 2.0 * block @ modes.T
                   + modes_sq[None, :])
        nearest[start:start + len(block)] = np.argmin(sq_dist, axis=1)
        best = sq_dist[np.arange(len(block)), nearest[start:start + len(block)]]
        distance[start:start + len(block)] = np.sqrt(np.maximum(best, 0.0))
    return nearest, distance


def _check_embeddings(embeddings, mask, mask_name):
    embeddings = np.asarray(embeddings)
    mask = np.asarray(mask)
    if embeddings.ndim != 3:
        raise ValueError(f"embeddings must be [H, W, D], got shape {embeddings.shape}")
    if mask.shape != embeddings.shape[:2]:
        raise ValueError(f"{mask_name} shape {mask.shape} does not match embeddings "
                         f"{embeddings.shape[:2]}")
    return embeddings, mask


def cluster_embeddings(embeddings, foreground, bandwidth=DEFAULT_BANDWIDTH,
                       min_pixels=DEFAULT_MIN_PIXELS, max_samples=DEFAULT_MAX_SAMPLES, seed=0,
                       cluster_all=DEFAULT_CLUSTER_ALL):
    """Instance map from per-pixel embeddings by mean-shift on the foreground.

    Modes are found on at most `max_samples` foreground pixels drawn with `seed` (all of them when
    there are fewer). With `cluster_all` (scikit-learn's default) every foreground pixel joins its
    nearest mode; without it a pixel joins its nearest mode only if that mode is within
    `bandwidth` and is background otherwise (scikit-learn's `cluster_all=False`). Clusters
    with fewer than `min_pixels` pixels become background. Instances are numbered 1..K by
    decreasing pixel count; equal counts keep the mode order (stronger mode first).

    Args:
        embeddings: float [H, W, D] pixel embeddings.
        foreground: bool [H, W], the pixels to cluster.
        bandwidth: mean-shift kernel radius in embedding units (> 0).
        min_pixels: smallest instance kept, in pixels.
        max_samples: most foreground pixels the modes are searched on (>= 1).
        seed: seed of the sample; the same inputs and seed give the same map.
        cluster_all: assign every foreground pixel to its nearest mode, however far.

    Returns:
        int32 [H, W]: 0 background, 1..K instances.
    """
    embeddings, foreground = _check_embeddings(embeddings, foreground, "foreground")
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    instance_map = np.zeros(foreground.shape, dtype=np.int32)
    rows, cols = np.nonzero(foreground.astype(bool))
    if rows.size == 0:
        return instance_map
    points = embeddings[rows, cols].astype(np.float64)
    if len(points) > max_samples:
        sample = np.sort(np.random.default_rng(seed).choice(len(points), max_samples,
                                                            replace=False))
        modes = find_modes(points[sample], bandwidth)
    else:
        modes = find_modes(points, bandwidth)

    nearest, distance = _nearest_mode(points, modes)
    if not cluster_all:
        nearest[distance > bandwidth] = -1
    sizes = np.bincount(nearest[nearest >= 0], minlength=len(modes))
    # Stable sort keeps the mode order among clusters of equal size.
    order = np.argsort(-sizes, kind="stable")
    instance_ids = np.zeros(len(modes), dtype=np.int32)
    next_id = 1
    for mode_index in order:
        if sizes[mode_index] >= max(min_pixels, 1):
            instance_ids[mode_index] = next_id
            next_id += 1
    labels = np.where(nearest >= 0, instance_ids[np.maximum(nearest, 0)], 0)
    instance_map[rows, cols] = labels
    return instance_map


def confident_classes(probabilities, min_confidence=0.0):
    """Per-pixel class, -1 where the network is less sure than `min_confidence`.

    The class-balanced cross-entropy weighs rare classes (lanes: about 18 against 1.5 for the
    road) and so pushes their probabilities up; a threshold above 0.5 takes some of that back where
    the rare class is the one being clustered. 0 keeps the plain argmax.

    Args:
        probabilities: float [H, W, C] softmax output.
        min_confidence: the least probability of the chosen class, in [0, 1).

    Returns:
        int32 [H, W]: the argmax class, or -1 where its probability is below `min_confidence`.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3:
        raise ValueError(f"probabilities must be [H, W, C], got shape {probabilities.shape}")
    if not 0.0 <= min_confidence < 1.0:
        raise ValueError(f"min_confidence must be in [0, 1), got {min_confidence}")
    classes = np.argmax(probabilities, axis=-1).astype(np.int32)
    if min_confidence > 0:
        classes[np.max(probabilities, axis=-1) < min_confidence] = -1
    return classes


def cluster_per_class(embeddings, semantic, thing_classes, bandwidth=DEFAULT_BANDWIDTH,
                      min_pixels=DEFAULT_MIN_PIXELS, max_samples=DEFAULT_MAX_SAMPLES, seed=0,
                      cluster_all=DEFAULT_CLUSTER_ALL):
    """Instances of several classes: each thing class is clustered on its own pixels.

    Instance ids are unique across classes: the instances of `thing_classes[0]` come first
    (numbered as in `cluster_embeddings`), then those of `thing_classes[1]`, and so on.

    Args:
        embeddings: float [H, W, D] pixel embeddings.
        semantic: int [H, W] predicted class per pixel (e.g. Cityscapes train ids).
        thing_classes: class ids that have instances (e.g. train ids 11..18).
        bandwidth, min_pixels, max_samples, seed, cluster_all: as in `cluster_embeddings`.

    Returns:
        (instance_map, instance_classes): int32 [H, W] with 0 background and 1..K instances, and
        int32 [K] with the class of instance k at index k - 1.
    """
    embeddings, semantic = _check_embeddings(embeddings, semantic, "semantic")
    instance_map = np.zeros(semantic.shape, dtype=np.int32)
    instance_classes = []
    for class_id in thing_classes:
        class_instances = cluster_embeddings(embeddings, semantic == class_id, bandwidth,
                                             min_pixels, max_samples, seed, cluster_all)
        n_instances = int(class_instances.max())
        on = class_instances > 0
        instance_map[on] = class_instances[on] + len(instance_classes)
        instance_classes.extend([class_id] * n_instances)
    return instance_map, np.asarray(instance_classes, dtype=np.int32)
