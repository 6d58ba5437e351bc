"""Export a trained model for deployment: a SavedModel with a serving signature, or TFLite.

    python -m enet_discrim.export --modeldir trained_model --outdir exported --format saved_model|tflite

Both take uint8 RGB images [N, H, W, 3] at the model's size (config.json). The SavedModel's
`serving_default` returns `semantic_probabilities` float32 [N, H, W, C] (softmax) and `embeddings`
float32 [N, H, W, D]. The TFLite model (float32, batch 1, builtin ops only) has one input and one
output, float32 [1, H, W, C + D]: the C class probabilities, then the D embedding channels
(a converted model keeps no output names, so one tensor leaves nothing to guess).
"""

import argparse
import os
import sys

import tensorflow as tf
from absl import logging

from enet_discrim import atomic, model_dir

FORMATS = ("saved_model", "tflite")
TFLITE_FILE = "model.tflite"


class ServingModule(tf.Module):
    """Wraps the Keras model behind a uint8 serving function."""

    def __init__(self, model, height, width, batch_size=None):
        super().__init__()
        self.model = model
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([batch_size, height, width, 3], tf.uint8, name="images")],
        )

    def _serve(self, images):
        outputs = self.model(tf.cast(images, tf.float32), training=False)
        return {
            "semantic_probabilities": tf.nn.softmax(outputs["semantic_logits"], axis=-1),
            "embeddings": outputs["embeddings"],
        }

    def concatenated(self, images):
        """The TFLite output: probabilities and embeddings along the channel axis."""
        outputs = self._serve(images)
        return tf.concat([outputs["semantic_probabilities"], outputs["embeddings"]], axis=-1)


def export(modeldir, outdir, output_format="saved_model"):
    """Writes the SavedModel folder (`outdir`) or `outdir/model.tflite`; returns the path.

    Both are written atomically: the SavedModel into a folder beside `outdir` that then takes its
    place (`atomic.write_folder`; other files in `outdir`, such as a model.tflite, are kept), the
    TFLite file through a temporary file. A run killed at any point leaves the earlier export
    loadable.

    Raises:
        ValueError: an unknown format, or a model folder missing its files.
    """
    atomic.check_folder_target(outdir)
    if output_format not in FORMATS:
        raise ValueError(f"unknown format {output_format!r}: choose one of {', '.join(FORMATS)}")
    model, settings = model_dir.load(modeldir)
    height, width = settings.height, settings.width
    if output_format == "saved_model":
        module = ServingModule(model, height, width)
        # Written beside outdir and swapped in: an earlier export stays loadable until then.
        atomic.write_folder(outdir, lambda folder: tf.saved_model.save(
            module, folder, signatures={"serving_default": module.serve}))
        logging.info("SavedModel written to %s", outdir)
        return outdir

    module = ServingModule(model, height, width, batch_size=1)
    function = tf.function(module.concatenated, input_signature=[tf.TensorSpec([1, height, width, 3], tf.uint8)])
    # Without the trackable object the converter freezes the weights into constants; with it (or
    # through a SavedModel) TF 2.21 keeps them as variables that the interpreter leaves NaN.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, TFLITE_FILE)
    atomic.write_bytes(path, flatbuffer)
    logging.info("TFLite model written to %s (%.1f MB)", path, len(flatbuffer) / 1e6)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m enet_discrim.export", description=__doc__.split("\n")[0])
    parser.add_argument("--modeldir", required=True, help="folder with model.keras and config.json")
    parser.add_argument("--outdir", required=True, help="SavedModel folder, or folder for model.tflite")
    parser.add_argument("--format", choices=FORMATS, default="saved_model")
    args = parser.parse_args(argv)
    try:
        path = export(args.modeldir, args.outdir, args.format)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Exported {args.format} to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
