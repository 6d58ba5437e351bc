"""The tf.data pipeline: augmentation keeps image and labels consistent; batch shapes and dtypes."""
import os

import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.data import build_dataset
from enet_discrim.data import find_shards
from enet_discrim.data import flip_left_right
from enet_discrim.data import make_example
from enet_discrim.data import parse_fn
from enet_discrim.data import writer


def _frame(height, width, seed=0):
    """A frame whose image encodes its labels: red = 40 * instance id, green = 100 * semantic."""
    rng = np.random.default_rng(seed)
    instance = np.zeros((height, width), np.int32)
    for instance_id in (1, 2, 3):  # three rectangles, off-centre so a flip moves them.
        top, left = rng.integers(0, height - 2), rng.integers(0, width // 2)
        instance[top:top + 3, left:left + width // 3] = instance_id
    semantic = (instance > 0).astype(np.uint8)
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = 40 * instance
    image[..., 1] = 100 * semantic
    image[..., 2] = np.arange(width, dtype=np.uint8)[None, :] * 3  # a ramp: flips are visible.
    return image, semantic, instance


def _serialized(height, width, seed=0):
    image, semantic, instance = _frame(height, width, seed)
    return make_example(image, semantic, instance, f"frame{seed}.png", image_format="png")


def _write_shards(folder, split, num_frames, height, width, shard_size=3):
    with writer.ShardWriter(str(folder), [split], shard_size) as shard_writer:
        for seed in range(num_frames):
            shard_writer.write(split, _serialized(height, width, seed))
        return shard_writer.commit()[split]


def test_flip_moves_each_instance_to_its_mirrored_pixels():
    image, semantic, instance = _frame(8, 12)
    flipped_image, flipped_semantic, flipped_instance = [
        tensor.numpy() for tensor in flip_left_right(image, semantic, instance)]
    for instance_id in (1, 2, 3):
        rows, columns = np.nonzero(instance == instance_id)
        expected = set(zip(rows, 11 - columns))
        assert set(zip(*np.nonzero(flipped_instance == instance_id))) == expected
    np.testing.assert_array_equal(flipped_image, image[:, ::-1])
    np.testing.assert_array_equal(flipped_semantic, semantic[:, ::-1])


def test_training_flip_keeps_image_and_labels_together():
    tf.random.set_seed(3)
    image, semantic, instance = _frame(8, 12)
    parse = parse_fn(True, 8, 12, scale_range=None, color_jitter=False)
    serialized = tf.constant(_serialized(8, 12))
    seen = set()
    for _ in range(16):
        out_image, labels = parse(serialized)
        out_image = out_image.numpy()
        flipped = bool(out_image[0, 0, 2] != image[0, 0, 2])
        seen.add(flipped)
        mirror = (lambda array: array[:, ::-1]) if flipped else (lambda array: array)
        np.testing.assert_array_equal(out_image, mirror(image).astype(np.float32))
        np.testing.assert_array_equal(labels["semantic"].numpy(), mirror(semantic))
        np.testing.assert_array_equal(labels["instance"].numpy(), mirror(instance))
    assert seen == {True, False}


def test_colour_jitter_changes_the_image_only_within_0_255():
    tf.random.set_seed(5)
    image, semantic, instance = _frame(8, 12)
    parse = parse_fn(True, 8, 12, scale_range=None, flip=False, brightness_delta=0.5)
    out_image, labels = parse(tf.constant(_serialized(8, 12)))
    assert not np.array_equal(out_image.numpy(), image.astype(np.float32))
    assert out_image.numpy().min() >= 0 and out_image.numpy().max() <= 255
    np.testing.assert_array_equal(labels["semantic"].numpy(), semantic)
    np.testing.assert_array_equal(labels["instance"].numpy(), instance)


def test_scaling_down_pads_labels_with_ignore_and_no_instance():
    tf.random.set_seed(7)
    # Labels in 2x2 blocks, so halving the size samples whole blocks for image and labels alike.
    image, semantic, instance = [np.repeat(np.repeat(array, 2, 0), 2, 1) for array in _frame(8, 12)]
    serialized = make_example(image, semantic, instance, "blocks.png", image_format="png")
    parse = parse_fn(True, 16, 24, scale_range=(0.5, 0.5), flip=False, color_jitter=False)
    out_image, labels = parse(tf.constant(serialized))
    out_semantic, out_instance = labels["semantic"].numpy(), labels["instance"].numpy()
    padding = out_semantic == 255
    assert padding.sum() == 16 * 24 - 8 * 12
    assert not out_instance[padding].any() and not out_image.numpy()[padding].any()
    # The scaled frame is an 8x12 block; its labels still match the colours that encode them.
    inside = ~padding
    np.testing.assert_array_equal(out_image.numpy()[..., 0][inside], 40.0 * out_instance[inside])
    assert sorted(np.unique(out_instance[inside])) == [0, 1, 2, 3]


def test_random_scale_up_crops_to_the_fixed_size_with_consistent_labels():
    tf.random.set_seed(11)
    parse = parse_fn(True, 16, 24, scale_range=(1.5, 2.0), flip=True, color_jitter=False)
    for _ in range(4):
        image, labels = parse(tf.constant(_serialized(16, 24)))
        assert image.shape == (16, 24, 3)
        semantic, instance = labels["semantic"].numpy(), labels["instance"].numpy()
        assert set(np.unique(semantic)) <= {0, 1} and set(np.unique(instance)) <= {0, 1, 2, 3}
        np.testing.assert_array_equal(semantic, (instance > 0).astype(semantic.dtype))


def test_crops_are_full_resolution_windows_and_evaluation_keeps_the_whole_frame():
    tf.random.set_seed(3)
    image, semantic, instance = _frame(16, 24)
    serialized = tf.constant(make_example(image, semantic, instance, "f.png", image_format="png"))
    parse = parse_fn(True, 16, 24, scale_range=None, flip=False, color_jitter=False, crop_size=(8, 16))
    lefts = set()
    for _ in range(12):
        out_image, labels = parse(serialized)
        assert out_image.shape == (8, 16, 3)
        out_image = out_image.numpy().astype(np.uint8)
        # The blue ramp gives the window's column, the red / green channels its labels.
        left = int(out_image[0, 0, 2]) // 3
        tops = [top for top in range(16 - 8 + 1)
                if np.array_equal(out_image, image[top:top + 8, left:left + 16])]
        assert tops, "the crop is not a window of the frame"
        np.testing.assert_array_equal(labels["instance"].numpy(), instance[tops[0]:tops[0] + 8, left:left + 16])
        np.testing.assert_array_equal(labels["semantic"].numpy(), semantic[tops[0]:tops[0] + 8, left:left + 16])
        lefts.add(left)
    assert len(lefts) > 1
    whole, _ = parse_fn(False, 16, 24, crop_size=(8, 16))(serialized)
    np.testing.assert_array_equal(whole.numpy(), image.astype(np.float32))


def test_crops_of_a_scaled_frame_keep_labels_with_their_pixels():
    tf.random.set_seed(13)
    parse = parse_fn(True, 16, 24, scale_range=(2.0, 2.0), flip=True, color_jitter=False, crop_size=(8, 8))
    for _ in range(6):
        out_image, labels = parse(tf.constant(_serialized(16, 24)))
        assert out_image.shape == (8, 8, 3)
        instance = labels["instance"].numpy()
        # Nearest-neighbour labels against the bilinear image: compare away from the edges.
        red = out_image.numpy()[..., 0]
        interior = np.ones_like(instance, bool)
        for shift in ((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
            interior &= np.roll(instance, shift, (0, 1)) == instance
        interior[[0, -1], :] = interior[:, [0, -1]] = False
        assert interior.any()
        np.testing.assert_allclose(red[interior], 40.0 * instance[interior], atol=1)


def test_evaluation_resizes_a_different_stored_size_with_nearest_labels():
    image, semantic, instance = _frame(8, 12)
    parse = parse_fn(False, 16, 24)
    out_image, labels = parse(tf.constant(_serialized(8, 12)))
    assert out_image.shape == (16, 24, 3) and out_image.dtype == tf.float32
    np.testing.assert_array_equal(labels["instance"].numpy(), np.kron(instance, np.ones((2, 2), int)))
    np.testing.assert_array_equal(labels["semantic"].numpy(), np.kron(semantic, np.ones((2, 2), int)))


@pytest.mark.parametrize("is_training", [True, False])
def test_build_dataset_batch_shapes_and_dtypes(tmp_path, is_training):
    paths = _write_shards(tmp_path, "train", 7, 8, 12)
    dataset = build_dataset(str(tmp_path / "train-*.tfrecord"), batch_size=3, height=16, width=24,
                            is_training=is_training, seed=1)
    batches = list(dataset)
    assert len(paths) == 3
    # Training drops the incomplete last batch by default, evaluation keeps it.
    assert [len(image) for image, _ in batches] == ([3, 3] if is_training else [3, 3, 1])
    image, labels = batches[0]
    assert image.dtype == tf.float32 and image.shape == (3, 16, 24, 3)
    assert set(labels) == {"semantic", "instance"}
    for label in labels.values():
        assert label.dtype == tf.int32 and label.shape == (3, 16, 24)
    assert 0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 255


def test_build_dataset_from_a_list_in_order_and_repeat(tmp_path):
    paths = _write_shards(tmp_path, "val", 4, 8, 12)
    dataset = build_dataset(paths, batch_size=2, height=8, width=12, is_training=False)
    instances = np.concatenate([labels["instance"].numpy() for _, labels in dataset])
    expected = np.stack([_frame(8, 12, seed)[2] for seed in range(4)])
    np.testing.assert_array_equal(instances, expected)
    repeated = build_dataset(paths, batch_size=3, height=8, width=12, is_training=True, repeat=True)
    assert len(list(repeated.take(5))) == 5  # more batches than the 4 frames hold.


def test_missing_files_are_a_clear_error(tmp_path):
    pattern = str(tmp_path / "nothing-*.tfrecord")
    with pytest.raises(ValueError, match="no TFRecord files match the pattern .*nothing-"):
        build_dataset(pattern, 2, 8, 12, is_training=True)
    with pytest.raises(ValueError, match="empty list"):
        build_dataset([], 2, 8, 12, is_training=True)
    with pytest.raises(ValueError, match="do not exist.*gone.tfrecord"):
        build_dataset([str(tmp_path / "gone.tfrecord")], 2, 8, 12, is_training=False)


def test_find_shards_wants_one_complete_set(tmp_path):
    paths = _write_shards(tmp_path, "train", 7, 8, 12)
    os.makedirs(tmp_path / ".tmp-convert-stale")  # left by a killed run: ignored.
    (tmp_path / ".tmp-convert-stale" / "train-00000").write_bytes(b"")
    assert find_shards(str(tmp_path), "train") == paths
    with pytest.raises(ValueError, match="no 'val' shards"):
        find_shards(str(tmp_path), "val")
    os.remove(paths[1])
    with pytest.raises(ValueError, match=r"incomplete .*missing \['train-00001-of-00003.tfrecord'\]"):
        find_shards(str(tmp_path), "train")
