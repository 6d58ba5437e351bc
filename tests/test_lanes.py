"""Tests for enet_discrim.lanes: lane fitting in frame coordinates and TuSimple lines."""
import json

import numpy as np
import pytest

from enet_discrim.lanes import (LANE_MODELS, TUSIMPLE_H_SAMPLES, fit_lanes,
                                read_tusimple_tasks, tusimple_line)

# Network map 256x512 -> frame 720x1280: scale 2.8125 rows, 2.5 columns.
MAP_SHAPE = (256, 512)


def _frame_x(map_col):
    return (map_col + 0.5) * 2.5 - 0.5


def _map_row(frame_y):
    return (frame_y + 0.5) / 2.8125 - 0.5


@pytest.mark.parametrize("lane_model", LANE_MODELS)
def test_vertical_lane_scaled_by_pixel_centres_and_missing_above_its_pixels(lane_model):
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    instance_map[100:, 99:102] = 1  # mean column 100 -> frame x 250.75
    (lane,) = fit_lanes(instance_map, 720, 1280, lane_model=lane_model)
    # Pixels cover frame y from 100 * 2.8125 - 0.5 = 280.75 down to the bottom: rows >= 290.
    expected = [-2 if y < 290 else 251 for y in TUSIMPLE_H_SAMPLES]
    assert lane == expected


@pytest.mark.parametrize("lane_model", LANE_MODELS)
def test_slanted_lane_follows_the_line(lane_model):
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    for row in range(50, 256):
        instance_map[row, 400 - row - 1:400 - row + 2] = 1  # centre column 400 - row
    (lane,) = fit_lanes(instance_map, 720, 1280, lane_model=lane_model)
    for y, x in zip(TUSIMPLE_H_SAMPLES, lane):
        if y < 50 * 2.8125:
            assert x == -2
        else:
            assert x == round(_frame_x(400 - _map_row(y)))


@pytest.mark.parametrize("lane_model", LANE_MODELS)
def test_short_lane_is_fitted_with_a_straight_line(lane_model):
    # 15 rows on the parabola col = 100 + (row - 107)^2: a line fit is flat at the mean column
    # 100 + 280 / 15 (frame x 297.42); a quadratic would follow the bend.
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    for row in range(100, 115):
        instance_map[row, 100 + (row - 107) ** 2] = 1
    (lane,) = fit_lanes(instance_map, 720, 1280, min_points=10, lane_model=lane_model)
    # Extent of the pixels in the frame: 280.75 .. 322.94 -> rows 290, 300, 310, 320.
    expected = [297 if y in (290, 300, 310, 320) else -2 for y in TUSIMPLE_H_SAMPLES]
    assert lane == expected


def test_curved_long_lane_uses_the_quadratic():
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    rows = np.arange(60, 256)
    cols = np.rint(300 + 0.004 * (rows - 60) ** 2).astype(int)
    instance_map[rows, cols] = 1
    (lane,) = fit_lanes(instance_map, 720, 1280)
    for y, x in zip(TUSIMPLE_H_SAMPLES, lane):
        if y > 200:
            map_row = _map_row(y)
            assert abs(x - _frame_x(300 + 0.004 * (map_row - 60) ** 2)) <= 2


def _road_x(y, slope, horizon=300.0, bend=2000.0):
    """Frame x of a lane on a curved flat road: x = 640 + slope t + bend / t, t = y - horizon."""
    t = y - horizon
    return 640 + slope * t + bend / t


def test_hyperbola_follows_a_road_curve_that_a_quadratic_misses():
    # Two lanes of one road bending right near the horizon (frame row 300), seen from frame row 320
    # down; 3 map pixels wide.
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    slopes = (-1.2, 1.2)
    for lane_id, slope in enumerate(slopes, start=1):
        for row in range(int(_map_row(320)) + 1, MAP_SHAPE[0]):
            col = int(round((_road_x((row + 0.5) * 2.8125 - 0.5, slope) + 0.5) / 2.5 - 0.5))
            instance_map[row, col - 1:col + 2] = lane_id
    worst, reported = {}, {}
    for lane_model in LANE_MODELS:
        fitted = fit_lanes(instance_map, 720, 1280, lane_model=lane_model)
        assert len(fitted) == 2
        errors = [abs(x - _road_x(y, slope)) for lane, slope in zip(fitted, slopes)
                  for y, x in zip(TUSIMPLE_H_SAMPLES, lane) if x >= 0]
        reported[lane_model], worst[lane_model] = len(errors), max(errors)
    assert reported["hyperbola"] == 2 * 39  # rows 330 .. 710 of both lanes
    assert worst["hyperbola"] <= 1.0
    # The quadratic misses near the horizon: by most of TuSimple's 20-pixel tolerance, or so far
    # that those rows are dropped as stray points.
    assert worst["polynomial"] > 15.0 or reported["polynomial"] < 2 * 39


def test_stray_pixels_of_another_line_neither_bend_nor_extend_the_lane():
    """Clustering can give a lane a few pixels of another line far below it; they are left out."""
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    for row in range(50, 120):
        instance_map[row, 400 - row - 1:400 - row + 2] = 1  # centre column 400 - row
    instance_map[130:134, 100:104] = 1  # a blob 10 rows below the lane, 170 columns off it
    (lane,) = fit_lanes(instance_map, 720, 1280, bridge_gaps=True)
    for y, x in zip(TUSIMPLE_H_SAMPLES, lane):
        map_row = int((y + 0.5) // 2.8125)
        if 50 <= map_row < 120:
            assert abs(x - _frame_x(400 - _map_row(y))) <= 1, y
        else:
            assert x == -2, y


def test_unknown_lane_model_is_refused():
    with pytest.raises(ValueError, match="lane_model must be one of polynomial, hyperbola, got 'cubic'"):
        fit_lanes(np.zeros(MAP_SHAPE, np.int32), 720, 1280, lane_model="cubic")


def test_lanes_ordered_left_to_right_and_short_instances_dropped():
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    instance_map[80:, 400] = 1   # right lane, id 1
    instance_map[80:, 50] = 2    # left lane, id 2
    instance_map[200:205, 250] = 3  # 5 rows only: dropped
    lanes = fit_lanes(instance_map, 720, 1280, min_points=10)
    assert len(lanes) == 2
    assert lanes[0][-1] == round(_frame_x(50)) and lanes[1][-1] == round(_frame_x(400))


def test_rows_in_a_gap_of_the_lane_are_missing_and_the_fit_spans_it():
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    for row in range(50, 256):
        if not 120 <= row < 170:  # hidden behind a vehicle, say
            instance_map[row, 400 - row - 1:400 - row + 2] = 1
    (lane,) = fit_lanes(instance_map, 720, 1280)
    for y, x in zip(TUSIMPLE_H_SAMPLES, lane):
        map_row = int((y + 0.5) // 2.8125)
        if map_row < 50 or 120 <= map_row < 170:
            assert x == -2, y
        else:
            assert x == round(_frame_x(400 - _map_row(y))), y
    assert sum(x == -2 for x in lane) == 14  # frame rows 340-470: map rows 120-169


@pytest.mark.parametrize("lane_model", LANE_MODELS)
def test_bridge_gaps_reports_the_lane_through_its_gap(lane_model):
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    for row in range(50, 256):
        if not 120 <= row < 170:
            instance_map[row, 400 - row - 1:400 - row + 2] = 1
    (lane,) = fit_lanes(instance_map, 720, 1280, bridge_gaps=True, lane_model=lane_model)
    for y, x in zip(TUSIMPLE_H_SAMPLES, lane):
        if int((y + 0.5) // 2.8125) < 50:
            assert x == -2, y
        else:  # the gap's rows too, on the line
            assert abs(x - _frame_x(400 - _map_row(y))) <= 1, y


def test_bridge_gaps_does_not_extend_a_lane_past_its_ends():
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    instance_map[100:200, 99:102] = 1  # frame rows 280.75 .. 562
    (lane,) = fit_lanes(instance_map, 720, 1280, bridge_gaps=True)
    assert lane == [251 if 290 <= y <= 560 else -2 for y in TUSIMPLE_H_SAMPLES]


def test_extend_bottom_reports_the_rows_just_below_the_lane():
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    instance_map[100:200, 99:102] = 1  # last map row 199: frame rows up to 561.9
    (lane,) = fit_lanes(instance_map, 720, 1280, extend_bottom=10)
    # Map rows 200..209 are added: frame rows up to 210 * 2.8125 - 0.5 = 590.1 -> 570, 580, 590.
    assert lane == [251 if 290 <= y <= 590 else -2 for y in TUSIMPLE_H_SAMPLES]
    with pytest.raises(ValueError, match="extend_bottom"):
        fit_lanes(instance_map, 720, 1280, extend_bottom=-1)


def test_max_lanes_keeps_the_lanes_nearest_the_frame_centre_at_its_bottom():
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    # Six vertical lanes; frame x = (col + 0.5) * 2.5 - 0.5, the frame centre is 639.5.
    columns = (20, 120, 200, 300, 380, 490)  # frame x 51, 301, 501, 751, 951, 1226
    for lane_id, col in enumerate(columns, start=1):
        instance_map[100:, col - 1:col + 2] = lane_id
    everything = fit_lanes(instance_map, 720, 1280)
    kept = fit_lanes(instance_map, 720, 1280, max_lanes=4)
    bottom = [lane[-1] for lane in everything]
    assert bottom == [round(_frame_x(col)) for col in columns]
    # |x - 639.5|: 588, 338, 138, 112, 312, 587 -> the middle four, still left to right.
    assert kept == everything[1:5]
    assert fit_lanes(instance_map, 720, 1280, max_lanes=10) == everything
    with pytest.raises(ValueError, match="max_lanes"):
        fit_lanes(instance_map, 720, 1280, max_lanes=0)


def test_rows_cut_by_the_frame_side_do_not_pull_the_lane_inwards():
    # A 13-pixel-wide straight lane, centre column 470 + (row - 200), leaving the map on the right.
    # Where the last column cuts it only its inner pixels are there (the lower 21 of its 56 rows);
    # their mean would bend the fit inwards (7 px at frame row 680) and keep the lane in the frame
    # a row after its centre has left it.
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    for row in range(200, 256):
        centre = 470 + (row - 200)
        instance_map[row, centre - 6:min(centre + 7, MAP_SHAPE[1])] = 1
    (lane,) = fit_lanes(instance_map, 720, 1280)
    exits = 0
    for y, x in zip(TUSIMPLE_H_SAMPLES, lane):
        if y < 200 * 2.8125:
            assert x == -2
            continue
        true_x = _frame_x(470 + _map_row(y) - 200)
        if true_x >= 1280:
            assert x == -2, f"row {y}: centre at {true_x:.1f}, outside the frame"
            exits += 1
        else:
            assert abs(x - true_x) <= 1, f"row {y}: {x} for {true_x:.1f}"
    assert exits == 3  # rows 690, 700, 710


def test_top_trim_drops_sample_rows_near_the_lanes_upper_edge():
    # Pixels from map row 103: its upper edge is at map position 102.5, and frame row 290 lies at
    # (290 + 0.5) / 2.8125 - 0.5 = 102.79, inside that first row.
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    instance_map[103:, 99:102] = 1
    (untrimmed,) = fit_lanes(instance_map, 720, 1280)
    (slightly,) = fit_lanes(instance_map, 720, 1280, top_trim=0.25)
    (trimmed,) = fit_lanes(instance_map, 720, 1280, top_trim=0.5)
    first = TUSIMPLE_H_SAMPLES.index(290)
    assert untrimmed[first - 1] == -2 and untrimmed[first] == 251
    assert slightly == untrimmed
    assert trimmed[first] == -2 and trimmed[first + 1:] == untrimmed[first + 1:]
    with pytest.raises(ValueError, match="top_trim"):
        fit_lanes(instance_map, 720, 1280, top_trim=-1)


def test_points_outside_the_frame_are_missing():
    instance_map = np.zeros(MAP_SHAPE, np.int32)
    for row in range(0, 256):
        instance_map[row, min(511, 300 + row)] = 1  # runs into the right edge
    (lane,) = fit_lanes(instance_map, 720, 1280)
    xs = np.array(lane)
    assert np.all(xs[xs != -2] < 1280)
    assert lane[-1] == -2 and lane[0] != -2


def test_empty_map_gives_no_lanes():
    assert fit_lanes(np.zeros(MAP_SHAPE, np.int32), 720, 1280) == []


def test_tusimple_line_round_trip_and_wrong_length():
    h_samples = [160, 170, 180]
    line = tusimple_line("clips/a/20.jpg", [[1, -2, 3]], h_samples, 12.5)
    assert "\n" not in line
    assert json.loads(line) == {"raw_file": "clips/a/20.jpg", "lanes": [[1, -2, 3]],
                                "h_samples": [160, 170, 180], "run_time": 12.5}
    with pytest.raises(ValueError, match=r"clips/a/20.jpg: lane 0 has 2 points for 3 h_samples"):
        tusimple_line("clips/a/20.jpg", [[1, 2]], h_samples, 1.0)


def test_read_tusimple_tasks(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text('{"raw_file": "clips/a/20.jpg", "h_samples": [160, 170], "lanes": []}\n'
                    '{"raw_file": "clips/b/20.jpg", "h_samples": [240]}\n\n')
    assert read_tusimple_tasks(path) == [("clips/a/20.jpg", [160, 170]),
                                         ("clips/b/20.jpg", [240])]
    path.write_text('{"raw_file": "clips/a/20.jpg", "h_samples": [160]}\n{"raw_file": \n')
    with pytest.raises(ValueError, match=r"tasks.json:2: the task line is not valid JSON"):
        read_tusimple_tasks(path)
    path.write_text('{"raw_file": "clips/a/20.jpg"}\n')
    with pytest.raises(ValueError, match=r"tasks.json:1: missing h_samples"):
        read_tusimple_tasks(path)
