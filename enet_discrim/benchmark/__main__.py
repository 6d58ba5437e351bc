"""Every benchmark of the project, on fixed seeds and synthetic inputs.

    python -m enet_discrim.benchmark [--json] [--modeldir trained_model]

- network: ENet forward ms and frames/s at 256 x 512, batch 1 and 8;
- loss: discriminative loss + gradient against an ENet forward + backward pass (4 x 256 x 512);
- training: images/s of a full training step (256 x 512, batch 8) against the tf.data pipeline's;
- clustering: our mean-shift against scikit-learn MeanShift on all foreground pixels (ms, ratio, ARI);
- inference: end-to-end ms per 1280 x 720 frame (decode, network, clustering, lane fitting, writing)
  at 256 x 512, with the share of clustering + fitting; and with the shipped model at its own size;
- peak memory of the process.
"""

import argparse
import json
import os
import platform
import resource
import sys
import tempfile

from enet_discrim.cli import support

if __name__ == "__main__":  # `python -m`: before TensorFlow is imported, which logs as it loads
    support.quiet_startup(sys.argv[1:])

import cv2
import keras
import numpy as np
import tensorflow as tf

from enet_discrim import batch_inference, model_dir
from enet_discrim.benchmark import clustering, loss, pipeline
from enet_discrim.benchmark.timing import median_seconds
from enet_discrim.data.synthetic import tusimple as synthetic_tusimple
from enet_discrim.model import ENet
from enet_discrim.predictor import Predictor
from enet_discrim.training import LossSettings, TrainConfig, make_train_step, save_model

HEIGHT, WIDTH = 256, 512
DEFAULT_MODELDIR = "trained_model"
SEED = 0


def network_speed(batch_sizes=(1, 8), repeats=5):
    """Forward pass ms and frames/s of ENet in inference mode."""
    model = ENet(num_classes=2, embedding_dim=4)
    forward = tf.function(lambda images: model(images, training=False))
    result = {}
    for batch in batch_sizes:
        images = tf.constant(np.random.default_rng(SEED).uniform(0, 255, (batch, HEIGHT, WIDTH, 3)).astype("float32"))
        seconds = median_seconds(lambda: forward(images)["embeddings"].numpy(), repeats)
        result[f"batch_{batch}"] = {"ms": 1000 * seconds, "frames_per_s": batch / seconds}
    return result


def training_speed(batch_size=8, steps=5):
    """Images/s of a full training step (forward, both losses, backward, Adam) at 256 x 512."""
    rng = np.random.default_rng(SEED)
    images = rng.uniform(0, 255, (batch_size, HEIGHT, WIDTH, 3)).astype("float32")
    instance = loss.synthetic_lane_labels(batch_size, HEIGHT, WIDTH, lanes=5, seed=SEED)
    labels = {"semantic": (instance > 0).astype("int32"), "instance": instance}
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    strategy = tf.distribute.get_strategy()
    model = ENet(num_classes=2, embedding_dim=4)
    model.build((None, HEIGHT, WIDTH, 3))
    optimizer = keras.optimizers.Adam(5e-4)
    step = make_train_step(model, optimizer, strategy, LossSettings(class_weights=(1.5, 30.0)))
    iterator = iter(dataset)
    seconds = median_seconds(lambda: step(iterator)["total"].numpy(), steps)
    return {"step_ms": 1000 * seconds, "images_per_s": batch_size / seconds}


def _random_model_dir(directory):
    """An untrained 256 x 512 lane model folder: the cost of each stage does not depend on the
    weights (clustering works on a bounded sample of the foreground)."""
    model = ENet(num_classes=2, embedding_dim=4)
    model.build((None, HEIGHT, WIDTH, 3))
    save_model(model, TrainConfig(outdir=directory, height=HEIGHT, width=WIDTH),
               {"num_classes": 2, "class_names": ["background", "lane"]})
    return directory


def inference_speed(modeldir, frames_dir, outdir):
    """End-to-end ms per frame through `batch_inference.run` and each stage's share."""
    predictor = Predictor(modeldir)
    jobs = batch_inference.list_jobs(frames_dir)
    batch_inference.run(predictor, jobs[:1], outdir)  # traces the network once
    summary = batch_inference.run(predictor, jobs, outdir)
    timings = summary["timings_ms"]
    return {
        "size": f"{predictor.height}x{predictor.width}",
        "frames": summary["processed"],
        "ms_per_stage": {stage: round(value, 2) for stage, value in timings.items()},
        "end_to_end_ms": timings["total"],
        "clustering_and_fitting_share": (timings["clustering"] + timings["postprocessing"]) / timings["total"],
    }


def _write_frames(directory, count=10):
    os.makedirs(directory, exist_ok=True)
    for i in range(count):
        image, _, _ = synthetic_tusimple.render_frame(np.random.default_rng([SEED, i]))
        cv2.imwrite(os.path.join(directory, f"{i:02d}.jpg"), image)
    return directory


def run_all(modeldir=None):
    """Runs every benchmark; returns a dict of sections."""
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gpus": len(tf.config.list_physical_devices("GPU")),
            "tensorflow": tf.__version__,
        },
        "network": network_speed(),
        "loss": loss.run(),
    }
    train = training_speed()
    data = pipeline.run(height=HEIGHT, width=WIDTH, batch_size=8)
    results["training"] = {
        **train,
        "pipeline_images_per_s": data["images_per_s"],
        "pipeline_to_step_ratio": data["images_per_s"] / train["images_per_s"],
    }
    results["clustering"] = clustering.run()
    with tempfile.TemporaryDirectory() as scratch:
        frames = _write_frames(os.path.join(scratch, "frames"))
        results["inference_256x512"] = inference_speed(
            _random_model_dir(os.path.join(scratch, "model")), frames, os.path.join(scratch, "out")
        )
        if modeldir and os.path.isfile(os.path.join(modeldir, model_dir.MODEL_FILE)):
            results["inference_shipped_model"] = inference_speed(modeldir, frames, os.path.join(scratch, "out2"))
    results["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def format_table(results):
    """The figures as a markdown table (what the README carries)."""
    network, train, cluster = results["network"], results["training"], results["clustering"]
    rows = [
        ("ENet forward, batch 1, 256x512", f"{network['batch_1']['ms']:.1f} ms ({network['batch_1']['frames_per_s']:.1f} fps)"),
        ("ENet forward, batch 8, 256x512", f"{network['batch_8']['ms']:.1f} ms ({network['batch_8']['frames_per_s']:.1f} fps)"),
        ("Loss + gradient vs ENet forward+backward (4x256x512)",
         f"{results['loss']['loss_gradient_ms']:.1f} ms vs {results['loss']['enet_forward_backward_ms']:.0f} ms "
         f"({100 * results['loss']['loss_share']:.1f} %)"),
        ("Training step, batch 8, 256x512", f"{train['step_ms']:.0f} ms ({train['images_per_s']:.1f} images/s)"),
        ("tf.data pipeline (training augmentation)",
         f"{train['pipeline_images_per_s']:.0f} images/s ({train['pipeline_to_step_ratio']:.0f}x the training step)"),
        ("Clustering vs MeanShift on all foreground pixels",
         f"{cluster['ours_ms']:.1f} ms vs {cluster['full_meanshift_ms']:.0f} ms "
         f"({cluster['speedup']:.0f}x, ARI {cluster['ari']:.4f})"),
    ]
    for key, label in (("inference_256x512", "256x512"), ("inference_shipped_model", "shipped model")):
        if key in results:
            inference = results[key]
            rows.append((f"End to end per 1280x720 frame, {label} ({inference['size']})",
                         f"{inference['end_to_end_ms']:.1f} ms (clustering + fitting "
                         f"{100 * inference['clustering_and_fitting_share']:.1f} %)"))
    rows.append(("Peak memory (process RSS)", f"{results['peak_memory_mb']:.0f} MB"))
    machine = results["machine"]
    header = (f"Machine: {machine['cpus']} CPUs, {machine['gpus']} GPUs, TensorFlow {machine['tensorflow']}, "
              f"{machine['platform']}\n\n| measurement | result |\n| --- | --- |")
    return header + "\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m enet_discrim.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--modeldir",
                        help=f"also time this model end to end (default: {DEFAULT_MODELDIR}, when it is there)")
    args = parser.parse_args(argv)
    if args.modeldir is not None:
        try:
            model_dir.check_folder(args.modeldir)
        except ValueError as error:
            return support.report_error(error)
    results = run_all(args.modeldir or DEFAULT_MODELDIR)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(support.run_main(main, tensorflow=True))
