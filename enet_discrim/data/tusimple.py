"""TuSimple lane detection -> TFRecords (schema in `enet_discrim.data.schema`).

    python -m enet_discrim.data.tusimple --srcdir SRC --outdir OUT [--height 256 --width 512]
        [--val_fraction 0.1] [--strict]

TuSimple ships label files (`label_data_*.json`, `test_label.json`) with one JSON object per line:
`raw_file` (the frame, relative to the label file's folder), `h_samples` (the rows sampled) and
`lanes` (per lane, one x per row of h_samples; x < 0, i.e. -2, means the lane has no point there),
all in the frame's own pixel coordinates. Lines are read and checked by
`enet_discrim.formats.tusimple` (`read_labels`); the converter adds that the rows and points lie
inside the frame (`check_frame_size`). A line that breaks a rule, like one whose frame is empty,
unreadable, missing or outside the dataset root, is reported as `FILE:LINE: reason` and skipped.

Each frame is resized to height x width and stored as JPEG (quality 95). Each lane with at least
one point becomes one instance (ids 1..K in the order of `lanes`), drawn as a polyline through its
points; semantic is 1 on every lane pixel and 0 elsewhere.
"""
import argparse
import fnmatch
import os
import sys

from absl import logging
import numpy as np

from enet_discrim.cli import support
from enet_discrim.formats import images
from enet_discrim.formats import tusimple as tusimple_format
# Public names of this module before the format had its own (kept for their callers); they raise
# ValueError.
from enet_discrim.formats.images import read_image  # noqa: F401
from enet_discrim.formats.tusimple import LABEL_KEYS as REQUIRED_KEYS  # noqa: F401
from enet_discrim.formats.tusimple import check_h_samples, check_raw_file  # noqa: F401
from enet_discrim.formats.tusimple import check_lanes as check_label_values  # noqa: F401
from enet_discrim.formats.tusimple import resolve_raw_file as resolve_inside  # noqa: F401

if __name__ == "__main__":  # `python -m`: before schema imports TensorFlow, which logs as it loads
    support.quiet_startup(sys.argv[1:])

from enet_discrim.data import lane_labels
from enet_discrim.data import schema
from enet_discrim.data import writer
# Names of this module before lane records had their own (kept for their callers).
from enet_discrim.data.writer import split_of  # noqa: E402
from enet_discrim.data.lane_labels import CLASS_NAMES, IMAGE_FORMAT, JPEG_QUALITY  # noqa: E402,F401
from enet_discrim.data.lane_labels import lane_thickness  # noqa: E402,F401

LABEL_FILE_PATTERNS = ("label_data_*.json", "test_label.json")


def find_label_files(srcdir):
    """All TuSimple label files under `srcdir`, recursively, sorted (symlinked folders not followed).

    Args:
        srcdir: the dataset root.

    Returns:
        list of paths (each starting with `srcdir`).
    """
    found = []
    for folder, subfolders, names in os.walk(srcdir):
        subfolders.sort()
        for name in sorted(names):
            if any(fnmatch.fnmatch(name, pattern) for pattern in LABEL_FILE_PATTERNS):
                found.append(os.path.join(folder, name))
    return found


def is_tusimple_root(path):
    """True if `path` is a folder holding TuSimple label files (label_data_*.json, test_label.json)."""
    return os.path.isdir(path) and bool(find_label_files(path))


def render_lanes(lanes, h_samples, source_size, target_size, thickness=None):
    """Draws TuSimple lanes as instance and semantic label maps (`lane_labels.draw_lanes`).

    Args:
        lanes: list of K lanes, each a list of x coordinates (one per row of h_samples; x < 0 = no
            point), in the source frame's pixels.
        h_samples: list of the y coordinates of the rows, in the source frame's pixels.
        source_size: (height, width) of the frame the coordinates refer to.
        target_size: (height, width) of the label maps.
        thickness: line thickness in pixels; default `lane_thickness(target width)`.

    Returns:
        (semantic uint8 [H, W] with 0 background / 1 lane, instance uint16 [H, W] with 0 = none and
        1..K for the non-empty lanes in order; a later lane overwrites an earlier one).
    """
    ys = np.asarray(h_samples, np.float64)
    points = []
    for lane in lanes:
        xs = np.asarray(lane, np.float64)
        valid = xs >= 0
        points.append(np.stack([xs[valid], ys[valid]], axis=1))
    return lane_labels.draw_lanes(points, source_size, target_size, thickness)


def parse_label_line(line):
    """Parses and checks one line of a label file (`formats.tusimple.check_label`).

    Args:
        line: the text of the line.

    Returns:
        dict with "raw_file" (str), "lanes" (list of lists of numbers), "h_samples" (list of
        numbers).

    Raises:
        writer.FrameError: the line is not JSON or not a well-formed label frame.
    """
    try:
        record = tusimple_format.parse_json_line(line, "label")
        tusimple_format.check_label(record)
    except ValueError as error:
        raise writer.FrameError(str(error)) from None
    return {key: record[key] for key in REQUIRED_KEYS}


def check_frame_size(path, frame_size, lanes, h_samples):
    """Raises writer.FrameError when the labels do not fit the frame they are given for.

    Labels are in the frame's own pixel coordinates: every row of h_samples must lie above the
    frame's bottom and every lane point (x >= 0) left of its right edge.

    Args:
        path: the frame, for the message.
        frame_size: (height, width) of the decoded frame.
        lanes, h_samples: the frame's checked labels (`formats.tusimple.check_label`).
    """
    height, width = frame_size
    if h_samples and max(h_samples) >= height:
        raise writer.FrameError(
            f"frame {path} is {width}x{height}, but its h_samples reach row {max(h_samples)!r}")
    for index, lane in enumerate(lanes):
        if lane and max(lane) >= width:
            raise writer.FrameError(
                f"frame {path} is {width}x{height}, but lane {index} reaches x={max(lane)!r}")


def read_label_files(srcdir, val_fraction):
    """Reads every label line under `srcdir` into frames to convert, and problems found on the way.

    Returns:
        (list of writer.Frame with payload dict(path, filename, lanes, h_samples),
         list of "FILE:LINE: reason").
    """
    frames, problems = [], []
    for label_path in find_label_files(srcdir):
        folder = os.path.dirname(label_path)
        try:
            tusimple_format.resolve_raw_file(srcdir, folder, os.path.basename(label_path))
        except ValueError as error:
            problems.append(f"{label_path}: cannot read label file ({error})")
            continue
        try:
            records = tusimple_format.read_labels(label_path, problems)
        except ValueError as error:  # the file cannot be read: `FILE: reason`
            problems.append(str(error))
            continue
        for number, record in records:
            location = f"{label_path}:{number}"
            try:
                path, filename = tusimple_format.resolve_raw_file(srcdir, folder,
                                                                  record["raw_file"])
            except ValueError as error:
                problems.append(f"{location}: {error}")
                continue
            payload = {"path": path, "filename": filename, "lanes": record["lanes"],
                       "h_samples": record["h_samples"]}
            frames.append(writer.Frame(split_of(filename, val_fraction), location, payload))
    return frames, problems


def build_example(payload, height, width):
    """Builds the serialized Example of one frame (payload from `read_label_files`)."""
    try:
        image = images.read_image(payload["path"])
    except images.ImageError as error:
        raise writer.FrameError(str(error)) from None
    source_size = image.shape[:2]
    check_frame_size(payload["path"], source_size, payload["lanes"], payload["h_samples"])
    resized = images.resize_image(image, height, width)  # as the pipeline and the predictor do
    semantic, instance = render_lanes(payload["lanes"], payload["h_samples"], source_size,
                                      (height, width))
    return schema.make_example(resized, semantic, instance, payload["filename"],
                               image_format=IMAGE_FORMAT, jpeg_quality=JPEG_QUALITY)


def convert(srcdir, outdir, height=256, width=512, val_fraction=0.1, strict=False,
            shard_size=writer.DEFAULT_SHARD_SIZE, num_workers=None):
    """Converts a TuSimple folder to train/val TFRecord shards plus `dataset_info.json`.

    Args:
        srcdir: folder holding the label files (searched recursively) and the frames.
        outdir: output folder.
        height, width: size of the stored images and labels.
        val_fraction: fraction of frames (by a hash of their name) going to "val".
        strict: if True, any bad line raises `writer.BadInputError` and nothing is written.
        shard_size: frames per shard.
        num_workers: threads converting frames; default min(4, CPU count).

    Returns:
        dict with "counts" ({"train": n, "val": n}), "skipped" (list of "FILE:LINE: reason") and
        "shards" (split -> list of paths).

    Raises:
        writer.BadInputError: strict, and a line is bad; nothing written.
        writer.NothingConvertedError: no frame converted (none there, or all bad); nothing written.
        ValueError: bad arguments, or `srcdir` holds no label file.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1], got {val_fraction}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if not os.path.isdir(srcdir):
        raise ValueError(f"TuSimple source folder does not exist: {srcdir}")
    if not is_tusimple_root(srcdir):
        raise ValueError(f"no TuSimple label files ({', '.join(LABEL_FILE_PATTERNS)}) under {srcdir}")
    frames, problems = read_label_files(srcdir, val_fraction)
    if not frames and not problems:
        raise writer.NothingConvertedError(
            [], f"TuSimple: the label files under {srcdir} hold no label line")
    logging.info("TuSimple: %d frames in the label files of %s, %d bad lines", len(frames), srcdir,
                 len(problems))
    summary = writer.convert_frames(
        frames, lambda payload: build_example(payload, height, width), outdir, ("train", "val"),
        problems=problems, strict=strict, shard_size=shard_size, num_workers=num_workers,
        description="TuSimple")
    lane_labels.write_dataset_info(outdir, "tusimple", height, width, summary)
    return summary


def main(argv=None):
    """Command line entry point; returns the exit status (0 ok, 2 bad input: `cli.support`)."""
    parser = argparse.ArgumentParser(description="Convert TuSimple lane labels to TFRecords.")
    parser.add_argument("--srcdir", required=True, help="TuSimple folder with label_data_*.json")
    parser.add_argument("--outdir", required=True, help="output folder for shards")
    parser.add_argument("--height", type=int, default=256, help="stored image height")
    parser.add_argument("--width", type=int, default=512, help="stored image width")
    parser.add_argument("--val_fraction", type=float, default=0.1, help="fraction of frames to val")
    parser.add_argument("--strict", action="store_true",
                        help="fail (writing nothing) if any label line is bad")
    args = parser.parse_args(argv)
    try:
        summary = convert(args.srcdir, args.outdir, height=args.height, width=args.width,
                          val_fraction=args.val_fraction, strict=args.strict)
    except ValueError as error:  # writer.BadInputError (--strict) is one too
        return support.report_error(error)
    counts = summary["counts"]
    print(f"written: train {counts['train']}, val {counts['val']}; skipped: {len(summary['skipped'])}"
          f" -> {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(support.run_main(main, tensorflow=True))
