"""Runs a trained model on frames or a video: `enet-discrim infer` and `python inference.py`.

    enet-discrim infer --modeldir trained_model
    enet-discrim infer --modeldir trained_model --video CLIP.mp4 --outdir OUT

A folder: writes `<name>_overlay.png` and `<name>_instances.png` per frame to --outdir (--save
picks them), plus `predictions.json` (TuSimple submission format), `culane_results/` (--format
culane: a `.lines.txt` per frame, in the frames' layout) or `cityscapes_results/` (--format
cityscapes). A video: `CLIP_overlay.mp4` (every frame, instances and lanes drawn, at the
clip's size and frame rate) and `CLIP.json` (one line per frame: frame, lanes, h_samples,
run_time). Frames are decoded ahead of the network and written behind it; a per-stage timing
summary with the wall-clock frame rate is printed at the end.

Importing this module defines the flags in absl's global `flags.FLAGS`; `run` parses them.
"""

from absl import flags

from enet_discrim.cli import support
from enet_discrim.formats import DATASETS
from enet_discrim.formats.images import MAX_PIXELS
from enet_discrim.lanes import LANE_MODELS

#: Frames from which a run compiles the network with XLA unless told (`--jit_compile`): the compile
#: takes about a second on the shipped model and saves several milliseconds a frame.
AUTO_JIT_MIN_FRAMES = 100

flags.DEFINE_string("modeldir", "trained_model",
                    "Folder with config.json and model.keras, or model.tflite (run when present).")
flags.DEFINE_string("indir", "inference_test/images",
                    "Folder of frames (jpg/png), searched recursively (e.g. Cityscapes' leftImg8bit/val with its "
                    "city folders), or the root of --tusimple_tasks.")
flags.DEFINE_string("outdir", "inference_test/results", "Where the pictures and results go.")
flags.DEFINE_float("bandwidth", None, "Mean-shift bandwidth; default: the model's config.json.")
flags.DEFINE_float("min_confidence", None,
                   "Class probability a pixel needs to join an instance; default: the model's config.json.")
flags.DEFINE_enum("lane_model", None, list(LANE_MODELS),
                  "How lanes are fitted (enet_discrim.lanes.fit_lanes); default: the model's config.json.")
flags.DEFINE_enum("format", None, list(DATASETS),
                  "Result format: predictions.json (tusimple), culane_results/ (culane) or "
                  "cityscapes_results/; default: culane with --culane_list, else the model's dataset.")
flags.DEFINE_string("tusimple_tasks", None,
                    "A TuSimple test_tasks/label file: predict exactly its frames (raw_file relative to --indir).")
flags.DEFINE_string("culane_list", None,
                    "A CULane list file (list/test.txt; as given or relative to --indir): predict exactly its "
                    "frames (paths relative to --indir), in CULane's format.")
flags.DEFINE_bool("plots", False, "Also write an embedding scatter plot per frame.")
flags.DEFINE_integer("threads", None, "TFLite interpreter threads, for a --modeldir that holds model.tflite; "
                     "default: TFLite's choice.", lower_bound=1)
flags.DEFINE_string("video", None,
                    "A video file (any format OpenCV reads) to run on instead of --indir: writes "
                    "CLIP_overlay.mp4 and CLIP.json (one line per frame) to --outdir.")
flags.DEFINE_list("save", ["overlay", "instances"],
                  "Pictures to write, comma-separated: overlay (for --video, the overlay clip), instances "
                  "(uint16 instance maps; for --video one CLIP_<frame>_instances.png per frame); empty: none. "
                  "Default for --video: overlay only.")
flags.DEFINE_bool("jit_compile", None,
                  "Compile the network with XLA (Keras models only): about half the network time per frame "
                  "after a few seconds of compiling. Default: on for a clip or a run of at least "
                  f"{AUTO_JIT_MIN_FRAMES} frames; --nojit_compile turns it off.")
flags.DEFINE_float("max_megapixels", MAX_PIXELS / 1e6,
                   "Frames with more pixels (width x height, in millions) are skipped, read from their header "
                   "before they are decoded: one huge frame would exhaust memory.", lower_bound=0.0)
flags.DEFINE_bool("pipelined", True,
                  "Decode frames ahead of the network and write them behind it in other threads; "
                  "--nopipelined runs the stages one after the other.")

FLAGS = flags.FLAGS


def use_xla(jit_compile, frame_count, modeldir):
    """Whether to compile the network: as asked, or (`jit_compile` None) for a Keras model folder
    when the run has at least `AUTO_JIT_MIN_FRAMES` frames (`frame_count` None: a clip of
    unknown length)."""
    from enet_discrim import model_dir

    if jit_compile is not None:
        return jit_compile
    if model_dir.holds_tflite(modeldir):
        return False
    return frame_count is None or frame_count >= AUTO_JIT_MIN_FRAMES


def main(argv):
    """absl main: runs inference with the parsed flags; returns the exit status (`support` codes)."""
    if len(argv) > 1:
        return support.report_error(f"unexpected arguments {' '.join(argv[1:])!r}: every setting is a --flag")
    from enet_discrim import atomic, batch_inference, model_dir, video
    from enet_discrim.predictor import Predictor

    try:
        atomic.check_folder_target(FLAGS.outdir)
        # A clip's instance maps are one PNG per frame: written for --video only when asked for.
        chosen = FLAGS.save if FLAGS["save"].present or FLAGS.video is None else ["overlay"]
        save = batch_inference.check_save(chosen)
        model_dir.check_folder(FLAGS.modeldir)  # before the frames: a wrong folder is the likelier slip
        if FLAGS.video is not None:
            given = [name for name in ("indir", "tusimple_tasks", "culane_list", "format")
                     if FLAGS[name].present]
            if given:
                raise ValueError(f"--video runs on a clip: --{given[0]} does not apply to it")
            capture, clip = video.open_clip(FLAGS.video)  # a clip that cannot be read fails first
            capture.release()
            frame_count = clip.frame_count or None
        else:
            output_format = FLAGS.format or ("culane" if FLAGS.culane_list else None)
            if FLAGS.culane_list and output_format != "culane":
                raise ValueError(f"--culane_list writes CULane's format, not --format {output_format}")
            if FLAGS.tusimple_tasks and output_format not in (None, "tusimple"):
                raise ValueError(f"--tusimple_tasks writes TuSimple's format, not --format {output_format}")
            jobs = batch_inference.list_jobs(FLAGS.indir, FLAGS.tusimple_tasks, exclude=[FLAGS.outdir],
                                             culane_list=FLAGS.culane_list)
            frame_count = len(jobs)
        predictor = Predictor(FLAGS.modeldir, bandwidth=FLAGS.bandwidth, min_confidence=FLAGS.min_confidence,
                              lane_model=FLAGS.lane_model, threads=FLAGS.threads,
                              jit_compile=use_xla(FLAGS.jit_compile, frame_count, FLAGS.modeldir))
        if FLAGS.video is not None:
            summary = batch_inference.run_video(predictor, FLAGS.video, FLAGS.outdir, save=save,
                                                plots=FLAGS.plots, pipelined=FLAGS.pipelined)
        else:
            summary = batch_inference.run(
                predictor,
                jobs,
                FLAGS.outdir,
                output_format=output_format or predictor.config["dataset"],
                plots=FLAGS.plots,
                save=save,
                pipelined=FLAGS.pipelined,
                max_pixels=FLAGS.max_megapixels * 1e6,
            )
    except ValueError as error:
        return support.report_error(error)
    print(batch_inference.format_summary(summary))
    if not summary["processed"]:
        return support.report_error("no frame could be processed")
    print(f"Pictures and results are in {FLAGS.outdir}")
    return support.EXIT_OK


def run(argv=None):
    """Runs inference from the command line `argv` (the program name first; default `sys.argv`);
    exits."""
    support.run_absl_command(main, __name__, argv)
