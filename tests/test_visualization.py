"""Tests for enet_discrim.visualization."""
import colorsys

import cv2
import numpy as np
import pytest
from matplotlib.figure import Figure

from enet_discrim.visualization import (class_instance_colors, draw_lanes, embedding_scatter,
                                        embedding_scatter_image, embedding_to_rgb, instance_colors,
                                        overlay_instances)


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


# --- Cityscapes overlays: a hue per class, a shade per instance (issue 16 item 3).

def _hsv(colours):
    return np.array([colorsys.rgb_to_hsv(*(np.asarray(c) / 255.0)) for c in colours])


def test_class_colours_share_a_hue_per_class_and_differ_per_instance():
    # Instances 1..5: car, person, car, car, person; classes in a fixed order person, rider, car.
    colours = class_instance_colors([13, 11, 13, 13, 11], classes=[11, 12, 13])
    assert colours.shape == (5, 3) and colours.dtype == np.uint8
    hsv = _hsv(colours)
    # person is class 0 of 3: hue 0; car is class 2 of 3: hue 2/3 (rounding to uint8 aside).
    np.testing.assert_allclose(hsv[[1, 4], 0], 0.0, atol=0.01)
    np.testing.assert_allclose(hsv[[0, 2, 3], 0], 2 / 3, atol=0.01)
    assert len({tuple(c) for c in colours}) == 5
    # Shades: the first of a class at full value, the last of three at 0.4.
    np.testing.assert_allclose(hsv[[0, 2, 3], 2], [1.0, 0.7, 0.4], atol=0.01)
    # The same class keeps its hue in another frame with other classes beside it.
    np.testing.assert_array_equal(class_instance_colors([13], classes=[11, 12, 13]), colours[:1])
    with pytest.raises(ValueError, match=r"instance classes \[14\] are not among"):
        class_instance_colors([14], classes=[11, 13])


def test_the_eight_cityscapes_thing_classes_are_an_eighth_of_the_hue_circle_apart():
    hues = _hsv(class_instance_colors(list(range(11, 19)), classes=range(11, 19)))[:, 0]
    gaps = np.abs(hues[:, None] - hues[None])
    circular = np.minimum(gaps, 1 - gaps) + np.eye(8)
    assert circular.min() > 1 / 8 - 0.01


def test_class_overlay_paints_each_instance_in_its_class_shade():
    image = np.full((2, 4, 3), 50, np.uint8)
    instance_map = np.array([[1, 2, 0, 3], [1, 2, 0, 0]])
    overlaid = overlay_instances(image, instance_map, alpha=1.0, instance_classes=[13, 13, 11],
                                 classes=[11, 13])
    expected = class_instance_colors([13, 13, 11], classes=[11, 13])
    for instance in (1, 2, 3):
        assert (overlaid[instance_map == instance] == expected[instance - 1]).all()
    np.testing.assert_array_equal(overlaid[instance_map == 0], image[instance_map == 0])
    hsv = _hsv([overlaid[0, 0], overlaid[0, 1], overlaid[0, 3]])
    assert abs(hsv[0, 0] - hsv[1, 0]) < 0.01 and abs(hsv[0, 0] - hsv[2, 0]) > 0.4
    with pytest.raises(ValueError, match="instance 3 has no class"):
        overlay_instances(image, instance_map, instance_classes=[13, 13], classes=[11, 13])
    with pytest.raises(ValueError, match="classes in a fixed order"):
        overlay_instances(image, instance_map, instance_classes=[13, 13, 11])
