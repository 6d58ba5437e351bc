"""Training under faults (issue 15): resume from any checkpoint, nothing written before the checks
pass, no leftovers, one-line errors naming the bad file or flag."""

import json
import logging
import os
import re
import shutil
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.data import pipeline
from enet_discrim.model import ENet
from enet_discrim.training import TrainingDivergedError, step, train, trainer
from enet_discrim.training.config import write_json
from tests.test_training import HEIGHT, REPO, WIDTH, digest, tiny_config, write_tiny_records

EPOCH_LINE = re.compile(r"Epoch (\d+)/\d+: train loss ([0-9.]+)")


@pytest.fixture
def records(tmp_path):
    return write_tiny_records(tmp_path / "records")


@pytest.fixture
def epoch_lines(caplog):
    """Returns a function giving {epoch: train loss} of the epoch log lines so far."""
    caplog.set_level(logging.INFO, logger="absl")

    def lines():
        found = {}
        for record in caplog.records:
            match = EPOCH_LINE.search(record.getMessage())
            if match:
                found[int(match.group(1))] = float(match.group(2))
        return found

    return lines


def logged_total_losses(logdir):
    """{step: loss/total} of the TensorBoard events in `logdir`."""
    values = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "loss/total":
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def truncate(path, cut=100):
    """Cuts the last `cut` bytes off a file, as a copy or a write stopped early would.

    (A cut at a record boundary leaves a shorter but valid file: the tiny records are all of
    one size, so fractions of the file would be such cuts.)"""
    with open(path, "rb") as file:
        content = file.read()
    with open(path, "wb") as file:
        file.write(content[:-cut])


def write_raw_tusimple(folder):
    """A raw TuSimple folder of one frame: training would convert it to `folder/tfrecords`."""
    os.makedirs(folder / "clips" / "a")
    cv2.imwrite(str(folder / "clips" / "a" / "1.jpg"), np.zeros((72, 128, 3), np.uint8))
    line = {"raw_file": "clips/a/1.jpg", "lanes": [[20, 30, 40]], "h_samples": [40, 50, 60]}
    (folder / "label_data_0313.json").write_text(json.dumps(line) + "\n")
    return folder


# Item 2: resume from any checkpointed step; the run's config is not overwritten by a failed run.


@pytest.mark.slow
def test_resume_with_fewer_steps_per_epoch_continues_and_logs_epoch_means(tmp_path, records, epoch_lines):
    first = train(tiny_config(tmp_path, epochs=1, steps_per_epoch=2))
    assert (first["epochs"], first["steps"]) == (1, 2)
    resumed = train(tiny_config(tmp_path, epochs=2, steps_per_epoch=1))
    assert (resumed["epochs"], resumed["steps"]) == (2, 3)
    losses = logged_total_losses(os.path.join(tmp_path, "log", "train"))
    assert sorted(losses) == [1, 2, 3]
    # The epoch line shows the mean over the epoch's steps, not the last batch.
    assert epoch_lines() == {
        1: pytest.approx((losses[1] + losses[2]) / 2, abs=1e-4),
        2: pytest.approx(losses[3], abs=1e-4),
    }
    saved = json.load(open(os.path.join(tmp_path, "out", "train_config.json")))
    assert (saved["epochs"], saved["steps_per_epoch"]) == (2, 1)


class Killed(BaseException):
    """Stands for a SIGKILL: nothing catches it."""


@pytest.mark.slow
def test_resume_after_a_kill_between_the_last_steps_checkpoint_and_the_epoch_end(
        tmp_path, records, monkeypatch, epoch_lines):
    config = tiny_config(tmp_path, epochs=1, steps_per_epoch=2, checkpoint_every=2)

    def killed(*args, **kwargs):
        raise Killed()

    monkeypatch.setattr(trainer, "_validate", killed)
    with pytest.raises(Killed):
        train(config)
    checkpoints = os.path.join(config.outdir, "checkpoints")
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-2")
    assert not os.path.exists(os.path.join(config.outdir, "model.keras"))
    monkeypatch.undo()

    resumed = train(config)
    assert (resumed["epochs"], resumed["steps"]) == (1, 2)
    assert np.isfinite(resumed["best_val_loss"])
    assert os.path.isfile(os.path.join(config.outdir, "model.keras"))
    # The epoch's loss mean was checkpointed with its steps.
    losses = logged_total_losses(os.path.join(config.logdir, "train"))
    assert epoch_lines() == {1: pytest.approx((losses[1] + losses[2]) / 2, abs=1e-4)}


@pytest.mark.slow
def test_resume_from_a_checkpoint_written_before_epoch_starts_were_checkpointed(tmp_path, records):
    config = tiny_config(tmp_path, epochs=1, steps_per_epoch=2)
    train(config)
    # Rewrite the checkpoint as the trainer wrote it before: model, optimizer, epoch, best loss.
    model = ENet(num_classes=2, embedding_dim=config.embedding_dim)
    model.build((None, HEIGHT, WIDTH, 3))
    optimizer = keras.optimizers.Adam(config.learning_rate)
    optimizer.build(model.trainable_variables)
    epoch = tf.Variable(0, dtype=tf.int64)
    best_val_loss = tf.Variable(0.0, dtype=tf.float64)
    old = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch, best_val_loss=best_val_loss)
    checkpoints = os.path.join(config.outdir, "checkpoints")
    old.restore(tf.train.latest_checkpoint(checkpoints)).expect_partial()
    shutil.rmtree(checkpoints)
    tf.train.CheckpointManager(old, checkpoints, max_to_keep=3).save(checkpoint_number=2)

    resumed = train(tiny_config(tmp_path, epochs=2, steps_per_epoch=1))
    assert (resumed["epochs"], resumed["steps"]) == (2, 3)


def test_a_run_that_fails_its_checks_leaves_the_run_config_alone(tmp_path, records):
    config = tiny_config(tmp_path)
    os.makedirs(config.outdir)
    path = os.path.join(config.outdir, "train_config.json")
    write_json(path, {**config.to_dict(), "class_weights": [1.0, 10.0]})
    before = digest(path)
    with pytest.raises(ValueError, match="has no model.keras to fine-tune from"):
        train(tiny_config(tmp_path, epochs=5, modeldir=str(tmp_path / "nowhere")))
    assert digest(path) == before
    assert sorted(os.listdir(config.outdir)) == ["train_config.json"]


# The redesign: the global dtype policy is the caller's again when train returns or raises.


def test_mixed_precision_policy_is_restored_when_train_raises(tmp_path, records):
    try:
        with pytest.raises(ValueError, match="has no model.keras"):
            train(tiny_config(tmp_path, mixed_precision=True, modeldir=str(tmp_path / "nowhere")))
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


# Item 12: a truncated or corrupt TFRecord is named.


def test_check_records_names_a_truncated_or_corrupt_file(tmp_path):
    good = str(tmp_path / "good.tfrecord")
    with tf.io.TFRecordWriter(good) as writer:
        for _ in range(4):
            writer.write(os.urandom(500))
    pipeline.check_records([good])

    truncated = str(tmp_path / "truncated.tfrecord")
    shutil.copy(good, truncated)
    truncate(truncated)
    with pytest.raises(ValueError, match=r"truncated\.tfrecord: .*truncated record") as error:
        pipeline.check_records([good, truncated])
    assert "\n" not in str(error.value)

    corrupt = str(tmp_path / "corrupt.tfrecord")
    content = bytearray(open(good, "rb").read())
    content[700] ^= 0xFF
    open(corrupt, "wb").write(bytes(content))
    with pytest.raises(ValueError, match=r"corrupt\.tfrecord: .*corrupted record"):
        pipeline.check_records([good, corrupt])


def test_truncated_training_shard_is_named_and_nothing_is_written(tmp_path, records):
    truncate(records / "train-00000-of-00001.tfrecord")
    config = tiny_config(tmp_path)
    with pytest.raises(ValueError, match=r"train-00000-of-00001\.tfrecord: .*truncated record") as error:
        train(config)
    assert "\n" not in str(error.value)
    assert not os.path.exists(config.outdir) and not os.path.exists(config.logdir)


@pytest.mark.slow
def test_truncated_validation_shard_is_named_when_validation_reads_it(tmp_path, records):
    truncate(records / "val-00000-of-00001.tfrecord")
    with pytest.raises(ValueError, match=r"val-00000-of-00001\.tfrecord: .*truncated record"):
        train(tiny_config(tmp_path, epochs=1, steps_per_epoch=1))


# Item 13: an --outdir or --logdir that is a file.


@pytest.mark.parametrize("flag", ["outdir", "logdir"])
@pytest.mark.parametrize("below", [False, True])
def test_outdir_or_logdir_that_is_a_file_fails_before_anything_is_converted(tmp_path, flag, below):
    raw = write_raw_tusimple(tmp_path / "raw")
    (tmp_path / "taken").write_text("a file")
    path = tmp_path / "taken" / "run" if below else tmp_path / "taken"
    config = tiny_config(tmp_path, srcdir=str(raw), **{flag: str(path)})
    with pytest.raises(ValueError, match=f"--{flag} .*taken.* is a file, not a folder") as error:
        train(config)
    assert "\n" not in str(error.value)
    assert not os.path.exists(raw / "tfrecords")
    assert sorted(os.listdir(tmp_path)) == ["raw", "taken"]


@pytest.mark.slow
def test_training_py_reports_an_outdir_that_is_a_file_in_one_line(tmp_path, records):
    (tmp_path / "taken").write_text("a file")
    completed = subprocess.run(
        [sys.executable, os.path.join(REPO, "training.py"), f"--srcdir={records}", f"--outdir={tmp_path / 'taken'}",
         f"--logdir={tmp_path / 'log'}", f"--height={HEIGHT}", f"--width={WIDTH}"],
        env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    assert re.fullmatch(r"error: .*--outdir .*taken.* is a file, not a folder",
                        completed.stderr.strip().splitlines()[-1])
    assert not os.path.exists(tmp_path / "log")


# Item 21: a killed save's leftovers are removed by the next run.


@pytest.mark.slow
def test_leftovers_of_killed_saves_are_removed_at_start(tmp_path, records):
    config = tiny_config(tmp_path, epochs=1, steps_per_epoch=1)
    train(config)
    model_digest = digest(os.path.join(config.outdir, "model.keras"))
    leftovers = [
        os.path.join(config.outdir, "model.tmp.keras"),  # model_dir.save killed
        os.path.join(config.outdir, ".tmp-k2j4x9"),  # an atomic JSON write killed
        os.path.join(config.outdir, "checkpoints", "ckpt-7_temp", "part-00000-of-00001.index"),  # a checkpoint
    ]
    for path in leftovers:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").write(b"half written")

    result = train(config)  # nothing left to train: nothing is saved
    assert result["steps"] == 1
    assert not any(os.path.exists(path) for path in leftovers)
    assert not os.path.exists(os.path.join(config.outdir, "checkpoints", "ckpt-7_temp"))
    assert digest(os.path.join(config.outdir, "model.keras")) == model_digest
    assert tf.train.latest_checkpoint(os.path.join(config.outdir, "checkpoints")).endswith("ckpt-1")


# Item 22: a failed run leaves no outdir holding only train_config.json.


def test_a_new_run_that_fails_its_checks_creates_no_folder(tmp_path, records):
    config = tiny_config(tmp_path, outdir=str(tmp_path / "runs" / "out"), modeldir=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="has no model.keras to fine-tune from"):
        train(config)
    assert sorted(os.listdir(tmp_path)) == ["records"]


@pytest.mark.slow
def test_a_run_failing_before_its_first_checkpoint_removes_what_it_created(tmp_path, records, monkeypatch):
    real = step.compute_losses

    def diverging(outputs, labels, settings):
        return {name: value * float("nan") for name, value in real(outputs, labels, settings).items()}

    monkeypatch.setattr(step, "compute_losses", diverging)
    new = tiny_config(tmp_path, outdir=str(tmp_path / "runs" / "out"), logdir=str(tmp_path / "logs" / "a"))
    with pytest.raises(TrainingDivergedError, match="nan at step 1 .*none"):
        train(new)
    assert sorted(os.listdir(tmp_path)) == ["records"]

    os.makedirs(tmp_path / "existing" / "log")
    existing = tiny_config(tmp_path, outdir=str(tmp_path / "existing"), logdir=str(tmp_path / "existing" / "log"))
    with pytest.raises(TrainingDivergedError):
        train(existing)
    assert os.listdir(tmp_path / "existing") == ["log"] and os.listdir(tmp_path / "existing" / "log") == []


@pytest.mark.slow
def test_run_config_left_without_a_checkpoint_does_not_block_a_new_run(tmp_path, records):
    # What a run killed during its first epoch leaves: train_config.json, no checkpoint, no model.
    os.makedirs(tmp_path / "out")
    earlier = tiny_config(tmp_path, embedding_dim=3)
    write_json(os.path.join(earlier.outdir, "train_config.json"), {**earlier.to_dict(), "class_weights": [1.0, 9.0]})
    result = train(tiny_config(tmp_path, epochs=1, steps_per_epoch=1))
    assert result["steps"] == 1
    saved = json.load(open(os.path.join(tmp_path, "out", "train_config.json")))
    assert saved["embedding_dim"] == 4 and saved["class_weights"] != [1.0, 9.0]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_garbage_dataset_info_is_named_and_nothing_is_written(tmp_path, records, content):
    info_path = os.path.join(records, "dataset_info.json")
    with open(info_path, "w", encoding="utf-8") as file:
        file.write(content)
    config = tiny_config(tmp_path)
    with pytest.raises(ValueError, match=re.escape(info_path) + ": not "):
        train(config)
    assert not os.path.exists(config.outdir)


# Issue 26 items 17 and 18: damaged checkpoint state, a damaged run config.


def _digests(folder, names):
    return {name: digest(os.path.join(folder, name)) for name in names}


@pytest.mark.slow
def test_a_damaged_checkpoint_state_file_resumes_from_the_newest_checkpoint(tmp_path, records, caplog):
    config = tiny_config(tmp_path, epochs=2, steps_per_epoch=1)
    train(config)
    checkpoints = os.path.join(config.outdir, "checkpoints")
    with open(os.path.join(checkpoints, "checkpoint"), "w") as state:
        state.write("model_checkpoint_path: \x00garbage {{")
    resumed = train(tiny_config(tmp_path, epochs=3, steps_per_epoch=1))
    assert (resumed["epochs"], resumed["steps"]) == (3, 3)  # not from step 0
    assert "checkpoints/checkpoint: damaged; rebuilt" in caplog.text
    state = tf.train.get_checkpoint_state(checkpoints)
    assert [os.path.basename(path) for path in state.all_model_checkpoint_paths] == [
        "ckpt-1", "ckpt-2", "ckpt-3"]


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_is_skipped_and_the_better_model_kept(tmp_path, records, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    config = tiny_config(tmp_path, epochs=2, steps_per_epoch=1)
    train(config)
    checkpoints = os.path.join(config.outdir, "checkpoints")
    (data,) = [name for name in os.listdir(checkpoints) if name.startswith("ckpt-2.data")]
    truncate(os.path.join(checkpoints, data), cut=1000)
    # The model in outdir is the best there can be (a loss is never below 0): no later epoch
    # may replace it, although the checkpoint resumed from knew a worse best.
    write_json(os.path.join(config.outdir, trainer.MODEL_LOSS_FILE), {"validation_loss": 0.0, "step": 2})
    kept = _digests(config.outdir, ["model.keras", "config.json"])
    resumed = train(tiny_config(tmp_path, epochs=3, steps_per_epoch=1))
    assert (resumed["epochs"], resumed["steps"]) == (3, 3)
    assert f"{os.path.join(checkpoints, 'ckpt-2')}: damaged checkpoint" in caplog.text
    assert f"Resuming from {os.path.join(checkpoints, 'ckpt-1')} at step 1" in caplog.text
    assert _digests(config.outdir, ["model.keras", "config.json"]) == kept


@pytest.mark.slow
def test_checkpoints_of_which_none_reads_are_refused_naming_the_newest(tmp_path, records):
    config = tiny_config(tmp_path, epochs=2, steps_per_epoch=1)
    train(config)
    checkpoints = os.path.join(config.outdir, "checkpoints")
    for name in os.listdir(checkpoints):
        if name.endswith(".index"):
            truncate(os.path.join(checkpoints, name), cut=30)
    before = {name: digest(os.path.join(config.outdir, name)) for name in ("model.keras", "train_config.json")}
    with pytest.raises(ValueError) as refused:
        train(tiny_config(tmp_path, epochs=3, steps_per_epoch=1))
    assert str(refused.value).startswith(f"{os.path.join(checkpoints, 'ckpt-2')}: damaged checkpoint (")
    assert "no earlier one" in str(refused.value) and "\n" not in str(refused.value)
    assert {name: digest(os.path.join(config.outdir, name)) for name in before} == before


@pytest.mark.parametrize("content, message", [
    ([1, 2], "not a run's settings (a JSON object), got list"),
    ({"class_weights": "abc"}, "class_weights must be a list of 2 positive numbers, got 'abc'"),
    ({"class_weights": [1.0, float("nan")]}, "class_weights must be a list of 2 positive numbers"),
])
def test_a_damaged_run_config_is_named_before_any_training(tmp_path, records, content, message, monkeypatch):
    config = tiny_config(tmp_path)
    os.makedirs(config.outdir)
    (tmp_path / "out" / "model.keras").write_text("a model")
    run_config = tmp_path / "out" / "train_config.json"
    if isinstance(content, dict):
        content = {**config.to_dict(), **content}
    run_config.write_text(json.dumps(content))
    monkeypatch.setattr(trainer, "_build_model", lambda *args: pytest.fail("built a model"))
    with pytest.raises(ValueError, match=re.escape(f"{run_config}: {message}")):
        train(config)


def test_a_record_whose_jpeg_does_not_decode_is_named_with_its_shard(tmp_path, records):
    from enet_discrim.data import schema

    shard = str(records / "train-00000-of-00001.tfrecord")
    examples = [tf.train.Example.FromString(record.numpy()) for record in tf.data.TFRecordDataset(shard)]
    image = examples[3].features.feature[schema.IMAGE_ENCODED].bytes_list
    image.value[0] = b"\xff\xd8\xff\xe0" + b"\x00" * 200  # a JPEG's start, then nothing of one
    frame = examples[3].features.feature[schema.IMAGE_FILENAME].bytes_list.value[0].decode()
    with tf.io.TFRecordWriter(shard) as writer:  # framing and checksums are good
        for example in examples:
            writer.write(example.SerializeToString())
    config = tiny_config(tmp_path)
    with pytest.raises(ValueError) as error:
        train(config)
    assert str(error.value).startswith(f"{shard}: record 3 ({frame}) does not decode (")
    assert "\n" not in str(error.value)
