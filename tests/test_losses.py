import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.losses import (
    class_balanced_cross_entropy,
    class_weights_from_counts,
    discriminative_loss,
    safe_norm,
)


def reference_image_loss(embeddings, instances, semantic, delta_v, delta_d):
    """Eq. (1)-(4) of De Brabandere et al. with plain loops, for one image.

    Returns (variance, distance, regularization), each the mean over the classes with instances.
    """
    classes = np.unique(semantic[instances > 0]) if semantic is not None else [None]
    terms = []
    for cls in classes:
        mask = instances > 0 if cls is None else (instances > 0) & (semantic == cls)
        ids = np.unique(instances[mask])
        if len(ids) == 0:
            continue
        means = []
        variance = 0.0
        for i in ids:
            pixels = embeddings[mask & (instances == i)]
            mean = pixels.mean(axis=0)
            means.append(mean)
            distances = np.linalg.norm(pixels - mean, axis=1)
            variance += np.mean(np.maximum(distances - delta_v, 0) ** 2)
        distance = 0.0
        for a in range(len(ids)):
            for b in range(len(ids)):
                if a != b:
                    distance += max(2 * delta_d - np.linalg.norm(means[a] - means[b]), 0) ** 2
        count = len(ids)
        terms.append(
            (
                variance / count,
                distance / (count * (count - 1)) if count > 1 else 0.0,
                np.mean([np.linalg.norm(m) for m in means]),
            )
        )
    if not terms:
        return 0.0, 0.0, 0.0
    return tuple(np.mean(terms, axis=0))


def gradient_of_total(embeddings, instances, **kwargs):
    embeddings = tf.Variable(embeddings, dtype=tf.float32)
    with tf.GradientTape() as tape:
        losses = discriminative_loss(embeddings, instances, **kwargs)
    return [float(v) for v in losses], tape.gradient(losses[0], embeddings).numpy()


def two_instance_image():
    """One 2x4 image, D = 2: instance 1 at (0, 0), instance 7 at (1, 0), two background pixels."""
    embeddings = np.zeros((1, 2, 4, 2), np.float32)
    embeddings[0, 1, :3, 0] = 1.0
    instances = np.array([[[1, 1, 1, 0], [7, 7, 7, 0]]])
    return embeddings, instances


def test_two_instances_one_apart_give_distance_four():
    embeddings, instances = two_instance_image()
    total, variance, distance, regularization = discriminative_loss(
        embeddings, instances, delta_v=0.5, delta_d=1.5
    )
    assert float(variance) == 0.0
    assert float(distance) == pytest.approx(4.0)  # (2 * 1.5 - 1)^2 for both ordered pairs
    assert float(regularization) == pytest.approx(0.5)  # (||(0,0)|| + ||(1,0)||) / 2
    assert float(total) == pytest.approx(4.0 + 0.001 * 0.5)


def test_variance_by_hand():
    # One instance, D = 1, pixels at 0 and 2: mean 1, each 1 away, hinge (1 - 0.5)^2 = 0.25.
    embeddings = np.array([0.0, 2.0, 5.0], np.float32).reshape(1, 1, 3, 1)
    instances = np.array([[[3, 3, 0]]])
    _, variance, distance, regularization = discriminative_loss(embeddings, instances, delta_v=0.5)
    assert float(variance) == pytest.approx(0.25)
    assert float(distance) == 0.0  # a single instance has no pair
    assert float(regularization) == pytest.approx(1.0)


def test_weights_combine_the_terms():
    embeddings, instances = two_instance_image()
    embeddings[0, 0, 0, 1] = 3.0  # spread instance 1 so that variance > 0
    _, var, dist, reg = discriminative_loss(embeddings, instances)
    total, *_ = discriminative_loss(embeddings, instances, var_weight=2.0, dist_weight=0.5, reg_weight=0.1)
    assert float(var) > 0
    assert float(total) == pytest.approx(2.0 * float(var) + 0.5 * float(dist) + 0.1 * float(reg), rel=1e-6)


def test_matches_the_loop_reference_and_batch_mean_is_mean_of_images():
    rng = np.random.default_rng(0)
    batch, height, width, dims = 4, 6, 7, 3
    embeddings = rng.normal(size=(batch, height, width, dims)).astype(np.float32)
    # Non-contiguous ids, a different number of instances per image, one image without any.
    instances = rng.choice([0, 2, 5, 40, 1000], size=(batch, height, width))
    instances[1] = np.where(instances[1] == 5, 0, instances[1])
    instances[2] = 0
    instances[3] = rng.choice([0, 9], size=(height, width))
    losses = discriminative_loss(embeddings, instances, delta_v=0.3, delta_d=1.0)
    per_image = np.array(
        [reference_image_loss(embeddings[b], instances[b], None, 0.3, 1.0) for b in range(batch)]
    )
    np.testing.assert_allclose([float(v) for v in losses[1:]], per_image.mean(axis=0), rtol=1e-5)
    for b in range(batch):
        single = discriminative_loss(embeddings[b : b + 1], instances[b : b + 1], delta_v=0.3, delta_d=1.0)
        np.testing.assert_allclose([float(v) for v in single[1:]], per_image[b], rtol=1e-5, atol=1e-7)


def test_no_instance_gives_zero_and_a_finite_gradient():
    embeddings = np.random.default_rng(1).normal(size=(2, 3, 3, 4)).astype(np.float32)
    losses, gradient = gradient_of_total(embeddings, np.zeros((2, 3, 3), np.int32))
    assert losses == [0.0, 0.0, 0.0, 0.0]
    assert np.all(gradient == 0)


def test_image_without_instances_still_counts_in_the_batch_mean():
    embeddings, instances = two_instance_image()
    alone = discriminative_loss(embeddings, instances)
    padded = discriminative_loss(
        np.concatenate([embeddings, embeddings]), np.concatenate([instances, np.zeros_like(instances)])
    )
    np.testing.assert_allclose([float(v) for v in padded], [float(v) / 2 for v in alone], rtol=1e-6)


def test_one_pixel_instance_and_pixels_at_their_mean_have_finite_gradients():
    embeddings = np.zeros((1, 2, 2, 2), np.float32)
    instances = np.array([[[4, 0], [0, 0]]])  # a single one-pixel instance at the origin
    for delta_v in (0.5, 0.0):
        losses, gradient = gradient_of_total(embeddings, instances, delta_v=delta_v)
        assert all(np.isfinite(losses)) and np.all(np.isfinite(gradient))
        assert losses[1] == 0.0  # the pixel is its own mean


def test_instances_with_identical_means_have_finite_gradients():
    embeddings = np.ones((1, 1, 4, 2), np.float32)
    losses, gradient = gradient_of_total(embeddings, np.array([[[1, 1, 2, 2]]]))
    assert losses[2] == pytest.approx((2 * 1.5) ** 2)
    assert np.all(np.isfinite(gradient))


def test_per_class_instances_of_different_classes_never_push():
    # Two instances with the same mean: they push each other unless they are of different classes.
    embeddings = np.zeros((1, 1, 4, 2), np.float32)
    instances = np.array([[[1, 1, 2, 2]]])
    _, _, same_class, _ = discriminative_loss(embeddings, instances, semantic_labels=np.zeros_like(instances))
    _, _, other_class, _ = discriminative_loss(embeddings, instances, semantic_labels=np.array([[[11, 11, 13, 13]]]))
    assert float(same_class) == pytest.approx(9.0)
    assert float(other_class) == 0.0


def test_per_class_loss_is_the_mean_over_classes_with_instances():
    rng = np.random.default_rng(2)
    embeddings = rng.normal(size=(2, 5, 6, 2)).astype(np.float32)
    instances = rng.choice([0, 1, 2, 3], size=(2, 5, 6))
    semantic = rng.choice([11, 13, 255], size=(2, 5, 6))
    losses = discriminative_loss(embeddings, instances, semantic_labels=semantic)
    expected = np.mean(
        [reference_image_loss(embeddings[b], instances[b], semantic[b], 0.5, 1.5) for b in range(2)], axis=0
    )
    np.testing.assert_allclose([float(v) for v in losses[1:]], expected, rtol=1e-5)


def test_large_instance_ids_and_int64_labels():
    embeddings, instances = two_instance_image()
    big = np.where(instances == 7, 2**31 - 1, instances).astype(np.int64)
    np.testing.assert_allclose(
        [float(v) for v in discriminative_loss(embeddings, big)],
        [float(v) for v in discriminative_loss(embeddings, instances)],
    )


def test_same_result_inside_tf_function_with_unknown_shapes():
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(3, 4, 5, 4)).astype(np.float32)
    instances = rng.choice([0, 1, 2], size=(3, 4, 5)).astype(np.int32)
    traced = tf.function(
        discriminative_loss,
        input_signature=[tf.TensorSpec([None, None, None, 4]), tf.TensorSpec([None, None, None], tf.int32)],
    )
    np.testing.assert_allclose(
        [float(v) for v in traced(embeddings, instances)],
        [float(v) for v in discriminative_loss(embeddings, instances)],
        rtol=1e-6,
    )


def test_safe_norm():
    vectors = tf.Variable([[3.0, 4.0], [0.0, 0.0]])
    with tf.GradientTape() as tape:
        norms = safe_norm(vectors)
    np.testing.assert_allclose(norms, [5.0, 0.0])
    np.testing.assert_allclose(tape.gradient(norms, vectors), [[0.6, 0.8], [0.0, 0.0]])


def test_class_weights_from_counts():
    weights = class_weights_from_counts(np.array([75, 25]))
    np.testing.assert_allclose(weights, [1 / np.log(1.02 + 0.75), 1 / np.log(1.02 + 0.25)], rtol=1e-6)
    np.testing.assert_allclose(class_weights_from_counts(tf.constant([75, 25])), weights, rtol=1e-6)


def test_class_balanced_cross_entropy_by_hand():
    # 4 valid pixels: three of class 0, one of class 1, one ignored. Uniform logits: CE = ln 2.
    logits = np.zeros((1, 1, 5, 2), np.float32)
    labels = np.array([[[0, 0, 0, 1, 255]]])
    w0, w1 = 1 / np.log(1.02 + 0.75), 1 / np.log(1.02 + 0.25)
    # Summed over valid pixels, divided by all 5 pixels.
    expected = (3 * w0 + w1) * np.log(2) / 5
    assert float(class_balanced_cross_entropy(logits, labels)) == pytest.approx(expected, rel=1e-5)
    # Confident and right on class 0: only class 1's weighted term remains.
    logits[0, 0, :3, 0] = 50.0
    assert float(class_balanced_cross_entropy(logits, labels)) == pytest.approx(w1 * np.log(2) / 5, rel=1e-5)
    # Fixed weights replace the batch's.
    fixed = class_balanced_cross_entropy(logits, labels, class_weights=[1.0, 2.0])
    assert float(fixed) == pytest.approx(2 * np.log(2) / 5, rel=1e-5)


def test_class_balanced_cross_entropy_of_a_batch_is_the_mean_of_its_halves():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(4, 3, 5, 3)).astype(np.float32)
    labels = rng.choice([0, 1, 2, 255], size=(4, 3, 5))
    weights = [1.5, 10.0, 30.0]
    whole = class_balanced_cross_entropy(logits, labels, weights)
    halves = [class_balanced_cross_entropy(logits[i : i + 2], labels[i : i + 2], weights) for i in (0, 2)]
    assert float(whole) == pytest.approx(np.mean([float(h) for h in halves]), rel=1e-6)


def test_class_balanced_cross_entropy_all_ignored_is_zero():
    value = class_balanced_cross_entropy(np.zeros((1, 2, 2, 3), np.float32), np.full((1, 2, 2), 255))
    assert float(value) == 0.0
