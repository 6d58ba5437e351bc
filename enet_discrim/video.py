"""Video clips in and out with OpenCV: frames of any clip its FFmpeg reads, and a clip written at
another's size and frame rate.

`open_clip` checks a clip and says what it holds, `read_frames` decodes its frames in order as RGB,
`ClipWriter` writes RGB frames to an MPEG-4 file atomically (a temporary file beside the target,
renamed when the clip is complete, as `enet_discrim.atomic` does for single files).
"""

import dataclasses
import errno
import os
import time

# FFmpeg's own log lines ("moov atom not found") would precede our one-line error about a clip
# that cannot be opened; read before OpenCV first opens a clip.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from absl import logging  # noqa: E402

from enet_discrim import atomic  # noqa: E402
from enet_discrim.formats import tusimple as tusimple_format  # noqa: E402

#: Frame rate written when a clip does not report one (some containers carry none).
FALLBACK_FPS = 30.0
#: FourCC of the written clips: MPEG-4 part 2, which every OpenCV build with FFmpeg encodes.
CODEC = "mp4v"
#: TuSimple's frames are 720 rows high; their h_samples scale with a clip's height.
TUSIMPLE_FRAME_HEIGHT = tusimple_format.FRAME_HEIGHT
#: The rows a clip's lanes are reported at, for its height (TuSimple's own at 720).
tusimple_rows = tusimple_format.scaled_h_samples


@dataclasses.dataclass(frozen=True)
class ClipInfo:
    """What a clip holds, as its container reports it.

    Attributes:
        path: the clip's file.
        width, height: frame size in pixels.
        fps: frames per second (`FALLBACK_FPS` when the container gives none).
        frame_count: frames the container announces; 0 when unknown. Only a hint (for a progress
            bar): some containers miscount, so `read_frames` reads until the stream ends.
    """

    path: str
    width: int
    height: int
    fps: float
    frame_count: int


def _video_error(path, reason):
    return ValueError(f"--video {path!r}: {reason}")


def open_clip(path):
    """Opens a clip for reading.

    Args:
        path: a video file in any format OpenCV reads (mp4, avi, mkv, ...).

    Returns:
        (cv2.VideoCapture positioned at the first frame, ClipInfo).

    Raises:
        ValueError: one line naming the clip, when it is missing, not a file, or cannot be opened
            or decoded as a video.
    """
    if not os.path.isfile(path):
        raise _video_error(path, "does not exist or is not a file")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise _video_error(path, "cannot be opened as a video (not a video file, or a format "
                                 "OpenCV cannot read)")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width <= 0 or height <= 0:
        capture.release()
        raise _video_error(path, "has no frame size (no video stream)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not np.isfinite(fps) or fps <= 0:
        fps = FALLBACK_FPS
    frame_count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    frame_count = int(frame_count) if np.isfinite(frame_count) and frame_count > 0 else 0
    return capture, ClipInfo(path, width, height, float(fps), frame_count)


def read_frames(capture):
    """The frames of an opened clip, in order, until its stream ends.

    Args:
        capture: from `open_clip`; released when the frames run out or the generator is closed.

    Yields:
        (uint8 RGB [H, W, 3] frame, milliseconds spent decoding and converting it).
    """
    try:
        while True:
            start = time.perf_counter()
            ok, frame = capture.read()
            if not ok or frame is None:
                return
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            yield frame, 1000 * (time.perf_counter() - start)
    finally:
        capture.release()


def _frame_count(path):
    """The frames the MPEG-4 file at `path` announces (its index), 0 when it does not open."""
    capture = cv2.VideoCapture(path)
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()


class ClipWriter:
    """Writes RGB frames to an MPEG-4 clip; the clip appears at `path` only once it is complete.

    Frames go to a temporary `.tmp-<pid>-...mp4` beside `path` (`atomic.TEMP_PREFIX`, so that
    `atomic.remove_leftovers` recognises one left by a killed run); `close()` renames it to `path`,
    `discard()` (or leaving a `with` block by an exception) deletes it and leaves any earlier clip
    at `path` untouched.

    Args:
        path: the clip to write, e.g. `OUT/CLIP_overlay.mp4`.
        width, height: frame size; every frame must have it. An odd side is padded by one black
            row or column (MPEG-4 codes even sides only), with a warning.
        fps: frame rate.

    Raises:
        ValueError: naming `path`, when OpenCV cannot open an MPEG-4 writer there.

    Example:
    >>> with ClipWriter("out.mp4", 1280, 720, 30.0) as clip:
    ...     clip.write(frame_rgb)
    """

    def __init__(self, path, width, height, fps):
        self.path, self.width, self.height, self.fps = path, int(width), int(height), float(fps)
        # MPEG-4 codes even sides only (OpenCV would drop an odd last row or column unsaid): an
        # odd side gets one black row or column, and says so.
        self._padding = (self.height % 2, self.width % 2)
        if any(self._padding):
            logging.warning("%s: the clip is %d x %d, MPEG-4 needs even sides: the overlay clip "
                            "is %d x %d (black edge added at the right or bottom)", path,
                            self.width, self.height, self.width + self._padding[1],
                            self.height + self._padding[0])
        self._temp_path = atomic.temporary_path(path, suffix=".mp4")
        self._writer = cv2.VideoWriter(self._temp_path, cv2.VideoWriter_fourcc(*CODEC), self.fps,
                                       (self.width + self._padding[1],
                                        self.height + self._padding[0]))
        if not self._writer.isOpened():
            self.discard()
            raise ValueError(f"{path}: OpenCV cannot write an MPEG-4 ({CODEC}) clip here")
        self.frames_written = 0

    def write(self, frame_rgb):
        """Appends one uint8 RGB [height, width, 3] frame."""
        if frame_rgb.shape != (self.height, self.width, 3) or frame_rgb.dtype != np.uint8:
            raise ValueError(f"{self.path}: frame {self.frames_written} is {frame_rgb.dtype} "
                             f"{frame_rgb.shape}, the clip takes uint8 "
                             f"{(self.height, self.width, 3)}")
        frame_bgr = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
        if any(self._padding):
            frame_bgr = cv2.copyMakeBorder(frame_bgr, 0, self._padding[0], 0, self._padding[1],
                                           cv2.BORDER_CONSTANT, value=0)
        self._writer.write(frame_bgr)
        self.frames_written += 1

    def close(self):
        """Finishes the clip and moves it to `path` once it reads back with every frame.

        OpenCV's writer fails silently (on a full disk it leaves a clip without its index, which
        no player opens), so the finished clip is opened again and its frames counted.

        Raises:
            OSError: naming `path`, when the clip does not read back with every frame written
                (`ENOSPC` when its disk is full); the unfinished clip is deleted and an earlier
                clip at `path` kept.
        """
        self._writer.release()
        self._writer = None
        readable = _frame_count(self._temp_path)
        if readable != self.frames_written:
            full = os.statvfs(os.path.dirname(os.path.abspath(self.path))).f_bavail == 0
            self.discard()  # (after the look at the disk: it frees what the clip took)
            raise OSError(errno.ENOSPC if full else errno.EIO,
                          f"{os.strerror(errno.ENOSPC) + ': ' if full else ''}the clip could not "
                          f"be written completely ({readable} of {self.frames_written} frames "
                          "read back)", self.path)
        atomic.replace(self._temp_path, self.path)

    def discard(self):
        """Stops writing and deletes the unfinished clip."""
        if getattr(self, "_writer", None) is not None:
            self._writer.release()
            self._writer = None
        if os.path.exists(self._temp_path):
            os.remove(self._temp_path)

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        if error_type is None:
            self.close()
        else:
            self.discard()
        return False
