"""Export a trained model for deployment: a SavedModel with a serving signature, or TFLite.

    python -m enet_discrim.export --modeldir trained_model --outdir exported --format saved_model|tflite
    python -m enet_discrim.export --modeldir trained_model --outdir lite_int8 --format tflite --quantize int8

(the command is `enet_discrim.cli.export`; `export` below is the library function.)

Both take uint8 RGB images [N, H, W, 3] at the model's size (config.json). The SavedModel's
`serving_default` returns `semantic_probabilities` float32 [N, H, W, C] (softmax) and `embeddings`
float32 [N, H, W, D].

`--format tflite` writes a model folder: `model.tflite` and the source folder's `config.json`, so
that `inference.py --modeldir OUTDIR` runs the whole pipeline on it (`enet_discrim.tflite_network`
says its layout: batch 1, builtin ops only, uint8 images in, the network's `semantic_logits` and
`embeddings` out as float32, in this order). `--quantize`:

- `none`: float32.
- `float16`: float16 weights, float32 arithmetic (half the file).
- `int8`: full-integer post-training quantisation, calibrated on synthetic frames of the model's
  dataset prepared as serving prepares frames (`predictor.network_input`). Every op inside is int8
  (the max-pooling's argmax as a 0/1 mask of each window's first maximum), builtin only and run by
  XNNPACK; the uint8 input is quantised exactly (scale 1) and the outputs are dequantised to
  float32 at the edge.
"""

import contextlib
import functools
import os
import sys

import cv2
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from enet_discrim import atomic, model_dir
from enet_discrim.formats import LANE_DATASETS

FORMATS = ("saved_model", "tflite")
QUANTIZE_MODES = ("none", "float16", "int8")
TFLITE_FILE = model_dir.TFLITE_FILE
#: Synthetic frames the int8 export calibrates on by default.
CALIBRATION_FRAMES = 100
#: Seed of the calibration frames (the held-out synthetic test sets use seed 1000).
CALIBRATION_SEED = 0


class ServingModule(tf.Module):
    """Wraps the Keras model behind a uint8 serving function."""

    def __init__(self, model, height, width, batch_size=None):
        super().__init__()
        self.model = model
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([batch_size, height, width, 3], tf.uint8, name="images")],
        )

    def _serve(self, images):
        outputs = self.model(tf.cast(images, tf.float32), training=False)
        return {
            "semantic_probabilities": tf.nn.softmax(outputs["semantic_logits"], axis=-1),
            "embeddings": outputs["embeddings"],
        }


def calibration_images(dataset, height, width, count, seed=CALIBRATION_SEED):
    """Yields `count` synthetic frames of `dataset` as the network sees them: uint8 RGB
    [height, width, 3] after `predictor.network_input`, so that int8 ranges are calibrated on
    what serving feeds. TuSimple frames use the training mix of domain randomisation.
    """
    from enet_discrim.data.synthetic import cityscapes, tusimple
    from enet_discrim.predictor import network_input

    for index in range(count):
        rng = np.random.default_rng([seed, index])
        if dataset in LANE_DATASETS:
            image_bgr = tusimple.render_frame(rng)[0]
        else:
            image_bgr = cityscapes.render_sample(rng)[0]
        yield network_input(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), height, width)


def _depthwise(values, weights, bias=None):
    """A 1x1 depthwise convolution: `values * weights (+ bias)` per channel, float32 weights."""
    kernel = tf.constant(np.reshape(weights, (1, 1, -1, 1)), values.dtype)
    result = tf.nn.depthwise_conv2d(values, kernel, [1, 1, 1, 1], "VALID")
    return result if bias is None else tf.nn.bias_add(result, tf.constant(bias, values.dtype))


def _initial_block_with_split_batch_norm(layer, inputs, original, training=None, **kwargs):
    """`InitialBlock` in inference as the same function, with its batch norm applied to the
    convolution (into which the converter folds it) and to the pooled image (a 1x1 depthwise
    convolution) before they are concatenated.

    Int8 concatenation gives its inputs one scale: concatenated before the batch norm, the pooled
    image in [-1, 1] shared the convolution's ten times wider range and kept about 16 levels.
    """
    if training:
        return original(layer, inputs, training=training, **kwargs)
    norm = layer.batch_norm
    with tf.init_scope():  # the statistics as numbers, out of the traced graph
        gamma = norm.gamma.numpy() if norm.scale else 1.0
        beta = norm.beta.numpy() if norm.center else 0.0
        scale = gamma / np.sqrt(norm.moving_variance.numpy() + norm.epsilon)
        offset = beta - norm.moving_mean.numpy() * scale
    scale = np.broadcast_to(scale, norm.moving_mean.shape).astype(np.float32)
    offset = np.broadcast_to(offset, norm.moving_mean.shape).astype(np.float32)
    filters = layer.filters
    convolved = layer.conv(inputs) * scale[:filters] + offset[:filters]
    pooled = _depthwise(layer.pool(inputs), scale[filters:], offset[filters:])
    return layer.prelu(tf.concat([convolved, pooled], axis=-1))


def _prelu_in_xnnpack_int8_ops(layer, inputs, original, **kwargs):
    """PReLU with one slope per channel as the same function in ops that XNNPACK runs in int8:
    `x + relu((alpha - 1) * x)`, the product a 1x1 depthwise convolution with the ReLU fused (for
    slopes alpha <= 1; otherwise `x + (1 - alpha) * relu(-x)`, two depthwise convolutions).

    TFLite's int8 PRELU kernel is not one that XNNPACK takes over, and it is slow: with it, the
    int8 ENet ran slower than the float32 one.
    """
    with tf.init_scope():  # the slopes as numbers, out of the traced graph
        alpha = np.asarray(layer.alpha.numpy(), np.float32)
    if len(inputs.shape) != 4 or alpha.shape != (1, 1, inputs.shape[-1]):
        return original(layer, inputs, **kwargs)

    if np.all(alpha <= 1.0):
        return inputs + tf.nn.relu(_depthwise(inputs, alpha - 1.0))
    return inputs + _depthwise(tf.nn.relu(_depthwise(inputs, -np.ones_like(alpha))), 1.0 - alpha)


#: Factor that turns a (clipped) gap below a window's maximum into a 0/1 mask: int8 gaps are whole
#: steps of at least 1/255 after the clip, and float ones above 2**-14 saturate as well. Below
#: XNNPACK's limit for an int8 multiply (the constant's scale, 2**14 / 255, under 256).
_MASK_GAIN = 2.0 ** 14


def _upsampled_window_maximum(values):
    """Each pixel's 2x2 window maximum, at full size: max-pooling, then 4 copies by depth-to-space."""
    pooled = tf.nn.max_pool2d(values, ksize=2, strides=2, padding="VALID")
    return pooled, tf.nn.depth_to_space(tf.concat([pooled] * 4, axis=-1), 2)


def _is_window_maximum(values, maximum):
    """1 where `values` equals its upsampled window `maximum`, else 0 (an exact 0/1 in int8: the
    two share one scale, so the gap is 0 or at least one step, clipped to [-1, 0])."""
    below = tf.clip_by_value(values - maximum, -1.0, 1.0)
    return 1.0 + tf.clip_by_value(below * _MASK_GAIN, -1.0, 1.0)


def _pooling_with_maximum_masks(layer, inputs, original, **kwargs):
    """`MaxPoolingWithArgmax2D` for int8 export: the pooled values and, in place of the argmax, a
    full-size mask that is 1 at each window's first maximum (row-major, as the layer's argmax)
    and 0 elsewhere.

    Built from XNNPACK int8 ops only (max-pooling, concatenation, depth-to-space, subtractions and
    multiplications with fused clips, additions): the argmax and one-hot that `MaxUnpooling2D`
    otherwise needs are TFLite kernels outside XNNPACK, and took about a quarter of the int8
    network's time. Ties are common in int8, so the first maximum is found by a second pooling:
    each maximum scores minus a quarter of its position in the window (0, -1/4, -1/2, -3/4), every
    other pixel -1 or less, and the highest score wins.
    """
    del layer, original, kwargs
    pooled, maximum = _upsampled_window_maximum(inputs)
    height, width = inputs.shape[1], inputs.shape[2]
    order = np.tile(np.array([[0.0, 1.0], [2.0, 3.0]], np.float32) / 4, (height // 2, width // 2))
    score = _is_window_maximum(inputs, maximum) - tf.constant(1.0 + order[None, :, :, None])
    return pooled, _is_window_maximum(score, _upsampled_window_maximum(score)[1])


def _unpooling_with_maximum_masks(layer, inputs, original, **kwargs):
    """`MaxUnpooling2D` for int8 export with the mask of `_pooling_with_maximum_masks`: each value
    copied to its 2x2 window (concatenation and depth-to-space), times the mask."""
    del layer, original, kwargs
    values, mask = inputs
    return tf.nn.depth_to_space(tf.concat([values] * 4, axis=-1), 2) * mask


def _pooling_with_argmax_on_the_last_axis(layer, inputs, original, **kwargs):
    """`MaxPoolingWithArgmax2D` as the same function with the window on the last axis for the
    argmax: TFLite's ARG_MAX (not an XNNPACK op) is several times slower along an inner axis than
    along the last one. Ties still go to the first position, as in `tf.argmax`.
    """
    del layer, original, kwargs
    from enet_discrim.model.layers import _windows

    pooled = tf.nn.max_pool2d(inputs, ksize=2, strides=2, padding="VALID")
    windows_last = tf.transpose(_windows(inputs), [0, 1, 2, 4, 3])
    return pooled, tf.argmax(windows_last, axis=4, output_type=tf.int32)


@contextlib.contextmanager
def _tflite_friendly_tracing(int8):
    """While active, ENet's layers trace as the same functions in ops that run fast in TFLite:
    for float exports the max-pooling with its argmax along the last axis
    (`_pooling_with_argmax_on_the_last_axis`); for `int8` the initial block, PReLU and the
    max-pooling and unpooling in ops that quantise well and correctly and that XNNPACK runs in
    int8 (`_initial_block_with_split_batch_norm`, `_prelu_in_xnnpack_int8_ops`,
    `_pooling_with_maximum_masks`, `_unpooling_with_maximum_masks`)."""
    from enet_discrim.model import InitialBlock, MaxPoolingWithArgmax2D, MaxUnpooling2D

    if int8:
        replaced = {InitialBlock: _initial_block_with_split_batch_norm,
                    keras.layers.PReLU: _prelu_in_xnnpack_int8_ops,
                    MaxPoolingWithArgmax2D: _pooling_with_maximum_masks,
                    MaxUnpooling2D: _unpooling_with_maximum_masks}
    else:
        replaced = {MaxPoolingWithArgmax2D: _pooling_with_argmax_on_the_last_axis}
    originals = {layer_class: layer_class.call for layer_class in replaced}
    for layer_class, replacement in replaced.items():
        layer_class.call = functools.partialmethod(replacement, original=originals[layer_class])
    try:
        yield
    finally:
        for layer_class, original in originals.items():
            layer_class.call = original


def convert_to_tflite(model, settings, quantize="none", calibration_frames=CALIBRATION_FRAMES):
    """The TFLite flatbuffer (bytes) of a Keras ENet: batch 1, uint8 images in, float32
    `semantic_logits` and `embeddings` out, in this order; `quantize` one of QUANTIZE_MODES.

    Raises:
        ValueError: an unknown `quantize`, or `calibration_frames` < 1 for int8.
    """
    _check_quantize(quantize, calibration_frames)
    height, width = settings.height, settings.width

    def network(images):
        outputs = model(tf.cast(images, tf.float32), training=False)
        return outputs["semantic_logits"], outputs["embeddings"]

    function = tf.function(network, input_signature=[tf.TensorSpec([1, height, width, 3], tf.uint8,
                                                                   name="images")])
    with _tflite_friendly_tracing(int8=quantize == "int8"):
        concrete = function.get_concrete_function()
    # Without the trackable object the converter freezes the weights into constants; with it (or
    # through a SavedModel) TF 2.21 keeps them as variables that the interpreter leaves NaN.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: _representative_dataset(
            calibration_images(settings.dataset, height, width, calibration_frames))
    return converter.convert()


def _representative_dataset(images):
    """The converter's calibration samples: each image as a batch of one, and after the first
    the same frame contrast-stretched to [0, 255], so that the input and the model's rescaling
    are calibrated on every pixel value (the input's scale is then exactly 1) and not only on
    those the frames happen to hold."""
    for index, image in enumerate(images):
        yield [image[None]]
        if index == 0:
            yield [cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX)[None]]


def _check_quantize(quantize, calibration_frames):
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize {quantize!r}: choose one of {', '.join(QUANTIZE_MODES)}")
    if quantize == "int8" and (isinstance(calibration_frames, bool)
                               or not isinstance(calibration_frames, int) or calibration_frames < 1):
        raise ValueError(f"calibration_frames must be a positive integer, got {calibration_frames!r}")


def export(modeldir, outdir, output_format="saved_model", quantize="none",
           calibration_frames=CALIBRATION_FRAMES):
    """Writes the SavedModel folder (`outdir`), or the TFLite model folder `outdir`
    (`model.tflite` and `config.json`); returns the SavedModel folder or the `model.tflite` path.

    Args:
        modeldir: a model folder with `model.keras` and `config.json`.
        outdir: str, the folder to write.
        output_format: one of FORMATS.
        quantize: one of QUANTIZE_MODES; anything but "none" needs the tflite format.
        calibration_frames: synthetic frames int8 calibrates on.

    Both are written atomically (`atomic.write_folder`): the new files into a folder beside
    `outdir` that then takes its place, other files already in `outdir` (a SavedModel beside a
    model.tflite, say) carried over. A run killed at any point leaves the earlier export loadable.

    Raises:
        ValueError: an unknown format or quantization, or a model folder missing its files.
    """
    atomic.check_folder_target(outdir)
    if output_format not in FORMATS:
        raise ValueError(f"unknown format {output_format!r}: choose one of {', '.join(FORMATS)}")
    _check_quantize(quantize, calibration_frames)
    if quantize != "none" and output_format != "tflite":
        raise ValueError(f"quantize {quantize!r} needs the tflite format, not {output_format!r}")
    model, settings = model_dir.load(modeldir)
    with atomic.folder_lock(outdir, "export"):  # one export at a time into outdir
        return _export(model, settings, outdir, output_format, quantize, calibration_frames)


def _export(model, settings, outdir, output_format, quantize, calibration_frames):
    """`export` of the loaded `model` and its `settings`, once the arguments are checked."""
    height, width = settings.height, settings.width
    if output_format == "saved_model":
        module = ServingModule(model, height, width)
        # Written beside outdir and swapped in: an earlier export stays loadable until then.
        atomic.write_folder(outdir, lambda folder: tf.saved_model.save(
            module, folder, signatures={"serving_default": module.serve}))
        logging.info("SavedModel written to %s", outdir)
        return outdir

    flatbuffer = convert_to_tflite(model, settings, quantize, calibration_frames)

    def write(folder):
        atomic.write_bytes(os.path.join(folder, TFLITE_FILE), flatbuffer)
        model_dir.write_settings(folder, settings)

    atomic.write_folder(outdir, write)
    path = os.path.join(outdir, TFLITE_FILE)
    logging.info("TFLite model (%s) written to %s (%.1f MB)", quantize, path, len(flatbuffer) / 1e6)
    return path


if __name__ == "__main__":
    from enet_discrim.cli import export as export_command

    sys.exit(export_command.run())
