"""ENet + discriminative loss for semantic instance segmentation (De Brabandere et al., 2017).

The package follows the data: `formats` (TuSimple lines, Cityscapes files, images: one module
each) -> `data` (converters, records, tf.data, synthetic generators) -> `model` (ENet) -> `losses`
(discriminative and semantic) -> `training` (config, steps, distribution, the loop) ->
`predictor` / `clustering` / `lanes` (inference) -> `batch_inference` / `frame_pipeline` /
`video` (folders and clips) -> `evaluation` -> `visualization`, `export` (SavedModel, TFLite),
`benchmark`. `model_dir` owns a model folder; `cli` holds the `enet-discrim` commands.

Importing the package registers its Keras classes (as `import keras_hub` does), so that
`keras.saving.load_model("trained_model/model.keras")` works after `import enet_discrim`.
TensorFlow is imported here without its C++ start-up log unless `--verbose` is among the
program's arguments (`cli.support.quiet_startup`).
"""
import sys

from enet_discrim.cli import support as _support

_support.quiet_startup(sys.argv[1:])

from enet_discrim import model as _model  # noqa: E402  registers ENet and its layers

__version__ = "0.1.0"
