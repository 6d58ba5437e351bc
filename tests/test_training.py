import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.data import make_example
from enet_discrim.model import ENet
from enet_discrim.training import TrainConfig, TrainingDivergedError, step, train

HEIGHT, WIDTH = 32, 64
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_tiny_records(directory, frames=(6, 2), seed=0):
    """train/val shards of small frames with two lanes each, as the converters write them."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for split, count in zip(("train", "val"), frames):
        path = os.path.join(directory, f"{split}-00000-of-00001.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(count):
                image = rng.integers(60, 100, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                instance = np.zeros((HEIGHT, WIDTH), np.uint8)
                for lane, bottom in enumerate((int(rng.integers(0, 20)), int(rng.integers(44, 64))), start=1):
                    cv2.line(instance, (WIDTH // 2, 8), (bottom, HEIGHT - 1), lane, 2)
                image[instance > 0] = 230
                semantic = (instance > 0).astype(np.uint8)
                writer.write(make_example(image, semantic, instance, f"clips/{split}/{i}/20.jpg", "png"))
    return directory


def tiny_config(tmp_path, **overrides):
    values = dict(
        srcdir=str(tmp_path / "records"),
        outdir=str(tmp_path / "out"),
        logdir=str(tmp_path / "log"),
        epochs=2,
        batch_size=2,
        height=HEIGHT,
        width=WIDTH,
        steps_per_epoch=2,
        image_summaries=2,
    )
    values.update(overrides)
    return TrainConfig(**values)


def event_tags_and_steps(logdir):
    tags, steps = set(), []
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
                if value.tag == "loss/total":
                    steps.append(event.step)
    return tags, steps


def digest(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


@pytest.fixture
def records(tmp_path):
    return write_tiny_records(tmp_path / "records")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"delta_v": 1.5, "delta_d": 1.5}, "--dvar .* must be smaller than --ddist"),
        ({"delta_v": -0.1}, "--dvar .* must not be negative"),
        ({"height": 250}, "--height must be a positive multiple of 8"),
        ({"crop_height": 64}, "--crop_height and --crop_width go together"),
        ({"crop_height": 60, "crop_width": 64}, "--crop_height must be a positive multiple of 8"),
        ({"dataset": "kitti"}, "unknown dataset 'kitti'"),
        ({"dist_weight": -1.0}, "--dist .* must not be negative"),
        ({"delta_d": float("nan")}, "--ddist must be a finite number, got nan"),
        ({"learning_rate": float("inf")}, "--learning_rate must be a finite number, got inf"),
        ({"reg_weight": float("-inf")}, "--reg must be a finite number, got -inf"),
    ],
)
def test_bad_settings_fail_before_anything_is_written(tmp_path, records, overrides, message):
    config = tiny_config(tmp_path, **overrides)
    with pytest.raises(ValueError, match=message):
        train(config)
    assert not os.path.exists(config.outdir) and not os.path.exists(config.logdir)


@pytest.mark.parametrize("content, message", [
    ("{}", 'missing "num_classes"'),
    ('{"num_classes": "two", "class_names": ["a", "b"]}',
     '"num_classes" must be a positive integer, got "two"'),
])
def test_a_broken_dataset_info_is_named_before_anything_is_written(tmp_path, records, content,
                                                                   message):
    info = os.path.join(records, "dataset_info.json")
    with open(info, "w") as stream:
        stream.write(content)
    config = tiny_config(tmp_path)
    with pytest.raises(ValueError, match=f"^{info}: {message}"):
        train(config)
    assert not os.path.exists(config.outdir)


def test_a_damaged_model_to_fine_tune_from_is_named_before_anything_is_written(tmp_path, records):
    modeldir = tmp_path / "damaged"
    modeldir.mkdir()
    (modeldir / "model.keras").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    config = tiny_config(tmp_path, modeldir=str(modeldir))
    with pytest.raises(ValueError, match=r"damaged/model.keras: not a"):
        train(config)
    assert not os.path.exists(config.outdir)


def test_lane_top_trim_follows_the_label_line_thickness():
    from enet_discrim.training.trainer import inference_config
    info = {"num_classes": 2, "class_names": ["background", "lane"]}
    # Records drawn at 512 wide with 4-pixel lines, trained at 256: 2-row lines, a quarter of that.
    at_256 = TrainConfig(height=128, width=256)
    assert inference_config(at_256, {**info, "width": 512, "lane_thickness": 4})["lane_top_trim"] == 0.5
    assert inference_config(TrainConfig(), {**info, "width": 512, "lane_thickness": 4})["lane_top_trim"] == 1.0
    # Older dataset_info.json without the thickness: the converter's rule for its width.
    assert inference_config(at_256, {**info, "width": 256})["lane_top_trim"] == 0.5
    cityscapes = TrainConfig(dataset="cityscapes")
    city_info = {"num_classes": 19, "class_names": [str(c) for c in range(19)], "thing_train_ids": [11]}
    assert inference_config(cityscapes, city_info)["lane_top_trim"] == 0.0
    assert inference_config(at_256, info)["lane_model"] == "hyperbola"


def test_missing_or_empty_srcdir_is_named(tmp_path):
    with pytest.raises(ValueError, match="nowhere.*does not exist"):
        train(tiny_config(tmp_path, srcdir=str(tmp_path / "nowhere")))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="empty.*is empty"):
        train(tiny_config(tmp_path, srcdir=str(tmp_path / "empty")))
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.slow
def test_two_tiny_epochs_end_to_end_resumed_and_guarded_against_another_configuration(tmp_path, records):
    # One epoch, then the same command for two: the second run resumes at step 2. (One test, as
    # each training costs tens of seconds of the suite.) The second trains on half-size windows,
    # which do not change the model: the saved model still serves whole HEIGHT x WIDTH frames.
    train(tiny_config(tmp_path, epochs=1))
    config = tiny_config(tmp_path, crop_height=HEIGHT // 2, crop_width=WIDTH // 2)
    result = train(config)
    assert result["epochs"] == 2 and result["steps"] == 4
    assert np.isfinite(result["best_val_loss"])

    saved = json.load(open(os.path.join(config.outdir, "config.json")))
    assert saved["height"] == HEIGHT and saved["width"] == WIDTH
    run_config = json.load(open(os.path.join(config.outdir, "train_config.json")))
    assert (run_config["crop_height"], run_config["crop_width"]) == (HEIGHT // 2, WIDTH // 2)
    assert saved["num_classes"] == 2 and saved["class_names"] == ["background", "lane"]
    assert saved["embedding_dim"] == 4 and saved["dataset"] == "tusimple"
    assert saved["delta_v"] == 0.5 and saved["delta_d"] == 1.5 and saved["bandwidth"] > 0
    model = keras.models.load_model(os.path.join(config.outdir, "model.keras"), safe_mode=True)
    assert isinstance(model, ENet) and model.embedding_dim == 4
    assert tf.train.latest_checkpoint(os.path.join(config.outdir, "checkpoints")).endswith("-4")

    train_tags, train_steps = event_tags_and_steps(os.path.join(config.logdir, "train"))
    assert {"loss/total", "loss/variance", "loss/distance", "loss/regularization", "loss/semantic",
            "learning_rate"} <= train_tags
    assert train_steps == [1, 2, 3, 4]  # TensorBoard's steps continue, not from 1 again
    val_tags, val_steps = event_tags_and_steps(os.path.join(config.logdir, "validation"))
    assert {"loss/total", "predicted_instances", "ground_truth_instances", "embeddings"} <= val_tags
    assert val_steps == [2, 4]
    assert len(glob.glob(os.path.join(config.logdir, "embeddings_step_*.png"))) == 2

    # The outdir of another configuration is not overwritten.
    model_digest = digest(os.path.join(config.outdir, "model.keras"))
    with pytest.raises(ValueError, match="different configuration: embedding_dim 4 \\(now 3\\)"):
        train(tiny_config(tmp_path, epochs=3, embedding_dim=3))
    assert digest(os.path.join(config.outdir, "model.keras")) == model_digest


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, records, monkeypatch):
    config = tiny_config(tmp_path, epochs=1)
    train(config)
    model_digest = digest(os.path.join(config.outdir, "model.keras"))
    real = step.compute_losses

    def diverging(outputs, labels, settings):
        return {name: value * float("nan") for name, value in real(outputs, labels, settings).items()}

    monkeypatch.setattr(step, "compute_losses", diverging)
    with pytest.raises(TrainingDivergedError, match="nan at step 3 .*ckpt-2"):
        train(tiny_config(tmp_path, epochs=2))
    checkpoints = os.path.join(config.outdir, "checkpoints")
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-2")
    assert digest(os.path.join(config.outdir, "model.keras")) == model_digest


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path, records):
    outdir, logdir = tmp_path / "out", tmp_path / "log"
    command = [
        sys.executable, os.path.join(REPO, "training.py"), f"--srcdir={records}", f"--outdir={outdir}",
        f"--logdir={logdir}", f"--height={HEIGHT}", f"--width={WIDTH}", "--batch_size=2", "--epochs=1",
        "--steps_per_epoch=400", "--checkpoint_every=2",
    ]
    environment = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = str(outdir / "checkpoints")
    deadline = time.time() + 240
    while time.time() < deadline and not (tf.train.latest_checkpoint(checkpoints) or "").endswith(("-4", "-6", "-8")):
        assert process.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved_step = int(tf.train.latest_checkpoint(checkpoints).rsplit("-", 1)[1])
    assert saved_step >= 4

    resumed = train(
        TrainConfig(srcdir=str(records), outdir=str(outdir), logdir=str(logdir), height=HEIGHT, width=WIDTH,
                    batch_size=2, epochs=1, steps_per_epoch=saved_step + 2, checkpoint_every=2)
    )
    assert resumed["steps"] == saved_step + 2
    _, steps = event_tags_and_steps(os.path.join(logdir, "train"))
    # The resumed run logged exactly the two steps after the checkpoint, not from 0 again.
    assert steps[-2:] == [saved_step + 1, saved_step + 2]


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from enet_discrim.model import ENet
    from enet_discrim.training.step import LossSettings, make_train_step

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 16, 32, 3)).astype("float32")
    instance = rng.integers(0, 3, (4, 16, 32)).astype("int32")
    labels = {"semantic": (instance > 0).astype("int32"), "instance": instance}
    settings = LossSettings(class_weights=(1.5, 10.0))

    def run(strategy):
        keras.utils.set_random_seed(1)
        with strategy.scope():
            model = ENet(num_classes=2, embedding_dim=3, stage1_dropout=0.0, dropout=0.0)
            model(images[:1])
            optimizer = keras.optimizers.SGD(1e-4)
        before = [v.numpy().copy() for v in model.trainable_variables]
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4).repeat()
        iterator = iter(strategy.experimental_distribute_dataset(dataset))
        step = make_train_step(model, optimizer, strategy, settings)
        losses = [float(step(iterator)["total"])]
        update = np.concatenate([(v.numpy() - b).ravel() for v, b in zip(model.trainable_variables, before)])
        losses.append(float(step(iterator)["total"]))
        return losses, update, strategy.num_replicas_in_sync

    mirrored_losses, mirrored_update, replicas = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    single_losses, single_update, _ = run(tf.distribute.get_strategy())
    update_difference = np.linalg.norm(mirrored_update - single_update) / np.linalg.norm(single_update)
    json.dump({"mirrored": mirrored_losses, "single": single_losses, "replicas": replicas,
               "update_difference": float(update_difference)}, sys.stdout)
    """
)


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpus_gives_the_single_device_loss():
    environment = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT], env=environment, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    # The same loss before and after a step, because the step (gradients summed over replicas,
    # synchronised batch statistics) is the same. Float sums in another order leave ~1e-4.
    np.testing.assert_allclose(result["mirrored"], result["single"], rtol=1e-3)
    assert result["update_difference"] < 1e-2
    assert result["single"][1] != result["single"][0]
