"""The model folder: `model.keras` and the inference settings in `config.json`, with one owner.

Training writes a folder with `save`, the predictor, export and the benchmark read it with
`load_settings` (and `load` for the model too). A folder that `python -m enet_discrim.export
--format tflite` wrote holds `model.tflite` instead of `model.keras` (`holds_tflite`); the
predictor runs that network with `enet_discrim.tflite_network`. `InferenceSettings` holds every
key of `config.json` with its default and its check, in one place.

    python -m enet_discrim.model_dir show trained_model
    python -m enet_discrim.model_dir set trained_model min_confidence=0.5 lane_bridge_gaps=true

`set` rewrites `config.json` atomically after checking the new values; it is how the shipped
model's post-processing settings are changed, never by editing the file by hand.
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import zipfile

from enet_discrim import atomic
from enet_discrim.cli import support
from enet_discrim.formats import DATASETS, LANE_DATASETS
from enet_discrim.lanes import LANE_MODELS
from enet_discrim.losses import discriminative

MODEL_FILE = "model.keras"
#: The largest network input side: a 4096 x 4096 ENet already needs tens of GB to build.
MAX_INPUT_SIZE = 4096
#: The largest margin or bandwidth in embedding units (the paper's margins are 0.5 and 1.5).
MAX_EMBEDDING_DISTANCE = 100.0
#: The converted network that `enet_discrim.export --format tflite` writes beside config.json.
TFLITE_FILE = "model.tflite"
CONFIG_FILE = "config.json"
#: The TuSimple class ids: 0 background, 1 lane.
TUSIMPLE_THING_CLASSES = (1,)
#: Lane post-processing written for a newly trained TuSimple model; chosen on real frames (see
#: docs/EXPERIMENTS.md). The class-balanced loss weighs the lane class about 12x the road, which
#: inflates its probability, hence a threshold above the plain argmax.
LANE_MIN_CONFIDENCE = 0.7
#: Real labels continue a lane through the vehicle that hides it.
LANE_BRIDGE_GAPS = True
#: Map rows below a lane's last one on which it is still reported.
LANE_EXTEND_BOTTOM = 5.0
#: TuSimple's annotators label the ego lane's lines and their neighbours': 4 lines (a fifth in
#: some frames, for which the official metric forgives one miss).
LANE_MAX_LANES = 4


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
    """What inference needs to run a model and turn its outputs into instances and lanes.

    Attributes:
        dataset: "tusimple" or "culane" (lanes, results in that dataset's format by default), or
            "cityscapes".
        height, width: the network input size (multiples of 8).
        num_classes: semantic classes of the model.
        embedding_dim: size of the pixel embedding.
        class_names: a name per class.
        thing_train_ids: the classes clustered into instances (TuSimple: the lane class, 1).
        ignore_label: the label id of unlabelled pixels in the training records.
        delta_v, delta_d: the margins the model was trained with.
        bandwidth: mean-shift kernel radius; delta_d, the middle of [2 delta_v, 2 delta_d - 2
            delta_v) where a window catches a whole instance and never a second one.
        min_confidence: class probability a pixel needs to be clustered, in [0, 1).
        cluster_all: assign every clustered pixel to its nearest mode (`clustering`).
        lane_model: how lanes are fitted, one of LANE_MODELS.
        lane_top_trim: map rows trimmed from the top of each lane (`lanes.fit_lanes`).
        lane_bridge_gaps: report a lane through its gaps (`lanes.fit_lanes(bridge_gaps=)`).
        lane_extend_bottom: map rows a lane is reported below its last one (>= 0).
        max_lanes: the most lanes reported per frame, those nearest the frame's centre (None: all).
    """

    dataset: str
    height: int
    width: int
    num_classes: int
    embedding_dim: int
    class_names: tuple = ()
    thing_train_ids: tuple = TUSIMPLE_THING_CLASSES
    ignore_label: int = 255
    delta_v: float = discriminative.DELTA_V
    delta_d: float = discriminative.DELTA_D
    bandwidth: float = 1.5
    min_confidence: float = 0.0
    cluster_all: bool = True
    lane_model: str = "hyperbola"
    lane_top_trim: float = 0.0
    lane_bridge_gaps: bool = False
    lane_extend_bottom: float = 0.0
    max_lanes: int | None = None

    def __post_init__(self):
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self):
        """Human-readable problems with the settings (empty when valid)."""
        found = []
        if self.dataset not in DATASETS:
            found.append(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0 or value % 8 or value > MAX_INPUT_SIZE:
                found.append(f"{name} must be a positive multiple of 8 up to {MAX_INPUT_SIZE}, "
                             f"got {value!r}")
        for name in ("num_classes", "embedding_dim"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                found.append(f"{name} must be a positive integer, got {value!r}")
        for name in ("delta_v", "delta_d", "bandwidth"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value <= MAX_EMBEDDING_DISTANCE:
                found.append(f"{name} must be a number in (0, {MAX_EMBEDDING_DISTANCE}], got "
                             f"{value!r}")
        if not _is_number(self.min_confidence) or not 0.0 <= self.min_confidence < 1.0:
            found.append(f"min_confidence must be in [0, 1), got {self.min_confidence!r}")
        for name in ("lane_top_trim", "lane_extend_bottom"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value <= MAX_INPUT_SIZE:
                found.append(f"{name} must be a number of map rows in [0, {MAX_INPUT_SIZE}], "
                             f"got {value!r}")
        for name in ("cluster_all", "lane_bridge_gaps"):
            if not isinstance(getattr(self, name), bool):
                found.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.max_lanes is not None and (not _is_int(self.max_lanes) or self.max_lanes < 1):
            found.append(f"max_lanes must be a positive integer or null, got {self.max_lanes!r}")
        if self.lane_model not in LANE_MODELS:
            found.append(f"lane_model must be one of {', '.join(LANE_MODELS)}, got {self.lane_model!r}")
        if not all(_is_int(c) and 0 <= c < (self.num_classes if _is_int(self.num_classes) else 0)
                   for c in self.thing_train_ids):
            found.append(f"thing_train_ids must be class ids below num_classes, got "
                         f"{list(self.thing_train_ids)!r}")
        return found

    def to_dict(self):
        """The JSON object of `config.json` (tuples as lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values, source="config"):
        """Settings from a `config.json` object; keys it lacks take their defaults.

        Raises:
            ValueError: `SOURCE: ...` for an unknown key, a missing required key or a bad value.
        """
        if not isinstance(values, dict):
            raise ValueError(f"{source}: not a JSON object")
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}")
        required = [name for name, field in fields.items()
                    if field.default is dataclasses.MISSING and name not in values]
        if required:
            raise ValueError(f"{source} lacks {', '.join(required)}")
        values = {key: tuple(value) if isinstance(value, list) else value
                  for key, value in values.items()}
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from None

    @classmethod
    def for_trained_model(cls, dataset, height, width, num_classes, embedding_dim, delta_v,
                          delta_d, class_names=(), thing_train_ids=None, ignore_label=255,
                          lane_top_trim=0.0):
        """The settings training writes beside a model: the mean-shift bandwidth from the margins,
        and for lanes the post-processing defaults below (LANE_*)."""
        lanes = dataset in LANE_DATASETS
        if thing_train_ids is None:
            thing_train_ids = TUSIMPLE_THING_CLASSES if lanes else ()
        return cls(
            dataset=dataset, height=height, width=width, num_classes=num_classes,
            embedding_dim=embedding_dim, class_names=tuple(class_names),
            thing_train_ids=tuple(thing_train_ids), ignore_label=ignore_label, delta_v=delta_v,
            delta_d=delta_d, bandwidth=delta_d,
            min_confidence=LANE_MIN_CONFIDENCE if lanes else 0.0,
            lane_top_trim=lane_top_trim if lanes else 0.0,
            lane_bridge_gaps=LANE_BRIDGE_GAPS if lanes else False,
            lane_extend_bottom=LANE_EXTEND_BOTTOM if lanes else 0.0,
            max_lanes=LANE_MAX_LANES if lanes else None,
        )

    def replace(self, **changes):
        """A copy with `changes` applied and checked."""
        return dataclasses.replace(self, **changes)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    """A finite int or float (NaN and infinities are no setting)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def check_folder(folder):
    """Raises ValueError when `folder` is not a model folder, naming everything missing.

    A model folder holds `config.json` and a network: `model.keras`, or `model.tflite`.
    """
    if not os.path.isdir(folder):
        raise ValueError(f"Model folder {folder!r} does not exist (it needs {MODEL_FILE} and "
                         f"{CONFIG_FILE})")
    missing = [name for name in (MODEL_FILE, CONFIG_FILE)
               if not os.path.isfile(os.path.join(folder, name))]
    if missing == [MODEL_FILE] and holds_tflite(folder):
        return
    if missing:
        raise ValueError(f"Model folder {folder!r} is missing {' and '.join(missing)} "
                         f"(training.py writes both to --outdir; export --format tflite writes "
                         f"{TFLITE_FILE} and {CONFIG_FILE})")


def holds_tflite(folder):
    """Whether `folder` holds a TFLite network, `model.tflite`."""
    return os.path.isfile(os.path.join(folder, TFLITE_FILE))


def load_settings(folder):
    """The `InferenceSettings` of a model folder (which must hold a network too)."""
    check_folder(folder)
    path = os.path.join(folder, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as file:
            values = json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    return InferenceSettings.from_dict(values, source=path)


def write_settings(folder, settings):
    """Writes `config.json` of `folder` atomically."""
    atomic.write_text(os.path.join(folder, CONFIG_FILE),
                      json.dumps(settings.to_dict(), indent=2, sort_keys=True) + "\n")


def save(folder, model, settings):
    """Writes `model.keras` and then `config.json` to `folder`, each atomically."""
    os.makedirs(folder, exist_ok=True)
    if (model.num_classes, model.embedding_dim) != (settings.num_classes, settings.embedding_dim):
        raise ValueError("the model and its settings disagree on classes or embedding size")
    with atomic.replacing(os.path.join(folder, MODEL_FILE), suffix=".keras") as temporary:
        model.save(temporary)
    write_settings(folder, settings)


def load_model_file(path):
    """The Keras model of a `model.keras` file, loaded in safe mode.

    Raises:
        ValueError: one line naming `path`: not a zip archive, a damaged archive, or a file whose
            config names something safe mode refuses or this project does not define (a Lambda,
            `os.system`, ...): nothing of it runs.
    """
    import keras  # only here: reading the settings needs no TensorFlow

    from enet_discrim import model as _registers_the_classes  # noqa: F401

    # Keras reports a file that is no zip archive as "File not found".
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a Keras model file (not a zip archive: corrupt, truncated "
                         "or another format)")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a loadable Keras model ({_first_line(error)})") from None
    except (KeyError, EOFError, zipfile.BadZipFile) as error:  # a damaged archive
        raise ValueError(f"{path}: not a loadable Keras model, the archive is damaged "
                         f"({_first_line(error)})") from None
    except (TypeError, AttributeError) as error:  # a config naming what is not ours to build
        raise ValueError(f"{path}: not a model this project can load "
                         f"({_first_line(error)})") from None


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def load(folder):
    """(keras model loaded with safe_mode, InferenceSettings) of a model folder."""
    settings = load_settings(folder)
    path = os.path.join(folder, MODEL_FILE)
    if not os.path.isfile(path):  # a TFLite folder: check_folder accepts it
        raise ValueError(f"Model folder {folder!r} holds {TFLITE_FILE} but no {MODEL_FILE} "
                         f"(a Keras model is needed here)")
    model = load_model_file(path)
    if (model.num_classes, model.embedding_dim) != (settings.num_classes, settings.embedding_dim):
        raise ValueError(f"{folder}: {MODEL_FILE} and {CONFIG_FILE} disagree on classes or "
                         f"embedding size")
    return model, settings


def _parse_value(text):
    """A `key=value` value: JSON when it parses (numbers, true/false, lists), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m enet_discrim.model_dir",
                                     description="Show or change a model folder's config.json.")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print the settings, defaults filled in")
    show.add_argument("folder")
    change = commands.add_parser("set", help="change settings: KEY=VALUE ...")
    change.add_argument("folder")
    change.add_argument("changes", nargs="+", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.folder)
        if args.command == "set":
            changes = {}
            for item in args.changes:
                key, equals, value = item.partition("=")
                if not equals:
                    raise ValueError(f"{item!r}: expected KEY=VALUE")
                changes[key] = _parse_value(value)
            settings = InferenceSettings.from_dict({**settings.to_dict(), **changes},
                                                   source=os.path.join(args.folder, CONFIG_FILE))
            write_settings(args.folder, settings)
    except ValueError as error:
        return support.report_error(error)
    print(json.dumps(settings.to_dict(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(support.run_main(main))
