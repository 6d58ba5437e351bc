"""The file formats: TuSimple lines, Cityscapes names and results, images and label maps."""
import ast
import copy
import json
import os
import pathlib

import cv2
import numpy as np
import pytest

from enet_discrim.formats import cityscapes as cityscapes_format
from enet_discrim.formats import images
from enet_discrim.formats import tusimple as tusimple_format

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "enet_discrim"
GOOD = {"raw_file": "clips/a/20.jpg", "lanes": [[10, -2, 30], [-2, -2, -2]],
        "h_samples": [160, 170, 180]}


def _write(path, *lines):
    """Writes `lines` (str, or bytes written as they are) joined by newlines."""
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines)
                     + b"\n")
    return path


def _label(**changes):
    return json.dumps({**GOOD, **changes})


# --- TuSimple lines.

def test_h_samples_are_tusimples_56_rows():
    assert len(tusimple_format.H_SAMPLES) == 56
    assert tusimple_format.H_SAMPLES[0] == 160 and tusimple_format.H_SAMPLES[-1] == 710
    assert set(np.diff(tusimple_format.H_SAMPLES)) == {10}


def test_good_label_lines_are_read_with_their_line_numbers(tmp_path):
    # Windows line ends, a blank line and a line of spaces are all fine.
    path = tmp_path / "label.json"
    path.write_bytes(f"{_label()}\r\n\r\n   \r\n{_label(raw_file='clips/b/20.jpg')}\r\n".encode())
    records = tusimple_format.read_labels(path)
    assert [(number, record["raw_file"]) for number, record in records] == [
        (1, "clips/a/20.jpg"), (4, "clips/b/20.jpg")]
    assert records[0][1] == GOOD


@pytest.mark.parametrize("line, reason", [
    ('{"raw_file": ', "the label line is not valid JSON (Expecting value at column 14)"),
    (b'{"raw_file": "\xff.jpg"}', "the label line is not UTF-8 text (invalid start byte at byte 14)"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"raw_file": "a.jpg", "lanes": []}), "missing h_samples"),
    (_label(raw_file=""), "raw_file must be a non-empty string"),
    (_label(raw_file="a\0.jpg"), 'raw_file "a\\u0000.jpg" contains a NUL byte'),
    (_label(h_samples=[], lanes=[]), "h_samples must be a non-empty list of rows, got []"),
    (_label(h_samples=[160, True, 180]), "h_samples[1] is not a number: true"),
    (_label(h_samples=[160.5, 170, 180]), "h_samples[0] is not a row of the frame: 160.5"),
    (_label(h_samples=[-10, 170, 180]), "h_samples[0] is not a row of the frame: -10"),
    (_label(h_samples=[160, 170, 170]),
     "h_samples must be strictly increasing, but h_samples[2] = 170 follows 170"),
    (_label(lanes={"a": 1}), 'lanes must be a list of lanes, got {"a": 1}'),
    (_label(lanes=[[1, 2, 3], 4]), "lane 1 must be a list of x values, got 4"),
    (_label(lanes=[[1, 2]]), "lane 0 has 2 points for 3 h_samples"),
    (_label(lanes=[[1, 2, "5"]]), 'lane 0 point 2 is not a number: "5"'),
    (_label(lanes=[[1, float("nan"), 3]]), "lane 0 point 1 is not a pixel coordinate: NaN"),
    # Plain ints take a shortcut; one beyond int32 must still be caught.
    (_label(lanes=[[1, 2, 3], [3_000_000_000, 1, 2]]),
     "lane 1 point 0 is not a pixel coordinate: 3000000000"),
])
def test_a_bad_label_line_is_named_by_file_and_line(tmp_path, line, reason):
    path = _write(tmp_path / "label.json", _label(), "", line)
    with pytest.raises(ValueError) as error:
        tusimple_format.read_labels(path)
    assert str(error.value) == f"{path}:3: {reason}"


def test_problems_are_collected_and_the_good_lines_kept(tmp_path):
    path = _write(tmp_path / "label.json", _label(), "{not json", _label(raw_file="b.jpg"),
                  _label(lanes=[[1]]))
    problems = []
    records = tusimple_format.read_labels(path, problems)
    assert [number for number, _ in records] == [1, 3]
    assert [problem.split(": ", 1)[0] for problem in problems] == [f"{path}:2", f"{path}:4"]


def test_a_file_that_cannot_be_read_is_named(tmp_path):
    with pytest.raises(ValueError) as error:
        tusimple_format.read_labels(tmp_path / "nothing.json")
    assert str(error.value) == (f"{tmp_path / 'nothing.json'}: cannot read the label file "
                                "(No such file or directory)")


@pytest.mark.parametrize("change, reason", [
    ({"run_time": -1}, "run_time must be a finite number of milliseconds >= 0, got -1"),
    ({"run_time": "5"}, 'run_time must be a finite number of milliseconds >= 0, got "5"'),
    ({"lanes": [[1, None]]}, "lane 0 point 1 is not a number: null"),
    ({"raw_file": ["a.jpg"]}, "raw_file must be a non-empty string"),
])
def test_a_bad_prediction_line_is_named(tmp_path, change, reason):
    path = _write(tmp_path / "pred.json", json.dumps({"raw_file": "a.jpg", "lanes": [[1, 2]],
                                                      "run_time": 5.0, **change}))
    with pytest.raises(ValueError) as error:
        tusimple_format.read_predictions(path)
    assert str(error.value) == f"{path}:1: {reason}"
    _write(path, json.dumps({"raw_file": "a.jpg", "lanes": []}))
    with pytest.raises(ValueError, match=r":1: raw_file or lanes or run_time not in the prediction "
                                         r"\(missing run_time\)$"):
        tusimple_format.read_predictions(path)


def test_prediction_lines_round_trip(tmp_path):
    # Lanes of numpy ints and floats are written as ints; any lane length is a valid prediction
    # (it is scored at the ground truth's rows).
    lines = [tusimple_format.format_line("clips/a/20.jpg", [np.array([5, -2, 7.0])], (160, 170, 180),
                                         12.5),
             tusimple_format.format_line("clips/b/20.jpg", [], [160], 3)]
    path = _write(tmp_path / "pred.json", *lines)
    assert tusimple_format.read_predictions(path) == [
        (1, {"raw_file": "clips/a/20.jpg", "lanes": [[5, -2, 7]], "h_samples": [160, 170, 180],
             "run_time": 12.5}),
        (2, {"raw_file": "clips/b/20.jpg", "lanes": [], "h_samples": [160], "run_time": 3.0})]
    with pytest.raises(ValueError, match=r"^clips/a/20.jpg: lane 0 has 2 points for 3 h_samples$"):
        tusimple_format.format_line("clips/a/20.jpg", [[1, 2]], [160, 170, 180], 1.0)
    assert json.loads(tusimple_format.format_clip_line(np.int64(3), [[1, 2]], [10, 20], 4)) == {
        "frame": 3, "lanes": [[1, 2]], "h_samples": [10, 20], "run_time": 4.0}


def test_label_lines_round_trip_in_tusimples_key_order(tmp_path):
    line = tusimple_format.format_label_line("clips/a/20.jpg", GOOD["lanes"], (160, 170, 180))
    assert line.startswith('{"lanes": ')
    assert tusimple_format.read_labels(_write(tmp_path / "label.json", line)) == [(1, GOOD)]
    with pytest.raises(ValueError, match=r"^clips/a/20.jpg: lane 0 has 1 points for 3 h_samples$"):
        tusimple_format.format_label_line("clips/a/20.jpg", [[1]], (160, 170, 180))


def test_tasks_are_label_or_task_lines(tmp_path):
    path = _write(tmp_path / "tasks.json", _label(), "",
                  json.dumps({"raw_file": "clips/b/20.jpg", "h_samples": [240.0, 250.0]}))
    tasks = tusimple_format.read_tasks(path)
    assert tasks == [(1, "clips/a/20.jpg", [160, 170, 180]), (3, "clips/b/20.jpg", [240, 250])]
    assert tasks[1].raw_file == "clips/b/20.jpg" and type(tasks[1].h_samples[0]) is int
    _write(path, json.dumps({"raw_file": "clips/b/20.jpg"}))
    with pytest.raises(ValueError, match=r"tasks.json:1: missing h_samples$"):
        tusimple_format.read_tasks(path)


@pytest.mark.parametrize("height, rows", [
    (720, list(range(160, 711, 10))),
    (360, list(range(80, 356, 5))),     # every TuSimple row halved
    (1080, list(range(240, 1066, 15))),  # and times 1.5
])
def test_scaled_h_samples_keep_the_rows_share_of_the_frame(height, rows):
    assert tusimple_format.scaled_h_samples(height) == rows


def test_raw_files_must_stay_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "clips").mkdir(parents=True)
    (tmp_path / "outside.jpg").write_bytes(b"")
    os.symlink(tmp_path / "outside.jpg", root / "clips" / "link.jpg")
    assert tusimple_format.resolve_raw_file(root, root / "clips", "../clips/a.jpg") == (
        str(root / "clips" / "a.jpg"), "clips/a.jpg")
    for raw_file in ("../../outside.jpg", str(tmp_path / "outside.jpg"), "link.jpg"):
        with pytest.raises(ValueError, match="resolves outside the dataset root"):
            tusimple_format.resolve_raw_file(root, root / "clips", raw_file)


# --- Cityscapes.

def test_the_instance_id_factor_is_the_official_one():
    from cityscapesscripts.evaluation.instance import Instance

    car = 26
    instance_id = car * cityscapes_format.INSTANCE_ID_FACTOR + 3
    assert Instance(np.full((2, 2), instance_id), instance_id).labelID == car


@pytest.mark.parametrize("stem, found", [
    ("frankfurt_000000_000294_leftImg8bit", True),
    ("frankfurt_000000_000294", True),
    ("frankfurt_000000", False),
    ("frank furt_000000_000294", False),
    ("clips_a_20", False),
])
def test_result_stems_are_what_the_evaluator_can_find(stem, found):
    assert cityscapes_format.is_result_stem(stem) == found


def test_results_layout_as_the_official_evaluator_reads_it(tmp_path):
    from enet_discrim.evaluation.cityscapes_compat import official_instance_evaluator

    results = tmp_path / "results"
    instance_map = np.zeros((2, 3), np.int64)
    instance_map[0, 0] = 1
    instance_map[1, 1:] = 3  # instance 2 has no pixel: no mask, no line
    text = cityscapes_format.write_results(str(results), "lindau_000001_000019_leftImg8bit",
                                           instance_map, [13, 11, 18], [0.75, 0.5, 0.25],
                                           output_size=(4, 6))
    (results / "other").mkdir()
    (results / "other" / "lindau_000001_000020_leftImg8bit.txt").write_text("")
    assert not [name for name in os.listdir(results / "masks") if name.startswith(".")]
    with official_instance_evaluator(str(tmp_path)) as evaluator:
        args = copy.copy(evaluator.args)
        args.predictionPath, args.predictionWalk = str(results), None
        found = evaluator.getPrediction("gtFine/val/lindau/lindau_000001_000019_gtFine_instanceIds.png",
                                        args)
        assert found == text == str(results / "lindau_000001_000019_leftImg8bit.txt")
        info = evaluator.readPredInfo(found, args)
    # Regular label ids: train id 13 is car (26), 18 is bicycle (33).
    masks = results / "masks"
    assert info == {str(masks / "lindau_000001_000019_leftImg8bit_001.png"): {"labelID": 26, "conf": 0.75},
                    str(masks / "lindau_000001_000019_leftImg8bit_003.png"): {"labelID": 33, "conf": 0.25}}
    # Masks at the ground truth's size: each map pixel a 2 x 2 block.
    expected = {1: np.zeros((4, 6), np.uint8), 3: np.zeros((4, 6), np.uint8)}
    expected[1][:2, :2] = 255
    expected[3][2:, 2:] = 255
    for instance_id, mask in expected.items():
        written = cv2.imread(str(masks / f"lindau_000001_000019_leftImg8bit_{instance_id:03d}.png"),
                             cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(written, mask)


def test_result_names_are_the_files_get_prediction_matches():
    names = ["ulm_000001_000019.txt", "ulm_000001_000019_leftImg8bit.txt", "ulm_000001_000020.txt",
             "ulm_000001_000019.png"]
    assert cityscapes_format.result_names("x/ulm_000001_000019_gtFine_instanceIds.png", names) == [
        "ulm_000001_000019.txt", "ulm_000001_000019_leftImg8bit.txt"]


# --- Images and label maps.

def test_read_image_gives_rgb_from_any_stored_form(tmp_path):
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((2, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "alpha.png"), np.dstack([bgr, np.zeros((2, 3), np.uint8)]))
    deep = np.full((2, 3), 0x1234, np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    assert images.read_image(tmp_path / "red.png")[0, 0].tolist() == [200, 0, 0]
    assert images.read_image(tmp_path / "grey.png")[0, 0].tolist() == [90, 90, 90]
    assert images.read_image(tmp_path / "alpha.png")[0, 0].tolist() == [200, 0, 0]
    assert images.read_image(tmp_path / "deep.png")[0, 0].tolist() == [0x12] * 3
    stored = images.read_image(tmp_path / "deep.png", unchanged=True)
    assert stored.dtype == np.uint16 and stored.shape == (2, 3) and stored[0, 0] == 0x1234


@pytest.mark.parametrize("extension, params", [
    (".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".bmp", [])])
def test_the_declared_size_is_read_from_the_header(extension, params):
    ok, data = cv2.imencode(extension, np.zeros((23, 37, 3), np.uint8), params)
    assert ok and images.declared_size(data.tobytes()) == (37, 23)
    assert images.declared_size(data.tobytes()[:5]) is None  # too short to say
    assert images.declared_size(b"GIF89a" + bytes(20)) is None


def test_a_frame_above_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    ok, data = cv2.imencode(".png", np.zeros((60, 100, 3), np.uint8))
    (tmp_path / "small.png").write_bytes(data.tobytes())
    # The same PNG declaring 20000 x 20000 pixels in its IHDR (1.2 GB decoded).
    huge = bytearray(data.tobytes())
    huge[16:24] = (20000).to_bytes(4, "big") * 2
    (tmp_path / "huge.png").write_bytes(bytes(huge))
    assert images.read_image(tmp_path / "small.png", max_pixels=6000).shape == (60, 100, 3)

    def no_decoding(*args):
        raise AssertionError("decoded")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    with pytest.raises(images.ImageError) as error:
        images.read_image(tmp_path / "small.png", max_pixels=5999)
    assert error.value.reason == "100 x 60 pixels (0.006 megapixels), above the limit of 0.005999 megapixels"
    with pytest.raises(images.ImageError, match=r"huge.png: 20000 x 20000 pixels \(400 megapixels\), "
                                                r"above the limit of 50 megapixels$"):
        images.read_image(tmp_path / "huge.png")


def test_a_format_without_a_read_header_is_held_to_the_limit_after_decoding(tmp_path):
    ok, data = cv2.imencode(".tiff", np.zeros((60, 100, 3), np.uint8))
    (tmp_path / "frame.tiff").write_bytes(data.tobytes())
    assert images.declared_size(data.tobytes()) is None
    with pytest.raises(images.ImageError, match="100 x 60 pixels"):
        images.read_image(tmp_path / "frame.tiff", max_pixels=5999)
    assert images.read_image(tmp_path / "frame.tiff", max_pixels=None).shape == (60, 100, 3)


def test_read_image_names_the_file_and_the_problem(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    for name, reason in (("missing.png", "no such file"), ("empty.png", "empty file (0 bytes)"),
                         ("text.png", "not a readable image"), ("", "not a regular file (a folder)")):
        path = str(tmp_path / name)
        with pytest.raises(images.ImageError) as error:
            images.read_image(path)
        assert str(error.value) == f"{path}: {reason}"
        assert (error.value.path, error.value.reason) == (path, reason)


def test_resize_labels_samples_the_pixel_under_each_centre():
    # Output pixel k of 4 covers input x = (k + 0.5) * 3 / 4 = 0.375, 1.125, 1.875, 2.625.
    np.testing.assert_array_equal(images.resize_labels(np.array([[1, 2, 3]]), 4, 1), [[1, 2, 2, 3]])
    # ... of 2: input x = 0.75, 2.25.
    np.testing.assert_array_equal(images.resize_labels(np.array([[1, 2, 3]]), 2, 1), [[1, 3]])
    np.testing.assert_array_equal(images.resize_labels(np.array([[4], [5]]), 1, 4),
                                  [[4], [4], [5], [5]])


@pytest.mark.parametrize("dtype, value", [(np.int64, 7_000_000), (np.uint16, 60000),
                                          (np.int32, 33_000), (np.uint8, 255), (bool, True)])
def test_resize_labels_keeps_ids_and_dtype(dtype, value):
    label_map = np.array([[0, value]], dtype)
    resized = images.resize_labels(label_map, 4, 2)
    assert resized.dtype == label_map.dtype
    np.testing.assert_array_equal(resized, np.array([[0, 0, value, value]] * 2, dtype))
    assert images.resize_labels(label_map, 2, 1) is label_map


@pytest.mark.parametrize("label_map, message", [
    (np.zeros((2, 2), np.float32), "holds integer ids, got float32"),
    (np.array([[0, 2 ** 40]]), "do not fit int32"),
    (np.zeros((2, 2, 3), np.uint8), r"non-empty \[h, w\] array"),
])
def test_resize_labels_refuses_what_is_no_label_map(label_map, message):
    with pytest.raises(ValueError, match=message):
        images.resize_labels(label_map, 3, 3)


# --- Layering: the readers and writers of a format import it, not each other.

def _imports(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("modules, forbidden", [
    (["evaluation/tusimple.py", "evaluation/cityscapes.py"], ("enet_discrim.lanes",
                                                              "enet_discrim.data")),
    (["batch_inference.py", "video.py"], ("enet_discrim.evaluation", "enet_discrim.data")),
    (["data/tusimple.py", "data/cityscapes.py", "data/label_stats.py"],
     ("enet_discrim.evaluation", "enet_discrim.lanes", "enet_discrim.batch_inference")),
    (["formats/tusimple.py", "formats/cityscapes.py", "formats/images.py"],
     ("enet_discrim.evaluation", "enet_discrim.data", "enet_discrim.lanes",
      "enet_discrim.batch_inference", "enet_discrim.predictor")),
])
def test_format_users_do_not_import_each_other(modules, forbidden):
    for module in modules:
        bad = sorted(name for name in _imports(PACKAGE / module) if name.startswith(forbidden))
        assert not bad, (module, bad)


def test_special_files_are_refused_without_reading_them(tmp_path):
    import os

    from enet_discrim.formats import images

    fifo = tmp_path / "b.jpg"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    with pytest.raises(images.ImageError, match=r"b.jpg: not a regular file \(a FIFO\)"):
        images.read_image(str(fifo))
    os.symlink("/dev/zero", tmp_path / "zero.png")  # reading it would never end
    with pytest.raises(images.ImageError, match=r"zero.png: not a regular file \(a character "
                                                r"device\)"):
        images.read_image(str(tmp_path / "zero.png"))
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(images.ImageError, match=r"folder.jpg: not a regular file \(a folder\)"):
        images.read_image(str(tmp_path / "folder.jpg"))
