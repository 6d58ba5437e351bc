import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.model import ENet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAPER_PARAMETERS = 0.37e6  # Paszke et al. 2016, Table 3


@pytest.fixture(scope="module")
def model():
    model = ENet(num_classes=3, embedding_dim=4)
    model(np.zeros((1, 32, 64, 3), "float32"))
    return model


def random_images(batch, height, width, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3)).astype("float32")


def test_outputs_at_input_resolution_for_any_batch_and_size(model):
    for batch, height, width in [(2, 32, 64), (1, 48, 40)]:
        outputs = model(random_images(batch, height, width))
        assert set(outputs) == {"semantic_logits", "embeddings"}
        assert outputs["semantic_logits"].shape == (batch, height, width, 3)
        assert outputs["embeddings"].shape == (batch, height, width, 4)
        assert outputs["embeddings"].dtype == tf.float32


@pytest.mark.parametrize("shape", [(1, 30, 64, 3), (1, 32, 36, 3), (1, 32, 64, 1), (32, 64, 3)])
def test_bad_input_shape_is_a_clear_error(model, shape):
    with pytest.raises(ValueError, match="multiple of 8|RGB images"):
        model(np.zeros(shape, "float32"))


def test_shared_part_plus_one_branch_has_the_paper_parameter_count():
    model = ENet(num_classes=2, embedding_dim=4)
    model(np.zeros((1, 16, 16, 3), "float32"))
    single_branch = model.encoder.count_params() + model.semantic_branch.count_params()
    assert abs(single_branch - PAPER_PARAMETERS) / PAPER_PARAMETERS < 0.03
    # The embedding branch is a second stage 3 + decoder; only its last layer differs in size.
    assert model.count_params() == single_branch + model.embedding_branch.count_params()
    assert model.embedding_branch.count_params() - model.semantic_branch.count_params() == 2 * (2 * 2 * 16 + 1)


def test_normalisation_is_inside_the_model(model):
    # Raw pixels go in: a constant image of 255 and one of 0 must give different outputs.
    bright = model(np.full((1, 32, 64, 3), 255.0, "float32"))["embeddings"]
    dark = model(np.zeros((1, 32, 64, 3), "float32"))["embeddings"]
    assert not np.allclose(bright, dark)
    assert model.get_layer("rescale").scale == pytest.approx(1 / 127.5)


def test_config_round_trip(model):
    clone = ENet.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert (clone.num_classes, clone.embedding_dim) == (3, 4)


def test_keras_save_and_safe_mode_load_give_the_same_outputs(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, ENet)
    images = random_images(2, 32, 64, seed=1)
    expected, actual = model(images, training=False), loaded(images, training=False)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], atol=1e-5)


def test_one_training_step_gives_finite_gradients_for_every_weight():
    model = ENet(num_classes=2, embedding_dim=3)
    images = random_images(2, 32, 32, seed=2)
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss = tf.reduce_mean(outputs["semantic_logits"] ** 2) + tf.reduce_mean(outputs["embeddings"] ** 2)
    gradients = tape.gradient(loss, model.trainable_weights)
    assert len(gradients) == len(model.trainable_weights) > 0
    for weight, gradient in zip(model.trainable_weights, gradients):
        assert gradient is not None, weight.path
        assert np.all(np.isfinite(gradient)), weight.path
    before = [w.numpy().copy() for w in model.trainable_weights]
    keras.optimizers.Adam(1e-3).apply_gradients(zip(gradients, model.trainable_weights))
    changed = sum(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    assert changed > 0.9 * len(before)


def test_mixed_precision_outputs_stay_float32():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = ENet(num_classes=2, embedding_dim=4)
        outputs = model(random_images(1, 16, 32))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert model.encoder.initial.conv.compute_dtype == "bfloat16"
    assert outputs["embeddings"].dtype == tf.float32
    assert outputs["semantic_logits"].dtype == tf.float32


def test_build_creates_every_weight_without_a_call():
    model = ENet(num_classes=2, embedding_dim=4)
    model.build((None, 256, 512, 3))
    called = ENet(num_classes=2, embedding_dim=4)
    called(np.zeros((1, 16, 16, 3), "float32"))
    assert [tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in called.weights]
    assert model.count_params() == called.count_params() > 0
    with pytest.raises(ValueError, match="multiple of 8"):
        ENet().build((None, 250, 512, 3))


@pytest.mark.slow
def test_importing_the_package_lets_keras_load_the_shipped_model():
    """`import enet_discrim` registers the classes; nothing else of ours is imported by hand."""
    code = ("import enet_discrim, keras; "
            "model = keras.saving.load_model('trained_model/model.keras', safe_mode=True); "
            "print(type(model).__name__, model.num_classes)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ENet", "2"]
