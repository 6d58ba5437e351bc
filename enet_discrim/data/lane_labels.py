"""Lane records, whatever dataset they come from: classes, image encoding, and lanes drawn as
instance and semantic label maps. The TuSimple and CULane converters share them, so that a model
trained on either dataset's records sees the same labels."""

import os

import cv2
import numpy as np

from enet_discrim.data import schema
from enet_discrim.data import writer

CLASS_NAMES = ("background", "lane")
IMAGE_FORMAT = "jpeg"
JPEG_QUALITY = 95
# Fixed sub-pixel precision of the polyline vertices (cv2 `shift`): 4 bits = 1/16 pixel.
_SUBPIXEL_BITS = 4


def lane_thickness(width):
    """Line thickness in pixels for lanes drawn on a label `width` pixels wide.

    max(2, round(width / 128)) gives 4 px at 512 wide, i.e. 10 px in a 1280-wide TuSimple frame:
    about the width of a painted marking near the camera, and still >= 1 px after the network's
    2x and the evaluation's downsampling, so thin far-away lane ends are not lost.
    """
    return max(2, round(width / 128))


def draw_lanes(lanes, source_size, target_size, thickness=None):
    """Draws lanes, each a polyline through its points, as instance and semantic label maps.

    Args:
        lanes: list of K lanes, each a float sequence of (x, y) points in the source frame's
            pixels (an empty lane draws nothing and takes no id). Points may lie outside the
            frame: the lines are cut at its edges.
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
    scale = np.array([width / source_width, height / source_height])
    instance = np.zeros((height, width), np.uint16)
    next_id = 1
    for lane in lanes:
        points = np.asarray(lane, np.float64).reshape(-1, 2)
        if not len(points):
            continue
        # Pixel centres map onto pixel centres: (x + 0.5) * scale - 0.5.
        points = (points + 0.5) * scale - 0.5
        if len(points) == 1:
            points = np.concatenate([points, points])  # cv2.polylines draws nothing for one vertex.
        fixed_point = np.round(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        cv2.polylines(instance, [fixed_point], isClosed=False, color=next_id, thickness=thickness,
                      lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        next_id += 1
    semantic = (instance > 0).astype(np.uint8)
    return semantic, instance


def write_dataset_info(outdir, dataset, height, width, summary):
    """Writes the `dataset_info.json` of lane records beside their shards (atomically).

    Args:
        outdir: the records folder.
        dataset: the dataset the records come from ("tusimple", "culane").
        height, width: the stored size.
        summary: `writer.convert_frames`'s result.

    Returns:
        the dict written.
    """
    info = {
        "dataset": dataset,
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
    writer.write_json_atomic(os.path.join(outdir, writer.DATASET_INFO_FILE), info)
    return info
