"""Datasets: native formats -> TFRecords -> the tf.data pipeline.

- `schema`: the TFRecord layout, `make_example` and `decode_example`;
- `tusimple`, `cityscapes`: converters (`python -m enet_discrim.data.tusimple ...`);
- `writer`: atomic sharded writing shared by the converters;
- `pipeline`: `parse_fn`, `build_dataset`, `find_shards`.
"""
from enet_discrim.data.pipeline import build_dataset
from enet_discrim.data.pipeline import find_shards
from enet_discrim.data.pipeline import flip_left_right
from enet_discrim.data.pipeline import parse_fn
from enet_discrim.data.pipeline import resolve_files
from enet_discrim.data.schema import decode_example
from enet_discrim.data.schema import FEATURE_SPEC
from enet_discrim.data.schema import IGNORE_LABEL
from enet_discrim.data.schema import make_example

__all__ = [
    "FEATURE_SPEC",
    "IGNORE_LABEL",
    "build_dataset",
    "decode_example",
    "find_shards",
    "flip_left_right",
    "make_example",
    "parse_fn",
    "resolve_files",
]
