"""Runs cityscapesscripts' official instance evaluator under NumPy 2.

`cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling` (2.3.0) breaks on NumPy >= 2.4,
where `np.in1d` is gone, and on NumPy >= 2, where `np.count_nonzero` returns `np.int64`, which its
`writeDict2JSON` (json with `default=lambda o: o.__dict__`) cannot serialise. It also writes a
`matches.json` into the current directory and reports errors with `sys.exit`.

`official_instance_evaluator` patches only the evaluator module's own names, for the duration of a
`with` block: `np` becomes numpy plus `in1d` (as `np.isin(...).ravel()`), `writeDict2JSON` writes
numpy scalars and arrays as plain JSON and puts relative paths under a scratch folder, and
`printError` raises `CityscapesEvaluationError` instead of exiting. Everything else -- matching,
AP computation, averaging -- is the official code. The patch is process-wide while active: do not
run two evaluations at once in one process.
"""

import contextlib
import importlib
import json
import os

import numpy as np

EVALUATOR_MODULE = "cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling"


class CityscapesEvaluationError(ValueError):
    """The official evaluator rejected its input (its message says why)."""


class _NumpyWithIn1d:
    """numpy, plus `in1d` where numpy no longer has it."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def in1d(values, test_values, assume_unique=False, invert=False):
        """`np.in1d`: flattened membership test, removed in NumPy 2.4."""
        return np.isin(values, test_values, assume_unique=assume_unique, invert=invert).ravel()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.__dict__  # what the official writer does for everything else


def _json_writer(scratch_dir):
    def write_dict_to_json(dictionary, file_name):
        """Official `writeDict2JSON`, with numpy values and relative paths under scratch_dir."""
        if not os.path.isabs(file_name):
            file_name = os.path.join(scratch_dir, file_name)
        with open(file_name, "w", encoding="utf-8") as json_file:
            json_file.write(json.dumps(dictionary, default=_json_default, sort_keys=True,
                                       indent=4))
    return write_dict_to_json


def _raise_error(message):
    raise CityscapesEvaluationError(str(message))


@contextlib.contextmanager
def official_instance_evaluator(scratch_dir):
    """The official evaluator module, patched to run under NumPy 2, inside a `with` block.

    Args:
        scratch_dir: existing folder for the files the evaluator writes under relative names
            (matches.json).

    Yields:
        the `evalInstanceLevelSemanticLabeling` module; its names are restored on exit.
    """
    module = importlib.import_module(EVALUATOR_MODULE)
    patches = {"np": _NumpyWithIn1d(), "writeDict2JSON": _json_writer(scratch_dir),
               "printError": _raise_error}
    saved = {name: getattr(module, name) for name in patches}
    try:
        for name, value in patches.items():
            setattr(module, name, value)
        yield module
    finally:
        for name, value in saved.items():
            setattr(module, name, value)
