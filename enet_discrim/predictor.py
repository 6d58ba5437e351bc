"""Inference on single frames: the network, mean-shift clustering, lane fitting, timings.

`Predictor(modeldir)` loads a model folder (`enet_discrim.model_dir`: `model.keras` in safe mode and
its `config.json`), or `Predictor(model, settings=...)` takes them as objects, and turns an RGB
frame of any size into instances at the frame's size, plus TuSimple lanes. A folder that holds
`model.tflite` (`python -m enet_discrim.export --format tflite`) runs that network instead
(`enet_discrim.tflite_network`), with the same clustering and lane fitting.
"""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from enet_discrim import clustering, lanes, model_dir
from enet_discrim.formats import LANE_DATASETS, images
from enet_discrim.formats.images import read_image as read_rgb  # noqa: F401  (public name kept)
from enet_discrim.formats.tusimple import scaled_h_samples
from enet_discrim.model import frame_function
from enet_discrim.model_dir import CONFIG_FILE, MODEL_FILE  # noqa: F401  (public names kept)

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
        lanes: lanes as x per row of `h_samples` (-2 absent) when lanes were fitted, else None.
        h_samples: the frame rows the lanes were sampled at (None without lanes).
    """

    semantic_probabilities: np.ndarray
    embeddings: np.ndarray
    instances: np.ndarray
    instance_classes: np.ndarray
    frame_size: tuple
    timings_ms: dict
    lanes: list | None = None
    h_samples: tuple | None = None

    def instances_at_frame_size(self):
        """uint16 [H, W] instance ids at the original frame's size (`formats.images.resize_labels`:
        nearest neighbour, centred)."""
        height, width = self.frame_size
        return images.resize_labels(self.instances.astype(np.uint16), width, height)


def network_input(image_rgb, height, width):
    """The network's view of a uint8 RGB frame: uint8 [height, width, 3].

    `formats.images.resize_image`, the resize the converters store frames with and the input
    pipeline applies to stored frames of another size, so serving feeds what training fed.
    Serving and the int8 export's calibration frames both go through it.
    """
    return images.resize_image(image_rgb, height, width)


def load_config(modeldir):
    """The settings of a model folder as a dict, defaults filled in (`model_dir.load_settings`).

    Raises:
        ValueError: listing everything missing from the folder, or the config's first problem.
    """
    return model_dir.load_settings(modeldir).to_dict()


class Predictor:
    """Runs a trained model on frames.

    Args:
        model: a model folder (`model.keras` or `model.tflite`, and `config.json`; `model.tflite`
            is run when the folder holds one), or a Keras model built by
            `enet_discrim.model.ENet`; then `settings` are required.
        bandwidth, min_confidence, lane_model: override the settings' values (None: keep them).
        min_pixels: smallest instance kept; default: 50 pixels at 256 x 512, scaled with the area.
        settings: `model_dir.InferenceSettings`, for a model given as an object.
        threads: TFLite interpreter threads for a `model.tflite` folder (None: TFLite's choice);
            the Keras model runs on TensorFlow's own thread pools.
        jit_compile: compile the Keras model with XLA (`enet_discrim.model.frame_function`):
            about half the network's time per frame on a CPU, after 3-12 s of compiling here.

    Example:
    >>> predictor = Predictor("trained_model")
    >>> prediction = predictor.predict(read_rgb("frame.jpg"))
    >>> prediction.lanes  # TuSimple lanes in frame coordinates
    """

    def __init__(self, model, bandwidth=None, min_pixels=None, min_confidence=None, lane_model=None,
                 settings=None, threads=None, jit_compile=False):
        is_tflite = False
        if isinstance(model, (str, os.PathLike)):
            if settings is not None:
                raise ValueError("settings come from the model folder; pass a model object to "
                                 "give them separately")
            folder = os.fspath(model)
            is_tflite = model_dir.holds_tflite(folder)
            if is_tflite:
                from enet_discrim.tflite_network import TFLiteNetwork

                settings = model_dir.load_settings(folder)
                self.model = TFLiteNetwork(os.path.join(folder, model_dir.TFLITE_FILE), threads=threads)
                if (self.model.height, self.model.width) != (settings.height, settings.width):
                    raise ValueError(f"{folder}: {model_dir.TFLITE_FILE} takes "
                                     f"{self.model.height} x {self.model.width} frames, "
                                     f"{model_dir.CONFIG_FILE} says {settings.height} x {settings.width}")
                logging.info("Running %s", os.path.join(folder, model_dir.TFLITE_FILE))
            else:
                self.model, settings = model_dir.load(folder)
        else:
            if settings is None:
                raise ValueError("a model object needs its InferenceSettings (settings=...)")
            self.model = model
        overrides = {name: value for name, value in (("bandwidth", bandwidth),
                                                      ("min_confidence", min_confidence),
                                                      ("lane_model", lane_model))
                     if value is not None}
        self.settings = settings.replace(**overrides) if overrides else settings
        if (self.model.num_classes, self.model.embedding_dim) != (self.settings.num_classes,
                                                                  self.settings.embedding_dim):
            raise ValueError("the model and its settings disagree on classes or embedding size")
        self.height, self.width = self.settings.height, self.settings.width
        self.bandwidth = self.settings.bandwidth
        self.min_confidence = self.settings.min_confidence
        self.lane_model = self.settings.lane_model
        self.lane_top_trim = self.settings.lane_top_trim
        area_ratio = self.height * self.width / (256 * 512)
        self.min_pixels = min_pixels or max(10, round(MIN_PIXELS_AT_256X512 * area_ratio))
        self.thing_classes = list(self.settings.thing_train_ids)
        self.is_lanes = self.settings.dataset in LANE_DATASETS
        if threads is not None and not is_tflite:
            logging.warning("threads=%s applies to a model.tflite folder only; ignored", threads)
        if jit_compile and is_tflite:
            logging.warning("jit_compile applies to a Keras model only; ignored for model.tflite")
        if is_tflite:
            self._frame = self._tflite_frame
        else:
            self._frame = frame_function(self.model, self.height, self.width, jit_compile=jit_compile)
        # Trace (or warm up the interpreter) now: the first frame's run_time must not carry the
        # one-time graph building (TuSimple scores a frame slower than 200 ms as a miss).
        self._frame(np.zeros([1, self.height, self.width, 3], np.float32))

    def _tflite_frame(self, images):
        """`model.serving.frame_function`'s outputs from the TFLite network (NumPy arrays)."""
        outputs = self.model(images)
        return tf.nn.softmax(outputs["semantic_logits"]).numpy(), outputs["embeddings"]

    @property
    def config(self):
        """The settings as the dict of `config.json`."""
        return self.settings.to_dict()

    def network_outputs(self, image_rgb):
        """The network's view of one uint8 RGB frame of any size: (class probabilities float32
        [h, w, C], embeddings float32 [h, w, D]) at network resolution."""
        resized = network_input(image_rgb, self.height, self.width)
        probabilities, embeddings = self._frame(resized[None].astype(np.float32))
        return np.asarray(probabilities)[0], np.asarray(embeddings)[0]

    def instances(self, probabilities, embeddings, settings=None):
        """(instances int32 [h, w], instance_classes int32 [K]) of the network's outputs: each thing
        class clustered on its own (TuSimple has one: lanes), with `settings` (default: this
        predictor's) deciding min_confidence, bandwidth and cluster_all."""
        settings = settings or self.settings
        return clustering.cluster_per_class(
            embeddings, clustering.confident_classes(probabilities, settings.min_confidence),
            self.thing_classes, bandwidth=settings.bandwidth, min_pixels=self.min_pixels,
            cluster_all=settings.cluster_all)

    def fit_lanes(self, instances, frame_size, h_samples, settings=None):
        """Lanes (x per row of `h_samples`, -2 absent) of an instance map, in the frame's pixels,
        with `settings`' (default: this predictor's) lane post-processing."""
        settings = settings or self.settings
        return lanes.fit_lanes(instances, frame_size[0], frame_size[1], h_samples,
                               top_trim=settings.lane_top_trim, lane_model=settings.lane_model,
                               bridge_gaps=settings.lane_bridge_gaps,
                               extend_bottom=settings.lane_extend_bottom,
                               max_lanes=settings.max_lanes)

    def predict(self, image_rgb, h_samples=None):
        """Instances (and lanes, for a lane model) of one uint8 RGB frame of any size.

        Args:
            image_rgb: uint8 [H, W, 3].
            h_samples: the frame rows lanes are sampled at; default TuSimple's rows scaled to the
                frame's height (`formats.tusimple.scaled_h_samples`: 160..710 at 720 rows).
        """
        frame_height, frame_width = image_rgb.shape[:2]
        if h_samples is None:
            h_samples = scaled_h_samples(frame_height)
        start = time.perf_counter()
        probabilities, embeddings = self.network_outputs(image_rgb)
        network_done = time.perf_counter()
        instances, instance_classes = self.instances(probabilities, embeddings)
        clustering_done = time.perf_counter()
        fitted = (self.fit_lanes(instances, (frame_height, frame_width), h_samples)
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
            h_samples=tuple(h_samples) if self.is_lanes else None,
        )
