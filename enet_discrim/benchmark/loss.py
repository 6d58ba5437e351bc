"""Cost of the discriminative loss and its gradient against an ENet forward + backward pass.

Target (issue 2): the loss and its gradient cost at most 10 % of the ENet pass on the same batch.
"""

import cv2
import numpy as np
import tensorflow as tf

from enet_discrim.benchmark.timing import median_seconds
from enet_discrim.losses import discriminative_loss
from enet_discrim.model import ENet


def synthetic_lane_labels(batch_size, height, width, lanes, seed=0):
    """int32 [B, H, W] instance maps: `lanes` thick lines from a vanishing point to the bottom."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((batch_size, height, width), np.int32)
    thickness = max(2, width // 128)
    for image in labels:
        vanishing = (int(width * rng.uniform(0.4, 0.6)), int(height * 0.4))
        for lane, bottom_x in enumerate(np.linspace(-0.3, 1.3, lanes) * width, start=1):
            cv2.line(image, vanishing, (int(bottom_x), height - 1), lane, thickness)
    return labels


def run(batch_size=4, height=256, width=512, embedding_dim=4, lanes=5, repeats=5, seed=0):
    """Returns a dict: ms of the ENet forward + backward pass, ms of loss + gradient, their ratio."""
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.uniform(0, 255, (batch_size, height, width, 3)).astype(np.float32))
    instances = tf.constant(synthetic_lane_labels(batch_size, height, width, lanes, seed))
    model = ENet(num_classes=2, embedding_dim=embedding_dim)
    model(images[:1])

    @tf.function
    def network_step():
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            # Stands in for a loss; the network pass is what is measured.
            loss = tf.reduce_mean(outputs["semantic_logits"]) + tf.reduce_mean(outputs["embeddings"])
        return tape.gradient(loss, model.trainable_weights)

    embeddings = tf.Variable(rng.normal(size=(batch_size, height, width, embedding_dim)).astype(np.float32))

    @tf.function
    def loss_step():
        with tf.GradientTape() as tape:
            total, *_ = discriminative_loss(embeddings, instances)
        return tape.gradient(total, embeddings)

    network_s = median_seconds(lambda: network_step()[0].numpy(), repeats)
    loss_s = median_seconds(lambda: loss_step().numpy(), repeats * 4)
    return {
        "batch": f"{batch_size}x{height}x{width}",
        "foreground_share": float(np.mean(instances.numpy() > 0)),
        "enet_forward_backward_ms": 1000 * network_s,
        "loss_gradient_ms": 1000 * loss_s,
        "loss_share": loss_s / network_s,
    }
