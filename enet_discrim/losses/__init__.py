"""Losses: the discriminative loss for instance embeddings and the semantic cross-entropy."""

from enet_discrim.losses.discriminative import discriminative_loss, safe_norm
from enet_discrim.losses.semantic import class_balanced_cross_entropy, class_weights_from_counts

__all__ = ["class_balanced_cross_entropy", "class_weights_from_counts", "discriminative_loss", "safe_norm"]
