"""Every benchmark of the project, on fixed seeds and synthetic inputs.

    python -m enet_discrim.benchmark [--json] [--modeldir trained_model] [--indir FRAMES]

The table (or, with `--json`, one JSON object with these keys):

- "machine": {"platform", "cpus", "gpus", "tensorflow"};
- "network": the ENet forward pass at 256 x 512 (`benchmark.network.run`), "batch_1" and
  "batch_8", each {"gflop" (TensorFlow's profiler), "matmul_gflop_per_s" and
  "matmul_best_gflop_per_s" (a 2048 x 2048 float32 matmul timed in the same rounds: median and
  fastest round), and per variant ("plain", "folded", "xla", "folded_xla" at batch 1; "plain",
  "xla" at batch 8) {"ms", "best_ms", "frames_per_s", "gflop_per_s", "matmul_fraction",
  "best_matmul_fraction", "first_call_s"}};
- "loss": {"loss_gradient_ms", "enet_forward_backward_ms", "loss_share", ...}: the discriminative
  loss + gradient against an ENet forward + backward pass (4 x 256 x 512);
- "training": {"step_ms", "images_per_s", "pipeline_images_per_s", "pipeline_to_step_ratio"}: a
  full training step (256 x 512, batch 8) against the tf.data pipeline;
- "clustering": {"ours_ms", "full_meanshift_ms", "speedup", "ari", ...}: our mean-shift against
  scikit-learn MeanShift on all foreground pixels;
- "inference_256x512" and, with a model folder, "inference_shipped_model": {"size",
  "jit_compile", "frames", "ms_per_stage", "end_to_end_ms", "clustering_and_fitting_share",
  "frames_per_s", "marginal_ms", "plain_forward_ms", "marginal_to_forward"}: a folder of frames
  (40 synthetic 1280 x 720 ones, or `--indir`) through
  `batch_inference.run` with the network compiled with XLA (`Predictor(jit_compile=True)`); ms
  per frame and stage (decode, network, clustering, lane fitting, writing) and their sum; frames
  per wall-clock second of the sequential loop and of the pipelined one ({"sequential",
  "pipelined"}); the pipelined loop's wall time per frame beyond the first quarter of the frames
  against a plain `tf.function` forward pass of the same model at batch 1, timed in the same run
  (not with fewer than 8 frames);
- "tflite": {"float32", "float16", "int8"}, each {"ms", "frames_per_s", "megabytes", "export_s"}:
  the 256 x 512 network exported to TFLite (`python -m enet_discrim.export --format tflite
  --quantize none|float16|int8`) and run as the predictor runs it, batch 1;
- "culane_metric": {"frames", "ms_per_1000_frames": {"1_process", "all_cpus"}, ...}: our CULane
  metric on 1,000 CULane-like frames (`benchmark.culane_metric`);
- "peak_memory_mb": the process's peak resident memory.
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
from enet_discrim.benchmark import clustering, culane_metric, loss, network, pipeline, tflite
from enet_discrim.benchmark.timing import median_seconds
from enet_discrim.data.synthetic import tusimple as synthetic_tusimple
from enet_discrim.model import ENet
from enet_discrim.predictor import Predictor
from enet_discrim.training import LossSettings, TrainConfig, make_train_step, save_model

HEIGHT, WIDTH = 256, 512
DEFAULT_MODELDIR = "trained_model"
SEED = 0


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


def inference_speed(modeldir, frames_dir, outdir, jit_compile=True):
    """End-to-end ms per frame through `batch_inference.run`, each stage's share, frames per
    second of the sequential and the pipelined loop over the same frames, and the pipelined loop's
    marginal wall time per frame against a plain `tf.function` forward pass of the same model at
    batch 1 (issue 17's measure); the network compiled with XLA unless `jit_compile` is False."""
    predictor = Predictor(modeldir, jit_compile=jit_compile)
    jobs = batch_inference.list_jobs(frames_dir)

    def run(frames, pipelined=True):
        return batch_inference.run(predictor, frames, outdir, output_format=predictor.settings.dataset,
                                   pipelined=pipelined)

    run(jobs[:1])  # warms up the network, clustering and writers
    sequential = run(jobs, pipelined=False)
    pipelined = run(jobs)
    timings = sequential["timings_ms"]  # each stage alone, with no other stage running beside it
    result = {
        "size": f"{predictor.height}x{predictor.width}",
        "jit_compile": jit_compile,
        "frames": sequential["processed"],
        "ms_per_stage": {stage: round(value, 2) for stage, value in timings.items()},
        "end_to_end_ms": timings["total"],
        "clustering_and_fitting_share": (timings["clustering"] + timings["postprocessing"]) / timings["total"],
        "frames_per_s": {"sequential": sequential["frames_per_second"],
                         "pipelined": pipelined["frames_per_second"]},
    }
    # Marginal: the wall time of the last frames, the loop's start-up (threads, first writes) left
    # out by timing a run of the first quarter too.
    head = len(jobs) // 4
    if head >= 2 and pipelined["processed"] == len(jobs):
        head_wall = run(jobs[:head])["wall_s"]
        forward = network.plain_forward_ms(predictor.model, predictor.height, predictor.width)
        marginal = 1000 * (pipelined["wall_s"] - head_wall) / (len(jobs) - head)
        result.update(marginal_ms=marginal, plain_forward_ms=forward, marginal_to_forward=marginal / forward)
    return result


def _write_frames(directory, count=40):
    os.makedirs(directory, exist_ok=True)
    for i in range(count):
        image, _, _ = synthetic_tusimple.render_frame(np.random.default_rng([SEED, i]))
        # Named like Cityscapes frames, so that a Cityscapes model can write its results too.
        cv2.imwrite(os.path.join(directory, f"bench_000000_{i:06d}_leftImg8bit.jpg"), image)
    return directory


def run_all(modeldir=None, frames_dir=None):
    """Runs every benchmark; returns a dict of sections (the module docstring lists them).

    Args:
        modeldir: a model folder to time end to end as well, or None.
        frames_dir: frames for the end-to-end timings; default: 40 synthetic 1280 x 720 frames.
    """
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gpus": len(tf.config.list_physical_devices("GPU")),
            "tensorflow": tf.__version__,
        },
        "network": {
            "batch_1": network.run(HEIGHT, WIDTH, batch_size=1, rounds=10),
            "batch_8": network.run(HEIGHT, WIDTH, batch_size=8, rounds=3, variants=("plain", "xla")),
        },
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
        frames = frames_dir or _write_frames(os.path.join(scratch, "frames"))
        random_model = _random_model_dir(os.path.join(scratch, "model"))
        results["inference_256x512"] = inference_speed(random_model, frames, os.path.join(scratch, "out"))
        results["tflite"] = tflite.run(random_model, scratch)
        if modeldir and os.path.isfile(os.path.join(modeldir, model_dir.MODEL_FILE)):
            results["inference_shipped_model"] = inference_speed(modeldir, frames, os.path.join(scratch, "out2"))
    results["culane_metric"] = culane_metric.run()
    results["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


#: How the table names the forward pass's variants (`benchmark.network.VARIANTS`).
VARIANT_LABELS = {"plain": "tf.function", "folded": "batch norm folded", "xla": "XLA",
                  "folded_xla": "batch norm folded + XLA"}


def _network_rows(network):
    rows = []
    for batch_key, batch in (("batch_1", 1), ("batch_8", 8)):
        section = network[batch_key]
        rows.append((f"float32 matmul 2048x2048, timed beside the batch-{batch} forward pass",
                     f"{section['matmul_gflop_per_s']:.0f} GFLOP/s (fastest round "
                     f"{section['matmul_best_gflop_per_s']:.0f})"))
        for name, label in VARIANT_LABELS.items():
            if name in section:
                figures = section[name]
                rows.append((f"ENet forward, batch {batch}, 256x512 ({section['gflop'] / batch:.2f} "
                             f"GFLOP a frame), {label}",
                             f"{figures['ms']:.1f} ms ({figures['frames_per_s']:.1f} fps), "
                             f"{figures['gflop_per_s']:.0f} GFLOP/s = {100 * figures['matmul_fraction']:.0f} % "
                             f"of the matmul's; fastest round {figures['best_ms']:.1f} ms = "
                             f"{100 * figures['best_matmul_fraction']:.0f} % of the matmul's fastest"))
    return rows


def format_table(results):
    """The figures as a markdown table (what the README carries)."""
    train, cluster = results["training"], results["clustering"]
    rows = _network_rows(results["network"]) + [
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
            network_kind = "XLA" if inference.get("jit_compile") else "tf.function"
            rows.append((f"End to end per frame, {label} ({inference['size']}, {network_kind})",
                         f"{inference['end_to_end_ms']:.1f} ms (clustering + fitting "
                         f"{100 * inference['clustering_and_fitting_share']:.1f} %)"))
            fps = inference["frames_per_s"]
            rows.append((f"Frames per second over {inference['frames']} frames, {label}",
                         f"{fps['sequential']:.1f} sequential, {fps['pipelined']:.1f} pipelined"))
            if "marginal_ms" in inference:
                rows.append((f"Folder inference, {label}: wall time per extra frame vs a plain "
                             "tf.function forward pass at batch 1",
                             f"{inference['marginal_ms']:.1f} ms vs {inference['plain_forward_ms']:.1f} ms "
                             f"({inference['marginal_to_forward']:.2f}x)"))
    for precision, figures in results.get("tflite", {}).items():
        rows.append((f"TFLite network, batch 1, 256x512, {precision}",
                     f"{figures['ms']:.1f} ms ({figures['frames_per_s']:.1f} fps), {figures['megabytes']:.1f} MB"))
    if "culane_metric" in results:
        per_1000 = results["culane_metric"]["ms_per_1000_frames"]
        rows.append(("CULane metric per 1,000 frames (one process, all CPUs)",
                     f"{per_1000['1_process'] / 1000:.1f} s, {per_1000['all_cpus'] / 1000:.1f} s"))
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
    parser.add_argument("--indir", help="time end to end on the frames of this folder (searched recursively; "
                                        "default: 40 synthetic 1280 x 720 frames)")
    args = parser.parse_args(argv)
    try:
        if args.modeldir is not None:
            # A damaged model fails here, not after minutes of the other benchmarks.
            if model_dir.holds_tflite(args.modeldir):
                model_dir.load_settings(args.modeldir)
            else:
                model_dir.load(args.modeldir)
        if args.indir is not None:
            batch_inference.list_jobs(args.indir)
    except ValueError as error:
        return support.report_error(error)
    results = run_all(args.modeldir or DEFAULT_MODELDIR, args.indir)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(support.run_main(main, tensorflow=True))
