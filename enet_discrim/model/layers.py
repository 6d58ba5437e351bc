"""ENet building blocks (Paszke et al., 2016, https://arxiv.org/abs/1606.02147).

Every layer keeps its constructor arguments as attributes of the same name and returns them from
`get_config`, so that models built from them save to `.keras` and load with `safe_mode=True`.
"""

import keras
import tensorflow as tf

_PACKAGE = "enet_discrim"


def _conv(filters, kernel_size, name, strides=1, dilation_rate=1, use_bias=False):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=use_bias,
        name=name,
    )


def _batch_norm(name):
    # Torch's ENet uses eps 1e-3 as well; momentum 0.9 adapts fast enough for short fine-tunes.
    # Synchronised over replicas: per-GPU batches of segmentation training are small, and a
    # mirrored run then computes exactly what one device would. Without a strategy it costs nothing.
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, synchronized=True, name=name)


def _prelu(name):
    # One slope per channel as in the paper; sharing over H and W also lets inputs of any size in.
    return keras.layers.PReLU(shared_axes=[1, 2], name=name)


# 2x2 pooling windows: space_to_depth lays a window's 4 pixels out as (dy, dx) row-major
# blocks of the channel axis, which is also the order in which ties go to the first maximum.
_WINDOW = 4


def _windows(inputs):
    """[B, H, W, C] -> [B, H/2, W/2, 4, C], the 2x2 windows with (dy, dx) on axis 3."""
    shape = tf.shape(inputs)
    windows = tf.nn.space_to_depth(inputs, 2)
    return tf.reshape(windows, [shape[0], shape[1] // 2, shape[2] // 2, _WINDOW, inputs.shape[-1]])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """2x2 max-pooling with stride 2 that also returns where each maximum came from.

    The index is the maximum's position inside its window, `2 * dy + dx` (ties: the first in
    row-major order). Unlike `tf.nn.max_pool_with_argmax`'s flat indices these do not depend on
    the batch, and both layers use only ops that TFLite has as builtins.

    Call args:
        inputs: float tensor [B, H, W, C], H and W even.

    Returns:
        `(pooled, argmax)`: pooled [B, H/2, W/2, C] of the input dtype, argmax int32 of the same
        shape in 0..3.
    """

    def call(self, inputs):
        pooled = tf.nn.max_pool2d(inputs, ksize=2, strides=2, padding="VALID")
        argmax = tf.argmax(_windows(inputs), axis=3, output_type=tf.int32)
        return pooled, argmax

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        half = lambda size: None if size is None else size // 2
        shape = (batch, half(height), half(width), channels)
        return shape, shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaxUnpooling2D(keras.layers.Layer):
    """Inverse of `MaxPoolingWithArgmax2D`: puts every value back where its maximum was.

    Every other position of the 2x upsampled output is zero. tensorflow-addons' layer of the same
    name is gone with Keras 3; this one is a one-hot spread of each value over its window followed
    by `depth_to_space`, so it is batch-safe by construction and has a plain gradient.

    Call args:
        inputs: `(values, argmax)`; values [B, h, w, C] float, argmax [B, h, w, C] int in 0..3
            from the pooling of a [B, 2h, 2w, C] tensor.

    Returns:
        [B, 2h, 2w, C] tensor of the dtype of `values`.

    Example:
    >>> pooled, argmax = MaxPoolingWithArgmax2D()(x)
    >>> restored = MaxUnpooling2D()((pooled, argmax))  # maxima in place, zeros elsewhere
    """

    def call(self, inputs):
        values, argmax = inputs
        shape = tf.shape(values)
        spread = tf.one_hot(argmax, _WINDOW, axis=3, dtype=values.dtype) * values[:, :, :, None, :]
        spread = tf.reshape(spread, [shape[0], shape[1], shape[2], _WINDOW * values.shape[-1]])
        return tf.nn.depth_to_space(spread, 2)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape[0]
        double = lambda size: None if size is None else size * 2
        return (batch, double(height), double(width), channels)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class InitialBlock(keras.layers.Layer):
    """ENet's initial block: a 3x3 stride-2 convolution with 13 filters concatenated with a 2x2
    max-pool of the 3-channel input (16 channels), then batch norm and PReLU.

    Args:
        filters: int, default 13. Convolution filters; the output has `filters + 3` channels.
    """

    def __init__(self, filters=13, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = keras.layers.Conv2D(
            filters, 3, strides=2, padding="same", use_bias=True, name="conv"
        )
        self.pool = keras.layers.MaxPooling2D(2, strides=2, name="pool")
        self.batch_norm = _batch_norm("batch_norm")
        self.prelu = _prelu("prelu")

    def build(self, input_shape):
        self.conv.build(input_shape)
        channels = self.filters + input_shape[-1]
        output_shape = (input_shape[0], None, None, channels)
        self.batch_norm.build(output_shape)
        self.prelu.build(output_shape)

    def call(self, inputs, training=None):
        x = keras.ops.concatenate([self.conv(inputs), self.pool(inputs)], axis=-1)
        return self.prelu(self.batch_norm(x, training=training))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Bottleneck(keras.layers.Layer):
    """ENet bottleneck: 1x1 projection, a main convolution, 1x1 expansion, spatial dropout, added
    to the shortcut, then PReLU. The internal width is a quarter of the output channels.

    Args:
        filters: int. Output channels.
        kind: str, default "regular". One of:
            "regular": 3x3 convolution (dilated by `dilation_rate`), identity shortcut;
            "asymmetric": a 5x1 then a 1x5 convolution (`asymmetric_size` sets the 5);
            "downsampling": 2x2 stride-2 projection; the shortcut is a 2x2 max-pool whose channels
                are zero-padded to `filters`. `call` then returns `(output, argmax)`;
            "upsampling": a 3x3 stride-2 transposed convolution; the shortcut is a 1x1 convolution
                to `filters` channels max-unpooled with the argmax of the matching downsampling
                bottleneck. `call` then takes `(inputs, argmax)`.
        dilation_rate: int, default 1. For "regular".
        asymmetric_size: int, default 5. For "asymmetric".
        dropout_rate: float, default 0.1. Spatial dropout before the addition.
    """

    KINDS = ("regular", "asymmetric", "downsampling", "upsampling")

    def __init__(
        self,
        filters,
        kind="regular",
        dilation_rate=1,
        asymmetric_size=5,
        dropout_rate=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if kind not in self.KINDS:
            raise ValueError(f"Bottleneck kind must be one of {self.KINDS}, got {kind!r}")
        self.filters = filters
        self.kind = kind
        self.dilation_rate = dilation_rate
        self.asymmetric_size = asymmetric_size
        self.dropout_rate = dropout_rate

        internal = filters // 4
        if kind == "downsampling":
            self.project = _conv(internal, 2, strides=2, name="project")
        else:
            self.project = _conv(internal, 1, name="project")
        self.project_bn = _batch_norm("project_bn")
        self.project_prelu = _prelu("project_prelu")

        if kind == "asymmetric":
            self.main_convs = [
                _conv(internal, (asymmetric_size, 1), name="main_conv_1"),
                _conv(internal, (1, asymmetric_size), use_bias=True, name="main_conv_2"),
            ]
        elif kind == "upsampling":
            self.main_convs = [
                keras.layers.Conv2DTranspose(
                    internal, 3, strides=2, padding="same", use_bias=True, name="main_conv"
                )
            ]
        else:
            self.main_convs = [
                _conv(internal, 3, dilation_rate=dilation_rate, use_bias=True, name="main_conv")
            ]
        self.main_bn = _batch_norm("main_bn")
        self.main_prelu = _prelu("main_prelu")

        self.expand = _conv(filters, 1, name="expand")
        self.expand_bn = _batch_norm("expand_bn")
        self.dropout = keras.layers.SpatialDropout2D(dropout_rate, name="dropout")

        if kind == "downsampling":
            self.pool = MaxPoolingWithArgmax2D(name="pool")
        elif kind == "upsampling":
            self.shortcut_conv = _conv(filters, 1, name="shortcut_conv")
            self.shortcut_bn = _batch_norm("shortcut_bn")
            self.unpool = MaxUnpooling2D(name="unpool")
        self.output_prelu = _prelu("output_prelu")

    def build(self, input_shape):
        if self.kind == "upsampling":
            input_shape = input_shape[0]
        batch, channels = input_shape[0], input_shape[-1]
        internal_shape = (batch, None, None, self.filters // 4)
        output_shape = (batch, None, None, self.filters)
        self.project.build(input_shape)
        self.project_bn.build(internal_shape)
        self.project_prelu.build(internal_shape)
        for conv in self.main_convs:
            conv.build(internal_shape)
        self.main_bn.build(internal_shape)
        self.main_prelu.build(internal_shape)
        self.expand.build(internal_shape)
        self.expand_bn.build(output_shape)
        if self.kind == "upsampling":
            self.shortcut_conv.build(input_shape)
            self.shortcut_bn.build(output_shape)
        self.output_prelu.build(output_shape)
        if self.kind in ("regular", "asymmetric") and channels != self.filters:
            raise ValueError(
                f"A {self.kind} bottleneck keeps its width: input has {channels} channels, "
                f"filters={self.filters}"
            )

    def call(self, inputs, training=None):
        if self.kind == "upsampling":
            inputs, argmax = inputs
        x = self.project_prelu(self.project_bn(self.project(inputs), training=training))
        for conv in self.main_convs:
            x = conv(x)
        x = self.main_prelu(self.main_bn(x, training=training))
        x = self.expand_bn(self.expand(x), training=training)
        x = self.dropout(x, training=training)

        if self.kind == "downsampling":
            shortcut, argmax = self.pool(inputs)
            extra_channels = self.filters - inputs.shape[-1]
            shortcut = keras.ops.pad(shortcut, [[0, 0], [0, 0], [0, 0], [0, extra_channels]])
            return self.output_prelu(x + shortcut), argmax
        if self.kind == "upsampling":
            shortcut = self.shortcut_bn(self.shortcut_conv(inputs), training=training)
            shortcut = self.unpool((shortcut, argmax))
            return self.output_prelu(x + shortcut)
        return self.output_prelu(x + inputs)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kind": self.kind,
            "dilation_rate": self.dilation_rate,
            "asymmetric_size": self.asymmetric_size,
            "dropout_rate": self.dropout_rate,
        }
