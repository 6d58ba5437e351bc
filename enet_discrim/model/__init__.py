"""ENet and its layers."""

from enet_discrim.model.enet import SIZE_MULTIPLE, ENet, ENetDecoderBranch, ENetEncoder
from enet_discrim.model.layers import Bottleneck, InitialBlock, MaxPoolingWithArgmax2D, MaxUnpooling2D

__all__ = [
    "SIZE_MULTIPLE",
    "Bottleneck",
    "ENet",
    "ENetDecoderBranch",
    "ENetEncoder",
    "InitialBlock",
    "MaxPoolingWithArgmax2D",
    "MaxUnpooling2D",
]
