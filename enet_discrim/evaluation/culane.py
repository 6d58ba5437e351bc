"""CULane's lane metric: true and false positives and negatives, precision, recall and F1.

A port of CULane's official evaluator (`tools/lane_evaluation` of XingangPan/SCNN, C++ against
OpenCV) that gives its exact counts on well-formed files, with no build step:

- each lane of a frame, labelled or predicted, is read as float32 points (`Point2f`), interpolated
  by the tool's own natural cubic spline through its points (parametrised by the distance between
  them, 50 steps per interval; a lane of exactly 2 points is kept as its segment), rounded to
  whole pixels as OpenCV rounds (half to even), and drawn with OpenCV's thick lines,
  `lane_width` (30) pixels wide, on a `width` x `height` (1640 x 590) canvas, whatever the
  frame's size;
- the similarity of two lanes is the IoU of their drawings; a lane with fewer than 2 points has
  similarity 0 with every lane;
- labelled and predicted lanes are matched one to one by the tool's own Kuhn-Munkres search,
  which maximises the summed IoU with a tolerance of 0.01 (`_kuhn_munkres`): its choices among
  near-equal matchings are kept;
- a matched pair with IoU strictly above `iou` (0.5) is a true positive; the other labelled lanes
  are false negatives, the other predicted ones false positives;
- a frame whose lane file is missing has no lanes, labelled or predicted; a blank line of a lane
  file is a lane without points (a false positive in predictions, a false negative in labels).

Where the tool reads malformed files silently (stopping a lane at its first value that is not a
number, dropping a lone last x), this port refuses them: `FILE:LINE: reason`
(`formats.culane.read_lanes`). Precision, recall and F1 are 0 where the tool divides by zero.
One deliberate difference: the spline's squares and cubes are products (`t * t`), where the tool
calls `pow`; they agree to the last bit or one unit in it, which float32 points round away.
"""

import concurrent.futures
import dataclasses
import math
import os

import cv2
import numpy as np
from absl import logging

from enet_discrim.formats import culane as culane_format

#: The official evaluation: lanes 30 px wide on the 1640 x 590 canvas, matched at IoU > 0.5.
LANE_WIDTH = 30
IOU_THRESHOLD = 0.5
#: Interpolated points per interval between two points of a lane.
SPLINE_STEPS = 50
#: What OpenCV's rounding of a float to int (`cvRound`, SSE2) gives for NaN and out-of-range
#: values.
_INT_INDEFINITE = -2 ** 31
#: Frames scored per task of a worker process.
_CHUNK_FRAMES = 64


@dataclasses.dataclass(frozen=True)
class Counts:
    """True positives, false positives and false negatives, summed over frames."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other):
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def scores(self):
        """{"tp", "fp", "fn", "precision", "recall", "f1"}; a ratio with nothing to divide by is 0."""
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": precision,
                "recall": recall, "f1": f1}


# --- One lane.

def spline_points(points, steps=SPLINE_STEPS):
    """The official tool's `Spline::splineInterpTimes`: points along the natural cubic spline
    through a lane's points, `steps` per interval, then the last point.

    Args:
        points: float [N, 2] (x, y), N >= 3; taken as float32, as the tool stores them.
        steps: points per interval.

    Returns:
        float32 [steps * (N - 1) + 1, 2].
    """
    xy = np.asarray(points, dtype=np.float32)
    n = len(xy)
    delta32 = xy[1:] - xy[:-1]  # float32 differences, as the tool's Point2f arithmetic
    delta = delta32.astype(np.float64)
    h = np.sqrt(delta[:, 0] * delta[:, 0] + delta[:, 1] * delta[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):  # repeated points: NaN, as in the tool
        slope = delta / h[:, None]
    # The tridiagonal system of the inner second derivatives (Thomas algorithm), in the tool's
    # order of operations, so that every value rounds as it does there.
    a, b, c = h[:-1], 2 * (h[:-1] + h[1:]), h[1:].copy()
    d = 6 * (slope[1:] - slope[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        c[0] = c[0] / b[0]
        d[0] = d[0] / b[0]
        for i in range(1, n - 2):
            pivot = b[i] - a[i] * c[i - 1]
            c[i] = c[i] / pivot
            d[i] = (d[i] - a[i] * d[i - 1]) / pivot
    m = np.zeros((n, 2))
    m[n - 2] = d[n - 3]
    for i in range(n - 4, -1, -1):
        m[i + 1] = d[i] - c[i] * m[i + 2]
    m[0] = 0
    m[n - 1] = 0
    start = xy[:-1].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        linear = slope - (2 * h[:, None] * m[:-1] + h[:, None] * m[1:]) / 6
        quadratic = m[:-1] / 2
        cubic = (m[1:] - m[:-1]) / (6 * h[:, None])
    t = (h / steps)[:, None] * np.arange(steps, dtype=np.float64)[None, :]  # [N - 1, steps]
    t2, t3 = t * t, t * t * t
    sampled = [start[:, None, axis] + linear[:, None, axis] * t + quadratic[:, None, axis] * t2
               + cubic[:, None, axis] * t3 for axis in (0, 1)]
    curve = np.stack(sampled, axis=-1).reshape(-1, 2).astype(np.float32)
    return np.concatenate([curve, xy[-1:]])


def _cv_round(values):
    """float32 -> int32 as OpenCV converts a Point2f to a Point: half to even; NaN and values out
    of int32's range give INT_MIN."""
    values = np.asarray(values, dtype=np.float32).astype(np.float64)
    inside = np.isfinite(values) & (values >= -2.0 ** 31) & (values < 2.0 ** 31)
    rounded = np.where(inside, np.rint(np.where(inside, values, 0)), _INT_INDEFINITE)
    return rounded.astype(np.int64).clip(_INT_INDEFINITE, 2 ** 31 - 1).astype(np.int32)


def drawn_points(lane, steps=SPLINE_STEPS):
    """The pixel vertices the tool draws a lane through: int32 [M, 2] (x, y), or None for a lane
    of fewer than 2 points (which the tool compares as similarity 0)."""
    points = np.asarray(lane, dtype=np.float32).reshape(-1, 2)
    if len(points) < 2:
        return None
    curve = points if len(points) == 2 else spline_points(points, steps)
    vertices = _cv_round(curve)
    # A vertex equal to the one before adds a segment of length 0, which draws only the round cap
    # already drawn there: leaving it out changes no pixel and saves most of the drawing.
    # A lane whose vertices all coincide keeps two: the tool draws its zero-length segments' caps.
    keep = np.ones(len(vertices), dtype=bool)
    keep[1:] = np.any(vertices[1:] != vertices[:-1], axis=1)
    keep[-1] = keep[-1] or np.count_nonzero(keep) == 1
    return vertices[keep]


@dataclasses.dataclass(frozen=True)
class _Drawing:
    """A lane drawn on the canvas: its mask, the box that holds its pixels, their count."""

    mask: np.ndarray
    box: tuple  # (top, bottom, left, right), bottom and right exclusive
    area: int


def draw_lane(vertices, canvas_size, lane_width=LANE_WIDTH):
    """The lane's pixels as the tool draws them: `cv2.line` between consecutive vertices,
    `lane_width` thick (round caps, 8-connected), on a zero canvas.

    `cv2.polylines` draws exactly the union of those segments (each segment with its caps).

    Args:
        vertices: int32 [M, 2] from `drawn_points`.
        canvas_size: (height, width).
        lane_width: line thickness in pixels (>= 1).

    Returns:
        `_Drawing`.
    """
    height, width = canvas_size
    mask = np.zeros((height, width), np.uint8)
    cv2.polylines(mask, [vertices.reshape(-1, 1, 2)], isClosed=False, color=1,
                  thickness=lane_width, lineType=cv2.LINE_8)
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return _Drawing(mask, (0, 0, 0, 0), 0)
    cols = np.flatnonzero(mask.any(axis=0))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    return _Drawing(mask, box, int(np.count_nonzero(mask[box[0]:box[1], box[2]:box[3]])))


def drawings_iou(first, second):
    """IoU of two `_Drawing`s (NaN when neither has a pixel on the canvas, as in the tool)."""
    top, bottom = max(first.box[0], second.box[0]), min(first.box[1], second.box[1])
    left, right = max(first.box[2], second.box[2]), min(first.box[3], second.box[3])
    inter = 0
    if top < bottom and left < right:
        inter = int(np.count_nonzero(first.mask[top:bottom, left:right]
                                     & second.mask[top:bottom, left:right]))
    union = first.area + second.area - inter
    return inter / union if union else math.nan


def lane_iou(first, second, canvas_size=(culane_format.FRAME_HEIGHT, culane_format.FRAME_WIDTH),
             lane_width=LANE_WIDTH):
    """The official similarity of two lanes (lists of (x, y)): the IoU of their drawings; 0 when
    either has fewer than 2 points."""
    drawings = [_draw(lane, canvas_size, lane_width) for lane in (first, second)]
    if drawings[0] is None or drawings[1] is None:
        return 0.0
    return drawings_iou(*drawings)


def _draw(lane, canvas_size, lane_width):
    vertices = drawn_points(lane)
    return None if vertices is None else draw_lane(vertices, canvas_size, lane_width)


# --- One frame.

def _kuhn_munkres(weights):
    """The official tool's `pipartiteGraph::match`: a maximum-weight matching of the rows of
    `weights` (m <= n) to its columns by Kuhn-Munkres with edges "tight" within 0.01.

    Kept step for step, comparisons included, so that among matchings whose sums differ by less
    than the tolerance it picks the same one, and NaN weights behave as there (never tight).

    Args:
        weights: list of m lists of n floats, m <= n.

    Returns:
        (left_match list[int] of m, right_match list[int] of n); -1 = unmatched.
    """
    left_count, right_count = len(weights), len(weights[0])
    left_match, right_match = [-1] * left_count, [-1] * right_count
    right_weight = [0.0] * right_count
    left_weight = []
    for row in weights:
        best = -1e5
        for value in row:
            if best < value:
                best = value
        left_weight.append(best)
    left_used, right_used = [False] * left_count, [False] * right_count

    def augment(u):
        left_used[u] = True
        for v in range(right_count):
            if not right_used[v] and abs(left_weight[u] + right_weight[v] - weights[u][v]) < 1e-2:
                right_used[v] = True
                if right_match[v] == -1 or augment(right_match[v]):
                    right_match[v] = u
                    left_match[u] = v
                    return True
        return False

    for u in range(left_count):
        while True:
            left_used[:] = [False] * left_count
            right_used[:] = [False] * right_count
            if augment(u):
                break
            slack = 1e10
            for i in range(left_count):
                if left_used[i]:
                    for j in range(right_count):
                        if not right_used[j]:
                            candidate = left_weight[i] + right_weight[j] - weights[i][j]
                            if candidate < slack:  # std::min(slack, candidate)
                                slack = candidate
            if slack == 1e10:
                return left_match, right_match
            for i in range(left_count):
                if left_used[i]:
                    left_weight[i] -= slack
            for j in range(right_count):
                if right_used[j]:
                    right_weight[j] += slack
    return left_match, right_match


def match_lanes(similarity):
    """The official `Counter::makeMatch`: the labelled lane (row) -> predicted lane (column)
    matching of a similarity matrix, the smaller side taken as the search's left side.

    Returns:
        (anno_match list[int] per row, detect_match list[int] per column); -1 = unmatched.
    """
    rows, cols = len(similarity), len(similarity[0])
    if rows > cols:
        transposed = [[similarity[i][j] for i in range(rows)] for j in range(cols)]
        detect_match, anno_match = _kuhn_munkres(transposed)
        return anno_match, detect_match
    return _kuhn_munkres(similarity)


def count_frame(anno_lanes, detect_lanes, iou=IOU_THRESHOLD, lane_width=LANE_WIDTH,
                canvas_size=(culane_format.FRAME_HEIGHT, culane_format.FRAME_WIDTH)):
    """The official `Counter::count_im_pair` of one frame.

    Args:
        anno_lanes, detect_lanes: lists of lanes, each a list of (x, y).
        iou: a matched pair is a true positive above this IoU.
        lane_width: line thickness of the drawings.
        canvas_size: (height, width) of the canvas.

    Returns:
        (Counts, anno_match list[int]: the predicted lane each labelled lane was matched to as a
        true positive, -1 for none).
    """
    if not anno_lanes:
        return Counts(0, len(detect_lanes), 0), []
    if not detect_lanes:
        return Counts(0, 0, len(anno_lanes)), [-1] * len(anno_lanes)
    anno = [_draw(lane, canvas_size, lane_width) for lane in anno_lanes]
    detect = [_draw(lane, canvas_size, lane_width) for lane in detect_lanes]
    similarity = [[0.0 if a is None or d is None else drawings_iou(a, d) for d in detect]
                  for a in anno]
    anno_match, _ = match_lanes(similarity)
    tp = 0
    for i, j in enumerate(anno_match):
        if j >= 0 and similarity[i][j] > iou:
            tp += 1
        else:
            anno_match[i] = -1
    return Counts(tp, len(detect_lanes) - tp, len(anno_lanes) - tp), anno_match


# --- A list of frames.

def _read_if_present(path):
    """A lane file's lanes; [] when there is no such file (the tool reads no lanes then)."""
    if not os.path.lexists(path):
        return []
    return culane_format.read_lanes(path)


def frame_files(annotations, predictions, list_path):
    """(label file, prediction file) of every frame of a list, in list order.

    Args:
        annotations: the dataset root the list's paths are relative to (the tool's `-a`).
        predictions: the folder of predicted `.lines.txt` files, laid out as the frames (`-d`).
        list_path: a list file, e.g. `list/test.txt` (`-l`).

    Raises:
        ValueError: `FILE: ...` when the list cannot be read, `LIST:LINE: reason` for a bad line
            or a frame path that leaves either root.
    """
    pairs = []
    for entry in culane_format.read_list(list_path):
        lanes_file = culane_format.lanes_path(entry.frame)
        try:
            anno, _ = culane_format.resolve_frame(annotations, lanes_file)
            detect, _ = culane_format.resolve_frame(predictions, lanes_file)
        except ValueError as error:
            raise ValueError(f"{list_path}:{entry.line_number}: {error}") from None
        pairs.append((anno, detect))
    return pairs


def _count_files(pairs, iou, lane_width, canvas_size):
    """(Counts, frames without a label file) of (label file, prediction file) pairs."""
    total, unlabelled = Counts(), 0
    for anno_path, detect_path in pairs:
        if not os.path.lexists(anno_path):
            unlabelled += 1
        counts, _ = count_frame(_read_if_present(anno_path), _read_if_present(detect_path),
                                iou=iou, lane_width=lane_width, canvas_size=canvas_size)
        total += counts
    return total, unlabelled


def evaluate(annotations, predictions, list_path, lane_width=LANE_WIDTH, iou=IOU_THRESHOLD,
             width=culane_format.FRAME_WIDTH, height=culane_format.FRAME_HEIGHT, workers=1):
    """CULane's counts and scores of the predictions of a list's frames.

    Args:
        annotations: the dataset root (label files beside the frames).
        predictions: the predictions folder (`inference.py --format culane`'s `culane_results/`).
        list_path: the list of frames to score.
        lane_width: lane thickness of the drawings, pixels (>= 1).
        iou: IoU above which a matched pair is a true positive, in [0, 1].
        width, height: the canvas the lanes are drawn on.
        workers: processes scoring frames in parallel (None: one per CPU).

    Returns:
        dict as `Counts.scores`, plus "frames" and "unlabelled" (frames of the list without a
        label file, scored as frames without lanes).

    Raises:
        ValueError: bad arguments; a bad list line; a lane file that is malformed or cannot be
            read (`FILE:LINE: reason`).
    """
    if not (isinstance(lane_width, int) and lane_width >= 1):
        raise ValueError(f"the lane width must be a whole number of pixels >= 1, got {lane_width!r}")
    if not (isinstance(iou, (int, float)) and 0.0 <= iou <= 1.0):
        raise ValueError(f"the IoU threshold must lie in [0, 1], got {iou!r}")
    if width < 1 or height < 1:
        raise ValueError(f"the canvas must be at least 1 x 1 pixels, got {width} x {height}")
    for name, folder in (("annotations", annotations), ("predictions", predictions)):
        if not os.path.isdir(folder):
            raise ValueError(f"the {name} folder {folder!r} does not exist or is not a folder")
    pairs = frame_files(annotations, predictions, list_path)
    if not pairs:
        raise ValueError(f"{list_path}: the list holds no frame")
    canvas = (height, width)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers <= 1 or len(pairs) <= _CHUNK_FRAMES:
        counts, unlabelled = _count_files(pairs, iou, lane_width, canvas)
    else:
        chunks = [pairs[start:start + _CHUNK_FRAMES]
                  for start in range(0, len(pairs), _CHUNK_FRAMES)]
        counts, unlabelled = Counts(), 0
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            for chunk_counts, chunk_unlabelled in pool.map(
                    _count_files, chunks, *[[value] * len(chunks)
                                           for value in (iou, lane_width, canvas)]):
                counts += chunk_counts
                unlabelled += chunk_unlabelled
    if unlabelled:
        logging.warning("%d of the %d frames of %s have no label file under %s: scored as "
                        "frames without lanes, as the official tool does", unlabelled,
                        len(pairs), list_path, annotations)
    return {**counts.scores(), "frames": len(pairs), "unlabelled": unlabelled}


def category_lists(lists_dir):
    """The test categories whose list file (`test0_normal.txt` ...) is in `lists_dir`.

    Returns:
        list of (category, path), in CULane's order.

    Raises:
        ValueError: the folder holds none of them.
    """
    if not os.path.isdir(lists_dir):
        raise ValueError(f"--split_lists {lists_dir!r} does not exist or is not a folder")
    found = [(category, os.path.join(lists_dir, culane_format.category_list(category)))
             for category in culane_format.TEST_CATEGORIES]
    found = [(category, path) for category, path in found if os.path.isfile(path)]
    if not found:
        raise ValueError(f"--split_lists {lists_dir!r} holds none of CULane's category lists "
                         f"({culane_format.category_list('normal')} ... "
                         f"{culane_format.category_list('night')})")
    return found


if __name__ == "__main__":
    import sys

    from enet_discrim.cli import culane as culane_cli

    sys.exit(culane_cli.run_eval())
