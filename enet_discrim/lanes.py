"""Instance maps -> lane polylines in TuSimple's format.

A lane is fitted as x = f(y) in the ORIGINAL frame's pixel coordinates and sampled at TuSimple's
fixed rows (`h_samples`); -2 marks a row without the lane, as in the TuSimple labels. The files
(labels, tasks, prediction lines) belong to `enet_discrim.formats.tusimple`; the names this module
gave them before are kept below as aliases.
"""

import numpy as np

from enet_discrim.formats import tusimple as tusimple_format
# Public names of this module before the format had its own (kept for their callers).
from enet_discrim.formats.tusimple import H_SAMPLES as TUSIMPLE_H_SAMPLES  # noqa: F401
from enet_discrim.formats.tusimple import format_line as tusimple_line  # noqa: F401
from enet_discrim.formats.tusimple import read_json_lines  # noqa: F401

#: Fewest distinct instance-map rows a lane must cover to be fitted (about 28 frame rows at
#: 256 -> 720): shorter segments are mostly clustering debris.
DEFAULT_MIN_POINTS = 10
#: Rows of support each polynomial degree above the first needs; see `fit_lanes`.
_ROWS_PER_DEGREE = 10
_MISSING = tusimple_format.NO_POINT
#: How `fit_lanes` models a lane: "polynomial" (x = f(y) of degree <= `degree`) or "hyperbola"
#: (x = a (y - h) + b / (y - h) + c, with h the frame's horizon row).
LANE_MODELS = ("polynomial", "hyperbola")
#: The horizon search of the hyperbola model: rows from `_HORIZON_RANGE` of the frame height above
#: the highest lane pixel down to one step above it, in steps of `_HORIZON_STEP` of the height
#: (3 rows at 720).
_HORIZON_RANGE = 0.55
_HORIZON_STEP = 1.0 / 240
#: A lane point farther than this many map columns (and than 3 robust standard deviations of
#: the lane's residuals) from its fit is stray and refitted without.
_OUTLIER_MAP_COLUMNS = 4
#: Fits of a lane at most, each without the stray points of the one before.
_OUTLIER_ROUNDS = 3
#: Map rows without a point that split a lane into stretches checked against each other.
_SEGMENT_GAP_ROWS = 3
#: How far (map columns) an extrapolated fit may drift per map row beyond the stretch it was
#: fitted on, when another stretch of the lane is checked against it.
_SEGMENT_SLACK_COLUMNS_PER_ROW = 1


def _lane_points(rows, cols, scale_y, scale_x):
    """One point per covered row: the mean column, mapped to frame pixel centres.

    Returns float64 [R] frame y and float64 [R] frame x, R = distinct rows, y ascending.
    """
    unique_rows, inverse = np.unique(rows, return_inverse=True)
    mean_cols = np.bincount(inverse, weights=cols) / np.bincount(inverse)
    # Map pixel centres: map pixel i covers frame [i * s, (i + 1) * s), centre (i + 0.5) * s - 0.5.
    return (unique_rows + 0.5) * scale_y - 0.5, (mean_cols + 0.5) * scale_x - 0.5


def _uncut_pixels(rows, cols, covered, map_width, min_rows):
    """The pixels of rows that do not touch the map's left or right edge, if they cover at least
    `min_rows` rows; else all of them. `covered`: bool [map height], the rows holding pixels."""
    cut = np.zeros_like(covered)
    cut[rows[(cols == 0) | (cols == map_width - 1)]] = True
    if np.count_nonzero(covered & ~cut) < min_rows:
        return rows, cols
    keep = ~cut[rows]
    return rows[keep], cols[keep]


def _hyperbola_design(t):
    """Columns t, 1 / t, 1 (scaled to similar magnitudes) for frame rows t below the horizon."""
    t = np.asarray(t, dtype=np.float64)
    return np.stack([t / 100.0, 100.0 / t, np.ones_like(t)], axis=-1)


def _horizon(lanes_points, highest_row, frame_height):
    """The frame row h under which the lanes are best fitted as x = a (y - h) + b / (y - h) + c
    (least squares per lane, summed), searched on a grid; None without lanes to fit.

    lanes_points: (ys, xs) float arrays of the lanes long enough for the model."""
    if not lanes_points:
        return None
    step = _HORIZON_STEP * frame_height
    horizons = np.arange(highest_row - _HORIZON_RANGE * frame_height, highest_row - step / 2, step)
    total = np.zeros(len(horizons))
    for ys, xs in lanes_points:
        design = _hyperbola_design(ys[None, :] - horizons[:, None])  # [G, R, 3]
        gram = np.einsum("gri,grj->gij", design, design)
        coefficients = np.linalg.solve(gram, np.einsum("gri,r->gi", design, xs)[..., None])[..., 0]
        total += np.sum((np.einsum("gri,gi->gr", design, coefficients) - xs) ** 2, axis=1)
    return float(horizons[np.argmin(total)])


def _fit_curve(ys, xs, horizon, degree):
    """x = f(y) through the points: the hyperbola under `horizon` for lanes of at least
    2 * _ROWS_PER_DEGREE rows (when a horizon is given), else a polynomial of degree
    min(degree, R // _ROWS_PER_DEGREE), at least 1. Returns f, NaN above the horizon."""
    if horizon is not None and len(ys) >= 2 * _ROWS_PER_DEGREE:
        coefficients = np.linalg.lstsq(_hyperbola_design(ys - horizon), xs, rcond=None)[0]

        def hyperbola(y):
            y = np.asarray(y, dtype=np.float64)
            below = y > horizon  # rows above it are above the lane, hence missing anyway
            t = np.where(below, y - horizon, 1.0)
            return np.where(below, _hyperbola_design(t) @ coefficients, np.nan)
        return hyperbola
    coefficients = np.polyfit(ys, xs, min(degree, max(1, len(ys) // _ROWS_PER_DEGREE)))
    return lambda y: np.polyval(coefficients, np.asarray(y, dtype=np.float64))


def _stray_segments(ys, xs, map_rows, degree, tolerance, slack_per_row, min_points):
    """bool [R]: the points of the lane's stretches (runs of map rows with gaps of at most
    `_SEGMENT_GAP_ROWS`) that lie off the fit of its longest stretch by more than `tolerance`
    plus `slack_per_row` for each map row between them (median over the stretch; the fit is
    extrapolated there), e.g. a blob of another line that clustering joined to this lane.
    A longest stretch shorter than `min_points` rows decides nothing."""
    breaks = np.flatnonzero(np.diff(map_rows) > _SEGMENT_GAP_ROWS) + 1
    segments = np.split(np.arange(len(ys)), breaks)
    stray = np.zeros(len(ys), dtype=bool)
    longest = max(segments, key=len)
    if len(segments) == 1 or len(longest) < min_points:
        return stray
    curve = _fit_curve(ys[longest], xs[longest], None, degree)  # a polynomial: no horizon yet
    for segment in segments:
        if segment is not longest:
            residual = np.abs(curve(ys[segment]) - xs[segment])
            distance = max(map_rows[longest[0]] - map_rows[segment[-1]],
                           map_rows[segment[0]] - map_rows[longest[-1]])
            stray[segment] = ~(np.median(np.where(np.isfinite(residual), residual, np.inf))
                               <= tolerance + slack_per_row * distance)
    return stray


def fit_lanes(instance_map, frame_height, frame_width, h_samples=TUSIMPLE_H_SAMPLES, degree=2,
              min_points=DEFAULT_MIN_POINTS, top_trim=0.0, lane_model="polynomial",
              bridge_gaps=False, extend_bottom=0.0, max_lanes=None):
    """Fit each lane instance with a curve x = f(y) and sample it at `h_samples`.

    Each instance is reduced to one point per covered map row (its mean column), so wide near
    rows do not outweigh thin far ones, and mapped to frame coordinates by pixel centres. Rows
    where the instance touches the map's left or right edge are left out of the fit (when enough
    rows remain): the frame cuts the lane there, so their mean column is pulled inwards. The fit
    is `numpy.polyfit` of degree `min(degree, R // 10)` (at least 1) for R covered rows: a short
    segment's spread is mostly across the lane, and a curve fitted to it would bend wildly where
    it is sampled, so every degree above the first needs 10 more rows of support.

    `lane_model="hyperbola"` fits each lane with at least 20 rows as x = a t + b / t + c, t = y - h,
    instead: the image of a lane on a flat road of constant curvature k seen by a pinhole camera
    (focal f, height H): a lane s metres to the side at distance z lies at x - x0 = f (s + k z^2 / 2)
    / z in a row t = f H / z below the horizon h, so x - x0 = (s / H) t + (f^2 H k / 2) / t, and
    the camera's yaw adds a constant (the hyperbola lane model of Kluge, 1994). One horizon serves
    all lanes of a frame: the row that fits them best, from a grid search. Near the horizon the
    1 / t term bends a lane the way a road curve does, which a quadratic in y cannot. Shorter
    lanes keep the polynomial.

    Which rows a lane is reported on: sampled x values are rounded to int, and a row gets -2
    - when the map row it falls in holds no pixel of the instance: above or below the lane and,
      without `bridge_gaps`, in its gaps. With `bridge_gaps` every row between the instance's
      first and last map row is reported: TuSimple's annotators continue a lane through the
      vehicle that hides it, so a lane seen on both sides of a car is reported through it;
    - below the instance's last map row, except for the `extend_bottom` map rows under it: the
      network tends to stop a lane short of the frame's bottom edge, where the fit is still good;
    - when x falls outside the frame (x < 0 or x >= frame_width);
    - when it lies less than `top_trim` map rows below the top edge of the lane's first map row.
      Training labels are lines `lane_thickness` pixels thick with round caps, so a lane's mask
      starts above its last labelled point; a model learns to start it there too, and `top_trim`
      takes that back.
    Points farther than `_OUTLIER_MAP_COLUMNS` map columns (and 3 robust standard deviations)
    from the fit are pixels that clustering gave to the wrong lane: the lane is refitted without
    them, and their rows do not count for its extent. Instances covering fewer than `min_points`
    rows, or with no valid sample, are dropped. With `max_lanes`, only the lanes nearest the
    frame's centre at its bottom row are kept: TuSimple's annotators label the ego lane's lines
    and their neighbours', not every line in view.

    Args:
        instance_map: int [h, w] network-resolution instance map, 0 background, > 0 instances.
        frame_height, frame_width: size of the original frame (e.g. 720, 1280).
        h_samples: frame rows to sample, e.g. TuSimple's 160..710 step 10, or CULane's 590, 580,
            ... (`frame_height` itself is the frame's bottom edge).
        degree: highest polynomial degree (>= 1).
        min_points: fewest covered map rows for a lane.
        top_trim: map rows (>= 0, may be fractional) dropped from the upper end of each lane.
        lane_model: one of LANE_MODELS.
        bridge_gaps: report a lane on every row between its first and last map row.
        extend_bottom: map rows (>= 0) below a lane's last map row on which it is still reported.
        max_lanes: the most lanes returned (>= 1), or None for all.

    Returns:
        list of lanes, each a list of len(h_samples) ints, ordered left to right by the fitted x
        at each lane's own bottom-most row.
    """
    instance_map = np.asarray(instance_map)
    if instance_map.ndim != 2:
        raise ValueError(f"instance_map must be [h, w], got shape {instance_map.shape}")
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    if top_trim < 0:
        raise ValueError(f"top_trim must be >= 0, got {top_trim}")
    if max_lanes is not None and max_lanes < 1:
        raise ValueError(f"max_lanes must be >= 1 or None, got {max_lanes}")
    if extend_bottom < 0:
        raise ValueError(f"extend_bottom must be >= 0, got {extend_bottom}")
    if lane_model not in LANE_MODELS:
        raise ValueError(f"lane_model must be one of {', '.join(LANE_MODELS)}, got {lane_model!r}")
    map_height, map_width = instance_map.shape
    scale_y, scale_x = frame_height / map_height, frame_width / map_width
    sample_rows = np.asarray(h_samples, dtype=np.float64)
    # The map row each sample row falls in (map row i covers frame rows [i * s - 0.5, (i + 1) * s - 0.5)).
    sample_map_rows = np.floor((sample_rows + 0.5) / scale_y).astype(np.int64)
    # The frame's bottom edge, row `frame_height` (where CULane's labels end), belongs to its last
    # row: half a pixel below that row's pixel centres.
    sample_map_rows[sample_rows == frame_height] = map_height - 1
    in_map = (sample_map_rows >= 0) & (sample_map_rows < map_height)
    # Where each sample row lies in map pixel-centre coordinates (map row i spans [i - 0.5, i + 0.5)).
    sample_map_position = (sample_rows + 0.5) / scale_y - 0.5
    # A point this far off its lane's fit (frame pixels, at least) is stray: pixels of another
    # line that clustering gave to this lane.
    outlier_px = _OUTLIER_MAP_COLUMNS * scale_x
    instances = []  # (covered map rows, frame ys, frame xs, map rows of the points)
    for instance_id in np.unique(instance_map[instance_map > 0]):
        rows, cols = np.nonzero(instance_map == instance_id)
        covered = np.zeros(map_height, dtype=bool)
        covered[rows] = True
        if np.count_nonzero(covered) < max(min_points, 2):
            continue
        ys, xs = _lane_points(*_uncut_pixels(rows, cols, covered, map_width, max(min_points, 2)),
                              scale_y, scale_x)
        map_rows = np.rint((ys + 0.5) / scale_y - 0.5).astype(int)
        # Stray stretches go before the horizon is searched: they would move it too.
        stray = _stray_segments(ys, xs, map_rows, degree, 2.0 * outlier_px,
                                _SEGMENT_SLACK_COLUMNS_PER_ROW * scale_x, max(min_points, 2))
        if stray.any():
            covered = covered.copy()
            covered[map_rows[stray]] = False
            ys, xs, map_rows = ys[~stray], xs[~stray], map_rows[~stray]
        instances.append((covered, ys, xs, map_rows))
    horizon = None
    if lane_model == "hyperbola" and instances:
        long_lanes = [(ys, xs) for _, ys, xs, _ in instances if len(ys) >= 2 * _ROWS_PER_DEGREE]
        highest = min(ys[0] for _, ys, _, _ in instances)
        horizon = _horizon(long_lanes, highest, frame_height)
    fitted = []
    for covered, ys, xs, map_rows in instances:
        stray = np.zeros(len(ys), dtype=bool)
        curve = _fit_curve(ys, xs, horizon, degree)
        for _ in range(_OUTLIER_ROUNDS):
            residual = np.abs(curve(ys) - xs)
            new_stray = stray | (residual > max(outlier_px, 3.0 * 1.4826 * np.median(residual[~stray])))
            if (new_stray == stray).all() or np.count_nonzero(~new_stray) < max(min_points, 2):
                break
            stray = new_stray
            curve = _fit_curve(ys[~stray], xs[~stray], horizon, degree)
        if stray.any():  # leave the stray rows out of the fit and of the lane's extent
            covered = covered.copy()
            covered[map_rows[stray]] = False
            ys, xs = ys[~stray], xs[~stray]
        covered_rows = np.flatnonzero(covered)
        top_row, bottom_row = covered_rows[0], covered_rows[-1]
        reported = covered.copy()
        if bridge_gaps:
            reported[top_row:bottom_row + 1] = True
        if extend_bottom > 0:
            reported[bottom_row:min(map_height, bottom_row + 1 + int(np.ceil(extend_bottom)))] = True
        sampled_x = curve(sample_rows)
        sampled_x = np.where(np.isfinite(sampled_x), np.rint(sampled_x), -1.0)
        bottom_x = float(curve(ys[-1:])[0])
        valid = (in_map & reported[np.clip(sample_map_rows, 0, map_height - 1)] & (sampled_x >= 0)
                 & (sampled_x < frame_width)
                 & (sample_map_position >= top_row - 0.5 + top_trim))
        if not valid.any():
            continue
        lane = np.where(valid, sampled_x, _MISSING).astype(int).tolist()
        off_centre = abs(float(curve(np.array([frame_height - 1.0]))[0]) - (frame_width - 1) / 2)
        fitted.append((bottom_x, lane, off_centre if np.isfinite(off_centre) else np.inf))
    if max_lanes is not None and len(fitted) > max_lanes:
        fitted = sorted(fitted, key=lambda item: item[2])[:max_lanes]
    fitted.sort(key=lambda item: item[0])
    return [lane for _, lane, _ in fitted]


def read_tusimple_tasks(path):
    """(raw_file, h_samples list[int]) of each frame of a TuSimple tasks or label file, in file
    order: `formats.tusimple.read_tasks` without the line numbers."""
    return [(task.raw_file, task.h_samples) for task in tusimple_format.read_tasks(path)]
