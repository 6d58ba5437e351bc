"""Several converted record folders as one `--srcdir`: TuSimple, CULane and synthetic cameras
trained together.

    python -m enet_discrim.data.merge --outdir OUT IN [IN ...] [--copy]

Each split's shards of all inputs become one complete shard set in OUT
(`SPLIT-00000-of-0000N.tfrecord`), as links to the inputs' files (`--copy`: copies), and OUT's
`dataset_info.json` sums the inputs' counts. The inputs must hold records of one size and one
class list, of datasets that train one model (`records._compatible`: the lane datasets together).
"""

import os
import shutil

from enet_discrim import atomic
from enet_discrim.data import writer
from enet_discrim.data.pipeline import find_shards, has_shards
from enet_discrim.formats import LANE_DATASETS

#: The keys of dataset_info.json that must agree between the inputs.
_SAME_KEYS = ("height", "width", "num_classes", "class_names", "ignore_label")


def merge(outdir, sources, copy=False):
    """Writes OUT's shard sets and dataset_info.json from the record folders `sources`.

    Returns:
        the merged dataset_info dict.

    Raises:
        ValueError: fewer than two inputs, an input without records or dataset_info.json,
            inputs that disagree (size, classes, datasets), OUT being one of the inputs or
            already holding shards.
    """
    if len(sources) < 2:
        raise ValueError("merge needs at least two record folders")
    infos = []
    for source in sources:
        path = os.path.join(source, writer.DATASET_INFO_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"{source}: no {writer.DATASET_INFO_FILE}: not a converter's output")
        infos.append(writer.read_dataset_info(path))
    for key in _SAME_KEYS:
        values = {repr(info.get(key)) for info in infos}
        if len(values) > 1:
            raise ValueError(f"the record folders disagree on {key}: "
                             + ", ".join(f"{source} {info.get(key)!r}"
                                         for source, info in zip(sources, infos)))
    datasets = [info.get("dataset", "tusimple") for info in infos]
    if len(set(datasets)) > 1 and not set(datasets) <= set(LANE_DATASETS):
        raise ValueError(f"records of {', '.join(sorted(set(datasets)))} cannot train one model")
    real_out = os.path.realpath(outdir)
    if any(os.path.realpath(source) == real_out for source in sources):
        raise ValueError(f"--outdir {outdir} is one of the inputs")
    atomic.check_folder_target(outdir)
    if any(has_shards(outdir, split) for split in ("train", "val")):
        raise ValueError(f"--outdir {outdir} holds shards already: choose an empty folder")
    os.makedirs(outdir, exist_ok=True)
    counts = {}
    for split in ("train", "val"):
        shards = [path for source in sources if has_shards(source, split)
                  for path in find_shards(source, split)]
        for index, path in enumerate(shards):
            target = os.path.join(outdir, writer.shard_name(split, index, len(shards)))
            if copy:
                shutil.copyfile(path, target)
            else:
                os.symlink(os.path.abspath(path), target)
        counts[split] = sum(info.get("counts", {}).get(split, 0) for info in infos)
    merged = {**infos[0], "dataset": datasets[0] if len(set(datasets)) == 1 else LANE_DATASETS[0],
              "counts": counts, "skipped": sum(info.get("skipped", 0) for info in infos),
              "sources": [os.path.abspath(source) for source in sources]}
    writer.write_json_atomic(os.path.join(outdir, writer.DATASET_INFO_FILE), merged)
    return merged


if __name__ == "__main__":
    import sys

    from enet_discrim.cli import merge as merge_cli

    sys.exit(merge_cli.run())
