"""CULane's files: lane files (`.lines.txt`), list files, frame size and rows.

- lane files, `<frame>.lines.txt` beside each `<frame>.jpg`: one lane a line, `x y x y ...` in the
  frame's pixels. The official labels put a point every 10 rows from the frame's bottom edge up
  (y = 590, 580, ...; x may lie a little outside the frame, where the annotator continued a lane
  to the edge) and end each line with a space. A predictions folder holds the same files.
- list files (`list/train_gt.txt`, `val.txt`, `test.txt`, `test0_normal.txt`, ...): one frame a
  line, `/path/frame.jpg` relative to the dataset root, optionally followed by its lane mask
  (`/laneseg_label_w16/...png`) and four lane-existence flags (0 or 1), as in `train_gt.txt`.

Readers report `FILE:LINE: reason`. A lane file's values must be numbers in C's decimal notation
(what CULane's C++ evaluator reads with `>>`), finite, in (x, y) pairs. A blank line is a lane
without points: the official evaluator reads it so (a lane nothing can match), and so does
`read_lanes`; the converter draws nothing for it.
"""

import collections
import math
import os
import re

from enet_discrim.formats import paths

#: Size of CULane's frames.
FRAME_HEIGHT = 590
FRAME_WIDTH = 1640
#: Rows between a lane's points in the official labels.
ROW_STEP = 10
#: The lane file beside a frame: `frame.jpg` -> `frame.lines.txt`.
LANES_SUFFIX = ".lines.txt"
#: The list of training frames with masks and lane flags, under the dataset root.
TRAIN_LIST = os.path.join("list", "train_gt.txt")
#: The official test categories, one list file each (`test0_normal.txt` ... `test8_night.txt`).
TEST_CATEGORIES = ("normal", "crowd", "hlight", "shadow", "noline", "arrow", "curve", "cross",
                   "night")
#: Lane-existence flags of a `train_gt.txt` line: CULane labels at most 4 lanes.
MAX_LANES = 4
#: How far outside the frame a point may lie, in frame sizes, before it reads as a broken label.
OUTSIDE_MARGIN = 1.0

#: A number as C++'s `stream >> double` reads it whole: sign, digits with an optional point,
#: an optional exponent (no hex, no inf/nan, no digit separators).
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")

#: One line of a list file: the frame, and for `train_gt.txt` its mask and lane flags.
ListEntry = collections.namedtuple("ListEntry", ["line_number", "frame", "mask", "lanes_exist"])


class FileError(ValueError):
    """A file that cannot be read, or a bad line of one: `LOCATION: reason`.

    Attributes:
        location: "FILE" or "FILE:LINE".
        reason: what is wrong.
    """

    def __init__(self, location, reason):
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


def category_list(category):
    """The list file of a test category, e.g. "night" -> "test8_night.txt"."""
    return f"test{TEST_CATEGORIES.index(category)}_{category}.txt"


def lanes_path(frame):
    """The lane file of a frame, as CULane's evaluator derives it: the text after the last "."
    replaced by `.lines.txt` ("a/00000.jpg" -> "a/00000.lines.txt"); a name without "." gets
    the suffix appended."""
    dot = frame.rfind(".")
    return (frame[:dot] if dot >= 0 else frame) + LANES_SUFFIX


def sample_rows(frame_height, step=ROW_STEP):
    """The rows a lane is reported on: every `step` rows from the frame's bottom edge up,
    `frame_height`, `frame_height - step`, ..., >= 0 (590, 580, ..., 0 at CULane's size)."""
    return list(range(frame_height, -1, -step))


def _shown(text):
    return repr(text if len(text) <= 40 else text[:37] + "...")


# --- Lane files.

def parse_lane_line(text):
    """The points of one lane line.

    Args:
        text: the line, without its newline.

    Returns:
        list of (x, y) float pairs, in file order (empty for a blank line).

    Raises:
        ValueError: the reason, without the place: a value that is not a number, not finite, or
            a count of values that is odd.
    """
    values = []
    for index, token in enumerate(text.split()):
        if not _NUMBER.match(token):
            raise ValueError(f"value {index + 1} is not a number: {_shown(token)}")
        value = float(token)
        if not math.isfinite(value):
            raise ValueError(f"value {index + 1} is not a finite number: {_shown(token)}")
        values.append(value)
    if len(values) % 2:
        raise ValueError(f"{len(values)} values: a lane is x y pairs, one value is left over")
    return list(zip(values[0::2], values[1::2]))


def _text_lines(path, what):
    """The lines of a text file as C++'s `getline` splits them (at "\\n" only; no empty last line
    after a final newline), decoded as UTF-8.

    Raises:
        OSError: the file cannot be read.
        FileError: `FILE:LINE: ...` for a line that is not UTF-8 text.
    """
    with open(path, "rb") as stream:
        data = stream.read()
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    decoded = []
    for line_number, raw in enumerate(lines, start=1):
        try:
            decoded.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise FileError(f"{path}:{line_number}", f"the {what} line is not UTF-8 text "
                            f"({error.reason} at byte {error.start})") from None
    return decoded


def read_lanes(path):
    """The lanes of a `.lines.txt` file.

    Returns:
        list of lanes, one per line (a blank line: a lane without points), each a list of (x, y)
        float pairs in file order.

    Raises:
        FileError: `FILE: cannot read ...` when the file cannot be read, `FILE:LINE: reason` for
            a bad line.
    """
    try:
        lines = _text_lines(path, "lane")
    except OSError as error:
        raise FileError(path, f"cannot read the lane file ({error.strerror or error})") from None
    lanes = []
    for line_number, text in enumerate(lines, start=1):
        try:
            lanes.append(parse_lane_line(text))
        except ValueError as error:
            raise FileError(f"{path}:{line_number}", str(error)) from None
    return lanes


def check_inside(path, lanes, frame_size, margin=OUTSIDE_MARGIN):
    """Raises FileError (`FILE:LINE: reason`) for a point farther than `margin` frame sizes
    outside the frame: labels of another frame size, or broken ones.

    Args:
        path: the lane file, for the message.
        lanes: its lanes (`read_lanes`).
        frame_size: (height, width) of the frame.
    """
    height, width = frame_size
    for line_number, lane in enumerate(lanes, start=1):
        for index, (x, y) in enumerate(lane):
            if not (-margin * width <= x <= (1 + margin) * width
                    and -margin * height <= y <= (1 + margin) * height):
                raise FileError(f"{path}:{line_number}", f"point {index + 1} ({x:g}, {y:g}) "
                                f"lies far outside the {width}x{height} frame")


def _number(value):
    """A coordinate as the lane file shows it: at most 3 decimals, no trailing zeros."""
    text = f"{float(value):.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_lanes(lanes):
    """The text of a `.lines.txt` file: one line per lane, `x y x y ` (the labels' own layout,
    with its trailing space), lanes without points left out.

    Args:
        lanes: list of lanes, each a sequence of (x, y) finite numbers.

    Raises:
        ValueError: a coordinate that is not a finite number.
    """
    lines = []
    for lane_index, lane in enumerate(lanes):
        values = []
        for index, point in enumerate(lane):
            x, y = point
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"lane {lane_index} point {index} is not finite: ({x}, {y})")
            values += [_number(x), _number(y)]
        if values:
            lines.append(" ".join(values) + " \n")
    return "".join(lines)


def lanes_from_rows(lanes, rows):
    """Lanes given as one x per row (`lanes.fit_lanes`; x < 0: no point on that row) as point
    lists ordered from the bottom row up, as CULane's files list them.

    Args:
        lanes: list of lanes, each len(rows) x values.
        rows: the rows they were sampled at.

    Returns:
        list of lanes, each a list of (x, y), bottom first; lanes without a point left out.
    """
    order = sorted(range(len(rows)), key=lambda index: -rows[index])
    converted = []
    for lane in lanes:
        points = [(lane[index], rows[index]) for index in order if lane[index] >= 0]
        if points:
            converted.append(points)
    return converted


# --- List files.

def parse_list_line(text):
    """One line of a list file: (frame, mask or None, lane flags tuple or None).

    Raises:
        ValueError: the reason: a line of another shape than `FRAME` or `FRAME MASK F F F F`,
            flags other than 0/1, or a frame path with a NUL byte.
    """
    fields = text.split()
    if len(fields) not in (1, 2 + MAX_LANES):
        raise ValueError(f"{len(fields)} fields: a list line is a frame path, or the frame, its "
                         f"mask and {MAX_LANES} lane flags (train_gt.txt)")
    frame = fields[0]
    if "\0" in frame:
        raise ValueError(f"frame path {_shown(frame)} contains a NUL byte")
    if len(fields) == 1:
        return frame, None, None
    flags = fields[2:]
    bad = [flag for flag in flags if flag not in ("0", "1")]
    if bad:
        raise ValueError(f"lane flags must be 0 or 1, got {_shown(bad[0])}")
    return frame, fields[1], tuple(int(flag) for flag in flags)


def read_list(path, problems=None):
    """The frames of a list file, blank lines skipped.

    Args:
        path: e.g. `list/train_gt.txt`.
        problems: None: the first bad line raises. A list: each bad line's `FILE:LINE: reason`
            is appended and the line left out.

    Returns:
        list of `ListEntry(line_number, frame, mask, lanes_exist)` in file order.

    Raises:
        FileError: `FILE: cannot read ...`; without `problems`, `FILE:LINE: reason`.
    """
    try:
        lines = _text_lines(path, "list")
    except OSError as error:
        raise FileError(path, f"cannot read the list file ({error.strerror or error})") from None
    entries = []
    for line_number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            entries.append(ListEntry(line_number, *parse_list_line(text)))
        except ValueError as error:
            if problems is None:
                raise FileError(f"{path}:{line_number}", str(error)) from None
            problems.append(f"{path}:{line_number}: {error}")
    return entries


def find_list(root, list_file):
    """A list file named on a command line: as given when it exists (or is absolute), else
    relative to the dataset root (`--list list/test.txt`)."""
    if os.path.exists(list_file) or os.path.isabs(list_file):
        return list_file
    return os.path.join(root, list_file)


def resolve_frame(root, frame):
    """A list file's frame path (`/driver_23_30frame/.../00000.jpg`, relative to the dataset root
    whether or not it starts with "/") resolved inside `root`.

    Returns:
        (resolved absolute path, path relative to the resolved root, "/"-separated).

    Raises:
        ValueError: the path resolves outside `root` (`..`, a symlink out), or has a NUL byte.
    """
    return paths.resolve_inside(root, root, frame.lstrip("/"), "frame")
