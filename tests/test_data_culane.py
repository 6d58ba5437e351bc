"""CULane converter: lanes drawn at the record's scale, every bad-input case named, --strict,
and training's --srcdir taking a raw CULane root."""
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.cli import culane as culane_cli
from enet_discrim.data import culane, lane_labels, records, schema, writer

# Frames are 164 x 59, a tenth of CULane's 1640 x 590.
FRAME_HEIGHT, FRAME_WIDTH = 59, 164


def _write_frame(path, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8)
    cv2.imwrite(str(path), image)


@pytest.fixture
def culane_root(tmp_path):
    """A CULane folder with 2 good frames and one list line per kind of bad input.

    Returns (root, dict name -> line number in list/train_gt.txt).
    """
    root = tmp_path / "culane"
    frames = {
        "two_lanes": ("/d/c.MP4/00000.jpg", "40 59 50 30 \n120 59 110 30 \n"),
        "no_lanes": ("/d/c.MP4/00030.jpg", ""),
        "odd_count": ("/d/c.MP4/00060.jpg", "40 59 50 30 \n1 2 3 \n"),
        "nan": ("/d/c.MP4/00090.jpg", "40 nan 50 30 \n"),
        "far_outside": ("/d/c.MP4/00120.jpg", "40 59 5000 30 \n"),
        "no_lane_file": ("/d/c.MP4/00150.jpg", None),
    }
    for seed, (frame, lanes) in enumerate(frames.values()):
        _write_frame(root / frame.lstrip("/"), seed)
        if lanes is not None:
            (root / frame.lstrip("/").replace(".jpg", ".lines.txt")).write_text(lanes)
    outside = tmp_path / "secret.jpg"  # a valid frame outside the root: never opened
    _write_frame(outside)
    lines = {name: f"{frame} /laneseg/{frame[1:-4]}.png 1 1 0 0"
             for name, (frame, _) in frames.items()}
    lines.update({"missing_frame": "/d/c.MP4/99999.jpg", "dotdot": "/../secret.jpg",
                  "bad_flags": "/d/c.MP4/00000.jpg /m.png 1 1 x 0"})
    (root / "list").mkdir()
    (root / "list" / "train_gt.txt").write_text("\n".join(lines.values()) + "\n")
    return root, {name: number for number, name in enumerate(lines, start=1)}


def _read_records(paths):
    return [{key: value.numpy() for key, value in schema.decode_example(serialized).items()}
            for serialized in tf.data.TFRecordDataset(paths)]


def test_lanes_are_drawn_at_the_records_scale_and_bad_lines_are_named(culane_root, tmp_path):
    root, numbers = culane_root
    listed = str(root / "list" / "train_gt.txt")
    summary = culane.convert(str(root), str(tmp_path / "out"), list_file="list/train_gt.txt",
                             height=118, width=328, val_fraction=0.0)
    assert summary["counts"] == {"train": 2, "val": 0}
    lane_file = str(root / "d" / "c.MP4" / "{}.lines.txt")
    assert sorted(summary["skipped"]) == sorted([
        f"{lane_file.format('00060')}:2: 3 values: a lane is x y pairs, one value is left over",
        f"{lane_file.format('00090')}:1: value 2 is not a number: 'nan'",
        f"{lane_file.format('00120')}:1: point 2 (5000, 30) lies far outside the 164x59 frame",
        f"{listed}:{numbers['no_lane_file']}: frame {root}/d/c.MP4/00150.jpg has no lane file "
        f"{root}/d/c.MP4/00150.lines.txt",
        f"{listed}:{numbers['missing_frame']}: {root}/d/c.MP4/99999.jpg: no such file",
        f"{listed}:{numbers['dotdot']}: frame '../secret.jpg' resolves outside the dataset root, "
        "refused",
        f"{listed}:{numbers['bad_flags']}: lane flags must be 0 or 1, got 'x'",
    ])
    examples = {example["filename"].decode(): example
                for example in _read_records(summary["shards"]["train"])}
    assert set(examples) == {"d/c.MP4/00000.jpg", "d/c.MP4/00030.jpg"}
    two = examples["d/c.MP4/00000.jpg"]
    assert two["image"].shape == (118, 328, 3)
    instance = two["instance"][..., 0] if two["instance"].ndim == 3 else two["instance"]
    assert sorted(np.unique(instance)) == [0, 1, 2]
    # Lane 1 runs from (40, 59) to (50, 30) in frame pixels: x 80.5 -> 100.5 at twice the size,
    # at the records' bottom row and at row 60.5.
    assert instance[117, 79:83].tolist().count(1) >= 2 and instance[117, 240:243].max() == 2
    assert instance[60, 99:103].max() == 1
    assert not instance[:55].any()  # nothing above the lanes' top points (y 30 -> row 60.5)
    assert not examples["d/c.MP4/00030.jpg"]["instance"].any()
    info = writer.read_dataset_info(str(tmp_path / "out" / writer.DATASET_INFO_FILE))
    assert info["dataset"] == "culane" and info["class_names"] == list(lane_labels.CLASS_NAMES)
    assert (info["height"], info["width"], info["skipped"]) == (118, 328, 7)


def test_strict_writes_nothing_when_a_line_is_bad(culane_root, tmp_path):
    root, _ = culane_root
    with pytest.raises(writer.BadInputError, match="7 bad input item"):
        culane.convert(str(root), str(tmp_path / "out"), strict=True)
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")


def test_an_outdir_under_a_file_is_one_error_before_any_work(culane_root, tmp_path):
    root, _ = culane_root
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match=r"--outdir .*a_file/out exists and is not a folder "
                                         r"\(.*a_file is a file\)"):
        culane.convert(str(root), str(tmp_path / "a_file" / "out"))


def test_a_missing_list_or_root_is_one_error(tmp_path):
    with pytest.raises(ValueError, match="CULane source folder does not exist"):
        culane.convert(str(tmp_path / "nope"), str(tmp_path / "out"))
    tmp_path.joinpath("root").mkdir()
    with pytest.raises(ValueError, match=r"CULane list .*list/train_gt.txt does not exist"):
        culane.convert(str(tmp_path / "root"), str(tmp_path / "out"))


def test_training_takes_a_raw_culane_root(culane_root):
    root, _ = culane_root
    assert culane.is_culane_root(str(root))
    converted, info = records.prepare_records(str(root), "tusimple", 32, 64)
    assert converted == os.path.join(str(root), records.CONVERTED_SUBDIR)
    assert info["dataset"] == "culane" and sum(info["counts"].values()) == 2
    # The records are lane records: a CULane or TuSimple model trains on them, Cityscapes not.
    assert records.prepare_records(str(root), "culane", 32, 64)[0] == converted
    with pytest.raises(ValueError, match="describes a 'culane' dataset but --dataset is 'cityscapes'"):
        records.prepare_records(converted, "cityscapes", 32, 64)


def test_the_command_converts_and_reports_in_one_line(culane_root, tmp_path, capsys):
    root, _ = culane_root
    argv = ["--srcdir", str(root), "--list", str(root / "list" / "train_gt.txt"), "--outdir",
            str(tmp_path / "out"), "--height", "64", "--width", "128"]
    assert culane_cli.run_convert(argv) == 0
    assert capsys.readouterr().out.strip() == (f"written: train 2, val 0; skipped: 7 -> "
                                               f"{tmp_path / 'out'}")
    assert culane_cli.run_convert(argv + ["--strict"]) == 2
    # After the progress bar: one error line.
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "error: 7 bad input item(s), nothing written: ")
