"""The TFLite network's milliseconds per frame: float32, float16 weights and full-integer int8.

Each model folder is exported as `python -m enet_discrim.export --format tflite --quantize MODE`
writes it and run as the predictor runs it (`enet_discrim.tflite_network.TFLiteNetwork`, XNNPACK),
on one fixed frame, batch 1, the modes taking turns. int8 calibrates on a few synthetic frames:
the timing does not depend on how well the ranges fit.
"""

import functools
import os
import time

import numpy as np

from enet_discrim import export
from enet_discrim.benchmark.timing import interleaved_seconds
from enet_discrim.tflite_network import TFLiteNetwork

#: The arithmetic each quantize mode of `enet_discrim.export` leaves (float16 stores the weights
#: as float16; XNNPACK computes in float32 with them).
PRECISIONS = {"none": "float32", "float16": "float16", "int8": "int8"}


def run(modeldir, workdir, modes=export.QUANTIZE_MODES, repeats=20, calibration_frames=8, threads=None):
    """Exports `modeldir` to TFLite in each of `modes` and times the networks in turns.

    All exports come first; then each round calls every network once, so that the state the
    process and the machine are in (other load, caches, thread pools of earlier work) weighs on
    all of them alike (timed one after the other at the end of the full benchmark, the int8 ratio
    came out lower than in a process of its own: `docs/EXPERIMENTS.md`).

    Args:
        modeldir: a Keras model folder (`model.keras`, `config.json`).
        workdir: a folder for the exported model folders (`tflite_<mode>/`).
        modes: quantize modes of `enet_discrim.export`.
        repeats: timed rounds, after one untimed.
        calibration_frames: synthetic frames the int8 export calibrates on.
        threads: interpreter threads (None: TFLite's choice, as the predictor's default).

    Returns:
        dict: "float32", "float16", "int8" (the modes "none", "float16", "int8") -> {"ms" (median),
        "frames_per_s", "megabytes" (of model.tflite), "export_s"}.
    """
    exported = {}
    for mode in modes:
        start = time.perf_counter()
        path = export.export(modeldir, os.path.join(workdir, f"tflite_{mode}"), output_format="tflite",
                             quantize=mode, calibration_frames=calibration_frames)
        exported[mode] = path, time.perf_counter() - start
    networks = {mode: TFLiteNetwork(path, threads=threads) for mode, (path, _) in exported.items()}
    any_network = next(iter(networks.values()))
    images = np.random.default_rng(0).integers(
        0, 256, (1, any_network.height, any_network.width, 3)).astype(np.float32)
    times = interleaved_seconds({mode: functools.partial(network, images)
                                 for mode, network in networks.items()}, repeats)
    result = {}
    for mode, (path, export_s) in exported.items():
        seconds = float(np.median(times[mode]))
        result[PRECISIONS[mode]] = {"ms": 1000 * seconds, "frames_per_s": 1 / seconds,
                                    "megabytes": os.path.getsize(path) / 1e6, "export_s": export_s}
    return result
