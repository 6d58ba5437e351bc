"""TuSimple lane benchmark: accuracy, false positives and false negatives.

A Python 3 port of the official script, `evaluate/lane.py` of github.com/TuSimple/tusimple-benchmark
(`LaneEval.bench` and `LaneEval.bench_one_submit`), with the same numbers on valid input:

- rows: each frame is scored at the GROUND TRUTH's `h_samples`; a prediction's rows are not read.
- per ground-truth lane, a threshold of 20 px / cos(theta), theta = arctan(k) of the least-squares
  line x = k * y + b through its valid points (x >= 0); theta = 0 with fewer than two points.
  (The official script fits sklearn's LinearRegression; `numpy.polyfit(y, x, 1)` is the same fit.)
- line accuracy of a prediction against a ground-truth lane: the share of rows where
  |pred - gt| < threshold, every negative x on either side first replaced by -100 (so two missing
  points agree, and a missing point never agrees with a present one).
- a ground-truth lane is matched when its best line accuracy over the predictions is >= 0.85.
- frame scores: accuracy = sum of best accuracies / max(min(n_gt, 4), 1); FP = (n_pred - matched)
  / n_pred (0 without predictions); FN = misses / max(min(n_gt, 4), 1); with more than 4
  ground-truth lanes, the lowest best accuracy is left out of the sum and one miss is forgiven.
- a frame with run_time > 200 (ms) or more than n_gt + 2 predicted lanes scores (0, 0, 1).
- the result is the mean over the ground-truth frames.

The official script's errors are kept as ValueErrors naming the file and frame: a predicted lane
whose length differs from the frame's h_samples ("Format of lanes error."), a prediction missing
raw_file/lanes/run_time, and predictions that do not cover exactly the ground-truth frames ("We do
not get the predictions of all the test tasks"; the official check compares line counts and
unknown frames, here duplicates are caught too). Lines are read and checked by
`enet_discrim.formats.tusimple` (`read_labels`, `read_predictions`): values of the wrong type,
which the official script meets with a traceback or silently (a NaN run_time passes its 200 ms
rule), are `FILE:LINE: reason` errors too, blaming the file they are in.

    python -m enet_discrim.evaluation.tusimple PRED.json GT.json [--json]
"""

import argparse
import json
import sys

import numpy as np

from enet_discrim.cli import support
from enet_discrim.formats import tusimple as tusimple_format

#: Official constants: pixel tolerance at a vertical lane, and line accuracy for a match.
PIXEL_THRESHOLD = 20.0
MATCH_THRESHOLD = 0.85
#: A frame slower than this many milliseconds scores as a miss.
MAX_RUN_TIME_MS = 200
_ABSENT = -100


def lane_angle(xs, y_samples):
    """Angle theta = arctan(k) of the least-squares line x = k * y + b through a lane's points.

    Args:
        xs: float [N] x per row, negative where the lane is absent.
        y_samples: float [N] the rows.

    Returns:
        theta in radians; 0 when fewer than two points are present.
    """
    xs, y_samples = np.asarray(xs, dtype=np.float64), np.asarray(y_samples, dtype=np.float64)
    present = xs >= 0
    if present.sum() <= 1:
        return 0.0
    slope, _ = np.polyfit(y_samples[present], xs[present], 1)
    return float(np.arctan(slope))


def line_accuracy(pred, gt, threshold):
    """Share of rows where a predicted lane is within `threshold` of a ground-truth lane.

    Args:
        pred, gt: [N] x per row, negative where absent (mapped to -100 on both sides).
        threshold: pixel tolerance.

    Returns:
        float in [0, 1].
    """
    pred = np.where(np.asarray(pred, dtype=np.float64) >= 0, pred, _ABSENT)
    gt = np.where(np.asarray(gt, dtype=np.float64) >= 0, gt, _ABSENT)
    return float(np.sum(np.abs(pred - gt) < threshold) / len(gt))


def bench_frame(pred_lanes, gt_lanes, y_samples, run_time_ms):
    """Scores of one frame, as the official `LaneEval.bench`.

    Args:
        pred_lanes: predicted lanes, each a list of len(y_samples) x values (-2 absent).
        gt_lanes: ground-truth lanes, same format.
        y_samples: the ground truth's h_samples.
        run_time_ms: the prediction's run time for the frame.

    Returns:
        (accuracy, fp, fn) floats.

    Raises:
        ValueError("Format of lanes error. ...") when a predicted lane has the wrong length, or
        for a run time that is not a finite number of milliseconds >= 0.
    """
    tusimple_format.check_run_time(run_time_ms)
    for index, lane in enumerate(pred_lanes):
        if len(lane) != len(y_samples):
            raise ValueError(f"Format of lanes error.: predicted lane {index} has {len(lane)} "
                             f"points for {len(y_samples)} h_samples")
    if run_time_ms > MAX_RUN_TIME_MS or len(gt_lanes) + 2 < len(pred_lanes):
        return 0.0, 0.0, 1.0
    thresholds = [PIXEL_THRESHOLD / np.cos(lane_angle(gt, y_samples)) for gt in gt_lanes]
    best_accuracies = []
    misses, matched = 0.0, 0.0
    for gt, threshold in zip(gt_lanes, thresholds):
        accuracies = [line_accuracy(pred, gt, threshold) for pred in pred_lanes]
        best = max(accuracies) if accuracies else 0.0
        if best < MATCH_THRESHOLD:
            misses += 1
        else:
            matched += 1
        best_accuracies.append(best)
    # A prediction matching two ground-truth lanes counts twice here, as in the official script.
    false_positives = len(pred_lanes) - matched
    if len(gt_lanes) > 4 and misses > 0:
        misses -= 1
    total = sum(best_accuracies)
    if len(gt_lanes) > 4:
        total -= min(best_accuracies)
    counted = max(min(4.0, len(gt_lanes)), 1.0)
    fp = false_positives / len(pred_lanes) if pred_lanes else 0.0
    return total / counted, fp, misses / counted


def evaluate(pred_path, gt_path):
    """TuSimple accuracy, FP and FN of a prediction file against a ground-truth file.

    Args:
        pred_path: JSON lines with raw_file, lanes and run_time (ms) per frame.
        gt_path: TuSimple label JSON lines with raw_file, lanes and h_samples.

    Returns:
        {"accuracy": float, "fp": float, "fn": float}, means over the ground-truth frames.
    """
    ground_truth, gt_lines = {}, {}
    for line_number, record in tusimple_format.read_labels(gt_path):
        raw_file = record["raw_file"]
        if raw_file in ground_truth:
            raise ValueError(f"{gt_path}:{line_number}: frame {raw_file} is labelled twice (first "
                             f"at line {gt_lines[raw_file]})")
        ground_truth[raw_file] = record
        gt_lines[raw_file] = line_number
    if not ground_truth:
        raise ValueError(f"{gt_path}: no ground-truth frames")
    predictions = tusimple_format.read_predictions(pred_path)

    seen = set()
    accuracy, fp, fn = 0.0, 0.0, 0.0
    for line_number, pred in predictions:
        where = f"{pred_path}:{line_number}"
        raw_file = pred["raw_file"]
        if raw_file not in ground_truth:
            raise ValueError(f"{where}: frame {raw_file} does not exist in {gt_path}")
        if raw_file in seen:
            raise ValueError(f"{where}: frame {raw_file} is predicted more than once")
        seen.add(raw_file)
        gt = ground_truth[raw_file]
        try:
            a, p, n = bench_frame(pred["lanes"], gt["lanes"], gt["h_samples"], pred["run_time"])
        except ValueError as error:
            raise ValueError(f"{where}: frame {raw_file}: {error}") from None
        accuracy += a
        fp += p
        fn += n
    not_predicted = [raw_file for raw_file in ground_truth if raw_file not in seen]
    if not_predicted:
        raise ValueError(f"{pred_path}: We do not get the predictions of all the test tasks: "
                         f"{len(not_predicted)} frame(s) of {gt_path} missing, first "
                         f"{not_predicted[0]}")
    frames = len(ground_truth)
    return {"accuracy": accuracy / frames, "fp": fp / frames, "fn": fn / frames}


def main(argv=None):
    """Command line: print Accuracy, FP and FN (or the result dict as JSON with --json)."""
    parser = argparse.ArgumentParser(
        description="TuSimple lane metrics (official definition) of a prediction file.")
    parser.add_argument("pred", help="prediction JSON lines (raw_file, lanes, run_time)")
    parser.add_argument("gt", help="ground-truth JSON lines (raw_file, lanes, h_samples)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    try:
        result = evaluate(args.pred, args.gt)
    except (OSError, ValueError) as error:
        return support.report_error(error)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Accuracy: {result['accuracy']:.6f}")
        print(f"FP: {result['fp']:.6f}")
        print(f"FN: {result['fn']:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(support.run_main(main))
