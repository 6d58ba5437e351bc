"""The tf.data input pipeline: TFRecord shards -> batches of (image, {"semantic", "instance"}).

    files -> (interleave when training) -> shuffle -> decode + resize/augment -> batch -> prefetch

Each element is `(image float32 [B, H, W, 3] in 0..255, {"semantic": int32 [B, H, W],
"instance": int32 [B, H, W]})`: semantic holds class ids (255 = ignore), instance 0 (none) or the
frame's instance ids 1..K.
"""
import os
import re

import tensorflow as tf

from enet_discrim.data import schema
from enet_discrim.data import writer
from enet_discrim.formats import images

DEFAULT_SCALE_RANGE = (0.75, 1.25)
DEFAULT_BRIGHTNESS_DELTA = 32.0 / 255.0
DEFAULT_CONTRAST_RANGE = (0.8, 1.2)
DEFAULT_SATURATION_RANGE = (0.8, 1.2)


def has_shards(srcdir, split):
    """Whether folder `srcdir` holds any shard of `split` (complete or not: see `find_shards`)."""
    return os.path.isdir(srcdir) and any(
        (writer.parse_shard_name(name) or ("",))[0] == split for name in os.listdir(srcdir))


def find_shards(srcdir, split):
    """The complete shard set `SPLIT-xxxxx-of-NNNNN.tfrecord` of one split in `srcdir`.

    Args:
        srcdir: folder written by a converter.
        split: e.g. "train" or "val".

    Returns:
        Sorted list of the N shard paths.

    Raises:
        ValueError: no shard of that split, or the shards found do not form one complete set
            (e.g. some missing, or left over from runs with different shard counts).
    """
    if not os.path.isdir(srcdir):
        raise ValueError(f"shard folder does not exist: {srcdir}")
    found = {}
    for name in os.listdir(srcdir):
        parsed = writer.parse_shard_name(name)
        if parsed is not None and parsed[0] == split:
            found[(parsed[2], parsed[1])] = os.path.join(srcdir, name)
    if not found:
        raise ValueError(f"no {split!r} shards ({split}-00000-of-NNNNN.tfrecord) in {srcdir}")
    counts = {count for count, _ in found}
    expected = {(count, index) for count in counts for index in range(count)}
    if len(counts) != 1 or set(found) != expected:
        missing = sorted(writer.shard_name(split, index, count) for count, index in expected - set(found))
        raise ValueError(f"incomplete or mixed {split!r} shard set in {srcdir}: shard counts "
                         f"{sorted(counts)}, missing {missing}")
    return [found[key] for key in sorted(found)]


def resolve_files(file_pattern):
    """Expands a glob string, or checks a list of paths.

    Args:
        file_pattern: a glob string, or a list/tuple of file paths.

    Returns:
        list of existing file paths (a glob's matches sorted).

    Raises:
        ValueError: nothing matches, the list is empty, or a listed file does not exist.
    """
    if isinstance(file_pattern, (str, os.PathLike)):
        pattern = os.fspath(file_pattern)
        files = sorted(tf.io.gfile.glob(pattern))
        if not files:
            raise ValueError(f"no TFRecord files match the pattern {pattern!r}")
        return files
    files = [os.fspath(path) for path in file_pattern]
    if not files:
        raise ValueError(f"file_pattern is an empty list: {file_pattern!r}")
    missing = [path for path in files if not tf.io.gfile.exists(path)]
    if missing:
        raise ValueError(f"TFRecord files do not exist: {missing}")
    return files


def check_records(files):
    """Reads every record of each TFRecord file, checking its framing and checksums.

    A reader of a truncated or corrupt file fails with `tf.errors.DataLossError` naming only an
    offset; this names the file. It reads whole files, so callers run it after such an error
    rather than before every run.

    Args:
        files: TFRecord paths.

    Raises:
        ValueError: `PATH: unreadable TFRecord (REASON)`, one line, for the first bad file.
    """
    for path in files:
        try:
            tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64), _count_record)
        except tf.errors.DataLossError as error:
            raise ValueError(f"{path}: unreadable TFRecord ({_error_reason(error.message)}); "
                             "convert the dataset again") from None


def check_examples(files):
    """Decodes every Example of each TFRecord file (`schema.decode_example`), one at a time.

    A record whose framing and checksum are good can still hold an image that does not decode
    (a broken JPEG); the input pipeline then fails naming neither file nor record. Run after
    such an error: it reads and decodes everything.

    Args:
        files: TFRecord paths.

    Raises:
        ValueError: `PATH: record N (FRAME): ...`, one line, for the first record that does not
            decode (`check_records`' error for a file that does not read).
    """
    check_records(files)
    for path in files:
        for index, serialized in enumerate(tf.data.TFRecordDataset(path)):
            try:
                schema.decode_example(serialized)
            except (tf.errors.InvalidArgumentError, ValueError) as error:
                try:
                    frame = tf.io.parse_single_example(serialized, schema.FEATURE_SPEC)[
                        schema.IMAGE_FILENAME].numpy().decode("utf-8", "replace")
                except (tf.errors.InvalidArgumentError, ValueError):
                    frame = "not an Example of this schema"
                reason = _error_reason(getattr(error, "message", str(error)))
                raise ValueError(f"{path}: record {index} ({frame}) does not decode ({reason}); "
                                 "convert the dataset again") from None


def _count_record(count, _):
    return count + 1


def _error_reason(message):
    """A TensorFlow error message on one line, without its `{{function_node ...}}` and op."""
    message = re.sub(r"\{\{[^}]*\}\}", "", message)
    message = re.sub(r"\s*\[Op:[^\]]*\].*", "", message)
    return " ".join(message.split())


def _resize_labels(semantic, instance, size):
    """Both label maps [h, w] resized to `size` with nearest neighbour (dtypes kept)."""
    semantic = tf.image.resize(semantic[..., None], size, method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
    instance = tf.image.resize(instance[..., None], size, method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
    return semantic[..., 0], instance[..., 0]


def _resize_all(image, semantic, instance, size):
    """Resizes the image bilinearly and both label maps with nearest neighbour to `size`."""
    image = tf.image.resize(image, size, method=tf.image.ResizeMethod.BILINEAR)
    return (image,) + _resize_labels(semantic, instance, size)


def _resize_stored(image, semantic, instance, height, width):
    """A stored frame at height x width as serving would see it: the image through
    `formats.images.resize_image` (the converters' and the predictor's resize, run as NumPy), the
    label maps with nearest neighbour. `image` is uint8 [h, w, 3]."""
    image = tf.numpy_function(lambda pixels: images.resize_image(pixels, height, width), [image],
                              tf.uint8, stateful=False)
    image.set_shape([height, width, 3])
    semantic, instance = _resize_labels(semantic, instance, [height, width])
    return image, tf.cast(semantic, tf.uint8), instance


def _jitter_colours(image, brightness_delta, contrast_range, saturation_range):
    """Random brightness, contrast and saturation of a float image in 0..255; result clipped."""
    unit = image / 255.0  # tf.image's colour ops assume float images in 0..1.
    unit = tf.image.random_brightness(unit, brightness_delta)
    unit = tf.image.random_contrast(unit, *contrast_range)
    unit = tf.image.random_saturation(unit, *saturation_range)
    return tf.clip_by_value(unit * 255.0, 0.0, 255.0)


def _random_scale_and_crop(image, semantic, instance, height, width, scale_range, crop_size):
    """Rescales by a random factor around height x width, then pads/crops to `crop_size`."""
    scale = tf.random.uniform([], scale_range[0], scale_range[1])
    scaled_height = tf.maximum(1, tf.cast(tf.round(height * scale), tf.int32))
    scaled_width = tf.maximum(1, tf.cast(tf.round(width * scale), tf.int32))
    image, semantic, instance = _resize_all(image, semantic, instance,
                                            tf.stack([scaled_height, scaled_width]))
    return _random_pad_and_crop(image, semantic, instance, *crop_size)


def _random_pad_and_crop(image, semantic, instance, height, width):
    """A random height x width window of the frame.

    Where the frame is smaller than height x width it is placed at a random position and the rest
    padded: image 0, semantic 255 (ignore), instance 0 (none).
    """
    frame_height, frame_width = tf.shape(semantic)[0], tf.shape(semantic)[1]
    pad_height = tf.maximum(height - frame_height, 0)
    pad_width = tf.maximum(width - frame_width, 0)
    top = tf.random.uniform([], 0, pad_height + 1, dtype=tf.int32)
    left = tf.random.uniform([], 0, pad_width + 1, dtype=tf.int32)
    paddings = [[top, pad_height - top], [left, pad_width - left]]
    image = tf.pad(image, paddings + [[0, 0]])
    semantic = tf.pad(semantic, paddings, constant_values=schema.IGNORE_LABEL)
    instance = tf.pad(instance, paddings)
    offset_y = tf.random.uniform([], 0, frame_height + pad_height - height + 1, dtype=tf.int32)
    offset_x = tf.random.uniform([], 0, frame_width + pad_width - width + 1, dtype=tf.int32)
    image = image[offset_y:offset_y + height, offset_x:offset_x + width]
    semantic = semantic[offset_y:offset_y + height, offset_x:offset_x + width]
    instance = instance[offset_y:offset_y + height, offset_x:offset_x + width]
    return image, semantic, instance


def flip_left_right(image, semantic, instance):
    """Mirrors the image and both label maps together, so each instance keeps its id and pixels.

    Args:
        image: [H, W, C]; semantic, instance: [H, W].

    Returns:
        The three tensors mirrored along the width.
    """
    return tf.reverse(image, [1]), tf.reverse(semantic, [1]), tf.reverse(instance, [1])


def parse_fn(is_training, height, width, scale_range=DEFAULT_SCALE_RANGE, flip=True,
             crop_size=None, color_jitter=True, brightness_delta=DEFAULT_BRIGHTNESS_DELTA,
             contrast_range=DEFAULT_CONTRAST_RANGE, saturation_range=DEFAULT_SATURATION_RANGE):
    """The map function from one serialized Example to a training/evaluation pair.

    Args:
        is_training: if True, augment (colour jitter, random scale and crop, horizontal flip);
            otherwise only resize to height x width where the stored size differs, with
            `formats.images.resize_image` as serving does (random scaling, when on, resizes
            with TensorFlow's bilinear: it is augmentation).
        height, width: the frame size the model serves at: evaluation frames are resized to it,
            training frames scaled around it.
        scale_range: (min, max) of the random scale relative to height x width; None for none.
        flip: mirror half of the frames (training only).
        crop_size: (crop_height, crop_width): training frames are random windows of this size of
            the (scaled) frame, the usual way to train a fully convolutional network at full
            resolution for the cost of a smaller input; None: the whole height x width frame.
        color_jitter: jitter brightness/contrast/saturation of the image (training only).
        brightness_delta: max brightness change, in units of the 0..1 image range.
        contrast_range, saturation_range: (min, max) factors.

    Returns:
        function serialized -> (image float32 [H, W, 3] in 0..255, {"semantic": int32 [H, W],
        "instance": int32 [H, W]}), H x W the crop size when training with one, else height x
        width.
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if crop_size is not None and min(crop_size) < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size[0]}x{crop_size[1]}")
    if scale_range is not None and not 0 < scale_range[0] <= scale_range[1]:
        raise ValueError(f"scale_range must be (min, max) with 0 < min <= max, got {scale_range}")

    augment_scale = is_training and scale_range is not None
    crop = is_training and crop_size is not None and tuple(crop_size) != (height, width)
    out_height, out_width = crop_size if crop else (height, width)

    def parse(serialized):
        decoded = schema.decode_example(serialized)
        image, semantic, instance = decoded["image"], decoded["semantic"], decoded["instance"]
        if not augment_scale:
            # Without random scaling the frame must reach the network as serving prepares it.
            stored_size = tf.shape(semantic)
            needs_resize = tf.logical_or(tf.not_equal(stored_size[0], height),
                                         tf.not_equal(stored_size[1], width))
            image, semantic, instance = tf.cond(
                needs_resize,
                lambda: _resize_stored(image, semantic, instance, height, width),
                lambda: (image, semantic, instance))
        image = tf.cast(image, tf.float32)
        semantic = tf.cast(semantic, tf.int32)
        if is_training and color_jitter:
            image = _jitter_colours(image, brightness_delta, contrast_range, saturation_range)
        if augment_scale:
            image, semantic, instance = _random_scale_and_crop(image, semantic, instance, height,
                                                               width, scale_range,
                                                               (out_height, out_width))
        elif crop:
            image, semantic, instance = _random_pad_and_crop(image, semantic, instance,
                                                             out_height, out_width)
        if is_training and flip:
            image, semantic, instance = tf.cond(
                tf.random.uniform([]) < 0.5,
                lambda: flip_left_right(image, semantic, instance),
                lambda: (image, semantic, instance))
        image = tf.ensure_shape(image, [out_height, out_width, 3])
        semantic = tf.ensure_shape(semantic, [out_height, out_width])
        instance = tf.ensure_shape(instance, [out_height, out_width])
        return image, {"semantic": semantic, "instance": instance}

    return parse


def build_dataset(file_pattern, batch_size, height, width, is_training, shuffle_buffer=256,
                  seed=None, repeat=False, drop_remainder=None, **augmentation):
    """Batches of (image, labels) from TFRecord shards written in the schema of `schema`.

    Args:
        file_pattern: a glob string or a list of TFRecord paths.
        batch_size: frames per batch.
        height, width: output size.
        is_training: augment, read files interleaved and shuffle (order not deterministic).
        shuffle_buffer: Examples in the shuffle buffer (training only).
        seed: seed of the file and Example shuffles (training only).
        repeat: repeat forever.
        drop_remainder: drop a last incomplete batch; default: True when training.
        **augmentation: passed to `parse_fn` (scale_range, flip, color_jitter, ...).

    Returns:
        tf.data.Dataset of (image float32 [B, H, W, 3] in 0..255,
        {"semantic": int32 [B, H, W], "instance": int32 [B, H, W]}).

    Raises:
        ValueError: file_pattern matches no file (the message names it).
    """
    files = resolve_files(file_pattern)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if drop_remainder is None:
        drop_remainder = is_training
    autotune = tf.data.AUTOTUNE
    if is_training:
        dataset = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
        dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                     num_parallel_calls=autotune, deterministic=False)
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        dataset = tf.data.TFRecordDataset(files)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.map(parse_fn(is_training, height, width, **augmentation),
                          num_parallel_calls=autotune, deterministic=not is_training)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(autotune)
