"""Statistics of TuSimple lane labels: the figures a synthetic generator has to match.

A label file holds one JSON object per line, `{"raw_file": str, "lanes": [[x, ...], ...],
"h_samples": [y, ...]}`: each lane gives one x per row of `h_samples` (rows ascending, i.e. top
of the image first), negative (TuSimple writes -2) where the lane is not labelled. As in the
official benchmark, any x < 0 counts as absent. A lane is *labelled* when it has at least one
point; lanes without a point (label_data_0313.json has hundreds) are counted apart and otherwise
left out.

Per set of files:

- frames, and how many frames have 0, 1, 2, ... labelled lanes;
- each lane's top row (smallest labelled y), bottom row (largest labelled y) and x at its bottom
  row;
- neighbour spacing: a frame's lanes are put in left-to-right order, two lanes compared by x at
  the lowest row (largest y) where both are labelled; neighbours are measured at that same row,
  spacing = right x - left x. Pairs without a common labelled row are counted, not measured;
- ego lane: in frames where one neighbour pair straddles the image centre (left x < centre <=
  right x at the pair's lowest common row), the x of that left and that right lane there;
- curvature of lanes with at least 10 points: the quadratic coefficient a of `numpy.polyfit(y,
  x, 2)` (x = a y^2 + b y + c, px / px^2), and the *bend*: the largest horizontal distance in px
  of a labelled point from the straight chord between the lane's first and last point (0 for a
  straight lane; the figure to read, the coefficient depends on where the lane lies);
- gaps: absent points strictly between a lane's first and last labelled point (e.g. where a car
  hides the marking): the share of lanes with any, and their share of all rows inside the lanes'
  extents;
- the `h_samples` grids, (first, last, step, count), and how many frames use each.

Quantiles are numpy's (linear interpolation), by default at 5, 25, 50, 75 and 95 %.

    python -m enet_discrim.data.label_stats A.json [B.json ...] [--compare C.json ...]
        [--names NAME ...] [--json]

prints one markdown-style table, a row per statistic and a column per set (set 1: the positional
files, set 2: those after `--compare`), or with `--json` one object `{"sets": [{"name", "files",
"statistics"}, ...]}`. Errors are printed as one line `error: MESSAGE` on stderr, exit code 2.
"""

import argparse
import functools
import json
import sys

import numpy as np

from enet_discrim.cli import support
from enet_discrim.formats import tusimple as tusimple_format

#: Quantile levels in percent.
QUANTILES = (5, 25, 50, 75, 95)
#: Image centre column of a 1280-pixel-wide TuSimple frame: the ego lane straddles it.
CENTRE_X = tusimple_format.FRAME_WIDTH // 2
#: Fewest labelled points a lane needs for the curvature figures: a quadratic through a few
#: points close together says more about the annotator's clicks than about the road.
MIN_CURVATURE_POINTS = 10


def validate_record(record, where):
    """Check that `record` is one well-formed label frame (`formats.tusimple.check_label`).

    Args:
        record: one decoded JSON line.
        where: the place to name in the error, e.g. "label.json:12".

    Raises:
        ValueError: `WHERE: reason`.
    """
    try:
        tusimple_format.check_label(record)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def read_label_files(paths):
    """The frames of TuSimple label files (`formats.tusimple.read_labels`).

    Args:
        paths: label files (JSON lines).

    Returns:
        list of record dicts, in file order.

    Raises:
        ValueError: `FILE: ...` for a file that cannot be read, `FILE:LINE: reason` for a line
            that is not JSON or not a valid frame, `FILE: no frames` for a file without one.
    """
    records = []
    for path in paths:
        lines = tusimple_format.read_labels(path)
        if not lines:
            raise ValueError(f"{path}: no frames")
        records += [record for _, record in lines]
    return records


def _summary(values, quantiles):
    """{"count": N, "p5": ..., ...}: quantiles of `values` (None for each when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    summary = {"count": int(values.size)}
    levels = np.quantile(values, np.asarray(quantiles) / 100.0) if values.size else [None] * len(quantiles)
    for level, value in zip(quantiles, levels):
        summary[f"p{level:g}"] = None if value is None else float(value)
    return summary


def _plain(value):
    """An int for an integral number (JSON labels give ints or floats), else the float."""
    return int(value) if float(value).is_integer() else float(value)


def _grid(h_samples):
    """(first, last, step, count) of a frame's rows; step None when the rows are not evenly spaced."""
    steps = {b - a for a, b in zip(h_samples, h_samples[1:])}
    step = _plain(steps.pop()) if len(steps) == 1 else None
    return _plain(h_samples[0]), _plain(h_samples[-1]), step, len(h_samples)


def _left_of(lane_a, lane_b):
    """-1 / 0 / 1 as lane_a lies left of / level with / right of lane_b: by x at their lowest
    common labelled row, or, without one, by x at each lane's own bottom row."""
    common = np.flatnonzero(lane_a["present"] & lane_b["present"])
    if common.size:
        row = common[-1]
        difference = lane_a["xs"][row] - lane_b["xs"][row]
    else:
        difference = lane_a["bottom_x"] - lane_b["bottom_x"]
    return int(np.sign(difference))


def label_statistics(records, quantiles=QUANTILES, centre_x=CENTRE_X):
    """Statistics of a set of TuSimple label frames (see the module docstring for definitions).

    Args:
        records: iterable of frame dicts {"raw_file": str, "lanes": [[x] * R, ...], "h_samples":
            [y] * R}, rows ascending, x < 0 where absent (checked with `validate_record`).
        quantiles: quantile levels in percent.
        centre_x: image centre column for the ego lane (640 for 1280-wide frames).

    Returns:
        dict (JSON-serialisable):
            frames: int; lanes: int (labelled lanes); empty_lanes: int (lanes with no point);
            lanes_per_frame: list, item k = frames with k labelled lanes (k = 0 .. max);
            quantile_levels: list of the levels;
            lane_top_y, lane_bottom_y, lane_bottom_x, neighbour_spacing, neighbour_spacing_y,
            ego_left_x, ego_right_x, curvature_quadratic, curvature_bend_px: each
                {"count": N, "p5": float or None, ...};
            neighbour_pairs_without_common_row: int;
            gaps: {"lanes_with_gap", "lane_share", "gap_points", "extent_points", "point_share"}
                (shares None without lanes);
            h_samples_grids: list of {"first", "last", "step", "count", "frames"}, most used first.

    Raises:
        ValueError: `record N: reason` for an invalid frame (N from 1), or "no frames".
    """
    frames = 0
    empty_lanes = 0
    lanes_per_frame = []
    top_y, bottom_y, bottom_x = [], [], []
    spacing, spacing_y, pairs_without_common_row = [], [], 0
    ego_left_x, ego_right_x = [], []
    quadratic, bend = [], []
    lanes_with_gap = gap_points = extent_points = 0
    grids = {}
    for index, record in enumerate(records, start=1):
        validate_record(record, f"record {index}")
        frames += 1
        ys = np.asarray(record["h_samples"], dtype=np.float64)
        grid = _grid(record["h_samples"])
        grids[grid] = grids.get(grid, 0) + 1
        lanes = []
        for lane in record["lanes"]:
            xs = np.asarray(lane, dtype=np.float64)
            present = xs >= 0
            rows = np.flatnonzero(present)
            if not rows.size:
                empty_lanes += 1
                continue
            first, last = rows[0], rows[-1]
            lanes.append({"xs": xs, "present": present, "bottom_x": xs[last]})
            top_y.append(ys[first])
            bottom_y.append(ys[last])
            bottom_x.append(xs[last])
            gaps = int(last - first + 1 - rows.size)
            lanes_with_gap += gaps > 0
            gap_points += gaps
            extent_points += last - first + 1
            if rows.size >= MIN_CURVATURE_POINTS:
                lane_ys, lane_xs = ys[rows], xs[rows]
                quadratic.append(np.polyfit(lane_ys, lane_xs, 2)[0])
                chord = lane_xs[0] + (lane_xs[-1] - lane_xs[0]) * (lane_ys - lane_ys[0]) / (lane_ys[-1] - lane_ys[0])
                bend.append(np.max(np.abs(lane_xs - chord)))
        while len(lanes_per_frame) <= len(lanes):
            lanes_per_frame.append(0)
        lanes_per_frame[len(lanes)] += 1
        lanes.sort(key=functools.cmp_to_key(_left_of))
        ego = None  # (row, left x, right x) of the pair around the centre with the lowest common row
        for left, right in zip(lanes, lanes[1:]):
            common = np.flatnonzero(left["present"] & right["present"])
            if not common.size:
                pairs_without_common_row += 1
                continue
            row = common[-1]
            left_x, right_x = left["xs"][row], right["xs"][row]
            spacing.append(right_x - left_x)
            spacing_y.append(ys[row])
            if left_x < centre_x <= right_x and (ego is None or row > ego[0]):
                ego = (row, left_x, right_x)
        if ego is not None:
            ego_left_x.append(ego[1])
            ego_right_x.append(ego[2])
    if not frames:
        raise ValueError("no frames")
    lanes_count = len(top_y)
    return {
        "frames": frames,
        "lanes": lanes_count,
        "empty_lanes": empty_lanes,
        "lanes_per_frame": lanes_per_frame,
        "quantile_levels": list(quantiles),
        "lane_top_y": _summary(top_y, quantiles),
        "lane_bottom_y": _summary(bottom_y, quantiles),
        "lane_bottom_x": _summary(bottom_x, quantiles),
        "neighbour_spacing": _summary(spacing, quantiles),
        "neighbour_spacing_y": _summary(spacing_y, quantiles),
        "neighbour_pairs_without_common_row": pairs_without_common_row,
        "ego_left_x": _summary(ego_left_x, quantiles),
        "ego_right_x": _summary(ego_right_x, quantiles),
        "curvature_quadratic": _summary(quadratic, quantiles),
        "curvature_bend_px": _summary(bend, quantiles),
        "gaps": {
            "lanes_with_gap": int(lanes_with_gap),
            "lane_share": lanes_with_gap / lanes_count if lanes_count else None,
            "gap_points": int(gap_points),
            "extent_points": int(extent_points),
            "point_share": gap_points / extent_points if extent_points else None,
        },
        "h_samples_grids": [
            {"first": first, "last": last, "step": step, "count": count, "frames": used}
            for (first, last, step, count), used in sorted(grids.items(), key=lambda item: -item[1])
        ],
    }


def _number(value):
    """Table text of a number: an integer as such, a small one in e notation, else 1 decimal."""
    if value is None:
        return "-"
    if float(value).is_integer():
        return str(int(value))
    if abs(value) < 1e-12:  # a straight lane's quadratic coefficient, up to rounding
        return "0"
    if abs(value) < 0.01:
        return f"{value:.1e}"
    return f"{value:.1f}"


def _count_share(count, total):
    return f"{count} ({100.0 * count / total:.1f} %)" if total else str(count)


def _quantile_cell(summary, levels):
    return " / ".join(_number(summary[f"p{level:g}"]) for level in levels)


def _grid_name(first, last, step, count):
    spacing = f"step {_number(step)}" if step is not None else "uneven steps"
    return f"h_samples {_number(first)}..{_number(last)}, {spacing}, {count} rows"


def format_table(stats_list, names):
    """One markdown-style pipe table: a row per statistic, a column per set.

    Args:
        stats_list: dicts from `label_statistics`, one per set (same quantile levels).
        names: column titles, one per set.

    Returns:
        the table as text, columns padded to equal widths, no trailing newline.
    """
    if len(stats_list) != len(names):
        raise ValueError(f"{len(names)} names for {len(stats_list)} sets")
    levels = stats_list[0]["quantile_levels"]
    rows = [
        ("frames", [str(stats["frames"]) for stats in stats_list]),
        ("labelled lanes", [str(stats["lanes"]) for stats in stats_list]),
        ("lanes without a labelled point", [str(stats["empty_lanes"]) for stats in stats_list]),
    ]
    most_lanes = max(len(stats["lanes_per_frame"]) for stats in stats_list)
    for count in range(most_lanes):
        rows.append((f"frames with {count} lane{'' if count == 1 else 's'}", [
            _count_share(stats["lanes_per_frame"][count] if count < len(stats["lanes_per_frame"]) else 0,
                         stats["frames"]) for stats in stats_list]))

    def quantile_row(title, key):
        return f"{title}, quantiles", [_quantile_cell(stats[key], levels) for stats in stats_list]

    rows += [
        ("quantile levels, %", [" / ".join(f"{level:g}" for level in levels)] * len(stats_list)),
        quantile_row("lane top y (first labelled row)", "lane_top_y"),
        quantile_row("lane bottom y (last labelled row)", "lane_bottom_y"),
        quantile_row("lane x at its bottom row", "lane_bottom_x"),
        ("neighbour pairs measured", [str(stats["neighbour_spacing"]["count"]) for stats in stats_list]),
        ("neighbour pairs without a common row",
         [str(stats["neighbour_pairs_without_common_row"]) for stats in stats_list]),
        quantile_row("neighbour spacing px", "neighbour_spacing"),
        quantile_row("row y of the neighbour spacing", "neighbour_spacing_y"),
        ("frames with an ego lane", [_count_share(stats["ego_left_x"]["count"], stats["frames"])
                                     for stats in stats_list]),
        quantile_row("ego lane left x", "ego_left_x"),
        quantile_row("ego lane right x", "ego_right_x"),
        (f"lanes with >= {MIN_CURVATURE_POINTS} points (curvature)",
         [str(stats["curvature_bend_px"]["count"]) for stats in stats_list]),
        quantile_row("bend px (off the chord)", "curvature_bend_px"),
        quantile_row("quadratic coefficient px/px^2", "curvature_quadratic"),
    ]
    rows.append(("lanes with a gap", [_count_share(stats["gaps"]["lanes_with_gap"], stats["lanes"])
                                      for stats in stats_list]))
    rows.append(("gap points of the rows inside lanes", [
        f"{stats['gaps']['gap_points']} of {stats['gaps']['extent_points']}"
        + (f" ({100.0 * stats['gaps']['point_share']:.1f} %)" if stats["gaps"]["extent_points"] else "")
        for stats in stats_list]))
    grids = []  # in order of first appearance, most used first within each set
    for stats in stats_list:
        for grid in stats["h_samples_grids"]:
            key = (grid["first"], grid["last"], grid["step"], grid["count"])
            if key not in grids:
                grids.append(key)
    for key in grids:
        cells = []
        for stats in stats_list:
            used = sum(grid["frames"] for grid in stats["h_samples_grids"]
                       if (grid["first"], grid["last"], grid["step"], grid["count"]) == key)
            cells.append(_count_share(used, stats["frames"]))
        rows.append((f"frames on {_grid_name(*key)}", cells))
    header = ["statistic", *names]
    widths = [max(len(row[0]) for row in rows + [(header[0], [])])]
    for column, name in enumerate(names):
        widths.append(max([len(name)] + [len(cells[column]) for _, cells in rows]))
    lines = ["| " + " | ".join(text.ljust(width) for text, width in zip(header, widths)) + " |",
             "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (width + 1) + ":" for width in widths[1:]]) + "|"]
    for title, cells in rows:
        lines.append("| " + title.ljust(widths[0]) + " | "
                     + " | ".join(cell.rjust(width) for cell, width in zip(cells, widths[1:])) + " |")
    return "\n".join(lines)


def main(argv=None):
    """Command line: print the statistics of one set of label files, or of two side by side."""
    parser = argparse.ArgumentParser(
        prog="python -m enet_discrim.data.label_stats",
        description="Statistics of TuSimple lane label files (JSON lines), as one table.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="label files of set 1")
    parser.add_argument("--compare", nargs="+", metavar="FILE",
                        help="label files of set 2, shown in a second column")
    parser.add_argument("--names", nargs="+", metavar="NAME",
                        help="column titles, one per set (default: set 1, set 2)")
    parser.add_argument("--json", action="store_true",
                        help='print {"sets": [{"name", "files", "statistics"}, ...]} as one JSON object')
    args = parser.parse_args(argv)
    file_sets = [args.files] + ([args.compare] if args.compare else [])
    names = args.names or [f"set {number}" for number in range(1, len(file_sets) + 1)]
    if len(names) != len(file_sets):
        parser.error(f"--names needs {len(file_sets)} names, got {len(names)}")
    try:
        stats_list = [label_statistics(read_label_files(paths)) for paths in file_sets]
    except (OSError, ValueError) as error:
        return support.report_error(error)
    if args.json:
        print(json.dumps({"sets": [{"name": name, "files": paths, "statistics": stats}
                                   for name, paths, stats in zip(names, file_sets, stats_list)]}))
    else:
        for name, paths in zip(names, file_sets):
            print(f"{name}: {', '.join(paths)}")
        print()
        print(format_table(stats_list, names))
    return 0


if __name__ == "__main__":
    sys.exit(support.run_main(main))
