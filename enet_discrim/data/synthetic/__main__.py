"""Writes synthetic datasets in native formats.

    python -m enet_discrim.data.synthetic tusimple --outdir DIR --count N --seed S [--split test]
        [--camera tusimple|culane|random]
    python -m enet_discrim.data.synthetic cityscapes --outdir DIR --count N --seed S --split train
"""
import argparse
import sys

from absl import logging

from enet_discrim.cli import support
from enet_discrim.data.synthetic import cityscapes, tusimple


def _non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _parser():
    parser = argparse.ArgumentParser(prog="python -m enet_discrim.data.synthetic",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="dataset", required=True)
    for name, help_text in (("tusimple", "TuSimple lane frames (clips/ + label_data_*.json)"),
                            ("cityscapes", "Cityscapes scenes (leftImg8bit/ + gtFine/)")):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--outdir", required=True, help="dataset root to write")
        command.add_argument("--count", type=_non_negative, required=True, help="frames to write")
        command.add_argument("--seed", type=_non_negative, default=0,
                             help="same seed, byte-identical files")
        command.add_argument("--overwrite", action="store_true",
                             help="replace existing files instead of refusing")
        command.add_argument("--log-every", type=_non_negative, default=100,
                             help="log progress every N frames (0: never)")
        if name == "tusimple":
            command.add_argument(
                "--split", choices=tusimple.SPLITS, default="train",
                help="train: label_data_*.json, 1%% of frames without lane markings; test: "
                     "test_label.json, every frame with lanes (the same frames otherwise)")
            command.add_argument(
                "--camera", choices=list(tusimple.CAMERAS), default="tusimple",
                help="the dashcam: TuSimple's (1280 x 720, TuSimple's layout), CULane's (1640 x "
                     "590, the car's hood and overlays in view, CULane's layout) or random ones "
                     "between and around the two (CULane's layout)")
        if name == "cityscapes":
            command.add_argument("--split", choices=cityscapes.SPLITS, default="train")
            command.add_argument("--width", type=int, default=1024)
            command.add_argument("--height", type=int, default=512)
    return parser


def main(argv=None):
    """Parses `argv` (default: sys.argv[1:]), writes the dataset and prints a one-line summary.

    Returns the process exit status.
    """
    args = _parser().parse_args(argv)
    logging.set_verbosity(logging.INFO)
    try:
        if args.dataset == "tusimple":
            paths = tusimple.generate(args.outdir, args.count, args.seed, args.split,
                                      overwrite=args.overwrite, log_every=args.log_every,
                                      camera=args.camera)
            summary = (f"tusimple: {args.count} {args.split} frames ({args.camera} camera), label "
                       f"files: {', '.join(p.name for p in paths) or 'none'} in {args.outdir}")
        else:
            paths = cityscapes.generate(args.outdir, args.count, args.seed, args.split,
                                        width=args.width, height=args.height,
                                        overwrite=args.overwrite, log_every=args.log_every)
            summary = (f"cityscapes: {len(paths)} {args.split} samples "
                       f"({args.width}x{args.height}) in {args.outdir}")
    except (ValueError, OSError) as error:
        return support.report_error(error)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(support.run_main(main))
