"""What every command line of the package shares: exit codes, the one-line error, a quiet start.

Exit status of the commands (`enet-discrim ...`, `training.py`, the `python -m` tools):

- 0 (`EXIT_OK`): done;
- 1 (`EXIT_FAILED`): the input was usable but the work failed (training diverged; the output
  could not be written to a closed pipe);
- 2 (`EXIT_BAD_INPUT`): bad input: a flag, file or data the command cannot use. It is the code
  argparse already exits with for a bad flag, so a wrong flag and a wrong file read the same;
- 130 (`EXIT_INTERRUPTED`): Ctrl-C, reported in one line (`INTERRUPTED_MESSAGE`).

An error is one line on stderr, `error: <message>` (`report_error`); the message names the file
and the problem. TensorFlow writes about ten lines of C++ start-up log (oneDNN, CUDA,
cpu_feature_guard, absl pre-initialisation) to stderr when it is imported; `quiet_startup` imports
it with those lines held back unless `--verbose` is among the arguments.
"""

import argparse
import difflib
import os
import re
import sys
import tempfile

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: Ctrl-C: 128 + SIGINT, as shells report a process interrupted so.
EXIT_INTERRUPTED = 130
#: What an interrupted command says: its outputs are written atomically and training resumes.
INTERRUPTED_MESSAGE = "interrupted; nothing lost: run again to resume"

VERBOSE_FLAG = "--verbose"
_ABSL_HELP_FLAGS = {"-?", "--help", "--helpshort", "--helpfull", "--helpxml"}

# TensorFlow's C++ log threshold after start-up: 1 drops its INFO lines (device creation, XLA
# service, end-of-sequence rendezvous) and keeps warnings and errors. A value the user exported
# is kept.
TF_LOG_LEVEL = "1"

# Start-up lines that say nothing about this run: what TensorFlow prints on every machine while it
# loads (on a machine without a GPU: "no CUDA driver", which is expected). Anything else it prints
# then (a Python warning, a GPU library that failed to load) is passed on.
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|oneDNN custom operations are on"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|^To enable the following instructions: .*rebuild TensorFlow"
    r"|Could not find cuda drivers on your machine"
    r"|failed call to cuInit"
    r"|Unable to register cu(?:DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
)
# A C++ log line at INFO severity, in absl's format ("I0000 00:00:17...  123 file.cc:45] ...") or
# TensorFlow's own older one ("2024-01-31 12:00:00.000000: I tensorflow/...cc:45] ...").
_INFO_LINE = re.compile(r"^(?:I\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ |\d{4}-\d\d-\d\d [\d:.]+: I )\S+:\d+\] ")


def one_line(message):
    """`message` (an exception or text) on one line: its first line, then the others after "; "."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if not lines:
        return type(message).__name__ if isinstance(message, BaseException) else ""
    return " ".join([lines[0], "; ".join(lines[1:])]).strip()


def report_error(error, code=EXIT_BAD_INPUT):
    """Writes `error: <message>` as one line to stderr and returns `code` for the caller to exit with.

    Args:
        error: the exception (or the message) to report; a multi-line message is joined into one
            line (`one_line`).
        code: `EXIT_BAD_INPUT` (the default) or `EXIT_FAILED`.

    Returns:
        `code`.
    """
    print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
    return code


def strip_verbose(argv):
    """Returns (`argv` without `--verbose`, whether it was there)."""
    argv = list(argv)
    return [arg for arg in argv if arg != VERBOSE_FLAG], VERBOSE_FLAG in argv


def quiet_startup(argv, tensorflow=True):
    """Imports TensorFlow without its C++ start-up log, unless `--verbose` is in `argv`.

    Call it before anything imports TensorFlow: the start-up lines are written while it loads.
    Lines that are not known start-up noise are passed on to stderr, and if the import fails
    everything it wrote is. With `--verbose` nothing is changed.

    Args:
        argv: the command's arguments.
        tensorflow: False for a command that does not use TensorFlow: only `--verbose` is removed.

    Returns:
        `argv` without `--verbose`, for the command's own parser.
    """
    argv, verbose = strip_verbose(argv)
    if tensorflow and not verbose and "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
        _import_tensorflow_quietly()
    return argv


def _import_tensorflow_quietly():
    """Imports TensorFlow with file descriptor 2 (C++ and Python writes alike) sent to a file.

    Afterwards the lines that are not start-up noise are written to stderr; all of them if the
    import failed, so that the failure keeps its explanation.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            import tensorflow as tf

            # Looking for GPUs loads the CUDA driver, which logs (or fails to, on a machine
            # without one) now rather than at the first operation. The runtime is not
            # initialised by this: thread and memory-growth settings can still be made.
            tf.config.list_physical_devices()
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = sink.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if failed or not is_startup_noise(line)))
            sys.stderr.flush()


def is_startup_noise(line):
    """Whether a line TensorFlow wrote while it loaded is noise: an INFO line or a known one."""
    return bool(_INFO_LINE.match(line) or _STARTUP_NOISE.search(line))


def run_main(main, argv=None, tensorflow=False):
    """Runs a command's `main(argv) -> exit status` the way every command runs.

    `--verbose` is removed from `argv` and decides the TensorFlow start-up log (`quiet_startup`);
    output to a pipe that closed early (`... | head`) ends the command with `EXIT_FAILED` instead
    of a BrokenPipeError traceback; Ctrl-C and file-system failures are one line
    (`failure_status`).

    Args:
        main: the command's function: the argument list (no program name) -> exit status.
        argv: the arguments; default `sys.argv[1:]`.
        tensorflow: whether the command uses TensorFlow.

    Returns:
        The exit status.
    """
    try:
        argv = quiet_startup(sys.argv[1:] if argv is None else argv, tensorflow=tensorflow)
        status = main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_FAILED
    except BaseException as error:
        status = failure_status(error)
        if status is None:
            raise
    return status


def interrupted(error):
    """Whether `error` is Ctrl-C, or an error raised while handling it: interrupted during
    start-up, TensorFlow's import fails with an ImportError whose context is the
    KeyboardInterrupt."""
    seen = set()
    while error is not None and id(error) not in seen:  # a chain may loop back on itself
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def storage_failure(error):
    """The one-line message of a failure of the file system under a command, or None.

    An OSError (no space left, permission denied, a read-only file system, ...) says
    `PATH: reason`; so do TensorFlow's file errors (a TFRecord or checkpoint writer on a full
    disk raises `ResourceExhaustedError`, one without permission `PermissionDeniedError`), which
    read "PATH; reason".
    """
    if isinstance(error, OSError):
        paths = [path for path in (error.filename, error.filename2) if path is not None]
        reason = error.strerror or str(error)
        return f"{' -> '.join(map(str, paths))}: {reason}" if paths else reason
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, (tf.errors.ResourceExhaustedError,
                                             tf.errors.PermissionDeniedError)):
        # "{{function_node ...}} PATH; reason [Op:SaveV2] name: ...": the first line, without the
        # op's decoration.
        message = (error.message.strip().splitlines() or [""])[0]
        message = re.sub(r"\s*\[Op:\w+\].*$", "", re.sub(r"^\{\{[^}]*\}\}\s*", "", message))
        path, _, reason = message.partition("; ")
        return f"{path}: {reason}" if reason else message
    return None


def failure_status(error):
    """Reports a command's uncaught `error` in one line when it is one every command shares:
    Ctrl-C (`EXIT_INTERRUPTED`) or a file-system failure (`storage_failure`, `EXIT_FAILED`: the
    input was usable; outputs are written atomically, so what was there before is intact).

    Returns:
        The exit status, or None for another error (the caller re-raises it) and for SystemExit.
    """
    if isinstance(error, SystemExit):
        return None
    if interrupted(error):
        return report_error(INTERRUPTED_MESSAGE, EXIT_INTERRUPTED)
    message = storage_failure(error)
    if message is not None:
        return report_error(message, EXIT_FAILED)
    return None


def _silence_stdout():
    """Points stdout at /dev/null after its pipe closed: Python flushes stdout again at exit, and
    would fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def run_absl_command(main, flags_module, argv=None):
    """Runs an absl command: `main(argv)` with the flags that module `flags_module` defined.

    `--verbose` is removed and decides the TensorFlow start-up log (`quiet_startup`; TensorFlow
    is not loaded for --help). `--help` lists `flags_module`'s flags under a usage line naming
    the command, and exits 0 (absl lists the flags of the program's main module, which defines
    none, and exits 1). A bad flag is one `report_error` line with `EXIT_BAD_INPUT`, where
    `absl.app.run`'s own parser prints a "FATAL Flags parsing error" and a hint and exits 1.
    Flags are reset to their defaults before parsing, so that a second run in one process sees
    only its own. Does not return: exits with `main`'s status.

    Args:
        main: the absl main: the arguments left after the flags (program name first) -> status.
        flags_module: the name of the module that defines the command's flags.
        argv: the command line, program name first; default `sys.argv`.
    """
    from absl import app, flags

    argv = list(sys.argv if argv is None else argv)
    asked_for_help = _ABSL_HELP_FLAGS.intersection(argv[1:])
    argv[1:] = quiet_startup(argv[1:], tensorflow=not asked_for_help)
    if asked_for_help:
        # absl's own --help exits 1 and names the program without its command.
        listing = (str(flags.FLAGS) if "--helpfull" in asked_for_help
                   else flags.FLAGS.module_help(flags_module))
        try:
            print(f"usage: {argv[0]} [--flag=value ...] [{VERBOSE_FLAG}]\n\n{listing}",
                  flush=True)
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(EXIT_FAILED)
        sys.exit(EXIT_OK)
    for flag in flags.FLAGS.flags_by_module_dict().get(flags_module, []):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)

    def parse(arguments):
        flags.FLAGS.unparse_flags()
        try:
            return flags.FLAGS(arguments)
        except flags.Error as error:
            sys.exit(report_error(error))

    try:
        app.run(main, argv=argv, flags_parser=parse)
    except BaseException as error:
        status = failure_status(error)
        if status is None:
            raise
        sys.exit(status)


class ArgumentParser(argparse.ArgumentParser):
    """argparse as every command reports: a bad flag is one `error: PROG: message` line, exit
    `EXIT_BAD_INPUT`, with the nearest known flag for a mistyped one (argparse prints its usage
    first, over several lines)."""

    def error(self, message):
        match = re.match(r"unrecognized arguments: (\S+)", message)
        if match and match[1].startswith("-"):
            known = [option for action in self._actions for option in action.option_strings]
            close = difflib.get_close_matches(match[1].split("=")[0], known, n=1)
            if close:
                message += f" (did you mean {close[0]}?)"
        sys.exit(report_error(f"{self.prog}: {message}"))
