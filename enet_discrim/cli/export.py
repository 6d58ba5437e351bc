"""`enet-discrim export` and `python -m enet_discrim.export`: a model folder as a SavedModel or a
TFLite model folder (`enet_discrim.export`)."""

from enet_discrim.cli import support


def main(argv):
    """`export`: flags -> exit status."""
    from enet_discrim import export

    parser = support.ArgumentParser(prog="python -m enet_discrim.export",
                                    description=export.__doc__.split("\n")[0])
    parser.add_argument("--modeldir", required=True, help="folder with model.keras and config.json")
    parser.add_argument("--outdir", required=True,
                        help="SavedModel folder, or model folder for model.tflite and config.json")
    parser.add_argument("--format", choices=export.FORMATS, default="saved_model")
    parser.add_argument("--quantize", choices=export.QUANTIZE_MODES, default="none",
                        help="TFLite weights and arithmetic: float32 (none), float16 weights, or "
                             "full-integer int8 calibrated on synthetic frames")
    parser.add_argument("--calibration_frames", type=int, default=export.CALIBRATION_FRAMES,
                        help="synthetic frames int8 calibrates on")
    args = parser.parse_args(argv)
    try:
        path = export.export(args.modeldir, args.outdir, args.format, args.quantize,
                             args.calibration_frames)
    except ValueError as error:
        return support.report_error(error)
    quantized = f" ({args.quantize})" if args.format == "tflite" else ""
    print(f"Exported {args.format}{quantized} to {path}")
    return support.EXIT_OK


def run(argv=None):
    """The command line `argv` (default `sys.argv[1:]`) -> exit status."""
    return support.run_main(main, argv, tensorflow=True)
