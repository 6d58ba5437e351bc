"""The TFRecord schema: one `tf.train.Example` per frame, shared by every dataset.

| key               | feature    | content                                                           |
| ----------------- | ---------- | ----------------------------------------------------------------- |
| `image/encoded`   | bytes      | the stored image, JPEG or PNG, RGB, H x W                         |
| `image/filename`  | bytes      | the frame's path relative to the dataset root (UTF-8)             |
| `image/height`    | int64      | H, the stored image's height                                      |
| `image/width`     | int64      | W, the stored image's width                                       |
| `label/semantic`  | bytes      | PNG, uint8 [H, W]: class id per pixel, 255 = ignore               |
| `label/instance`  | bytes      | PNG, uint16 [H, W]: 0 = no instance, 1..K one id per instance     |

Labels are stored at the size of the stored image. `make_example` builds a serialized Example from
numpy arrays; `decode_example` turns one back into tensors.
"""
import cv2
import numpy as np
import tensorflow as tf

IMAGE_ENCODED = "image/encoded"
IMAGE_FILENAME = "image/filename"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
LABEL_SEMANTIC = "label/semantic"
LABEL_INSTANCE = "label/instance"

IGNORE_LABEL = 255
MAX_INSTANCE_ID = np.iinfo(np.uint16).max

FEATURE_SPEC = {
    IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
    IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string),
    IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
    LABEL_SEMANTIC: tf.io.FixedLenFeature([], tf.string),
    LABEL_INSTANCE: tf.io.FixedLenFeature([], tf.string),
}

IMAGE_FORMATS = ("jpeg", "png")


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _encode_png(array):
    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"OpenCV could not PNG-encode an array of shape {array.shape}, dtype {array.dtype}")
    return buffer.tobytes()


def encode_image(image, image_format="jpeg", jpeg_quality=95):
    """Encodes an RGB image as JPEG or PNG bytes.

    Args:
        image: uint8 [H, W, 3], RGB.
        image_format: "jpeg" or "png".
        jpeg_quality: 0..100, used for JPEG only.

    Returns:
        The encoded bytes.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # OpenCV encoders expect BGR channel order.
    if image_format == "png":
        return _encode_png(bgr)
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise ValueError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return buffer.tobytes()


def make_example(image, semantic, instance, filename, image_format="jpeg", jpeg_quality=95):
    """Builds one serialized `tf.train.Example` from a frame and its labels.

    Args:
        image: uint8 [H, W, 3], RGB.
        semantic: uint8 [H, W] class ids (255 = ignore).
        instance: integer [H, W] instance ids, 0 = none, 1..K; must fit uint16.
        filename: the frame's path relative to the dataset root.
        image_format: "jpeg" or "png", how the image is stored.
        jpeg_quality: 0..100, used for JPEG only.

    Returns:
        bytes, the serialized Example.
    """
    image = np.asarray(image)
    semantic = np.asarray(semantic)
    instance = np.asarray(instance)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if semantic.shape != (height, width) or semantic.dtype != np.uint8:
        raise ValueError(f"semantic must be uint8 [{height}, {width}], got {semantic.dtype} {semantic.shape}")
    if instance.shape != (height, width):
        raise ValueError(f"instance must be [{height}, {width}], got {instance.shape}")
    if instance.size and (instance.min() < 0 or instance.max() > MAX_INSTANCE_ID):
        raise ValueError(
            f"instance ids must lie in 0..{MAX_INSTANCE_ID}, got {instance.min()}..{instance.max()}")
    feature = {
        IMAGE_ENCODED: _bytes_feature(encode_image(image, image_format, jpeg_quality)),
        IMAGE_FILENAME: _bytes_feature(str(filename).encode("utf-8")),
        IMAGE_HEIGHT: _int64_feature(height),
        IMAGE_WIDTH: _int64_feature(width),
        LABEL_SEMANTIC: _bytes_feature(_encode_png(semantic)),
        LABEL_INSTANCE: _bytes_feature(_encode_png(instance.astype(np.uint16))),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def decode_example(serialized):
    """Parses and decodes one serialized Example (graph-compatible, for `tf.data.Dataset.map`).

    Args:
        serialized: scalar tf.string, one serialized Example.

    Returns:
        dict with "image" uint8 [H, W, 3], "semantic" uint8 [H, W], "instance" int32 [H, W],
        "filename" tf.string [], "height" int64 [], "width" int64 [].
    """
    features = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    # JPEG with the accurate DCT, as OpenCV (serving's reader) decodes it, so that a frame reaches
    # the network as the same pixels in training and in serving; PNG otherwise.
    encoded = features[IMAGE_ENCODED]
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(encoded, channels=3),
    )
    image.set_shape([None, None, 3])
    image.set_shape([None, None, 3])
    semantic = tf.io.decode_png(features[LABEL_SEMANTIC], channels=1, dtype=tf.uint8)[..., 0]
    instance = tf.io.decode_png(features[LABEL_INSTANCE], channels=1, dtype=tf.uint16)[..., 0]
    return {
        "image": image,
        "semantic": semantic,
        "instance": tf.cast(instance, tf.int32),
        "filename": features[IMAGE_FILENAME],
        "height": features[IMAGE_HEIGHT],
        "width": features[IMAGE_WIDTH],
    }
