"""Merging record folders: one complete shard set per split, counts summed, mismatches refused."""
import os

import pytest
import tensorflow as tf

from enet_discrim.cli import merge as merge_cli
from enet_discrim.data import culane, merge, tusimple, writer
from enet_discrim.data.pipeline import find_shards
from enet_discrim.data.synthetic import tusimple as synthetic


@pytest.fixture(scope="module")
def record_folders(tmp_path_factory):
    """TuSimple records of 4 frames and CULane-camera records of 3, at 32 x 64, and CULane ones
    at another size."""
    root = tmp_path_factory.mktemp("merge")
    synthetic.generate(root / "ts", 4, seed=1, log_every=0)
    synthetic.generate(root / "cu", 3, seed=2, camera="culane", log_every=0)
    tusimple.convert(str(root / "ts"), str(root / "rec_ts"), 32, 64, val_fraction=0.25)
    culane.convert(str(root / "cu"), str(root / "rec_cu"), height=32, width=64, val_fraction=0.0)
    culane.convert(str(root / "cu"), str(root / "rec_big"), height=64, width=128)
    return root


def _count(paths):
    return sum(1 for _ in tf.data.TFRecordDataset(paths))


def test_merged_folders_train_as_one(record_folders, tmp_path):
    sources = [str(record_folders / "rec_ts"), str(record_folders / "rec_cu")]
    merged = merge.merge(str(tmp_path / "out"), sources)
    counts = [writer.read_dataset_info(os.path.join(s, writer.DATASET_INFO_FILE))["counts"]
              for s in sources]
    assert merged["counts"] == {split: counts[0][split] + counts[1][split]
                                for split in ("train", "val")}
    assert merged["dataset"] == "tusimple"  # the lane family: TuSimple and CULane records
    train = find_shards(str(tmp_path / "out"), "train")  # one complete set
    assert _count(train) == merged["counts"]["train"] == 4 - counts[0]["val"] + 3
    assert _count(find_shards(str(tmp_path / "out"), "val")) == merged["counts"]["val"]
    assert writer.read_dataset_info(str(tmp_path / "out" / writer.DATASET_INFO_FILE)) == merged


def test_mismatched_or_reused_folders_are_refused(record_folders, tmp_path, capsys):
    ts, cu, big = (str(record_folders / name) for name in ("rec_ts", "rec_cu", "rec_big"))
    with pytest.raises(ValueError, match="disagree on height"):
        merge.merge(str(tmp_path / "a"), [ts, big])
    with pytest.raises(ValueError, match="is one of the inputs"):
        merge.merge(ts, [ts, cu])
    merge.merge(str(tmp_path / "b"), [ts, cu])
    with pytest.raises(ValueError, match="holds shards already"):
        merge.merge(str(tmp_path / "b"), [ts, cu])
    assert merge_cli.main(["--outdir", str(tmp_path / "c"), ts]) == 2
    assert capsys.readouterr().err == "error: merge needs at least two record folders\n"
    assert merge_cli.main(["--outdir", str(tmp_path / "d"), ts, cu, "--copy"]) == 0
    assert not os.path.islink(find_shards(str(tmp_path / "d"), "train")[0])
