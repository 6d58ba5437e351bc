import keras
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.model import Bottleneck, InitialBlock, MaxPoolingWithArgmax2D, MaxUnpooling2D


def reference_pool_unpool(x):
    """Loop reference: keep each 2x2 window's maximum in place, zero the rest."""
    out = np.zeros_like(x)
    batch, height, width, channels = x.shape
    for b in range(batch):
        for y in range(0, height, 2):
            for xx in range(0, width, 2):
                for c in range(channels):
                    window = x[b, y : y + 2, xx : xx + 2, c]
                    dy, dx = np.unravel_index(np.argmax(window), window.shape)
                    out[b, y + dy, xx + dx, c] = window[dy, dx]
    return out


def test_unpooling_matches_loop_reference():
    x = np.random.default_rng(0).normal(size=(3, 6, 8, 5)).astype("float32")
    pooled, argmax = MaxPoolingWithArgmax2D()(x)
    np.testing.assert_array_equal(pooled, x.reshape(3, 3, 2, 4, 2, 5).max(axis=(2, 4)))
    restored = MaxUnpooling2D()((pooled, argmax))
    np.testing.assert_array_equal(restored, reference_pool_unpool(x))


def test_unpooling_is_batch_safe():
    x = np.random.default_rng(1).normal(size=(4, 4, 6, 3)).astype("float32")
    pool, unpool = MaxPoolingWithArgmax2D(), MaxUnpooling2D()
    whole = unpool(pool(x))
    one_by_one = np.concatenate([unpool(pool(x[i : i + 1])) for i in range(4)])
    np.testing.assert_array_equal(whole, one_by_one)


def test_argmax_is_the_position_inside_each_window():
    x = np.zeros((1, 2, 4, 1), np.float32)
    x[0, 1, 0, 0] = 5.0  # window 0: (dy, dx) = (1, 0) -> 2
    x[0, 0, 3, 0] = 7.0  # window 1: (0, 1) -> 1
    _, argmax = MaxPoolingWithArgmax2D()(x)
    assert argmax.numpy().ravel().tolist() == [2, 1]


def test_unpooling_gradient_reaches_the_pooled_values():
    x = np.random.default_rng(2).normal(size=(2, 4, 4, 2)).astype("float32")
    weights = np.random.default_rng(3).normal(size=x.shape).astype("float32")
    pooled, argmax = MaxPoolingWithArgmax2D()(x)
    with tf.GradientTape() as tape:
        tape.watch(pooled)
        loss = tf.reduce_sum(MaxUnpooling2D()((pooled, argmax)) * weights)
    gradient = tape.gradient(loss, pooled)
    # Each pooled value reaches exactly the weight at the position of its window's maximum.
    expected = np.where(reference_pool_unpool(x) != 0, weights, 0).reshape(2, 2, 2, 2, 2, 2).sum(axis=(2, 4))
    np.testing.assert_allclose(gradient, expected, rtol=1e-6)


def test_unpooling_inside_tf_function_with_unknown_shapes():
    pool, unpool = MaxPoolingWithArgmax2D(), MaxUnpooling2D()

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 2])])
    def roundtrip(x):
        return unpool(pool(x))

    x = np.random.default_rng(4).normal(size=(2, 4, 6, 2)).astype("float32")
    np.testing.assert_array_equal(roundtrip(x), reference_pool_unpool(x))


@pytest.mark.parametrize(
    "kwargs, channels, output_size",
    [
        ({"filters": 16, "kind": "regular"}, 16, 8),
        ({"filters": 16, "kind": "regular", "dilation_rate": 4}, 16, 8),
        ({"filters": 16, "kind": "asymmetric", "asymmetric_size": 5}, 16, 8),
        ({"filters": 32, "kind": "downsampling"}, 16, 4),
    ],
)
def test_bottleneck_shapes_config_and_save(kwargs, channels, output_size, tmp_path):
    block = Bottleneck(**kwargs, dropout_rate=0.1)
    x = np.random.default_rng(5).normal(size=(2, 8, 8, channels)).astype("float32")
    output = block(x)
    argmax = None
    if kwargs["kind"] == "downsampling":
        output, argmax = output
        assert argmax.shape == (2, 4, 4, channels)
    assert output.shape == (2, output_size, output_size, kwargs["filters"])

    clone = Bottleneck.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    # Dropout is off outside training, so the call is deterministic.
    first = block(x, training=False)
    second = tf.function(lambda t: block(t, training=False))(x)
    tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), first, second)


def test_upsampling_bottleneck_restores_the_downsampled_size():
    x = np.random.default_rng(6).normal(size=(2, 8, 8, 16)).astype("float32")
    down = Bottleneck(64, "downsampling")
    up = Bottleneck(16, "upsampling")
    features, argmax = down(x)
    output = up((features, argmax))
    assert output.shape == (2, 8, 8, 16)
    assert up.get_config()["kind"] == "upsampling"


def test_regular_bottleneck_rejects_a_width_change():
    with pytest.raises(ValueError, match="keeps its width"):
        Bottleneck(32, "regular")(np.zeros((1, 8, 8, 16), "float32"))


def test_unknown_bottleneck_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        Bottleneck(16, "dilated")


def test_initial_block_concatenates_conv_and_pool():
    block = InitialBlock()
    output = block(np.zeros((1, 16, 32, 3), "float32"))
    assert output.shape == (1, 8, 16, 16)
    # 3x3x3x13 kernel + 13 biases, BN (4 x 16), PReLU (16).
    assert block.count_params() == 3 * 3 * 3 * 13 + 13 + 4 * 16 + 16
    assert InitialBlock.from_config(block.get_config()).filters == 13
