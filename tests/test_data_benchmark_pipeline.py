"""The input pipeline benchmark: synthetic frames are valid records; run() counts what it reads."""
import types

import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.benchmark import pipeline as pipeline_benchmark
from enet_discrim.data import build_dataset, decode_example


def test_synthetic_frames_have_one_instance_per_lane(tmp_path):
    paths, mean_bytes = pipeline_benchmark.write_synthetic_shards(str(tmp_path), 3, 32, 64,
                                                                  shard_size=2)
    assert len(paths) == 2 and mean_bytes > 0
    records = [decode_example(serialized) for serialized in tf.data.TFRecordDataset(paths)]
    assert len(records) == 3
    for record in records:
        assert record["image"].shape == (32, 64, 3)
        assert sorted(np.unique(record["instance"].numpy())) == [0, 1, 2, 3, 4]
        np.testing.assert_array_equal(record["semantic"].numpy(), record["instance"].numpy() > 0)


def test_run_reports_the_images_read_in_the_timed_interval(monkeypatch):
    # A clock that reads 10.0 s and then 12.5 s, and a dataset that counts the images it hands
    # out: the rate must be the images read between the two clock reads over 2.5 s.
    read = {"images": 0, "at_clock_reads": []}

    def counting_dataset(*args, **kwargs):
        for images, labels in build_dataset(*args, **kwargs):
            assert images.shape[1:3] == (32, 64)
            read["images"] += int(images.shape[0])
            yield images, labels

    clock_times = iter([10.0, 12.5])

    def perf_counter():
        read["at_clock_reads"].append(read["images"])
        return next(clock_times)

    monkeypatch.setattr(pipeline_benchmark, "build_dataset", counting_dataset)
    monkeypatch.setattr(pipeline_benchmark, "time", types.SimpleNamespace(perf_counter=perf_counter))
    result = pipeline_benchmark.run(height=32, width=64, batch_size=2, num_batches=3,
                                    warmup_batches=1, num_frames=4)
    warmup_images, images_at_stop = read["at_clock_reads"]
    assert warmup_images == 2  # one warm-up batch of 2, read before the clock starts
    assert result["images"] == images_at_stop - warmup_images == 6
    assert result["seconds"] == 2.5
    assert result["images_per_s"] == pytest.approx(6 / 2.5)
    assert result["source"] == "synthetic"
    assert (result["height"], result["width"], result["batch_size"]) == (32, 64, 2)
