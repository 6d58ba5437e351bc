"""`enet-discrim tune`: a lane model's post-processing chosen on labelled frames.

    enet-discrim tune --modeldir trained_model --tusimple VAL/test_label.json \\
        --culane CULANE/list/val.txt [--dry_run]
"""

from enet_discrim.cli import support


def _result_line(metric, result):
    if metric == "tusimple":
        return (f"accuracy {result['accuracy']:.4f}  FP {result['fp']:.4f}  FN {result['fn']:.4f}"
                f"  (F1 {result['score']:.4f})")
    return (f"tp {result['tp']}  fp {result['fp']}  fn {result['fn']}  F1 {result['f1']:.4f}")


def main(argv):
    """`tune`: flags -> exit status."""
    from enet_discrim.evaluation import tuning

    parser = support.ArgumentParser(
        prog="enet-discrim tune",
        description="Choose a lane model's post-processing settings on labelled frames and write "
                    "them to its config.json.")
    parser.add_argument("--modeldir", required=True, help="the lane model folder to tune")
    parser.add_argument("--tusimple", action="append", default=[], metavar="LABELS",
                        help="a TuSimple label file (frames relative to its folder); repeatable")
    parser.add_argument("--culane", action="append", default=[], metavar="LIST",
                        help="a CULane list file (ROOT/list/NAME.txt; frames relative to ROOT); "
                             "repeatable")
    parser.add_argument("--tolerance", type=float, default=tuning.DEFAULT_TOLERANCE,
                        help="worst-set scores this close to the best count as ties, and the "
                             "candidate changing the fewest settings wins")
    parser.add_argument("--top", type=int, default=5, help="candidates to list")
    parser.add_argument("--dry_run", action="store_true",
                        help="print the chosen settings; leave config.json as it is")
    args = parser.parse_args(argv)
    from enet_discrim import model_dir
    from enet_discrim.predictor import Predictor

    try:
        frame_sets = ([tuning.tusimple_set(path) for path in args.tusimple]
                      + [tuning.culane_set(path) for path in args.culane])
        if not frame_sets:
            raise ValueError("give at least one labelled frame set: --tusimple LABELS or "
                             "--culane LIST")
        predictor = Predictor(args.modeldir)
        found = tuning.tune(predictor, frame_sets, tolerance=args.tolerance)
    except ValueError as error:
        return support.report_error(error)
    names = sorted(tuning.DEFAULT_GRID)
    print(f"{len(found['ranked'])} candidates on {len(frame_sets)} frame set(s); best first "
          "(worst set's score, mean):")
    for settings, _, worst, mean in found["ranked"][:args.top]:
        values = ", ".join(f"{name}={getattr(settings, name)}" for name in names)
        print(f"  {worst:.4f}  {mean:.4f}  {values}")
    base, chosen = found["base"], found["chosen"]
    for frame_set, before, after in zip(frame_sets, found["base_results"],
                                        found["chosen_results"]):
        print(f"{frame_set.name} ({len(frame_set.frames)} frames, {frame_set.metric}):")
        print(f"  now:    {_result_line(frame_set.metric, before)}")
        print(f"  chosen: {_result_line(frame_set.metric, after)}")
    changes = {name: getattr(chosen, name) for name in names
               if getattr(chosen, name) != getattr(base, name)}
    if not changes:
        print("The model's settings are kept: no candidate does better on every set.")
        return support.EXIT_OK
    shown = " ".join(f"{name}={value}" for name, value in changes.items())
    if args.dry_run:
        print(f"Would set {shown} (--dry_run: config.json unchanged)")
        return support.EXIT_OK
    model_dir.write_settings(args.modeldir, chosen)
    print(f"Set {shown} in {args.modeldir}/{model_dir.CONFIG_FILE}")
    return support.EXIT_OK


def run(argv=None):
    """`python -m enet_discrim.evaluation.tuning`; returns the exit status."""
    return support.run_main(main, argv, tensorflow=True)
