"""Video input (issue 17 item 1): `enet_discrim.video` and `inference.py --video`."""

import errno
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from enet_discrim import atomic, batch_inference, lanes, video
from tests.test_inference import REPO, modeldir, two_lane_predictor  # noqa: F401  (fixtures)

FRAMES, CLIP_HEIGHT, CLIP_WIDTH, FPS = 12, 64, 128, 12.5


def write_clip(path, frames=FRAMES, fps=FPS, codec="mp4v"):
    """A clip whose frame i is grey level 20 * i: frames can be told apart after lossy coding."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps,
                             (CLIP_WIDTH, CLIP_HEIGHT))
    assert writer.isOpened()
    for index in range(frames):
        writer.write(np.full((CLIP_HEIGHT, CLIP_WIDTH, 3), 20 * index, np.uint8))
    writer.release()
    return str(path)


def read_clip(path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def test_open_clip_reads_every_frame_in_order(tmp_path):
    capture, info = video.open_clip(write_clip(tmp_path / "clip.avi", codec="MJPG"))
    assert (info.width, info.height, info.fps, info.frame_count) == (CLIP_WIDTH, CLIP_HEIGHT, FPS,
                                                                       FRAMES)
    frames = list(video.read_frames(capture))
    assert len(frames) == FRAMES
    grey = [float(np.mean(frame)) for frame, _ in frames]
    assert all(abs(level - 20 * index) < 3 for index, level in enumerate(grey))
    assert all(frame.shape == (CLIP_HEIGHT, CLIP_WIDTH, 3) and frame.dtype == np.uint8
               for frame, _ in frames)
    assert not capture.isOpened()  # released once the frames ran out


def test_a_clip_that_cannot_be_opened_is_a_one_line_error(tmp_path):
    (tmp_path / "garbage.mp4").write_bytes(b"not a video" * 100)
    for path, reason in ((tmp_path / "garbage.mp4", "cannot be opened as a video"),
                         (tmp_path / "missing.mp4", "does not exist or is not a file"),
                         (tmp_path, "does not exist or is not a file")):
        with pytest.raises(ValueError) as error:
            video.open_clip(str(path))
        assert str(error.value).startswith(f"--video {str(path)!r}: {reason}")
        assert "\n" not in str(error.value)


def test_tusimple_rows_scale_with_the_clip_height():
    assert video.tusimple_rows(720) == list(lanes.TUSIMPLE_H_SAMPLES)
    assert video.tusimple_rows(1440) == [2 * row for row in lanes.TUSIMPLE_H_SAMPLES]
    rows = video.tusimple_rows(64)
    # 160 / 720 and 710 / 720 of 64 rows: 14.2 and 63.1.
    assert rows[0] == 14 and rows[-1] == 63
    assert all(later > earlier for earlier, later in zip(rows, rows[1:]))


def test_clip_writer_writes_only_complete_clips(tmp_path):
    path = tmp_path / "out.mp4"
    with video.ClipWriter(str(path), CLIP_WIDTH, CLIP_HEIGHT, FPS) as clip:
        for index in range(3):
            clip.write(np.full((CLIP_HEIGHT, CLIP_WIDTH, 3), 80 * index, np.uint8))
    frames, fps = read_clip(path)
    assert len(frames) == 3 and fps == FPS
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with video.ClipWriter(str(path), CLIP_WIDTH, CLIP_HEIGHT, FPS) as clip:
            clip.write(np.zeros((CLIP_HEIGHT, CLIP_WIDTH, 3), np.uint8))
            raise RuntimeError("interrupted")
    # The earlier clip stays, and no temporary is left beside it.
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.mp4"]
    with video.ClipWriter(str(path), CLIP_WIDTH, CLIP_HEIGHT, FPS) as clip:
        with pytest.raises(ValueError, match=r"frame 0 is uint8 \(8, 8, 3\), the clip takes uint8"):
            clip.write(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="out.mp4: OpenCV cannot write"):
        video.ClipWriter(str(tmp_path / "out.mp4"), 0, 0, FPS)
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_a_clip_of_odd_size_is_padded_and_says_so(tmp_path, caplog):
    path = str(tmp_path / "odd.mp4")
    frame = np.full((37, 65, 3), 200, np.uint8)
    with video.ClipWriter(path, 65, 37, 10.0) as clip:
        for _ in range(3):
            clip.write(frame)
    capture, info = video.open_clip(path)
    capture.release()
    assert (info.width, info.height, info.frame_count) == (66, 38, 3)
    assert "the clip is 65 x 37, MPEG-4 needs even sides: the overlay clip is 66 x 38" in caplog.text


def test_run_video_writes_every_frame_in_order(two_lane_predictor, tmp_path):  # noqa: F811
    clip = write_clip(tmp_path / "CLIP.mp4")
    outputs = {}
    for pipelined in (True, False):
        outdir = tmp_path / f"out_{pipelined}"
        summary = batch_inference.run_video(two_lane_predictor, clip, str(outdir),
                                            pipelined=pipelined)
        assert summary["processed"] == FRAMES
        frames, fps = read_clip(outdir / "CLIP_overlay.mp4")
        assert len(frames) == FRAMES and fps == FPS
        assert frames[0].shape == (CLIP_HEIGHT, CLIP_WIDTH, 3)
        # In order: the untinted top rows (the crafted lanes start at map row 8 of 32) keep each
        # frame's grey level 20 * i.
        assert [round(float(np.mean(frame[:8])) / 20) for frame in frames] == list(range(FRAMES))
        records = [json.loads(line) for line in open(outdir / "CLIP.json")]
        assert [record["frame"] for record in records] == list(range(FRAMES))
        rows = video.tusimple_rows(CLIP_HEIGHT)
        for record in records:
            assert set(record) == {"frame", "lanes", "h_samples", "run_time"}
            assert record["h_samples"] == rows and record["run_time"] > 0
            # Two lanes at columns 10-13 and 40-43 of 64: x ~ 24 and ~ 84 of 128.
            assert len(record["lanes"]) == 2
            left, right = ([x for x in lane if x >= 0] for lane in record["lanes"])
            assert left and all(abs(x - 24) <= 3 for x in left)
            assert right and all(abs(x - 84) <= 3 for x in right)
        instance_maps = sorted(name for name in os.listdir(outdir) if name.endswith("_instances.png"))
        assert instance_maps == [f"CLIP_{index:06d}_instances.png" for index in range(FRAMES)]
        outputs[pipelined] = [{**record, "run_time": None} for record in records]
    assert outputs[True] == outputs[False]


def test_run_video_save_picks_the_outputs(two_lane_predictor, tmp_path):  # noqa: F811
    clip = write_clip(tmp_path / "CLIP.mp4", frames=3)
    summary = batch_inference.run_video(two_lane_predictor, clip, str(tmp_path / "instances"),
                                        save=["instances"])
    assert summary["video"] is None
    assert sorted(os.listdir(tmp_path / "instances")) == ["CLIP.json"] + [
        f"CLIP_{index:06d}_instances.png" for index in range(3)]
    batch_inference.run_video(two_lane_predictor, clip, str(tmp_path / "overlay"), save=["overlay"])
    assert sorted(os.listdir(tmp_path / "overlay")) == ["CLIP.json", "CLIP_overlay.mp4"]


def test_run_video_failure_leaves_no_clip(two_lane_predictor, tmp_path, monkeypatch):  # noqa: F811
    clip = write_clip(tmp_path / "CLIP.mp4", frames=6)

    def fail_on_frame_3(path, image, params=()):
        if "000003" in path:
            raise ValueError(f"{path}: cannot write (disk full)")
        return write_png(path, image, params)

    write_png = batch_inference.write_png
    monkeypatch.setattr(batch_inference, "write_png", fail_on_frame_3)
    outdir = tmp_path / "out"
    with pytest.raises(ValueError, match=r"CLIP_000003_instances.png: cannot write \(disk full\)"):
        batch_inference.run_video(two_lane_predictor, clip, str(outdir))
    left = os.listdir(outdir)
    assert "CLIP_overlay.mp4" not in left and "CLIP.json" not in left
    assert not [name for name in left if name.startswith(atomic.TEMP_PREFIX)]


class _FullDiskWriter:
    """cv2.VideoWriter on a disk that fills: every frame accepted, the clip cut short at release
    (OpenCV's writer fails so without a word: its index is never written)."""

    opencv_writer = cv2.VideoWriter

    def __init__(self, path, *args):
        self.path, self._writer = path, self.opencv_writer(path, *args)

    def __getattr__(self, name):
        return getattr(self._writer, name)

    def release(self):
        self._writer.release()
        with open(self.path, "r+b") as clip:
            clip.truncate(os.path.getsize(self.path) // 2)


def _full_disk(monkeypatch):
    monkeypatch.setattr(video.cv2, "VideoWriter", _FullDiskWriter)

    def statvfs(folder):  # full while the unfinished clip fills it
        full = any(name.startswith(atomic.TEMP_PREFIX) for name in os.listdir(folder))
        return type("Disk", (), {"f_bavail": 0 if full else 1000})()

    monkeypatch.setattr(video.os, "statvfs", statvfs)


def test_a_clip_cut_short_by_a_full_disk_is_not_published(tmp_path, monkeypatch):
    path = tmp_path / "out.mp4"
    with video.ClipWriter(str(path), CLIP_WIDTH, CLIP_HEIGHT, FPS) as clip:
        clip.write(np.zeros((CLIP_HEIGHT, CLIP_WIDTH, 3), np.uint8))
    before = path.read_bytes()
    _full_disk(monkeypatch)
    with pytest.raises(OSError) as raised:
        with video.ClipWriter(str(path), CLIP_WIDTH, CLIP_HEIGHT, FPS) as clip:
            for _ in range(3):
                clip.write(np.zeros((CLIP_HEIGHT, CLIP_WIDTH, 3), np.uint8))
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
    assert "(0 of 3 frames read back)" in raised.value.strerror
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["out.mp4"]


def test_run_video_on_a_full_disk_publishes_neither_clip_nor_predictions(two_lane_predictor, tmp_path,  # noqa: F811
                                                                           monkeypatch):
    clip = write_clip(tmp_path / "CLIP.mp4", frames=3)
    _full_disk(monkeypatch)
    outdir = tmp_path / "out"
    with pytest.raises(OSError, match="the clip could not be written completely") as raised:
        batch_inference.run_video(two_lane_predictor, clip, str(outdir), save=["overlay"])
    assert raised.value.filename == str(outdir / "CLIP_overlay.mp4")
    assert not os.path.exists(outdir)  # made for this run, and left empty


@pytest.mark.slow
def test_cli_video(modeldir, tmp_path):  # noqa: F811
    clip = write_clip(tmp_path / "CLIP.mp4")
    environment = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, os.path.join(REPO, "inference.py"), f"--modeldir={modeldir}",
               f"--outdir={tmp_path / 'out'}"]
    done = subprocess.run(command + [f"--video={clip}"], env=environment, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Processed {FRAMES} frame(s), skipped 0." in done.stdout
    assert "frames per second" in done.stdout
    frames, fps = read_clip(tmp_path / "out" / "CLIP_overlay.mp4")
    assert len(frames) == FRAMES and fps == FPS
    assert frames[0].shape == (CLIP_HEIGHT, CLIP_WIDTH, 3)
    records = [json.loads(line) for line in open(tmp_path / "out" / "CLIP.json")]
    assert [record["frame"] for record in records] == list(range(FRAMES))
    # A clip's per-frame instance maps are written only when --save asks for them.
    assert sorted(os.listdir(tmp_path / "out")) == ["CLIP.json", "CLIP_overlay.mp4"]

    (tmp_path / "bad.mp4").write_bytes(b"not a video" * 100)
    failed = subprocess.run(command + [f"--video={tmp_path / 'bad.mp4'}"], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert failed.stderr.splitlines()[-1].startswith(
        f"error: --video '{tmp_path / 'bad.mp4'}': cannot be opened as a video")
