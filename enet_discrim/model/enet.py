"""ENet with a semantic and an embedding branch.

The encoder (initial block, stages 1 and 2) is shared. As in LaneNet (Neven et al. 2018,
https://arxiv.org/abs/1802.05591) the semantic branch and the embedding branch each have their own
stage 3 and decoder (stages 4 and 5 and the final transposed convolution), so the shared part plus
one branch is exactly the single-branch ENet of Paszke et al. 2016.
"""

import keras

from enet_discrim.model.layers import Bottleneck, InitialBlock

_PACKAGE = "enet_discrim"

# Stages 2 and 3 after their first bottleneck: (kind, dilation_rate), Table 1 of the ENet paper.
_DILATED_STAGE = (
    ("regular", 1),
    ("regular", 2),
    ("asymmetric", 1),
    ("regular", 4),
    ("regular", 1),
    ("regular", 8),
    ("asymmetric", 1),
    ("regular", 16),
)
# The input is downsampled three times (initial block, stages 1 and 2).
SIZE_MULTIPLE = 8


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ENetEncoder(keras.layers.Layer):
    """Initial block, stage 1 (downsampling to 64 + 4 regular) and stage 2 (downsampling to 128 +
    dilated/asymmetric bottlenecks).

    Args:
        stage1_dropout: float, default 0.01.
        dropout: float, default 0.1. Spatial dropout of stage 2.

    Call returns `(features [B, H/8, W/8, 128], argmax1, argmax2)`, the argmax of the stage-1 and
    stage-2 downsampling pools, which the decoders unpool with.
    """

    def __init__(self, stage1_dropout=0.01, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.stage1_dropout = stage1_dropout
        self.dropout = dropout
        self.initial = InitialBlock(name="initial")
        self.down1 = Bottleneck(64, "downsampling", dropout_rate=stage1_dropout, name="bottleneck1_0")
        self.stage1 = [
            Bottleneck(64, dropout_rate=stage1_dropout, name=f"bottleneck1_{i}") for i in range(1, 5)
        ]
        self.down2 = Bottleneck(128, "downsampling", dropout_rate=dropout, name="bottleneck2_0")
        self.stage2 = [
            Bottleneck(128, kind, dilation_rate=rate, dropout_rate=dropout, name=f"bottleneck2_{i}")
            for i, (kind, rate) in enumerate(_DILATED_STAGE, start=1)
        ]

    def call(self, inputs, training=None):
        x = self.initial(inputs, training=training)
        x, argmax1 = self.down1(x, training=training)
        for block in self.stage1:
            x = block(x, training=training)
        x, argmax2 = self.down2(x, training=training)
        for block in self.stage2:
            x = block(x, training=training)
        return x, argmax1, argmax2

    def get_config(self):
        return {**super().get_config(), "stage1_dropout": self.stage1_dropout, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ENetDecoderBranch(keras.layers.Layer):
    """One output branch: stage 3 (stage 2 without its downsampling), stage 4 (upsampling to 64 +
    2 regular), stage 5 (upsampling to 16 + 1 regular) and a 2x2 stride-2 transposed convolution.

    Args:
        output_channels: int. Channels of the output (classes or embedding dimensions).
        dropout: float, default 0.1.

    Call takes `(features, argmax1, argmax2)` from `ENetEncoder` and returns
    [B, H, W, output_channels] at the input resolution of the encoder.
    """

    def __init__(self, output_channels, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.output_channels = output_channels
        self.dropout = dropout
        self.stage3 = [
            Bottleneck(128, kind, dilation_rate=rate, dropout_rate=dropout, name=f"bottleneck3_{i}")
            for i, (kind, rate) in enumerate(_DILATED_STAGE, start=1)
        ]
        self.up4 = Bottleneck(64, "upsampling", dropout_rate=dropout, name="bottleneck4_0")
        self.stage4 = [
            Bottleneck(64, dropout_rate=dropout, name=f"bottleneck4_{i}") for i in range(1, 3)
        ]
        self.up5 = Bottleneck(16, "upsampling", dropout_rate=dropout, name="bottleneck5_0")
        self.stage5 = [Bottleneck(16, dropout_rate=dropout, name="bottleneck5_1")]
        self.full_conv = keras.layers.Conv2DTranspose(
            output_channels, 2, strides=2, padding="same", name="full_conv"
        )

    def call(self, inputs, training=None):
        x, argmax1, argmax2 = inputs
        for block in self.stage3:
            x = block(x, training=training)
        x = self.up4((x, argmax2), training=training)
        for block in self.stage4:
            x = block(x, training=training)
        x = self.up5((x, argmax1), training=training)
        for block in self.stage5:
            x = block(x, training=training)
        return self.full_conv(x)

    def get_config(self):
        return {
            **super().get_config(),
            "output_channels": self.output_channels,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ENet(keras.Model):
    """ENet with a semantic branch and an embedding branch for the discriminative loss.

    Paper: Paszke et al. 2016, "ENet: A Deep Neural Network Architecture for Real-Time Semantic
    Segmentation", https://arxiv.org/abs/1606.02147; two branches as in LaneNet.

    Args:
        num_classes: int, default 2. Semantic classes (TuSimple: background and lane).
        embedding_dim: int, default 4. Channels of the pixel embedding.
        stage1_dropout: float, default 0.01.
        dropout: float, default 0.1. Spatial dropout of the later stages.

    Call args:
        images: float [B, H, W, 3], RGB in [0, 255]; H and W multiples of 8. The model scales them
            itself, so saved and exported models take raw pixels.

    Returns:
        `{"semantic_logits": float32 [B, H, W, num_classes], "embeddings": float32 [B, H, W,
        embedding_dim]}`, float32 also under a mixed-precision policy.

    Example:
    >>> model = ENet(num_classes=2, embedding_dim=4)
    >>> outputs = model(np.zeros((1, 256, 512, 3), "float32"))
    >>> outputs["embeddings"].shape
    TensorShape([1, 256, 512, 4])
    """

    def __init__(self, num_classes=2, embedding_dim=4, stage1_dropout=0.01, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1 or embedding_dim < 1:
            raise ValueError(
                f"num_classes and embedding_dim must be positive, got {num_classes} and {embedding_dim}"
            )
        self.num_classes = num_classes
        self.embedding_dim = embedding_dim
        self.stage1_dropout = stage1_dropout
        self.dropout = dropout
        self.rescale = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")
        self.encoder = ENetEncoder(stage1_dropout, dropout, name="encoder")
        self.semantic_branch = ENetDecoderBranch(num_classes, dropout, name="semantic_branch")
        self.embedding_branch = ENetDecoderBranch(embedding_dim, dropout, name="embedding_branch")

    @staticmethod
    def check_input_shape(shape):
        """Raises ValueError unless `shape` is [B, H, W, 3] with H and W multiples of 8."""
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(f"ENet takes RGB images of shape [B, H, W, 3], got shape {tuple(shape)}")
        for axis, size in (("height", shape[1]), ("width", shape[2])):
            if size is not None and size % SIZE_MULTIPLE:
                raise ValueError(
                    f"ENet needs image {axis} to be a multiple of {SIZE_MULTIPLE}, got {size} "
                    f"(input shape {tuple(shape)})"
                )

    def build(self, input_shape):
        self.check_input_shape(input_shape)
        # Weights do not depend on the image size: one pass over a tiny image creates them all.
        self.call(keras.ops.zeros((1, SIZE_MULTIPLE, SIZE_MULTIPLE, 3)), training=False)

    def call(self, images, training=None):
        self.check_input_shape(images.shape)
        x = self.rescale(keras.ops.cast(images, self.compute_dtype))
        features = self.encoder(x, training=training)
        return {
            "semantic_logits": keras.ops.cast(
                self.semantic_branch(features, training=training), "float32"
            ),
            "embeddings": keras.ops.cast(
                self.embedding_branch(features, training=training), "float32"
            ),
        }

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "embedding_dim": self.embedding_dim,
            "stage1_dropout": self.stage1_dropout,
            "dropout": self.dropout,
        }
