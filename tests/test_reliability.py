"""Faults across modules (issue 15): the atomic folder writer under kills, a damaged model file."""
import errno
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from enet_discrim import atomic, model_dir
from enet_discrim.model_dir import InferenceSettings

REPO_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "trained_model")


def _dead_pid():
    """The id of a process that has exited."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)


def _write_files(files):
    def write(folder):
        for name, text in files.items():
            with open(os.path.join(folder, name), "w") as stream:
                stream.write(text)
    return write


def _contents(folder):
    return {name: open(os.path.join(folder, name)).read() for name in sorted(os.listdir(folder))}


def test_write_folder_replaces_the_folder_and_keeps_its_other_files(tmp_path):
    target = tmp_path / "export"
    assert atomic.write_folder(str(target), _write_files({"a": "1", "b": "1"})) == str(target)
    assert _contents(target) == {"a": "1", "b": "1"}
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o755)
    (target / "other").write_text("kept")
    atomic.write_folder(str(target), _write_files({"a": "2"}))
    assert _contents(target) == {"a": "2", "b": "1", "other": "kept"}
    assert os.listdir(tmp_path) == ["export"]


def test_write_folder_failing_leaves_the_earlier_folder(tmp_path):
    target = tmp_path / "export"
    atomic.write_folder(str(target), _write_files({"a": "1"}))

    def fail(folder):
        _write_files({"a": "half"})(folder)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_folder(str(target), fail)
    assert _contents(target) == {"a": "1"} and os.listdir(tmp_path) == ["export"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        atomic.write_folder(str(tmp_path / "file"), _write_files({}))


def test_write_folder_puts_back_a_folder_left_aside_by_a_killed_run(tmp_path):
    # Killed between the two renames: the earlier folder waits aside, the target is missing.
    pid = _dead_pid()
    aside = tmp_path / f".export.tmp-{pid}-abcd1234-old"
    aside.mkdir()
    (aside / "a").write_text("earlier")
    half_written = tmp_path / f".export.tmp-{pid}-efgh5678"
    half_written.mkdir()
    live = tmp_path / f".export.tmp-{os.getppid()}-ijkl9012"  # another run, still writing
    live.mkdir()

    def fail(folder):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_folder(str(tmp_path / "export"), fail)
    assert _contents(tmp_path / "export") == {"a": "earlier"}
    assert sorted(os.listdir(tmp_path)) == sorted(["export", live.name])


def test_leftovers_are_those_of_finished_processes(tmp_path):
    pid = _dead_pid()
    for name in (f".tmp-x-{pid}-a", ".tmp-x-untagged", f".tmp-x-{os.getpid()}-b",
                 f".tmp-x-{os.getppid()}-c", "unrelated"):
        (tmp_path / name).write_text("")
    assert atomic.leftovers(str(tmp_path), ".tmp-x-") == [
        str(tmp_path / f".tmp-x-{pid}-a"), str(tmp_path / ".tmp-x-untagged")]


@pytest.fixture
def settings_only_folder(tmp_path):
    settings = InferenceSettings(dataset="tusimple", height=32, width=64, num_classes=2,
                                 embedding_dim=4)
    model_dir.write_settings(str(tmp_path), settings)
    return tmp_path


@pytest.mark.parametrize("damage, message", [
    ("garbage", r"not a Keras model file \(not a zip archive"),
    ("empty", r"not a Keras model file \(not a zip archive"),
    ("zip without a model", r"not a loadable Keras model, the archive is damaged"),
])
def test_a_damaged_model_file_is_not_reported_as_missing(settings_only_folder, damage, message):
    # Issue 15 item 16: a corrupt or non-zip model.keras reported "File not found".
    path = settings_only_folder / "model.keras"
    if damage == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", json.dumps({"not": "a model"}))
    with pytest.raises(ValueError, match=f"^{path}: {message}") as error:
        model_dir.load(str(settings_only_folder))
    assert "not found" not in str(error.value)


def test_an_outdir_that_is_a_file_is_refused_before_any_work(tmp_path):
    from enet_discrim import export

    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    atomic.check_folder_target(str(tmp_path / "new" / "deeper"))  # missing folders are fine
    with pytest.raises(ValueError, match=r"^--outdir .*afile exists and is not a folder$"):
        atomic.check_folder_target(str(blocker))
    with pytest.raises(ValueError, match=r"afile/sub exists and is not a folder \(.*afile is a file\)"):
        atomic.check_folder_target(str(blocker / "sub"))
    # export checks before it reads the model folder (which does not exist here)
    for output_format in ("saved_model", "tflite"):
        with pytest.raises(ValueError, match="exists and is not a folder"):
            export.export(str(tmp_path / "no_model"), str(blocker), output_format)


@pytest.mark.slow
def test_inference_cli_refuses_an_outdir_that_is_a_file_in_one_line(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, os.path.join(repo, "inference.py"), "--modeldir",
                           os.path.join(repo, "trained_model"), "--outdir", str(blocker)],
                          capture_output=True, text=True, cwd=repo, timeout=300)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: --outdir {blocker} exists and is not a folder")
    assert "Traceback" not in done.stderr


def test_replacing_swaps_in_a_finished_file_and_leaves_the_old_one_on_failure(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.replacing(target, suffix=".keras") as temporary:
            assert temporary.endswith(".keras") and os.path.dirname(temporary) == str(tmp_path)
            open(temporary, "w").write("half")
            raise RuntimeError("killed while saving")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["model.keras"]
    with atomic.replacing(target, suffix=".keras") as temporary:
        open(temporary, "w").write("new")
        assert target.read_text() == "old"  # not before the block ends
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["model.keras"]
    assert os.stat(target).st_mode & 0o777 == 0o644


def test_a_full_disk_is_reported_naming_the_file_being_written(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")

    def full(*args):  # a write on a full disk raises an OSError naming no file
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left") as raised:
        with atomic.replacing(str(target)) as temporary:
            with open(temporary, "w") as stream:
                stream.write("half")
            full()
    assert raised.value.filename == str(target) and raised.value.errno == errno.ENOSPC
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["config.json"]


def test_a_folder_without_write_permission_is_named_not_the_temporary(tmp_path, monkeypatch):
    def denied(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, ".tmpabc"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    monkeypatch.setattr(atomic.tempfile, "mkdtemp", denied)
    with pytest.raises(PermissionError) as raised:
        atomic.write_text(str(tmp_path / "config.json"), "{}")
    assert raised.value.filename == str(tmp_path / "config.json")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model.tflite").write_text("earlier")
    with pytest.raises(PermissionError) as raised:
        atomic.write_folder(str(tmp_path / "export"), _write_files({"model.tflite": "new"}))
    assert raised.value.filename == str(tmp_path / "export")
    assert _contents(tmp_path / "export") == {"model.tflite": "earlier"}


def test_write_folder_writes_through_a_link_and_keeps_it(tmp_path):
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "keep.txt").write_text("kept")
    (tmp_path / "disk" / "a.txt").write_text("old")
    os.symlink(tmp_path / "disk", tmp_path / "link")
    written = atomic.write_folder(str(tmp_path / "link"), _write_files({"a.txt": "new"}))
    assert written == str(tmp_path / "link") and os.path.islink(tmp_path / "link")
    assert _contents(tmp_path / "disk") == {"a.txt": "new", "keep.txt": "kept"}
    assert sorted(os.listdir(tmp_path)) == ["disk", "link"]


def test_write_folder_refuses_a_mount_point(tmp_path, monkeypatch):
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt" / "a.txt").write_text("old")
    monkeypatch.setattr(atomic.os.path, "ismount", lambda path: path == str(tmp_path / "mnt"))
    with pytest.raises(ValueError, match=r"mnt is a mount point, which cannot be replaced"):
        atomic.write_folder(str(tmp_path / "mnt"), _write_files({"a.txt": "new"}))
    assert _contents(tmp_path / "mnt") == {"a.txt": "old"}


# Issue 26 item 6: one command at a time in a folder.


def test_a_folder_held_by_a_running_command_is_refused_naming_it(tmp_path, held_by_another_process):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "model.keras").write_text("theirs")
    with held_by_another_process(folder, "train") as pid:
        with pytest.raises(atomic.FolderInUseError) as refused:
            with atomic.folder_lock(str(folder), "export"):
                raise AssertionError("not reached")
        assert str(refused.value).startswith(
            f"--outdir {folder} is in use by train (PID {pid} on {os.uname().nodename})")
        assert "\n" not in str(refused.value)
    assert _contents(folder) == {"model.keras": "theirs"}  # and the holder's lock is gone
    with atomic.folder_lock(str(folder), "export"):  # free again
        assert json.load(open(folder / atomic.LOCK_FILE))["pid"] == os.getpid()
    assert _contents(folder) == {"model.keras": "theirs"}


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    for stale in ({"pid": _dead_pid(), "command": "train"}, "half-writ",
                  # the id of a running process, but it started later than the lock's owner
                  {"pid": os.getpid(), "started": atomic._process_start(os.getpid()) - 1}):
        (folder / atomic.LOCK_FILE).write_text(json.dumps(stale) if isinstance(stale, dict) else stale)
        with atomic.folder_lock(str(folder), "infer"):
            owner = json.load(open(folder / atomic.LOCK_FILE))
            assert owner["pid"] == os.getpid() and owner["command"] == "infer"
        assert os.listdir(folder) == []


def test_a_folder_lock_is_held_again_by_its_own_process_and_removes_a_folder_it_made(tmp_path):
    folder = tmp_path / "new" / "out"
    with atomic.folder_lock(str(folder), "infer"):
        with atomic.folder_lock(str(folder), "infer"):
            assert os.listdir(folder) == [atomic.LOCK_FILE]
        assert os.listdir(folder) == [atomic.LOCK_FILE]  # still held by the outer block
    assert not os.path.exists(folder)
    with atomic.folder_lock(str(folder), "infer"):
        (folder / "predictions.json").write_text("kept")
    assert os.listdir(folder) == ["predictions.json"]
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        with atomic.folder_lock(str(tmp_path / "file" / "out"), "infer"):
            pass


def test_convert_train_infer_and_export_refuse_a_folder_in_use(tmp_path, held_by_another_process, capsys):
    from enet_discrim import batch_inference, cli, export
    from enet_discrim.data.synthetic import tusimple
    from enet_discrim.training import train
    from tests.test_training import tiny_config, write_tiny_records

    out = tmp_path / "out"
    out.mkdir()
    (out / "train-00000-of-00001.tfrecord").write_bytes(b"earlier")
    tusimple.generate(str(tmp_path / "raw"), 2, 1, "train", log_every=0)
    write_tiny_records(tmp_path / "records")
    in_use = re.escape(f"--outdir {out} is in use by ")
    with held_by_another_process(out, "convert") as pid:
        assert cli.main(["convert", "tusimple", "--srcdir", str(tmp_path / "raw"), "--outdir", str(out),
                         "--height", "32", "--width", "64", "--val_fraction", "0"]) == 2
        assert re.fullmatch(rf"error: {in_use}convert \(PID {pid} .*\)", capsys.readouterr().err.splitlines()[-1])
        with pytest.raises(ValueError, match=rf"{in_use}convert \(PID {pid} "):
            train(tiny_config(tmp_path, outdir=str(out)))
        with pytest.raises(ValueError, match=rf"{in_use}convert"):
            batch_inference.run(None, [], str(out))
        with pytest.raises(ValueError, match=rf"{in_use}convert"):
            batch_inference.run_video(None, str(tmp_path / "clip.mp4"), str(out))
        with pytest.raises(ValueError, match=rf"{in_use}convert"):
            export.export(REPO_MODEL, str(out), "tflite")
    assert _contents(out) == {"train-00000-of-00001.tfrecord": "earlier"}
    assert not os.path.exists(tmp_path / "log")
