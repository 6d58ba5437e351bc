"""One preprocessing for training and serving: a frame reaches the network as the same pixels.

The converters store frames resized by `formats.images.resize_image`, the pipeline resizes stored
frames of another size with it when not augmenting, and the predictor prepares frames with it
(`predictor.network_input`). Frames are JPEG-stored, so "the same tensor" is checked where it can
be exact: the stored bytes are the JPEG of `network_input(frame)`, the pipeline decodes them
unchanged, and a stored frame of another size comes out as `network_input` of its decoded pixels.
"""
import cv2
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim import predictor
from enet_discrim.data import cityscapes, pipeline, schema
from enet_discrim.data import tusimple
from enet_discrim.formats import images
from enet_discrim.formats.tusimple import H_SAMPLES

HEIGHT, WIDTH = 32, 64


def _noise(height, width, seed=0):
    """uint8 RGB noise over a gradient: area averaging and bilinear sampling disagree on it."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 120, width, dtype=np.float32)[None, :, None]
    noise = rng.integers(0, 136, (height, width, 3))
    return (ramp + noise).astype(np.uint8)


def _stored_bytes(serialized):
    features = tf.io.parse_single_example(serialized, schema.FEATURE_SPEC)
    return features[schema.IMAGE_ENCODED].numpy()


def _pipeline_image(serialized, height=HEIGHT, width=WIDTH, **augmentation):
    image, labels = pipeline.parse_fn(False, height, width, **augmentation)(tf.constant(serialized))
    assert image.dtype == tf.float32 and labels["semantic"].shape == (height, width)
    return image.numpy()


def _tusimple_example(tmp_path, frame_rgb):
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
    lane = [-2 if y < 300 else 600 for y in H_SAMPLES]
    payload = {"path": str(path), "filename": "clips/0/frame.png", "lanes": [lane],
               "h_samples": list(H_SAMPLES)}
    return tusimple.build_example(payload, HEIGHT, WIDTH)


def test_resize_image_averages_when_shrinking_and_keeps_a_frame_of_the_size():
    # 2x2 blocks of a, a+2, a+4, a+6: their mean a+3 is exact, no rounding to disagree on.
    base = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    image = np.kron(base, np.ones((2, 2), np.uint8)) + np.tile([[0, 2], [4, 6]], (3, 4)).astype(np.uint8)
    np.testing.assert_array_equal(images.resize_image(image, 3, 4), base + 3)
    assert images.resize_image(image, 6, 8) is image
    # Enlarging is bilinear: halfway between two pixels lies their mean.
    row = np.array([[0, 100]], np.uint8)
    assert images.resize_image(row, 1, 4).tolist() == [[0, 25, 75, 100]]
    with pytest.raises(ValueError, match="uint8"):
        images.resize_image(image.astype(np.float32), 3, 4)
    with pytest.raises(ValueError, match="at least 1 x 1"):
        images.resize_image(image, 0, 4)


def test_frame_converted_at_training_size_reaches_the_network_as_in_serving(tmp_path):
    frame = _noise(720, 1280)
    serialized = _tusimple_example(tmp_path, frame)
    served = predictor.network_input(frame, HEIGHT, WIDTH)
    # The converter stored exactly the JPEG of what serving feeds the network ...
    assert _stored_bytes(serialized) == schema.encode_image(served, tusimple.IMAGE_FORMAT,
                                                            tusimple.JPEG_QUALITY)
    # ... and the pipeline passes its pixels on unchanged, decoded as OpenCV (serving's reader)
    # decodes that JPEG.
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(_stored_bytes(serialized), np.uint8),
                                        cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(_pipeline_image(serialized), decoded.astype(np.float32))
    # The old converter-vs-serving skew would show: a bilinear resize stores other pixels.
    bilinear = cv2.resize(frame, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    assert np.abs(bilinear.astype(int) - served.astype(int)).mean() > 5


@pytest.mark.parametrize("stored_size", [(72, 128), (20, 40)], ids=["shrink", "enlarge"])
def test_stored_frame_of_another_size_is_resized_as_serving_resizes_it(stored_size):
    stored = _noise(*stored_size, seed=1)
    semantic = np.zeros(stored_size, np.uint8)
    instance = np.zeros(stored_size, np.uint16)
    serialized = schema.make_example(stored, semantic, instance, "f.png", image_format="png")
    expected = predictor.network_input(stored, HEIGHT, WIDTH).astype(np.float32)
    np.testing.assert_array_equal(_pipeline_image(serialized), expected)
    # Training without augmentation gives the same tensor as evaluation.
    image, _ = pipeline.parse_fn(True, HEIGHT, WIDTH, scale_range=None, flip=False,
                                 color_jitter=False)(tf.constant(serialized))
    np.testing.assert_array_equal(image.numpy(), expected)
    # TensorFlow's bilinear resize, what the pipeline used before, would not pass.
    tf_bilinear = tf.image.resize(stored, [HEIGHT, WIDTH], method="bilinear").numpy()
    assert not np.array_equal(np.round(tf_bilinear), expected)


def test_converters_and_the_predictor_resize_with_the_one_function(tmp_path, monkeypatch):
    calls = []
    original = images.resize_image

    def recording(image, height, width):
        calls.append((image.shape, height, width))
        return original(image, height, width)

    monkeypatch.setattr(images, "resize_image", recording)
    frame = _noise(720, 1280)
    _tusimple_example(tmp_path, frame)
    assert calls == [((720, 1280, 3), HEIGHT, WIDTH)]

    label_ids = np.full((64, 128), 7, np.uint8)  # 7: road
    paths = {"image": tmp_path / "a_leftImg8bit.png", "label_ids": tmp_path / "a_labelIds.png",
             "instance_ids": tmp_path / "a_instanceIds.png"}
    cv2.imwrite(str(paths["image"]), _noise(64, 128, seed=2))
    cv2.imwrite(str(paths["label_ids"]), label_ids)
    cv2.imwrite(str(paths["instance_ids"]), label_ids.astype(np.uint16))
    payload = {name: str(path) for name, path in paths.items()} | {"filename": "a.png"}
    cityscapes.build_example(payload, HEIGHT, WIDTH, cityscapes.train_id_table())
    assert calls[1:] == [((64, 128, 3), HEIGHT, WIDTH)]

    predictor.network_input(frame, HEIGHT, WIDTH)
    assert calls[2:] == [((720, 1280, 3), HEIGHT, WIDTH)]


def test_stored_jpeg_is_decoded_as_opencv_decodes_it(tmp_path):
    serialized = _tusimple_example(tmp_path, _noise(720, 1280))
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(_stored_bytes(serialized), np.uint8),
                                        cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(_pipeline_image(serialized), decoded.astype(np.float32))
