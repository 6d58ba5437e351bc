"""TuSimple converter: lane rendering, splits, every bad-input case, --strict and atomic writes."""
import builtins
import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.data import find_shards
from enet_discrim.data import schema
from enet_discrim.data import tusimple
from enet_discrim.data import writer

# Frames are 128x72, a tenth of TuSimple's 1280x720; h_samples scaled accordingly.
FRAME_HEIGHT, FRAME_WIDTH = 72, 128
H_SAMPLES = [24, 34, 44, 54, 64]
NO_POINT = -2


def _write_image(path, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8)
    cv2.imwrite(str(path), image)


def _line(raw_file, lanes, h_samples=H_SAMPLES):
    return json.dumps({"raw_file": raw_file, "lanes": lanes, "h_samples": h_samples})


@pytest.fixture
def tusimple_root(tmp_path):
    """A TuSimple folder with 4 good frames and one line per kind of bad input.

    Returns (srcdir, dict name -> line number in label_data_0313.json, path of the outside image).
    """
    src = tmp_path / "tusimple"
    for seed, name in enumerate(["clips/a/1.jpg", "clips/a/2.jpg", "clips/b/3.jpg", "more/clips/c/4.jpg"]):
        _write_image(src / name, seed)
    (src / "clips/b/garbage.jpg").write_bytes(b"this is not an image")
    outside = tmp_path / "secret.jpg"  # a valid image outside SRC: must never be opened.
    _write_image(outside)
    os.symlink(outside, src / "clips/b/link.jpg")
    lines = {
        "two_lanes": _line("clips/a/1.jpg", [[20, 25, 30, 35, 40], [100, 95, 90, 85, 80]]),
        "not_json": "{raw_file: clips/a/1.jpg",
        "missing_key": json.dumps({"raw_file": "clips/a/1.jpg", "lanes": []}),
        "length_mismatch": _line("clips/a/1.jpg", [[20, 25, 30]]),
        "missing_image": _line("clips/a/nope.jpg", []),
        "garbage_image": _line("clips/b/garbage.jpg", []),
        "dotdot": _line("../secret.jpg", []),
        "absolute": _line(str(outside), []),
        "symlink": _line("clips/b/link.jpg", []),
        "empty_lane_between": _line("clips/a/2.jpg", [[10, 20, 30, 40, 50], [NO_POINT] * 5,
                                                       [NO_POINT, NO_POINT, 60, 70, 80]]),
        "no_lanes": _line("clips/b/3.jpg", []),
    }
    (src / "label_data_0313.json").write_text("\n".join(lines.values()) + "\n\n")
    # Another label file, deeper, with its own h_samples; raw_file relative to its folder.
    (src / "more" / "test_label.json").write_text(
        _line("clips/c/4.jpg", [[60, 60, 60]], h_samples=[40, 50, 60]) + "\n")
    numbers = {name: number for number, name in enumerate(lines, start=1)}
    return src, numbers, outside


def _read_records(paths):
    return [{key: value.numpy() for key, value in schema.decode_example(serialized).items()}
            for serialized in tf.data.TFRecordDataset(paths)]


def test_render_lanes_ids_follow_lane_order_and_skip_empty_lanes():
    lanes = [[10, 10, 10, 10], [NO_POINT] * 4, [30, 30, NO_POINT, NO_POINT], [5, 15, 25, 35]]
    semantic, instance = tusimple.render_lanes(lanes, [0, 10, 20, 30], (40, 40), (40, 40),
                                               thickness=1)
    assert instance.dtype == np.uint16 and semantic.dtype == np.uint8
    assert sorted(np.unique(instance)) == [0, 1, 2, 3]
    assert np.all(instance[1:30, 10][instance[1:30, 10] != 3] == 1)  # vertical lane x=10.
    assert np.all(instance[0:11, 30] == 2)  # the lane with two points, y 0..10 at x=30.
    assert instance[20, 30] == 0  # its missing points draw nothing.
    assert all(instance[y, y // 1 + 5] == 3 for y in range(0, 31, 3))  # diagonal x = y + 5.
    assert instance[5, 10] == 3  # crossing pixel: the later lane wins ...
    assert semantic[5, 10] == 1  # ... and semantic stays 1.
    np.testing.assert_array_equal(semantic, (instance > 0).astype(np.uint8))


def test_render_lanes_scales_coordinates_to_the_target_size():
    # x = 639.5 in a 1280-wide frame is the centre column of a 512-wide label: (639.5+.5)*.4-.5.
    _, instance = tusimple.render_lanes([[639.5, 639.5]], [200, 600], (720, 1280), (256, 512))
    thickness = tusimple.lane_thickness(512)
    assert thickness == 4
    rows = np.nonzero(instance.any(axis=1))[0]
    assert abs(rows.min() - 71) <= 2 and abs(rows.max() - 213) <= 2  # y * 256/720.
    columns = np.nonzero(instance[140])[0]
    assert abs(columns.mean() - 255.5) <= 0.5 and len(columns) in (thickness, thickness + 1)


def test_single_point_lane_is_drawn():
    _, instance = tusimple.render_lanes([[NO_POINT, 12]], [0, 8], (16, 16), (16, 16))
    assert instance[8, 12] == 1


def test_split_is_stable_and_follows_val_fraction():
    names = [f"clips/{index}/20.jpg" for index in range(2000)]
    splits = [tusimple.split_of(name, 0.1) for name in names]
    assert splits == [tusimple.split_of(name, 0.1) for name in reversed(names)][::-1]
    assert 150 < splits.count("val") < 250
    assert {tusimple.split_of(name, 0.0) for name in names} == {"train"}
    assert {tusimple.split_of(name, 1.0) for name in names} == {"val"}


def test_is_tusimple_root(tusimple_root, tmp_path):
    src, _, _ = tusimple_root
    assert tusimple.is_tusimple_root(str(src))
    assert tusimple.is_tusimple_root(str(src / "more"))
    assert not tusimple.is_tusimple_root(str(src / "clips"))
    assert not tusimple.is_tusimple_root(str(tmp_path / "does_not_exist"))


def test_convert_writes_good_lines_and_reports_every_bad_one(tusimple_root, tmp_path, monkeypatch):
    src, numbers, outside = tusimple_root
    opened = []
    real_open = builtins.open

    def recording_open(file, *args, **kwargs):
        opened.append(os.path.realpath(file) if isinstance(file, (str, os.PathLike)) else file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording_open)
    out = tmp_path / "out"
    summary = tusimple.convert(str(src), str(out), height=36, width=64, val_fraction=0.0)
    monkeypatch.setattr(builtins, "open", real_open)

    assert str(outside) not in opened and os.path.realpath(outside) not in opened
    label_file = str(src / "label_data_0313.json")
    reasons = {
        "not_json": "not valid JSON",
        "missing_key": "missing h_samples",
        "length_mismatch": "lane 0 has 3 points for 5 h_samples",
        "missing_image": "nope.jpg: no such file",
        "garbage_image": "garbage.jpg: not a readable image",
        "dotdot": "resolves outside the dataset root",
        "absolute": "resolves outside the dataset root",
        "symlink": "resolves outside the dataset root",
    }
    assert len(summary["skipped"]) == len(reasons)
    for name, reason in reasons.items():
        prefix = f"{label_file}:{numbers[name]}: "
        matching = [problem for problem in summary["skipped"] if problem.startswith(prefix)]
        assert len(matching) == 1 and reason in matching[0], (name, summary["skipped"])
    assert summary["counts"] == {"train": 4, "val": 0}

    records = {record["filename"].decode(): record for record in _read_records(find_shards(str(out), "train"))}
    assert sorted(records) == ["clips/a/1.jpg", "clips/a/2.jpg", "clips/b/3.jpg", "more/clips/c/4.jpg"]
    for record in records.values():
        assert record["image"].shape == (36, 64, 3) and (record["height"], record["width"]) == (36, 64)
        np.testing.assert_array_equal(record["semantic"], (record["instance"] > 0).astype(np.uint8))
    assert sorted(np.unique(records["clips/a/1.jpg"]["instance"])) == [0, 1, 2]
    assert sorted(np.unique(records["clips/a/2.jpg"]["instance"])) == [0, 1, 2]  # empty lane skipped
    assert not records["clips/b/3.jpg"]["instance"].any()  # no lanes: a valid, empty record.
    # Lane 1 of frame 1 passes x=20 at y=24 (source): (20.5*0.5-0.5, 24.5*0.5-0.5) = (9.75, 11.75).
    assert records["clips/a/1.jpg"]["instance"][12, 10] == 1
    # The deeper file's own h_samples: x=60 for y 40..60 -> column ~29.75, rows 19.75..29.75.
    assert records["more/clips/c/4.jpg"]["instance"][25, 30] == 1
    assert records["more/clips/c/4.jpg"]["instance"][15, 30] == 0

    with open(out / "dataset_info.json") as stream:
        info = json.load(stream)
    assert info["dataset"] == "tusimple" and info["num_classes"] == 2
    assert info["class_names"] == ["background", "lane"] and info["ignore_label"] == 255
    assert (info["height"], info["width"]) == (36, 64)
    assert info["counts"] == {"train": 4, "val": 0} and info["skipped"] == 8


def test_cli_summary_and_val_split(tusimple_root, tmp_path, capsys):
    src, _, _ = tusimple_root
    out = tmp_path / "out"
    assert tusimple.main(["--srcdir", str(src), "--outdir", str(out), "--height", "36",
                          "--width", "64", "--val_fraction", "1.0"]) == 0
    assert "written: train 0, val 4; skipped: 8" in capsys.readouterr().out
    assert len(_read_records(find_shards(str(out), "val"))) == 4
    with pytest.raises(ValueError, match="no 'train' shards"):
        find_shards(str(out), "train")


def test_strict_fails_listing_bad_lines_and_writes_nothing(tusimple_root, tmp_path, capsys):
    src, numbers, _ = tusimple_root
    out = tmp_path / "out"
    status = tusimple.main(["--srcdir", str(src), "--outdir", str(out), "--height", "36",
                            "--width", "64", "--strict"])
    assert status != 0
    error = capsys.readouterr().err
    assert "8 bad input item(s), nothing written" in error
    assert f"label_data_0313.json:{numbers['dotdot']}: " in error
    assert not out.exists()
    # A folder that already holds a previous run keeps it untouched.
    out.mkdir()
    (out / "train-00000-of-00001.tfrecord").write_bytes(b"previous run")
    with pytest.raises(writer.BadInputError):
        tusimple.convert(str(src), str(out), height=36, width=64, strict=True)
    assert sorted(os.listdir(out)) == ["train-00000-of-00001.tfrecord"]


def test_interrupted_run_leaves_no_complete_looking_shard(tusimple_root, tmp_path, monkeypatch):
    src, _, _ = tusimple_root
    out = tmp_path / "out"
    tusimple.convert(str(src), str(out), height=36, width=64, val_fraction=0.0)
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    real_build = tusimple.build_example
    calls = []

    def failing_build(payload, height, width):
        calls.append(payload)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real_build(payload, height, width)

    monkeypatch.setattr(tusimple, "build_example", failing_build)
    with pytest.raises(RuntimeError, match="simulated crash"):
        # shard_size=1: two finished shards exist in the temporary folder when the crash comes.
        tusimple.convert(str(src), str(out), height=36, width=64, val_fraction=0.0, shard_size=1,
                         num_workers=1)
    after = {name: (out / name).read_bytes() for name in os.listdir(out)}
    assert after == before  # the earlier run is intact, no temporary file is left.
    assert [name for name in after if writer.parse_shard_name(name)] == ["train-00000-of-00001.tfrecord"]


def test_new_run_replaces_shards_of_an_earlier_run(tusimple_root, tmp_path):
    src, _, _ = tusimple_root
    out = tmp_path / "out"
    tusimple.convert(str(src), str(out), height=36, width=64, val_fraction=0.0, shard_size=1)
    assert len(find_shards(str(out), "train")) == 4
    tusimple.convert(str(src), str(out), height=36, width=64, val_fraction=0.0, shard_size=3)
    assert [os.path.basename(path) for path in find_shards(str(out), "train")] == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert sorted(name for name in os.listdir(out) if name.endswith(".tfrecord")) == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]


def test_missing_or_empty_source_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        tusimple.convert(str(tmp_path / "nope"), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="no TuSimple label files"):
        tusimple.convert(str(tmp_path), str(tmp_path / "out"))


# --- Reliability (issue 15): every bad label or frame is a FILE:LINE skip, never a wrong label.

def _convert_lines(tmp_path, lines, **kwargs):
    """Converts a label file of `lines` over the frames written by the caller under tmp_path/src."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "label_data_0001.json").write_text("\n".join(lines) + "\n")
    return tusimple.convert(str(src), str(tmp_path / "out"), height=36, width=64,
                            val_fraction=0.0, num_workers=1, **kwargs)


def test_a_frame_too_small_for_its_labels_is_skipped_naming_its_size(tmp_path):
    # Issue 15 item 4: a 1x1 frame was accepted with its labels squeezed into it.
    src = tmp_path / "src"
    _write_image(src / "good.jpg")
    cv2.imwrite(str(src / "tiny.jpg"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(src / "narrow.jpg"), np.zeros((FRAME_HEIGHT, 100, 3), np.uint8))
    lane = [[20, 25, 30, 35, 40]]
    summary = _convert_lines(tmp_path, [_line("good.jpg", lane), _line("tiny.jpg", lane),
                                        _line("narrow.jpg", [[100, 101, 102, 103, 104]])])
    label_file = src / "label_data_0001.json"
    assert summary["counts"] == {"train": 1, "val": 0}
    assert summary["skipped"] == [
        f"{label_file}:2: frame {src / 'tiny.jpg'} is 1x1, but its h_samples reach row 64",
        f"{label_file}:3: frame {src / 'narrow.jpg'} is 100x72, but lane 0 reaches x=104"]


@pytest.mark.parametrize("lanes, h_samples, reason", [
    ([[20, float("nan"), 30, 35, 40]], H_SAMPLES, "lane 0 point 1 is not a pixel coordinate: NaN"),
    ([[20, 25, float("inf"), 35, 40]], H_SAMPLES, "lane 0 point 2 is not a pixel coordinate: Infinity"),
    ([[20, 25, 30, 1e300, 40]], H_SAMPLES, "lane 0 point 3 is not a pixel coordinate: 1e+300"),
    ([[20, 25, 30, 35, -1e300]], H_SAMPLES, "lane 0 point 4 is not a pixel coordinate: -1e+300"),
    ([[20, 25, 30, 35, 40]], [24, 34, 44, 54, 1e12],
     "h_samples[4] is not a row of the frame: 1000000000000.0"),
    ([[20, 25, 30, 35, 40]], [24, float("nan"), 44, 54, 64],
     "h_samples[1] is not a row of the frame: NaN"),
    ([[20, 25, 30, 35, 40]], [24, 34, 44.5, 54, 64],
     "h_samples[2] is not a row of the frame: 44.5"),
    ([[20, 25, 30, 35, 40]], [-24, 34, 44, 54, 64],
     "h_samples[0] is not a row of the frame: -24"),
    ([[20, 25, 30, 35, 40]], [24, 34, 30, 54, 64],
     "h_samples must be strictly increasing, but h_samples[2] = 30 follows 34"),
])
def test_non_finite_or_out_of_frame_label_values_are_skipped(tmp_path, lanes, h_samples, reason):
    # Issue 15 item 5: NaN, Infinity, 1e300 and bad h_samples made the lanes vanish silently.
    src = tmp_path / "src"
    _write_image(src / "good.jpg")
    _write_image(src / "bad.jpg", seed=1)
    summary = _convert_lines(tmp_path, [_line("good.jpg", [[20, 25, 30, 35, 40]]),
                                        _line("bad.jpg", lanes, h_samples=h_samples)])
    assert summary["skipped"] == [f"{src / 'label_data_0001.json'}:2: {reason}"]
    assert summary["counts"] == {"train": 1, "val": 0}


def test_an_empty_label_file_is_an_error_not_an_empty_dataset(tmp_path, capsys):
    # Issue 15 item 6: it converted 0 frames with exit status 0.
    src = tmp_path / "src"
    src.mkdir()
    (src / "label_data_0001.json").write_text("\n\n")
    with pytest.raises(writer.NothingConvertedError,
                       match="hold no label line: nothing to convert"):
        tusimple.convert(str(src), str(tmp_path / "out"))
    assert tusimple.main(["--srcdir", str(src), "--outdir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"error: TuSimple: the label files under {src} hold no label line: nothing to convert\n")
    assert not (tmp_path / "out").exists()


def test_a_conversion_where_every_frame_is_bad_is_an_error_and_keeps_the_earlier_run(tmp_path,
                                                                                     capsys):
    src = tmp_path / "src"
    _write_image(src / "good.jpg")
    _convert_lines(tmp_path, [_line("good.jpg", [])])
    out = tmp_path / "out"
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    (src / "good.jpg").unlink()
    with pytest.raises(writer.NothingConvertedError,
                       match=r"all 1 input item\(s\) are bad.*label_data_0001.json:1: .*good.jpg: "
                             r"no such file"):
        _convert_lines(tmp_path, [_line("good.jpg", [])])
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    assert tusimple.main(["--srcdir", str(src), "--outdir", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: TuSimple: nothing converted")


def test_a_zero_byte_image_is_skipped(tmp_path):
    # Issue 15 item 7: cv2.error (!buf.empty()) stopped the conversion.
    src = tmp_path / "src"
    _write_image(src / "good.jpg")
    (src / "empty.jpg").write_bytes(b"")
    summary = _convert_lines(tmp_path, [_line("empty.jpg", []), _line("good.jpg", [])])
    assert summary["skipped"] == [
        f"{src / 'label_data_0001.json'}:1: {src / 'empty.jpg'}: empty file (0 bytes)"]
    assert summary["counts"]["train"] == 1


def test_a_nul_byte_in_raw_file_is_skipped_naming_the_line(tmp_path):
    # Issue 15 item 8: "embedded null byte" stopped the conversion, naming no file or line.
    src = tmp_path / "src"
    _write_image(src / "good.jpg")
    summary = _convert_lines(tmp_path, [_line("good.jpg", []), _line("go\0od.jpg", [])])
    assert summary["skipped"] == [
        f"{src / 'label_data_0001.json'}:2: raw_file \"go\\u0000od.jpg\" contains a NUL byte"]
    assert summary["counts"]["train"] == 1


def test_the_leftovers_of_a_killed_conversion_are_removed_by_the_next_run(tmp_path):
    # Issue 15 item 20: a killed run left .tmp-convert-*/ behind for good.
    import subprocess
    import sys

    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True, check=True).stdout)
    out = tmp_path / "out"
    leftovers = [out / ".tmp-convert-k1x2y3z4", out / f".tmp-convert-{dead_pid}-abcdefgh"]
    for leftover in leftovers:
        leftover.mkdir(parents=True)
        (leftover / "train-00000").write_bytes(b"half a shard")
    (out / f".tmp-convert-{dead_pid}-jsonfile").write_bytes(b"{")
    live = out / f".tmp-convert-{os.getppid()}-running"  # a run still going: left alone
    live.mkdir()
    src = tmp_path / "src"
    _write_image(src / "good.jpg")
    _convert_lines(tmp_path, [_line("good.jpg", [])])
    assert sorted(name for name in os.listdir(out) if name.startswith(".")) == [live.name]
