"""Cityscapes instance-level AP / AP50 of a results folder, with the official evaluator.

The results layout (a `<stem>.txt` per frame listing `masks/<stem>_<k>.png labelId confidence`)
and its writer belong to `enet_discrim.formats.cityscapes`; this module's earlier names for them
(`write_cityscapes_results`, `is_result_stem`, `instance_confidences`, `MASKS_FOLDER`) are kept
as aliases. `evaluate` runs the official evaluator (through `cityscapes_compat`, which makes it work
under NumPy 2) with the gtFine instanceIds of a split as ground truth: the whole split (every frame
must have results), only the frames that have results (`only_predicted`), or the frames of some
cities.

    python -m enet_discrim.evaluation.cityscapes --dataset CITYSCAPES_DIR --results RESULTS_DIR
        [--only_predicted] [--cities CITY[,CITY...]]
"""

import argparse
import copy
import glob
import json
import math
import os
import sys
import tempfile

from absl import logging

from enet_discrim.cli import support
from enet_discrim.evaluation.cityscapes_compat import (CityscapesEvaluationError,
                                                       official_instance_evaluator)
from enet_discrim.formats import cityscapes as cityscapes_format
# Public names of this module before the format had its own (kept for their callers).
from enet_discrim.formats.cityscapes import MASKS_FOLDER, instance_confidences  # noqa: F401
from enet_discrim.formats.cityscapes import is_result_stem  # noqa: F401
from enet_discrim.formats.cityscapes import write_results as write_cityscapes_results  # noqa: F401

THING_TRAIN_IDS = cityscapes_format.THING_TRAIN_IDS


def select_ground_truth(dataset_dir, results_dir, split="val", only_predicted=False,
                        cities=None):
    """The ground truth frames to score, and a line saying which they are.

    A frame has results when the results folder holds (anywhere below it) a
    `<city>_<seq>_<frame>*.txt`, the file the official evaluator's `getPrediction` looks for.

    Args:
        dataset_dir: Cityscapes root holding `gtFine/<split>/<city>/*_gtFine_instanceIds.png`.
        results_dir: folder of results (`formats.cityscapes.write_results`).
        split: gtFine split, normally "val".
        only_predicted: only the frames that have results (at least one).
        cities: city folder names to keep (e.g. ["frankfurt", "lindau"]); None: all.

    Returns:
        (sorted list of instanceIds paths, str such as "Scored the whole val split: 500 frames.").

    Raises:
        ValueError: no ground truth, a missing results folder, a city not in the split; with
            `only_predicted`, no frame with results.
        CityscapesEvaluationError: without `only_predicted`, a frame without results (naming it and
            counting the others).
    """
    search = cityscapes_format.ground_truth_pattern(dataset_dir, split)
    ground_truth = sorted(glob.glob(search))
    if not ground_truth:
        raise ValueError(f"no ground truth found: nothing matches {search}")
    if not os.path.isdir(results_dir):
        raise ValueError(f"results folder {results_dir} does not exist")
    what = f"the whole {split} split"
    if cities is not None:
        available = sorted({_city(path) for path in ground_truth})
        unknown = [city for city in cities if city not in available]
        if unknown or not cities:
            raise ValueError(f"--cities: {', '.join(unknown) or 'none given'} not among the "
                             f"{split} cities of {dataset_dir}: {', '.join(available)}")
        ground_truth = [path for path in ground_truth if _city(path) in cities]
        what = f"{split} cities {', '.join(cities)}"
    result_files = [name for _, _, files in os.walk(results_dir) for name in files
                    if name.endswith(".txt")]
    matches = {path: cityscapes_format.result_names(path, result_files)
               for path in ground_truth}
    predicted = [path for path in ground_truth if matches[path]]
    if only_predicted:
        if not predicted:
            raise ValueError(f"no frame of {what} has results in {results_dir} (a "
                             "<city>_<seq>_<frame>*.txt)")
        matched = {name for path in predicted for name in matches[path]}
        unmatched = sorted(name for name in result_files if name not in matched)
        if unmatched:
            logging.warning("%d result file(s) in %s match no ground truth of %s, e.g. %s",
                            len(unmatched), results_dir, what, unmatched[0])
        return predicted, (f"Scored the {len(predicted)} predicted frames (of "
                           f"{len(ground_truth)} in {what}).")
    missing = [path for path in ground_truth if not matches[path]]
    if missing:
        raise CityscapesEvaluationError(
            f"Found no prediction for ground truth {missing[0]}: {len(missing)} of the "
            f"{len(ground_truth)} frames of {what} have no results in {results_dir}; "
            "--only_predicted scores the predicted frames only, --cities some cities")
    return ground_truth, f"Scored {what}: {len(ground_truth)} frames."


def _city(ground_truth_path):
    return os.path.basename(os.path.dirname(ground_truth_path))


def evaluate(dataset_dir, results_dir, split="val", only_predicted=False, cities=None):
    """Official Cityscapes instance AP of a results folder.

    Args:
        dataset_dir: Cityscapes root holding `gtFine/<split>/<city>/*_gtFine_instanceIds.png`.
        results_dir: folder of results (`formats.cityscapes.write_results`), one .txt per ground
            truth.
        split: gtFine split to evaluate, normally "val".
        only_predicted, cities: which frames to score (`select_ground_truth`); by default all of
            the split, each of which must have results.

    Returns:
        {"ap": float, "ap50": float, "classes": {name: {"ap": float, "ap50": float}},
        "frames": int, "scored": str}; AP averages overlaps 0.5:0.95, AP50 is at overlap 0.5; a
        class without ground truth or predictions in the scored frames is NaN and left out of the
        averages (official behaviour); "frames" counts the scored frames, "scored" says which
        they are (`select_ground_truth`).
    """
    ground_truth, scored = select_ground_truth(dataset_dir, results_dir, split, only_predicted,
                                               cities)
    logging.info("Evaluating %d %s images against %s", len(ground_truth), split, results_dir)
    with tempfile.TemporaryDirectory() as scratch_dir, \
            official_instance_evaluator(scratch_dir) as evaluator:
        args = copy.copy(evaluator.args)
        args.cityscapesPath = os.path.abspath(dataset_dir)
        args.groundTruthSearch = cityscapes_format.ground_truth_pattern(dataset_dir, split)
        args.predictionPath = os.path.abspath(results_dir)
        args.predictionWalk = None
        # A fresh cache: the default one lives inside the installed package and is never
        # invalidated when the ground truth changes.
        args.gtInstancesFile = os.path.join(scratch_dir, "gtInstances.json")
        args.exportFile = os.path.join(scratch_dir, "resultInstanceLevelSemanticLabeling.json")
        args.JSONOutput = False
        args.quiet = True
        args.instLabels = []
        try:
            predictions = [evaluator.getPrediction(gt, args) for gt in ground_truth]
            for text_path, gt_path in zip(predictions, ground_truth):
                check_prediction_file(text_path, gt_path)
            result = evaluator.evaluateImgLists(predictions, ground_truth, args)
        except SystemExit as error:  # a helper outside the patched module gave up
            raise CityscapesEvaluationError(f"official evaluator exited: {error}") from None
    averages = result["averages"]
    return {
        "ap": float(averages["allAp"]),
        "ap50": float(averages["allAp50%"]),
        "classes": {name: {"ap": float(values["ap"]), "ap50": float(values["ap50%"])}
                    for name, values in averages["classes"].items()},
        "frames": len(ground_truth),
        "scored": scored,
    }


def check_prediction_file(text_path, gt_path):
    """Checks what the official evaluator would meet with a traceback naming no file: each line's
    mask must be a readable image of the ground truth's size, its label id and confidence numbers.
    (Lines that are not `mask labelId confidence` are left to the evaluator, which names them.)

    Args:
        text_path: a results `<stem>.txt`.
        gt_path: the `*_gtFine_instanceIds.png` it is evaluated against.

    Raises:
        CityscapesEvaluationError: `TEXT:LINE: reason`.
    """
    from PIL import Image  # the official evaluator's image reader; reads only the header here

    with Image.open(gt_path) as gt_image:
        gt_width, gt_height = gt_image.size
    with open(text_path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split(" ")
            if len(fields) != 3:
                continue
            where = f"{text_path}:{number}"
            try:
                int(float(fields[1]))
                float(fields[2])
            except ValueError:
                raise CityscapesEvaluationError(
                    f"{where}: label id and confidence must be numbers, got {line.strip()!r}"
                ) from None
            mask_path = os.path.join(os.path.dirname(text_path), fields[0])
            try:
                with Image.open(mask_path) as mask:
                    width, height = mask.size
            except FileNotFoundError:
                raise CityscapesEvaluationError(f"{where}: mask {mask_path} not found") from None
            except OSError:  # PIL.UnidentifiedImageError included
                raise CityscapesEvaluationError(
                    f"{where}: mask {mask_path} is not a readable image") from None
            if (width, height) != (gt_width, gt_height):
                raise CityscapesEvaluationError(
                    f"{where}: mask {mask_path} is {width}x{height} but the ground truth "
                    f"{gt_path} is {gt_width}x{gt_height}")


def format_results(result):
    """The AP table as text: one row per class, then the average."""
    rows = [f"{'class':<12}{'AP':>8}{'AP50':>8}"]
    for name, values in result["classes"].items():
        rows.append(f"{name:<12}{values['ap']:>8.3f}{values['ap50']:>8.3f}")
    rows.append(f"{'average':<12}{result['ap']:>8.3f}{result['ap50']:>8.3f}")
    return "\n".join(rows)


def _city_list(text):
    return [city.strip() for city in text.split(",") if city.strip()]


def main(argv=None):
    """Command line: evaluate a results folder and print which frames were scored, then AP and
    AP50 per class."""
    parser = argparse.ArgumentParser(
        description="Cityscapes instance AP / AP50 with the official evaluator.")
    parser.add_argument("--dataset", required=True,
                        help="Cityscapes root (with gtFine/<split>/<city>/...instanceIds.png)")
    parser.add_argument("--results", required=True, help="results folder (<stem>.txt + masks)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--only_predicted", action="store_true",
                        help="score only the frames that have results (default: the whole split, "
                             "each frame of which must have results)")
    parser.add_argument("--cities", type=_city_list, metavar="CITY[,CITY...]",
                        help="score only the frames of these cities")
    parser.add_argument("--json", action="store_true",
                        help="print the result dict as JSON (the scored-frames line goes to "
                             "stderr)")
    args = parser.parse_args(argv)
    try:
        result = evaluate(args.dataset, args.results, args.split,
                          only_predicted=args.only_predicted, cities=args.cities)
    except (OSError, ValueError) as error:
        return support.report_error(error)
    if args.json:
        print(result["scored"], file=sys.stderr)
        # NaN (classes absent everywhere) as null, so that the output is valid JSON.
        print(json.dumps(_nan_to_none(result)))
    else:
        print(result["scored"])
        print(format_results(result))
    return 0


def _nan_to_none(tree):
    if isinstance(tree, dict):
        return {key: _nan_to_none(value) for key, value in tree.items()}
    return None if isinstance(tree, float) and math.isnan(tree) else tree


if __name__ == "__main__":
    sys.exit(support.run_main(main))
