"""The `enet-discrim` command: dispatch, help, the one-line error with exit 2, a quiet start."""
import errno
import filecmp
import importlib.metadata
import json
import os
import re
import subprocess
import sys

import pytest

from enet_discrim import cli
from enet_discrim.cli import support

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINED_MODEL = os.path.join(REPO, "trained_model")
H_SAMPLES = list(range(160, 720, 10))
ONE_LINE_ERROR = re.compile(r"error: [^\n]+\n")


def _environment():
    """The subprocess environment: this checkout first, TensorFlow's log level not preset."""
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    return environment


def _write_lines(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


def test_help_lists_the_seven_commands_with_one_line_each(capsys):
    assert cli.main(["--help"]) == 0
    listed = {}
    for line in capsys.readouterr().out.splitlines():
        match = re.fullmatch(r"  (\S+)\s{2,}(\S.*)", line)
        if match:
            listed[match.group(1)] = match.group(2)
    for name in ("train", "infer", "convert", "eval", "export", "benchmark", "generate"):
        assert listed.get(name), f"{name} is not listed with a summary"


def test_no_command_prints_the_help_to_stderr_and_exits_2(capsys):
    assert cli.main([]) == support.EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == "" and "  train " in captured.err


@pytest.mark.parametrize("argv, named", [
    (["frobnicate", "--outdir", "x"], "'frobnicate'"),
    (["convert"], "got none"),
    (["eval", "kitti", "a.json"], "'kitti'"),
])
def test_unknown_command_or_dataset_is_one_line_error_exit_2(argv, named, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert ONE_LINE_ERROR.fullmatch(captured.err) and named in captured.err
    assert captured.out == ""


def test_generate_tusimple_writes_what_the_generator_writes(tmp_path):
    from enet_discrim.data.synthetic import tusimple

    assert cli.main(["generate", "tusimple", "--outdir", str(tmp_path / "cli"), "--count", "2", "--seed", "3",
                     "--log-every", "0"]) == 0
    tusimple.generate(str(tmp_path / "direct"), 2, 3, "train", log_every=0)
    frames = sorted(str(path.relative_to(tmp_path / "cli")) for path in (tmp_path / "cli").rglob("*.jpg"))
    assert len(frames) == 2
    direct = [str(path.relative_to(tmp_path / "direct")) for path in (tmp_path / "direct").rglob("*")]
    names = [path for path in direct if os.path.isfile(tmp_path / "direct" / path)]
    matched, mismatched, errors = filecmp.cmpfiles(tmp_path / "cli", tmp_path / "direct", names, shallow=False)
    assert (mismatched, errors) == ([], []) and set(frames) <= set(matched)


def test_convert_tusimple_writes_records_of_every_frame(tmp_path):
    import tensorflow as tf

    from enet_discrim.data.synthetic import tusimple

    tusimple.generate(str(tmp_path / "raw"), 3, 1, "train", log_every=0)
    assert cli.main(["convert", "tusimple", "--srcdir", str(tmp_path / "raw"), "--outdir", str(tmp_path / "rec"),
                     "--height", "32", "--width", "64", "--val_fraction", "0"]) == 0
    shards = [str(path) for path in (tmp_path / "rec").glob("train-*")]
    assert sum(1 for _ in tf.data.TFRecordDataset(shards)) == 3


def test_eval_tusimple_scores_a_hand_made_pair(tmp_path, capsys):
    lane, other = [300] * len(H_SAMPLES), [900] * len(H_SAMPLES)
    gt = _write_lines(tmp_path / "gt.json", [{"raw_file": "a.jpg", "lanes": [lane], "h_samples": H_SAMPLES}])
    pred = _write_lines(tmp_path / "pred.json", [{"raw_file": "a.jpg", "lanes": [lane, other], "run_time": 20}])
    assert cli.main(["eval", "tusimple", pred, gt, "--json"]) == 0
    # The one ground-truth lane is found exactly; one of the two predicted lanes matches nothing.
    assert json.loads(capsys.readouterr().out) == {"accuracy": 1.0, "fp": 0.5, "fn": 0.0}


def test_model_show_prints_the_settings_of_trained_model(capsys):
    with open(os.path.join(TRAINED_MODEL, "config.json"), encoding="utf-8") as file:
        written = json.load(file)
    assert cli.main(["--verbose", "model", "show", TRAINED_MODEL]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {key: shown.get(key) for key in written} == written


def test_help_of_an_absl_command_names_it_lists_its_flags_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["infer", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: enet-discrim infer [--flag=value ...]")
    assert "--culane_list" in out
    # training's flags share absl's global registry with inference's (some names clash): in a
    # process of its own
    done = subprocess.run([sys.executable, os.path.join(REPO, "training.py"), "--help"],
                          env=_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "training.py [--flag=value ...]" in done.stdout and "--srcdir" in done.stdout


@pytest.mark.parametrize("command, flag", [("export", "--format"), ("eval cityscapes", "--results"),
                                           ("eval culane", "--split_lists"),
                                           ("convert culane", "--val_fraction")])
def test_help_of_a_command_is_its_own(command, flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(command.split() + ["--help"])
    assert exit_.value.code == 0
    assert flag in capsys.readouterr().out


@pytest.mark.parametrize("command", ["eval tusimple MISSING GT", "model show MISSING", "label-stats BAD",
                                     "convert tusimple --srcdir MISSING --outdir OUT",
                                     "convert culane --srcdir MISSING --outdir OUT",
                                     "eval culane --annotations MISSING --predictions OUT --list BAD",
                                     "benchmark --modeldir MISSING"])
def test_bad_input_is_the_same_one_line_error_and_exit_2_in_every_command(command, tmp_path, capsys):
    gt = _write_lines(tmp_path / "gt.json", [{"raw_file": "a.jpg", "lanes": [], "h_samples": H_SAMPLES}])
    (tmp_path / "bad.json").write_text("not json\n")
    paths = {"MISSING": str(tmp_path / "missing"), "GT": gt, "BAD": str(tmp_path / "bad.json"),
             "OUT": str(tmp_path / "out")}
    assert cli.main([paths.get(word, word) for word in command.split()]) == support.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert ONE_LINE_ERROR.fullmatch(error), error
    assert ("missing" if "MISSING" in command else "bad.json") in error
    assert not (tmp_path / "out").exists()


def test_benchmark_refuses_a_damaged_model_before_any_work(tmp_path, capsys):
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / "config.json").write_text(open(os.path.join(TRAINED_MODEL, "config.json")).read())
    (folder / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    assert cli.main(["benchmark", "--modeldir", str(folder)]) == support.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert ONE_LINE_ERROR.fullmatch(error) and "model.keras" in error


def test_ctrl_c_is_one_line_and_exit_130(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    assert support.run_main(interrupted, []) == 130
    assert capsys.readouterr().err == "error: interrupted; nothing lost: run again to resume\n"


def test_ctrl_c_during_start_up_is_still_an_interruption(capsys):
    def interrupted_import(argv):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:  # TensorFlow's import fails so when Ctrl-C lands inside it
            raise ImportError("cannot import name 'optree'")

    assert support.run_main(interrupted_import, []) == 130
    assert capsys.readouterr().err == "error: interrupted; nothing lost: run again to resume\n"


def test_an_error_chain_that_loops_is_not_an_interruption():
    error = ValueError("a")
    error.__context__ = RuntimeError("b")
    error.__context__.__context__ = error
    assert not support.interrupted(error)
    assert support.failure_status(error) is None


@pytest.mark.parametrize("error, line", [
    (OSError(errno.ENOSPC, "No space left on device", "/out/train-00000-of-00001"),
     "error: /out/train-00000-of-00001: No space left on device\n"),
    (PermissionError(errno.EACCES, "Permission denied", "/out/a", None, "/out/b"),
     "error: /out/a -> /out/b: Permission denied\n"),
    (OSError(errno.EROFS, "Read-only file system"), "error: Read-only file system\n"),
])
def test_file_system_failures_are_one_line_naming_the_path_exit_1(error, line, capsys):
    def failing(argv):
        raise error

    assert support.run_main(failing, []) == support.EXIT_FAILED
    assert capsys.readouterr().err == line


def test_tensorflow_file_errors_are_one_line_without_the_op(capsys):
    import tensorflow as tf

    # As TensorFlow words a checkpoint writer on a full disk.
    error = tf.errors.ResourceExhaustedError(
        None, None, "{{function_node __wrapped__SaveV2_dtypes_1_device_/job:localhost}} "
        "/out/ckpt-3_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; No space left on "
        "device [Op:SaveV2] name: \nsecond line")
    assert support.failure_status(error) == support.EXIT_FAILED
    assert capsys.readouterr().err == (
        "error: /out/ckpt-3_temp/part-00000-of-00001.data-00000-of-00001.tempstate1: No space left "
        "on device\n")
    assert support.failure_status(tf.errors.PermissionDeniedError(
        None, None, "/ro/x.tfrecord; Permission denied")) == support.EXIT_FAILED
    assert capsys.readouterr().err == "error: /ro/x.tfrecord: Permission denied\n"
    assert support.failure_status(tf.errors.InvalidArgumentError(None, None, "shapes")) is None


def test_other_errors_keep_their_traceback():
    def failing(argv):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        support.run_main(failing, [])
    with pytest.raises(SystemExit):
        support.run_main(lambda argv: sys.exit(3), [])


def test_a_multi_line_message_becomes_one_line(capsys):
    assert support.report_error(ValueError("2 bad items:\na.json:3: no lanes\n\nb.json:1: not JSON\n")) == 2
    assert capsys.readouterr().err == "error: 2 bad items: a.json:3: no lanes; b.json:1: not JSON\n"
    assert support.report_error("diverged", support.EXIT_FAILED) == 1


def test_verbose_is_removed_wherever_it_is():
    assert support.quiet_startup(["--verbose", "show", "x", "--verbose"], tensorflow=False) == ["show", "x"]
    assert support.strip_verbose(["show", "x"]) == (["show", "x"], False)


@pytest.mark.parametrize("line, noise", [
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", True),
    ("I0000 00:00:1795948837.383527     818 port.cc:153] oneDNN custom operations are on.\n", True),
    ("2024-03-01 10:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.\n", True),
    ("To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
     "appropriate compiler flags.\n", True),
    ("E0000 00:00:1795948838.202406     818 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n", True),
    ("W0000 00:00:17.1  9 gpu_device.cc:2342] Cannot dlopen some GPU libraries. Skipping registering GPU devices\n",
     False),
    ("/x/keras.py:3: DeprecationWarning: old\n", False),
    ("error: --srcdir 'x' does not exist\n", False),
])
def test_startup_noise_is_info_and_the_known_lines_only(line, noise):
    assert support.is_startup_noise(line) == noise


def test_output_to_a_closed_pipe_is_no_traceback(tmp_path):
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run([sys.executable, "-m", "enet_discrim.model_dir", "show", TRAINED_MODEL],
                              stdout=writer, stderr=subprocess.PIPE, text=True, env=_environment(), timeout=120)
    finally:
        os.close(writer)
    assert done.stderr == ""
    assert done.returncode == support.EXIT_FAILED


def test_enet_discrim_is_an_installed_command():
    try:
        scripts = importlib.metadata.entry_points(group="console_scripts", name="enet-discrim")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("enet-discrim is not installed")
    if not scripts:
        pytest.skip("installed without the entry point (reinstall: pip install -e .)")
    assert [script.value for script in scripts] == ["enet_discrim.cli:main"]
    assert next(iter(scripts)).load() is cli.main


@pytest.mark.slow
def test_train_reports_bad_input_in_one_line_without_tensorflow_start_up_lines(tmp_path):
    # Without the quiet start these lines precede it: oneDNN, cudart_stub, cpu_feature_guard, cuInit.
    done = subprocess.run([sys.executable, "-m", "enet_discrim.cli", "train", f"--srcdir={tmp_path / 'none'}",
                           f"--outdir={tmp_path / 'out'}", f"--logdir={tmp_path / 'log'}"],
                          capture_output=True, text=True, env=_environment(), cwd=tmp_path, timeout=300)
    assert done.returncode == support.EXIT_BAD_INPUT
    assert done.stderr == f"error: --srcdir '{tmp_path / 'none'}' does not exist or is not a folder\n"
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_infer_runs_inference(tmp_path):
    done = subprocess.run([sys.executable, "-m", "enet_discrim.cli", "infer", f"--modeldir={tmp_path / 'none'}",
                           f"--outdir={tmp_path / 'out'}"],
                          capture_output=True, text=True, env=_environment(), cwd=tmp_path, timeout=300)
    assert done.returncode == support.EXIT_BAD_INPUT
    assert done.stderr.strip().splitlines() == [
        f"error: Model folder '{tmp_path / 'none'}' does not exist (it needs model.keras and config.json)"]


def test_infer_compiles_with_xla_for_long_runs_unless_told(tmp_path):
    from enet_discrim.cli.infer import AUTO_JIT_MIN_FRAMES, use_xla

    keras_folder, tflite_folder = tmp_path / "keras", tmp_path / "tflite"
    keras_folder.mkdir()
    tflite_folder.mkdir()
    (tflite_folder / "model.tflite").write_bytes(b"")
    assert not use_xla(None, AUTO_JIT_MIN_FRAMES - 1, str(keras_folder))
    assert use_xla(None, AUTO_JIT_MIN_FRAMES, str(keras_folder))
    assert use_xla(None, None, str(keras_folder))  # a clip of unknown length
    assert not use_xla(None, None, str(tflite_folder))  # XLA does not apply to a TFLite network
    assert use_xla(True, 1, str(keras_folder)) and not use_xla(False, 10**6, str(keras_folder))


def _no_space(*args, dir=None, **kwargs):
    """tempfile.mkstemp / mkdtemp on a full disk."""
    raise OSError(errno.ENOSPC, "No space left on device", os.path.join(dir or "", ".tmp123"))


def test_model_set_without_permission_is_one_line_and_keeps_the_settings(tmp_path, monkeypatch, capsys):
    from enet_discrim import atomic

    folder = tmp_path / "model"
    folder.mkdir()
    config = open(os.path.join(TRAINED_MODEL, "config.json")).read()
    (folder / "config.json").write_text(config)
    os.symlink(os.path.join(TRAINED_MODEL, "model.keras"), folder / "model.keras")

    def denied(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, ".tmp123"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    assert cli.main(["model", "set", str(folder), "min_confidence=0.4"]) == support.EXIT_FAILED
    assert capsys.readouterr().err == f"error: {folder / 'config.json'}: Permission denied\n"
    assert (folder / "config.json").read_text() == config


def test_convert_on_a_full_disk_is_one_line_and_keeps_the_earlier_records(tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    from enet_discrim.data import writer
    from enet_discrim.data.synthetic import tusimple

    tusimple.generate(str(tmp_path / "raw"), 2, 1, "train", log_every=0)
    convert = ["convert", "tusimple", "--srcdir", str(tmp_path / "raw"), "--outdir", str(tmp_path / "rec"),
               "--height", "32", "--width", "64", "--val_fraction", "0"]
    assert cli.main(convert) == 0
    earlier = {path.name: path.read_bytes() for path in (tmp_path / "rec").iterdir()}
    capsys.readouterr()

    class FullDisk:
        def __init__(self, path):
            self.path = path

        def write(self, record):  # TensorFlow's words for a record writer on a full disk
            raise tf.errors.ResourceExhaustedError(None, None, f"{self.path}; No space left on device")

        def close(self):
            pass

    monkeypatch.setattr(writer.tf.io, "TFRecordWriter", FullDisk)
    assert cli.main(convert) == support.EXIT_FAILED
    error = capsys.readouterr().err.split("\n")  # the progress bar, then the error
    assert re.fullmatch(rf"error: {re.escape(str(tmp_path / 'rec'))}/\S+: No space left on device", error[-2])
    assert error[-1] == "" and "Traceback" not in error
    assert {path.name: path.read_bytes() for path in (tmp_path / "rec").iterdir()} == earlier


def test_export_on_a_full_disk_names_the_outdir_and_keeps_the_earlier_export(tmp_path, monkeypatch, capsys):
    from enet_discrim import atomic
    from enet_discrim.cli import export as export_command

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.tflite").write_bytes(b"earlier")
    monkeypatch.setattr(atomic.tempfile, "mkdtemp", _no_space)
    assert export_command.run(["--modeldir", TRAINED_MODEL, "--outdir", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'out'}: No space left on device\n"
    assert os.listdir(tmp_path / "out") == ["model.tflite"]
    assert (tmp_path / "out" / "model.tflite").read_bytes() == b"earlier"


def test_absl_commands_report_file_system_failures_in_one_line(capsys):
    def failing(argv):
        raise PermissionError(errno.EACCES, "Permission denied", "/ro/checkpoints")

    with pytest.raises(SystemExit) as exit_info:
        support.run_absl_command(failing, __name__, ["enet-discrim train"])
    assert exit_info.value.code == support.EXIT_FAILED
    assert capsys.readouterr().err.endswith("error: /ro/checkpoints: Permission denied\n")
