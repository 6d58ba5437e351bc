"""TensorBoard summaries of a training run: loss scalars, predicted and true instances, embeddings."""

import numpy as np
import tensorflow as tf

from enet_discrim import clustering, visualization


def write_scalars(losses, learning_rate=None):
    """Writes every loss as `loss/<name>` (and the learning rate) to the default writer."""
    for name, value in losses.items():
        tf.summary.scalar(f"loss/{name}", value)
    if learning_rate is not None:
        tf.summary.scalar("learning_rate", learning_rate)


def write_images(model, images, labels, info, bandwidth, min_confidence=0.0):
    """Writes, for a few validation images: the input with the predicted (clustered) instances,
    the ground-truth instances, and the embedding rendered as colours. Clustering is inference's:
    `bandwidth` and `min_confidence` as in the model's config.json."""
    outputs = model(images, training=False)
    images = images.numpy().astype(np.uint8)
    probabilities = tf.nn.softmax(outputs["semantic_logits"]).numpy()
    embeddings = outputs["embeddings"].numpy()
    thing_ids = info.get("thing_train_ids") or [1]
    predicted, truth, colours = [], [], []
    for i, image in enumerate(images):
        instances, _ = clustering.cluster_per_class(
            embeddings[i], clustering.confident_classes(probabilities[i], min_confidence), thing_ids,
            bandwidth=bandwidth,
        )
        predicted.append(visualization.overlay_instances(image, instances))
        truth.append(visualization.overlay_instances(image, labels["instance"][i].numpy()))
        colours.append(visualization.embedding_to_rgb(embeddings[i]))
    max_outputs = len(images)
    tf.summary.image("predicted_instances", np.stack(predicted), max_outputs=max_outputs)
    tf.summary.image("ground_truth_instances", np.stack(truth), max_outputs=max_outputs)
    tf.summary.image("embeddings", np.stack(colours), max_outputs=max_outputs)


def write_embedding_scatter(model, images, labels, path):
    """Saves a matplotlib scatter plot of the first image's embeddings, coloured by true instance."""
    embeddings = model(images[:1], training=False)["embeddings"].numpy()[0]
    visualization.embedding_scatter(embeddings, labels["instance"][0].numpy(), path)
