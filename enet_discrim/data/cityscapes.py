"""Cityscapes (gtFine) -> TFRecords (schema in `enet_discrim.data.schema`).

    python -m enet_discrim.data.cityscapes --srcdir SRC --outdir OUT --split train|val
        [--height 512 --width 1024] [--strict]

Reads the files as the dataset ships them: `leftImg8bit/SPLIT/CITY/*_leftImg8bit.png` with
`gtFine/SPLIT/CITY/*_gtFine_labelIds.png` and `*_gtFine_instanceIds.png` (no createTrainId* step
needed). Label ids become the 19 trainIds through `cityscapesscripts.helpers.labels` (255 = ignore).
Instances: every instanceId >= 1000 (labelId = instanceId // 1000) of a class with instances and a
valid trainId gets its own id 1..K; crowd/group regions (thing pixels with an id below 1000) and the
instances of ignored classes (caravan, trailer: trainId 255) get instance 0. Images are resized to
height x width and stored as JPEG (quality 95); labels are resized with nearest neighbour before
the ids are mapped, so instances that vanish in the resize do not use up an id.

A frame with a missing, empty or unreadable file, an instanceIds PNG that is not 16-bit (8 bits
keep the ids mod 256, losing every instance) or files of different sizes is reported as
`FILE: reason` and skipped.
"""
import argparse
import glob
import os
import sys

from absl import logging
from cityscapesscripts.helpers import labels as cityscapes_labels
import numpy as np

from enet_discrim.cli import support
from enet_discrim.formats import cityscapes as cityscapes_format
from enet_discrim.formats import paths
from enet_discrim.formats import images
# Public names of this module before the format had its own (kept for their callers).
from enet_discrim.formats.cityscapes import (IMAGE_SUFFIX, INSTANCE_ID_FACTOR,  # noqa: F401
                                             INSTANCE_IDS_SUFFIX, LABEL_IDS_SUFFIX)

if __name__ == "__main__":  # `python -m`: before schema imports TensorFlow, which logs as it loads
    support.quiet_startup(sys.argv[1:])

from enet_discrim.data import schema
from enet_discrim.data import writer

SPLITS = ("train", "val")
IMAGE_FORMAT = "jpeg"
JPEG_QUALITY = 95


def _has_train_id(label):
    return 0 <= label.trainId < schema.IGNORE_LABEL


def train_id_table():
    """Lookup table label id -> trainId: uint8 [256], 255 for ignored and unknown ids."""
    table = np.full(256, schema.IGNORE_LABEL, np.uint8)
    for label in cityscapes_labels.labels:
        if 0 <= label.id < 256 and _has_train_id(label):
            table[label.id] = label.trainId
    return table


def class_names():
    """The names of the trainIds 0..18, in trainId order."""
    names = {label.trainId: label.name for label in cityscapes_labels.labels if _has_train_id(label)}
    return [names[train_id] for train_id in range(len(names))]


def thing_label_ids():
    """Sorted label ids of the classes whose instances become instance ids."""
    return sorted(label.id for label in cityscapes_labels.labels
                  if label.hasInstances and _has_train_id(label))


def thing_train_ids():
    """Sorted trainIds of the classes with instances (person ... bicycle: 11..18)."""
    return list(cityscapes_format.THING_TRAIN_IDS)


def labels_to_targets(label_ids, instance_ids, table=None):
    """Turns Cityscapes labelIds/instanceIds maps into the schema's semantic and instance maps.

    Args:
        label_ids: integer [H, W], Cityscapes label ids.
        instance_ids: integer [H, W], Cityscapes instance ids (labelId * 1000 + n for instances,
            the plain label id elsewhere, including crowd regions).
        table: the `train_id_table()`, passed in to avoid rebuilding it per frame.

    Returns:
        (semantic uint8 [H, W] trainIds with 255 = ignore, instance uint16 [H, W] with 0 = none and
        1..K for the thing instances in increasing order of their Cityscapes id).
    """
    if table is None:
        table = train_id_table()
    label_ids = np.asarray(label_ids)
    instance_ids = np.asarray(instance_ids).astype(np.int64)
    semantic = table[np.clip(label_ids, 0, 255)]
    is_instance = (instance_ids >= INSTANCE_ID_FACTOR) & np.isin(
        instance_ids // INSTANCE_ID_FACTOR, thing_label_ids())
    ids = np.unique(instance_ids[is_instance])
    if len(ids) > schema.MAX_INSTANCE_ID:
        raise ValueError(f"{len(ids)} instances do not fit the uint16 instance map")
    instance = np.zeros(instance_ids.shape, np.uint16)
    instance[is_instance] = np.searchsorted(ids, instance_ids[is_instance]) + 1
    return semantic, instance


def is_cityscapes_root(path):
    """True if `path` holds Cityscapes' `leftImg8bit/` and `gtFine/` folders."""
    return (os.path.isdir(os.path.join(path, cityscapes_format.IMAGES_FOLDER))
            and os.path.isdir(os.path.join(path, cityscapes_format.GROUND_TRUTH_FOLDER)))


def find_frames(srcdir, split):
    """The frames of one split: list of writer.Frame with payload dict(image, label_ids, instance_ids,
    filename), sorted by image path."""
    pattern = os.path.join(srcdir, cityscapes_format.IMAGES_FOLDER, split, "*", "*" + IMAGE_SUFFIX)
    frames = []
    for image_path in sorted(glob.glob(pattern)):
        city = os.path.basename(os.path.dirname(image_path))
        stem = os.path.basename(image_path)[:-len(IMAGE_SUFFIX)]
        label_folder = os.path.join(srcdir, cityscapes_format.GROUND_TRUTH_FOLDER, split, city)
        payload = {
            "image": image_path,
            "label_ids": os.path.join(label_folder, stem + LABEL_IDS_SUFFIX),
            "instance_ids": os.path.join(label_folder, stem + INSTANCE_IDS_SUFFIX),
            "filename": os.path.relpath(image_path, srcdir).replace(os.sep, "/"),
        }
        # A city folder linked from outside the dataset root is not converted (as TuSimple's
        # converter refuses a raw_file outside its root).
        for what in ("image", "label_ids", "instance_ids"):
            try:
                paths.resolve_inside(srcdir, srcdir, payload[what], what)
            except ValueError as error:
                payload["refused"] = str(error)
                break
        frames.append(writer.Frame(split, image_path, payload))
    return frames


def _read(path, what, unchanged=True):
    """`images.read_image`, its errors as writer.FrameError naming the file; a missing label map
    is named as the image's missing partner."""
    if what != "image" and not os.path.exists(path):
        raise writer.FrameError(f"missing gtFine partner {path}")
    try:
        return images.read_image(path, unchanged=unchanged)
    except images.ImageError as error:
        raise writer.FrameError(f"{error.reason} ({what})", location=path) from None


def _read_label_map(path, what, dtypes):
    label_map = _read(path, what)
    if label_map.ndim != 2 or label_map.dtype not in dtypes:
        bits = " or ".join(str(np.dtype(dtype).itemsize * 8) for dtype in dtypes)
        raise writer.FrameError(f"{what} must be a single-channel {bits}-bit PNG, got "
                                f"{label_map.dtype} {label_map.shape}", location=path)
    return label_map


def build_example(payload, height, width, table):
    """Builds the serialized Example of one frame (payload from `find_frames`)."""
    if "refused" in payload:
        raise writer.FrameError(payload["refused"])
    label_ids = _read_label_map(payload["label_ids"], "labelIds", (np.uint8, np.uint16))
    # Instance ids are labelId * 1000 + n: an 8-bit map has lost them (kept mod 256).
    instance_ids = _read_label_map(payload["instance_ids"], "instanceIds", (np.uint16,))
    image = _read(payload["image"], "image", unchanged=False)
    sizes = {"image": image.shape[:2], "labelIds": label_ids.shape, "instanceIds": instance_ids.shape}
    if len(set(sizes.values())) != 1:
        listed = ", ".join(f"{name} {w}x{h}" for name, (h, w) in sizes.items())
        raise writer.FrameError(f"size mismatch: {listed}")
    image = images.resize_image(image, height, width)  # as the pipeline and the predictor do
    # Both maps sample the same source pixels, which keeps them consistent.
    label_ids = images.resize_labels(label_ids, width, height)
    instance_ids = images.resize_labels(instance_ids, width, height)
    semantic, instance = labels_to_targets(label_ids, instance_ids, table)
    return schema.make_example(image, semantic, instance, payload["filename"],
                               image_format=IMAGE_FORMAT, jpeg_quality=JPEG_QUALITY)


def _merged_info(path, split, count, skipped, height, width):
    """dataset_info.json content, keeping the other split's counts from an earlier run if compatible."""
    info = {
        "dataset": "cityscapes",
        "num_classes": len(class_names()),
        "class_names": class_names(),
        "ignore_label": schema.IGNORE_LABEL,
        "thing_train_ids": thing_train_ids(),
        "height": height,
        "width": width,
        "counts": {},
        "skipped": {},
        "image_format": IMAGE_FORMAT,
    }
    if os.path.exists(path):
        try:
            previous = writer.read_dataset_info(path)
            if not isinstance(previous.get("skipped", {}), dict):
                raise ValueError(f"{path}: \"skipped\" is not a JSON object")
        except ValueError as error:
            logging.warning("%s; writing it afresh", error)
            previous = None
        if previous is not None:
            if (previous.get("dataset"), previous.get("height"), previous.get("width")) == (
                    "cityscapes", height, width):
                info["counts"].update(previous.get("counts", {}))
                info["skipped"].update(previous.get("skipped", {}))
            else:
                logging.warning("%s describes another dataset or size (%s %sx%s); its counts are "
                                "dropped", path, previous.get("dataset"), previous.get("width"),
                                previous.get("height"))
    info["counts"][split] = count
    info["skipped"][split] = skipped
    return info


def convert(srcdir, outdir, split, height=512, width=1024, strict=False,
            shard_size=writer.DEFAULT_SHARD_SIZE, num_workers=None):
    """Converts one Cityscapes split to TFRecord shards and updates `dataset_info.json`.

    Args:
        srcdir: the Cityscapes root (holding leftImg8bit/ and gtFine/).
        outdir: output folder.
        split: "train" or "val".
        height, width: size of the stored images and labels.
        strict: if True, any bad frame raises `writer.BadInputError` and nothing is written.
        shard_size: frames per shard.
        num_workers: threads converting frames; default min(4, CPU count).

    Returns:
        dict with "counts" ({split: n}), "skipped" (list of "FILE: reason") and "shards".

    Raises:
        writer.BadInputError: strict, and a frame is bad; nothing written.
        writer.NothingConvertedError: every frame is bad; nothing written.
        ValueError: bad arguments, or `srcdir` holds no frame of `split`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if not is_cityscapes_root(srcdir):
        raise ValueError(f"not a Cityscapes root (needs leftImg8bit/ and gtFine/): {srcdir}")
    frames = find_frames(srcdir, split)
    if not frames:
        raise ValueError(f"no images matching leftImg8bit/{split}/*/*{IMAGE_SUFFIX} under {srcdir}")
    logging.info("Cityscapes %s: %d frames in %s", split, len(frames), srcdir)
    table = train_id_table()
    summary = writer.convert_frames(
        frames, lambda payload: build_example(payload, height, width, table), outdir, (split,),
        strict=strict, shard_size=shard_size, num_workers=num_workers,
        description=f"Cityscapes {split}")
    info_path = os.path.join(outdir, "dataset_info.json")
    info = _merged_info(info_path, split, summary["counts"][split], len(summary["skipped"]), height,
                        width)
    writer.write_json_atomic(info_path, info)
    return summary


def main(argv=None):
    """Command line entry point; returns the exit status (0 ok, 2 bad input: `cli.support`)."""
    parser = argparse.ArgumentParser(description="Convert a Cityscapes gtFine split to TFRecords.")
    parser.add_argument("--srcdir", required=True, help="Cityscapes root with leftImg8bit/, gtFine/")
    parser.add_argument("--outdir", required=True, help="output folder for shards")
    parser.add_argument("--split", required=True, choices=SPLITS, help="the split to convert")
    parser.add_argument("--height", type=int, default=512, help="stored image height")
    parser.add_argument("--width", type=int, default=1024, help="stored image width")
    parser.add_argument("--strict", action="store_true",
                        help="fail (writing nothing) if any frame is bad")
    args = parser.parse_args(argv)
    try:
        summary = convert(args.srcdir, args.outdir, args.split, height=args.height,
                          width=args.width, strict=args.strict)
    except ValueError as error:  # writer.BadInputError (--strict) is one too
        return support.report_error(error)
    print(f"written: {args.split} {summary['counts'][args.split]}; "
          f"skipped: {len(summary['skipped'])} -> {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(support.run_main(main, tensorflow=True))
