"""Inference over a folder of frames (or a TuSimple tasks file): pictures, instance maps,
TuSimple `predictions.json` or Cityscapes result files, and a per-stage timing summary.

Outputs in `outdir`, per frame `<name>` (the file's stem; with a tasks file, its `raw_file`
with "/" replaced by "_"):
- `<name>_overlay.png`: instances in distinct colours over the frame, at the frame's size;
- `<name>_instances.png`: uint16 instance ids at the frame's size (0 = background);
- `<name>_embedding.png` with `plots`: scatter plot of the embeddings coloured by cluster;
- `predictions.json` (format "tusimple"): one TuSimple submission line per frame;
- `cityscapes_results/` (format "cityscapes"): `<name>.txt` + masks for the official evaluator.
"""

import dataclasses
import os
import time

import cv2
import numpy as np
from absl import logging
from tqdm import tqdm

from enet_discrim import lanes, visualization
from enet_discrim.predictor import read_rgb

FORMATS = ("tusimple", "cityscapes")
PREDICTIONS_FILE = "predictions.json"
CITYSCAPES_RESULTS_DIR = "cityscapes_results"
STAGES = ("decode", "network", "clustering", "postprocessing", "writing")


@dataclasses.dataclass(frozen=True)
class Job:
    """One frame to predict: its path, its output name, its TuSimple raw_file and rows."""

    path: str
    name: str
    raw_file: str
    h_samples: tuple = tuple(lanes.TUSIMPLE_H_SAMPLES)


def list_jobs(indir, tusimple_tasks=None):
    """The frames to predict, in order.

    Args:
        indir: folder of frames (jpg/png, not recursive), or the root that the tasks' raw_file
            paths are relative to.
        tusimple_tasks: optional TuSimple test_tasks / label file: exactly those frames, in order,
            each sampled at its own h_samples.

    Raises:
        ValueError: the folder is missing, or holds no image (the tasks file's problems are
            reported by `lanes.read_tusimple_tasks`).
    """
    if not os.path.isdir(indir):
        raise ValueError(f"--indir {indir!r} does not exist or is not a folder")
    if tusimple_tasks:
        return [
            Job(os.path.join(indir, raw_file), os.path.splitext(raw_file)[0].replace("/", "_"), raw_file, tuple(rows))
            for raw_file, rows in lanes.read_tusimple_tasks(tusimple_tasks)
        ]
    # Every other file is tried too, so that a non-image is reported by name; label files
    # (JSON) beside the frames are expected and left alone.
    names = sorted(
        name
        for name in os.listdir(indir)
        if os.path.isfile(os.path.join(indir, name))
        and not name.startswith(".")
        and not name.lower().endswith(".json")
    )
    if not names:
        raise ValueError(f"--indir {indir!r} holds no files")
    return [Job(os.path.join(indir, name), os.path.splitext(name)[0], name) for name in names]


def run(predictor, jobs, outdir, output_format="tusimple", plots=False):
    """Predicts every job and writes the outputs; bad files are reported and skipped.

    Returns:
        dict: "processed" count, "skipped" list of "PATH: reason", "timings_ms" mean per stage and
        "total", "predictions" path (tusimple) or "results_dir" (cityscapes).
    """
    if output_format not in FORMATS:
        raise ValueError(f"unknown format {output_format!r}: choose one of {', '.join(FORMATS)}")
    if output_format == "tusimple" and not predictor.is_lanes:
        raise ValueError("--format tusimple needs a lane model (its config.json says dataset "
                         f"{predictor.config['dataset']!r})")
    os.makedirs(outdir, exist_ok=True)
    predictions_path = os.path.join(outdir, PREDICTIONS_FILE)
    results_dir = os.path.join(outdir, CITYSCAPES_RESULTS_DIR)
    skipped, lines = [], []
    totals = dict.fromkeys(STAGES, 0.0)
    frame_totals = []

    for job in tqdm(jobs, desc="inference", unit="frame"):
        start = time.perf_counter()
        try:
            image = read_rgb(job.path)
        except ValueError as error:
            logging.warning("Skipped %s", error)
            skipped.append(str(error))
            continue
        decoded = time.perf_counter()
        prediction = predictor.predict(image, h_samples=job.h_samples)
        predicted = time.perf_counter()
        # TuSimple's run_time: the frame from decoding to fitted lanes, as a lane detector runs.
        run_time_ms = 1000 * (predicted - start)

        instances = prediction.instances_at_frame_size()
        cv2.imwrite(os.path.join(outdir, f"{job.name}_instances.png"), instances)
        overlay = visualization.overlay_instances(image, prediction.instances)
        cv2.imwrite(os.path.join(outdir, f"{job.name}_overlay.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        if plots:
            visualization.embedding_scatter(
                prediction.embeddings, prediction.instances, os.path.join(outdir, f"{job.name}_embedding.png")
            )
        if output_format == "tusimple":
            lines.append(lanes.tusimple_line(job.raw_file, prediction.lanes, list(job.h_samples), run_time_ms))
        else:
            _write_cityscapes(results_dir, job, prediction)
        written = time.perf_counter()

        totals["decode"] += 1000 * (decoded - start)
        for stage, milliseconds in prediction.timings_ms.items():
            totals[stage] += milliseconds
        totals["writing"] += 1000 * (written - predicted)
        frame_totals.append(1000 * (written - start))

    processed = len(frame_totals)
    if output_format == "tusimple" and processed:
        temporary = f"{predictions_path}.tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
        os.replace(temporary, predictions_path)
    timings = {stage: total / max(processed, 1) for stage, total in totals.items()}
    timings["total"] = sum(frame_totals) / max(processed, 1)
    summary = {"processed": processed, "skipped": skipped, "timings_ms": timings}
    summary["predictions" if output_format == "tusimple" else "results_dir"] = (
        predictions_path if output_format == "tusimple" else results_dir
    )
    return summary


def format_summary(summary):
    """Human-readable lines: counts and the mean milliseconds per frame of each stage."""
    timings = summary["timings_ms"]
    stages = ", ".join(f"{stage} {timings[stage]:.1f}" for stage in STAGES)
    lines = [
        f"Processed {summary['processed']} frame(s), skipped {len(summary['skipped'])}.",
        f"Mean ms per frame: {stages}; total {timings['total']:.1f}.",
    ]
    lines += [f"  skipped {reason}" for reason in summary["skipped"]]
    return "\n".join(lines)


def _write_cityscapes(results_dir, job, prediction):
    from enet_discrim.evaluation.cityscapes import instance_confidences, write_cityscapes_results

    confidences = instance_confidences(
        prediction.semantic_probabilities, prediction.instances, prediction.instance_classes
    )
    write_cityscapes_results(
        results_dir, job.name, prediction.instances, prediction.instance_classes, confidences,
        output_size=prediction.frame_size,
    )
