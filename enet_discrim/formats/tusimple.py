"""TuSimple's lane files: JSON objects, one per line, in the frame's own pixel coordinates.

- label lines (`label_data_*.json`, `test_label.json`): `{"lanes": [[x, ...], ...], "h_samples":
  [y, ...], "raw_file": "clips/.../20.jpg"}`. Each lane gives one x per row of `h_samples`, and
  any x < 0 (TuSimple writes -2, `NO_POINT`) means the lane has no point on that row; `raw_file`
  is relative to the label file's folder (`resolve_raw_file`).
- task lines (`test_tasks_0627.json`): the frames to predict, `raw_file` and `h_samples`; other
  keys are ignored, so a label file serves as a tasks file too.
- prediction lines (a submission): `{"raw_file", "lanes", "h_samples", "run_time"}`, run_time in
  milliseconds per frame. The official `LaneEval.bench_one_submit` takes the rows from the ground
  truth's `h_samples` and reads nothing else from a prediction; `format_line` writes the rows it
  sampled at too, which keeps each line self-describing.
- clip lines (`CLIP.json` beside a video's overlay): a prediction line with the frame's index
  `"frame"` in place of `raw_file` (`format_clip_line`).

Readers report `FILE:LINE: reason`. A line is checked against the strictest rules any reader
needs (`check_label`, `check_task`, `check_prediction`): objects with their keys; raw_file a
non-empty path; h_samples a non-empty list of whole, non-negative, strictly increasing rows; each
lane a list of one number per row, each x finite and an int32 pixel position (OpenCV draws with
int32 points; anything larger, say -1e300, is no marker of a missing point but a broken label);
run_time a finite number of milliseconds >= 0. Callers add what only they know: the converter
that every point lies inside its frame, the evaluator that predicted lanes have the ground
truth's rows. Values in messages are shown as JSON writes them (NaN, "text", true).
"""

import collections
import json
import math

from enet_discrim.formats import paths

#: Size of TuSimple's frames.
FRAME_HEIGHT = 720
FRAME_WIDTH = 1280
#: TuSimple's sample rows of a 1280 x 720 frame: 160, 170, ..., 710 (56 rows).
H_SAMPLES = tuple(range(160, 711, 10))
#: x of a row where a lane has no point (any x < 0 reads as absent).
NO_POINT = -2
#: Keys of a label line.
LABEL_KEYS = ("raw_file", "lanes", "h_samples")
#: Keys of a task line.
TASK_KEYS = ("raw_file", "h_samples")
#: Keys of a prediction line that the official evaluator requires.
PREDICTION_KEYS = ("raw_file", "lanes", "run_time")
#: Coordinates are int32 pixel positions (as OpenCV draws them).
COORDINATE_LIMIT = 2 ** 31

#: One frame of a tasks file: its line, raw_file and rows.
Task = collections.namedtuple("Task", ["line_number", "raw_file", "h_samples"])


def _shown(value):
    """`value` as it reads in a JSON file (NaN, "text", true), cut to 40 characters."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- Reading.

def parse_json_line(text, what):
    """The JSON value of one line.

    Args:
        text: the line (str).
        what: what the line is, for the message (e.g. "label").

    Raises:
        ValueError: the reason (without the place) for a line that is not JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"the {what} line is not valid JSON ({error.msg} at column "
                         f"{error.colno})") from None
    except RecursionError:
        raise ValueError(f"the {what} line is nested too deeply to read as JSON") from None


def read_json_lines(path, what, problems=None):
    """The JSON values of a JSON-lines file, one per non-empty line.

    Lines are split as Python's text files split them (at "\\n", "\\r\\n" or "\\r") and decoded
    one by one, so a line that is not UTF-8 text is named like a line that is not JSON.

    Args:
        path: the file.
        what: what its lines are, for the messages (e.g. "label", "prediction", "task").
        problems: None: the first bad line raises. A list: each bad line's `FILE:LINE: reason` is
            appended to it and the line left out (the converter reports every bad line and
            converts the rest).

    Returns:
        list of (line number from 1, value).

    Raises:
        ValueError: `FILE: cannot read the WHAT file (reason)` when the file cannot be read;
            without `problems`, `FILE:LINE: reason` for a line that is not UTF-8 text or not JSON.
    """
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as error:
        raise ValueError(f"{path}: cannot read the {what} file "
                         f"({error.strerror or error})") from None
    records = []
    for line_number, raw in enumerate(data.splitlines(), start=1):
        try:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"the {what} line is not UTF-8 text ({error.reason} at byte "
                                 f"{error.start})") from None
            if not text.strip():
                continue
            records.append((line_number, parse_json_line(text, what)))
        except ValueError as error:
            if problems is None:
                raise ValueError(f"{path}:{line_number}: {error}") from None
            problems.append(f"{path}:{line_number}: {error}")
    return records


def _read_checked(path, what, check, problems):
    """`read_json_lines`, each value also passed through `check` (which raises ValueError)."""
    checked = []
    for line_number, record in read_json_lines(path, what, problems):
        try:
            check(record)
        except ValueError as error:
            if problems is None:
                raise ValueError(f"{path}:{line_number}: {error}") from None
            problems.append(f"{path}:{line_number}: {error}")
            continue
        checked.append((line_number, record))
    return checked


def read_labels(path, problems=None):
    """The frames of a label file, each checked with `check_label`.

    Args:
        path: e.g. label_data_0313.json.
        problems: as in `read_json_lines`: None raises at the first bad line, a list collects
            `FILE:LINE: reason` and leaves the line out.

    Returns:
        list of (line number, record dict), in file order (empty for a file without lines).

    Raises:
        ValueError: `FILE: ...` when the file cannot be read; without `problems`,
            `FILE:LINE: reason` for the first bad line.
    """
    return _read_checked(path, "label", check_label, problems)


def read_predictions(path):
    """The lines of a prediction file, each checked with `check_prediction`.

    Returns:
        list of (line number, record dict), in file order.

    Raises:
        ValueError: `FILE: ...` when the file cannot be read, `FILE:LINE: reason` for a bad line.
    """
    return _read_checked(path, "prediction", check_prediction, None)


def read_tasks(path):
    """The frames to predict of a TuSimple tasks or label file, each checked with `check_task`.

    Args:
        path: e.g. test_tasks_0627.json or label_data_0313.json.

    Returns:
        list of `Task(line_number, raw_file, h_samples list[int])` in file order (empty for a file
        without lines).

    Raises:
        ValueError: `FILE: ...` when the file cannot be read, `FILE:LINE: reason` for a bad line.
    """
    return [Task(line_number, record["raw_file"], [int(y) for y in record["h_samples"]])
            for line_number, record in _read_checked(path, "task", check_task, None)]


def resolve_raw_file(root, folder, raw_file):
    """Resolves a raw_file against the folder of its label (or tasks) file inside the dataset
    root (`formats.paths.resolve_inside`): (absolute path, path relative to the root).

    Raises:
        ValueError: the path contains a NUL byte or resolves outside `root`.
    """
    return paths.resolve_inside(root, folder, raw_file, "raw_file")


# --- Checking. Each check raises ValueError with the reason, without the place.

def check_raw_file(raw_file):
    """Raises ValueError unless `raw_file` is a non-empty string usable as a path."""
    if not isinstance(raw_file, str) or not raw_file:
        raise ValueError("raw_file must be a non-empty string")
    if "\0" in raw_file:
        raise ValueError(f"raw_file {_shown(raw_file)} contains a NUL byte")


def check_h_samples(h_samples):
    """Raises ValueError unless `h_samples` is a non-empty list of whole, non-negative rows in
    strictly increasing order (that they lie inside the frame needs the frame)."""
    if not isinstance(h_samples, list) or not h_samples:
        raise ValueError(f"h_samples must be a non-empty list of rows, got {_shown(h_samples)}")
    for index, y in enumerate(h_samples):
        if not _is_number(y):
            raise ValueError(f"h_samples[{index}] is not a number: {_shown(y)}")
        if not math.isfinite(y) or y < 0 or y >= COORDINATE_LIMIT or y != int(y):
            raise ValueError(f"h_samples[{index}] is not a row of the frame: {_shown(y)}")
    for index in range(1, len(h_samples)):
        if h_samples[index] <= h_samples[index - 1]:
            raise ValueError(f"h_samples must be strictly increasing, but h_samples[{index}] = "
                             f"{_shown(h_samples[index])} follows {_shown(h_samples[index - 1])}")


def check_lanes(lanes, row_count=None):
    """Raises ValueError unless `lanes` is a list of lanes, each a list of finite numbers that
    are int32 pixel positions (negative ones mark missing points), `row_count` of them when given.
    """
    if not isinstance(lanes, list):
        raise ValueError(f"lanes must be a list of lanes, got {_shown(lanes)}")
    for lane_index, lane in enumerate(lanes):
        if not isinstance(lane, list):
            raise ValueError(f"lane {lane_index} must be a list of x values, got {_shown(lane)}")
        if row_count is not None and len(lane) != row_count:
            raise ValueError(f"lane {lane_index} has {len(lane)} points for {row_count} h_samples")
        # The usual lane, plain ints, checked in one pass (label files hold about a million).
        if all(type(x) is int for x in lane) and (
                not lane or -COORDINATE_LIMIT < min(lane) and max(lane) < COORDINATE_LIMIT):
            continue
        for index, x in enumerate(lane):
            if not _is_number(x):
                raise ValueError(f"lane {lane_index} point {index} is not a number: {_shown(x)}")
            if not math.isfinite(x) or abs(x) >= COORDINATE_LIMIT:
                raise ValueError(f"lane {lane_index} point {index} is not a pixel coordinate: "
                                 f"{_shown(x)}")


def check_run_time(run_time_ms):
    """Raises ValueError unless `run_time_ms` is a finite number of milliseconds >= 0."""
    if not _is_number(run_time_ms) or not math.isfinite(run_time_ms) or run_time_ms < 0:
        raise ValueError(f"run_time must be a finite number of milliseconds >= 0, got "
                         f"{_shown(run_time_ms)}")


def _check_keys(record, keys):
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in keys if key not in record]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")


def check_label(record):
    """Raises ValueError unless `record` (one decoded line) is a well-formed label frame:
    raw_file, h_samples and lanes as in the module docstring, one x per row in every lane."""
    _check_keys(record, LABEL_KEYS)
    check_raw_file(record["raw_file"])
    check_h_samples(record["h_samples"])
    check_lanes(record["lanes"], len(record["h_samples"]))


def check_task(record):
    """Raises ValueError unless `record` is a frame to predict: raw_file and h_samples."""
    _check_keys(record, TASK_KEYS)
    check_raw_file(record["raw_file"])
    check_h_samples(record["h_samples"])


def check_prediction(record):
    """Raises ValueError unless `record` is a prediction line: raw_file, lanes (of any length:
    they are scored at the ground truth's rows) and run_time."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in PREDICTION_KEYS if key not in record]
    if missing:  # the official evaluator's message
        raise ValueError(f"raw_file or lanes or run_time not in the prediction (missing "
                         f"{', '.join(missing)})")
    check_raw_file(record["raw_file"])
    check_run_time(record["run_time"])
    check_lanes(record["lanes"])


# --- Writing.

def format_label_line(raw_file, lanes, h_samples):
    """One label line (no trailing newline), keys in TuSimple's order: `{"lanes", "h_samples",
    "raw_file"}`; the values are written as given, after `check_label`.

    Raises:
        ValueError: `RAW_FILE: reason` for a frame `check_label` refuses.
    """
    record = {"lanes": lanes, "h_samples": list(h_samples), "raw_file": raw_file}
    try:
        check_label(record)
    except ValueError as error:
        raise ValueError(f"{raw_file}: {error}") from None
    return json.dumps(record)


def _lanes_line(key, value, lanes, h_samples, run_time_ms):
    h_samples = [int(y) for y in h_samples]
    for index, lane in enumerate(lanes):
        if len(lane) != len(h_samples):
            raise ValueError(f"{value}: lane {index} has {len(lane)} points for "
                             f"{len(h_samples)} h_samples")
    return json.dumps({key: value, "lanes": [[int(x) for x in lane] for lane in lanes],
                       "h_samples": h_samples, "run_time": float(run_time_ms)})


def format_line(raw_file, lanes, h_samples, run_time_ms):
    """One prediction line (no trailing newline).

    Args:
        raw_file: the frame's path as in the tasks file, e.g. "clips/0530/.../20.jpg".
        lanes: lists of x per row of `h_samples` (-2 where absent), as `lanes.fit_lanes` gives.
        h_samples: the rows the lanes were sampled at.
        run_time_ms: processing time of the frame in milliseconds.

    Returns:
        JSON text `{"raw_file", "lanes", "h_samples", "run_time"}`, x and rows as ints.

    Raises:
        ValueError: `RAW_FILE: lane K has N points for M h_samples`.
    """
    return _lanes_line("raw_file", raw_file, lanes, h_samples, run_time_ms)


def format_clip_line(frame, lanes, h_samples, run_time_ms):
    """One line of a clip's lanes file: `format_line` with `{"frame": index}` for raw_file."""
    return _lanes_line("frame", int(frame), lanes, h_samples, run_time_ms)


def scaled_h_samples(frame_height):
    """TuSimple's rows scaled to a frame `frame_height` rows high (the same share of the frame as
    160..710 of 720): the rows a clip's lanes are reported at.

    Returns:
        list of int, strictly increasing, every row inside the frame.
    """
    scale = frame_height / FRAME_HEIGHT
    return sorted({min(frame_height - 1, round(row * scale)) for row in H_SAMPLES})
