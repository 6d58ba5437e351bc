"""TuSimple lane detection -> TFRecords (schema in `enet_discrim.data.schema`).

    python -m enet_discrim.data.tusimple --srcdir SRC --outdir OUT [--height 256 --width 512]
        [--val_fraction 0.1] [--strict]

TuSimple ships label files (`label_data_*.json`, `test_label.json`) with one JSON object per line:
`raw_file` (the frame, relative to the label file's folder), `h_samples` (the rows sampled) and
`lanes` (per lane, one x per row of h_samples; x < 0, i.e. -2, means the lane has no point there),
all in the frame's own pixel coordinates. h_samples must be whole, strictly increasing rows inside
the frame, and every x a finite number below the frame's width (`check_h_samples`,
`check_label_values`, `check_frame_size`): a line that breaks this, like one whose frame is empty,
unreadable or missing, is reported as `FILE:LINE: reason` and skipped.

Each frame is resized to height x width and stored as JPEG (quality 95). Each lane with at least
one point becomes one instance (ids 1..K in the order of `lanes`), drawn as a polyline through its
points; semantic is 1 on every lane pixel and 0 elsewhere.
"""
import argparse
import fnmatch
import hashlib
import json
import math
import os
import sys

from absl import logging
import cv2
import numpy as np

from enet_discrim.cli import support

if __name__ == "__main__":  # `python -m`: before schema imports TensorFlow, which logs as it loads
    support.quiet_startup(sys.argv[1:])

from enet_discrim.data import schema
from enet_discrim.data import writer

LABEL_FILE_PATTERNS = ("label_data_*.json", "test_label.json")
CLASS_NAMES = ("background", "lane")
REQUIRED_KEYS = ("raw_file", "lanes", "h_samples")
IMAGE_FORMAT = "jpeg"
JPEG_QUALITY = 95
# Fixed sub-pixel precision of the polyline vertices (cv2 `shift`): 4 bits = 1/16 pixel.
_SUBPIXEL_BITS = 4
# A coordinate is an int32 pixel position (as OpenCV draws them); anything larger, say -1e300,
# is no marker of a missing point but a broken label.
_COORDINATE_LIMIT = 2 ** 31


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


def lane_thickness(width):
    """Line thickness in pixels for lanes drawn on a label `width` pixels wide.

    max(2, round(width / 128)) gives 4 px at 512 wide, i.e. 10 px in a 1280-wide TuSimple frame:
    about the width of a painted marking near the camera, and still >= 1 px after the network's
    2x and the evaluation's downsampling, so thin far-away lane ends are not lost.
    """
    return max(2, round(width / 128))


def render_lanes(lanes, h_samples, source_size, target_size, thickness=None):
    """Draws TuSimple lanes as instance and semantic label maps.

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
    source_height, source_width = source_size
    height, width = target_size
    if thickness is None:
        thickness = lane_thickness(width)
    scale_x, scale_y = width / source_width, height / source_height
    instance = np.zeros((height, width), np.uint16)
    next_id = 1
    ys = np.asarray(h_samples, np.float64)
    for lane in lanes:
        xs = np.asarray(lane, np.float64)
        valid = xs >= 0
        if not valid.any():
            continue
        # Pixel centres map onto pixel centres: (x + 0.5) * scale - 0.5.
        points = np.stack([(xs[valid] + 0.5) * scale_x - 0.5, (ys[valid] + 0.5) * scale_y - 0.5], axis=1)
        if len(points) == 1:
            points = np.concatenate([points, points])  # cv2.polylines draws nothing for one vertex.
        fixed_point = np.round(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        cv2.polylines(instance, [fixed_point], isClosed=False, color=next_id, thickness=thickness,
                      lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        next_id += 1
    semantic = (instance > 0).astype(np.uint8)
    return semantic, instance


def split_of(filename, val_fraction):
    """"train" or "val" for a frame, from a hash of its name: stable whatever the order of frames.

    Args:
        filename: the frame's path relative to the dataset root.
        val_fraction: the expected fraction of frames going to "val", 0..1.
    """
    digest = hashlib.sha1(filename.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    return "val" if position < val_fraction else "train"


def parse_label_line(line):
    """Parses and checks one line of a label file.

    Args:
        line: the text of the line.

    Returns:
        dict with "raw_file" (str), "lanes" (list of lists of float), "h_samples" (list of float).

    Raises:
        writer.FrameError: the line is not JSON, misses a key, has a raw_file that is no usable
            path, h_samples that are not whole increasing rows, a lane whose length differs from
            h_samples, or a lane x that is not a pixel coordinate (NaN, Infinity, 1e300).
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise writer.FrameError(f"not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise writer.FrameError(f"expected a JSON object, got {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise writer.FrameError(f"missing key(s) {', '.join(missing)}")
    raw_file, lanes, h_samples = record["raw_file"], record["lanes"], record["h_samples"]
    check_raw_file(raw_file)
    check_h_samples(h_samples)
    if not isinstance(lanes, list) or not all(_is_number_list(lane) for lane in lanes):
        raise writer.FrameError("lanes must be a list of lists of numbers")
    for index, lane in enumerate(lanes):
        if len(lane) != len(h_samples):
            raise writer.FrameError(
                f"lane {index} has {len(lane)} points but h_samples has {len(h_samples)}")
    check_label_values(lanes)
    return {"raw_file": raw_file, "lanes": lanes, "h_samples": h_samples}


def _is_number_list(value):
    return isinstance(value, list) and all(
        isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)


def check_raw_file(raw_file):
    """Raises writer.FrameError unless `raw_file` is a non-empty string usable as a path."""
    if not isinstance(raw_file, str) or not raw_file:
        raise writer.FrameError("raw_file must be a non-empty string")
    if "\0" in raw_file:
        raise writer.FrameError(f"raw_file {raw_file!r} contains a NUL byte")


def check_h_samples(h_samples):
    """Raises writer.FrameError unless `h_samples` is a list of whole, non-negative rows in
    strictly increasing order (the frame's height is checked by `check_frame_size`)."""
    if not _is_number_list(h_samples):
        raise writer.FrameError("h_samples must be a list of numbers")
    for index, y in enumerate(h_samples):
        if not math.isfinite(y) or y < 0 or y >= _COORDINATE_LIMIT or y != int(y):
            raise writer.FrameError(f"h_samples[{index}] is not a row of the frame: {y!r}")
    for index in range(1, len(h_samples)):
        if h_samples[index] <= h_samples[index - 1]:
            raise writer.FrameError(
                f"h_samples must be strictly increasing, but h_samples[{index}] = "
                f"{h_samples[index]!r} follows {h_samples[index - 1]!r}")


def check_label_values(lanes):
    """Raises writer.FrameError for a lane x that is not finite or not an int32 pixel position
    (negative x marks a missing point; the frame's width is checked by `check_frame_size`)."""
    for lane_index, lane in enumerate(lanes):
        for index, x in enumerate(lane):
            if not math.isfinite(x) or abs(x) >= _COORDINATE_LIMIT:
                raise writer.FrameError(
                    f"lane {lane_index} point {index} is not a pixel coordinate: {x!r}")


def check_frame_size(path, frame_size, lanes, h_samples):
    """Raises writer.FrameError when the labels do not fit the frame they are given for.

    Labels are in the frame's own pixel coordinates: every row of h_samples must lie above the
    frame's bottom and every lane point (x >= 0) left of its right edge.

    Args:
        path: the frame, for the message.
        frame_size: (height, width) of the decoded frame.
        lanes, h_samples: the frame's checked labels (`parse_label_line`).
    """
    height, width = frame_size
    if h_samples and max(h_samples) >= height:
        raise writer.FrameError(
            f"frame {path} is {width}x{height}, but its h_samples reach row {max(h_samples)!r}")
    for index, lane in enumerate(lanes):
        if lane and max(lane) >= width:
            raise writer.FrameError(
                f"frame {path} is {width}x{height}, but lane {index} reaches x={max(lane)!r}")


def resolve_inside(root, folder, relative):
    """Resolves `relative` against `folder` and checks the result lies inside `root`.

    Only path arithmetic and symlink resolution happen here; no file is opened.

    Args:
        root: the dataset root.
        folder: the folder `relative` is relative to (the label file's folder).
        relative: the path from the label file (may be absolute, contain "..", or hit a symlink).

    Returns:
        (resolved absolute path, path relative to the resolved root).

    Raises:
        writer.FrameError: the path resolves outside `root`.
    """
    if "\0" in relative:
        raise writer.FrameError(f"raw_file {relative!r} contains a NUL byte")
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(folder, relative))
    if os.path.commonpath([real_root, resolved]) != real_root:
        raise writer.FrameError(f"raw_file {relative!r} resolves outside the dataset root, refused")
    return resolved, os.path.relpath(resolved, real_root).replace(os.sep, "/")


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
            resolve_inside(srcdir, folder, os.path.basename(label_path))
            with open(label_path, encoding="utf-8") as stream:
                lines = stream.read().splitlines()
        except (writer.FrameError, OSError, UnicodeDecodeError) as error:
            problems.append(f"{label_path}: cannot read label file ({error})")
            continue
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            location = f"{label_path}:{number}"
            try:
                record = parse_label_line(line)
                path, filename = resolve_inside(srcdir, folder, record["raw_file"])
            except writer.FrameError as error:
                problems.append(f"{location}: {error.reason}")
                continue
            payload = {"path": path, "filename": filename, "lanes": record["lanes"],
                       "h_samples": record["h_samples"]}
            frames.append(writer.Frame(split_of(filename, val_fraction), location, payload))
    return frames, problems


def read_image(path):
    """Reads an image file as RGB uint8 [H, W, 3]; raises writer.FrameError if missing or unreadable."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise writer.FrameError(f"image not found: {path}") from None
    except OSError as error:
        raise writer.FrameError(f"cannot read image {path}: {error.strerror}") from None
    if not data:
        raise writer.FrameError(f"empty image file (0 bytes): {path}")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise writer.FrameError(f"unreadable image (not a decodable image file): {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def build_example(payload, height, width):
    """Builds the serialized Example of one frame (payload from `read_label_files`)."""
    image = read_image(payload["path"])
    source_size = image.shape[:2]
    check_frame_size(payload["path"], source_size, payload["lanes"], payload["h_samples"])
    # INTER_AREA averages the source pixels when shrinking (no aliasing); bilinear when enlarging.
    shrinking = source_size[0] >= height and source_size[1] >= width
    resized = cv2.resize(image, (width, height),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
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
    info = {
        "dataset": "tusimple",
        "num_classes": len(CLASS_NAMES),
        "class_names": list(CLASS_NAMES),
        "ignore_label": schema.IGNORE_LABEL,
        "height": height,
        "width": width,
        "counts": summary["counts"],
        "skipped": len(summary["skipped"]),
        "image_format": IMAGE_FORMAT,
        "lane_thickness": lane_thickness(width),
    }
    writer.write_json_atomic(os.path.join(outdir, "dataset_info.json"), info)
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
