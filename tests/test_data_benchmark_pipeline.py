"""The input pipeline benchmark: synthetic frames are valid records; run() counts what it reads."""
import numpy as np
import tensorflow as tf

from enet_discrim.benchmark import pipeline as pipeline_benchmark
from enet_discrim.data import decode_example


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


def test_run_reports_images_read(tmp_path):
    result = pipeline_benchmark.run(height=32, width=64, batch_size=2, num_batches=3,
                                    warmup_batches=1, num_frames=4)
    assert result["images"] == 6 and result["source"] == "synthetic"
    assert result["images_per_s"] == result["images"] / result["seconds"]
    assert (result["height"], result["width"], result["batch_size"]) == (32, 64, 2)
