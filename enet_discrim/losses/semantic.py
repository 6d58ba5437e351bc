"""Semantic cross-entropy with ENet's class balancing (Paszke et al. 2016, sec. 5.2)."""

import numpy as np
import tensorflow as tf


def class_weights_from_counts(pixel_counts, c=1.02):
    """ENet's class weights 1 / ln(c + p_class) from per-class pixel counts.

    Rare classes (lanes are ~2 % of a TuSimple frame) get weights up to 1/ln(1.02) ~ 50, frequent
    ones ~ 1.5.

    Args:
        pixel_counts: [num_classes] counts (numpy or tensor).
        c: float, default 1.02.

    Returns:
        float32 [num_classes] of the same kind as `pixel_counts` (numpy in, numpy out).
    """
    if isinstance(pixel_counts, np.ndarray) or isinstance(pixel_counts, (list, tuple)):
        counts = np.asarray(pixel_counts, np.float64)
        shares = counts / max(counts.sum(), 1.0)
        return (1.0 / np.log(c + shares)).astype(np.float32)
    counts = tf.cast(pixel_counts, tf.float32)
    return 1.0 / tf.math.log(c + counts / tf.maximum(tf.reduce_sum(counts), 1.0))


def class_balanced_cross_entropy(logits, labels, class_weights=None, ignore_label=255, c=1.02):
    """Softmax cross-entropy weighted per class, summed over valid pixels / all pixels.

    Dividing by the number of pixels (ignored ones included) rather than by the sum of the weights
    makes the loss of a batch the exact mean of the losses of its parts, so a batch split over
    replicas gives the same loss as on one device. For the same reason the class weights should be
    fixed (estimated once over the training set); without them they come from this batch, as in
    LaneNet.

    Args:
        logits: float [B, H, W, C] (cast to float32).
        labels: int [B, H, W]; `ignore_label` (and any id >= C) is left out.
        class_weights: optional float [C]; default: `class_weights_from_counts` of this batch.
        ignore_label: int, default 255.
        c: float, default 1.02, for weights from the batch.

    Returns:
        float32 scalar (0 when every pixel is ignored).
    """
    logits = tf.cast(logits, tf.float32)
    num_classes = logits.shape[-1]
    labels = tf.cast(labels, tf.int32)
    valid = tf.logical_and(tf.not_equal(labels, ignore_label), labels < num_classes)
    valid_labels = tf.boolean_mask(labels, valid)
    valid_logits = tf.boolean_mask(logits, valid)

    if class_weights is None:
        counts = tf.math.bincount(
            valid_labels, minlength=num_classes, maxlength=num_classes, dtype=tf.float32
        )
        class_weights = class_weights_from_counts(counts, c)
    pixel_weights = tf.gather(tf.cast(class_weights, tf.float32), valid_labels)

    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=valid_labels, logits=valid_logits)
    num_pixels = tf.cast(tf.size(labels), tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(pixel_weights * losses), num_pixels)
