"""Training paths beyond the basic loop: a raw folder, no validation split, fine-tuning from a
model folder, Cityscapes per-class training and mixed precision."""
import json
import logging
import os
import re
import socket
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim import model_dir
from enet_discrim.data import cityscapes as cityscapes_data
from enet_discrim.data import tusimple as tusimple_data
from enet_discrim.data import writer
from enet_discrim.data.schema import make_example
from enet_discrim.model import ENet
from enet_discrim.training import train
from tests.test_training import HEIGHT, REPO, WIDTH, tiny_config, write_tiny_records

pytestmark = pytest.mark.slow


def _trainable(model):
    """The trainable weights in creation order (their paths carry each instance's own name)."""
    return [weight.numpy() for weight in model.trainable_weights]


def test_a_raw_folder_without_validation_frames_is_converted_and_its_final_model_kept(
        tmp_path, caplog):
    """The headline `training.py --srcdir data` on label files and clips (no TFRecords), whose
    frames all fall in the train split: no validation, so the final model is the one kept."""
    raw = tmp_path / "raw"
    names = [name for name in (f"clips/{i}/20.jpg" for i in range(40))
             if tusimple_data.split_of(name, 0.1) == "train"][:4]
    lines = []
    for name in names:
        os.makedirs(raw / os.path.dirname(name))
        image = np.full((72, 128, 3), 80, np.uint8)
        cv2.line(image, (40, 20), (20, 71), (230, 230, 230), 3)
        cv2.imwrite(str(raw / name), image)
        lines.append(json.dumps({"raw_file": name, "lanes": [[35, 30, 25]],
                                 "h_samples": [35, 50, 65]}))
    (raw / "label_data_0313.json").write_text("\n".join(lines) + "\n")
    config = tiny_config(tmp_path, srcdir=str(raw), epochs=2, batch_size=1)
    with caplog.at_level(logging.WARNING):
        result = train(config)
    info = json.loads((raw / "tfrecords" / writer.DATASET_INFO_FILE).read_text())
    assert (info["height"], info["width"]) == (HEIGHT, WIDTH)
    assert info["counts"] == {"train": 4, "val": 0}
    assert any("No validation shards" in record.getMessage() for record in caplog.records)
    assert result["best_val_loss"] == float("inf")
    saved = keras.models.load_model(os.path.join(config.outdir, "model.keras"), safe_mode=True)
    latest = tf.train.latest_checkpoint(os.path.join(config.outdir, "checkpoints"))
    assert latest.endswith("-4")
    # Every trainable weight of model.keras is, value for value, a variable of the last
    # checkpoint (step 4), not of the model after the first epoch.
    reader = tf.train.load_checkpoint(latest)
    final = [reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
             if key.endswith("VARIABLE_VALUE")]
    for value in _trainable(saved):
        assert any(other.shape == value.shape and np.array_equal(other, value) for other in final)


def test_fine_tuning_starts_from_the_model_folder(tmp_path):
    write_tiny_records(tmp_path / "records")
    source = ENet(num_classes=2, embedding_dim=4)
    source.build((None, HEIGHT, WIDTH, 3))
    settings = model_dir.InferenceSettings.for_trained_model(
        dataset="tusimple", height=HEIGHT, width=WIDTH, num_classes=2, embedding_dim=4,
        delta_v=0.5, delta_d=1.5, class_names=["background", "lane"], thing_train_ids=None,
        ignore_label=255, lane_top_trim=0.0)
    model_dir.save(tmp_path / "source", source, settings)
    # A step this small leaves every trainable weight where it was; a fresh start would not.
    config = tiny_config(tmp_path, modeldir=str(tmp_path / "source"), epochs=1, steps_per_epoch=1,
                         learning_rate=1e-12)
    train(config)
    tuned = keras.models.load_model(os.path.join(config.outdir, "model.keras"), safe_mode=True)
    expected = _trainable(source)
    fresh = ENet(num_classes=2, embedding_dim=4)
    fresh.build((None, HEIGHT, WIDTH, 3))
    assert any(value.ndim == 4 and not np.allclose(value, other)
               for value, other in zip(_trainable(fresh), expected, strict=True))
    for value, other in zip(_trainable(tuned), expected, strict=True):
        np.testing.assert_allclose(value, other, atol=1e-6)


def write_tiny_cityscapes_records(directory, frames=(4, 2)):
    """Shards and dataset_info.json as `enet_discrim.data.cityscapes` writes them: road and two
    cars (trainId 13) and a person (11) per frame."""
    os.makedirs(directory)
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "val"), frames):
        with tf.io.TFRecordWriter(os.path.join(directory, writer.shard_name(split, 0, 1))) as out:
            for i in range(count):
                semantic = np.zeros((HEIGHT, WIDTH), np.uint8)  # road
                instance = np.zeros((HEIGHT, WIDTH), np.uint8)
                for k, (train_id, x) in enumerate(((13, 4), (13, 24), (11, 48)), start=1):
                    semantic[10:26, x:x + 12] = train_id
                    instance[10:26, x:x + 12] = k
                image = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                out.write(make_example(image, semantic, instance, f"{split}_{i}.png", "png"))
    writer.write_json_atomic(os.path.join(directory, writer.DATASET_INFO_FILE), {
        "dataset": "cityscapes", "num_classes": 19, "class_names": cityscapes_data.class_names(),
        "ignore_label": 255, "thing_train_ids": cityscapes_data.thing_train_ids(),
        "height": HEIGHT, "width": WIDTH, "counts": dict(zip(("train", "val"), frames))})
    return directory


def test_cityscapes_trains_per_class_in_mixed_precision_and_writes_its_inference_settings(tmp_path):
    """Cityscapes records (19 classes, per-class loss) with --mixed_precision: one run covers both
    paths (each costs a whole tiny training)."""
    write_tiny_cityscapes_records(tmp_path / "records")
    before = keras.mixed_precision.global_policy().name
    config = tiny_config(tmp_path, dataset="cityscapes", embedding_dim=8, epochs=1,
                         steps_per_epoch=1, mixed_precision=True)
    result = train(config)
    assert np.isfinite(result["best_val_loss"])
    assert keras.mixed_precision.global_policy().name == before
    settings = model_dir.load_settings(config.outdir)
    assert settings.dataset == "cityscapes" and settings.num_classes == 19
    assert list(settings.thing_train_ids) == list(range(11, 19)) and settings.embedding_dim == 8
    assert settings.class_names[13] == "car" and settings.lane_top_trim == 0.0
    model = keras.models.load_model(os.path.join(config.outdir, "model.keras"), safe_mode=True)
    assert {weight.dtype for weight in model.weights} == {"float32"}
    outputs = model(np.zeros((1, HEIGHT, WIDTH, 3), np.float32))
    assert outputs["semantic_logits"].shape[-1] == 19 and outputs["embeddings"].shape[-1] == 8


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.skipif(
    not os.environ.get("ENET_DISCRIM_TEST_MULTI_WORKER"),
    reason="two training processes exchanging ~1000 collectives a step over gRPC: minutes on 2 "
           "cores; set ENET_DISCRIM_TEST_MULTI_WORKER=1 to run it")
def test_two_local_workers_train_in_step_and_end_with_the_same_weights(tmp_path):
    """`--strategy multi_worker`: two processes on localhost ports (TF_CONFIG), one global batch
    split between them; after the all-reduced steps both hold the same weights, and both exit
    (the chief, which hosts the coordination service, waits for the other)."""
    write_tiny_records(tmp_path / "records")
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    outdir = tmp_path / "out"
    processes = []
    for index in range(2):
        environment = {**os.environ, "PYTHONPATH": REPO, "TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        command = [sys.executable, os.path.join(REPO, "training.py"), "--strategy", "multi_worker",
                   "--srcdir", str(tmp_path / "records"), "--outdir", str(outdir),
                   "--logdir", str(tmp_path / "log"), "--height", str(HEIGHT), "--width",
                   str(WIDTH), "--batch_size", "2", "--epochs", "1", "--steps_per_epoch", "2"]
        # Output to files: a worker blocked on a full pipe would stall the other's all-reduce.
        log = open(tmp_path / f"worker_{index}.log", "w")
        processes.append((subprocess.Popen(command, env=environment, stdout=log,
                                           stderr=subprocess.STDOUT), log))
    for index, (process, log) in enumerate(processes):
        process.wait(timeout=900)
        log.close()
        output = (tmp_path / f"worker_{index}.log").read_text()
        assert process.returncode == 0, output[-3000:]
    chief = tf.train.latest_checkpoint(outdir / "checkpoints")
    other = tf.train.latest_checkpoint(outdir / "checkpoints" / "worker_1")
    assert chief.endswith("-2") and other.endswith("-2")
    readers = [tf.train.load_checkpoint(path) for path in (chief, other)]
    keys = [key for key in readers[0].get_variable_to_shape_map()
            if "_trainable_variables" in key or key.startswith("model/")]
    assert len(keys) > 100
    for key in keys:
        np.testing.assert_allclose(readers[1].get_tensor(key), readers[0].get_tensor(key),
                                   rtol=1e-5, atol=1e-6, err_msg=key)
    assert (outdir / "model.keras").is_file() and not (outdir / "worker_1").exists()
    assert readers[0].get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 2


@pytest.mark.parametrize("tf_config, message", [
    ("not json {", "TF_CONFIG is not valid JSON"),
    ("[1, 2]", 'TF_CONFIG must be a JSON object with "cluster" and "task", got list'),
    ('{"cluster": {"worker": ["host1"]}, "task": {"type": "worker", "index": 0}}',
     'TF_CONFIG "cluster" must map each task type to a list of "host:port"'),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "ps", "index": 0}}',
     'TF_CONFIG "task" must name a "type" of its cluster'),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
     'TF_CONFIG "task" "index" must be 0..1 for its 2 worker'),
])
def test_a_malformed_tf_config_is_named_before_any_work(monkeypatch, tf_config, message):
    from enet_discrim.training import distribution

    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=re.escape(message)):
        distribution.make_strategy("multi_worker")
    distribution.check_tf_config(
        '{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 1}}')


TWO_WORKERS = {"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 1}}


def test_a_worker_whose_cluster_does_not_start_gives_up_naming_the_silent_task(monkeypatch):
    from enet_discrim.training import distribution

    monkeypatch.setattr(distribution, "_reachable", lambda address, timeout=1.0: False)
    monkeypatch.setattr(distribution.time, "sleep", lambda seconds: None)
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(distribution.time, "monotonic", lambda: next(clock))
    with pytest.raises(distribution.PeerTimeoutError) as error:
        distribution._wait_for_cluster(lambda: pytest.fail("TensorFlow's wait was entered"), TWO_WORKERS, 30)
    assert str(error.value) == ("the cluster did not start within --peer_timeout 30 s: worker 0 at "
                                "localhost:1 does not answer (TF_CONFIG)")


def test_a_worker_joins_once_the_coordinating_task_answers(monkeypatch):
    from enet_discrim.training import distribution

    answers = iter([False, False, True])
    probed = []
    monkeypatch.setattr(distribution, "_reachable", lambda address, timeout=1.0: probed.append(address) or next(answers))
    monkeypatch.setattr(distribution.time, "sleep", lambda seconds: None)
    assert distribution._wait_for_cluster(lambda: "strategy", TWO_WORKERS, 30) == "strategy"
    assert probed == ["localhost:1"] * 3
    # The coordinating task (worker 0) starts its server at once: nothing to wait for first.
    leader = {**TWO_WORKERS, "task": {"type": "worker", "index": 0}}
    assert distribution._wait_for_cluster(lambda: "strategy", leader, 30) == "strategy"
    assert probed == ["localhost:1"] * 3


def test_reachable_tells_a_listening_port_from_a_closed_one():
    import socket

    from enet_discrim.training import distribution

    with socket.create_server(("localhost", 0)) as server:
        port = server.getsockname()[1]
        assert distribution._reachable(f"localhost:{port}")
    assert not distribution._reachable(f"localhost:{port}")


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf")])
def test_peer_timeout_must_be_a_positive_number(tmp_path, value):
    from enet_discrim.training import TrainConfig

    with pytest.raises(ValueError, match="--peer_timeout must be a positive number of seconds"):
        TrainConfig(srcdir=str(tmp_path), outdir=str(tmp_path / "o"), peer_timeout=value).validate()
