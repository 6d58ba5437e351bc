"""Trains ENet with the discriminative loss: `enet-discrim train` and `python training.py`.

    enet-discrim train --srcdir data --var 1.0 --dist 1.0

`--srcdir` holds the TFRecords written by `enet_discrim.data.tusimple` / `.cityscapes` (train-*
and val-* shards), or a raw TuSimple / Cityscapes folder, which is converted first into its
`tfrecords/` subfolder. Running the same command again after an interruption resumes from the last
checkpoint in `--outdir`. Watch it with `tensorboard --logdir log`.

Importing this module defines the flags in absl's global `flags.FLAGS`; `run` parses them.
"""

from absl import flags, logging

from enet_discrim.cli import support
from enet_discrim.formats import DATASETS
from enet_discrim.losses import discriminative
from enet_discrim.training import distribution

flags.DEFINE_string("srcdir", "data", "TFRecords (train-*/val-* shards) or a raw dataset folder.")
flags.DEFINE_string("modeldir", None, "A model folder (model.keras) to fine-tune from, e.g. trained_model.")
flags.DEFINE_string("outdir", "saved_model", "Where model.keras, config.json and checkpoints go.")
flags.DEFINE_string("logdir", "log", "TensorBoard log folder.")
flags.DEFINE_integer("epochs", 50, "Number of epochs.")
flags.DEFINE_float("var", discriminative.VAR_WEIGHT, "Weight of the variance (pull) term.")
flags.DEFINE_float("dist", discriminative.DIST_WEIGHT, "Weight of the distance (push) term.")
flags.DEFINE_float("reg", discriminative.REG_WEIGHT, "Weight of the regularization term.")
flags.DEFINE_float("dvar", discriminative.DELTA_V, "Variance margin delta_v.")
flags.DEFINE_float("ddist", discriminative.DELTA_D, "Distance margin delta_d.")
flags.DEFINE_enum("dataset", "tusimple", list(DATASETS),
                  "Dataset in --srcdir; the lane datasets (tusimple, culane) read each other's records and "
                  "differ only in the format a model's results are written in by default.")
flags.DEFINE_integer("batch_size", 8, "Global batch size (over all replicas).")
flags.DEFINE_float("learning_rate", 5e-4, "Adam learning rate.")
flags.DEFINE_integer("height", 256, "Training height, a multiple of 8.")
flags.DEFINE_integer("width", 512, "Training width, a multiple of 8.")
flags.DEFINE_integer("crop_height", None, "Train on random windows of this height (with --crop_width) "
                     "of the --height x --width frames, which the model still serves at.")
flags.DEFINE_integer("crop_width", None, "Width of the training windows (with --crop_height).")
flags.DEFINE_integer("embedding_dim", 4, "Dimensions of the pixel embedding.")
flags.DEFINE_enum("strategy", "auto", ["auto", "mirrored", "multi_worker"],
                  "auto: all local GPUs; mirrored: MirroredStrategy; multi_worker: from TF_CONFIG.")
flags.DEFINE_float("peer_timeout", distribution.PEER_TIMEOUT_S,
                   "multi_worker: seconds to wait for the cluster's other tasks to start.")
flags.DEFINE_bool("mixed_precision", False, "float16 (GPU) / bfloat16 (CPU) compute with float32 weights.")
flags.DEFINE_integer("checkpoint_every", 0, "Checkpoint every N steps; 0 = at the end of each epoch.")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch; default: one pass over the training set.")
flags.DEFINE_integer("validation_steps", None, "Validation batches per epoch; default: the whole set.")
flags.DEFINE_integer("seed", 0, "Seed of the data shuffling and augmentation.")

FLAGS = flags.FLAGS


def main(argv):
    """absl main: trains with the parsed flags; returns the exit status (`support` codes)."""
    if len(argv) > 1:
        return support.report_error(f"unexpected arguments {' '.join(argv[1:])!r}: every setting is a --flag")
    from enet_discrim.training import TrainConfig, TrainingDivergedError, train

    config = TrainConfig(
        srcdir=FLAGS.srcdir,
        outdir=FLAGS.outdir,
        logdir=FLAGS.logdir,
        modeldir=FLAGS.modeldir,
        dataset=FLAGS.dataset,
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        height=FLAGS.height,
        width=FLAGS.width,
        embedding_dim=FLAGS.embedding_dim,
        crop_height=FLAGS.crop_height,
        crop_width=FLAGS.crop_width,
        var_weight=FLAGS.var,
        dist_weight=FLAGS.dist,
        reg_weight=FLAGS.reg,
        delta_v=FLAGS.dvar,
        delta_d=FLAGS.ddist,
        strategy=FLAGS.strategy,
        peer_timeout=FLAGS.peer_timeout,
        mixed_precision=FLAGS.mixed_precision,
        checkpoint_every=FLAGS.checkpoint_every,
        steps_per_epoch=FLAGS.steps_per_epoch,
        validation_steps=FLAGS.validation_steps,
        seed=FLAGS.seed,
    )
    try:
        result = train(config)
    except (TrainingDivergedError, distribution.PeerTimeoutError) as error:
        return support.report_error(error, support.EXIT_FAILED)
    except ValueError as error:
        return support.report_error(error)
    logging.info(
        "Done: %d epochs, %d steps, best validation loss %.4f; model in %s",
        result["epochs"], result["steps"], result["best_val_loss"], result["outdir"],
    )
    return support.EXIT_OK


def run(argv=None):
    """Trains from the command line `argv` (the program name first; default `sys.argv`); exits."""
    support.run_absl_command(main, __name__, argv)
