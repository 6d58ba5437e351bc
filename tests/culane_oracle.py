"""Borderline CULane frames scored by CULane's official evaluator: the oracle of our port.

    python -m tests.culane_oracle --evaluator /tmp/culane_eval/evaluate --frames 1200 \\
        --out tests/data/culane_official_counts.jsonl [--keep 300]

Renders random frames of labelled and predicted lanes on the 1640 x 590 canvas, chosen to sit on
the metric's edges: predictions shifted or cut so that their IoU lies near 0.5, lanes of 1 and 2
points, blank lines, lanes leaving the canvas or lying wholly outside it, repeated points, extra
and missing lanes, near-equal candidates for one label (the matching's tolerance), missing
prediction files. Each frame is scored alone by the official tool (built as
`../shared/culane_evaluator/README.md` says), and written as one JSON line: the lane files' text
and the tool's `[tp, fp, fn]`. `tests/test_eval_culane.py` checks our evaluator against the
lines kept (`--keep`, the first N; every one is compared here with `--check`).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

WIDTH, HEIGHT = 1640, 590
_COUNTS = re.compile(r"tp: (\d+) fp: (\d+) fn: (\d+)")


def _number(value, rng):
    """A coordinate written as the labels write them (6 significant digits) or as a whole
    number or with a half, where rounding ties live."""
    kind = rng.integers(4)
    if kind == 0:
        return str(int(round(value)))
    if kind == 1:
        return f"{np.floor(value) + 0.5:g}"
    return f"{value:.6g}"


def _lane_text(points, rng):
    return "".join(f"{_number(x, rng)} {_number(y, rng)} " for x, y in points)


def _label_lane(rng):
    """A labelled lane: points every 10 rows from near the bottom up, straight or curved, x
    allowed beyond the frame's sides as CULane's labels have them."""
    bottom = int(rng.choice([590, 580, 550, 500, 450]))
    top = int(rng.integers(250, 360))
    ys = np.arange(bottom, top - 1, -10, dtype=np.float64)
    x_bottom = rng.uniform(-300, WIDTH + 300)
    x_vanish = rng.uniform(600, 1000)
    curvature = rng.normal(0, 0.002)
    t = (ys - 240.0) / (bottom - 240.0)
    xs = x_vanish + (x_bottom - x_vanish) * t + curvature * (ys - bottom) ** 2 * (1 - t)
    return list(zip(xs, ys))


def _perturb(points, rng):
    """A prediction of a labelled lane: shifted by about the offset that gives IoU 0.5 at 30 px
    (10 px), cut short, resampled, or thinned out to 2 points."""
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    kind = rng.integers(6)
    if kind == 0:  # shifted sideways near the threshold
        xs = xs + rng.choice([-1, 1]) * rng.uniform(7, 13)
    elif kind == 1:  # cut so that about half the length remains
        keep = max(2, int(round(len(xs) * rng.uniform(0.3, 0.7))))
        start = int(rng.integers(0, len(xs) - keep + 1))
        xs, ys = xs[start:start + keep], ys[start:start + keep]
    elif kind == 2:  # a slanted error: right at the bottom, off at the top
        xs = xs + np.linspace(0, rng.uniform(-40, 40), len(xs))
    elif kind == 3:  # two points only
        xs, ys = xs[[0, -1]], ys[[0, -1]]
    elif kind == 4:  # small noise
        xs = xs + rng.normal(0, 2, len(xs))
    else:  # every other point, shifted a little
        xs, ys = xs[::2] + rng.uniform(-6, 6), ys[::2]
    return list(zip(xs, ys))


def _odd_lane(rng):
    """A lane from the metric's corners."""
    kind = rng.integers(6)
    if kind == 0:
        return []  # a blank line
    if kind == 1:
        return [(rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT))]  # one point
    if kind == 2:  # wholly outside the canvas
        return [(-500.0 - 10 * i, 300.0 + 10 * i) for i in range(6)]
    if kind == 3:  # a repeated point (a zero-length interval of the spline)
        x, y = rng.uniform(200, 1400), rng.uniform(300, 580)
        return [(x, y), (x, y), (x + 20, y - 10), (x + 40, y - 20)]
    if kind == 4:  # a horizontal lane
        y = rng.uniform(300, 580)
        return [(x, y) for x in np.arange(100.0, 1500.0, 100.0)]
    x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)  # two points, close together
    return [(x, y), (x + rng.uniform(-3, 3), y - rng.uniform(0, 3))]


def make_case(rng):
    """One frame: (label lines, prediction lines or None for a missing file)."""
    labels = [_label_lane(rng) for _ in range(int(rng.integers(0, 6)))]
    predictions = []
    for lane in labels:
        roll = rng.random()
        if roll < 0.15:
            continue  # missed
        predictions.append(_perturb(lane, rng))
        if roll > 0.9:  # a near-equal second candidate for the same label
            predictions.append(_perturb(lane, rng))
    predictions += [_label_lane(rng) for _ in range(int(rng.poisson(0.4)))]  # extra lanes
    if rng.random() < 0.3:
        predictions.insert(int(rng.integers(0, len(predictions) + 1)), _odd_lane(rng))
    if rng.random() < 0.1:
        labels.insert(int(rng.integers(0, len(labels) + 1)), _odd_lane(rng))
    order = rng.permutation(len(predictions))
    label_lines = [_lane_text(lane, rng) for lane in labels]
    prediction_lines = [_lane_text(predictions[i], rng) for i in order]
    if rng.random() < 0.03:
        return label_lines, None
    return label_lines, prediction_lines


def _write_lines(path, lines):
    with open(path, "w") as stream:
        stream.write("".join(line + "\n" for line in lines))


def official_counts(evaluator, label_lines, prediction_lines, workdir):
    """[tp, fp, fn] of one frame by the official tool."""
    anno, pred = os.path.join(workdir, "anno"), os.path.join(workdir, "pred")
    for folder in (anno, pred):
        os.makedirs(folder, exist_ok=True)
    _write_lines(os.path.join(anno, "f.lines.txt"), label_lines)
    pred_file = os.path.join(pred, "f.lines.txt")
    if os.path.exists(pred_file):
        os.remove(pred_file)
    if prediction_lines is not None:
        _write_lines(pred_file, prediction_lines)
    list_path = os.path.join(workdir, "list.txt")
    _write_lines(list_path, ["/f.jpg"])
    output = os.path.join(workdir, "out.txt")
    subprocess.run([evaluator, "-a", anno + "/", "-d", pred + "/", "-i", anno + "/", "-l",
                    list_path, "-w", "30", "-t", "0.5", "-c", str(WIDTH), "-r", str(HEIGHT),
                    "-f", "1", "-o", output], check=True, capture_output=True)
    with open(output) as stream:
        match = _COUNTS.search(stream.read())
    return [int(value) for value in match.groups()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluator", required=True, help="the built official `evaluate`")
    parser.add_argument("--frames", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--out", required=True, help="JSON lines to write")
    parser.add_argument("--keep", type=int, default=None, help="write only the first N frames")
    parser.add_argument("--check", action="store_true",
                        help="also score every frame with our port and report differences")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    cases = []
    with tempfile.TemporaryDirectory() as workdir:
        for index in range(args.frames):
            labels, predictions = make_case(rng)
            counts = official_counts(args.evaluator, labels, predictions, workdir)
            cases.append({"case": index, "labels": labels, "predictions": predictions,
                          "counts": counts})
    if args.check:
        from enet_discrim.evaluation import culane
        from enet_discrim.formats import culane as culane_format

        differ = 0
        for case in cases:
            labels = [culane_format.parse_lane_line(line) for line in case["labels"]]
            predictions = [culane_format.parse_lane_line(line)
                           for line in case["predictions"] or []]
            ours, _ = culane.count_frame(labels, predictions)
            if [ours.tp, ours.fp, ours.fn] != case["counts"]:
                differ += 1
                print(f"case {case['case']}: official {case['counts']}, ours "
                      f"{[ours.tp, ours.fp, ours.fn]}", file=sys.stderr)
        totals = np.sum([case["counts"] for case in cases], axis=0)
        print(f"{len(cases)} frames, official tp/fp/fn {totals.tolist()}, {differ} differ")
    with open(args.out, "w") as stream:
        for case in cases[:args.keep]:
            stream.write(json.dumps(case) + "\n")


if __name__ == "__main__":
    main()
