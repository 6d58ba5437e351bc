"""Training settings: one dataclass, checked before anything is written."""

import dataclasses
import json
import math
import os

from enet_discrim import atomic
from enet_discrim.formats import DATASETS
from enet_discrim.losses import discriminative
from enet_discrim.model import SIZE_MULTIPLE
from enet_discrim.training import distribution
from enet_discrim.training.distribution import STRATEGIES

# Settings that change what the saved model is: an --outdir trained with other values is not
# resumed into or overwritten.
MODEL_DEFINING_KEYS = ("dataset", "height", "width", "embedding_dim")


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; `training.py` fills it from its flags.

    Attributes mirror the flags of `training.py` (the reference implementation's names and
    defaults): margins `delta_v`/`delta_d` (--dvar/--ddist), weights `var_weight`/`dist_weight`/
    `reg_weight` (--var/--dist/--reg). `batch_size` is the global batch over all replicas.
    `checkpoint_every` is in steps, 0 = at the end of each epoch. `steps_per_epoch` None = one
    pass over the training shards. `height` x `width` is the frame size the model serves at;
    `crop_height` x `crop_width`, when given, the size of the random windows it trains on.
    """

    srcdir: str = "data"
    outdir: str = "saved_model"
    logdir: str = "log"
    modeldir: str | None = None
    dataset: str = "tusimple"
    epochs: int = 50
    batch_size: int = 8
    learning_rate: float = 5e-4
    height: int = 256
    width: int = 512
    embedding_dim: int = 4
    crop_height: int | None = None
    crop_width: int | None = None
    var_weight: float = discriminative.VAR_WEIGHT
    dist_weight: float = discriminative.DIST_WEIGHT
    reg_weight: float = discriminative.REG_WEIGHT
    delta_v: float = discriminative.DELTA_V
    delta_d: float = discriminative.DELTA_D
    strategy: str = "auto"
    peer_timeout: float = distribution.PEER_TIMEOUT_S
    mixed_precision: bool = False
    checkpoint_every: int = 0
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    image_summaries: int = 3
    seed: int = 0

    def problems(self):
        """Returns a list of human-readable problems with the settings (empty when valid)."""
        found = []
        if self.dataset not in DATASETS:
            found.append(f"unknown dataset {self.dataset!r}: choose one of {', '.join(DATASETS)}")
        if self.strategy not in STRATEGIES:
            found.append(f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}")
        for name in ("height", "width", "crop_height", "crop_width"):
            value = getattr(self, name)
            if value is not None and (value <= 0 or value % SIZE_MULTIPLE):
                found.append(f"--{name} must be a positive multiple of {SIZE_MULTIPLE}, got {value}")
        if (self.crop_height is None) != (self.crop_width is None):
            found.append("--crop_height and --crop_width go together: give both or neither")
        for name in ("epochs", "batch_size", "embedding_dim"):
            if getattr(self, name) < 1:
                found.append(f"--{name} must be at least 1, got {getattr(self, name)}")
        # A NaN passes every comparison below, and training would fail at its first step.
        for flag, name in (("--learning_rate", "learning_rate"), ("--dvar", "delta_v"),
                           ("--ddist", "delta_d"), ("--var", "var_weight"),
                           ("--dist", "dist_weight"), ("--reg", "reg_weight")):
            if not math.isfinite(getattr(self, name)):
                found.append(f"{flag} must be a finite number, got {getattr(self, name)}")
        if not (math.isfinite(self.peer_timeout) and self.peer_timeout > 0):
            found.append(f"--peer_timeout must be a positive number of seconds, got {self.peer_timeout}")
        if self.learning_rate <= 0:
            found.append(f"--learning_rate must be positive, got {self.learning_rate}")
        for flag, name in (("--dvar", "delta_v"), ("--ddist", "delta_d")):
            if getattr(self, name) < 0:
                found.append(f"{flag} (margin) must not be negative, got {getattr(self, name)}")
        if self.delta_v >= self.delta_d:
            found.append(
                f"--dvar ({self.delta_v}) must be smaller than --ddist ({self.delta_d}): pixels are "
                "pulled within dvar of their mean while means are pushed 2 * ddist apart"
            )
        for flag, name in (("--var", "var_weight"), ("--dist", "dist_weight"), ("--reg", "reg_weight")):
            if getattr(self, name) < 0:
                found.append(f"{flag} (loss weight) must not be negative, got {getattr(self, name)}")
        if self.checkpoint_every < 0:
            found.append(f"--checkpoint_every must be >= 0 steps, got {self.checkpoint_every}")
        for name in ("steps_per_epoch", "validation_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                found.append(f"--{name} must be at least 1 when given, got {value}")
        if os.path.abspath(self.outdir) == os.path.abspath(self.srcdir):
            found.append(f"--outdir and --srcdir are the same folder ({self.outdir})")
        for name in ("outdir", "logdir"):
            blocking = _file_in_the_way(getattr(self, name))
            if blocking == os.path.abspath(getattr(self, name)):
                found.append(f"--{name} {getattr(self, name)!r} is a file, not a folder")
            elif blocking:
                found.append(f"--{name} {getattr(self, name)!r}: {blocking!r} is a file, not a folder")
        return found

    def validate(self):
        """Raises ValueError naming every problem at once."""
        found = self.problems()
        if len(found) == 1:
            raise ValueError(f"Invalid training settings: {found[0]}")
        if found:
            raise ValueError("Invalid training settings:\n  - " + "\n  - ".join(found))

    def to_dict(self):
        return dataclasses.asdict(self)

    @property
    def crop_size(self):
        """(crop_height, crop_width) of the training windows, or None for whole frames."""
        return None if self.crop_height is None else (self.crop_height, self.crop_width)

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def model_mismatches(self, other):
        """The model-defining settings in which `other` (a dict of a previous run) differs."""
        return {
            key: (other.get(key), getattr(self, key))
            for key in MODEL_DEFINING_KEYS
            if other.get(key) != getattr(self, key)
        }


def _file_in_the_way(path):
    """The existing file (not folder) at `path` or at the nearest of its parents that exists,
    which would stop the folder `path` from being created; None when there is none."""
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    return None if os.path.isdir(existing) else existing


def write_json(path, values):
    """Writes `values` as JSON atomically (`atomic.write_json`)."""
    atomic.write_json(path, values)


def read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)
