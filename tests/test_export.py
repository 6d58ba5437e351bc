import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from enet_discrim import export
from enet_discrim.model import ENet
from enet_discrim.training import TrainConfig, save_model

HEIGHT, WIDTH = 32, 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("model")
    model = ENet(num_classes=2, embedding_dim=4)
    model.build((None, HEIGHT, WIDTH, 3))
    # Non-trivial batch-norm statistics, so that inference mode is really exercised.
    rng = np.random.default_rng(0)
    for weight in model.non_trainable_weights:
        if weight.path.endswith("moving_mean"):
            weight.assign(rng.normal(0.0, 0.1, weight.shape).astype("float32"))
        elif weight.path.endswith("moving_variance"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    save_model(model, TrainConfig(outdir=str(outdir), height=HEIGHT, width=WIDTH),
               {"num_classes": 2, "class_names": ["background", "lane"]})
    images = np.random.default_rng(1).integers(0, 256, (2, HEIGHT, WIDTH, 3), dtype=np.uint8)
    outputs = model(images.astype(np.float32), training=False)
    assert np.abs(outputs["embeddings"]).max() > 0.01  # a model that computes something
    expected = {
        "semantic_probabilities": tf.nn.softmax(outputs["semantic_logits"]).numpy(),
        "embeddings": outputs["embeddings"].numpy(),
    }
    return str(outdir), images, expected


def test_saved_model_serving_signature_matches_keras(trained, tmp_path):
    modeldir, images, expected = trained
    path = export.export(modeldir, str(tmp_path / "saved"), "saved_model")
    serving = tf.saved_model.load(path).signatures["serving_default"]
    outputs = serving(images=tf.constant(images))
    assert set(outputs) == {"semantic_probabilities", "embeddings"}
    for key, value in expected.items():
        np.testing.assert_allclose(outputs[key].numpy(), value, atol=1e-5)


@pytest.mark.slow
def test_tflite_matches_keras_within_1e_3(trained, tmp_path):
    modeldir, images, expected = trained
    assert export.main(["--modeldir", modeldir, "--outdir", str(tmp_path / "lite"), "--format", "tflite"]) == 0
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "lite" / "model.tflite"))
    interpreter.allocate_tensors()
    (image_input,) = interpreter.get_input_details()
    (output,) = interpreter.get_output_details()
    assert image_input["dtype"] == np.uint8 and list(image_input["shape"]) == [1, HEIGHT, WIDTH, 3]
    assert list(output["shape"]) == [1, HEIGHT, WIDTH, 2 + 4]
    for i in range(len(images)):
        interpreter.set_tensor(image_input["index"], images[i : i + 1])
        interpreter.invoke()
        result = interpreter.get_tensor(output["index"])[0]
        np.testing.assert_allclose(result[..., :2], expected["semantic_probabilities"][i], atol=1e-3)
        np.testing.assert_allclose(result[..., 2:], expected["embeddings"][i], atol=1e-3)


def test_export_errors_are_clear(tmp_path, capsys):
    assert export.main(["--modeldir", str(tmp_path), "--outdir", str(tmp_path / "x")]) == 2
    assert "missing model.keras and config.json" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown format 'onnx'"):
        export.export(str(tmp_path), str(tmp_path / "x"), "onnx")


class _Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs in the killed call."""


def _load_outputs(path, images):
    serving = tf.saved_model.load(path).signatures["serving_default"]
    return {key: value.numpy() for key, value in serving(images=tf.constant(images)).items()}


@pytest.mark.slow
def test_a_killed_re_export_leaves_the_earlier_saved_model_loadable(trained, tmp_path, monkeypatch):
    # Issue 15 item 1: killed while rewriting variables.data, the earlier export no longer loaded.
    modeldir, images, expected = trained
    outdir = tmp_path / "exported"
    export.export(modeldir, str(outdir), "saved_model")
    (outdir / "model.tflite").write_bytes(b"an earlier TFLite export")
    model = ENet(num_classes=2, embedding_dim=4)  # other random weights
    model.build((None, HEIGHT, WIDTH, 3))
    other_modeldir = str(tmp_path / "model2")
    save_model(model, TrainConfig(outdir=other_modeldir, height=HEIGHT, width=WIDTH),
               {"num_classes": 2, "class_names": ["background", "lane"]})
    outputs = model(images.astype(np.float32), training=False)
    other_expected = {"semantic_probabilities": tf.nn.softmax(outputs["semantic_logits"]).numpy(),
                      "embeddings": outputs["embeddings"].numpy()}
    assert not np.allclose(other_expected["embeddings"], expected["embeddings"], atol=1e-3)

    real_save = tf.saved_model.save

    def killed_while_writing_variables(module, export_dir, signatures=None):
        scratch = tmp_path / "scratch"
        real_save(module, str(scratch), signatures=signatures)
        os.makedirs(os.path.join(export_dir, "variables"), exist_ok=True)
        for name in os.listdir(scratch / "variables"):
            if name.startswith("variables.data"):  # the new data, not yet its index
                shutil.copy(scratch / "variables" / name, os.path.join(export_dir, "variables"))
        raise _Killed()

    monkeypatch.setattr(tf.saved_model, "save", killed_while_writing_variables)
    with pytest.raises(_Killed):
        export.export(other_modeldir, str(outdir), "saved_model")
    monkeypatch.setattr(tf.saved_model, "save", real_save)
    for key, value in _load_outputs(str(outdir), images).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-5)

    # A re-export that finishes replaces the SavedModel and keeps the other files of the folder.
    export.export(other_modeldir, str(outdir), "saved_model")
    for key, value in _load_outputs(str(outdir), images).items():
        np.testing.assert_allclose(value, other_expected[key], atol=1e-5)
    assert (outdir / "model.tflite").read_bytes() == b"an earlier TFLite export"
    assert sorted(os.listdir(tmp_path)) == ["exported", "model2", "scratch"]  # no leftovers
