"""CULane lane detection -> TFRecords, in the schema of the TuSimple records
(`enet_discrim.data.schema`, `enet_discrim.data.lane_labels`).

    python -m enet_discrim.data.culane --srcdir ROOT --list LIST --outdir OUT
        [--height 256 --width 512] [--val_fraction 0.1] [--strict]

A CULane root holds the frames (`driver_*/<clip>.MP4/<frame>.jpg`), a `<frame>.lines.txt` of
lanes beside each, and `list/` (`train_gt.txt`, `val_gt.txt`, `test.txt`, ...): one frame a line,
relative to the root (`enet_discrim.formats.culane`). Each frame of the list becomes one record:
the frame resized to height x width, and each lane of its `.lines.txt` one instance (ids 1..K in
file order), drawn as a polyline through its points at the record's scale, the lines cut where
they leave the frame. A list line whose frame is missing, unreadable or outside the root, or
whose lane file is missing or malformed, is reported (`LIST:LINE: reason`, or `FILE:LINE: reason`
of the lane file) and skipped. Writing is atomic, as for every converter (`writer`).
"""

import os

from absl import logging

from enet_discrim.data import lane_labels
from enet_discrim.data import schema
from enet_discrim.data import writer
from enet_discrim.formats import culane as culane_format
from enet_discrim.formats import images

DATASET = "culane"


def is_culane_root(path):
    """True if `path` is a folder holding CULane's training list (`list/train_gt.txt`)."""
    return os.path.isfile(os.path.join(path, culane_format.TRAIN_LIST))


def read_frames(srcdir, list_file, val_fraction):
    """The frames of a list to convert, and the problems found on the way.

    Returns:
        (list of writer.Frame with payload dict(path, filename, lanes_path),
         list of "LIST:LINE: reason").

    Raises:
        ValueError: the list cannot be read.
    """
    problems = []
    entries = culane_format.read_list(list_file, problems)
    frames = []
    for entry in entries:
        location = f"{list_file}:{entry.line_number}"
        try:
            path, filename = culane_format.resolve_frame(srcdir, entry.frame)
        except ValueError as error:
            problems.append(f"{location}: {error}")
            continue
        payload = {"path": path, "filename": filename,
                   "lanes_path": culane_format.lanes_path(path)}
        frames.append(writer.Frame(writer.split_of(filename, val_fraction), location, payload))
    return frames, problems


def build_example(payload, height, width):
    """The serialized Example of one frame (payload from `read_frames`).

    Raises:
        writer.FrameError: the frame or its lane file is missing, unreadable or malformed (a lane
            file's problem names that file and its line).
    """
    try:
        image = images.read_image(payload["path"])
    except images.ImageError as error:
        raise writer.FrameError(str(error)) from None
    lanes_path = payload["lanes_path"]
    if not os.path.isfile(lanes_path):
        raise writer.FrameError(f"frame {payload['path']} has no lane file {lanes_path}")
    try:
        lanes = culane_format.read_lanes(lanes_path)
        culane_format.check_inside(lanes_path, lanes, image.shape[:2])
    except culane_format.FileError as error:
        raise writer.FrameError(error.reason, location=error.location) from None
    resized = images.resize_image(image, height, width)  # as the pipeline and the predictor do
    semantic, instance = lane_labels.draw_lanes(lanes, image.shape[:2], (height, width))
    return schema.make_example(resized, semantic, instance, payload["filename"],
                               image_format=lane_labels.IMAGE_FORMAT,
                               jpeg_quality=lane_labels.JPEG_QUALITY)


def convert(srcdir, outdir, list_file=None, height=256, width=512, val_fraction=0.1, strict=False,
            shard_size=writer.DEFAULT_SHARD_SIZE, num_workers=None):
    """Converts the frames of a CULane list to train/val TFRecord shards plus `dataset_info.json`.

    Args:
        srcdir: the CULane root the list's paths are relative to.
        outdir: output folder.
        list_file: the list (`list/train_gt.txt` by default; a relative path that does not exist
            as given is taken relative to `srcdir`).
        height, width: size of the stored images and labels.
        val_fraction: fraction of frames (by a hash of their path) going to "val".
        strict: if True, any bad line raises `writer.BadInputError` and nothing is written.
        shard_size: frames per shard.
        num_workers: threads converting frames; default min(4, CPU count).

    Returns:
        dict with "counts" ({"train": n, "val": n}), "skipped" (list of "FILE:LINE: reason") and
        "shards" (split -> list of paths).

    Raises:
        writer.BadInputError: strict, and a line is bad; nothing written.
        writer.NothingConvertedError: no frame converted; nothing written.
        ValueError: bad arguments, a missing root or list.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1], got {val_fraction}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if not os.path.isdir(srcdir):
        raise ValueError(f"CULane source folder does not exist: {srcdir}")
    list_file = culane_format.find_list(srcdir, list_file or culane_format.TRAIN_LIST)
    if not os.path.isfile(list_file):
        raise ValueError(f"CULane list {list_file} does not exist or is not a file")
    frames, problems = read_frames(srcdir, list_file, val_fraction)
    if not frames and not problems:
        raise writer.NothingConvertedError([], f"CULane: the list {list_file} holds no frame")
    logging.info("CULane: %d frames in %s, %d bad lines", len(frames), list_file, len(problems))
    summary = writer.convert_frames(
        frames, lambda payload: build_example(payload, height, width), outdir, ("train", "val"),
        problems=problems, strict=strict, shard_size=shard_size, num_workers=num_workers,
        description="CULane")
    lane_labels.write_dataset_info(outdir, DATASET, height, width, summary)
    return summary


if __name__ == "__main__":
    import sys

    from enet_discrim.cli import culane as culane_cli

    sys.exit(culane_cli.run_convert())
