"""Throughput of the training input pipeline (`enet_discrim.data.build_dataset`), in images/s.

    python -m enet_discrim.benchmark.pipeline [--file_pattern 'OUT/train-*.tfrecord']
        [--height 256 --width 512 --batch_size 8 --num_batches 40]

Without --file_pattern it measures on road-like synthetic frames (textured so that their JPEG size
is close to real TuSimple frames at the same size) written to a temporary folder.
"""
import argparse
import json
import os
import tempfile
import time

from absl import logging
import cv2
import numpy as np

from enet_discrim.data import build_dataset
from enet_discrim.data import make_example
from enet_discrim.data import writer


def synthetic_frame(rng, height, width, num_lanes=4):
    """A road-like frame: sky and road gradients, sensor-like noise, a few lanes.

    Args:
        rng: numpy Generator.
        height, width: frame size.
        num_lanes: lanes drawn, each its own instance.

    Returns:
        (image uint8 [H, W, 3] RGB, semantic uint8 [H, W], instance uint16 [H, W]).
    """
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    image = np.where(rows < 0.4, 170.0 + 60.0 * rows, 70.0 + 40.0 * rows) * np.ones((1, width, 3))
    # Blurred noise gives textures the JPEG coder cannot squeeze away, as asphalt does.
    texture = cv2.GaussianBlur(rng.normal(0.0, 25.0, (height, width, 3)), (0, 0), 1.0)
    image = np.clip(image + texture, 0, 255).astype(np.uint8)
    instance = np.zeros((height, width), np.uint16)
    horizon = int(0.4 * height)
    for lane in range(num_lanes):
        bottom_x = int((lane + 0.5) * width / num_lanes + rng.normal(0, width / 40))
        points = np.array([[width // 2, horizon], [bottom_x, height - 1]], np.int32)
        cv2.polylines(image, [points], False, (235, 235, 235), max(2, width // 128))
        cv2.polylines(instance, [points], False, lane + 1, max(2, width // 128))
    return image, (instance > 0).astype(np.uint8), instance


def write_synthetic_shards(folder, num_frames, height, width, shard_size=16, seed=0):
    """Writes `num_frames` synthetic frames (JPEG, quality 95) as "train" shards into `folder`.

    Returns:
        (list of shard paths, mean encoded Example size in bytes).
    """
    rng = np.random.default_rng(seed)
    total_bytes = 0
    with writer.ShardWriter(folder, ["train"], shard_size) as shard_writer:
        for index in range(num_frames):
            image, semantic, instance = synthetic_frame(rng, height, width)
            serialized = make_example(image, semantic, instance, f"synthetic/{index}.jpg")
            total_bytes += len(serialized)
            shard_writer.write("train", serialized)
        paths = shard_writer.commit()["train"]
    return paths, total_bytes / max(num_frames, 1)


def run(file_pattern=None, height=256, width=512, batch_size=8, num_batches=40, warmup_batches=5,
        num_frames=64):
    """Measures images/s of `build_dataset(..., is_training=True)` (full augmentation).

    Args:
        file_pattern: TFRecord glob or list; None: synthetic frames of height x width.
        height, width: training size.
        batch_size: frames per batch.
        num_batches: batches timed.
        warmup_batches: batches read before timing (fills the shuffle and prefetch buffers).
        num_frames: synthetic frames written when file_pattern is None (the dataset repeats).

    Returns:
        dict with images_per_s, seconds, images, batch_size, height, width, cpu_count, source and
        mean_example_bytes (synthetic only).
    """
    with tempfile.TemporaryDirectory(prefix="pipeline-benchmark-") as folder:
        mean_bytes = None
        if file_pattern is None:
            file_pattern, mean_bytes = write_synthetic_shards(folder, num_frames, height, width)
        dataset = build_dataset(file_pattern, batch_size, height, width, is_training=True,
                                repeat=True, seed=0)
        iterator = iter(dataset)
        for _ in range(warmup_batches):
            next(iterator)
        start = time.perf_counter()
        for _ in range(num_batches):
            next(iterator)
        seconds = time.perf_counter() - start
    images = num_batches * batch_size
    result = {
        "images_per_s": images / seconds,
        "seconds": seconds,
        "images": images,
        "batch_size": batch_size,
        "height": height,
        "width": width,
        "cpu_count": os.cpu_count(),
        "source": "synthetic" if mean_bytes is not None else "files",
        "mean_example_bytes": mean_bytes,
    }
    logging.info("input pipeline: %.1f images/s", result["images_per_s"])
    return result


def main(argv=None):
    """Command line entry point: prints the result of `run` as JSON."""
    parser = argparse.ArgumentParser(description="Measure the training input pipeline's images/s.")
    parser.add_argument("--file_pattern", default=None, help="TFRecord glob; default synthetic")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_batches", type=int, default=40)
    parser.add_argument("--warmup_batches", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(args.file_pattern, args.height, args.width, args.batch_size, args.num_batches,
                 args.warmup_batches)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
