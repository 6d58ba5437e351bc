"""`enet-discrim`: one installed command for every tool of the package.

    enet-discrim COMMAND [ARGS ...] [--verbose]

Each command hands its arguments unchanged to an existing entry point, so that
`enet-discrim train --srcdir data` is `python training.py --srcdir data` and
`enet-discrim convert tusimple ARGS` is `python -m enet_discrim.data.tusimple ARGS`. The launcher
imports only the module of the command it runs. Exit codes and the one-line error are `enet_discrim.cli.support`'s.
"""

import dataclasses
import importlib
import sys

from enet_discrim.cli import support

PROG = "enet-discrim"


@dataclasses.dataclass(frozen=True)
class Target:
    """An entry point: `module.function(argv)`; `tensorflow` says whether it imports TensorFlow.

    `absl` marks an absl app (`function` gets the program name first and exits itself); the
    others return their exit status.
    """

    module: str
    tensorflow: bool
    function: str = "main"
    absl: bool = False


@dataclasses.dataclass(frozen=True)
class Command:
    """A subcommand: one line of help and its entry point, or one per dataset (`convert tusimple`)."""

    summary: str
    target: Target | None = None
    datasets: dict = dataclasses.field(default_factory=dict)


COMMANDS = {
    "train": Command("train a model (the flags of training.py)",
                     Target("enet_discrim.cli.train", True, "run", absl=True)),
    "infer": Command("run a model on frames or a video (the flags of inference.py)",
                     Target("enet_discrim.cli.infer", True, "run", absl=True)),
    "convert": Command("convert a dataset to TFRecords: convert tusimple|culane|cityscapes ...",
                       datasets={"tusimple": Target("enet_discrim.data.tusimple", True),
                                 "culane": Target("enet_discrim.cli.culane", True, "convert_main"),
                                 "cityscapes": Target("enet_discrim.data.cityscapes", True)}),
    "eval": Command("score results with the official metric: eval tusimple|culane|cityscapes ...",
                    datasets={"tusimple": Target("enet_discrim.evaluation.tusimple", False),
                              "culane": Target("enet_discrim.cli.culane", False, "eval_main"),
                              "cityscapes": Target("enet_discrim.evaluation.cityscapes", False)}),
    "export": Command("export a model folder as a SavedModel or a TFLite model",
                      Target("enet_discrim.cli.export", True)),
    "merge": Command("merge converted record folders into one --srcdir",
                     Target("enet_discrim.cli.merge", True)),
    "tune": Command("choose a lane model's post-processing settings on labelled frames",
                    Target("enet_discrim.cli.tune", True)),
    "benchmark": Command("time the network, loss, training, clustering and inference",
                         Target("enet_discrim.benchmark.__main__", True)),
    "generate": Command("render a synthetic dataset: generate tusimple|cityscapes ...",
                        Target("enet_discrim.data.synthetic.__main__", False)),
    "model": Command("show or change a model folder's settings: model show|set FOLDER ...",
                     Target("enet_discrim.model_dir", False)),
    "label-stats": Command("statistics of TuSimple label files, one set or two side by side",
                           Target("enet_discrim.data.label_stats", False)),
}

def usage():
    """The text of `enet-discrim --help`: every command with its one line."""
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} COMMAND [ARGS ...] [--verbose]", "",
             "ENet + discriminative loss: lane detection (TuSimple) and instance segmentation "
             "(Cityscapes).", "", "commands:"]
    lines += [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    lines += ["",
              f"`{PROG} COMMAND --help` lists a command's flags. --verbose keeps TensorFlow's "
              "start-up log.",
              f"Exit status: {support.EXIT_OK} done, {support.EXIT_FAILED} the work failed, "
              f"{support.EXIT_BAD_INPUT} bad input (a flag, file or data the command cannot use)."]
    return "\n".join(lines)


def main(argv=None):
    """Runs `enet-discrim COMMAND ARGS` (`argv` without the program name; default sys.argv[1:]).

    Returns the command's exit status; absl commands (`train`, `infer`) and argparse's --help and
    flag errors exit themselves (SystemExit).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    words = [arg for arg in argv if arg != support.VERBOSE_FLAG]
    if not words or words[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if words else sys.stderr)
        return support.EXIT_OK if words else support.EXIT_BAD_INPUT
    name = words[0]
    command = COMMANDS.get(name)
    if command is None:
        return support.report_error(
            f"unknown command {name!r}: choose one of {', '.join(COMMANDS)} (see {PROG} --help)")
    rest = argv[argv.index(name) + 1:]
    prog = f"{PROG} {name}"
    target = command.target
    if command.datasets:
        dataset = next((arg for arg in rest if arg != support.VERBOSE_FLAG), None)
        choices = " or ".join(command.datasets)
        if dataset in ("-h", "--help"):
            print(f"usage: {prog} {'|'.join(command.datasets)} [ARGS ...]\n\n{command.summary}\n"
                  f"`{prog} DATASET --help` lists the flags of one.")
            return support.EXIT_OK
        if dataset not in command.datasets:
            found = f"got {dataset!r}" if dataset else "got none"
            return support.report_error(f"{prog} needs a dataset, {choices}: {found}")
        rest.remove(dataset)
        prog = f"{prog} {dataset}"
        target = command.datasets[dataset]
    return _run(target, prog, rest)


def _run(target, prog, argv):
    if target.absl:  # `support.run_absl_command` starts them quietly itself, after --help or not
        module = importlib.import_module(target.module)
        return getattr(module, target.function)([prog] + argv)
    # The module is imported after the quiet start: some import TensorFlow as they load.
    argv = support.quiet_startup(argv, tensorflow=target.tensorflow)
    module = importlib.import_module(target.module)
    return support.run_main(getattr(module, target.function), argv)
