"""Datasets: native formats -> TFRecords -> the tf.data pipeline.

- `schema`: the TFRecord layout, `make_example` and `decode_example`;
- `tusimple`, `cityscapes`: converters (`python -m enet_discrim.data.tusimple ...`);
- `writer`: atomic sharded writing shared by the converters;
- `pipeline`: `parse_fn`, `build_dataset`, `find_shards`;
- `label_stats`: statistics of TuSimple label files (`python -m enet_discrim.data.label_stats`);
- `synthetic`: generators of synthetic TuSimple and Cityscapes data in their native layouts.

The names below are imported on first use (PEP 562), so that importing one submodule does not
build the tf.data pipeline's module as well.
"""
import importlib

_EXPORTS = {
    "build_dataset": "enet_discrim.data.pipeline",
    "find_shards": "enet_discrim.data.pipeline",
    "flip_left_right": "enet_discrim.data.pipeline",
    "parse_fn": "enet_discrim.data.pipeline",
    "resolve_files": "enet_discrim.data.pipeline",
    "decode_example": "enet_discrim.data.schema",
    "FEATURE_SPEC": "enet_discrim.data.schema",
    "IGNORE_LABEL": "enet_discrim.data.schema",
    "make_example": "enet_discrim.data.schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
