"""The committed model and sample frames: what the README's quickstart runs."""
import os

import numpy as np

from enet_discrim.evaluation.tusimple import bench_frame
from enet_discrim.lanes import read_json_lines
from enet_discrim.predictor import Predictor, load_config, read_rgb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELDIR = os.path.join(REPO, "trained_model")
SAMPLES = os.path.join(REPO, "inference_test", "images")


def test_shipped_config_carries_the_post_processing_settings():
    config = load_config(MODELDIR)
    assert (config["height"], config["width"], config["dataset"]) == (128, 256, "tusimple")
    assert config["bandwidth"] == config["delta_d"] == 1.5
    assert config["min_confidence"] == 0.85 and config["lane_top_trim"] == 0.5
    assert config["lane_model"] == "hyperbola"


def test_shipped_model_finds_the_sample_frames_lanes():
    # Loaded with safe_mode on; scored with the official rules against the samples' labels
    # (README: accuracy 0.980, FP 0.000, FN 0.000 on these 8 frames, 31 labelled lanes).
    predictor = Predictor(MODELDIR)
    labels = [label for _, label in read_json_lines(os.path.join(SAMPLES, "test_label.json"), "label")]
    assert len(labels) == 8
    scores = []
    for label in labels:
        prediction = predictor.predict(read_rgb(os.path.join(SAMPLES, label["raw_file"])),
                                       label["h_samples"])
        scores.append(bench_frame(prediction.lanes, label["lanes"], label["h_samples"], 50.0))
    accuracy, fp, fn = np.mean(scores, axis=0)
    assert accuracy >= 0.95 and fp <= 0.05 and fn <= 0.05, (accuracy, fp, fn)
