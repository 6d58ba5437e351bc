"""ENet + discriminative loss for semantic instance segmentation (De Brabandere et al., 2017).

The package follows the data: `data` (formats, TFRecords, tf.data) -> `model` (ENet) ->
`losses` (discriminative and semantic) -> `training` -> `clustering` / post-processing ->
`evaluation` -> visualisation and export.
"""

__version__ = "0.1.0"
