"""The TFRecord schema: make_example -> decode_example round trips every key."""
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.data import schema


def _frame(height=6, width=10):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    semantic = rng.integers(0, 3, (height, width), dtype=np.uint8)
    semantic[0, 0] = schema.IGNORE_LABEL
    instance = rng.integers(0, 4, (height, width)).astype(np.int32)
    instance[1, 1] = 40000  # above int16, below uint16: checks the 16-bit PNG path end to end.
    return image, semantic, instance


def test_png_round_trip_of_every_key():
    image, semantic, instance = _frame()
    serialized = schema.make_example(image, semantic, instance, "clips/0313-1/6040/20.jpg",
                                     image_format="png")
    decoded = schema.decode_example(tf.constant(serialized))
    assert set(decoded) == {"image", "semantic", "instance", "filename", "height", "width"}
    assert decoded["image"].dtype == tf.uint8 and decoded["semantic"].dtype == tf.uint8
    assert decoded["instance"].dtype == tf.int32
    np.testing.assert_array_equal(decoded["image"].numpy(), image)
    np.testing.assert_array_equal(decoded["semantic"].numpy(), semantic)
    np.testing.assert_array_equal(decoded["instance"].numpy(), instance)
    assert decoded["filename"].numpy().decode() == "clips/0313-1/6040/20.jpg"
    assert (decoded["height"].numpy(), decoded["width"].numpy()) == (6, 10)


def test_jpeg_image_is_close_and_rgb_order_kept():
    image = np.zeros((16, 16, 3), np.uint8)
    image[..., 0] = 200  # pure red: a BGR/RGB swap would put it in channel 2.
    semantic = np.zeros((16, 16), np.uint8)
    serialized = schema.make_example(image, semantic, semantic.astype(np.int32), "a.jpg")
    decoded = schema.decode_example(tf.constant(serialized))["image"].numpy().astype(int)
    assert abs(decoded[..., 0].mean() - 200) < 3
    assert decoded[..., 2].mean() < 3


def test_decoder_works_inside_tf_data_map():
    image, semantic, instance = _frame()
    serialized = schema.make_example(image, semantic, instance, "x.png", image_format="png")
    dataset = tf.data.Dataset.from_tensor_slices([serialized] * 2).map(schema.decode_example)
    for decoded in dataset:
        np.testing.assert_array_equal(decoded["instance"].numpy(), instance)


@pytest.mark.parametrize("change, message", [
    (lambda i, s, n: (i[..., 0], s, n), "image must be uint8"),
    (lambda i, s, n: (i, s[:-1], n), "semantic must be uint8"),
    (lambda i, s, n: (i, s, n[:, :-1]), "instance must be"),
    (lambda i, s, n: (i, s, n - 1), "instance ids must lie in 0..65535"),
])
def test_make_example_rejects_bad_arrays(change, message):
    with pytest.raises(ValueError, match=message):
        schema.make_example(*change(*_frame()), "x.png")
