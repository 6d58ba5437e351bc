"""Inference over a folder of frames (or a TuSimple tasks file) or a video clip: pictures, instance
maps, TuSimple `predictions.json` or Cityscapes result files, and a timing summary (per stage and
wall clock). Frames are decoded ahead of the network and written behind it
(`enet_discrim.frame_pipeline`).

Frames are listed recursively under `--indir` (Cityscapes keeps them in city folders). Outputs
in `outdir`, per frame `<name>` (`output_names`: a Cityscapes stem such as
`frankfurt_000000_000294_leftImg8bit` as it is, any other frame by its path relative to `--indir`
or its tasks file `raw_file`, without the extension, "/" replaced by "_"; unique in the run):
- `<name>_overlay.png`: instances in distinct colours over the frame, at the frame's size;
- `<name>_instances.png`: uint16 instance ids at the frame's size (0 = background);
- `<name>_embedding.png` with `plots`: scatter plot of the embeddings coloured by cluster;
- `predictions.json` (format "tusimple"): one TuSimple submission line per frame;
- `culane_results/` (format "culane"): `<frame path relative to --indir>.lines.txt` per frame
  (`.jpg` replaced), the layout CULane's evaluator reads;
- `cityscapes_results/` (format "cityscapes"): `<name>.txt` + masks for the official evaluator.

Lanes are sampled at rows of the frame's own height: a tasks file's `h_samples`, else TuSimple's
rows scaled to the frame (`formats.tusimple.scaled_h_samples`) or CULane's every 10 rows from the
bottom edge up (`formats.culane.sample_rows`).
`save` picks the pictures. A clip's outputs: `run_video`.
"""

import collections
import dataclasses
import functools
import os
import time

import cv2
from absl import logging

from enet_discrim import atomic, frame_pipeline, video, visualization
from enet_discrim.formats import DATASETS, LANE_DATASETS
from enet_discrim.formats import cityscapes as cityscapes_format
from enet_discrim.formats import culane as culane_format
from enet_discrim.formats import tusimple as tusimple_format
from enet_discrim.formats.images import MAX_PIXELS, read_image
# Public name of this module before the format had its own (kept for its callers).
from enet_discrim.formats.tusimple import read_tasks  # noqa: F401

#: Result formats: the datasets' own (`formats.DATASETS`).
FORMATS = DATASETS
PREDICTIONS_FILE = "predictions.json"
CULANE_RESULTS_DIR = "culane_results"
CITYSCAPES_RESULTS_DIR = "cityscapes_results"
STAGES = frame_pipeline.STAGES
#: Pictures a run can write per frame (`save`): `<name>_overlay.png`, `<name>_instances.png`.
PICTURES = ("overlay", "instances")
#: Overlays: PNG level 0 with no filter (stored, not compressed). Compressing a camera frame
#: losslessly takes about as long as the shipped model's forward pass; storing it, about an
#: eighth of that, at 4x the file size (2.7 MB per 1280 x 720 frame).
OVERLAY_PNG_PARAMS = (cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE)
#: Instance maps are mostly background: OpenCV's default (run-length) is fast and small there.
INSTANCES_PNG_PARAMS = ()


@dataclasses.dataclass(frozen=True)
class Job:
    """One frame to predict: its path, its output name, its path as the results name it (a
    TuSimple raw_file, a CULane list's frame), and the rows its lanes are sampled at (None: rows
    of the result format at the frame's height, `lane_rows`)."""

    path: str
    name: str
    raw_file: str
    h_samples: tuple | None = None


def lane_rows(job, output_format, frame_height):
    """The rows a job's lanes are sampled at: its own, else the format's at the frame's height."""
    if job.h_samples is not None:
        return job.h_samples
    if output_format == "culane":
        return tuple(culane_format.sample_rows(frame_height))
    return tuple(tusimple_format.scaled_h_samples(frame_height))


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
    stems = [os.path.splitext(path.replace(os.sep, "/")) for path in relative_paths]
    file_stems = [stem.rsplit("/", 1)[-1] for stem, _ in stems]
    stem_counts = collections.Counter(file_stems)
    bases = [file_stem
             if stem_counts[file_stem] == 1 and cityscapes_format.is_result_stem(file_stem)
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


def list_jobs(indir, tusimple_tasks=None, exclude=(), culane_list=None):
    """The frames to predict, in order, each with an output name unique in the run (`output_names`).

    Args:
        indir: folder searched recursively for frames (Cityscapes' `leftImg8bit/val` holds one
            folder per city), or the root that the tasks' raw_file paths are relative to. Every
            file is a frame (a non-image is reported by name when it is read) except hidden files
            and folders and JSON label files; frames are in the order of their relative paths.
            Linked folders inside `indir` are followed, each real folder once; links that lead
            outside it are not.
        tusimple_tasks: optional TuSimple test_tasks / label file: exactly those frames, in order,
            each sampled at its own h_samples. As in the converter, a raw_file that leaves `indir`
            (`..`, an absolute path elsewhere, a symlink out) is refused.
        exclude: folders not searched, e.g. the run's outdir when it lies inside `indir`, so that
            earlier outputs are not taken for frames.
        culane_list: optional CULane list file (as given, or relative to `indir`): exactly its
            frames, in order, paths relative to `indir`; one that leaves `indir` is refused.

    Raises:
        ValueError: the folder is missing, or holds no file; the tasks file is missing, holds no
            task or has a bad line (`formats.tusimple.read_tasks`), or a raw_file outside `indir`
            (`FILE:LINE: reason`); the same for the CULane list.
    """
    if not os.path.isdir(indir):
        raise ValueError(f"--indir {indir!r} does not exist or is not a folder")
    if tusimple_tasks and culane_list:
        raise ValueError("--tusimple_tasks and --culane_list both name the frames: give one")
    if culane_list:
        return _culane_jobs(indir, culane_list)
    if tusimple_tasks:
        if not os.path.isfile(tusimple_tasks):
            raise ValueError(f"--tusimple_tasks {tusimple_tasks!r} does not exist or is not a file")
        tasks = tusimple_format.read_tasks(tusimple_tasks)
        if not tasks:
            raise ValueError(f"--tusimple_tasks {tusimple_tasks!r} holds no task")
        frames = []
        for line_number, raw_file, rows in tasks:
            try:
                tusimple_format.resolve_raw_file(indir, indir, raw_file)
            except ValueError:
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


def _culane_jobs(indir, culane_list):
    """The jobs of a CULane list's frames (`list_jobs`)."""
    list_path = culane_format.find_list(indir, culane_list)
    if not os.path.isfile(list_path):
        raise ValueError(f"--culane_list {culane_list!r} does not exist or is not a file")
    frames = []
    for entry in culane_format.read_list(list_path):
        try:
            culane_format.resolve_frame(indir, entry.frame)
        except ValueError:
            raise ValueError(f"{list_path}:{entry.line_number}: frame {entry.frame!r} resolves "
                             f"outside --indir {indir!r}, refused") from None
        relative = entry.frame.lstrip("/")
        frames.append((os.path.join(indir, relative), relative))
    if not frames:
        raise ValueError(f"--culane_list {list_path!r} holds no frame")
    names = output_names([relative for _, relative in frames])
    return [Job(path, name, relative) for (path, relative), name in zip(frames, names)]


#: What a run writes into its outdir, besides `predictions.json`: left alone when the outdir is
#: the input folder itself.
_OUTPUT_SUFFIXES = ("_overlay.png", "_instances.png", "_embedding.png")
_RESULT_FOLDERS = (CULANE_RESULTS_DIR, CITYSCAPES_RESULTS_DIR)


def _frame_files(indir, exclude):
    """Paths relative to `indir` of the frame files under it, sorted by their parts.

    A folder of `exclude` is not searched; one that is `indir` itself (outputs written beside the
    frames) is searched without the outputs a run writes (`_OUTPUT_SUFFIXES`, `_RESULT_FOLDERS`).
    Links to folders or files outside `indir` are not followed (one warning says how many).
    """
    root = os.path.realpath(indir)
    skipped = {os.path.realpath(folder) for folder in exclude}
    outputs_beside = root in skipped
    skipped.discard(root)
    seen, found, leaving = set(), [], []

    def inside(path):
        if os.path.commonpath([root, os.path.realpath(path)]) == root:
            return True
        leaving.append(path)
        return False

    for folder, subfolders, files in os.walk(indir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen or real in skipped:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".")
                               and not (outputs_beside and real == root
                                        and name in _RESULT_FOLDERS)
                               and inside(os.path.join(folder, name)))
        # Label files (JSON) beside the frames are expected and left alone.
        found += [os.path.relpath(os.path.join(folder, name), indir) for name in files
                  if not name.startswith(".") and not name.lower().endswith(".json")
                  and not (outputs_beside and name.endswith(_OUTPUT_SUFFIXES))
                  and inside(os.path.join(folder, name))]
    if leaving:
        logging.warning("%d link(s) under --indir %s lead outside it and are not followed "
                        "(first: %s)", len(leaving), indir, leaving[0])
    return sorted(found, key=lambda relative: relative.split(os.sep))


def check_save(save):
    """The picture kinds to write, checked: a subset of `PICTURES` as a tuple in `PICTURES` order.

    Raises:
        ValueError: naming the first unknown kind.
    """
    unknown = [kind for kind in save if kind not in PICTURES]
    if unknown:
        raise ValueError(f"unknown picture kind {unknown[0]!r} to save: choose from "
                         f"{', '.join(PICTURES)} (comma-separated), or none")
    return tuple(kind for kind in PICTURES if kind in save)


def write_png(path, image, params=()):
    """Encodes `image` (uint8 BGR [H, W, 3], or uint8/uint16 [H, W]) as PNG and writes it
    atomically (`atomic.write_bytes`): a run killed mid-write leaves no truncated picture.

    Args:
        path: the PNG to write.
        image: the picture.
        params: `cv2.imencode` parameters, e.g. `OVERLAY_PNG_PARAMS`.

    Raises:
        ValueError: naming `path`, when the picture cannot be encoded or written.
    """
    try:
        ok, encoded = cv2.imencode(".png", image, list(params))
    except cv2.error as error:
        raise ValueError(f"{path}: cannot encode {image.dtype} {image.shape} as PNG "
                         f"({str(error).strip().splitlines()[-1]})") from None
    if not ok:
        raise ValueError(f"{path}: cannot encode {image.dtype} {image.shape} as PNG")
    try:
        atomic.write_bytes(path, encoded)
    except OSError as error:
        raise ValueError(f"{path}: cannot write ({error.strerror or error})") from None


def _picture_writer(predictor, outdir, save, plots):
    """(write_pictures(name, image, prediction), write_plot(name, prediction)): the functions that
    write a frame's pictures (those in `save`) and its embedding plot (with `plots`) to `outdir`."""
    by_class = len(predictor.thing_classes) > 1

    def write_pictures(name, image, prediction):
        if "instances" in save:
            write_png(os.path.join(outdir, f"{name}_instances.png"),
                      prediction.instances_at_frame_size(), INSTANCES_PNG_PARAMS)
        if "overlay" in save:
            write_png(os.path.join(outdir, f"{name}_overlay.png"),
                      cv2.cvtColor(_overlay(predictor, image, prediction, by_class),
                                   cv2.COLOR_RGB2BGR), OVERLAY_PNG_PARAMS)

    def write_plot(name, prediction):
        if plots:
            visualization.embedding_scatter(prediction.embeddings, prediction.instances,
                                            os.path.join(outdir, f"{name}_embedding.png"))

    return write_pictures, write_plot


def _overlay(predictor, image, prediction, by_class):
    """The frame with its instances tinted: one hue per class for a model of several thing
    classes (Cityscapes), so that a class keeps its hue from frame to frame."""
    if by_class:
        return visualization.overlay_instances(image, prediction.instances,
                                               instance_classes=prediction.instance_classes,
                                               classes=predictor.thing_classes)
    return visualization.overlay_instances(image, prediction.instances)


def _decode_files(jobs, max_pixels):
    """`frame_pipeline.Decoded` frames of the jobs' files, in order; unreadable ones (and those
    above `max_pixels`) with their "PATH: reason"."""
    for job in jobs:
        start = time.perf_counter()
        try:
            image, error = read_image(job.path, max_pixels=max_pixels), None
        except ValueError as failure:
            image, error = None, str(failure)
            logging.warning("Skipped %s", failure)
        yield frame_pipeline.Decoded(job, image, 1000 * (time.perf_counter() - start), error)


def _prepare_outdir(outdir):
    atomic.check_folder_target(outdir)
    os.makedirs(outdir, exist_ok=True)
    # Temporaries of killed runs (pictures, clips, result files) are garbage.
    atomic.remove_leftovers(outdir, atomic.TEMP_PREFIX)


def _summary(stats):
    """The run's summary dict from `frame_pipeline.StreamStats` (see `run`)."""
    frames = max(stats.processed, 1)
    timings = {stage: total / frames for stage, total in stats.stage_ms.items()}
    timings["total"] = sum(stats.stage_ms.values()) / frames
    return {"processed": stats.processed, "skipped": list(stats.skipped), "timings_ms": timings,
            "wall_s": stats.wall_s, "frames_per_second": stats.frames_per_second}


def _holding_outdir(function):
    """Runs `function(predictor, jobs_or_clip, outdir, ...)` holding `outdir`
    (`atomic.folder_lock`): two inference runs into one folder would lose each other's
    predictions."""
    @functools.wraps(function)
    def holding(predictor, source, outdir, *args, **kwargs):
        with atomic.folder_lock(outdir, "infer"):
            return function(predictor, source, outdir, *args, **kwargs)
    return holding


@_holding_outdir
def run(predictor, jobs, outdir, output_format="tusimple", plots=False, save=PICTURES,
        pipelined=True, max_pixels=MAX_PIXELS):
    """Predicts every job and writes the outputs; bad files are reported and skipped.

    Frames are decoded ahead of the network and written behind it (`frame_pipeline.run_stream`);
    result lines stay in job order.

    Args:
        predictor: `enet_discrim.predictor.Predictor`.
        jobs: `Job`s from `list_jobs`.
        outdir: output folder (created).
        output_format: "tusimple" (`predictions.json`), "culane" (`culane_results/`) or
            "cityscapes" (`cityscapes_results/`).
        plots: also write `<name>_embedding.png`.
        save: picture kinds to write, a subset of `PICTURES` ("overlay", "instances").
        pipelined: False decodes, predicts and writes one frame after the other.
        max_pixels: frames with more pixels are skipped before they are decoded (None: no
            limit). With it, memory is bounded: the pipeline holds a fixed number of frames
            (`frame_pipeline.run_stream`'s read-ahead and pending writes).

    Returns:
        dict: "processed" count, "skipped" list of "PATH: reason", "timings_ms" mean per stage
        (`STAGES`) and "total" (their sum: a frame's work, whichever thread did it), "wall_s" and
        "frames_per_second" (wall clock), "predictions" path (tusimple) or "results_dir"
        (culane, cityscapes).

    Raises:
        ValueError: a bad argument, before any work; a file that cannot be written (naming it),
            which stops the run.
    """
    if output_format not in FORMATS:
        raise ValueError(f"unknown format {output_format!r}: choose one of {', '.join(FORMATS)}")
    save = check_save(save)
    shared = sorted(name for name, count in collections.Counter(job.name for job in jobs).items()
                    if count > 1)
    if shared:
        raise ValueError(f"several frames would write the outputs named {shared[0]!r}: give each "
                         "job its own name (list_jobs does)")
    if output_format == "culane":
        lane_files = collections.Counter(culane_format.lanes_path(job.raw_file) for job in jobs)
        shared = sorted(name for name, count in lane_files.items() if count > 1)
        if shared:
            raise ValueError(f"several frames would write the CULane results file {shared[0]!r} "
                             "(frames that differ only in their extension)")
    if output_format in LANE_DATASETS and not predictor.is_lanes:
        raise ValueError(f"--format {output_format} needs a lane model (its config.json says "
                         f"dataset {predictor.config['dataset']!r})")
    _prepare_outdir(outdir)
    predictions_path = os.path.join(outdir, PREDICTIONS_FILE)
    results_dir = os.path.join(outdir, CULANE_RESULTS_DIR if output_format == "culane"
                               else CITYSCAPES_RESULTS_DIR)
    write_pictures, write_plot = _picture_writer(predictor, outdir, save, plots)
    lines = []

    def add_line(predicted):
        job = predicted.item
        lines.append(tusimple_format.format_line(job.raw_file, predicted.prediction.lanes,
                                                 predicted.prediction.h_samples,
                                                 predicted.run_time_ms))

    def write(predicted):
        write_pictures(predicted.item.name, predicted.image, predicted.prediction)
        if output_format == "cityscapes":
            _write_cityscapes(results_dir, predicted.item, predicted.prediction)
        elif output_format == "culane":
            _write_culane(results_dir, predicted.item, predicted.prediction)

    stats = frame_pipeline.run_stream(
        _decode_files(jobs, max_pixels),
        lambda image, job: predictor.predict(
            image, h_samples=lane_rows(job, output_format, image.shape[0])),
        write=write,
        # Matplotlib figures are drawn in one thread.
        write_in_order=(lambda predicted: write_plot(predicted.item.name, predicted.prediction))
        if plots else None,
        on_predicted=add_line if output_format == "tusimple" else None,
        pipelined=pipelined,
        progress_total=len(jobs),
    )
    if output_format == "tusimple" and stats.processed:
        atomic.write_text(predictions_path, "\n".join(lines) + "\n")
    summary = _summary(stats)
    if output_format == "tusimple":
        summary["predictions"] = predictions_path
    else:
        summary["results_dir"] = results_dir
    return summary


@_holding_outdir
def run_video(predictor, path, outdir, save=PICTURES, plots=False, pipelined=True):
    """Predicts every frame of a clip, in order, and writes (`CLIP` being the clip's file stem):

    - `CLIP_overlay.mp4` ("overlay" in `save`): every frame at the clip's size and frame rate,
      instances tinted and fitted lanes drawn (`video.ClipWriter`, MPEG-4);
    - `CLIP.json`: one JSON line per frame, in order, `{"frame": i, "lanes": [...], "h_samples":
      [...], "run_time": ms}`; lanes in frame pixels at `video.tusimple_rows` of the clip's height
      (TuSimple's rows at 720), `[]` for a model that is not a lane model; run_time is the frame's
      own latency from decoding to fitted lanes;
    - `CLIP_<frame:06d>_instances.png` ("instances" in `save`), and `..._embedding.png` with
      `plots`, per frame.

    Args:
        predictor: `enet_discrim.predictor.Predictor`.
        path: a clip OpenCV reads.
        outdir: output folder (created).
        save: picture kinds, a subset of `PICTURES`.
        plots: also write an embedding scatter plot per frame.
        pipelined: False decodes, predicts and writes one frame after the other.

    Returns:
        dict as `run`'s, with "predictions" (the JSON lines file), "video" (the clip written, or
        None) and "clip" (`video.ClipInfo` of the input).

    Raises:
        ValueError: one line naming the clip when it cannot be opened, or a file that cannot be
            written (which stops the run; the overlay clip is then not written).
    """
    save = check_save(save)
    atomic.check_folder_target(outdir)
    capture, info = video.open_clip(path)
    try:
        _prepare_outdir(outdir)
    except BaseException:
        capture.release()
        raise
    clip = os.path.splitext(os.path.basename(path))[0]
    rows = video.tusimple_rows(info.height)
    predictions_path = os.path.join(outdir, f"{clip}.json")
    overlay_path = os.path.join(outdir, f"{clip}_overlay.mp4")
    write_pictures, write_plot = _picture_writer(predictor, outdir,
                                                 tuple(kind for kind in save if kind != "overlay"),
                                                 plots)
    by_class = len(predictor.thing_classes) > 1
    frames = (frame_pipeline.Decoded(index, image, decode_ms)
              for index, (image, decode_ms) in enumerate(video.read_frames(capture)))
    lines = []

    def add_line(predicted):
        lines.append(tusimple_format.format_clip_line(
            predicted.item, predicted.prediction.lanes or [], rows, predicted.run_time_ms))

    def write(predicted):
        write_pictures(f"{clip}_{predicted.item:06d}", predicted.image, predicted.prediction)

    def write_in_order(predicted, writer):
        prediction = predicted.prediction
        if writer is not None:
            drawn = _overlay(predictor, predicted.image, prediction, by_class)
            writer.write(visualization.draw_lanes(drawn, prediction.lanes or [], rows))
        write_plot(f"{clip}_{predicted.item:06d}", prediction)

    writer = None
    try:
        if "overlay" in save:
            writer = video.ClipWriter(overlay_path, info.width, info.height, info.fps)
        stats = frame_pipeline.run_stream(
            frames,
            lambda image, index: predictor.predict(image, h_samples=rows),
            write=write if "instances" in save else None,
            write_in_order=(lambda predicted: write_in_order(predicted, writer))
            if writer is not None or plots else None,
            on_predicted=add_line,
            pipelined=pipelined,
            progress_total=info.frame_count or None,
            progress_desc=clip,
        )
    except BaseException:
        capture.release()  # the frames' generator releases it too, if it started
        if writer is not None:
            writer.discard()
        raise
    if stats.processed:
        if writer is not None:
            writer.close()
        atomic.write_text(predictions_path, "\n".join(lines) + "\n")
    elif writer is not None:
        writer.discard()
    if info.frame_count and stats.processed != info.frame_count:
        logging.warning("%s: read %d frames, its container announces %d", path, stats.processed,
                        info.frame_count)
    summary = _summary(stats)
    summary.update(predictions=predictions_path,
                   video=overlay_path if writer is not None and stats.processed else None,
                   clip=info)
    return summary


def format_summary(summary):
    """Human-readable lines: counts, the mean milliseconds per frame of each stage and their sum
    (a frame's work), and the wall-clock rate (stages overlap, so it beats the sum)."""
    timings = summary["timings_ms"]
    stages = ", ".join(f"{stage} {timings[stage]:.1f}" for stage in STAGES)
    lines = [
        f"Processed {summary['processed']} frame(s), skipped {len(summary['skipped'])}.",
        f"Mean ms per frame: {stages}; total {timings['total']:.1f}.",
    ]
    if summary["processed"]:
        lines.append(f"Wall clock: {summary['wall_s']:.2f} s, "
                     f"{summary['frames_per_second']:.1f} frames per second "
                     f"({1000 / summary['frames_per_second']:.1f} ms per frame).")
    lines += [f"  skipped {reason}" for reason in summary["skipped"]]
    return "\n".join(lines)


def _write_culane(results_dir, job, prediction):
    """Writes the frame's lanes as `<its path with .lines.txt>` under `results_dir`, points from
    each lane's bottom row up; a frame without lanes gets an empty file. Lanes of one point are
    left out: CULane's metric can match no lane of fewer than 2 points."""
    lanes = [lane for lane in culane_format.lanes_from_rows(prediction.lanes, prediction.h_samples)
             if len(lane) >= 2]
    path = os.path.join(results_dir, culane_format.lanes_path(job.raw_file))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic.write_text(path, culane_format.format_lanes(lanes))
    except OSError as error:
        raise ValueError(f"{path}: cannot write ({error.strerror or error})") from None


def _write_cityscapes(results_dir, job, prediction):
    """Writes the frame's results as `<job.name>.txt` + masks, at the frame's size.

    Raises:
        ValueError: naming the frame, when its name is not a Cityscapes stem, under which the
            official evaluator could not find its results.
    """
    if not cityscapes_format.is_result_stem(job.name):
        raise ValueError(f"{job.path}: --format cityscapes needs frames named like Cityscapes "
                         f"ones (<city>_<seq>_<frame>_leftImg8bit.png), so that the evaluator "
                         f"finds their results; this one would be {job.name!r}")
    confidences = cityscapes_format.instance_confidences(
        prediction.semantic_probabilities, prediction.instances, prediction.instance_classes
    )
    cityscapes_format.write_results(
        results_dir, job.name, prediction.instances, prediction.instance_classes, confidences,
        output_size=prediction.frame_size,
    )
