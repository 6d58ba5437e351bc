"""Tests for enet_discrim.data.label_stats on tiny hand-made TuSimple label frames."""
import json
import re

import pytest

from enet_discrim.data.label_stats import (format_table, label_statistics, main,
                                           read_label_files)

Y = list(range(100, 200, 10))  # 10 rows, y = 100 + 10 i
ABSENT = -2


def _frame(lanes, h_samples=Y, raw_file="clips/a/1.jpg"):
    return {"raw_file": raw_file, "lanes": lanes, "h_samples": h_samples}


def _lane(x_of_index, rows=range(len(Y))):
    """A lane with x = x_of_index(i) on the rows with index i in `rows`, -2 elsewhere."""
    return [x_of_index(i) if i in rows else ABSENT for i in range(len(Y))]


def _write(tmp_path, name, records):
    path = tmp_path / name
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


def test_lanes_per_frame_histogram_skips_lanes_without_a_point():
    empty = [ABSENT] * len(Y)
    stats = label_statistics([
        _frame([_lane(lambda i: 100), _lane(lambda i: 500), empty]),
        _frame([]),
        _frame([_lane(lambda i: 100), _lane(lambda i: 500)]),
    ])
    assert stats["frames"] == 3
    assert stats["lanes"] == 4
    assert stats["empty_lanes"] == 1
    assert stats["lanes_per_frame"] == [1, 0, 2]  # one frame with 0 lanes, none with 1, two with 2


def test_first_and_last_labelled_row_and_bottom_x():
    # Lane a: rows 2..7 (y 120..170), x = 300 + i; lane b: all rows (y 100..190), x = 900.
    stats = label_statistics([_frame([_lane(lambda i: 300 + i, rows=range(2, 8)),
                                      _lane(lambda i: 900)])], quantiles=(0, 50, 100))
    assert stats["lane_top_y"] == {"count": 2, "p0": 100.0, "p50": 110.0, "p100": 120.0}
    assert stats["lane_bottom_y"] == {"count": 2, "p0": 170.0, "p50": 180.0, "p100": 190.0}
    # x at each lane's bottom row: 300 + 7 = 307 and 900.
    assert stats["lane_bottom_x"] == {"count": 2, "p0": 307.0, "p50": 603.5, "p100": 900.0}


def test_gaps_count_only_absent_points_inside_a_lane():
    inner_gaps = [ABSENT, ABSENT, 5, 5, ABSENT, 5, ABSENT, ABSENT, 5, ABSENT]  # extent i 2..8: 3 gaps
    leading_and_trailing = [ABSENT, 5, 5, 5, 5, 5, 5, 5, 5, ABSENT]  # extent 8 rows, no gap
    full = [5] * len(Y)
    stats = label_statistics([_frame([inner_gaps, leading_and_trailing, full])])
    assert stats["gaps"] == {"lanes_with_gap": 1, "lane_share": pytest.approx(1 / 3),
                             "gap_points": 3, "extent_points": 7 + 8 + 10,
                             "point_share": pytest.approx(3 / 25)}


def test_neighbour_spacing_at_the_lowest_common_row_and_ego_lane():
    far_left = _lane(lambda i: 300 - 20 * i, rows=range(5))  # y 100..140, x 300 -> 220
    left = _lane(lambda i: 500 - 10 * i)  # x 500 -> 410 at y 190
    right = _lane(lambda i: 700 + 20 * i)  # x 700 -> 880 at y 190
    stats = label_statistics([_frame([right, far_left, left])], quantiles=(0, 100))
    # far_left | left meet lowest at y 140 (i 4): 460 - 220; left | right at y 190: 880 - 410.
    assert stats["neighbour_spacing"] == {"count": 2, "p0": 240.0, "p100": 470.0}
    assert stats["neighbour_spacing_y"] == {"count": 2, "p0": 140.0, "p100": 190.0}
    assert stats["neighbour_pairs_without_common_row"] == 0
    # left (410) < 640 <= right (880) at their lowest common row.
    assert stats["ego_left_x"] == {"count": 1, "p0": 410.0, "p100": 410.0}
    assert stats["ego_right_x"] == {"count": 1, "p0": 880.0, "p100": 880.0}


def test_no_ego_lane_when_all_lanes_are_left_and_disjoint_lanes_are_not_measured():
    both_left = label_statistics([_frame([_lane(lambda i: 300), _lane(lambda i: 100)])])
    assert both_left["neighbour_spacing"]["p50"] == 200.0
    assert both_left["ego_left_x"]["count"] == 0
    assert both_left["ego_left_x"]["p50"] is None
    disjoint = label_statistics([_frame([_lane(lambda i: 100, rows=range(5)),
                                         _lane(lambda i: 900, rows=range(5, 10))])])
    assert disjoint["neighbour_pairs_without_common_row"] == 1
    assert disjoint["neighbour_spacing"]["count"] == 0


def test_bend_of_a_straight_lane_is_zero():
    stats = label_statistics([_frame([_lane(lambda i: 100 + 20 * i)])])
    assert stats["curvature_bend_px"]["p50"] == pytest.approx(0.0, abs=1e-9)
    assert stats["curvature_quadratic"]["p50"] == pytest.approx(0.0, abs=1e-9)


def test_bend_and_quadratic_coefficient_of_a_parabola():
    # x = 100 + 10 i + i^2: the chord from (i 0, x 100) to (i 9, x 271) is x = 100 + 19 i, so the
    # lane is off it by i (9 - i): at most 20 px (i = 4, 5). With i = (y - 100) / 10 the y^2
    # coefficient is 1 / 100.
    stats = label_statistics([_frame([_lane(lambda i: 100 + 10 * i + i * i)])])
    assert stats["curvature_bend_px"]["p50"] == pytest.approx(20.0)
    assert stats["curvature_quadratic"]["p50"] == pytest.approx(0.01)


def test_curvature_needs_ten_points():
    stats = label_statistics([_frame([_lane(lambda i: 100 + i * i, rows=range(9))])])
    assert stats["lanes"] == 1
    assert stats["curvature_bend_px"]["count"] == 0


def test_h_samples_grids():
    stats = label_statistics([
        _frame([]), _frame([]),
        _frame([[1, 2, 3]], h_samples=[100, 150, 160]),
    ])
    assert stats["h_samples_grids"] == [
        {"first": 100, "last": 190, "step": 10, "count": 10, "frames": 2},
        {"first": 100, "last": 160, "step": None, "count": 3, "frames": 1},
    ]


def test_no_frames_is_an_error():
    with pytest.raises(ValueError, match="no frames"):
        label_statistics([])


@pytest.mark.parametrize("record, reason", [
    ({"raw_file": "a.jpg", "lanes": []}, "missing h_samples"),
    (_frame([[1, 2, 3]]), "lane 0 has 3 points for 10 h_samples"),
    (_frame([[1] * 9 + ["x"]]), "lane 0 point 9 is not a number"),
    (_frame([], h_samples=[100, "b"]), r"h_samples\[1\] is not a number"),
    (_frame([], h_samples=[110, 100]), "h_samples must be strictly increasing"),
])
def test_reader_names_file_and_line_of_an_invalid_record(tmp_path, record, reason):
    path = _write(tmp_path, "labels.json", [_frame([]), record])
    with pytest.raises(ValueError, match=f"^{re.escape(path)}:2: {reason}"):
        read_label_files([path])


def test_table_has_a_column_per_set():
    one = label_statistics([_frame([_lane(lambda i: 100)])])
    two = label_statistics([_frame([_lane(lambda i: 100)]), _frame([])])
    lines = format_table([one, two], ["real", "synthetic"]).splitlines()
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == ["statistic", "real", "synthetic"]
    frames_row = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert frames_row == ["frames", "1", "2"]


def test_command_line_compare_and_json(tmp_path, capsys):
    first = _write(tmp_path, "a.json", [_frame([_lane(lambda i: 100), _lane(lambda i: 900)])])
    second = _write(tmp_path, "b.json", [_frame([_lane(lambda i: 100)]), _frame([])])
    assert main([first, "--compare", second]) == 0
    output = capsys.readouterr().out
    assert "| set 1" in output and "| set 2" in output
    assert main([first, "--compare", second, "--names", "real", "synthetic"]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| statistic"))
    assert "real" in header and "synthetic" in header
    assert main([first, second, "--json"]) == 0
    (only_set,) = json.loads(capsys.readouterr().out)["sets"]
    assert only_set["files"] == [first, second]
    assert only_set["statistics"]["frames"] == 3
    assert only_set["statistics"]["lanes_per_frame"] == [1, 1, 1]


def test_command_line_bad_line_exits_2_naming_file_and_line(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_frame([])) + "\nnot json\n")
    assert main([str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}:2: ")
    assert error.count("\n") == 1


def test_command_line_empty_or_missing_file_exits_2(tmp_path, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    assert main([str(empty)]) == 2
    assert capsys.readouterr().err == f"error: {empty}: no frames\n"
    assert main([str(tmp_path / "nothing.json")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "nothing.json" in error
