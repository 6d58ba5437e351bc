"""Inference on single frames: the network, mean-shift clustering, lane fitting, timings.

`Predictor(modeldir)` loads `model.keras` (safe mode) and `config.json` written by training and
turns an RGB frame of any size into instances at the frame's size, plus TuSimple lanes.
"""

import dataclasses
import json
import os
import time

import cv2
import keras
import numpy as np
import tensorflow as tf

from enet_discrim import clustering, lanes
from enet_discrim.model import ENet  # noqa: F401  (registers the serialisable classes)

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
REQUIRED_CONFIG_KEYS = ("height", "width", "num_classes", "embedding_dim", "dataset")
# Smallest instance kept, in pixels of a 256 x 512 network input; scaled with the input area.
MIN_PIXELS_AT_256X512 = 50


@dataclasses.dataclass
class Prediction:
    """The result for one frame.

    Attributes:
        semantic_probabilities: float32 [h, w, C] at network resolution.
        embeddings: float32 [h, w, D] at network resolution.
        instances: int32 [h, w] at network resolution, 0 background, 1..K.
        instance_classes: int32 [K], the class (train id) of instance k at index k - 1.
        frame_size: (height, width) of the original frame.
        timings_ms: {"network", "clustering", "postprocessing"} for this frame.
        lanes: TuSimple lanes (x per h_sample, -2 absent) when lanes were fitted, else None.
    """

    semantic_probabilities: np.ndarray
    embeddings: np.ndarray
    instances: np.ndarray
    instance_classes: np.ndarray
    frame_size: tuple
    timings_ms: dict
    lanes: list | None = None

    def instances_at_frame_size(self):
        """uint16 [H, W] instance ids at the original frame's size (nearest neighbour)."""
        height, width = self.frame_size
        return cv2.resize(self.instances.astype(np.uint16), (width, height), interpolation=cv2.INTER_NEAREST)


def read_rgb(path):
    """Reads an image file as uint8 RGB [H, W, 3]; grey and RGBA (and 16-bit) are converted.

    Raises:
        ValueError: naming the file, when it is missing or not a readable image.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ValueError(f"{path}: not a readable image")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_config(modeldir):
    """Reads `config.json` of a model folder, checking the model is there too.

    Raises:
        ValueError: listing everything missing from the folder or the config.
    """
    missing = [
        name for name in (MODEL_FILE, CONFIG_FILE) if not os.path.isfile(os.path.join(modeldir, name))
    ]
    if not os.path.isdir(modeldir):
        raise ValueError(f"Model folder {modeldir!r} does not exist (it needs {MODEL_FILE} and {CONFIG_FILE})")
    if missing:
        raise ValueError(
            f"Model folder {modeldir!r} is missing {' and '.join(missing)} (training.py writes both to --outdir)"
        )
    path = os.path.join(modeldir, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as file:
            config = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    absent = [key for key in REQUIRED_CONFIG_KEYS if key not in config]
    if absent:
        raise ValueError(f"{path} lacks {', '.join(absent)}")
    return config


class Predictor:
    """Runs a trained model on frames.

    Args:
        modeldir: folder with `model.keras` and `config.json`.
        bandwidth: mean-shift bandwidth; default: the config's (set from the training margins).
        min_confidence: class probability a pixel needs to be clustered; default: the config's
            (0 when absent: the plain argmax).
        min_pixels: smallest instance kept; default: 50 pixels at 256 x 512, scaled with the area.
        lane_model: how lanes are fitted (`lanes.LANE_MODELS`); default: the config's
            ("polynomial" when absent).
        The config's `lane_top_trim` (map rows; 0 when absent) goes to `lanes.fit_lanes`.

    Example:
    >>> predictor = Predictor("trained_model")
    >>> prediction = predictor.predict(read_rgb("frame.jpg"))
    >>> prediction.lanes  # TuSimple lanes in frame coordinates
    """

    def __init__(self, modeldir, bandwidth=None, min_pixels=None, min_confidence=None, lane_model=None):
        self.config = load_config(modeldir)
        self.model = keras.models.load_model(os.path.join(modeldir, MODEL_FILE), safe_mode=True)
        if (self.model.num_classes, self.model.embedding_dim) != (
            self.config["num_classes"],
            self.config["embedding_dim"],
        ):
            raise ValueError(f"{modeldir}: {MODEL_FILE} and {CONFIG_FILE} disagree on classes or embedding size")
        self.height, self.width = self.config["height"], self.config["width"]
        self.bandwidth = bandwidth or self.config.get("bandwidth", clustering.DEFAULT_BANDWIDTH)
        self.min_confidence = (self.config.get("min_confidence", 0.0) if min_confidence is None
                               else min_confidence)
        if not 0.0 <= self.min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in [0, 1), got {self.min_confidence}")
        self.lane_top_trim = float(self.config.get("lane_top_trim", 0.0))
        if self.lane_top_trim < 0:
            raise ValueError(f"{os.path.join(modeldir, CONFIG_FILE)}: lane_top_trim must be >= 0, "
                             f"got {self.lane_top_trim}")
        self.lane_model = lane_model or self.config.get("lane_model", "polynomial")
        if self.lane_model not in lanes.LANE_MODELS:
            source = "" if lane_model else f"{os.path.join(modeldir, CONFIG_FILE)}: "
            raise ValueError(f"{source}lane_model must be one of {', '.join(lanes.LANE_MODELS)}, "
                             f"got {self.lane_model!r}")
        area_ratio = self.height * self.width / (256 * 512)
        self.min_pixels = min_pixels or max(10, round(MIN_PIXELS_AT_256X512 * area_ratio))
        self.thing_classes = self.config.get("thing_train_ids") or [1]
        self.is_lanes = self.config["dataset"] == "tusimple"
        self._network = tf.function(
            lambda images: self.model(images, training=False),
            input_signature=[tf.TensorSpec([None, self.height, self.width, 3], tf.float32)],
        )
        # Trace now: the first frame's run_time must not carry the one-time graph building (TuSimple
        # scores a frame slower than 200 ms as a miss).
        self._network(tf.zeros([1, self.height, self.width, 3]))

    def predict(self, image_rgb, h_samples=lanes.TUSIMPLE_H_SAMPLES):
        """Instances (and lanes, for a lane model) of one uint8 RGB frame of any size."""
        frame_height, frame_width = image_rgb.shape[:2]
        start = time.perf_counter()
        resized = cv2.resize(image_rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        outputs = self._network(tf.constant(resized[None].astype(np.float32)))
        probabilities = tf.nn.softmax(outputs["semantic_logits"][0]).numpy()
        embeddings = outputs["embeddings"][0].numpy()
        network_done = time.perf_counter()

        # Each thing class on its own (TuSimple has one: lanes).
        instances, instance_classes = clustering.cluster_per_class(
            embeddings, clustering.confident_classes(probabilities, self.min_confidence), self.thing_classes,
            bandwidth=self.bandwidth, min_pixels=self.min_pixels,
        )
        clustering_done = time.perf_counter()

        fitted = (lanes.fit_lanes(instances, frame_height, frame_width, h_samples, top_trim=self.lane_top_trim,
                                  lane_model=self.lane_model)
                  if self.is_lanes else None)
        done = time.perf_counter()
        return Prediction(
            semantic_probabilities=probabilities,
            embeddings=embeddings,
            instances=instances,
            instance_classes=instance_classes,
            frame_size=(frame_height, frame_width),
            timings_ms={
                "network": 1000 * (network_done - start),
                "clustering": 1000 * (clustering_done - network_done),
                "postprocessing": 1000 * (done - clustering_done),
            },
            lanes=fitted,
        )
