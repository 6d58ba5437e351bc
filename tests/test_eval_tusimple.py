"""Tests for enet_discrim.evaluation.tusimple against hand-computed official scores."""
import json

import numpy as np
import pytest

from enet_discrim.evaluation.tusimple import bench_frame, evaluate, lane_angle, main

Y = list(range(0, 100, 10))  # 10 rows: accuracies are multiples of 0.1


def _vertical(x, missing_rows=()):
    return [-2 if i in missing_rows else x for i in range(len(Y))]


def _write(tmp_path, name, records):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _gt(raw_file, lanes):
    return {"raw_file": raw_file, "lanes": lanes, "h_samples": Y}


def _pred(raw_file, lanes, run_time=10.0):
    return {"raw_file": raw_file, "lanes": lanes, "run_time": run_time}


def test_perfect_frame_and_mean_over_frames(tmp_path):
    lanes = [_vertical(100), _vertical(300, missing_rows={0, 1})]
    gt = _write(tmp_path, "gt.json", [_gt("a.jpg", lanes), _gt("b.jpg", lanes)])
    # Frame b has no prediction lanes: accuracy 0, FP 0, FN 2/2.
    pred = _write(tmp_path, "pred.json", [_pred("a.jpg", lanes), _pred("b.jpg", [])])
    assert evaluate(pred, gt) == pytest.approx({"accuracy": 0.5, "fp": 0.0, "fn": 0.5})


def test_shift_beyond_threshold_is_a_miss_and_a_false_positive():
    gt = [_vertical(100), _vertical(300)]
    # 25 px off a vertical lane (threshold 20): line accuracy 0.
    assert bench_frame([_vertical(100), _vertical(325)], gt, Y, 5) == pytest.approx((0.5, 0.5, 0.5))
    # 19 px off: within the threshold everywhere.
    assert bench_frame([_vertical(100), _vertical(319)], gt, Y, 5) == pytest.approx((1.0, 0.0, 0.0))


def test_missing_points_count_against_and_shared_gaps_agree():
    gt = [_vertical(100, missing_rows={9})]
    # Rows 8 and 9 missing in the prediction: row 9 agrees (both absent), row 8 does not -> 0.9.
    assert bench_frame([_vertical(100, missing_rows={8, 9})], gt, Y, 5) == pytest.approx(
        (0.9, 0.0, 0.0))
    # Rows 7, 8 and 9 missing -> 0.8 < 0.85: a miss, and the prediction is a false positive.
    assert bench_frame([_vertical(100, missing_rows={7, 8, 9})], gt, Y, 5) == pytest.approx(
        (0.8, 1.0, 1.0))


def test_threshold_widens_with_the_lane_angle():
    slanted = [100 + y for y in Y]  # x = y + 100: theta = 45 deg, threshold 20 / cos = 28.28
    assert lane_angle(slanted, Y) == pytest.approx(np.pi / 4)
    assert bench_frame([[x + 25 for x in slanted]], [slanted], Y, 5) == pytest.approx((1, 0, 0))
    assert bench_frame([[x + 29 for x in slanted]], [slanted], Y, 5) == pytest.approx((0, 1, 1))
    # Angle from present points only; a single point gives theta 0.
    assert lane_angle([-2] * 9 + [50], Y) == 0.0


def test_more_than_four_lanes_forgive_the_worst_lane_and_one_miss():
    gt = [_vertical(100 * i) for i in range(1, 6)]
    four = gt[:4]
    assert bench_frame(four, gt, Y, 5) == pytest.approx((1.0, 0.0, 0.0))
    three = gt[:3]
    # Best accuracies [1, 1, 1, 0, 0]: sum 3 minus the worst 0, over 4; misses 2 - 1 = 1 over 4.
    assert bench_frame(three, gt, Y, 5) == pytest.approx((0.75, 0.0, 0.25))


def test_slow_frame_and_too_many_lanes_score_as_a_miss():
    gt = [_vertical(100)]
    assert bench_frame(gt, gt, Y, 201) == (0.0, 0.0, 1.0)
    assert bench_frame(gt, gt, Y, 200) == pytest.approx((1.0, 0.0, 0.0))
    extra = [_vertical(100), _vertical(500), _vertical(700)]  # n_gt + 2: still scored
    assert bench_frame(extra, gt, Y, 5) == pytest.approx((1.0, 2 / 3, 0.0))
    assert bench_frame(extra + [_vertical(900)], gt, Y, 5) == (0.0, 0.0, 1.0)


def test_wrong_lane_length_is_a_format_error_naming_the_frame(tmp_path):
    gt = _write(tmp_path, "gt.json", [_gt("clips/x/20.jpg", [_vertical(100)])])
    pred = _write(tmp_path, "pred.json", [_pred("clips/x/20.jpg", [[100] * 9])])
    with pytest.raises(ValueError, match=r"pred.json:1: frame clips/x/20.jpg: Format of lanes"):
        evaluate(pred, gt)


def test_frame_sets_must_agree(tmp_path):
    gt = _write(tmp_path, "gt.json", [_gt("a.jpg", []), _gt("b.jpg", [])])
    pred = _write(tmp_path, "pred.json", [_pred("a.jpg", [])])
    with pytest.raises(ValueError, match=r"We do not get the predictions of all the test tasks.*"
                                         r"first b.jpg"):
        evaluate(pred, gt)
    pred = _write(tmp_path, "pred.json", [_pred("a.jpg", []), _pred("c.jpg", [])])
    with pytest.raises(ValueError, match=r"pred.json:2: frame c.jpg does not exist"):
        evaluate(pred, gt)
    pred = _write(tmp_path, "pred.json", [_pred("a.jpg", []), _pred("a.jpg", [])])
    with pytest.raises(ValueError, match=r"frame a.jpg is predicted more than once"):
        evaluate(pred, gt)
    pred = _write(tmp_path, "pred.json", [{"raw_file": "a.jpg", "lanes": []}])
    with pytest.raises(ValueError, match=r"pred.json:1: .*missing run_time"):
        evaluate(pred, gt)


def test_command_line(tmp_path, capsys):
    lanes = [_vertical(100)]
    gt = _write(tmp_path, "gt.json", [_gt("a.jpg", lanes)])
    pred = _write(tmp_path, "pred.json", [_pred("a.jpg", [_vertical(100), _vertical(600)])])
    assert main([pred, gt]) == 0
    assert capsys.readouterr().out.split() == ["Accuracy:", "1.000000", "FP:", "0.500000", "FN:",
                                               "0.000000"]
    assert main([pred, gt, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"accuracy": 1.0, "fp": 0.5, "fn": 0.0}
    assert main([str(tmp_path / "nothing.json"), gt]) == 2
    assert "nothing.json" in capsys.readouterr().err


# --- Reliability (issue 15): wrong types are FILE:LINE errors of the file they are in.

@pytest.mark.parametrize("field, value, reason", [
    ("run_time", "50", 'run_time must be a finite number of milliseconds >= 0, got "50"'),
    ("run_time", float("nan"), "run_time must be a finite number of milliseconds >= 0, got NaN"),
    ("run_time", float("inf"),
     "run_time must be a finite number of milliseconds >= 0, got Infinity"),
    ("run_time", True, "run_time must be a finite number of milliseconds >= 0, got true"),
    ("lanes", 5, "lanes must be a list of lanes, got 5"),
    ("lanes", ["abcdefghij"], 'lane 0 must be a list of x values, got "abcdefghij"'),
    ("lanes", [["1"] * 10], 'lane 0 point 0 is not a number: "1"'),
])
def test_prediction_values_of_the_wrong_type_are_errors_naming_the_line(tmp_path, capsys, field,
                                                                       value, reason):
    # Issue 15 item 11: tracebacks, and a NaN run_time slipped past the 200 ms rule.
    gt = _write(tmp_path, "gt.json", [_gt("a.jpg", [_vertical(100)]), _gt("b.jpg", [])])
    pred = _write(tmp_path, "pred.json", [_pred("a.jpg", [_vertical(100)]),
                                          {**_pred("b.jpg", []), field: value}])
    assert main([pred, gt]) == 2
    assert capsys.readouterr().err == f"error: {pred}:2: {reason}\n"


def test_bench_frame_refuses_a_nan_run_time():
    with pytest.raises(ValueError, match="run_time must be a finite number"):
        bench_frame([_vertical(100)], [_vertical(100)], Y, float("nan"))


@pytest.mark.parametrize("record, reason", [
    ({"raw_file": "a.jpg", "lanes": [[100] * 9], "h_samples": Y},
     "lane 0 has 9 points for 10 h_samples"),
    ({"raw_file": "a.jpg", "lanes": [_vertical(100)], "h_samples": "rows"},
     'h_samples must be a non-empty list of rows, got "rows"'),
    ({"raw_file": "a.jpg", "lanes": 3, "h_samples": Y}, "lanes must be a list of lanes, got 3"),
    ([1, 2], "not a JSON object"),
])
def test_a_malformed_ground_truth_line_is_blamed_on_the_ground_truth(tmp_path, record, reason):
    # Issue 15 item 19: the error named the prediction file.
    gt = _write(tmp_path, "gt.json", [_gt("b.jpg", []), record])
    pred = _write(tmp_path, "pred.json", [_pred("a.jpg", [_vertical(100)]), _pred("b.jpg", [])])
    with pytest.raises(ValueError) as error:
        evaluate(pred, gt)
    assert str(error.value) == f"{gt}:2: {reason}"


def test_a_frame_labelled_twice_is_a_ground_truth_error(tmp_path):
    gt = _write(tmp_path, "gt.json", [_gt("a.jpg", []), _gt("a.jpg", [_vertical(5)])])
    pred = _write(tmp_path, "pred.json", [_pred("a.jpg", [])])
    with pytest.raises(ValueError,
                       match=r"gt.json:2: frame a.jpg is labelled twice \(first at line 1\)"):
        evaluate(pred, gt)
