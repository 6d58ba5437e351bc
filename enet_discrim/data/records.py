"""Training records from a `--srcdir`: its TFRecord shards, or a raw dataset converted first.

`prepare_records(srcdir, dataset, height, width)` is what training starts with. A folder of
shards is used as it is; a raw TuSimple (`label_data_*.json`), CULane (`list/train_gt.txt`) or
Cityscapes (`leftImg8bit/`, `gtFine/`) folder is converted once into `SRCDIR/tfrecords/` at the
training size, and that conversion is reused by later runs of the same size. Lane records of
either lane dataset train a lane model of either (`formats.LANE_DATASETS`).
"""
import os

import tensorflow as tf
from absl import logging

from enet_discrim.data import pipeline
from enet_discrim.data import writer
from enet_discrim.formats import DATASETS, LANE_DATASETS  # noqa: F401  (DATASETS: public name kept)

CONVERTED_SUBDIR = "tfrecords"
#: What records written before dataset_info.json existed hold: TuSimple lanes.
_TUSIMPLE_INFO = {"dataset": "tusimple", "num_classes": 2, "class_names": ["background", "lane"],
                  "ignore_label": 255}


def prepare_records(srcdir, dataset, height, width):
    """Finds the TFRecords of `srcdir`, converting a raw dataset folder first.

    Args:
        srcdir: a folder of `train-*`/`val-*` shards, or a raw TuSimple, CULane or Cityscapes
            folder.
        dataset: one of `formats.DATASETS`: what the folder must hold (a lane dataset: either).
        height, width: the training size; raw frames are converted at it.

    Returns:
        `(records_dir, dataset_info)`: the folder of the shards and its dataset_info.json as a dict.

    Raises:
        ValueError: the folder is missing, empty, holds neither shards nor a known dataset, or
            holds another dataset than `dataset`.
    """
    if not os.path.isdir(srcdir):
        raise ValueError(f"--srcdir {srcdir!r} does not exist or is not a folder")
    if not os.listdir(srcdir):
        raise ValueError(f"--srcdir {srcdir!r} is empty: it must hold TFRecords or a raw dataset")
    if pipeline.has_shards(srcdir, "train"):
        return srcdir, dataset_info(srcdir, dataset)

    converted = os.path.join(srcdir, CONVERTED_SUBDIR)
    if pipeline.has_shards(converted, "train") and _matches_size(converted, height, width):
        logging.info("Using the TFRecords converted earlier in %s", converted)
        return converted, dataset_info(converted, dataset)

    from enet_discrim.data import cityscapes, culane, tusimple  # converters only when needed

    if tusimple.is_tusimple_root(srcdir):
        _check_dataset(srcdir, "TuSimple", "tusimple", dataset)
        logging.info("%s holds a raw TuSimple dataset: converting it to TFRecords in %s", srcdir,
                     converted)
        tusimple.convert(srcdir, converted, height=height, width=width)
    elif culane.is_culane_root(srcdir):
        _check_dataset(srcdir, "CULane", "culane", dataset)
        logging.info("%s holds a raw CULane dataset: converting the frames of its training list "
                     "to TFRecords in %s", srcdir, converted)
        culane.convert(srcdir, converted, height=height, width=width)
    elif cityscapes.is_cityscapes_root(srcdir):
        _check_dataset(srcdir, "Cityscapes", "cityscapes", dataset)
        logging.info("%s holds a raw Cityscapes dataset: converting it to TFRecords in %s", srcdir,
                     converted)
        for split in cityscapes.SPLITS:
            cityscapes.convert(srcdir, converted, split, height=height, width=width)
    else:
        raise ValueError(
            f"--srcdir {srcdir!r} holds no train-*.tfrecord shards and no raw TuSimple "
            "(label_data_*.json), CULane (list/train_gt.txt) or Cityscapes (leftImg8bit/, gtFine/) "
            "dataset")
    if not pipeline.has_shards(converted, "train"):
        raise ValueError(f"Converting {srcdir!r} wrote no training frames: see the warnings above")
    return converted, dataset_info(converted, dataset)


def dataset_info(records_dir, dataset):
    """The dataset_info.json of `records_dir`, checked against `dataset`.

    Records without one are TuSimple records of an older converter; Cityscapes ones need it.
    """
    path = os.path.join(records_dir, writer.DATASET_INFO_FILE)
    if os.path.exists(path):
        info = writer.read_dataset_info(path)
        if not _compatible(info.get("dataset", dataset), dataset):
            raise ValueError(
                f"{path} describes a {info['dataset']!r} dataset but --dataset is {dataset!r}")
        return info
    if dataset not in LANE_DATASETS:
        raise ValueError(f"{records_dir!r} has no {writer.DATASET_INFO_FILE}: convert Cityscapes "
                         "with enet_discrim.data.cityscapes")
    return dict(_TUSIMPLE_INFO)


def count_frames(info, split, files):
    """Frames in `split`: the converter's count in `info`, else counted in the shards `files`."""
    counted = info.get("counts", {}).get(split)
    if counted is not None:
        return counted
    return sum(1 for _ in tf.data.TFRecordDataset(files))


def _compatible(found, dataset):
    """Whether records of dataset `found` train a model of `dataset`: the same, or both lanes."""
    return found == dataset or (found in LANE_DATASETS and dataset in LANE_DATASETS)


def _check_dataset(srcdir, found_name, found, dataset):
    if not _compatible(found, dataset):
        raise ValueError(f"--srcdir {srcdir!r} holds a {found_name} dataset but --dataset is "
                         f"{dataset!r}")


def _matches_size(records_dir, height, width):
    path = os.path.join(records_dir, writer.DATASET_INFO_FILE)
    if not os.path.exists(path):
        return False
    info = writer.read_dataset_info(path)
    return (info.get("height"), info.get("width")) == (height, width)
