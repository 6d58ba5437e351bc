"""Writing converted frames to TFRecord shards, atomically; shared by every dataset converter.

A converter turns its dataset into a list of `Frame`s (one per image: which split, where it came
from, and what is needed to build it) and a function that builds one serialized Example from a
frame's payload, raising `FrameError` for bad input. `convert_frames` runs that function over all
frames with a progress bar, collects the bad ones as "FILE[:LINE]: reason", and writes the rest.

Atomicity: shards are first written into a hidden temporary folder inside the output folder and
only moved (`os.replace`) to their final names `SPLIT-00000-of-00003.tfrecord` once every frame has
been converted, because the shard count in the name is not known earlier. An interrupted run
therefore leaves the previous shards untouched and no file with a shard's name; with strict=True
any bad frame discards the temporary folder, so nothing is written at all. A killed run leaves its
temporary folder behind (`.tmp-convert-<pid>-*`): the next run into the same output folder deletes
it, once its process is gone. A run that converts no frame at all is an error and writes nothing.
"""
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile

from absl import logging
import tensorflow as tf
import tqdm

from enet_discrim import atomic

DEFAULT_SHARD_SIZE = 250
SHARD_SUFFIX = ".tfrecord"
_SHARD_NAME = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord$")
_TEMP_PREFIX = ".tmp-convert-"


class FrameError(Exception):
    """One frame cannot be converted.

    Args:
        reason: what is wrong, e.g. "image not found: clips/1/20.jpg".
        location: overrides the frame's location in the report (e.g. the unreadable label file).
    """

    def __init__(self, reason, location=None):
        super().__init__(reason)
        self.reason = reason
        self.location = location


class BadInputError(ValueError):
    """Raised with strict=True when any frame is bad; nothing has been written.

    Attributes:
        problems: list of "FILE[:LINE]: reason".
    """

    def __init__(self, problems):
        self.problems = list(problems)
        listing = "\n".join(self.problems)
        super().__init__(f"{len(self.problems)} bad input item(s), nothing written:\n{listing}")


class NothingConvertedError(ValueError):
    """Raised when a conversion would write no frame at all; nothing has been written.

    Attributes:
        problems: list of "FILE[:LINE]: reason" (empty when there was no frame to convert).
    """

    def __init__(self, problems, description="conversion"):
        self.problems = list(problems)
        if self.problems:
            message = (f"{description}: nothing converted, all {len(self.problems)} input item(s) "
                       f"are bad (each is reported above), first: {self.problems[0]}")
        else:
            message = f"{description}: nothing to convert"
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class Frame:
    """One image to convert.

    Attributes:
        split: the split it goes to, e.g. "train".
        location: "FILE:LINE" or "FILE", the prefix of its problem report.
        payload: whatever the converter's build function needs.
    """

    split: str
    location: str
    payload: object


#: What a converter writes beside its shards: dataset, size, classes and per-split counts.
DATASET_INFO_FILE = "dataset_info.json"


def split_of(filename, val_fraction):
    """"train" or "val" for a frame, from a hash of its name: stable whatever the order of frames.

    Args:
        filename: the frame's path relative to the dataset root.
        val_fraction: the expected fraction of frames going to "val", 0..1.
    """
    digest = hashlib.sha1(filename.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    return "val" if position < val_fraction else "train"


def shard_name(split, index, num_shards):
    """The file name of shard `index` (0-based) of `num_shards`: "train-00000-of-00004.tfrecord"."""
    return f"{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def parse_shard_name(name):
    """Splits a shard file name into (split, index, num_shards); None if it is not a shard name."""
    match = _SHARD_NAME.match(os.path.basename(name))
    if match is None:
        return None
    return match["split"], int(match["index"]), int(match["count"])


def write_json_atomic(path, content):
    """Writes `content` as indented JSON to `path` atomically (`atomic.write_json`)."""
    atomic.write_json(path, content, temp_prefix=_TEMP_PREFIX)


def read_dataset_info(path):
    """The `dataset_info.json` a converter wrote, as a dict.

    Raises:
        ValueError: `PATH: reason` when the file cannot be read, is not UTF-8 JSON, is not a JSON
            object, or lacks or mistypes what training reads (`num_classes`, `class_names`,
            sizes, counts, thing classes).
    """
    try:
        with open(path, encoding="utf-8") as stream:
            info = json.load(stream)
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno} column "
                         f"{error.colno})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: not a JSON object but {type(info).__name__}")
    if not isinstance(info.get("counts", {}), dict):
        raise ValueError(f"{path}: \"counts\" is not a JSON object")
    problem = _dataset_info_problem(info)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return info


def _whole(value, least):
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _dataset_info_problem(info):
    """The first thing wrong with a dataset_info dict's values that training reads, or None."""
    for key in ("num_classes", "class_names"):
        if key not in info:
            return f"missing \"{key}\" (written by every converter)"
    if not _whole(info["num_classes"], 1):
        return f"\"num_classes\" must be a positive integer, got {json.dumps(info['num_classes'])}"
    names = info["class_names"]
    if (not isinstance(names, list) or len(names) != info["num_classes"]
            or not all(isinstance(name, str) for name in names)):
        return (f"\"class_names\" must be a list of {info['num_classes']} names, got "
                f"{json.dumps(names)[:60]}")
    for key, least in (("height", 1), ("width", 1), ("lane_thickness", 1), ("ignore_label", 0)):
        if key in info and not _whole(info[key], least):
            return f"\"{key}\" must be an integer >= {least}, got {json.dumps(info[key])}"
    bad_counts = [split for split, count in info.get("counts", {}).items() if not _whole(count, 0)]
    if bad_counts:
        return f"\"counts\" of {bad_counts[0]!r} must be a whole number of frames"
    things = info.get("thing_train_ids", [])
    if not isinstance(things, list) or not all(
            _whole(c, 0) and c < info["num_classes"] for c in things):
        return f"\"thing_train_ids\" must be class ids below num_classes, got {json.dumps(things)}"
    return None


class ShardWriter:
    """Collects serialized Examples per split into temporary shards; `commit` publishes them.

    Use as a context manager: leaving the block without `commit` (an exception, an interrupt)
    deletes the temporary shards and leaves `outdir` as it was.

    Args:
        outdir: the output folder (created if needed; removed again on discard if it was created).
        splits: the splits this run writes; `commit` replaces all earlier shards of these splits.
        shard_size: Examples per shard.
    """

    def __init__(self, outdir, splits, shard_size=DEFAULT_SHARD_SIZE):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.outdir = outdir
        self.splits = tuple(splits)
        self.shard_size = shard_size
        if os.path.lexists(outdir) and not os.path.isdir(outdir):
            raise ValueError(f"output folder {outdir} exists and is not a folder")
        self._created_outdir = not os.path.isdir(outdir)
        os.makedirs(outdir, exist_ok=True)
        # One converter at a time in outdir: held until commit or discard.
        self._lock = contextlib.ExitStack()
        try:
            self._lock.enter_context(atomic.folder_lock(outdir, "convert"))
            for leftover in atomic.remove_leftovers(outdir, _TEMP_PREFIX):
                logging.info("Removed the leftover of a killed run: %s", leftover)
            # Inside outdir so that os.replace stays on one file system (a rename, hence atomic).
            self._tempdir = tempfile.mkdtemp(prefix=atomic.process_prefix(_TEMP_PREFIX),
                                             dir=outdir)
        except BaseException:
            self._lock.close()
            self._remove_created_outdir()
            raise
        self._counts = {split: 0 for split in self.splits}
        self._writers = {}
        self._temp_shards = {split: [] for split in self.splits}

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if self._tempdir is not None:
            self.discard()
        return False

    @property
    def counts(self):
        """dict split -> number of Examples written so far."""
        return dict(self._counts)

    def write(self, split, serialized):
        """Appends one serialized Example to `split`."""
        if split not in self._counts:
            raise ValueError(f"split {split!r} is not one of {self.splits}")
        if self._tempdir is None:
            raise RuntimeError("ShardWriter already committed or discarded")
        if self._counts[split] % self.shard_size == 0:
            self._close(split)
            path = os.path.join(self._tempdir, f"{split}-{len(self._temp_shards[split]):05d}")
            self._temp_shards[split].append(path)
            self._writers[split] = tf.io.TFRecordWriter(path)
        self._writers[split].write(serialized)
        self._counts[split] += 1

    def _close(self, split):
        writer = self._writers.pop(split, None)
        if writer is not None:
            writer.close()

    def discard(self):
        """Deletes everything written so far; `outdir` is left as it was before."""
        for split in list(self._writers):
            self._close(split)
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None
        self._lock.close()
        self._remove_created_outdir()

    def _remove_created_outdir(self):
        if self._created_outdir and os.path.isdir(self.outdir) and not os.listdir(self.outdir):
            os.rmdir(self.outdir)

    def commit(self):
        """Moves the shards to their final names and removes older shards of the same splits.

        Returns:
            dict split -> list of the shard paths now in `outdir`.
        """
        published = {}
        for split in self.splits:
            self._close(split)
            temp_paths = self._temp_shards[split]
            final_paths = [os.path.join(self.outdir, shard_name(split, index, len(temp_paths)))
                           for index in range(len(temp_paths))]
            for temp_path, final_path in zip(temp_paths, final_paths):
                os.replace(temp_path, final_path)
            for name in os.listdir(self.outdir):
                parsed = parse_shard_name(name)
                path = os.path.join(self.outdir, name)
                if parsed is not None and parsed[0] == split and path not in final_paths:
                    logging.info("Removing shard of an earlier run: %s", path)
                    os.remove(path)
            published[split] = final_paths
        shutil.rmtree(self._tempdir, ignore_errors=True)
        self._tempdir = None
        self._lock.close()
        return published


def _build_all(frames, build_example, num_workers):
    """Yields (frame, serialized or FrameError) in frame order, building a few frames in parallel."""
    if num_workers <= 1:
        for frame in frames:
            try:
                yield frame, build_example(frame.payload)
            except FrameError as error:
                yield frame, error
        return

    def build(frame):
        try:
            return build_example(frame.payload)
        except FrameError as error:
            return error

    # Image decoding and encoding in OpenCV release the GIL, so threads do overlap. Chunks keep
    # memory bounded and the output order fixed.
    chunk_size = 8 * num_workers
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        for start in range(0, len(frames), chunk_size):
            chunk = frames[start:start + chunk_size]
            yield from zip(chunk, pool.map(build, chunk))


def convert_frames(frames, build_example, outdir, splits, problems=(), strict=False,
                   shard_size=DEFAULT_SHARD_SIZE, num_workers=None, description="converting"):
    """Builds and writes every frame; bad frames are reported and skipped (or fail, if strict).

    Args:
        frames: list of `Frame`.
        build_example: function payload -> serialized Example bytes; raises `FrameError` if the
            frame's input is bad.
        outdir: output folder of the shards.
        splits: the splits this run writes (their earlier shards in `outdir` get replaced).
        problems: "FILE[:LINE]: reason" found before building (e.g. unparsable label lines).
        strict: if True, any problem raises `BadInputError` after all frames were checked, and
            nothing is written.
        shard_size: Examples per shard.
        num_workers: threads building frames; default min(4, CPU count).
        description: the progress bar's label.

    Returns:
        dict with "counts" (split -> frames written), "skipped" (list of "FILE[:LINE]: reason")
        and "shards" (split -> list of shard paths).

    Raises:
        BadInputError: strict, and some frame or problem is bad; nothing written.
        NothingConvertedError: no frame could be converted (or there was none); nothing written.
        ValueError: `outdir` or a folder above it is a file.
    """
    atomic.check_folder_target(outdir)  # an outdir under a file: one line, before any work
    problems = list(problems)
    for problem in problems:
        logging.warning("%s", problem)
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1)
    with ShardWriter(outdir, splits, shard_size) as writer:
        progress = tqdm.tqdm(total=len(frames), desc=description, unit="frame")
        try:
            for frame, result in _build_all(frames, build_example, num_workers):
                progress.update(1)
                if isinstance(result, FrameError):
                    problem = f"{result.location or frame.location}: {result.reason}"
                    logging.warning("%s", problem)
                    problems.append(problem)
                elif not (strict and problems):  # Strict and already failed: only validate.
                    writer.write(frame.split, result)
        finally:
            progress.close()
        if strict and problems:
            raise BadInputError(problems)
        counts = dict(writer.counts)
        if not sum(counts.values()):
            raise NothingConvertedError(problems, description)
        shards = writer.commit()
    return {"counts": counts, "skipped": problems, "shards": shards}
