import os

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
