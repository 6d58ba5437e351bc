"""The committed model and sample frames: what the README's quickstart runs."""
import json
import os

import numpy as np

from enet_discrim import model_dir
from enet_discrim.evaluation.tusimple import bench_frame
from enet_discrim.lanes import read_json_lines
from enet_discrim.predictor import Predictor, read_rgb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELDIR = os.path.join(REPO, "trained_model")
SAMPLES = os.path.join(REPO, "inference_test", "images")


def test_shipped_config_is_complete_and_valid_settings():
    # Written by `python -m enet_discrim.model_dir set`, never by hand: every key present, every
    # value valid, nothing that InferenceSettings does not know.
    with open(os.path.join(MODELDIR, "config.json"), encoding="utf-8") as file:
        written = json.load(file)
    settings = model_dir.load_settings(MODELDIR)
    assert written == settings.to_dict()
    assert (settings.height, settings.width, settings.dataset) == (128, 256, "tusimple")
    # The bandwidth follows the training margins (enet_discrim.clustering).
    assert settings.bandwidth == settings.delta_d


def test_shipped_model_finds_the_sample_frames_lanes():
    # Loaded with safe_mode on; scored with the official rules against the samples' labels
    # (README: accuracy 0.988, FP 0.063, FN 0.000 on these 8 frames, 30 labelled lanes; the false
    # lanes are two along the unpainted left edge of 7.jpg, which has 2 labelled lines).
    predictor = Predictor(MODELDIR)
    labels = [label for _, label in read_json_lines(os.path.join(SAMPLES, "test_label.json"), "label")]
    assert len(labels) == 8
    scores = []
    for label in labels:
        prediction = predictor.predict(read_rgb(os.path.join(SAMPLES, label["raw_file"])),
                                       label["h_samples"])
        scores.append(bench_frame(prediction.lanes, label["lanes"], label["h_samples"], 50.0))
    accuracy, fp, fn = np.mean(scores, axis=0)
    assert accuracy >= 0.95 and fp <= 0.1 and fn <= 0.05, (accuracy, fp, fn)


CITYSCAPES_MODELDIR = os.path.join(REPO, "trained_model", "cityscapes")


def test_shipped_cityscapes_model_finds_the_vehicles_of_a_held_out_street(tmp_path):
    """The Cityscapes model on a synthetic val frame of a seed it never saw (training: seed 0,
    train split): a good share of the large vehicles in the ground truth come out as instances of
    their class (mask IoU >= 0.5; an untrained or class-blind model finds none)."""
    from cityscapesscripts.helpers import labels as cityscapes_labels

    from enet_discrim.data.synthetic import cityscapes as synthetic

    settings = model_dir.load_settings(CITYSCAPES_MODELDIR)
    assert (settings.dataset, settings.num_classes, settings.height, settings.width) == (
        "cityscapes", 19, 256, 512)
    assert list(settings.thing_train_ids) == list(range(11, 19))
    predictor = Predictor(CITYSCAPES_MODELDIR)
    found = total = 0
    for index in range(3):
        image_bgr, label_ids, instance_ids = synthetic.render_sample(
            np.random.default_rng([99, 1, index]), 1024, 512)
        prediction = predictor.predict(image_bgr[..., ::-1].copy())
        instances = prediction.instances_at_frame_size()
        for value in np.unique(instance_ids[instance_ids >= 1000]):
            mask = instance_ids == value
            label = cityscapes_labels.id2label[int(value) // 1000]
            if label.name not in ("car", "truck", "bus") or mask.sum() < 5000:
                continue
            total += 1
            best = 0.0
            for k in np.unique(instances[mask]):
                if k == 0 or prediction.instance_classes[k - 1] != label.trainId:
                    continue
                predicted = instances == k
                best = max(best, (predicted & mask).sum() / (predicted | mask).sum())
            found += best >= 0.5
    assert total >= 5
    assert found >= 0.3 * total, (found, total)
