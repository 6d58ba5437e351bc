"""Semantic cross-entropy with ENet's class balancing (Paszke et al. 2016, sec. 5.2)."""

import tensorflow as tf


def class_balanced_cross_entropy(logits, labels, num_classes, ignore_label=255, c=1.02):
    """Softmax cross-entropy weighted per class by 1 / ln(c + p_class).

    p_class is the share of the class among the batch's valid pixels, as in LaneNet. Rare classes
    (lanes are ~2 % of a TuSimple frame) get weights up to 1/ln(1.02) ~ 50, frequent ones ~ 1.5.

    Args:
        logits: float [B, H, W, num_classes] (cast to float32).
        labels: int [B, H, W]; `ignore_label` pixels count neither in the loss nor in p_class.
        num_classes: int.
        ignore_label: int, default 255.
        c: float, default 1.02.

    Returns:
        float32 scalar: the weighted mean over valid pixels (0 when there are none).
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    valid = tf.logical_and(tf.not_equal(labels, ignore_label), labels < num_classes)
    valid_labels = tf.boolean_mask(labels, valid)
    valid_logits = tf.boolean_mask(logits, valid)

    counts = tf.math.bincount(valid_labels, minlength=num_classes, maxlength=num_classes, dtype=tf.float32)
    shares = counts / tf.maximum(tf.reduce_sum(counts), 1.0)
    class_weights = 1.0 / tf.math.log(c + shares)
    pixel_weights = tf.gather(class_weights, valid_labels)

    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=valid_labels, logits=valid_logits)
    return tf.math.divide_no_nan(tf.reduce_sum(pixel_weights * losses), tf.reduce_sum(pixel_weights))
