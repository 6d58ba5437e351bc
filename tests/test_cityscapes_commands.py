"""Cityscapes from the command line (issue 16): frames listed recursively under --indir with the
names the official evaluator looks for, and the README's Cityscapes commands run as written on a
folder in Cityscapes' layout."""
import os
import types

import cv2
import numpy as np
import pytest

from enet_discrim import batch_inference


def _touch_frame(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), np.zeros((4, 8, 3), np.uint8))


def test_indir_is_searched_recursively_keeping_cityscapes_stems(tmp_path):
    # Issue 16 item 1: frames were listed only directly inside --indir.
    indir = tmp_path / "val"
    for relative in ("lindau/lindau_000000_000019_leftImg8bit.png",
                     "frankfurt/frankfurt_000001_000019_leftImg8bit.png",
                     "a/20.jpg", "b/20.jpg", "top.png", ".cache/hidden.png", "c/.hidden.png"):
        _touch_frame(indir / relative)
    (indir / "a" / "labels.json").write_text("{}")
    jobs = batch_inference.list_jobs(str(indir))
    assert [(os.path.relpath(job.path, indir), job.name) for job in jobs] == [
        ("a/20.jpg", "a_20"),
        ("b/20.jpg", "b_20"),
        ("frankfurt/frankfurt_000001_000019_leftImg8bit.png",
         "frankfurt_000001_000019_leftImg8bit"),
        ("lindau/lindau_000000_000019_leftImg8bit.png", "lindau_000000_000019_leftImg8bit"),
        ("top.png", "top"),
    ]
    # A TuSimple line's raw_file is the path relative to --indir.
    assert jobs[0].raw_file == "a/20.jpg"


def test_a_cityscapes_stem_found_twice_falls_back_to_the_relative_path(tmp_path):
    for relative in ("val/ulm/ulm_000000_000019_leftImg8bit.png",
                     "copy/ulm_000000_000019_leftImg8bit.png"):
        _touch_frame(tmp_path / relative)
    names = [job.name for job in batch_inference.list_jobs(str(tmp_path))]
    assert names == ["copy_ulm_000000_000019_leftImg8bit",
                     "val_ulm_ulm_000000_000019_leftImg8bit"]
    assert batch_inference.output_names(["x/aachen_000000_000001_leftImg8bit.png", "x/7.png"]) == [
        "aachen_000000_000001_leftImg8bit", "x_7"]


def test_outdir_inside_indir_and_folder_loops_are_not_searched(tmp_path):
    indir = tmp_path / "in"
    _touch_frame(indir / "city" / "city_000000_000019_leftImg8bit.png")
    _touch_frame(indir / "results" / "city_000000_000019_leftImg8bit_overlay.png")
    os.symlink(indir, indir / "city" / "loop")  # followed once, not forever
    os.symlink(indir / "city", indir / "alias")  # the same folder again under another name
    jobs = batch_inference.list_jobs(str(indir), exclude=[str(indir / "results")])
    assert [job.name for job in jobs] == ["city_000000_000019_leftImg8bit"]
    assert len(batch_inference.list_jobs(str(indir))) == 2


def test_an_empty_tree_is_a_one_line_error(tmp_path):
    (tmp_path / "city" / "empty").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"^--indir '.*' holds no files$"):
        batch_inference.list_jobs(str(tmp_path))


def test_cityscapes_results_need_a_cityscapes_name_and_say_which_frame(tmp_path):
    prediction = types.SimpleNamespace(
        semantic_probabilities=np.full((2, 2, 19), 1 / 19, np.float32),
        instances=np.array([[1, 0], [0, 0]], np.int32), instance_classes=np.array([13]),
        frame_size=(4, 4))
    job = batch_inference.Job(str(tmp_path / "in" / "a" / "7.png"), "a_7", "a/7.png")
    with pytest.raises(ValueError, match=r"in/a/7.png: --format cityscapes needs frames named "
                                         r"like Cityscapes ones .* this one would be 'a_7'$"):
        batch_inference._write_cityscapes(str(tmp_path / "results"), job, prediction)
    assert not (tmp_path / "results").exists()
    job = batch_inference.Job("x.png", "bonn_000000_000019_leftImg8bit", "x.png")
    batch_inference._write_cityscapes(str(tmp_path / "results"), job, prediction)
    # Where the official evaluator's getPrediction looks: <city>_<seq>_<frame>*.txt.
    assert sorted(os.listdir(tmp_path / "results")) == ["bonn_000000_000019_leftImg8bit.txt", "masks"]
    mask = cv2.imread(str(tmp_path / "results/masks/bonn_000000_000019_leftImg8bit_001.png"),
                      cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, np.kron([[1, 0], [0, 0]], np.ones((2, 2))) * 255)
