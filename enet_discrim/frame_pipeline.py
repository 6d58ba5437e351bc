"""A pipelined loop over a stream of frames: decoding runs ahead of the network, writing behind it.

One frame goes through decode -> predict (network, clustering, lane fitting) -> write (pictures,
result files). Run one after the other, a CPU's cores idle while a frame is decoded or its PNGs
are compressed, and the network at batch 1 keeps about one core busy. `run_stream` overlaps the
stages:

- a reader thread decodes frames into a bounded queue, `read_ahead` frames ahead of the network
  (OpenCV decodes without holding the GIL);
- the caller's thread predicts the frames one by one, in stream order (TensorFlow releases the
  GIL while the network runs). `predict_threads=2` predicts two frames at a time, so that one
  frame's clustering and lane fitting overlap the next one's network; but then two networks share
  the cores as well, and each frame's own latency (TuSimple's run_time, which must stay under
  200 ms) grows, so one is the default;
- writer threads write each predicted frame's outputs (`write`, any order, `write_threads` at a
  time) while the next frames are predicted; `write_in_order` runs in one more thread, frame after
  frame in stream order (a video's frames). At most `max_pending` frames wait to be written, so
  memory stays bounded when writing is the slowest stage.

`pipelined=False` runs the same stages one after the other in the caller's thread: the same
outputs, for comparison and debugging.

A failure in any thread stops the loop: the reader and the writers are stopped (writes already
started finish, queued ones are dropped) and the first error is raised in the caller's thread.
"""

import collections
import concurrent.futures
import dataclasses
import queue
import threading
import time

from tqdm import tqdm

#: Stages whose mean milliseconds per frame a run reports, in pipeline order.
STAGES = ("decode", "network", "clustering", "postprocessing", "writing")
#: How often (seconds) a blocked reader checks whether the loop was stopped.
_STOP_POLL_S = 0.05


@dataclasses.dataclass
class Decoded:
    """One frame from the stream, decoded (or not).

    Attributes:
        item: the caller's description of the frame (a file's job, a video frame's number).
        image: uint8 RGB [H, W, 3], or None when the frame could not be decoded.
        decode_ms: time spent reading and decoding it.
        error: "PATH: reason" when it could not be decoded: the frame is skipped and reported.
    """

    item: object
    image: object
    decode_ms: float
    error: str | None = None


@dataclasses.dataclass
class Predicted:
    """A predicted frame, as handed to the writers.

    Attributes:
        index: position among the predicted frames (0, 1, ... in stream order).
        item, image: from `Decoded`.
        prediction: what `predict` returned.
        run_time_ms: the frame's own latency: its decoding plus its prediction (network,
            clustering, lane fitting), without the time it waited in the queue for earlier frames.
    """

    index: int
    item: object
    image: object
    prediction: object
    run_time_ms: float


@dataclasses.dataclass
class StreamStats:
    """What a run did.

    Attributes:
        processed: frames predicted and written.
        skipped: "PATH: reason" of each frame that could not be decoded.
        stage_ms: total milliseconds per stage (`STAGES`) over the processed frames; "writing"
            sums the time of every write of a frame, whichever thread ran it.
        wall_s: wall-clock seconds from the first decode to the last write.
    """

    processed: int = 0
    skipped: list = dataclasses.field(default_factory=list)
    stage_ms: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall_s: float = 0.0

    @property
    def frames_per_second(self):
        """Processed frames per wall-clock second (0 when none)."""
        return self.processed / self.wall_s if self.processed and self.wall_s > 0 else 0.0


class _Failure:
    """An exception raised while the reader iterated the stream, passed on to the caller."""

    def __init__(self, error):
        self.error = error


_END = object()


class _Reader(threading.Thread):
    """Iterates `frames` into a bounded queue until they end or the loop is stopped."""

    def __init__(self, frames, depth):
        super().__init__(name="frame-reader", daemon=True)
        self.frames = frames
        self.queue = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()

    def run(self):
        try:
            for frame in self.frames:
                if not self._put(frame):
                    return
            self._put(_END)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            self._put(_Failure(error))
        finally:
            # A generator (an open video) is closed in the thread that iterates it.
            close = getattr(self.frames, "close", None)
            if close is not None:
                close()

    def _put(self, item):
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=_STOP_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def stop(self):
        self.stopped.set()
        self.join()


class _Immediately:
    """An executor that runs each task at once in the caller's thread (`pipelined=False`)."""

    def submit(self, function, *args):
        future = concurrent.futures.Future()
        try:
            future.set_result(function(*args))
        except BaseException as error:  # noqa: BLE001 - raised where the result is read
            future.set_exception(error)
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        del wait, cancel_futures


def _timed_predict(predict, decoded):
    """Runs `predict` on one frame; returns (prediction, milliseconds)."""
    start = time.perf_counter()
    prediction = predict(decoded.image, decoded.item)
    return prediction, 1000 * (time.perf_counter() - start)


def _timed_write(function, predicted):
    """Runs one write; returns its milliseconds. OS errors become one-line ValueErrors."""
    start = time.perf_counter()
    try:
        function(predicted)
    except OSError as error:
        where = error.filename or f"frame {predicted.index}"
        raise ValueError(f"{where}: cannot write ({error.strerror or error})") from error
    return 1000 * (time.perf_counter() - start)


def _collect(pending, stats, limit):
    """Adds finished writes' times to `stats`, waiting for the oldest while more than `limit`
    are pending; raises the first failed write's error."""
    for future in pending:
        if future.done() and future.exception() is not None:
            raise future.exception()
    while pending and (pending[0].done() or len(pending) > limit):
        stats.stage_ms["writing"] += pending.popleft().result()


def run_stream(frames, predict, write=None, write_in_order=None, on_predicted=None,
               pipelined=True, read_ahead=4, predict_threads=1, write_threads=2, max_pending=None,
               progress_total=None, progress_desc="inference"):
    """Predicts a stream of frames and writes their outputs, stages overlapped (module docstring).

    Args:
        frames: iterable of `Decoded`, in stream order; decoding happens while it is iterated
            (in the reader thread when pipelined). A generator is closed when the loop ends.
        predict: function(image, item) -> prediction whose `timings_ms` holds "network",
            "clustering" and "postprocessing" milliseconds (`Predictor.predict`); called in
            stream order, in the caller's thread (or `predict_threads` threads).
        write: function(Predicted) writing a frame's own files; runs in the writer threads, frames
            in any order and at the same time.
        write_in_order: function(Predicted) run in one thread, frame after frame in stream order
            (appending to a clip, a plot library that wants one thread).
        on_predicted: function(Predicted) called in the caller's thread, in stream order, as soon
            as a frame is predicted (collecting result lines).
        pipelined: False runs every stage in the caller's thread, one frame after the other.
        read_ahead: frames decoded ahead of the network.
        predict_threads: frames predicted at the same time; with 2, one frame's clustering and
            lane fitting overlap the next frame's network. `predict` must be thread-safe then
            (`Predictor.predict` is: a `tf.function` and functions of their arguments).
        write_threads: threads running `write`.
        max_pending: most predicted frames waiting for their writes (default 2 * write_threads +
            2); beyond it the loop waits for the oldest.
        progress_total: frame count for the progress bar (None: unknown).
        progress_desc: the progress bar's label.

    Returns:
        StreamStats.

    Raises:
        The first error of `predict`, a writer (an OSError as a ValueError naming the file) or
        the stream, after stopping the other threads.
    """
    stats = StreamStats()
    limit = max_pending if max_pending is not None else 2 * write_threads + 2
    if pipelined:
        reader = _Reader(frames, read_ahead)
        predictors = (concurrent.futures.ThreadPoolExecutor(predict_threads, thread_name_prefix="predict")
                      if predict_threads > 1 else _Immediately())
        writers = concurrent.futures.ThreadPoolExecutor(write_threads, thread_name_prefix="write")
        in_order = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="write-in-order")
    else:
        reader, predictors, writers, in_order = None, _Immediately(), _Immediately(), _Immediately()
    in_flight, pending = collections.deque(), collections.deque()
    progress = tqdm(total=progress_total, desc=progress_desc, unit="frame")

    def finish(decoded, future):
        prediction, predict_ms = future.result()
        predicted = Predicted(stats.processed, decoded.item, decoded.image, prediction,
                              decoded.decode_ms + predict_ms)
        stats.processed += 1
        stats.stage_ms["decode"] += decoded.decode_ms
        for stage, milliseconds in prediction.timings_ms.items():
            stats.stage_ms[stage] += milliseconds
        if on_predicted is not None:
            on_predicted(predicted)
        if write is not None:
            pending.append(writers.submit(_timed_write, write, predicted))
        if write_in_order is not None:
            pending.append(in_order.submit(_timed_write, write_in_order, predicted))
        progress.update(1)

    start = time.perf_counter()
    failed = True
    try:
        if reader is not None:
            reader.start()
        for decoded in reader if reader is not None else frames:
            if decoded.error is not None:
                stats.skipped.append(decoded.error)
                progress.update(1)
                continue
            in_flight.append((decoded, predictors.submit(_timed_predict, predict, decoded)))
            while in_flight and (in_flight[0][1].done() or len(in_flight) >= predict_threads):
                finish(*in_flight.popleft())
            _collect(pending, stats, limit)
        while in_flight:
            finish(*in_flight.popleft())
        _collect(pending, stats, 0)
        failed = False
    finally:
        progress.close()
        if reader is not None:
            reader.stop()
        else:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
        for executor in (predictors, writers, in_order):
            executor.shutdown(wait=True, cancel_futures=failed)
    stats.wall_s = time.perf_counter() - start
    return stats
