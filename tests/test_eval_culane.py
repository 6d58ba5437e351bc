"""CULane's metric: the official evaluator's counts on generated borderline frames, its matching
and rounding quirks by hand, and the command's files, errors and output."""
import json
import math
import os

import numpy as np
import pytest

from enet_discrim import cli
from enet_discrim.cli import culane as culane_cli
from enet_discrim.evaluation import culane
from enet_discrim.formats import culane as culane_format

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Frames of `tests/culane_oracle.py` with the counts CULane's official evaluator gave each.
OFFICIAL_CASES = os.path.join(REPO, "tests", "data", "culane_official_counts.jsonl")


def _official_cases():
    with open(OFFICIAL_CASES) as stream:
        return [json.loads(line) for line in stream]


def test_counts_equal_the_official_tool_on_borderline_frames():
    cases = _official_cases()
    assert len(cases) >= 300
    differ = []
    for case in cases:
        labels = [culane_format.parse_lane_line(line) for line in case["labels"]]
        predictions = [culane_format.parse_lane_line(line) for line in case["predictions"] or []]
        counts, _ = culane.count_frame(labels, predictions)
        if [counts.tp, counts.fp, counts.fn] != case["counts"]:
            differ.append((case["case"], case["counts"], [counts.tp, counts.fp, counts.fn]))
    assert not differ
    # The cases reach every outcome: hits, misses and false alarms on both sides of IoU 0.5.
    totals = np.sum([case["counts"] for case in cases], axis=0)
    assert all(totals > 100)


def test_official_cases_sit_on_the_threshold():
    """The generated frames are borderline: many matched pairs lie within 0.05 of IoU 0.5."""
    near = 0
    for case in _official_cases()[:100]:
        labels = [culane_format.parse_lane_line(line) for line in case["labels"]]
        predictions = [culane_format.parse_lane_line(line) for line in case["predictions"] or []]
        near += sum(abs(culane.lane_iou(a, p) - 0.5) < 0.05 for a in labels for p in predictions)
    assert near >= 10


def test_the_matching_keeps_the_official_tolerance():
    # Kuhn-Munkres with edges tight within 0.01, by hand: label 0 first takes prediction 0
    # (0.505); label 1 (all zeros) then finds prediction 0 tight and moves label 0 to prediction 1,
    # tight too (0.505 - 0.499 < 0.01). An exact assignment would keep 0.505 and a true positive.
    assert culane.match_lanes([[0.505, 0.499], [0.0, 0.0]]) == ([1, 0], [1, 0])
    # More labels than predictions: the search runs on the transposed matrix.
    assert culane.match_lanes([[0.2], [0.9], [0.1]]) == ([-1, 0, -1], [1])
    assert culane.match_lanes([[0.9, 0.8], [0.85, 0.1]]) == ([1, 0], [1, 0])
    # NaN (two lanes wholly off the canvas) is never a tight edge.
    assert culane.match_lanes([[math.nan, 0.7]]) == ([1], [-1, 0])


def test_coordinates_round_as_opencv_rounds():
    values = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 3.49, np.nan, 3e9, -3e9], np.float32)
    assert culane._cv_round(values).tolist() == [0, 2, 2, 0, -2, 3, -2 ** 31, -2 ** 31, -2 ** 31]


def test_the_spline_through_collinear_points_is_their_line():
    points = [(100.0, 590.0), (110.0, 580.0), (120.0, 570.0)]
    curve = culane.spline_points(points, steps=4)
    # h = sqrt(200) per interval; the second derivatives are 0, so the points step evenly.
    expected = [(100 + 2.5 * k, 590 - 2.5 * k) for k in range(9)]
    np.testing.assert_allclose(curve, expected, atol=1e-4)
    assert curve.dtype == np.float32 and len(curve) == 4 * 2 + 1


def test_frame_counts_follow_the_official_rules():
    lane = [(800.0 + k, 590.0 - 10 * k) for k in range(20)]
    far = [(100.0 + k, 590.0 - 10 * k) for k in range(20)]
    assert culane.lane_iou(lane, lane) == 1.0
    assert culane.lane_iou(lane, far) == 0.0
    assert culane.lane_iou(lane, [(800.0, 590.0)]) == 0.0  # one point: similarity 0
    counts, match = culane.count_frame([lane, far], [far, lane, []])
    assert (counts.tp, counts.fp, counts.fn) == (2, 1, 0) and match == [1, 0]
    assert culane.count_frame([], [lane, []])[0] == culane.Counts(0, 2, 0)  # blank lines count
    assert culane.count_frame([lane, []], [])[0] == culane.Counts(0, 0, 2)
    # IoU exactly at the threshold is not a true positive.
    assert culane.count_frame([lane], [lane], iou=1.0)[0] == culane.Counts(0, 1, 1)


def _culane_folder(root, frames):
    """A CULane-layout folder: label files per frame (dict frame -> lines) and its list."""
    for frame, lines in frames.items():
        path = root / culane_format.lanes_path(frame.lstrip("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines))
    (root / "list").mkdir(exist_ok=True)
    (root / "list" / "test.txt").write_text("".join(f"{frame}\n" for frame in frames))
    return root


LANE = "800 590 801 580 802 570 803 560 804 550 805 540 "
OTHER = "100 590 101 580 102 570 103 560 104 550 105 540 "


def test_evaluate_scores_a_folder_and_reads_missing_predictions_as_no_lanes(tmp_path, monkeypatch):
    labels = _culane_folder(tmp_path / "labels", {"/d/a.jpg": [LANE, OTHER], "/d/b.jpg": [LANE],
                                                  "/d/c.jpg": [LANE]})
    predictions = _culane_folder(tmp_path / "pred", {"/d/a.jpg": [LANE], "/d/b.jpg": [OTHER]})
    result = culane.evaluate(str(labels), str(predictions), str(labels / "list" / "test.txt"))
    # a: 1 hit, 1 miss; b: 1 false alarm, 1 miss; c: no prediction file, 1 miss.
    assert {key: result[key] for key in ("tp", "fp", "fn", "frames")} == {
        "tp": 1, "fp": 1, "fn": 3, "frames": 3}
    assert result["precision"] == 0.5 and result["recall"] == 0.25
    assert result["f1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    monkeypatch.setattr(culane, "_CHUNK_FRAMES", 1)  # a frame per task: the pool does the work
    in_parallel = culane.evaluate(str(labels), str(predictions), str(labels / "list" / "test.txt"),
                                  workers=2)
    assert in_parallel == result


def test_bad_inputs_are_one_error_naming_the_file_and_line(tmp_path):
    labels = _culane_folder(tmp_path / "labels", {"/d/a.jpg": [LANE]})
    predictions = _culane_folder(tmp_path / "pred", {"/d/a.jpg": [LANE, "1 2 3"]})
    listed = str(labels / "list" / "test.txt")
    with pytest.raises(ValueError, match=r"pred/d/a.lines.txt:2: 3 values"):
        culane.evaluate(str(labels), str(predictions), listed)
    (labels / "list" / "escape.txt").write_text("/d/a.jpg\n/../../x.jpg\n")
    with pytest.raises(ValueError, match=r"escape.txt:2: frame '../../x.lines.txt' resolves outside"):
        culane.evaluate(str(labels), str(predictions), str(labels / "list" / "escape.txt"))
    with pytest.raises(ValueError, match="predictions folder .* does not exist"):
        culane.evaluate(str(labels), str(tmp_path / "nope"), listed)
    with pytest.raises(ValueError, match="IoU threshold must lie in"):
        culane.evaluate(str(labels), str(predictions), listed, iou=1.5)


@pytest.mark.parametrize("launcher", ["python -m", "enet-discrim"])
def test_the_command_prints_counts_json_and_categories(tmp_path, capsys, launcher):
    labels = _culane_folder(tmp_path / "labels", {"/d/a.jpg": [LANE, OTHER], "/d/b.jpg": []})
    predictions = _culane_folder(tmp_path / "pred", {"/d/a.jpg": [LANE], "/d/b.jpg": [OTHER]})
    lists = labels / "list"
    (lists / culane_format.category_list("normal")).write_text("/d/a.jpg\n")
    (lists / culane_format.category_list("cross")).write_text("/d/b.jpg\n")
    argv = ["--annotations", str(labels), "--predictions", str(predictions),
            "--list", str(lists / "test.txt"), "--split_lists", str(lists), "--json"]
    if launcher == "python -m":
        assert culane_cli.run_eval(argv) == 0
    else:
        assert cli.main(["eval", "culane"] + argv) == 0
    output = capsys.readouterr().out.strip().splitlines()
    scores = json.loads(output[-1])
    assert {key: scores[key] for key in ("tp", "fp", "fn")} == {"tp": 1, "fp": 1, "fn": 1}
    assert set(scores) >= {"tp", "fp", "fn", "precision", "recall", "f1"}
    assert scores["categories"]["normal"]["fn"] == 1 and scores["categories"]["cross"]["fp"] == 1
    assert output[0].startswith("normal") and output[1].startswith("cross")
    assert "fp 1" in output[1] and "F1" not in output[1]  # crossroads: false positives only


def test_a_mistyped_flag_is_one_line_naming_the_flag_meant(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        culane_cli.run_eval(["--annotations", "a", "--predictions", "p", "--lsit", "l.txt"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == ("error: enet-discrim eval culane: unrecognized arguments: "
                                       "--lsit l.txt (did you mean --list?)\n")
    assert culane_cli.run_eval(["--annotations", "a", "--predictions", "p"]) == 2
    assert capsys.readouterr().err == ("error: enet-discrim eval culane: give --list, "
                                       "--split_lists or both\n")
