"""Runs a trained model on frames: instances, pictures, TuSimple lanes or Cityscapes results.

    python inference.py --modeldir trained_model

Writes `<name>_overlay.png` and `<name>_instances.png` per frame to --outdir, plus
`predictions.json` (TuSimple submission format) or `cityscapes_results/` (--format cityscapes),
and prints a per-stage timing summary.
"""

import sys

from absl import app, flags, logging

from enet_discrim.lanes import LANE_MODELS

flags.DEFINE_string("modeldir", "trained_model", "Folder with model.keras and config.json.")
flags.DEFINE_string("indir", "inference_test/images",
                    "Folder of frames (jpg/png), searched recursively (e.g. Cityscapes' leftImg8bit/val with its "
                    "city folders), or the root of --tusimple_tasks.")
flags.DEFINE_string("outdir", "inference_test/results", "Where the pictures and results go.")
flags.DEFINE_float("bandwidth", None, "Mean-shift bandwidth; default: the model's config.json.")
flags.DEFINE_float("min_confidence", None,
                   "Class probability a pixel needs to join an instance; default: the model's config.json.")
flags.DEFINE_enum("lane_model", None, list(LANE_MODELS),
                  "How lanes are fitted (enet_discrim.lanes.fit_lanes); default: the model's config.json.")
flags.DEFINE_enum("format", None, ["tusimple", "cityscapes"], "Result format; default: the model's dataset.")
flags.DEFINE_string("tusimple_tasks", None,
                    "A TuSimple test_tasks/label file: predict exactly its frames (raw_file relative to --indir).")
flags.DEFINE_bool("plots", False, "Also write an embedding scatter plot per frame.")

FLAGS = flags.FLAGS


def main(argv):
    del argv
    from enet_discrim import atomic, batch_inference
    from enet_discrim.predictor import Predictor

    try:
        atomic.check_folder_target(FLAGS.outdir)
        predictor = Predictor(FLAGS.modeldir, bandwidth=FLAGS.bandwidth, min_confidence=FLAGS.min_confidence,
                              lane_model=FLAGS.lane_model)
        jobs = batch_inference.list_jobs(FLAGS.indir, FLAGS.tusimple_tasks, exclude=[FLAGS.outdir])
        summary = batch_inference.run(
            predictor,
            jobs,
            FLAGS.outdir,
            output_format=FLAGS.format or predictor.config["dataset"],
            plots=FLAGS.plots,
        )
    except ValueError as error:
        logging.error("%s", error)
        sys.exit(f"inference.py: {error}")
    print(batch_inference.format_summary(summary))
    if not summary["processed"]:
        sys.exit("inference.py: no frame could be processed")
    print(f"Pictures and results are in {FLAGS.outdir}")


if __name__ == "__main__":
    app.run(main)
