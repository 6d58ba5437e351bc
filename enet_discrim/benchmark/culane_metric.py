"""Speed of our CULane metric (`enet_discrim.evaluation.culane`) on CULane-like frames.

    python -m enet_discrim.benchmark.culane_metric [--frames 1000] [--json]

Writes `frames` frames' label and prediction files in CULane's layout: 4 labelled lanes of a
point every 10 rows from the frame's bottom up (about 30 points each, like the official labels),
and 3 to 5 predicted ones near them. Times `evaluate` on them in one process and in one process
per CPU; reports milliseconds per 1,000 frames and the time the 34,680 test frames would take.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from enet_discrim.evaluation import culane
from enet_discrim.formats import culane as culane_format

#: Frames of CULane's test set (its nine categories together).
TEST_FRAMES = 34680


def _lane(rng, bottom_x, top_row):
    rows = np.arange(culane_format.FRAME_HEIGHT, top_row - 1, -culane_format.ROW_STEP)
    vanish = rng.normal(culane_format.FRAME_WIDTH / 2, 40)
    t = (rows - 250.0) / (culane_format.FRAME_HEIGHT - 250.0)
    xs = vanish + (bottom_x - vanish) * t + rng.normal(0, 1e-3) * (rows - 590.0) ** 2
    return list(zip(xs, rows))


def write_frames(root, frames, seed=0):
    """Label files under `root/labels`, predictions under `root/predictions`, `root/list.txt`."""
    rng = np.random.default_rng(seed)
    names = []
    for index in range(frames):
        name = f"driver/clip.MP4/{index:05d}.jpg"
        labels = [_lane(rng, x, int(rng.integers(270, 330)))
                  for x in (-100.0, 550.0, 1100.0, 1750.0) + rng.normal(0, 30, 4)]
        predictions = [[(x + rng.normal(0, 12), y) for x, y in lane[:int(rng.integers(15, 32))]]
                       for lane in labels if rng.random() < 0.9]
        predictions += [_lane(rng, rng.uniform(0, 1640), 300)
                        for _ in range(int(rng.poisson(0.3)))]
        for folder, lanes in (("labels", labels), ("predictions", predictions)):
            path = os.path.join(root, folder, culane_format.lanes_path(name))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as stream:
                stream.write(culane_format.format_lanes(lanes))
        names.append(f"/{name}\n")
    list_path = os.path.join(root, "list.txt")
    with open(list_path, "w") as stream:
        stream.writelines(names)
    return os.path.join(root, "labels"), os.path.join(root, "predictions"), list_path


def run(frames=1000, seed=0):
    """{"frames", "ms_per_1000_frames": {"1_process", "all_cpus"}, "cpus",
    "test_set_minutes": {"1_process", "all_cpus"}, "f1"}."""
    with tempfile.TemporaryDirectory() as scratch:
        labels, predictions, list_path = write_frames(scratch, frames, seed)
        timings, result = {}, None
        for name, workers in (("1_process", 1), ("all_cpus", None)):
            start = time.perf_counter()
            result = culane.evaluate(labels, predictions, list_path, workers=workers)
            timings[name] = time.perf_counter() - start
    per_1000 = {name: 1e6 * seconds / frames for name, seconds in timings.items()}
    return {"frames": frames, "cpus": os.cpu_count(), "ms_per_1000_frames": per_1000,
            "test_set_minutes": {name: ms * TEST_FRAMES / 1000 / 60e3
                                 for name, ms in per_1000.items()},
            "f1": result["f1"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.frames)
    if args.json:
        print(json.dumps(result))
    else:
        for name, ms in result["ms_per_1000_frames"].items():
            print(f"{name}: {ms / 1000:.1f} s per 1,000 frames; the test set's {TEST_FRAMES} "
                  f"frames in {result['test_set_minutes'][name]:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
