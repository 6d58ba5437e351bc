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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """2x2 max-pooling with stride 2 that also returns where each maximum came from.

    The indices are flat positions in the whole input tensor, batch included
    (`((b * H + y) * W + x) * C + c`), which is what `MaxUnpooling2D` needs to put every value
    back in place, whatever the batch size.

    Call args:
        inputs: float tensor [B, H, W, C], H and W even.

    Returns:
        `(pooled, argmax)`: pooled [B, H/2, W/2, C] of the input dtype, argmax int64 of the same shape.
    """

    def call(self, inputs):
        pooled, argmax = tf.nn.max_pool_with_argmax(
            inputs, ksize=2, strides=2, padding="VALID", include_batch_in_index=True
        )
        # The indices only say where; no gradient must flow through them.
        return pooled, tf.stop_gradient(argmax)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        half = lambda size: None if size is None else size // 2
        shape = (batch, half(height), half(width), channels)
        return shape, shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaxUnpooling2D(keras.layers.Layer):
    """Inverse of `MaxPoolingWithArgmax2D`: scatters values to the positions of the maxima.

    Every other position of the 2x upsampled output is zero. tensorflow-addons' layer of the same
    name is gone with Keras 3; this one takes the batch-inclusive indices of
    `tf.nn.max_pool_with_argmax(..., include_batch_in_index=True)`, so it is correct for any batch
    size.

    Call args:
        inputs: `(values, argmax)`; values [B, h, w, C] float, argmax [B, h, w, C] int64 from the
            pooling of a [B, 2h, 2w, C] tensor.

    Returns:
        [B, 2h, 2w, C] tensor of the dtype of `values`.

    Example:
    >>> pooled, argmax = MaxPoolingWithArgmax2D()(x)
    >>> restored = MaxUnpooling2D()((pooled, argmax))  # maxima in place, zeros elsewhere
    """

    def call(self, inputs):
        values, argmax = inputs
        shape = tf.shape(values, out_type=tf.int64)
        output_shape = tf.stack([shape[0], 2 * shape[1], 2 * shape[2], shape[3]])
        flat_values = tf.reshape(values, [-1])
        flat_indices = tf.reshape(argmax, [-1, 1])
        # The 2x2 windows do not overlap, so every index is unique and the scatter sums nothing.
        flat_output = tf.scatter_nd(flat_indices, flat_values, [tf.reduce_prod(output_shape)])
        return tf.reshape(flat_output, output_shape)

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
