"""Post-processing settings chosen on labelled frames, with every frame set's score reported.

    enet-discrim tune --modeldir M [--tusimple LABELS ...] [--culane LIST ...] [--dry_run]

The network runs once per frame; then every combination of the grid's values (`DEFAULT_GRID`:
min_confidence, bandwidth, lane_top_trim, lane_extend_bottom, lane_bridge_gaps, max_lanes) is
clustered, fitted and scored: a TuSimple set (a label file, frames relative to its folder) by
TuSimple's metric, 200 ms rule off, a CULane set (a list file, frames relative to the dataset
root) by CULane's. Each set's score is an F1: CULane's own, and for TuSimple the F1 of
1 - FP (the share of predicted lanes that match) and 1 - FN (the share of labelled ones found).

Settings that fit one small set can lose on the next road, so a candidate is ranked by its
*worst* set, then by the mean over sets; among the candidates within `tolerance` of the best
worst-set score, the one that changes the fewest of the model's current settings wins (a change
must pay for itself on every set).
"""

import dataclasses
import itertools
import os

import numpy as np
from absl import logging

from enet_discrim.evaluation import culane as culane_metric
from enet_discrim.evaluation import tusimple as tusimple_metric
from enet_discrim.formats import culane as culane_format
from enet_discrim.formats import images
from enet_discrim.formats import tusimple as tusimple_format

#: The values searched, per setting (`model_dir.InferenceSettings` field names).
DEFAULT_GRID = {
    "min_confidence": (0.5, 0.6, 0.7, 0.8),
    "bandwidth": (1.0, 1.5),
    "lane_top_trim": (0.0, 0.5, 1.0),
    "lane_extend_bottom": (0.0, 5.0, 10.0),
    "lane_bridge_gaps": (False, True),
    "max_lanes": (4, 5),
}
#: Worst-set scores this close to the best count as a tie (about one lane in 50).
DEFAULT_TOLERANCE = 0.01
#: Settings of the clustering: a change of these re-clusters; the others only refit.
_CLUSTERING_KEYS = ("min_confidence", "bandwidth", "cluster_all")


@dataclasses.dataclass
class FrameSet:
    """Labelled frames scored together: their metric, name, and per frame (path, labels, rows)."""

    metric: str  # "tusimple" or "culane"
    name: str
    frames: list


def tusimple_set(label_file):
    """A TuSimple label file's frames (raw_file relative to its folder, inside it).

    Raises:
        ValueError: `FILE:LINE: reason` for a bad line, a frame outside the folder, none at all.
    """
    folder = os.path.dirname(os.path.abspath(label_file))
    frames = []
    for line_number, record in tusimple_format.read_labels(label_file):
        try:
            path, _ = tusimple_format.resolve_raw_file(folder, folder, record["raw_file"])
        except ValueError as error:
            raise ValueError(f"{label_file}:{line_number}: {error}") from None
        frames.append((path, record["lanes"], tuple(int(y) for y in record["h_samples"])))
    if not frames:
        raise ValueError(f"{label_file}: no labelled frame")
    return FrameSet("tusimple", label_file, frames)


def culane_set(list_file, root=None):
    """A CULane list's frames with their `.lines.txt` labels; the root is the folder above the
    list's `list/` folder (ROOT/list/val.txt), else the list's own folder, unless given.

    Raises:
        ValueError: a bad list line or lane file (`FILE:LINE: reason`), a frame outside the root.
    """
    if root is None:
        folder = os.path.dirname(os.path.abspath(list_file))
        root = os.path.dirname(folder) if os.path.basename(folder) == "list" else folder
    frames = []
    for entry in culane_format.read_list(list_file):
        try:
            path, _ = culane_format.resolve_frame(root, entry.frame)
        except ValueError as error:
            raise ValueError(f"{list_file}:{entry.line_number}: {error}") from None
        labels = culane_format.lanes_path(path)
        frames.append((path, culane_format.read_lanes(labels) if os.path.exists(labels) else [],
                       None))
    if not frames:
        raise ValueError(f"{list_file}: the list holds no frame")
    return FrameSet("culane", list_file, frames)


def tusimple_f1(result):
    """The F1 of TuSimple's 1 - FP and 1 - FN (`evaluation.tusimple` means)."""
    precision, recall = 1.0 - result["fp"], 1.0 - result["fn"]
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _score_tusimple(predicted, frames):
    accuracy = fp = fn = 0.0
    for lanes, (_, gt_lanes, rows) in zip(predicted, frames):
        a, p, n = tusimple_metric.bench_frame(lanes, gt_lanes, list(rows), 0.0)
        accuracy, fp, fn = accuracy + a, fp + p, fn + n
    count = len(frames)
    result = {"accuracy": accuracy / count, "fp": fp / count, "fn": fn / count}
    return {**result, "score": tusimple_f1(result)}


def _score_culane(predicted, frames):
    total = culane_metric.Counts()
    for lanes, (_, gt_lanes, _) in zip(predicted, frames):
        total += culane_metric.count_frame(gt_lanes, lanes)[0]
    scores = total.scores()
    return {**scores, "score": scores["f1"]}


class _Outputs:
    """The network's outputs of a set's frames, computed once, and their instance maps per
    clustering setting."""

    def __init__(self, predictor, frame_set):
        self.frame_set = frame_set
        self.outputs, self.sizes = [], []
        for path, _, _ in frame_set.frames:
            image = images.read_image(path)
            self.sizes.append(image.shape[:2])
            self.outputs.append(predictor.network_outputs(image))
        self._instances = {}

    def instances(self, predictor, settings):
        key = tuple(getattr(settings, name) for name in _CLUSTERING_KEYS)
        if key not in self._instances:
            self._instances[key] = [predictor.instances(p, e, settings)[0]
                                    for p, e in self.outputs]
        return self._instances[key]

    def score(self, predictor, settings):
        """The set's metric with `settings`: a dict with "score" (an F1, see the module)."""
        predicted = []
        maps = self.instances(predictor, settings)
        for instance_map, size, (_, _, rows) in zip(maps, self.sizes, self.frame_set.frames):
            if self.frame_set.metric == "tusimple":
                predicted.append(predictor.fit_lanes(instance_map, size, rows, settings))
            else:
                sample = culane_format.sample_rows(size[0])
                fitted = predictor.fit_lanes(instance_map, size, sample, settings)
                predicted.append([lane for lane in culane_format.lanes_from_rows(fitted, sample)
                                  if len(lane) >= 2])
        if self.frame_set.metric == "tusimple":
            return _score_tusimple(predicted, self.frame_set.frames)
        return _score_culane(predicted, self.frame_set.frames)


def candidates(base, grid):
    """Every combination of `grid`'s values applied to settings `base` (invalid ones skipped)."""
    names = sorted(grid)
    for values in itertools.product(*(grid[name] for name in names)):
        try:
            yield base.replace(**dict(zip(names, values)))
        except ValueError:
            continue


def _changed(settings, base, grid):
    return sum(getattr(settings, name) != getattr(base, name) for name in grid)


def tune(predictor, frame_sets, grid=None, tolerance=DEFAULT_TOLERANCE):
    """Scores every candidate of `grid` on every frame set and picks the settings to keep.

    Args:
        predictor: a lane `Predictor` (its settings are the base the grid varies).
        frame_sets: list of `FrameSet` (`tusimple_set`, `culane_set`).
        grid: dict setting -> values (default `DEFAULT_GRID`).
        tolerance: worst-set scores within this of the best are ties (see the module).

    Returns:
        dict: "chosen" (InferenceSettings), "base" (the predictor's), "ranked" (list of
        (settings, per-set results list, worst, mean), best first), "base_results" and
        "chosen_results" (per-set result dicts).

    Raises:
        ValueError: no frame set, a model that is not a lane model, an unknown setting.
    """
    if not frame_sets:
        raise ValueError("tune needs at least one labelled frame set (--tusimple or --culane)")
    if not predictor.is_lanes:
        raise ValueError("tune chooses lane post-processing: it needs a lane model")
    grid = dict(DEFAULT_GRID if grid is None else grid)
    base = predictor.settings
    unknown = sorted(set(grid) - set(base.to_dict()))
    if unknown:
        raise ValueError(f"unknown setting(s) in the grid: {', '.join(unknown)}")
    outputs = [_Outputs(predictor, frame_set) for frame_set in frame_sets]
    logging.info("tune: network outputs of %d frames in %d sets",
                 sum(len(s.frames) for s in frame_sets), len(frame_sets))
    ranked = []
    for settings in candidates(base, grid):
        results = [output.score(predictor, settings) for output in outputs]
        scores = [result["score"] for result in results]
        ranked.append((settings, results, min(scores), float(np.mean(scores))))
    ranked.sort(key=lambda item: (-item[2], -item[3]))
    best_worst = ranked[0][2]
    tied = [item for item in ranked if item[2] >= best_worst - tolerance]
    chosen = min(tied, key=lambda item: (_changed(item[0], base, grid), -item[2], -item[3]))
    return {"chosen": chosen[0], "base": base, "ranked": ranked,
            "base_results": [output.score(predictor, base) for output in outputs],
            "chosen_results": chosen[1]}


if __name__ == "__main__":
    import sys

    from enet_discrim.cli import tune as tune_cli

    sys.exit(tune_cli.run())
