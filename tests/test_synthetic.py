"""Synthetic TuSimple and Cityscapes generators: formats, labels that match pixels, reproducibility."""
import dataclasses
import json
import pathlib

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers import labels as cityscapes_labels

from enet_discrim.data.synthetic import __main__ as cli
from enet_discrim.data.synthetic import cityscapes, drawing, tusimple


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(pathlib.Path(root).rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------ drawing

def test_blend_colour_mixes_by_mask_opacity():
    target = np.full((2, 3, 3), 100.0, np.float32)
    mask = np.zeros((2, 3), np.uint8)
    mask[0, 1] = 255
    mask[1, 2] = 51  # 20 %
    drawing.blend_colour(target, mask, (200, 0, 100))
    np.testing.assert_allclose(target[0, 1], [200, 0, 100])
    np.testing.assert_allclose(target[1, 2], [120, 80, 100], rtol=1e-5)
    np.testing.assert_allclose(target[0, 0], [100, 100, 100])


def test_camera_projects_road_points_by_pinhole_geometry():
    camera = tusimple._Camera(focal=1000.0, height=1.5, centre_x=640.0, horizon_y=300.0, yaw=0.0,
                              curvature=0.0, curvature_rate=0.0, vertical_curvature=0.0,
                              far_z=200.0)
    u, v = camera.project(1.5, 15.0)
    assert (u, v) == pytest.approx((740.0, 400.0))
    # a curve to the right shifts far points right by focal * curvature * z / 2
    bent = tusimple._Camera(**{**camera.__dict__, "curvature": 1e-3})
    assert bent.project(0.0, 100.0)[0] == pytest.approx(640.0 + 1000 * 0.5 * 1e-3 * 100)


# ----------------------------------------------------------------------------- TuSimple

def test_render_frame_returns_tusimple_shaped_labels():
    image, lanes, h_samples = tusimple.render_frame(np.random.default_rng(0))
    assert image.shape == (720, 1280, 3) and image.dtype == np.uint8
    assert h_samples == list(range(160, 720, 10)) and len(h_samples) == 56
    assert 1 <= len(lanes) <= 5
    for lane in lanes:
        assert len(lane) == 56
        assert all(type(x) is int and (x == -2 or 0 <= x < 1280) for x in lane)
        assert any(x != -2 for x in lane)
    # lanes run left to right: compare at a row where all of them have points
    rows = [i for i in range(56) if all(lane[i] != -2 for lane in lanes)]
    if rows:
        xs = [lane[rows[-1]] for lane in lanes]
        assert xs == sorted(xs)


def _marking_like(image, x, row, offset=30):
    """Brighter, or yellower, than the road on both sides at the same row."""
    pixel = image[row, max(0, x - 1):x + 2].astype(int).max(axis=0)
    left = image[row, max(0, x - offset)].astype(int)
    right = image[row, min(1279, x + offset)].astype(int)
    brighter = all(pixel.sum() > side.sum() + 45 for side in (left, right))
    yellower = all(pixel[2] - pixel[0] > side[2] - side[0] + 40 for side in (left, right))
    return brighter or yellower


def test_labelled_points_lie_on_marking_pixels():
    checked, on_marking, shifted_on_marking = 0, 0, 0
    for seed in range(4):
        image, lanes, h_samples = tusimple.render_frame(
            np.random.default_rng(seed), tusimple.DomainRandomization.clean())
        for lane in lanes:
            for x, row in zip(lane, h_samples):
                if x == -2 or row < 500 or not 40 <= x < 1240:
                    continue  # near rows only, where a marking is several pixels wide
                checked += 1
                on_marking += _marking_like(image, x, row)
                shifted_on_marking += _marking_like(image, x + 25, row)
    assert checked >= 20
    assert on_marking / checked > 0.9
    assert shifted_on_marking / checked < 0.3  # the check does tell markings from road


def test_generate_writes_native_layout(tmp_path):
    paths = tusimple.generate(tmp_path, 4, seed=3)
    assert [p.name for p in paths] == ["label_data_0313.json", "label_data_0531.json",
                                       "label_data_0601.json"]
    records = [json.loads(line) for p in paths for line in p.read_text().splitlines()]
    assert len(records) == 4
    for record in records:
        assert set(record) == {"lanes", "h_samples", "raw_file"}
        assert record["h_samples"] == list(range(160, 720, 10))
        assert all(len(lane) == 56 for lane in record["lanes"])
        assert record["raw_file"].startswith("clips/") and record["raw_file"].endswith("/20.jpg")
        frame = cv2.imread(str(tmp_path / record["raw_file"]))
        assert frame is not None and frame.shape == (720, 1280, 3)


def test_generate_matches_render_frame_and_is_reproducible(tmp_path):
    tusimple.generate(tmp_path / "a", 2, seed=7)
    tusimple.generate(tmp_path / "b", 2, seed=7)
    tusimple.generate(tmp_path / "c", 2, seed=8)
    first, again, other = (_files(tmp_path / d) for d in "abc")
    assert first == again
    assert first.keys() - other.keys() == {"clips/0313-1/7_000000/20.jpg", "clips/0531/7_000001/20.jpg"}
    assert set(first.values()).isdisjoint(set(other.values()))
    # frame 1 on disk is exactly render_frame from its documented generator
    record = json.loads((tmp_path / "a" / "label_data_0531.json").read_text())
    image, lanes, _ = tusimple.render_frame(np.random.default_rng([7, 1]))
    assert record["lanes"] == lanes
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "a" / record["raw_file"])), image)


def test_culane_camera_renders_culane_frames_with_its_labels(tmp_path):
    from enet_discrim.formats import culane as culane_format

    checked, on_marking = 0, 0
    for seed in range(4):
        image, lanes, rows = tusimple.render_frame(
            np.random.default_rng(seed), tusimple.DomainRandomization.clean(), camera="culane")
        assert image.shape == (590, 1640, 3) and rows is None
        assert 1 <= len(lanes) <= 4  # the ego lane's lines and the next on each side
        for lane in lanes:
            ys = [y for _, y in lane]
            assert ys == list(range(int(ys[0]), int(ys[0]) - 10 * len(ys), -10))  # every 10 rows
            # from the bottom edge up, or from where the line leaves the frame's side
            assert ys[0] == 590 or not 0.03 * 1640 <= lane[0][0] < 0.97 * 1640
            assert all(-0.03 * 1640 <= x < 1.03 * 1640 for x, _ in lane)
            for x, y in lane:  # above the hood, where the road is in view
                if 360 <= y <= 400 and 40 <= x < 1600:
                    checked += 1
                    on_marking += _marking_like(image, int(round(x)), int(y))
        # the bottoms at the frame's edge run through the hood: the lines reach row 590 in
        # the labels although no marking is painted there
        assert sum(lane[0][1] == 590 for lane in lanes) >= 1
    assert checked >= 10 and on_marking / checked > 0.8

    paths = tusimple.generate(tmp_path / "a", 3, seed=5, camera="culane")
    tusimple.generate(tmp_path / "b", 3, seed=5, camera="culane")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")  # the same seed, the same bytes
    assert paths == [tmp_path / "a" / "list" / "train_gt.txt"]
    frames = [line[1:] for line in paths[0].read_text().splitlines()]
    assert frames == [tusimple.culane_frame_path(5, i) for i in range(3)]
    image, lanes, _ = tusimple.render_frame(np.random.default_rng([5, 1]), camera="culane")
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "a" / frames[1])), image)
    written = culane_format.read_lanes(str(tmp_path / "a" / culane_format.lanes_path(frames[1])))
    assert [[(round(x, 3), y) for x, y in lane] for lane in lanes] == written


def test_random_cameras_vary_the_frame_and_tusimples_is_unchanged():
    sizes = {tusimple.render_frame(np.random.default_rng(seed), camera="random")[0].shape[:2]
             for seed in range(6)}
    assert len(sizes) == 6
    assert all(1280 <= width <= 1920 and 16 / 9 - 0.01 <= width / height <= 2.81
               for height, width in sizes)
    default = tusimple.render_frame(np.random.default_rng(3))
    named = tusimple.render_frame(np.random.default_rng(3), camera="tusimple")
    np.testing.assert_array_equal(default[0], named[0])
    assert default[1:] == named[1:]
    with pytest.raises(ValueError, match="unknown camera 'fisheye': choose one of tusimple, "
                                         "culane, random"):
        tusimple.render_frame(np.random.default_rng(0), camera="fisheye")


def test_lanes_are_labelled_through_occluders_but_not_past_a_hidden_end():
    """As TuSimple's annotators do: a line hidden between two visible stretches keeps its labels;
    where an object hides its near end, the rows from there down are -2."""
    cfg = tusimple.DomainRandomization.clean()
    rng = np.random.default_rng(0)
    camera = tusimple._Camera(focal=1000.0, height=1.5, centre_x=640.0, horizon_y=300.0, yaw=0.0,
                              curvature=0.0, curvature_rate=0.0, vertical_curvature=0.0,
                              far_z=200.0)
    layout = tusimple._sample_layout(rng, cfg)
    occlusion = np.zeros((720, 1280), np.uint8)
    free = tusimple._lane_labels(np.random.default_rng(1), camera, layout, occlusion,
                                 tusimple._roll_matrix(0.0, tusimple.IMAGE_WIDTH, tusimple.IMAGE_HEIGHT))
    occlusion[395:455] = 255  # a wall across rows 395..454 hides rows 400, 410, ..., 450
    through = tusimple._lane_labels(np.random.default_rng(1), camera, layout, occlusion,
                                    tusimple._roll_matrix(0.0, tusimple.IMAGE_WIDTH, tusimple.IMAGE_HEIGHT))
    occlusion[600:] = 255  # now the near end too: rows 600..710
    cut = tusimple._lane_labels(np.random.default_rng(1), camera, layout, occlusion,
                                tusimple._roll_matrix(0.0, tusimple.IMAGE_WIDTH, tusimple.IMAGE_HEIGHT))
    assert len(free) == len(through) == len(cut) >= 2
    rows = np.arange(160, 720, 10)
    crossing = 0
    for before, after in zip(free, through):
        seen_below = any(x != -2 for row, x in zip(rows, before) if row >= 455)
        crossing += seen_below
        for row, x_free, x_through in zip(rows, before, after):
            # a line that leaves the frame behind the wall has its near end hidden
            hidden_end = not seen_below and 395 <= row
            assert x_through == (-2 if hidden_end else x_free)
    assert crossing >= 2
    for before, after in zip(through, cut):
        for row, x_through, x_cut in zip(rows, before, after):
            assert x_cut == (-2 if row >= 600 else x_through)
    # hand check of one point: a line at s metres projects to 640 + s * (row - 300) / 1.5
    checked = 0
    for lane, index in zip(free, layout.labelled):
        expected = round(640 + layout.lines[index].s * (600 - 300) / 1.5)
        if 0 <= expected < 1280:
            assert lane[rows.tolist().index(600)] == expected
            checked += 1
    assert checked >= 2


def test_test_split_paints_lane_less_frames_and_keeps_the_others(tmp_path):
    """The training mix has lane-less frames, which TuSimple's metric can only score 0; the test
    split renders the same scenes with their lines painted and every other frame byte for byte."""
    lane_less = dataclasses.replace(tusimple.DomainRandomization(), unpainted_probability=1.0)
    tusimple.generate(tmp_path / "bare", 2, seed=2000, randomization=lane_less)
    tusimple.generate(tmp_path / "train", 2, seed=2000,
                      randomization=tusimple.DomainRandomization.evaluation())
    paths = tusimple.generate(tmp_path / "test", 2, seed=2000, split="test")
    assert [p.name for p in paths] == ["test_label.json"]
    assert sorted(p.name for p in (tmp_path / "test").iterdir()) == ["clips", "test_label.json"]
    test = [json.loads(line) for line in paths[0].read_text().splitlines()]

    def labels(split):
        return [json.loads((tmp_path / split / name).read_text())
                for name in ("label_data_0313.json", "label_data_0531.json")]

    bare, train = labels("bare"), labels("train")
    assert [r["raw_file"] for r in test] == [r["raw_file"] for r in bare]
    assert all(r["lanes"] == [] for r in bare) and all(len(r["lanes"]) >= 2 for r in test)
    assert test == train
    frames = {split: _files(tmp_path / split / "clips") for split in ("bare", "train", "test")}
    assert frames["test"] == frames["train"]
    assert all(frames["bare"][key] != frames["test"][key] for key in frames["test"])
    with pytest.raises(FileExistsError, match="test_label.json"):
        tusimple.generate(tmp_path / "test", 1, seed=2000, split="test")
    with pytest.raises(ValueError, match="split"):
        tusimple.generate(tmp_path / "val", 1, seed=0, split="val")


def test_generate_refuses_to_overwrite_labels(tmp_path):
    tusimple.generate(tmp_path, 1, seed=0)
    before = _files(tmp_path)
    with pytest.raises(FileExistsError, match="label_data_0313.json"):
        tusimple.generate(tmp_path, 1, seed=1)
    assert _files(tmp_path) == before
    with pytest.raises(ValueError, match="count"):
        tusimple.generate(tmp_path / "x", -1, seed=0)


def test_cli_tusimple(tmp_path, capsys):
    assert cli.main(["tusimple", "--outdir", str(tmp_path), "--count", "1", "--seed", "2"]) == 0
    assert "tusimple: 1 train frames" in capsys.readouterr().out
    assert (tmp_path / "label_data_0313.json").exists()
    assert cli.main(["tusimple", "--outdir", str(tmp_path / "t"), "--count", "1", "--split",
                     "test"]) == 0
    assert "label files: test_label.json" in capsys.readouterr().out
    assert (tmp_path / "t" / "test_label.json").exists()
    assert cli.main(["tusimple", "--outdir", str(tmp_path), "--count", "1", "--seed", "2"]) == 2
    assert "already exists" in capsys.readouterr().err


# --------------------------------------------------------------------------- Cityscapes

def test_cityscapes_layout_ids_and_instances(tmp_path):
    images = cityscapes.generate(tmp_path, 2, seed=1, split="train", width=320, height=160)
    assert len(images) == 2
    valid_ids = {label.id for label in cityscapes_labels.labels if label.id >= 0}
    thing_ids = {label.id for label in cityscapes_labels.labels if label.hasInstances}
    crowd_pixels = 0
    for image_path in images:
        assert image_path.parent.parent == tmp_path / "leftImg8bit" / "train"
        city = image_path.parent.name
        assert image_path.name.startswith(city + "_") and image_path.name.endswith(
            "_000019_leftImg8bit.png")
        stem = image_path.name[:-len("_leftImg8bit.png")]
        gt = tmp_path / "gtFine" / "train" / city
        image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
        label_ids = cv2.imread(str(gt / f"{stem}_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
        instance_ids = cv2.imread(str(gt / f"{stem}_gtFine_instanceIds.png"),
                                  cv2.IMREAD_UNCHANGED).astype(np.int64)
        assert image.shape == (160, 320, 3) and image.dtype == np.uint8
        assert label_ids.shape == (160, 320) and label_ids.dtype == np.uint8
        assert instance_ids.shape == (160, 320)
        assert set(np.unique(label_ids)) <= valid_ids
        things = instance_ids >= 1000
        np.testing.assert_array_equal(instance_ids[things] // 1000, label_ids[things])
        np.testing.assert_array_equal(instance_ids[~things], label_ids[~things])
        assert set(np.unique(instance_ids[things] // 1000)) <= thing_ids
        assert len(np.unique(instance_ids[things])) >= 3
        assert {cityscapes_labels.name2label[n].id for n in ("road", "sky", "building")} <= set(
            np.unique(label_ids))
        crowd_pixels += np.sum((~things) & np.isin(label_ids, list(thing_ids)))
    assert crowd_pixels > 0, "a crowd region keeps the bare label id"


def test_cityscapes_reproducible_by_seed(tmp_path):
    for name, seed, split in (("a", 4, "val"), ("b", 4, "val"), ("c", 5, "val")):
        cityscapes.generate(tmp_path / name, 1, seed=seed, split=split, width=160, height=80)
    first, again, other = (_files(tmp_path / d) for d in "abc")
    assert first == again
    assert first.keys() == other.keys() and first != other
    assert all(key.startswith(("leftImg8bit/val/", "gtFine/val/")) for key in first)


def test_cityscapes_rejects_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        cityscapes.generate(tmp_path, 1, seed=0, split="testing")
    assert cli.main(["cityscapes", "--outdir", str(tmp_path), "--count", "1", "--seed", "0",
                     "--width", "160", "--height", "80"]) == 0
    assert (tmp_path / "leftImg8bit" / "train").is_dir()


def test_dashed_line_with_markers_paints_the_middle_of_its_gaps():
    """California's dashed lines carry raised markers in the gaps; plain dashes leave them bare."""
    camera = tusimple._Camera(focal=1000.0, height=1.5, centre_x=640.0, horizon_y=300.0, yaw=0.0,
                              curvature=0.0, curvature_rate=0.0, vertical_curvature=0.0,
                              far_z=200.0)
    painted = {}
    for style in ("dashed", "dashed_dots"):
        line = tusimple._LaneLine(s=1.0, style=style, colour=(255.0, 255.0, 255.0), width=0.15,
                                  opacity=1.0, dash_length=3.0, dash_period=12.0, dash_phase=0.0)
        ground = np.zeros((720 - 300, 1280, 3), np.float32)
        tusimple._draw_markings(np.random.default_rng(0), ground, 300, camera, [line])
        painted[style] = ground[..., 0]
    # Dashes cover z in [12k, 12k + 3]; the gap 15..24 has markers at 17.25, 19.5 and 21.75 m.
    u, v = camera.project(1.0, 19.5)
    row, col = int(round(v)) - 300, int(round(u))
    assert painted["dashed"][row - 1:row + 2, col - 1:col + 2].max() == 0
    assert painted["dashed_dots"][row, col] > 100
    u, v = camera.project(1.0, 13.5)  # inside a dash: painted either way
    assert painted["dashed"][int(round(v)) - 300, int(round(u))] > 200
