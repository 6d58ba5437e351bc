"""ENet, its layers, and its forms for inference (batch norm folded, XLA-compiled)."""

from enet_discrim.model.enet import SIZE_MULTIPLE, ENet, ENetDecoderBranch, ENetEncoder
from enet_discrim.model.fold import fold_batch_norm
from enet_discrim.model.layers import Bottleneck, InitialBlock, MaxPoolingWithArgmax2D, MaxUnpooling2D
from enet_discrim.model.serving import frame_function, inference_function

__all__ = [
    "SIZE_MULTIPLE",
    "Bottleneck",
    "ENet",
    "ENetDecoderBranch",
    "ENetEncoder",
    "InitialBlock",
    "MaxPoolingWithArgmax2D",
    "MaxUnpooling2D",
    "fold_batch_norm",
    "frame_function",
    "inference_function",
]
