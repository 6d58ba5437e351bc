"""The files the package reads and writes, one module per format.

- `tusimple`: TuSimple's JSON lines (labels, test tasks, predictions, a clip's lanes), its rows
  (`H_SAMPLES`) and the checks every reader of them shares.
- `cityscapes`: Cityscapes' file names and instance-id encoding, and the instance results folder
  the official evaluator reads.
- `images`: the one image reader (frames and label maps) and the one label-map resize.

- `culane`: CULane's lane files (`.lines.txt`), list files and rows.
- `paths`: paths read from dataset files, resolved inside their dataset root.

Converters (`enet_discrim.data`), inference (`batch_inference`, `video`) and evaluation
(`enet_discrim.evaluation`) import these modules, not each other.
"""

#: The datasets the package reads and trains on.
DATASETS = ("tusimple", "culane", "cityscapes")
#: The lane datasets: their records share one layout and their models one kind (lanes). A lane
#: model's dataset only decides the format its results are written in by default.
LANE_DATASETS = ("tusimple", "culane")
