"""Cityscapes' files: the dataset's names and instance ids, and the instance results folder that
the official evaluator reads.

The dataset, as it ships::

    ROOT/leftImg8bit/SPLIT/CITY/CITY_SSSSSS_FFFFFF_leftImg8bit.png      RGB, 8 bit
    ROOT/gtFine/SPLIT/CITY/CITY_SSSSSS_FFFFFF_gtFine_labelIds.png       uint8 label ids
    ROOT/gtFine/SPLIT/CITY/CITY_SSSSSS_FFFFFF_gtFine_instanceIds.png    uint16: labelId * 1000 + k
                                                                        on thing instances, the
                                                                        bare labelId elsewhere
    ROOT/gtFine/SPLIT/CITY/CITY_SSSSSS_FFFFFF_gtFine_color.png          RGBA label colours

Results, as cityscapesscripts' `evalInstanceLevelSemanticLabeling.getPrediction` finds them: for a
ground truth `gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png` it searches the
results folder recursively for exactly one `<city>_<seq>_<frame>*.txt` (`result_names`). Each line
of that text file is `relative/mask.png labelId confidence`: the path relative to the text file's
folder (no spaces), the REGULAR Cityscapes label id (26 for car, not the train id 13) and a float
score; a mask is a PNG where any non-zero pixel belongs to the instance, at the ground truth's
resolution. `write_results` writes

    <results_dir>/<stem>.txt
    <results_dir>/masks/<stem>_<k>.png      (uint8, 0 / 255, k = instance id, 3 digits)
"""

import fnmatch
import os
import re

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS
from cityscapesscripts.helpers.labels import trainId2label

from enet_discrim import atomic
from enet_discrim.formats.images import resize_labels

IMAGES_FOLDER = "leftImg8bit"
GROUND_TRUTH_FOLDER = "gtFine"
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_IDS_SUFFIX = "_gtFine_instanceIds.png"
COLOR_SUFFIX = "_gtFine_color.png"
#: instanceIds encode a thing instance as labelId * 1000 + k; smaller values are plain label ids.
INSTANCE_ID_FACTOR = 1000
#: Train ids of the classes with instances, which the instance benchmark scores (person, rider,
#: car, truck, bus, train, motorcycle, bicycle): 11..18.
THING_TRAIN_IDS = tuple(sorted(label.trainId for label in CITYSCAPES_LABELS
                               if label.hasInstances and not label.ignoreInEval))
#: Where `write_results` puts the masks, inside the results folder.
MASKS_FOLDER = "masks"
# The evaluator matches `<city>_<seq>_<frame>*.txt` and splits names at "_".
_STEM_PATTERN = re.compile(r"^[^_\s/]+_\d+_\d+[^\s/]*$")


def ground_truth_pattern(dataset_dir, split):
    """The glob of a split's instance ground truth: `ROOT/gtFine/SPLIT/*/*_gtFine_instanceIds.png`
    under `dataset_dir`."""
    return os.path.join(dataset_dir, GROUND_TRUTH_FOLDER, split, "*", "*" + INSTANCE_IDS_SUFFIX)


def is_result_stem(stem):
    """Whether results named `stem` are found by the official evaluator: it starts with
    `<city>_<seq>_<frame>` (e.g. "frankfurt_000000_000294_leftImg8bit") and has no space or "/"."""
    return bool(_STEM_PATTERN.match(stem))


def result_names(ground_truth_path, file_names):
    """The names among `file_names` that `getPrediction` takes for a ground truth's results."""
    city, sequence, frame = os.path.basename(ground_truth_path).split("_")[:3]
    return fnmatch.filter(file_names, f"{city}_{sequence}_{frame}*.txt")


def instance_confidences(class_probabilities, instance_map, instance_class_train_ids):
    """The confidence column of the results: per instance, the mean probability of its class over
    its pixels.

    Args:
        class_probabilities: float [H, W, C] softmax output (C = 19 train ids).
        instance_map: int [H, W], 0 background, 1..K instances.
        instance_class_train_ids: int [K] class of instance k at index k - 1.

    Returns:
        float32 [K] (0 for an instance without pixels).
    """
    class_probabilities = np.asarray(class_probabilities)
    instance_map = np.asarray(instance_map)
    scores = np.zeros(len(instance_class_train_ids), dtype=np.float32)
    for index, class_id in enumerate(instance_class_train_ids):
        mask = instance_map == index + 1
        if mask.any():
            scores[index] = class_probabilities[..., class_id][mask].mean()
    return scores


def write_results(results_dir, image_stem, instance_map, instance_class_train_ids, confidences,
                  output_size=None):
    """Writes one image's instances as the official evaluator reads them.

    Each file is written atomically (`enet_discrim.atomic`), the masks before the text file that
    lists them: a run killed half-way leaves no text file naming a mask that is not there.

    Args:
        results_dir: results folder (created if missing).
        image_stem: the image's name without extension, starting `<city>_<seq>_<frame>`, e.g.
            "frankfurt_000000_000294" or "frankfurt_000000_000294_leftImg8bit".
        instance_map: int [h, w], 0 background, k > 0 instance k.
        instance_class_train_ids: int [K] train id of instance k at index k - 1 (e.g. 13 = car).
        confidences: float [K] score of instance k at index k - 1.
        output_size: (height, width) of the ground truth (e.g. (1024, 2048)) when instance_map
            is smaller; masks are resized nearest (`resize_labels`). None: instance_map's own size.

    Returns:
        path of the written `<stem>.txt`.

    Raises:
        ValueError: naming the stem, for a stem the evaluator would not find, or instances and
            classes that do not fit together.
    """
    instance_map = np.asarray(instance_map)
    classes = [int(c) for c in np.asarray(instance_class_train_ids).ravel()]
    confidences = [float(c) for c in np.asarray(confidences).ravel()]
    if not is_result_stem(image_stem):
        raise ValueError(f"image stem {image_stem!r} must look like <city>_<seq>_<frame>[...] "
                         "without spaces, or the evaluator cannot find it")
    if instance_map.ndim != 2:
        raise ValueError(f"{image_stem}: instance_map must be [h, w], got {instance_map.shape}")
    if len(classes) != len(confidences):
        raise ValueError(f"{image_stem}: {len(classes)} classes but {len(confidences)} "
                         "confidences")
    if instance_map.size and instance_map.max() > len(classes):
        raise ValueError(f"{image_stem}: instance id {instance_map.max()} has no class "
                         f"(only {len(classes)} given)")
    unknown = sorted({c for c in classes if c not in trainId2label})
    if unknown:
        raise ValueError(f"{image_stem}: unknown Cityscapes train ids {unknown}")
    if output_size is not None:
        height, width = output_size
        instance_map = resize_labels(instance_map, width, height)

    os.makedirs(os.path.join(results_dir, MASKS_FOLDER), exist_ok=True)
    lines = []
    for instance_id, (train_id, confidence) in enumerate(zip(classes, confidences), start=1):
        mask = instance_map == instance_id
        if not mask.any():
            continue  # the evaluator skips empty masks anyway
        relative = f"{MASKS_FOLDER}/{image_stem}_{instance_id:03d}.png"
        mask_path = os.path.join(results_dir, relative)
        ok, encoded = cv2.imencode(".png", mask.astype(np.uint8) * 255)
        if not ok:
            raise ValueError(f"{mask_path}: cannot encode the mask as PNG")
        atomic.write_bytes(mask_path, encoded)
        lines.append(f"{relative} {trainId2label[train_id].id} {confidence:.6f}\n")
    text_path = os.path.join(results_dir, f"{image_stem}.txt")
    atomic.write_text(text_path, "".join(lines))
    return text_path
