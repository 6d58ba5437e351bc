"""A CULane folder, end to end with the commands as the README writes them: convert, train a few
steps, predict in CULane's layout, score with CULane's metric."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from enet_discrim.formats import culane as culane_format

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A tenth of CULane's frame size.
FRAME_HEIGHT, FRAME_WIDTH = 59, 164


def _make_culane_folder(root, count=6, seed=0):
    """Frames of a grey road with two to three white lines, their `.lines.txt` and two lists:
    list/train_gt.txt (the first count - 2 frames) and list/test.txt (the last 2)."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        frame = f"/driver_1/clip.MP4/{index * 30:05d}.jpg"
        image = np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), 90, np.uint8)
        lanes = []
        for bottom in rng.choice(np.arange(10, FRAME_WIDTH - 10, 40), int(rng.integers(2, 4)),
                                 replace=False):
            points = [(float(bottom + (FRAME_WIDTH / 2 - bottom) * (FRAME_HEIGHT - y) / 40), y)
                      for y in range(FRAME_HEIGHT, 19, -culane_format.ROW_STEP)]
            cv2.polylines(image, [np.round(points).astype(np.int32)], False, (230, 230, 230), 2)
            lanes.append(points)
        path = root / frame.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)
        (root / culane_format.lanes_path(frame.lstrip("/"))).write_text(
            culane_format.format_lanes(lanes))
        frames.append((frame, len(lanes)))
    (root / "list").mkdir()
    (root / "list" / "train_gt.txt").write_text(
        "".join(f"{frame} /laneseg{frame[:-4]}.png 1 1 1 0\n" for frame, _ in frames[:-2]))
    (root / "list" / "test.txt").write_text("".join(f"{frame}\n" for frame, _ in frames[-2:]))
    return [frame for frame, _ in frames[-2:]], sum(lanes for _, lanes in frames[-2:])


def _run(*command):
    environment = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True, cwd=REPO,
                          env=environment, timeout=600)
    assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.slow
def test_a_culane_folder_converts_trains_predicts_and_scores(tmp_path):
    # training.py converts the raw root's list/train_gt.txt itself (`python -m
    # enet_discrim.data.culane` is the same converter: tests/test_data_culane.py runs its command).
    root = tmp_path / "culane"
    test_frames, test_lanes = _make_culane_folder(root)
    model, results = tmp_path / "model", tmp_path / "results"
    _run("training.py", f"--srcdir={root}", f"--outdir={model}", f"--logdir={tmp_path / 'log'}",
         "--dataset=culane", "--height=32", "--width=64", "--batch_size=2", "--epochs=1",
         "--steps_per_epoch=2")
    info = json.load(open(root / "tfrecords" / "dataset_info.json"))
    assert info["dataset"] == "culane" and sum(info["counts"].values()) == 4
    assert json.load(open(model / "config.json"))["dataset"] == "culane"
    _run("inference.py", f"--modeldir={model}", f"--indir={root}", "--culane_list=list/test.txt",
         f"--outdir={results}", "--save=")
    for frame in test_frames:  # every frame of the list has its lane file, in the frames' layout
        assert (results / "culane_results" / culane_format.lanes_path(frame.lstrip("/"))).is_file()

    output = _run("-m", "enet_discrim.evaluation.culane", "--annotations", str(root),
                  "--predictions", str(results / "culane_results"), "--list",
                  str(root / "list" / "test.txt"), "--json")
    scores = json.loads(output.strip().splitlines()[-1])
    assert scores["frames"] == 2
    assert scores["tp"] + scores["fn"] == test_lanes  # every labelled lane is counted once
    assert 0.0 <= scores["f1"] <= 1.0
