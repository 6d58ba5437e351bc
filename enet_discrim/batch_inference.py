"""Inference over a folder of frames (or a TuSimple tasks file): pictures, instance maps,
TuSimple `predictions.json` or Cityscapes result files, and a per-stage timing summary.

Frames are listed recursively under `--indir` (Cityscapes keeps them in city folders). Outputs
in `outdir`, per frame `<name>` (`output_names`: a Cityscapes stem such as
`frankfurt_000000_000294_leftImg8bit` as it is, any other frame by its path relative to `--indir`
or its tasks file `raw_file`, without the extension, "/" replaced by "_"; unique in the run):
- `<name>_overlay.png`: instances in distinct colours over the frame, at the frame's size;
- `<name>_instances.png`: uint16 instance ids at the frame's size (0 = background);
- `<name>_embedding.png` with `plots`: scatter plot of the embeddings coloured by cluster;
- `predictions.json` (format "tusimple"): one TuSimple submission line per frame;
- `cityscapes_results/` (format "cityscapes"): `<name>.txt` + masks for the official evaluator.
"""

import collections
import dataclasses
import os
import time

import cv2
import numpy as np
from absl import logging
from tqdm import tqdm

from enet_discrim import atomic, lanes, visualization
from enet_discrim.data import tusimple, writer
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


def output_names(relative_paths):
    """Output names of frames, unique within one run, from their paths relative to --indir.

    A frame whose file stem looks like a Cityscapes one (`<city>_<seq>_<frame>...`, e.g.
    `val/frankfurt/frankfurt_000000_000294_leftImg8bit.png`) and is the only one with that stem
    in the run is named by that stem: the official evaluator finds its results by it, and the
    city is already in it. Any other frame is named by its relative path without the extension,
    "/" replaced by "_": `clips/a/20.jpg` -> `clips_a_20`. Frames that would share a name get
    their extension appended (`1.jpg` -> `1_jpg`, `1.png` -> `1_png`). A name still taken
    (`clips/a.jpg` and `clips_a.jpg` both give `clips_a_jpg`) gets `_2`, `_3`, ... in frame
    order: the first suffix that is neither taken nor another frame's name. Every name is checked
    against all names given before it, so no two frames share one.

    Args:
        relative_paths: list of str, the frames in run order.

    Returns:
        list of str, one name per frame.
    """
    from enet_discrim.evaluation.cityscapes import is_result_stem

    stems = [os.path.splitext(path.replace(os.sep, "/")) for path in relative_paths]
    file_stems = [stem.rsplit("/", 1)[-1] for stem, _ in stems]
    stem_counts = collections.Counter(file_stems)
    bases = [file_stem if stem_counts[file_stem] == 1 and is_result_stem(file_stem)
             else stem.replace("/", "_")
             for (stem, _), file_stem in zip(stems, file_stems)]
    shared = collections.Counter(bases)
    candidates = [f"{base}_{extension.lstrip('.')}" if shared[base] > 1 and extension else base
                  for base, (_, extension) in zip(bases, stems)]
    reserved, taken, names = set(candidates), set(), []
    for candidate in candidates:
        name, number = candidate, 1
        while name in taken or (number > 1 and name in reserved):
            number += 1
            name = f"{candidate}_{number}"
        taken.add(name)
        names.append(name)
    return names


def read_tasks(path):
    """The frames of a TuSimple tasks or label file (JSON lines; keys other than raw_file and
    h_samples are ignored).

    Args:
        path: e.g. test_tasks_0627.json or label_data_0313.json.

    Returns:
        list of (line number, raw_file str, h_samples list[int]) in file order.

    Raises:
        ValueError: the file is missing or unreadable (naming it), or `FILE:LINE: reason` for a line
            that is not a JSON object with a raw_file path and whole, increasing h_samples rows.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--tusimple_tasks {path!r} does not exist or is not a file")
    try:
        records = lanes.read_json_lines(path, "task")
    except OSError as error:
        raise ValueError(f"--tusimple_tasks {path!r}: cannot read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"--tusimple_tasks {path!r}: not UTF-8 text") from None
    tasks = []
    for line_number, record in records:
        where = f"{path}:{line_number}"
        if not isinstance(record, dict):
            raise ValueError(f"{where}: not a JSON object")
        missing = [key for key in ("raw_file", "h_samples") if key not in record]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)}")
        try:
            tusimple.check_raw_file(record["raw_file"])
            tusimple.check_h_samples(record["h_samples"])
        except writer.FrameError as error:
            raise ValueError(f"{where}: {error.reason}") from None
        tasks.append((line_number, record["raw_file"], [int(y) for y in record["h_samples"]]))
    if not tasks:
        raise ValueError(f"--tusimple_tasks {path!r} holds no task")
    return tasks


def list_jobs(indir, tusimple_tasks=None, exclude=()):
    """The frames to predict, in order, each with an output name unique in the run (`output_names`).

    Args:
        indir: folder searched recursively for frames (Cityscapes' `leftImg8bit/val` holds one
            folder per city), or the root that the tasks' raw_file paths are relative to. Every
            file is a frame (a non-image is reported by name when it is read) except hidden files
            and folders and JSON label files; frames are in the order of their relative paths.
            Linked folders are followed, each real folder once.
        tusimple_tasks: optional TuSimple test_tasks / label file: exactly those frames, in order,
            each sampled at its own h_samples. As in the converter, a raw_file that leaves `indir`
            (`..`, an absolute path elsewhere, a symlink out) is refused.
        exclude: folders not searched, e.g. the run's outdir when it lies inside `indir`, so that
            earlier outputs are not taken for frames.

    Raises:
        ValueError: the folder is missing, or holds no file; the tasks file is missing or has a
            bad line (`read_tasks`), or a raw_file outside `indir` (`FILE:LINE: reason`).
    """
    if not os.path.isdir(indir):
        raise ValueError(f"--indir {indir!r} does not exist or is not a folder")
    if tusimple_tasks:
        frames = []
        for line_number, raw_file, rows in read_tasks(tusimple_tasks):
            try:
                tusimple.resolve_inside(indir, indir, raw_file)
            except writer.FrameError:
                raise ValueError(f"{tusimple_tasks}:{line_number}: raw_file {raw_file!r} resolves "
                                 f"outside --indir {indir!r}, refused") from None
            path = os.path.join(indir, raw_file)
            frames.append((path, os.path.relpath(path, indir), raw_file, tuple(rows)))
        names = output_names([relative for _, relative, _, _ in frames])
        return [Job(path, name, raw_file, rows)
                for (path, _, raw_file, rows), name in zip(frames, names)]
    relative_paths = _frame_files(indir, exclude)
    if not relative_paths:
        raise ValueError(f"--indir {indir!r} holds no files")
    return [Job(os.path.join(indir, relative), name, relative)
            for relative, name in zip(relative_paths, output_names(relative_paths))]


def _frame_files(indir, exclude):
    """Paths relative to `indir` of the frame files under it, sorted by their parts."""
    skipped = {os.path.realpath(folder) for folder in exclude}
    seen, found = set(), []
    for folder, subfolders, files in os.walk(indir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen or real in skipped:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        # Label files (JSON) beside the frames are expected and left alone.
        found += [os.path.relpath(os.path.join(folder, name), indir) for name in files
                  if not name.startswith(".") and not name.lower().endswith(".json")]
    return sorted(found, key=lambda relative: relative.split(os.sep))


def run(predictor, jobs, outdir, output_format="tusimple", plots=False):
    """Predicts every job and writes the outputs; bad files are reported and skipped.

    Returns:
        dict: "processed" count, "skipped" list of "PATH: reason", "timings_ms" mean per stage and
        "total", "predictions" path (tusimple) or "results_dir" (cityscapes).
    """
    if output_format not in FORMATS:
        raise ValueError(f"unknown format {output_format!r}: choose one of {', '.join(FORMATS)}")
    shared = sorted(name for name, count in collections.Counter(job.name for job in jobs).items()
                    if count > 1)
    if shared:
        raise ValueError(f"several frames would write the outputs named {shared[0]!r}: give each "
                         "job its own name (list_jobs does)")
    if output_format == "tusimple" and not predictor.is_lanes:
        raise ValueError("--format tusimple needs a lane model (its config.json says dataset "
                         f"{predictor.config['dataset']!r})")
    atomic.check_folder_target(outdir)
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
        atomic.write_text(predictions_path, "\n".join(lines) + "\n")
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
    """Writes the frame's results as `<job.name>.txt` + masks, at the frame's size.

    Raises:
        ValueError: naming the frame, when its name is not a Cityscapes stem, under which the
            official evaluator could not find its results.
    """
    from enet_discrim.evaluation.cityscapes import (instance_confidences, is_result_stem,
                                                    write_cityscapes_results)

    if not is_result_stem(job.name):
        raise ValueError(f"{job.path}: --format cityscapes needs frames named like Cityscapes "
                         f"ones (<city>_<seq>_<frame>_leftImg8bit.png), so that the evaluator "
                         f"finds their results; this one would be {job.name!r}")
    confidences = instance_confidences(
        prediction.semantic_probabilities, prediction.instances, prediction.instance_classes
    )
    write_cityscapes_results(
        results_dir, job.name, prediction.instances, prediction.instance_classes, confidences,
        output_size=prediction.frame_size,
    )
