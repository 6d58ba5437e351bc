"""Tests for enet_discrim.visualization."""
import cv2
import numpy as np
import pytest
from matplotlib.figure import Figure

from enet_discrim.visualization import (draw_lanes, embedding_scatter, embedding_scatter_image,
                                        embedding_to_rgb, instance_colors, overlay_instances)


def test_instance_colors_distinct_and_deterministic():
    colours = instance_colors(60)
    assert colours.shape == (60, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours}) == 60
    np.testing.assert_array_equal(instance_colors(60), colours)
    np.testing.assert_array_equal(instance_colors(5), colours[:5])
    assert instance_colors(0).shape == (0, 3)
    # The first ten are clearly apart (Tableau): every pair differs by > 40 in some channel.
    first = colours[:10].astype(int)
    gaps = np.abs(first[:, None] - first[None]).max(axis=2) + np.eye(10, dtype=int) * 255
    assert gaps.min() > 40


def test_overlay_keeps_background_and_tints_instances_after_nearest_resize():
    image = np.full((4, 6, 3), 100, np.uint8)
    image[0, 0] = (10, 20, 30)
    instance_map = np.array([[0, 1, 0], [2, 0, 0]])  # 2x3 -> 4x6: each cell a 2x2 block
    overlaid = overlay_instances(image, instance_map, alpha=0.5)
    colours = instance_colors(2).astype(int)
    assert overlaid.shape == (4, 6, 3) and overlaid.dtype == np.uint8
    np.testing.assert_array_equal(overlaid[0:2, 2:4], np.broadcast_to(
        np.rint((100 + colours[0]) / 2), (2, 2, 3)))
    np.testing.assert_array_equal(overlaid[2:4, 0:2], np.broadcast_to(
        np.rint((100 + colours[1]) / 2), (2, 2, 3)))
    background = np.ones((4, 6), bool)
    background[0:2, 2:4] = background[2:4, 0:2] = False
    np.testing.assert_array_equal(overlaid[background], image[background])
    assert image[0, 2, 0] == 100  # input untouched


def test_overlay_rejects_non_rgb_images():
    with pytest.raises(ValueError, match=r"image must be uint8 \[H, W, 3\]"):
        overlay_instances(np.zeros((4, 4), np.uint8), np.zeros((4, 4), int))


def test_draw_lanes_draws_only_along_present_points():
    image = np.zeros((100, 60, 3), np.uint8)
    lanes = [[-2, 10, 10, 10, -2], [50, -2, -2, -2, -2]]
    h_samples = [10, 30, 50, 70, 90]
    drawn = draw_lanes(image, lanes, h_samples, thickness=1, radius=2)
    first, second = instance_colors(2)
    np.testing.assert_array_equal(drawn[50, 10], first)   # on the first lane's line
    np.testing.assert_array_equal(drawn[10, 50], second)  # the second lane's lone point
    assert not drawn[85:, :].any()                         # nothing where lanes are absent
    assert not drawn[:, 25:45].any()
    assert not image.any()


def test_embedding_to_rgb_scales_pads_and_projects():
    embeddings = np.zeros((2, 2, 2), np.float32)
    embeddings[..., 0] = [[0, 1], [2, 4]]
    embeddings[..., 1] = 7.0
    rgb = embedding_to_rgb(embeddings)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[..., 0], [[0, 64], [128, 255]])
    assert not rgb[..., 1:].any()  # constant channel and zero padding
    wide = np.random.default_rng(0).normal(size=(8, 9, 6))
    rgb = embedding_to_rgb(wide)
    assert rgb.shape == (8, 9, 3)
    assert rgb.min(axis=(0, 1)).tolist() == [0, 0, 0]
    assert rgb.max(axis=(0, 1)).tolist() == [255, 255, 255]


def test_embedding_scatter_figure_png_and_image(tmp_path):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(20, 30, 4))
    instance_map = np.zeros((20, 30), np.int32)
    instance_map[:10, :10] = 1
    instance_map[10:, 20:] = 2
    assert isinstance(embedding_scatter(embeddings, instance_map), Figure)
    path = embedding_scatter(embeddings, instance_map, str(tmp_path / "scatter.png"),
                             size_inches=(3, 2), dpi=50)
    assert cv2.imread(path).shape == (100, 150, 3)
    image = embedding_scatter_image(embeddings, instance_map, max_points=50)
    assert image.shape == (400, 400, 3) and image.dtype == np.uint8
    # Both instance colours appear among the plotted points.
    for colour in instance_colors(2).astype(int):
        assert (np.abs(image.astype(int) - colour).max(axis=2) <= 3).any()
    with pytest.raises(ValueError, match="must match"):
        embedding_scatter(embeddings, instance_map[:5])
