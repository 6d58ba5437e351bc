"""The discriminative loss of De Brabandere, Neven and Van Gool 2017, eq. (1)-(4).

"Semantic Instance Segmentation with a Discriminative Loss Function", https://arxiv.org/abs/1708.02551

The loss is computed for every image at once: pixels are grouped by (image, class, instance) with
`tf.unique` and segment sums, and the pairwise distance term is one [S, S] matrix over all S
instances of the batch, masked to the pairs that share image and class. No Python loop over images
or instances, so it traces once in `tf.function` and runs per replica under `tf.distribute`.
"""

import tensorflow as tf

# The paper's margins and weights: the defaults of the loss, of training (TrainConfig, the flags
# of `training.py`) and of a model folder's settings.
DELTA_V = 0.5
DELTA_D = 1.5
VAR_WEIGHT = 1.0
DIST_WEIGHT = 1.0
REG_WEIGHT = 0.001

# Bit layout of the int64 key that identifies an instance: image index | class | instance id.
_CLASS_SHIFT = 32
_IMAGE_SHIFT = 40
_CLASS_MASK = (1 << (_IMAGE_SHIFT - _CLASS_SHIFT)) - 1


def safe_norm(vectors, axis=-1):
    """L2 norm whose value and gradient are 0 (not NaN) at the zero vector.

    `tf.norm` differentiates to 0/0 at zero, which is how the reference TF1 implementation gets a
    NaN gradient when all pixels of an instance sit exactly at their mean.

    Args:
        vectors: float tensor [..., D].
        axis: int, default -1. The axis reduced.

    Returns:
        float tensor [...].
    """
    squared = tf.reduce_sum(tf.square(vectors), axis=axis)
    positive = squared > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, squared, tf.ones_like(squared))), 0.0)


def _mean_per_segment(values, segment_ids, num_segments, counts):
    return tf.math.unsorted_segment_sum(values, segment_ids, num_segments) / counts


def discriminative_loss(
    embeddings,
    instance_labels,
    semantic_labels=None,
    delta_v=DELTA_V,
    delta_d=DELTA_D,
    var_weight=VAR_WEIGHT,
    dist_weight=DIST_WEIGHT,
    reg_weight=REG_WEIGHT,
):
    """Discriminative loss, per image, averaged over the batch.

    For the C instances of an image (means mu_c, pixels x_i, L2 norms):
        variance       = 1/C sum_c 1/N_c sum_i max(||mu_c - x_i|| - delta_v, 0)^2
        distance       = 1/(C(C-1)) sum_{a != b} max(2 delta_d - ||mu_a - mu_b||, 0)^2  (0 if C < 2)
        regularization = 1/C sum_c ||mu_c||
        total          = var_weight * variance + dist_weight * distance + reg_weight * regularization
    An image without instances contributes 0 to every term and still counts in the batch mean.

    With `semantic_labels`, the loss of an image is the mean, over the classes that have at least
    one instance in it, of the loss computed on that class's instances alone: instances of
    different classes never push each other apart.

    Args:
        embeddings: float [B, H, W, D] (cast to float32; D must be static).
        instance_labels: int [B, H, W]. 0 (or negative) = background, ignored; instance ids are any
            positive integers below 2**32, not necessarily contiguous.
        semantic_labels: optional int [B, H, W] in [0, 255], the class of every pixel.
        delta_v: float, default 0.5. Pull margin.
        delta_d: float, default 1.5. Push margin (means are pushed 2 * delta_d apart).
        var_weight, dist_weight, reg_weight: floats, defaults 1.0, 1.0, 0.001.

    Returns:
        `(total, variance, distance, regularization)`, float32 scalars.

    Example:
    >>> total, var, dist, reg = discriminative_loss(outputs["embeddings"], labels["instance"])
    """
    embeddings = tf.convert_to_tensor(embeddings)
    embeddings = tf.cast(embeddings, tf.float32)
    instance_labels = tf.cast(instance_labels, tf.int64)
    batch_size = tf.shape(embeddings, out_type=tf.int64)[0]

    image_index = tf.broadcast_to(
        tf.reshape(tf.range(batch_size), [-1, 1, 1]), tf.shape(instance_labels, out_type=tf.int64)
    )
    if semantic_labels is None:
        class_index = tf.zeros_like(instance_labels)
    else:
        class_index = tf.bitwise.bitwise_and(tf.cast(semantic_labels, tf.int64), _CLASS_MASK)
    foreground = instance_labels > 0
    pixel_keys = (
        tf.bitwise.left_shift(tf.boolean_mask(image_index, foreground), _IMAGE_SHIFT)
        + tf.bitwise.left_shift(tf.boolean_mask(class_index, foreground), _CLASS_SHIFT)
        + tf.boolean_mask(instance_labels, foreground)
    )
    pixels = tf.boolean_mask(embeddings, foreground)  # [N, D]

    # Instances (segments) of the whole batch, and their means.
    instance_keys, pixel_instance = tf.unique(pixel_keys)
    num_instances = tf.size(instance_keys)
    pixel_counts = tf.math.unsorted_segment_sum(
        tf.ones_like(pixel_keys, tf.float32), pixel_instance, num_instances
    )
    means = _mean_per_segment(pixels, pixel_instance, num_instances, pixel_counts[:, None])

    pull = tf.square(tf.nn.relu(safe_norm(tf.gather(means, pixel_instance) - pixels) - delta_v))
    instance_variance = _mean_per_segment(pull, pixel_instance, num_instances, pixel_counts)

    # Groups: the (image, class) pairs whose instances are compared with each other.
    group_keys, instance_group = tf.unique(tf.bitwise.right_shift(instance_keys, _CLASS_SHIFT))
    num_groups = tf.size(group_keys)
    group_sizes = tf.math.unsorted_segment_sum(
        tf.ones_like(instance_group, tf.float32), instance_group, num_groups
    )

    same_group = tf.equal(instance_group[:, None], instance_group[None, :])
    distinct = tf.logical_not(tf.eye(num_instances, dtype=tf.bool))
    pair_distance = safe_norm(means[:, None, :] - means[None, :, :])
    push = tf.square(tf.nn.relu(2.0 * delta_d - pair_distance))
    push = tf.where(tf.logical_and(same_group, distinct), push, 0.0)
    pairs = tf.maximum(group_sizes * (group_sizes - 1.0), 1.0)

    group_variance = _mean_per_segment(instance_variance, instance_group, num_groups, group_sizes)
    group_distance = _mean_per_segment(
        tf.reduce_sum(push, axis=1), instance_group, num_groups, pairs
    )
    group_regularization = _mean_per_segment(
        safe_norm(means), instance_group, num_groups, group_sizes
    )

    # Per image: the mean over its groups (classes); then the mean over the whole batch.
    group_image = tf.bitwise.right_shift(group_keys, _IMAGE_SHIFT - _CLASS_SHIFT)
    groups_per_image = tf.math.unsorted_segment_sum(
        tf.ones_like(group_image, tf.float32), group_image, batch_size
    )
    batch = tf.cast(batch_size, tf.float32)

    def batch_mean(group_values):
        per_image = tf.math.unsorted_segment_sum(group_values, group_image, batch_size)
        return tf.reduce_sum(per_image / tf.maximum(groups_per_image, 1.0)) / batch

    variance = batch_mean(group_variance)
    distance = batch_mean(group_distance)
    regularization = batch_mean(group_regularization)
    total = var_weight * variance + dist_weight * distance + reg_weight * regularization
    return total, variance, distance, regularization
