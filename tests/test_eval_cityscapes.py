"""Tests for the Cityscapes results writer, the NumPy-2 shim and the official AP evaluation."""
import json
import math
import os

import cv2
import numpy as np
import pytest

from enet_discrim.evaluation import cityscapes_compat
from enet_discrim.evaluation.cityscapes import (evaluate, instance_confidences, main,
                                                write_cityscapes_results)
from enet_discrim.evaluation.cityscapes_compat import (CityscapesEvaluationError,
                                                       official_instance_evaluator)

CAR, PERSON = 26, 24            # regular label ids
CAR_TRAIN, PERSON_TRAIN = 13, 11
ROAD = 7
SHAPE = (64, 128)
# Per image: (label id, instance number, (rows, cols) box); every box >= 100 px, the official
# minimum region size.
IMAGES = {
    "testcity_000000_000000": [(CAR, 0, (slice(10, 30), slice(10, 40))),
                               (CAR, 1, (slice(35, 55), slice(60, 100))),
                               (PERSON, 0, (slice(5, 25), slice(100, 120)))],
    "testcity_000000_000001": [(CAR, 0, (slice(20, 40), slice(20, 60))),
                               (PERSON, 0, (slice(30, 60), slice(90, 100))),
                               (PERSON, 1, (slice(30, 60), slice(105, 115)))],
}


def _make_ground_truth(root, city="testcity"):
    """IMAGES as the ground truth of `city` (its stems renamed to start with it)."""
    folder = root / "gtFine" / "val" / city
    folder.mkdir(parents=True)
    for stem, instances in IMAGES.items():
        ids = np.full(SHAPE, ROAD, np.uint16)
        for label_id, number, box in instances:
            ids[box] = label_id * 1000 + number
        stem = stem.replace("testcity", city)
        assert cv2.imwrite(str(folder / f"{stem}_gtFine_instanceIds.png"), ids)


def _write_predictions(results, drop=(), city="testcity"):
    """Perfect predictions of `city`'s frames, minus the (IMAGES stem, index) pairs in `drop`."""
    for stem, instances in IMAGES.items():
        instance_map = np.zeros(SHAPE, np.int32)
        classes, scores = [], []
        for index, (label_id, _, box) in enumerate(instances):
            if (stem, index) in drop:
                continue
            classes.append(CAR_TRAIN if label_id == CAR else PERSON_TRAIN)
            scores.append(0.9)
            instance_map[box] = len(classes)
        write_cityscapes_results(str(results), stem.replace("testcity", city), instance_map,
                                 classes, scores)


@pytest.fixture
def dataset(tmp_path):
    _make_ground_truth(tmp_path / "cityscapes")
    return tmp_path / "cityscapes"


def test_writer_layout_uses_regular_label_ids(tmp_path):
    instance_map = np.zeros((4, 6), np.int32)
    instance_map[0, :2] = 1
    instance_map[2:, 3:] = 2
    text = write_cityscapes_results(str(tmp_path), "aachen_000001_000019_leftImg8bit",
                                    instance_map, [13, 11], [0.75, 0.5])
    assert text == str(tmp_path / "aachen_000001_000019_leftImg8bit.txt")
    assert open(text).read().splitlines() == [
        "masks/aachen_000001_000019_leftImg8bit_001.png 26 0.750000",
        "masks/aachen_000001_000019_leftImg8bit_002.png 24 0.500000"]
    mask = cv2.imread(str(tmp_path / "masks/aachen_000001_000019_leftImg8bit_002.png"),
                      cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, (instance_map == 2) * 255)


def test_writer_resizes_to_the_ground_truth_size(tmp_path):
    instance_map = np.array([[1, 0], [0, 0]], np.int32)
    write_cityscapes_results(str(tmp_path), "ulm_000000_000000", instance_map, [13], [1.0],
                             output_size=(4, 6))
    mask = cv2.imread(str(tmp_path / "masks/ulm_000000_000000_001.png"), cv2.IMREAD_UNCHANGED)
    expected = np.zeros((4, 6), np.uint8)
    expected[:2, :3] = 255
    np.testing.assert_array_equal(mask, expected)


def test_writer_rejects_bad_input(tmp_path):
    one = np.ones((2, 2), np.int32)
    with pytest.raises(ValueError, match="must look like <city>_<seq>_<frame>"):
        write_cityscapes_results(str(tmp_path), "image 1", one, [13], [1.0])
    with pytest.raises(ValueError, match=r"ulm_000000_000000: unknown Cityscapes train ids \[42\]"):
        write_cityscapes_results(str(tmp_path), "ulm_000000_000000", one, [42], [1.0])
    with pytest.raises(ValueError, match="instance id 2 has no class"):
        write_cityscapes_results(str(tmp_path), "ulm_000000_000000", one * 2, [13], [1.0])
    with pytest.raises(ValueError, match="1 classes but 2 confidences"):
        write_cityscapes_results(str(tmp_path), "ulm_000000_000000", one, [13], [1.0, 0.5])


def test_instance_confidences_are_mean_class_probabilities():
    probabilities = np.zeros((1, 3, 19), np.float32)
    probabilities[0, :, 13] = [0.2, 0.4, 0.9]
    instance_map = np.array([[1, 1, 2]])
    np.testing.assert_allclose(instance_confidences(probabilities, instance_map, [13, 13]),
                               [0.3, 0.9])


def test_shim_in1d_json_errors_and_restores_the_module(tmp_path):
    np.testing.assert_array_equal(cityscapes_compat._NumpyWithIn1d().in1d(
        np.array([[1, 2], [3, 4]]), [2, 3]), [False, True, True, False])
    with official_instance_evaluator(str(tmp_path)) as evaluator:
        evaluator.writeDict2JSON({"n": np.int64(3), "a": np.arange(2)}, "out.json")
        with pytest.raises(CityscapesEvaluationError, match="boom"):
            evaluator.printError("boom")
    assert json.loads((tmp_path / "out.json").read_text()) == {"n": 3, "a": [0, 1]}
    assert evaluator.np is np and evaluator.printError is not cityscapes_compat._raise_error


def test_perfect_predictions_score_ap_one(dataset, tmp_path, monkeypatch):
    _write_predictions(tmp_path / "results")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    result = evaluate(str(dataset), str(tmp_path / "results"))
    assert result["classes"]["car"] == {"ap": 1.0, "ap50": 1.0}
    assert result["classes"]["person"] == {"ap": 1.0, "ap50": 1.0}
    assert math.isnan(result["classes"]["bus"]["ap"])  # no bus anywhere: left out
    assert result["ap"] == 1.0 and result["ap50"] == 1.0
    assert os.listdir(".") == []  # the evaluator's matches.json went to a scratch folder


def test_a_missed_car_lowers_car_ap_to_two_thirds(dataset, tmp_path, capsys):
    # Three cars, two found with precision 1: AP = recall 2/3 at every overlap.
    _write_predictions(tmp_path / "results", drop={("testcity_000000_000000", 1)})
    assert main(["--dataset", str(dataset), "--results", str(tmp_path / "results"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classes"]["car"]["ap"] == pytest.approx(2 / 3)
    assert result["classes"]["person"]["ap"] == 1.0
    assert result["classes"]["bus"]["ap"] is None
    assert result["ap"] == pytest.approx((2 / 3 + 1) / 2)


def test_missing_prediction_file_names_the_ground_truth(dataset, tmp_path):
    _write_predictions(tmp_path / "results")
    os.remove(tmp_path / "results" / "testcity_000000_000001.txt")
    with pytest.raises(CityscapesEvaluationError,
                       match="Found no prediction for ground truth .*testcity_000000_000001"):
        evaluate(str(dataset), str(tmp_path / "results"))


def test_no_ground_truth_is_a_clear_error(tmp_path, capsys):
    assert main(["--dataset", str(tmp_path), "--results", str(tmp_path)]) == 2
    assert "no ground truth found" in capsys.readouterr().err


def test_a_mask_of_the_wrong_size_is_an_error_naming_it(dataset, tmp_path, capsys):
    # Issue 15 item 15: a numpy broadcast error naming neither the mask nor its text file.
    _write_predictions(tmp_path / "results")
    mask = tmp_path / "results/masks/testcity_000000_000000_002.png"
    cv2.imwrite(str(mask), np.full((10, 20), 255, np.uint8))
    assert main(["--dataset", str(dataset), "--results", str(tmp_path / "results")]) == 2
    text = tmp_path / "results/testcity_000000_000000.txt"
    gt = dataset / "gtFine/val/testcity/testcity_000000_000000_gtFine_instanceIds.png"
    assert capsys.readouterr().err == (
        f"error: {text}:2: mask {tmp_path / 'results'}/masks/testcity_000000_000000_002.png is "
        f"20x10 but the ground truth {gt} is {SHAPE[1]}x{SHAPE[0]}\n")
    mask.write_bytes(b"not a png")
    with pytest.raises(CityscapesEvaluationError,
                       match=r"_000000.txt:2: mask .*_002.png is not a readable image"):
        evaluate(str(dataset), str(tmp_path / "results"))


# --- Scoring a part of the split (issue 16 item 1).

@pytest.fixture
def two_cities(tmp_path):
    for city in ("testcity", "othercity"):
        _make_ground_truth(tmp_path / "cityscapes", city)
    return tmp_path / "cityscapes"


def test_the_whole_split_needs_every_frame_and_says_how_many_lack_results(two_cities, tmp_path):
    _write_predictions(tmp_path / "results")
    with pytest.raises(CityscapesEvaluationError) as error:
        evaluate(str(two_cities), str(tmp_path / "results"))
    first_missing = (two_cities / "gtFine/val/othercity"
                     / "othercity_000000_000000_gtFine_instanceIds.png")
    assert str(error.value).startswith(
        f"Found no prediction for ground truth {first_missing}: 2 of the 4 frames of the whole "
        "val split have no results in ")
    assert "--only_predicted" in str(error.value)


def test_only_predicted_scores_the_frames_with_results(two_cities, tmp_path, capsys):
    # testcity's two frames, with one of its three cars missed: car AP 2/3, as in one city alone.
    _write_predictions(tmp_path / "results", drop={("testcity_000000_000000", 1)})
    assert main(["--dataset", str(two_cities), "--results", str(tmp_path / "results"),
                 "--only_predicted"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Scored the 2 predicted frames (of 4 in the whole val split)."
    assert lines[1].split() == ["class", "AP", "AP50"]
    car = next(line for line in lines if line.startswith("car "))
    assert float(car.split()[1]) == pytest.approx(2 / 3, abs=1e-3)
    assert lines[-1].split()[0] == "average"


def test_cities_score_only_their_frames(two_cities, tmp_path, capsys):
    # othercity perfect, testcity with a car missed: othercity alone scores 1.0, both cities less.
    _write_predictions(tmp_path / "results", city="othercity")
    _write_predictions(tmp_path / "results", drop={("testcity_000000_000000", 1)})
    result = evaluate(str(two_cities), str(tmp_path / "results"), cities=["othercity"])
    assert (result["ap"], result["frames"]) == (1.0, 2)
    assert result["scored"] == "Scored val cities othercity: 2 frames."
    whole = evaluate(str(two_cities), str(tmp_path / "results"))
    assert whole["classes"]["car"]["ap"] == pytest.approx(5 / 6)  # 5 of 6 cars, precision 1
    assert whole["scored"] == "Scored the whole val split: 4 frames."
    assert main(["--dataset", str(two_cities), "--results", str(tmp_path / "results"),
                 "--cities", "othercity,testcity", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == "Scored val cities othercity, testcity: 4 frames."
    assert json.loads(captured.out)["classes"]["car"]["ap"] == pytest.approx(5 / 6)


def test_cities_and_only_predicted_refuse_what_they_cannot_score(two_cities, tmp_path, capsys):
    _write_predictions(tmp_path / "results")
    assert main(["--dataset", str(two_cities), "--results", str(tmp_path / "results"),
                 "--cities", "frankfurt,testcity"]) == 2
    assert capsys.readouterr().err == (
        f"error: --cities: frankfurt not among the val cities of {two_cities}: othercity, "
        "testcity\n")
    with pytest.raises(CityscapesEvaluationError,
                       match="2 of the 2 frames of val cities othercity"):
        evaluate(str(two_cities), str(tmp_path / "results"), cities=["othercity"])
    with pytest.raises(ValueError, match="no frame of val cities othercity has results"):
        evaluate(str(two_cities), str(tmp_path / "results"), only_predicted=True,
                 cities=["othercity"])
