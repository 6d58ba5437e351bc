"""CULane's commands: `enet-discrim convert culane` and `enet-discrim eval culane`.

    python -m enet_discrim.data.culane --srcdir ROOT --list LIST --outdir OUT
    python -m enet_discrim.evaluation.culane --annotations ROOT --predictions OUT/culane_results \\
        --list LIST [--lane_width 30] [--iou 0.5] [--json] [--split_lists DIR]
"""

import json

from enet_discrim.cli import support

_SCORE_KEYS = ("tp", "fp", "fn", "precision", "recall", "f1")


def convert_main(argv):
    """`convert culane`: the converter's flags -> exit status."""
    parser = support.ArgumentParser(prog="enet-discrim convert culane",
                                    description="Convert the frames of a CULane list to TFRecords.")
    parser.add_argument("--srcdir", required=True, help="CULane root (frames, .lines.txt, list/)")
    parser.add_argument("--list", default=None,
                        help="list of frames to convert, as given or relative to --srcdir "
                             "(default: list/train_gt.txt)")
    parser.add_argument("--outdir", required=True, help="output folder for shards")
    parser.add_argument("--height", type=int, default=256, help="stored image height")
    parser.add_argument("--width", type=int, default=512, help="stored image width")
    parser.add_argument("--val_fraction", type=float, default=0.1, help="fraction of frames to val")
    parser.add_argument("--strict", action="store_true",
                        help="fail (writing nothing) if any list line or lane file is bad")
    args = parser.parse_args(argv)
    from enet_discrim.data import culane

    try:
        summary = culane.convert(args.srcdir, args.outdir, list_file=args.list,
                                 height=args.height, width=args.width,
                                 val_fraction=args.val_fraction, strict=args.strict)
    except ValueError as error:  # writer.BadInputError (--strict) is one too
        return support.report_error(error)
    counts = summary["counts"]
    print(f"written: train {counts['train']}, val {counts['val']}; skipped: {len(summary['skipped'])}"
          f" -> {args.outdir}")
    return support.EXIT_OK


def _score_line(scores):
    return (f"tp {scores['tp']}  fp {scores['fp']}  fn {scores['fn']}  precision "
            f"{scores['precision']:.4f}  recall {scores['recall']:.4f}  F1 {scores['f1']:.4f}")


def eval_main(argv):
    """`eval culane`: CULane's counts and F1 -> exit status."""
    from enet_discrim.evaluation import culane
    from enet_discrim.formats import culane as culane_format

    parser = support.ArgumentParser(
        prog="enet-discrim eval culane",
        description="CULane's lane metric (the official evaluator's counts) of predicted "
                    ".lines.txt files.")
    parser.add_argument("--annotations", required=True,
                        help="CULane root: the labelled .lines.txt beside the frames")
    parser.add_argument("--predictions", required=True,
                        help="predicted .lines.txt files in the frames' layout "
                             "(inference.py --format culane writes OUT/culane_results)")
    parser.add_argument("--list", default=None, help="list of the frames to score (paths relative "
                                                     "to both folders)")
    parser.add_argument("--split_lists", default=None,
                        help="folder of CULane's category lists (test0_normal.txt ... "
                             "test8_night.txt): one row per category")
    parser.add_argument("--lane_width", type=int, default=culane.LANE_WIDTH,
                        help="lane width in pixels on the canvas")
    parser.add_argument("--iou", type=float, default=culane.IOU_THRESHOLD,
                        help="a matched lane is a true positive above this IoU")
    parser.add_argument("--width", type=int, default=culane_format.FRAME_WIDTH,
                        help="canvas width the lanes are drawn on")
    parser.add_argument("--height", type=int, default=culane_format.FRAME_HEIGHT,
                        help="canvas height the lanes are drawn on")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes scoring frames (default: one per CPU)")
    parser.add_argument("--json", action="store_true",
                        help="end with one line: a JSON object of the counts and scores")
    args = parser.parse_args(argv)
    if args.list is None and args.split_lists is None:
        return support.report_error(f"{parser.prog}: give --list, --split_lists or both")
    settings = dict(lane_width=args.lane_width, iou=args.iou, width=args.width,
                    height=args.height, workers=args.workers)
    try:
        categories = {}
        if args.split_lists is not None:
            for category, path in culane.category_lists(args.split_lists):
                categories[category] = culane.evaluate(args.annotations, args.predictions, path,
                                                       **settings)
        if args.list is not None:
            result = culane.evaluate(args.annotations, args.predictions, args.list, **settings)
        else:
            total = culane.Counts()
            for scores in categories.values():
                total += culane.Counts(scores["tp"], scores["fp"], scores["fn"])
            result = {**total.scores(), "frames": sum(s["frames"] for s in categories.values())}
    except ValueError as error:
        return support.report_error(error)
    for category, scores in categories.items():
        # CULane's crossroad frames have no labelled lane: only their false positives count.
        shown = f"fp {scores['fp']}" if category == "cross" else _score_line(scores)
        print(f"{category:<8} {scores['frames']:>6} frames  {shown}")
    if categories:
        print(f"{'total':<8} {result['frames']:>6} frames  {_score_line(result)}")
    else:
        print(f"{result['frames']} frames: {_score_line(result)}")
    if args.json:
        output = {key: result[key] for key in _SCORE_KEYS}
        output["frames"] = result["frames"]
        if categories:
            output["categories"] = {category: {key: scores[key] for key in _SCORE_KEYS}
                                    for category, scores in categories.items()}
        print(json.dumps(output))
    return support.EXIT_OK


def run_convert(argv=None):
    """`python -m enet_discrim.data.culane`: converts; returns the exit status."""
    return support.run_main(convert_main, argv, tensorflow=True)


def run_eval(argv=None):
    """`python -m enet_discrim.evaluation.culane`: scores; returns the exit status."""
    return support.run_main(eval_main, argv)
