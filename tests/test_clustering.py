"""Tests for enet_discrim.clustering (mean-shift on embeddings) and its benchmark case."""
import numpy as np
import pytest
from sklearn.cluster import MeanShift, get_bin_seeds
from sklearn.metrics import adjusted_rand_score

from enet_discrim.benchmark.clustering import synthetic_lane_embeddings
from enet_discrim.clustering import (DEFAULT_BANDWIDTH, bin_seeds, cluster_embeddings, cluster_per_class,
                                     confident_classes, find_modes)


def _blobs(sizes, centres, noise=0.15, seed=0):
    rng = np.random.default_rng(seed)
    points = [np.asarray(c, float) + rng.normal(scale=noise, size=(n, len(c)))
              for n, c in zip(sizes, centres)]
    return np.concatenate(points)


def _as_frame(points):
    """Points [N, D] laid out as a 1-row frame with every pixel foreground."""
    return points[None, :, :], np.ones((1, len(points)), dtype=bool)


def test_bin_seeds_equal_sklearn_get_bin_seeds():
    points = _blobs([120, 80, 50], [[0, 0, 0], [3, 0, 0], [0, 3, 3]], noise=0.4)
    ours = {tuple(np.round(s, 5)) for s in bin_seeds(points, 1.0)}
    theirs = {tuple(np.round(s, 5)) for s in get_bin_seeds(points, 1.0)}
    assert ours == theirs
    # Lexicographic order, negative cells included.
    for bin_size in (0.7, 1.5):
        expected = np.unique(np.round(points / bin_size), axis=0) * bin_size
        np.testing.assert_allclose(bin_seeds(points, bin_size), expected, rtol=1e-6)


def test_find_modes_equal_sklearn_meanshift_centres():
    points = _blobs([150, 100, 60], [[0, 0, 0, 0], [3, 0, 0, 0], [0, 0, 3, 3]], noise=0.3)
    ours = find_modes(points, 1.0)
    theirs = MeanShift(bandwidth=1.0, bin_seeding=True).fit(points).cluster_centers_
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_small_frame_matches_sklearn_cluster_all_false_exactly():
    # Fewer pixels than max_samples: no sampling, so labels equal MeanShift(cluster_all=False).
    points = _blobs([90, 70, 60], [[0, 0], [3, 0], [0, 3]], noise=0.3, seed=1)
    points = np.concatenate([points, [[1.6, 1.6]]])  # between blobs, maybe beyond bandwidth
    embeddings, foreground = _as_frame(points)
    ours = cluster_embeddings(embeddings, foreground, bandwidth=1.0, min_pixels=1,
                              cluster_all=False)[0]
    theirs = MeanShift(bandwidth=1.0, bin_seeding=True, cluster_all=False).fit(points).labels_
    assert (theirs == -1).any()  # the case under test: a point no mode reaches
    np.testing.assert_array_equal(ours == 0, theirs == -1)
    assert adjusted_rand_score(theirs, ours) == pytest.approx(1.0)


def test_small_frame_matches_sklearn_cluster_all_true_exactly():
    points = _blobs([90, 70, 60], [[0, 0], [3, 0], [0, 3]], noise=0.3, seed=1)
    points = np.concatenate([points, [[1.6, 1.6]]])
    embeddings, foreground = _as_frame(points)
    ours = cluster_embeddings(embeddings, foreground, bandwidth=1.0, min_pixels=1,
                              cluster_all=True)[0]
    theirs = MeanShift(bandwidth=1.0, bin_seeding=True, cluster_all=True).fit(points).labels_
    assert np.all(ours > 0)
    assert adjusted_rand_score(theirs, ours) == pytest.approx(1.0)


def test_cluster_all_keeps_the_noisy_lane_pixels():
    """5 well separated lanes, 4-D, per-axis noise 0.35, bandwidth 1.0: leaving pixels beyond the
    bandwidth out drops some lane pixels; assigning all of them recovers the instances."""
    embeddings, foreground, truth = synthetic_lane_embeddings(64, 128, n_lanes=5, dims=4,
                                                              noise=0.35, seed=2)
    kept = cluster_embeddings(embeddings, foreground, bandwidth=1.0, min_pixels=10,
                              cluster_all=True)
    dropped = cluster_embeddings(embeddings, foreground, bandwidth=1.0, min_pixels=10,
                                 cluster_all=False)
    assert np.all(kept[foreground] > 0)
    assert np.count_nonzero(dropped[foreground] == 0) > 0.02 * foreground.sum()
    assert adjusted_rand_score(truth[foreground], kept[foreground]) >= 0.99
    assert adjusted_rand_score(truth[foreground], dropped[foreground]) < 0.95


def test_sampled_clustering_agrees_with_full_meanshift():
    embeddings, foreground, truth = synthetic_lane_embeddings(64, 128, n_lanes=4, dims=4, seed=3)
    assert foreground.sum() > 600  # so that max_samples=300 really samples
    ours = cluster_embeddings(embeddings, foreground, bandwidth=1.0, min_pixels=10,
                              max_samples=300, seed=0)
    full = MeanShift(bandwidth=1.0, bin_seeding=True).fit(embeddings[foreground]).labels_
    assert adjusted_rand_score(full, ours[foreground]) >= 0.98
    assert adjusted_rand_score(truth[foreground], ours[foreground]) >= 0.98
    assert ours.max() == 4
    assert np.all(ours[~foreground] == 0)


def test_deterministic_for_a_seed():
    embeddings, foreground, _ = synthetic_lane_embeddings(48, 96, n_lanes=3, dims=3, noise=0.35,
                                                          seed=5)
    first = cluster_embeddings(embeddings, foreground, max_samples=100, seed=7, min_pixels=5)
    second = cluster_embeddings(embeddings, foreground, max_samples=100, seed=7, min_pixels=5)
    assert first.dtype == np.int32 and first.shape == (48, 96)
    np.testing.assert_array_equal(first, second)


def test_numbered_by_size_and_small_clusters_dropped():
    # 10 pixels at (3,0), 40 at (0,0), 25 at (0,3): ids by size 1 <- 40, 2 <- 25; the 10 dropped.
    points = np.concatenate([np.tile([[3.0, 0.0]], (10, 1)), np.tile([[0.0, 0.0]], (40, 1)),
                             np.tile([[0.0, 3.0]], (25, 1))])
    embeddings, foreground = _as_frame(points)
    labels = cluster_embeddings(embeddings, foreground, bandwidth=1.0, min_pixels=20)[0]
    np.testing.assert_array_equal(labels, [0] * 10 + [1] * 40 + [2] * 25)


def test_empty_foreground_gives_zeros():
    embeddings = np.zeros((4, 5, 3), np.float32)
    labels = cluster_embeddings(embeddings, np.zeros((4, 5), bool))
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, np.zeros((4, 5)))


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"foreground shape \(4, 4\) does not match"):
        cluster_embeddings(np.zeros((4, 5, 3)), np.ones((4, 4), bool))


def test_cluster_per_class_unique_ids_and_classes():
    # Row 0: class 11 with two instances (35 and 25 pixels); row 1: class 13 with one;
    # row 2: class 0 (stuff).
    embeddings = np.zeros((3, 60, 2))
    embeddings[0, 35:] = [3.0, 0.0]
    semantic = np.array([[11] * 60, [13] * 60, [0] * 60])
    instance_map, classes = cluster_per_class(embeddings, semantic, thing_classes=[11, 13],
                                              min_pixels=5)
    np.testing.assert_array_equal(instance_map[0], [1] * 35 + [2] * 25)
    np.testing.assert_array_equal(instance_map[1], [3] * 60)
    np.testing.assert_array_equal(instance_map[2], 0)
    np.testing.assert_array_equal(classes, [11, 11, 13])
    assert classes.dtype == np.int32


def test_per_class_clustering_never_merges_classes_and_separates_instances():
    # Issue 16 item 5. Person (11) instances A, B and car (13) instances C, D; A and C have the
    # same embedding centre, B and D another, 3 away (2 * delta_d): the classes' embeddings
    # overlap. Each instance lies in a ball of radius 0.45 < delta_v round its centre. A stuff
    # row (class 0) and unsure pixels (-1) share A's centre too.
    rng = np.random.default_rng(4)
    height, width = 22, 40
    truth = np.zeros((height, width), np.int32)
    truth[0:10, 0:20], truth[10:20, 0:20] = 1, 2    # A, B: person
    truth[0:10, 20:40], truth[10:20, 20:40] = 3, 4  # C, D: car
    semantic = np.where(truth == 0, 0, np.where(truth <= 2, 11, 13))
    semantic[21, :10] = -1
    centres = {0: [0, 0, 0, 0], 1: [0, 0, 0, 0], 2: [3, 0, 0, 0], 3: [0, 0, 0, 0],
               4: [3, 0, 0, 0]}
    noise = rng.normal(size=(height, width, 4))
    noise *= 0.45 * rng.uniform(size=(height, width, 1)) / np.linalg.norm(noise, axis=2,
                                                                          keepdims=True)
    embeddings = np.array([[centres[k] for k in row] for row in truth], float) + noise

    instance_map, classes = cluster_per_class(embeddings, semantic, thing_classes=[11, 13],
                                              min_pixels=10)
    ids = {k: np.unique(instance_map[truth == k]) for k in (1, 2, 3, 4)}
    assert all(len(found) == 1 and found[0] > 0 for found in ids.values())  # none split or lost
    assert len({int(found[0]) for found in ids.values()}) == 4  # none merged, across or within
    assert [classes[ids[k][0] - 1] for k in (1, 2, 3, 4)] == [11, 11, 13, 13]
    assert (instance_map[truth == 0] == 0).all()
    # Clustering the two classes together merges A with C and B with D: the overlap is real.
    together = cluster_embeddings(embeddings, truth > 0, min_pixels=10)
    merged = {k: set(np.unique(together[truth == k]).tolist()) for k in (1, 2, 3, 4)}
    assert merged[1] == merged[3] and merged[2] == merged[4] and merged[1] != merged[2]


def test_default_bandwidth_keeps_instances_that_just_meet_the_margins_apart():
    # delta_v = 0.5, delta_d = 1.5: each instance fills a ball of radius 0.5 (its surface included)
    # and the centres are 2 * delta_d = 3 apart, so the facing surfaces are only 2.0 apart.
    rng = np.random.default_rng(3)
    directions = rng.normal(size=(400, 3))
    surface = 0.5 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    inside = surface[:200] * rng.uniform(0, 1, size=(200, 1))
    ball = np.concatenate([surface[200:], inside, [[0.5, 0, 0], [-0.5, 0, 0]]])
    centres = np.array([[0.0, 0, 0], [3.0, 0, 0], [1.5, 2.6, 0]])
    points = np.concatenate([ball + centre for centre in centres])
    embeddings, foreground = _as_frame(points)
    labels = cluster_embeddings(embeddings, foreground, bandwidth=DEFAULT_BANDWIDTH, min_pixels=1)[0]
    truth = np.repeat([0, 1, 2], len(ball))
    assert DEFAULT_BANDWIDTH == 1.5 and (labels > 0).all()
    assert adjusted_rand_score(truth, labels) == 1.0


def test_confident_classes_marks_unsure_pixels():
    probabilities = np.array([[[0.9, 0.1], [0.3, 0.7], [0.15, 0.85]]])
    np.testing.assert_array_equal(confident_classes(probabilities), [[0, 1, 1]])
    np.testing.assert_array_equal(confident_classes(probabilities, 0.8), [[0, -1, 1]])
    three = np.array([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]])
    np.testing.assert_array_equal(confident_classes(three, 0.6), [[-1, 2]])
    # Unsure pixels are in no class, so cluster_per_class leaves them out.
    embeddings = np.zeros((1, 3, 2))
    instances, _ = cluster_per_class(embeddings, confident_classes(probabilities, 0.8), [1],
                                     min_pixels=1)
    np.testing.assert_array_equal(instances, [[0, 0, 1]])
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="min_confidence"):
            confident_classes(probabilities, bad)
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
        confident_classes(np.zeros((3, 2)))


def test_points_beyond_every_bin_seed_still_give_their_modes():
    # Two 8-D points in the cell around the origin, each 0.49 * sqrt(8) = 1.39 bandwidths from
    # its centre, the only seed: scikit-learn gives up; the points seed the search instead.
    points = np.array([[0.49] * 8, [-0.49] * 8])
    with pytest.raises(ValueError, match="No point was within bandwidth"):
        MeanShift(bandwidth=1.0, bin_seeding=True).fit(points)
    modes = find_modes(points, bandwidth=1.0)
    np.testing.assert_allclose(sorted(modes.tolist()), sorted(points.tolist()))
    # As a frame: each point its own instance.
    embeddings = np.zeros((1, 2, 8))
    embeddings[0] = points
    labels = cluster_embeddings(embeddings, np.ones((1, 2), bool), bandwidth=1.0, min_pixels=1)
    assert sorted(labels.ravel().tolist()) == [1, 2]
