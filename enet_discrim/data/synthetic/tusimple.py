"""Synthetic TuSimple lane frames in the dataset's native layout, with heavy domain randomisation.

A frame is a US highway seen from a dashboard camera: a flat (or gently rising/cresting) road with
2-5 painted lane lines converging on a vanishing point, curving or straight, under a sky with hills
and trees. The lines are modelled in road coordinates (lateral offset `s` metres, distance ahead
`z` metres) and projected by a pinhole camera, so dashes, dots, marking widths and textures shrink
with perspective exactly as on a real road. The label of a line is its projected centre at the
TuSimple rows `H_SAMPLES`, -2 where the line is out of frame, beyond its annotated end, or where an
end of it is hidden by a vehicle or another upright object; as TuSimple's annotators do, a line is
labelled through an object that hides it between two visible stretches.

On-disk layout (as TuSimple ships it)::

    DIR/label_data_0313.json     one JSON object per line: {"lanes", "h_samples", "raw_file"}
    DIR/label_data_0531.json
    DIR/label_data_0601.json
    DIR/clips/0313-1/<clip>/20.jpg   1280 x 720 JPEG; raw_file is relative to DIR

The test split writes the same clips with all labels in one `DIR/test_label.json`, as TuSimple's
test set comes, and renders every frame with its lines painted (see `DomainRandomization.evaluation`).
"""
import contextlib
import dataclasses
import pathlib
import time

import cv2
import numpy as np
from absl import logging

from enet_discrim.data.synthetic import drawing
from enet_discrim.formats import culane as culane_format
from enet_discrim.formats import tusimple as tusimple_format

IMAGE_WIDTH = tusimple_format.FRAME_WIDTH
IMAGE_HEIGHT = tusimple_format.FRAME_HEIGHT
H_SAMPLES = tusimple_format.H_SAMPLES  # the 56 annotated rows of TuSimple
NO_POINT = tusimple_format.NO_POINT
MAX_LANES = 5  # TuSimple annotates at most five lane lines per frame
FRAME_NAME = "20.jpg"  # TuSimple annotates the 20th (last) frame of every clip
# (label file, clip folder) pairs, named like the real dataset's three label files.
LABEL_SETS = (
    ("label_data_0313.json", "0313-1"),
    ("label_data_0531.json", "0531"),
    ("label_data_0601.json", "0601"),
)
TEST_LABEL_FILE = "test_label.json"
SPLITS = ("train", "test")

_NEAREST_Z = 1.5  # metres; at this distance the ground is already below the image bottom
_DENSE_SAMPLES = 480  # samples along a line, uniform in 1/z, i.e. about one per image row
_ROAD_TEXTURE_CELL = (0.5, 0.1)  # (z, s) metres per texel of the road-coordinate texture
_ROAD_TEXTURE_HALF_WIDTH = 40.0
_TERRAIN_TEXTURE_CELL = (1.0, 0.5)
_TERRAIN_TEXTURE_HALF_WIDTH = 200.0

_VEHICLE_TYPES = {  # width, height, length (metres), relative frequency
    "sedan": (1.8, 1.45, 4.6, 0.35),
    "suv": (1.95, 1.8, 4.9, 0.25),
    "pickup": (2.0, 1.9, 5.6, 0.12),
    "van": (2.0, 2.4, 5.5, 0.08),
    "box_truck": (2.5, 3.5, 9.0, 0.08),
    "semi": (2.6, 4.0, 15.0, 0.08),
    "rv": (2.5, 3.3, 9.0, 0.04),
}
_VEHICLE_COLOURS = (  # BGR body colours, weighted towards the white/grey/black of real traffic
    (235, 235, 235), (220, 222, 225), (180, 180, 182), (150, 150, 150), (110, 110, 112),
    (40, 40, 42), (25, 25, 28), (60, 40, 30), (120, 70, 30), (40, 40, 150), (30, 30, 110),
    (60, 90, 60), (150, 160, 170), (200, 205, 210), (70, 70, 75),
)


@dataclasses.dataclass(frozen=True)
class DomainRandomization:
    """Ranges and probabilities of the scene randomisation; the defaults are the training mix.

    Attributes:
      horizon_y: range of the horizon row (pixels from the top of the 720-row frame).
      focal_px: range of the focal length in pixels.
      camera_height_m: range of the camera height above the road.
      lane_width_m: range of the lane width.
      driving_lane_weights: relative frequency of 1, 2, 3, 4 driving lanes (2-5 lane lines).
      labelled_lanes_weights: relative frequency of 4 and 5 labelled lines, at most (the lines
        nearest the camera: the ego lane's and its neighbours', as TuSimple's annotators chose).
      curved_probability: chance of a clearly curved road (else almost straight).
      max_curvature: largest road curvature (1/m); 1/250 is a tight highway bend.
      max_yaw_rad: largest heading of the camera relative to the road (moves the vanishing point).
      dashed_probability: chance that an inner line is dashed (else dots or solid).
      dots_probability: chance that an inner line is made of raised pavement dots (Botts' dots).
      dash_markers_probability: chance that a dashed line has raised markers in its gaps.
      worn_probability: chance that the markings of a frame are worn or faded.
      max_vehicles: most vehicles on the carriageway.
      shadow_probability: chance of tree or bridge shadows across the road.
      max_roll_deg: largest camera roll.
      max_blur_sigma: largest Gaussian blur sigma in pixels.
      jpeg_quality: range of the JPEG quality the frame is encoded with.
      unpainted_probability: chance of a frame with no lane markings at all (no labels).
    """
    horizon_y: tuple = (215.0, 275.0)
    focal_px: tuple = (900.0, 1200.0)
    camera_height_m: tuple = (1.3, 1.8)
    lane_width_m: tuple = (3.3, 3.9)
    driving_lane_weights: tuple = (0.02, 0.18, 0.40, 0.40)
    curved_probability: float = 0.5
    max_curvature: float = 1.0 / 200.0
    max_yaw_rad: float = 0.04
    dashed_probability: float = 0.75
    dots_probability: float = 0.15
    dash_markers_probability: float = 0.35
    worn_probability: float = 0.35
    max_vehicles: int = 10
    shadow_probability: float = 0.4
    max_roll_deg: float = 2.0
    max_blur_sigma: float = 1.1
    jpeg_quality: tuple = (70, 95)
    unpainted_probability: float = 0.01
    labelled_lanes_weights: tuple = (0.9, 0.1)

    @classmethod
    def evaluation(cls):
        """The training mix without lane-less frames, for sets that are scored.

        TuSimple's metric scores a frame with no labelled lane 0 whatever is predicted (its
        accuracy divides by max(lanes, 1)), and TuSimple's test set has no such frame. The random
        draws are the same as in the training mix, so every other frame renders byte for byte as
        there, and a lane-less one renders as the same scene with its lines painted.
        """
        return cls(unpainted_probability=0.0)

    @classmethod
    def clean(cls):
        """Solid, unworn lines, no vehicles, shadows, roll or blur: frames whose labels can be
        checked pixel by pixel."""
        return cls(dashed_probability=0.0, dots_probability=0.0, worn_probability=0.0,
                   max_vehicles=0, shadow_probability=0.0, max_roll_deg=0.0, max_blur_sigma=0.0,
                   jpeg_quality=(95, 95), unpainted_probability=0.0)


@dataclasses.dataclass(frozen=True)
class CameraProfile:
    """A dashcam: the frame it records and how it sits on the car; ranges are sampled per frame.

    Attributes:
      name: "tusimple", "culane" or "random".
      frame_sizes: (width, height) choices, or None: a width in `width_range` and an aspect
        (width / height) in `aspect_range`.
      width_range, aspect_range: for `frame_sizes` None.
      focal_fraction: range of the focal length as a share of the frame's width (the wider the
        lens, the smaller).
      horizon_fraction: range of the horizon row as a share of the frame's height.
      camera_height_m: range of the camera's height above the road.
      hood_probability: chance that the car's hood is in view at the bottom of the frame.
      hood_top_fraction: range of the hood's top edge at the frame's centre, a share of the
        height (its sides lie lower).
      overlay_probability: chance of a dashcam's overlays (time stamp, a logo).
      night_probability: chance of a night (or dusk) scene: `_apply_night`.
      degrade_probability: chance of a frame stored small and scaled back up (as some real
        frames are kept at 512 x 288), with sensor noise.
      arrow_probability: chance of white symbols painted between the lines, which are no lanes:
        direction arrows, a stop line, a crossing's bars (`_draw_road_symbols`).
      labels: the annotation convention, "tusimple" (TuSimple's rows, up to 5 lines, cut by the
        frame's bottom) or "culane" (a point every 10 rows from the bottom edge up, at most 4
        lines: the ego lane's two and the next on each side, continued through the hood).
    """
    name: str
    frame_sizes: tuple | None
    focal_fraction: tuple
    horizon_fraction: tuple
    camera_height_m: tuple
    hood_probability: float = 0.0
    hood_top_fraction: tuple = (0.7, 0.8)
    overlay_probability: float = 0.0
    night_probability: float = 0.0
    degrade_probability: float = 0.0
    arrow_probability: float = 0.0
    labels: str = "tusimple"
    width_range: tuple = (1280, 1920)
    aspect_range: tuple = (16 / 9, 2.8)


#: The cameras `generate(camera=...)` and `--camera` know. TuSimple's is the one the generator
#: had before profiles (its frames are unchanged: `DomainRandomization`'s camera ranges apply).
#: CULane's from its real labels (`shared/real/culane_val`): 1640 x 590, the lanes' vanishing
#: point at rows 259-279, the ego lane about 900 px wide at the bottom edge (a camera about 1.3 m
#: up, for 3.75 m lanes), the hood's top edge at about 0.71 of the height in the middle.
CAMERAS = {
    "tusimple": CameraProfile("tusimple", ((IMAGE_WIDTH, IMAGE_HEIGHT),), (0.70, 0.94),
                              (0.30, 0.38), (1.3, 1.8)),
    "culane": CameraProfile("culane", ((culane_format.FRAME_WIDTH, culane_format.FRAME_HEIGHT),),
                            (0.45, 0.65), (0.43, 0.48), (1.2, 1.5), hood_probability=0.9,
                            hood_top_fraction=(0.66, 0.80), overlay_probability=0.7,
                            night_probability=0.3, degrade_probability=0.2,
                            arrow_probability=0.4, labels="culane"),
    "random": CameraProfile("random", None, (0.42, 1.0), (0.28, 0.52), (1.1, 1.9),
                            hood_probability=0.5, hood_top_fraction=(0.62, 0.95),
                            overlay_probability=0.3, night_probability=0.3,
                            degrade_probability=0.3, arrow_probability=0.3, labels="culane"),
}


@dataclasses.dataclass(frozen=True)
class _Camera:
    """Pinhole camera over a road whose centre line bends laterally and vertically with distance.

    Road coordinates: `s` metres to the right of the camera's lane position, `z` metres ahead,
    `height` metres above the local road surface.
    """
    focal: float
    height: float
    centre_x: float
    horizon_y: float
    yaw: float
    curvature: float
    curvature_rate: float
    vertical_curvature: float
    far_z: float
    frame_width: int = IMAGE_WIDTH
    frame_height: int = IMAGE_HEIGHT

    def bend(self, z):
        """Lateral offset (m) of the road at distance z: heading, curvature and its rate (clothoid)."""
        return self.yaw * z + 0.5 * self.curvature * z ** 2 + self.curvature_rate * z ** 3 / 6.0

    def project(self, s, z, height=0.0):
        """Road point(s) -> image (u, v) in pixels; arrays broadcast."""
        z = np.maximum(z, 0.1)
        elevation = 0.5 * self.vertical_curvature * z ** 2
        u = self.centre_x + self.focal * (s + self.bend(z)) / z
        v = self.horizon_y + self.focal * (self.height - elevation - height) / z
        return u, v

    def points(self, s, z, height=0.0):
        """Like `project` but stacked as float [N, 2] (x, y) for the drawing helpers."""
        s, z, height = np.broadcast_arrays(np.asarray(s, float), np.asarray(z, float),
                                           np.asarray(height, float))
        u, v = self.project(s, z, height)
        return np.stack([u, v], axis=-1)

    def dense_z(self, far=None):
        """float64 [_DENSE_SAMPLES] distances from near to `far`, uniform in 1/z (i.e. in rows)."""
        far = self.far_z if far is None else far
        return 1.0 / np.linspace(1.0 / _NEAREST_Z, 1.0 / far, _DENSE_SAMPLES)


@dataclasses.dataclass
class _LaneLine:
    s: float
    style: str  # "solid", "dashed", "dashed_dots", "dots" or "none"
    colour: tuple  # BGR
    width: float
    opacity: float
    dash_length: float = 3.0
    dash_period: float = 12.0
    dash_phase: float = 0.0


@dataclasses.dataclass
class _Layout:
    lines: list
    labelled: list  # indices into `lines`, left to right
    left_edge: float  # paved surface extent (s)
    right_edge: float
    left_barrier: tuple  # (kind, s) with kind in {"none", "concrete", "guardrail"}
    right_barrier: tuple
    opposite: tuple  # (s_left, s_right) of the opposite carriageway, or ()
    opposite_lines: list


@dataclasses.dataclass
class _Vehicle:
    s: float  # centre of the vehicle
    z: float  # its rear (or front, when oncoming)
    width: float
    height: float
    length: float
    kind: str
    colour: tuple
    oncoming: bool = False


def render_frame(rng, randomization=None, camera="tusimple"):
    """Renders one synthetic frame in memory.

    Args:
      rng: numpy.random.Generator; the frame is a pure function of its state.
      randomization: DomainRandomization (default: the training mix).
      camera: a name of `CAMERAS`.

    Returns:
      (image_bgr uint8 [H, W, 3] after the JPEG round trip the file on disk would get, lanes,
       rows). TuSimple's labels (`camera="tusimple"`, 1280 x 720): lanes list[list[int]] of 56 x
       values per lane, left to right, -2 where absent, and rows = h_samples [160, ..., 710].
       CULane's (the other cameras): lanes list of [(x, y), ...] from the bottom edge up, a
       point every 10 rows, and rows = None.
    """
    profile = _profile(camera)
    jpeg, lanes = _render_jpeg(rng, randomization or DomainRandomization(), profile)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return image, lanes, list(H_SAMPLES) if profile.labels == "tusimple" else None


def _profile(camera):
    if camera not in CAMERAS:
        raise ValueError(f"unknown camera {camera!r}: choose one of {', '.join(CAMERAS)}")
    return CAMERAS[camera]


def _render_jpeg(rng, randomization, profile=CAMERAS["tusimple"]):
    """Renders a frame and encodes it. Returns (JPEG bytes, lanes)."""
    image, lanes = _render(rng, randomization, profile)
    quality = int(rng.integers(randomization.jpeg_quality[0], randomization.jpeg_quality[1] + 1))
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a synthetic frame as JPEG")
    return encoded.tobytes(), lanes


def _render(rng, cfg, profile=CAMERAS["tusimple"]):
    """The whole frame: scene sampling, drawing back to front, the car's hood and the dashcam's
    overlays (profiles that have them), camera effects, labels in the profile's convention.

    Returns (image_bgr uint8 [H, W, 3] before JPEG, lanes).
    """
    camera = _sample_camera(rng, cfg, profile)
    layout = _sample_layout(rng, cfg)
    vehicles = _sample_vehicles(rng, cfg, layout)
    palette = _sample_palette(rng)

    width, height = camera.frame_width, camera.frame_height
    image = np.empty((height, width, 3), np.uint8)
    ground_top = int(np.floor(min(camera.horizon_y, camera.project(0.0, camera.far_z)[1])))
    _draw_sky(rng, image, ground_top, palette)
    _draw_hills(rng, image, ground_top, palette)
    _draw_ground(rng, image, ground_top, camera, layout, vehicles, palette, cfg, profile)

    occlusion = np.zeros((height, width), np.uint8)
    objects = _roadside_objects(rng, camera, layout, palette)
    objects += [(v.z, _vehicle_drawer(camera, v, rng)) for v in vehicles]
    objects.sort(key=lambda item: -item[0])  # painter's order: far first
    for _, draw in objects:
        draw(image, occlusion)

    _apply_haze(image, ground_top, camera, palette)
    daylight = 1.0
    if profile.night_probability and rng.random() < profile.night_probability:
        image, daylight = _apply_night(rng, image, ground_top, camera, layout, vehicles)
    if profile.hood_probability and rng.random() < profile.hood_probability:
        _draw_hood(rng, image, camera, profile, daylight)
    if profile.overlay_probability and rng.random() < profile.overlay_probability:
        _draw_overlays(rng, image)
    image = _apply_camera_response(rng, image, cfg)
    if profile.degrade_probability and rng.random() < profile.degrade_probability:
        image = _degrade(rng, image)
    roll = rng.uniform(-cfg.max_roll_deg, cfg.max_roll_deg) if cfg.max_roll_deg > 0 else 0.0
    roll_matrix = _roll_matrix(roll, width, height)
    if roll != 0.0:
        image = cv2.warpAffine(image, roll_matrix, (width, height),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if profile.labels == "culane":
        return image, _culane_lane_labels(rng, camera, layout, occlusion, roll_matrix)
    lanes = _lane_labels(rng, camera, layout, occlusion, roll_matrix)
    return image, lanes


# ----------------------------------------------------------------------------- scene sampling

def _sample_camera(rng, cfg, profile=None):
    """The camera of a frame: the road's shape from `cfg`, the dashcam from `profile` (None or
    TuSimple's: `cfg`'s camera ranges on a 1280 x 720 frame, drawn as before profiles existed)."""
    curved = rng.random() < cfg.curved_probability
    if curved:
        # log-uniform: gentle bends are more common than tight ones
        magnitude = np.exp(rng.uniform(np.log(1 / 3000.0), np.log(cfg.max_curvature)))
        curvature = magnitude * rng.choice([-1.0, 1.0])
    else:
        curvature = rng.normal(0.0, 1.0 / 10000.0)
    vertical = rng.choice([0.0, rng.uniform(-4e-5, 2e-4)], p=[0.5, 0.5])
    far_z = 260.0
    if vertical < 0:  # a crest hides the road where the line of sight grazes it
        far_z = min(far_z, 0.8 * np.sqrt(2 * 1.3 / -vertical))
    if profile is None or profile.name == "tusimple":
        width, height = IMAGE_WIDTH, IMAGE_HEIGHT
        focal = rng.uniform(*cfg.focal_px)
        camera_height = rng.uniform(*cfg.camera_height_m)
        centre_x = IMAGE_WIDTH / 2 + rng.normal(0.0, 25.0)
        horizon_y = rng.uniform(*cfg.horizon_y)
    else:
        width, height = _sample_frame_size(rng, profile)
        focal = rng.uniform(*profile.focal_fraction) * width
        camera_height = rng.uniform(*profile.camera_height_m)
        centre_x = width / 2 + rng.normal(0.0, 25.0 * width / IMAGE_WIDTH)
        horizon_y = rng.uniform(*profile.horizon_fraction) * height
    return _Camera(
        focal=focal,
        height=camera_height,
        centre_x=centre_x,
        horizon_y=horizon_y,
        yaw=float(np.clip(rng.normal(0.0, cfg.max_yaw_rad / 2), -cfg.max_yaw_rad, cfg.max_yaw_rad)),
        curvature=float(curvature),
        curvature_rate=float(rng.normal(0.0, 1.5e-6)) if curved else 0.0,
        vertical_curvature=float(vertical),
        far_z=float(far_z),
        frame_width=width,
        frame_height=height,
    )


def _sample_frame_size(rng, profile):
    """(width, height) of a frame of `profile`: one of its sizes, or a width and an aspect from
    its ranges (both even, as video encoders want them)."""
    if profile.frame_sizes is not None:
        return profile.frame_sizes[int(rng.integers(len(profile.frame_sizes)))]
    width = 2 * int(rng.uniform(*profile.width_range) / 2)
    return width, 2 * int(width / rng.uniform(*profile.aspect_range) / 2)


def _white(rng):
    base = rng.uniform(215, 250)
    return tuple(float(base * rng.uniform(0.96, 1.02)) for _ in range(3))


def _yellow(rng):
    return (rng.uniform(20, 90), rng.uniform(165, 215), rng.uniform(205, 245))


def _sample_layout(rng, cfg):
    weights = np.asarray(cfg.driving_lane_weights, float)
    lanes = 1 + int(rng.choice(len(weights), p=weights / weights.sum()))
    lane_width = rng.uniform(*cfg.lane_width_m)
    ego = int(rng.integers(lanes))
    # TuSimple's camera sits about 0.17 m left of the lane centre: its ego lines are centred
    # about 50 px right of the frame centre at the bottom row (label_stats, real label files).
    offset = rng.normal(-0.17, 0.25) if rng.random() > 0.07 else rng.uniform(-1.6, 1.6)
    unpainted = rng.random() < cfg.unpainted_probability
    worn = rng.random() < cfg.worn_probability
    inner_style = rng.choice(
        ["dashed", "dots", "solid"],
        p=_normalised([cfg.dashed_probability, cfg.dots_probability,
                       max(0.0, 1.0 - cfg.dashed_probability - cfg.dots_probability)]))
    if inner_style == "dashed" and rng.random() < cfg.dash_markers_probability:
        inner_style = "dashed_dots"
    dash_length = rng.uniform(2.5, 4.5)
    dash_period = dash_length + rng.uniform(6.5, 11.0)
    lines = []
    for i in range(lanes + 1):
        s = (i - ego) * lane_width - lane_width / 2 - offset
        width = rng.uniform(0.10, 0.20)
        opacity = rng.uniform(0.5, 0.95) if worn else rng.uniform(0.88, 1.0)
        if i == 0:  # left edge of a divided US highway: yellow, sometimes white, rarely absent
            style = rng.choice(["solid", "none"], p=[0.93, 0.07])
            colour = _yellow(rng) if rng.random() < 0.75 else _white(rng)
        elif i == lanes:
            style = rng.choice(["solid", "none"], p=[0.9, 0.1])
            colour = _white(rng)
        else:
            style = str(inner_style)
            colour = _white(rng)
            if style == "dots":
                width = rng.uniform(0.10, 0.13)
        if unpainted:
            style = "none"
        lines.append(_LaneLine(s=s, style=str(style), colour=colour, width=width, opacity=opacity,
                               dash_length=dash_length, dash_period=dash_period,
                               dash_phase=rng.uniform(0, dash_period)))
    painted = [i for i, line in enumerate(lines) if line.style != "none"]
    most = 4 + int(rng.choice(2, p=_normalised(cfg.labelled_lanes_weights)))
    labelled = sorted(sorted(painted, key=lambda i: abs(lines[i].s))[:most])

    left_edge = lines[0].s - rng.uniform(0.6, 3.0)
    right_edge = lines[-1].s + rng.uniform(1.0, 3.5)
    left_barrier = ("none", 0.0)
    right_barrier = ("none", 0.0)
    kind = rng.choice(["none", "concrete", "guardrail"], p=[0.35, 0.35, 0.30])
    if kind != "none":
        left_barrier = (str(kind), left_edge - rng.uniform(0.1, 1.0))
    kind = rng.choice(["none", "concrete", "guardrail"], p=[0.35, 0.25, 0.40])
    if kind != "none":
        right_barrier = (str(kind), right_edge + rng.uniform(0.2, 2.0))
    opposite, opposite_lines = (), []
    if rng.random() < 0.35:
        median = rng.uniform(3.0, 16.0)
        right = left_edge - median
        count = int(rng.integers(2, 4))
        left = right - count * lane_width - 1.5
        opposite = (left, right)
        for i in range(count + 1):
            s = right - 0.8 - i * lane_width
            style = "solid" if i in (0, count) else "dashed"
            colour = _yellow(rng) if i == 0 else _white(rng)
            opposite_lines.append(_LaneLine(s=s, style=style, colour=colour, width=0.12,
                                            opacity=0.9, dash_length=dash_length,
                                            dash_period=dash_period,
                                            dash_phase=rng.uniform(0, dash_period)))
    return _Layout(lines=lines, labelled=labelled, left_edge=left_edge, right_edge=right_edge,
                   left_barrier=left_barrier, right_barrier=right_barrier, opposite=opposite,
                   opposite_lines=opposite_lines)


def _normalised(weights):
    weights = np.asarray(weights, float)
    return weights / weights.sum()


def _sample_vehicles(rng, cfg, layout):
    if cfg.max_vehicles <= 0:
        return []
    count = int(min(cfg.max_vehicles, rng.poisson(3.2)))
    names = list(_VEHICLE_TYPES)
    frequencies = _normalised([_VEHICLE_TYPES[n][3] for n in names])
    lane_centres = [(a.s + b.s) / 2 for a, b in zip(layout.lines[:-1], layout.lines[1:])]
    vehicles = []
    for _ in range(count * 3):  # rejection sampling against overlaps
        if len(vehicles) == count:
            break
        name = str(rng.choice(names, p=frequencies))
        width, height, length, _ = _VEHICLE_TYPES[name]
        centre = lane_centres[int(rng.integers(len(lane_centres)))] + rng.normal(0, 0.2)
        in_ego_lane = abs(centre) < 1.2
        z = rng.uniform(12.0 if in_ego_lane else 5.0, 150.0) if rng.random() < 0.85 \
            else rng.uniform(150.0, 230.0)
        if any(abs(v.s - centre) < (v.width + width) / 2 + 0.3
               and -length - 3.0 < z - v.z < v.length + 3.0 for v in vehicles):
            continue
        colour = _VEHICLE_COLOURS[int(rng.integers(len(_VEHICLE_COLOURS)))]
        if name in ("semi", "box_truck", "rv") and rng.random() < 0.7:
            colour = (rng.uniform(200, 240),) * 3
        vehicles.append(_Vehicle(s=centre, z=z, width=width, height=height, length=length,
                                 kind=name, colour=colour))
    if layout.opposite:
        left, right = layout.opposite
        for _ in range(int(rng.integers(0, 5))):
            name = str(rng.choice(names, p=frequencies))
            width, height, length, _ = _VEHICLE_TYPES[name]
            vehicles.append(_Vehicle(
                s=rng.uniform(left + 1.5, right - 1.5), z=rng.uniform(25.0, 230.0), width=width,
                height=height, length=length, kind=name,
                colour=_VEHICLE_COLOURS[int(rng.integers(len(_VEHICLE_COLOURS)))], oncoming=True))
    return vehicles


def _sample_palette(rng):
    """Colours of one frame (BGR floats): sky, terrain, vegetation, road surfaces."""
    overcast = rng.random() < 0.3
    if overcast:
        grey = rng.uniform(175, 230)
        zenith = np.array([grey * 1.02, grey, grey * 0.97])
        horizon = zenith * rng.uniform(1.0, 1.1)
    else:
        zenith = np.array([rng.uniform(175, 235), rng.uniform(110, 160), rng.uniform(40, 100)])
        horizon = np.array([rng.uniform(215, 250), rng.uniform(195, 235), rng.uniform(165, 220)])
    terrain_choices = np.array([
        (95, 150, 175),  # dry grass
        (105, 128, 148),  # dirt
        (70, 120, 95),  # green grass
        (125, 130, 135),  # gravel
        (65, 90, 90),  # scrub
        (120, 150, 160),  # sand
    ], float)
    first, second = rng.choice(len(terrain_choices), 2, replace=False)
    surface = rng.choice(["dark", "medium", "concrete"], p=[0.3, 0.25, 0.45])
    grey = {"dark": rng.uniform(55, 95), "medium": rng.uniform(95, 135),
            "concrete": rng.uniform(135, 185)}[str(surface)]
    asphalt = grey * np.array([rng.uniform(1.0, 1.08), 1.0, rng.uniform(0.94, 1.03)])
    shoulder = asphalt * (rng.uniform(0.75, 1.15) if rng.random() < 0.5 else 1.0)
    return {
        "zenith": zenith, "horizon": horizon, "overcast": overcast,
        "terrain": terrain_choices[first] * rng.uniform(0.8, 1.1) * rng.uniform(0.95, 1.05, 3),
        "terrain2": terrain_choices[second] * rng.uniform(0.8, 1.1) * rng.uniform(0.95, 1.05, 3),
        "vegetation": np.array([rng.uniform(35, 70), rng.uniform(65, 110), rng.uniform(45, 85)]),
        "asphalt": asphalt, "shoulder": shoulder, "concrete_surface": surface == "concrete",
        "tree_density": rng.choice([0.0, rng.uniform(0.2, 1.0)], p=[0.25, 0.75]),
    }


# ---------------------------------------------------------------------- sky and far background

def _draw_sky(rng, image, ground_top, palette):
    """Vertical gradient with soft clouds; drawn at a quarter resolution, as the sky is smooth."""
    rows = max(ground_top, 1)
    width = image.shape[1]
    small_rows, small_cols = max(rows // 4, 2), width // 4
    t = (np.arange(small_rows, dtype=np.float32) / small_rows) ** 1.6
    gradient = palette["zenith"][None, :] + t[:, None] * (palette["horizon"] - palette["zenith"])
    sky = np.repeat(gradient[:, None, :].astype(np.float32), small_cols, axis=1)
    cloudiness = rng.uniform(-0.5, 1.2) if not palette["overcast"] else rng.uniform(0.3, 1.0)
    if cloudiness > 0:
        stretch = rng.uniform(1.0, 5.0)  # wide, flat clouds or streaks
        noise = drawing.fractal_noise(rng, small_rows, small_cols, 3, int(6 * 4 / stretch) + 2)
        alpha = np.clip((noise - 1.2 + cloudiness) * 0.45, 0.0, 0.85) * (1.0 - 0.5 * t[:, None])
        cloud = (palette["horizon"] * rng.uniform(0.95, 1.08)).astype(np.float32)
        sky += alpha[..., None] * (cloud - sky)
    small = np.clip(sky, 0, 255).astype(np.uint8)
    image[:rows] = cv2.resize(small, (width, rows), interpolation=cv2.INTER_LINEAR)
    image[rows:] = 0


def _draw_hills(rng, image, ground_top, palette):
    """Mountain ridges (hazy, further) and a tree line (dark, jagged) standing on the horizon."""
    width = image.shape[1]
    band_top = max(0, ground_top - 230)
    rows = np.arange(band_top, ground_top + 1, dtype=np.float32)[:, None]
    # which layer (0: none, nearer layers have higher numbers) covers each pixel of the band
    cover = np.zeros((len(rows), width), np.uint8)
    hill_colours = np.array([(80, 95, 108), (95, 112, 105), (135, 140, 148), (70, 88, 80)], float)
    colours = [np.zeros(3)]
    layers = int(rng.integers(0, 4))
    for layer in range(layers):
        peak = rng.uniform(20, 200) / (1 + layer * 0.6)
        profile = drawing.fractal_noise(rng, 1, width, 1, rng.integers(2, 6), octaves=4,
                                        persistence=0.45)[0]
        heights = np.clip(peak * (0.55 + 0.3 * profile), 0, 230)
        cover[rows >= ground_top - heights[None, :]] = len(colours)
        colour = hill_colours[int(rng.integers(len(hill_colours)))] * rng.uniform(0.75, 1.15)
        haze = rng.uniform(0.15, 0.6) / (1 + layer)
        colours.append(colour * (1 - haze) + palette["horizon"] * haze)
    density = palette["tree_density"]
    if density > 0:
        base = drawing.value_noise(rng, 1, width, 1, rng.integers(4, 20))[0]
        jag = drawing.value_noise(rng, 1, width, 1, 300)[0]
        heights = np.clip(density * rng.uniform(8, 40) * (0.8 + 0.5 * base + 0.25 * jag), 0, 80)
        cover[rows >= ground_top - heights[None, :]] = len(colours)
        colours.append(palette["vegetation"])
    if len(colours) == 1:
        return
    texture = drawing.fractal_noise(rng, len(rows) // 2 + 1, width // 2, 6, 40, octaves=3)
    texture = cv2.resize(texture, (width, len(rows)))
    table = np.zeros((256, 1, 3), np.uint8)
    table[:len(colours), 0] = np.clip(colours, 0, 255).astype(np.uint8)
    flat = cv2.LUT(cv2.merge([cover, cover, cover]), table)
    gain = (1.0 + 0.12 * texture).astype(np.float32)
    shaded = cv2.multiply(flat, cv2.merge([gain, gain, gain]), dtype=cv2.CV_8U)
    band = image[band_top:ground_top + 1]
    cv2.copyTo(shaded, (cover > 0).astype(np.uint8), band)


# --------------------------------------------------------------------------------- the ground

def _ground_maps(camera, ground_top):
    """Road coordinates of every ground pixel. Returns (rows, z [R], s [R, W]) float32."""
    rows = np.arange(ground_top, camera.frame_height, dtype=np.float32)
    z_dense = camera.dense_z()
    v_dense = camera.project(0.0, z_dense)[1]
    z_rows = np.interp(rows, v_dense[::-1], z_dense[::-1]).astype(np.float32)
    u = np.arange(camera.frame_width, dtype=np.float32)
    x = (u[None, :] - camera.centre_x) * (z_rows[:, None] / camera.focal)
    s = x - camera.bend(z_rows)[:, None].astype(np.float32)
    return rows, z_rows, s


def _texture_maps(s, z, cell, half_width):
    """cv2.remap maps sampling a road-coordinate texture (rows: z from 0, cols: s from
    -half_width, `cell` = (z, s) metres per texel) at every ground pixel."""
    map_x = ((s + half_width) * (1.0 / cell[1])).astype(np.float32)
    map_y = np.ascontiguousarray(np.broadcast_to((z / cell[0])[:, None], s.shape), np.float32)
    return cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)


def _texture_lookup(texture, maps):
    return cv2.remap(texture, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _road_texture(rng, camera, layout, palette, vehicles, cfg):
    """Relative brightness of the road surface and the shadow factor, in road coordinates.

    Returns (surface [Z, S] float32 around 0, shadow [Z, S] float32 in (0, 1]).
    """
    cell_z, cell_s = _ROAD_TEXTURE_CELL
    nz = int(camera.far_z / cell_z) + 2
    ns = int(2 * _ROAD_TEXTURE_HALF_WIDTH / cell_s) + 1
    s_axis = np.arange(ns, dtype=np.float32) * cell_s - _ROAD_TEXTURE_HALF_WIDTH
    surface = 0.5 * drawing.value_noise(rng, nz, ns, nz * cell_z / 8, 80 / 3)
    surface += 0.35 * drawing.value_noise(rng, nz, ns, nz * cell_z / 1.5, 80 / 0.8)
    # tyres polish two paths per lane and engines drip oil between them
    polish = rng.uniform(-0.8, 1.2)
    for a, b in zip(layout.lines[:-1], layout.lines[1:]):
        centre = (a.s + b.s) / 2
        surface += (-0.6 * np.exp(-((s_axis - centre) / 0.35) ** 2)
                    + polish * np.exp(-((s_axis - centre + 0.9) / 0.35) ** 2)
                    + polish * np.exp(-((s_axis - centre - 0.9) / 0.35) ** 2))[None, :]
    shoulder = (s_axis < layout.lines[0].s) | (s_axis > layout.lines[-1].s)
    shoulder_gain = palette["shoulder"].mean() / palette["asphalt"].mean() - 1.0
    surface[:, shoulder] += shoulder_gain / 0.12  # `surface` is scaled by 0.12 when shaded
    for _ in range(int(rng.poisson(1.5))):  # repaved patches, lane-aligned
        line = layout.lines[int(rng.integers(len(layout.lines)))]
        s0 = line.s + rng.uniform(-3, 1)
        z0 = rng.uniform(3, 150)
        top_left = (int((s0 + _ROAD_TEXTURE_HALF_WIDTH) / cell_s), int(z0 / cell_z))
        bottom_right = (int((s0 + rng.uniform(1, 4) + _ROAD_TEXTURE_HALF_WIDTH) / cell_s),
                        int((z0 + rng.uniform(2, 35)) / cell_z))
        cv2.rectangle(surface, top_left, bottom_right, float(rng.uniform(-1.5, 1.2)), -1)

    shadow = np.ones((nz, ns), np.float32)
    for v in vehicles:  # the dark footprint under every vehicle
        top_left = (int((v.s - v.width / 2 - 0.1 + _ROAD_TEXTURE_HALF_WIDTH) / cell_s),
                    int((v.z - 0.3) / cell_z))
        bottom_right = (int((v.s + v.width / 2 + 0.1 + _ROAD_TEXTURE_HALF_WIDTH) / cell_s),
                        int((v.z + v.length * 0.9) / cell_z))
        cv2.rectangle(shadow, top_left, bottom_right, 0.35, -1)
    if rng.random() < cfg.shadow_probability:
        darkness = rng.uniform(0.35, 0.7)
        if rng.random() < 0.3:  # an overpass or sign gantry shadow spans the whole road
            z0 = rng.uniform(8, 90)
            cv2.rectangle(shadow, (0, int(z0 / cell_z)),
                          (ns - 1, int((z0 + rng.uniform(2, 14)) / cell_z)), darkness, -1)
        for _ in range(int(rng.integers(2, 14))):  # trees beside the road
            side = layout.left_edge if rng.random() < 0.5 else layout.right_edge
            centre = (int((side + rng.normal(0, 2.5) + _ROAD_TEXTURE_HALF_WIDTH) / cell_s),
                      int(rng.uniform(4, 120) / cell_z))
            axes = (int(rng.uniform(1.0, 5.0) / cell_s), int(rng.uniform(1.0, 6.0) / cell_z))
            cv2.ellipse(shadow, centre, axes, 0, 0, 360, darkness, -1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigmaX=2.0, sigmaY=1.0)
    return surface, shadow


def _draw_ground(rng, image, ground_top, camera, layout, vehicles, palette, cfg,
                 profile=CAMERAS["tusimple"]):
    """Terrain, paved surface, cracks, markings (with the profile's road arrows and stop lines)
    and shadows, composed in float and written once."""
    rows, z_rows, s = _ground_maps(camera, ground_top)
    height = len(rows)

    # terrain: two materials mixed by a patchy field in road coordinates
    terrain_cells = (int(camera.far_z / _TERRAIN_TEXTURE_CELL[0]) + 2,
                     int(2 * _TERRAIN_TEXTURE_HALF_WIDTH / _TERRAIN_TEXTURE_CELL[1]) + 1)
    mix_field = drawing.fractal_noise(rng, *terrain_cells, terrain_cells[0] / 12,
                                      terrain_cells[1] / 12, octaves=4)
    mix = _texture_lookup(mix_field, _texture_maps(s, z_rows, _TERRAIN_TEXTURE_CELL,
                                                   _TERRAIN_TEXTURE_HALF_WIDTH))
    weight = np.clip(0.5 + 0.6 * mix, 0.0, 1.0)
    brightness = 1.0 + 0.08 * mix

    surface, shadow = _road_texture(rng, camera, layout, palette, vehicles, cfg)
    road_maps = _texture_maps(s, z_rows, _ROAD_TEXTURE_CELL, _ROAD_TEXTURE_HALF_WIDTH)
    road_shade = _texture_lookup(surface, road_maps)
    road_gain = 1.0 + 0.12 * road_shade

    # fine grain, stronger near the camera where one pixel covers little road
    tile = drawing.grain_tile(rng)
    frame_size = (camera.frame_height, camera.frame_width)
    grain = drawing.tile_to(tile, height, camera.frame_width, int(rng.integers(256)),
                            int(rng.integers(256)))
    nearness = np.clip((rows - ground_top) / max(camera.frame_height - ground_top, 1), 0, 1)
    grain = grain * (rng.uniform(2.0, 7.0) * (0.3 + nearness))[:, None]

    first, second, asphalt = (palette[k].astype(np.float32) for k in ("terrain", "terrain2", "asphalt"))
    terrain = cv2.merge([(first[c] + weight * (second[c] - first[c])) * brightness + grain
                         for c in range(3)])
    road = cv2.merge([asphalt[c] * road_gain + grain for c in range(3)])

    paved = np.zeros(frame_size, np.uint8)
    z_dense = camera.dense_z()
    surfaces = [(layout.left_edge, layout.right_edge)]
    if layout.opposite:
        surfaces.append(layout.opposite)
    for left, right in surfaces:
        polygon = np.concatenate([camera.points(left, z_dense),
                                  camera.points(right, z_dense)[::-1]])
        drawing.fill_polygons(paved, [polygon], 255)
    ground = drawing.blend_images(terrain, road, paved[ground_top:].astype(np.float32) * (1 / 255.0))

    if rng.random() < 0.3:  # rumble strips: grooves across the shoulder next to the edge lines
        right = rng.random() < 0.5
        edge = layout.lines[-1].s if right else layout.lines[0].s
        outward = (s - edge) if right else (edge - s)
        inside = (outward > 0.25) & (outward < 0.65)
        grooves = (np.mod(z_rows, 0.3) < 0.15)[:, None] & (z_rows < 25)[:, None] & inside
        ground[grooves] *= 0.9

    cracks = np.zeros(frame_size, np.uint8)
    _draw_cracks(rng, cracks, camera, layout, palette)
    drawing.blend_colour(ground, cracks[ground_top:], (rng.uniform(20, 45),) * 3)

    _draw_markings(rng, ground, ground_top, camera, layout.lines + layout.opposite_lines)
    if profile.arrow_probability and rng.random() < profile.arrow_probability:
        _draw_road_symbols(rng, ground, ground_top, camera, layout)

    shade = _texture_lookup(shadow, road_maps)
    # a cool tint in shadow: the sky, not the sun, lights it
    ground = cv2.multiply(ground, cv2.merge([shade, shade, shade]))
    ground[..., 0] += (1.0 - shade) * 12.0
    image[ground_top:] = np.clip(ground, 0, 255).astype(np.uint8)


def _draw_cracks(rng, mask, camera, layout, palette):
    """Tar-sealed cracks (random walks) and, on concrete, transverse slab joints."""
    width = layout.lines[-1].s - layout.lines[0].s
    for _ in range(int(rng.poisson(3))):
        steps = int(rng.integers(8, 40))
        transverse = rng.random() < 0.3
        ds = rng.normal(0.6 if transverse else 0.0, 0.25, steps)
        dz = rng.normal(0.0 if transverse else 1.2, 0.5, steps)
        s = layout.lines[0].s + rng.uniform(0, width) + np.cumsum(ds)
        z = np.clip(rng.uniform(3, 90) + np.cumsum(dz), 2.0, camera.far_z)
        near = z.min() < 12
        drawing.draw_polyline(mask, camera.points(s, z), int(rng.uniform(40, 130)),
                              2 if near and rng.random() < 0.3 else 1)
    if palette["concrete_surface"]:
        spacing = rng.uniform(4.5, 6.0)
        s = np.linspace(layout.lines[0].s, layout.lines[-1].s, 12)
        for z in np.arange(rng.uniform(2, spacing), 80.0, spacing):
            drawing.draw_polyline(mask, camera.points(s, np.full_like(s, z)), 90, 1)
        # longitudinal joints between the slabs, along the lanes: dark lines that are not lanes
        z = camera.dense_z(150.0)
        for a, b in zip(layout.lines[:-1], layout.lines[1:]):
            if rng.random() < 0.5:
                seam = a.s + (b.s - a.s) * rng.choice([0.5, rng.uniform(0.05, 0.2),
                                                        rng.uniform(0.8, 0.95)])
                drawing.draw_polyline(mask, camera.points(np.full_like(z, seam), z),
                                      int(rng.uniform(50, 110)), 1)
    for _ in range(int(rng.poisson(0.8))):  # tar snakes: long sealed cracks along a lane
        steps = int(rng.integers(30, 90))
        s = (layout.lines[0].s + rng.uniform(0, width)
             + np.cumsum(rng.normal(0.0, 0.08, steps)))
        z = np.clip(rng.uniform(3, 40) + np.cumsum(rng.uniform(0.8, 1.6, steps)), 2.0, camera.far_z)
        drawing.draw_polyline(mask, camera.points(s, z), int(rng.uniform(90, 170)),
                              2 if z.min() < 10 else 1)


def _draw_markings(rng, ground, ground_top, camera, lines):
    """Solid, dashed and dotted lines as anti-aliased polygons, blended into `ground` (float32)."""
    masks = {}
    for line in lines:
        if line.style == "none":
            continue
        key = tuple(int(c) for c in line.colour)
        mask = masks.setdefault(key, np.zeros((camera.frame_height, camera.frame_width), np.uint8))
        value = int(round(255 * line.opacity))
        half = line.width / 2
        if line.style == "solid":
            z = camera.dense_z()
            polygon = np.concatenate([camera.points(line.s - half, z),
                                      camera.points(line.s + half, z)[::-1]])
            drawing.fill_polygons(mask, [polygon], value)
        elif line.style in ("dashed", "dashed_dots"):
            starts = np.arange(line.dash_phase - line.dash_period, camera.far_z, line.dash_period)
            polygons = []
            for start in starts:
                z = np.linspace(max(start, _NEAREST_Z), start + line.dash_length, 6)
                if z[-1] <= _NEAREST_Z:
                    continue
                polygons.append(np.concatenate([camera.points(line.s - half, z),
                                                camera.points(line.s + half, z)[::-1]]))
            drawing.fill_polygons(mask, polygons, value)
            if line.style == "dashed_dots":  # Californian: raised markers in the dash gaps
                gap = line.dash_period - line.dash_length
                markers = (starts[:, None] + line.dash_length
                           + gap * np.array([0.25, 0.5, 0.75])[None, :]).ravel()
                _draw_dots(mask, camera, line.s, markers[(markers > 2.0) & (markers < 70.0)],
                           0.05, value)
        else:  # raised pavement dots; beyond ~60 m they are below one pixel
            spacing = rng.uniform(1.0, 1.6)
            _draw_dots(mask, camera, line.s, np.arange(rng.uniform(2.0, 2.0 + spacing), 70.0,
                                                       spacing), half, value)
    if not masks:
        return
    height = camera.frame_height - ground_top
    wear = None
    if any(line.opacity < 0.88 for line in lines):
        # paint flakes off in blotches: multiply by a clipped noise field
        wear = np.clip(1.2 + 0.6 * drawing.fractal_noise(rng, height, camera.frame_width, 40, 60,
                                                         octaves=2), 0.25, 1.0)
    for colour, mask in masks.items():
        drawing.blend_colour(ground, mask[ground_top:], colour, wear)


def _draw_road_symbols(rng, ground, ground_top, camera, layout):
    """White symbols between the lines, in road coordinates: direction arrows (straight, left,
    right) in some lanes, now and then a stop line or a crossing's bars across the road. Real
    frames have them, and a model that never saw one takes its shaft for a lane."""
    mask = np.zeros((camera.frame_height, camera.frame_width), np.uint8)
    centres = [(a.s + b.s) / 2 for a, b in zip(layout.lines[:-1], layout.lines[1:])]
    polygons = []
    for centre in centres:
        if rng.random() < 0.5:
            continue
        length, width = rng.uniform(4.0, 7.0), rng.uniform(0.15, 0.3)
        kind = rng.choice(["straight", "left", "right"], p=[0.6, 0.2, 0.2])
        for z0 in rng.uniform(4.0, 60.0, int(rng.integers(1, 3))):
            head = z0 + length
            polygons.append(np.concatenate([camera.points(centre - width, [z0, head - 1.2]),
                                            camera.points(centre + width, [head - 1.2, z0])]))
            polygons.append(camera.points([centre - 3 * width, centre, centre + 3 * width],
                                          [head - 1.2, head, head - 1.2]))
            if kind != "straight":
                side = -1.0 if kind == "left" else 1.0
                polygons.append(camera.points(
                    [centre, centre + side * 0.9, centre + side * 0.9, centre],
                    [head - 2.6, head - 2.2, head - 1.8, head - 1.9]))
    if rng.random() < 0.3:  # a stop line, or a crossing's bars, across the carriageway
        z0 = rng.uniform(6.0, 40.0)
        if rng.random() < 0.5:
            polygons.append(camera.points([layout.lines[0].s, layout.lines[-1].s,
                                           layout.lines[-1].s, layout.lines[0].s],
                                          [z0, z0, z0 + 0.4, z0 + 0.4]))
        else:
            for s0 in np.arange(layout.lines[0].s + 0.3, layout.lines[-1].s - 0.3, 1.0):
                polygons.append(camera.points([s0, s0 + 0.5, s0 + 0.5, s0],
                                              [z0, z0, z0 + 3.0, z0 + 3.0]))
    if polygons:
        drawing.fill_polygons(mask, polygons, int(rng.uniform(190, 250)))
        drawing.blend_colour(ground, mask[ground_top:], (rng.uniform(215, 245),) * 3)


def _draw_dots(mask, camera, s, distances, radius, value):
    """Round road markers of `radius` metres at lateral offset `s` and the given distances, as
    anti-aliased ellipses; markers under about a pixel across are left out."""
    for z in distances:
        u, v = camera.project(s, z)
        axis_x = camera.focal * radius / z
        axis_y = camera.focal * camera.height * radius / z ** 2
        if (axis_x < 0.35 or not -20 < u < camera.frame_width + 20
                or v > camera.frame_height + 20):
            continue
        cv2.ellipse(mask, tuple(drawing.to_fixed_point([[u, v]])[0]),
                    tuple(drawing.to_fixed_point([[axis_x, max(axis_y, 0.5)]])[0]),
                    0, 0, 360, value, -1, cv2.LINE_AA, 3)


# ------------------------------------------------------------------------- upright objects

def _roadside_objects(rng, camera, layout, palette):
    """Barriers, trees, poles and signs as (distance, draw(image, occlusion)) pairs."""
    objects = []
    for kind, s in (layout.left_barrier, layout.right_barrier):
        if kind == "concrete":
            objects += _concrete_barrier(rng, camera, s)
        elif kind == "guardrail":
            objects += _guardrail(rng, camera, s)
    density = palette["tree_density"]
    for _ in range(int(rng.poisson(40 * density))):
        left = rng.random() < 0.5
        edge = layout.left_edge if left else layout.right_edge
        if left and layout.opposite:
            edge = layout.opposite[0]
        s = edge + (-1 if left else 1) * rng.uniform(3.0, 35.0)
        z = rng.uniform(8, 250)
        objects.append((z, _tree_drawer(camera, s, z, rng, palette)))
    if rng.random() < 0.3:  # a row of utility poles
        s = (layout.right_edge + rng.uniform(4, 12)) if rng.random() < 0.6 \
            else (layout.left_edge - rng.uniform(4, 12))
        spacing = rng.uniform(40, 70)
        for z in np.arange(rng.uniform(5, spacing), 250, spacing):
            objects.append((z, _pole_drawer(camera, s, z, rng.uniform(9, 12))))
    if rng.random() < 0.25:  # a big green guide sign on two posts
        s = layout.right_edge + rng.uniform(2, 6)
        z = rng.uniform(30, 160)
        objects.append((z, _sign_drawer(camera, s, z, rng)))
    return objects


def _fill(image, occlusion, polygons, colour):
    drawing.fill_polygons(image, polygons, tuple(float(c) for c in colour))
    drawing.fill_polygons(occlusion, polygons, 255, antialias=False)


def _concrete_barrier(rng, camera, s):
    height = rng.uniform(0.8, 1.1)
    grey = rng.uniform(140, 215)
    face = np.array([grey, grey, grey * rng.uniform(0.97, 1.04)]) * rng.uniform(0.75, 1.0)
    top = face * rng.uniform(1.05, 1.2)
    seam = face * 0.75
    facing = 1.0 if s < 0 else -1.0  # the face we see points towards the camera
    section = rng.uniform(3.0, 6.0)
    objects = []
    for z0, z1 in _sections(section):

        def draw(image, occlusion, z0=z0, z1=z1):
            z = np.array([z0, z1])
            front = np.concatenate([camera.points(s, z, 0.0), camera.points(s, z[::-1], height)])
            upper = np.concatenate([camera.points(s, z, height),
                                    camera.points(s - facing * 0.25, z[::-1], height)])
            _fill(image, occlusion, [front], face)
            _fill(image, occlusion, [upper], top)
            drawing.draw_polyline(image, camera.points(s, [z0, z0], [0.0, height]),
                                  tuple(float(c) for c in seam), 1)
        objects.append((z1 + 0.5, draw))
    return objects


def _sections(length, far=250.0):
    """(z0, z1) pieces of a long roadside object: `length` long near the camera, and merged
    into longer pieces far away where a section is a few pixels."""
    pieces = []
    z0 = _NEAREST_Z
    while z0 < far:
        z1 = z0 + length * max(1, int(z0 / 40.0))
        pieces.append((z0, z1))
        z0 = z1
    return pieces


def _guardrail(rng, camera, s):
    metal = rng.uniform(130, 205)
    rail = np.array([metal, metal, metal * 0.97])
    post_colour = rail * rng.uniform(0.35, 0.6)
    spacing = rng.uniform(1.9, 2.5)
    objects = []
    for z0, z1 in _sections(spacing * 2):

        def draw(image, occlusion, z0=z0, z1=z1):
            z = np.array([z0, z1])
            if z0 < 90:
                for zp in np.arange(z0, z1 - 0.1, spacing):
                    post = np.concatenate([camera.points(s, [zp, zp + 0.15], 0.0),
                                           camera.points(s, [zp + 0.15, zp], 0.72)])
                    _fill(image, occlusion, [post], post_colour)
            beam = np.concatenate([camera.points(s, z, 0.5), camera.points(s, z[::-1], 0.8)])
            lower = np.concatenate([camera.points(s, z, 0.5), camera.points(s, z[::-1], 0.62)])
            _fill(image, occlusion, [beam], rail)
            drawing.fill_polygons(image, [lower], tuple(float(c) for c in rail * 0.75))
        objects.append((z1 + 0.5, draw))
    return objects


def _tree_drawer(camera, s, z, rng, palette):
    radius = rng.uniform(1.2, 4.0)
    trunk = rng.uniform(0.5, 3.0)
    base = palette["vegetation"] * rng.uniform(0.7, 1.2)
    blobs = [(rng.normal(0, radius * 0.5), rng.normal(0, radius * 0.4), radius * rng.uniform(0.5, 0.9),
              rng.uniform(0.75, 1.2)) for _ in range(int(rng.integers(3, 8)))]
    conifer = rng.random() < 0.3
    conifer_height = rng.uniform(5.0, 14.0)

    def draw(image, occlusion):
        scale = camera.focal / z
        if radius * scale < 0.8:
            return
        if conifer:  # a dark cone
            cone = np.concatenate([camera.points([s - radius * 0.6, s + radius * 0.6], z, 0.5),
                                   camera.points(s, z, conifer_height)[None, :]])
            _fill(image, occlusion, [cone], np.clip(base * 0.7, 0, 255))
            return
        centre = np.array(camera.project(s, z, trunk + radius))
        ground = np.array(camera.project(s, z, 0.0))
        trunk_width = max(1, int(0.3 * scale))
        cv2.line(image, tuple(int(c) for c in ground), tuple(int(c) for c in centre),
                 (40, 50, 60), trunk_width)
        cv2.line(occlusion, tuple(int(c) for c in ground), tuple(int(c) for c in centre),
                 255, trunk_width)
        for dx, dy, r, shade in blobs:
            point = centre + np.array([dx, -dy]) * scale
            point = tuple(int(c) for c in point)
            colour = tuple(float(c) for c in np.clip(base * shade, 0, 255))
            cv2.circle(image, point, max(1, int(r * scale)), colour, -1, cv2.LINE_AA)
            cv2.circle(occlusion, point, max(1, int(r * scale)), 255, -1)
    return draw


def _pole_drawer(camera, s, z, height):
    def draw(image, occlusion):
        width = max(0.5, 0.25 * camera.focal / z)
        half = 0.5 * width * z / camera.focal
        pole = np.concatenate([camera.points([s - half, s + half], z, 0.0),
                               camera.points([s + half, s - half], z, height)])
        _fill(image, occlusion, [pole], (45, 60, 75))
        arm = np.concatenate([camera.points([s - 1.2, s + 1.2], z, height - 0.8),
                              camera.points([s + 1.2, s - 1.2], z, height - 0.6)])
        _fill(image, occlusion, [arm], (45, 60, 75))
    return draw


def _sign_drawer(camera, s, z, rng):
    width, height, clearance = rng.uniform(3.0, 6.0), rng.uniform(1.8, 3.0), rng.uniform(2.0, 4.0)
    text_lines = int(rng.integers(1, 4))

    def draw(image, occlusion):
        for post in (s + 0.3 * width, s + 0.7 * width):
            pts = np.concatenate([camera.points([post - 0.1, post + 0.1], z, 0.0),
                                  camera.points([post + 0.1, post - 0.1], z, clearance)])
            _fill(image, occlusion, [pts], (60, 70, 80))
        board = np.concatenate([camera.points([s, s + width], z, clearance),
                                camera.points([s + width, s], z, clearance + height)])
        _fill(image, occlusion, [board], (70, 110, 20))
        for k in range(text_lines):  # white text as bars
            h = clearance + height * (0.75 - 0.25 * k)
            bar = np.concatenate([camera.points([s + 0.2 * width, s + 0.8 * width], z, h),
                                  camera.points([s + 0.8 * width, s + 0.2 * width], z, h + 0.25)])
            drawing.fill_polygons(image, [bar], (225, 230, 230))
    return draw


def _vehicle_drawer(camera, vehicle, rng):
    """Rear (or front, when oncoming) and visible side of a vehicle as shaded boxes."""
    body = np.array(vehicle.colour, float) * rng.uniform(0.85, 1.05)
    glass = np.array([rng.uniform(30, 70)] * 3)
    lights = np.array((40, 40, 200), float) if not vehicle.oncoming else np.array((210, 220, 225))
    truck = vehicle.kind in ("semi", "box_truck", "rv")
    clearance = 0.35 if not truck else 0.9

    def draw(image, occlusion):
        w, h, z = vehicle.width, vehicle.height, vehicle.z
        left, right = vehicle.s - w / 2, vehicle.s + w / 2
        if camera.focal * w / z < 2.0:
            return

        def quad(s0, s1, h0, h1, z0=z, z1=z):
            return np.concatenate([camera.points([s0, s1], [z0, z1], h0),
                                   camera.points([s1, s0], [z1, z0], h1)])
        side_s = left if left > 0.3 else (right if right < -0.3 else None)
        if side_s is not None:  # the side towards the camera
            far = z + vehicle.length
            _fill(image, occlusion, [quad(side_s, side_s, clearance, h * 0.97, z, far)], body * 0.7)
            _fill(image, occlusion, [quad(side_s, side_s, 0.0, clearance, z, far)], (25, 25, 25))
            if not truck:
                _fill(image, occlusion, [quad(side_s, side_s, h * 0.62, h * 0.92, z + 1.2,
                                              far - 0.8)], glass * 0.8)
        # wheels and the dark underside, then the body
        _fill(image, occlusion, [quad(left, right, 0.0, clearance + 0.1)], (20, 20, 22))
        if truck:
            _fill(image, occlusion, [quad(left, right, clearance, h)], body)
            drawing.fill_polygons(image, [quad(left + 0.05, right - 0.05, 0.45, 0.6)], (30, 30, 30))
            drawing.draw_polyline(image, camera.points([vehicle.s, vehicle.s], z,
                                                       [clearance, h * 0.95]),
                                  tuple(float(c) for c in body * 0.6), 1)
            for s0 in (left + 0.1, right - 0.35):
                drawing.fill_polygons(image, [quad(s0, s0 + 0.25, clearance + 0.1,
                                                   clearance + 0.3)], tuple(lights))
            return
        inset = 0.08 * w
        _fill(image, occlusion, [quad(left, right, clearance, 0.62 * h)], body)
        _fill(image, occlusion, [quad(left + inset, right - inset, 0.62 * h, h)], body * 0.95)
        drawing.fill_polygons(image, [quad(left + 1.6 * inset, right - 1.6 * inset, 0.66 * h,
                                           0.93 * h)], tuple(float(c) for c in glass))
        drawing.fill_polygons(image, [quad(left, right, clearance, clearance + 0.15)],
                              tuple(float(c) for c in body * 0.55))
        for s0 in (left + 0.05, right - 0.4):
            drawing.fill_polygons(image, [quad(s0, s0 + 0.35, 0.5 * h, 0.6 * h)], tuple(lights))
        drawing.fill_polygons(image, [quad(vehicle.s - 0.16, vehicle.s + 0.16, clearance + 0.2,
                                           clearance + 0.36)], (200, 205, 210))
    return draw


# ------------------------------------------------------------------------ camera effects

def _apply_haze(image, ground_top, camera, palette):
    """Aerial perspective: distant ground fades towards the horizon colour (per row)."""
    z_dense = camera.dense_z()
    v_dense = camera.project(0.0, z_dense)[1]
    # below the row of 10 m the haze is under 3 %: leave those rows alone
    width = camera.frame_width
    bottom = int(min(camera.frame_height, np.interp(10.0, z_dense, v_dense)))
    if bottom <= ground_top:
        return
    rows = np.arange(ground_top, bottom, dtype=np.float32)
    z_rows = np.interp(rows, v_dense[::-1], z_dense[::-1])
    alpha = (0.35 * (1 - np.exp(-z_rows / 120.0))).astype(np.float32)
    alpha = np.ascontiguousarray(np.broadcast_to(alpha[:, None], (len(rows), width)))
    haze = np.empty((len(rows), width, 3), np.uint8)
    haze[:] = np.clip(palette["horizon"], 0, 255).astype(np.uint8)
    image[ground_top:bottom] = cv2.blendLinear(haze, image[ground_top:bottom], alpha, 1.0 - alpha)


def _glow(image, centre, radius, colour, strength):
    """Adds a light's glow (a Gaussian blob with a halo) at `centre` to a float32 image."""
    height, width = image.shape[:2]
    x, y = centre
    reach = int(4 * radius) + 2
    left, right = max(0, int(x) - reach), min(width, int(x) + reach + 1)
    top, bottom = max(0, int(y) - reach), min(height, int(y) + reach + 1)
    if left >= right or top >= bottom:
        return
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
    distance2 = ((xx - x) ** 2 + (yy - y) ** 2) / max(radius, 0.5) ** 2
    blob = strength * (np.exp(-distance2) + 0.15 * np.exp(-distance2 / 9.0))
    image[top:bottom, left:right] += blob[..., None] * np.asarray(colour, np.float32)[None, None]


def _apply_night(rng, image, ground_top, camera, layout, vehicles):
    """Night or dusk: the day scene dimmed to starlight or twilight, the road lit by the car's
    headlight cone (white paint, being retro-reflective, lights up most), street lights with
    pools of light, vehicles' tail lights and oncoming headlights with glare, wet asphalt
    mirroring the lights, and the sensor's noise.

    Returns:
      (the night frame, uint8 [H, W, 3]; the ambient light, a share of daylight, that lights
       what comes after, such as the car's hood).
    """
    height, width = image.shape[:2]
    dusk = rng.random() < 0.25
    ambient = rng.uniform(0.18, 0.35) if dusk else rng.uniform(0.03, 0.12)
    tint = np.array([1.15, 1.0, 0.85 if not dusk else 1.05], np.float32)  # BGR: bluish night
    day = image.astype(np.float32)
    light = np.full((height, width), ambient, np.float32)
    sky_gain = ambient * (rng.uniform(0.6, 1.4) if dusk else rng.uniform(0.2, 0.8))
    light[:ground_top] = sky_gain
    rows, z_rows, s = _ground_maps(camera, ground_top)
    # The headlights: a cone ahead, falling off with distance and across, low beams reaching
    # 40-80 m, high beams further.
    reach = rng.uniform(40.0, 80.0) if rng.random() < 0.8 else rng.uniform(90.0, 150.0)
    spread = rng.uniform(0.12, 0.22)
    aim = rng.normal(0.0, 0.3)
    power = rng.uniform(0.8, 1.6)
    across = (s - aim) / (spread * z_rows[:, None] + 1.2)
    cone = power * np.exp(-across ** 2) / (1.0 + (z_rows[:, None] / reach) ** 2)
    light[ground_top:] += cone.astype(np.float32)
    # Street lights: lamps above the roadside, each lighting a pool of road beneath it.
    lamps = []
    if rng.random() < 0.6:
        side = layout.right_edge + rng.uniform(0.5, 3.0) if rng.random() < 0.5 else \
            layout.left_edge - rng.uniform(0.5, 3.0)
        spacing = rng.uniform(25.0, 50.0)
        warm = rng.random() < 0.6
        colour = (0.55, 0.8, 1.0) if warm else (1.0, 1.0, 0.95)
        for z in np.arange(rng.uniform(5.0, spacing), 220.0, spacing):
            pool = 0.9 * rng.uniform(0.5, 1.0) * np.exp(
                -((s - side) ** 2 + (z_rows[:, None] - z) ** 2) / (2 * rng.uniform(6, 12) ** 2))
            light[ground_top:] += pool.astype(np.float32)
            lamps.append((camera.project(side, z, rng.uniform(7.0, 10.0)), z, colour))
    wet = rng.random() < 0.3
    lit = day * light[..., None] * tint
    # Retro-reflective paint and markings shine back in the headlight cone: boost what is
    # bright in the day scene where the cone reaches.
    paint = np.clip((day[ground_top:].mean(axis=-1) - 150.0) / 60.0, 0.0, 1.0)
    lit[ground_top:] += (paint * np.clip(cone, 0, 1) * rng.uniform(40, 110))[..., None]
    glare = np.zeros_like(lit)
    for (u, v), z, colour in lamps:
        radius = max(1.0, 40.0 * camera.focal / IMAGE_WIDTH / z)
        _glow(glare, (u, v), radius, np.asarray(colour) * 255, 1.0)
        if wet:  # a streak of light on the wet road beneath the lamp
            ground_v = camera.project(layout.right_edge, z)[1]
            for step in range(6):
                _glow(glare, (u, ground_v + step * radius), radius * 0.8,
                      np.asarray(colour) * 255, 0.25)
    for vehicle in vehicles:
        if vehicle.z > 200:
            continue
        radius = max(0.8, 0.25 * camera.focal / vehicle.z)
        for offset in (-0.4, 0.4):
            s0 = vehicle.s + offset * vehicle.width
            u, v = camera.project(s0, vehicle.z, 0.7)
            if vehicle.oncoming:
                _glow(glare, (u, v), 2.5 * radius, (230, 240, 255), 1.2)
            else:
                _glow(glare, (u, v), radius, (40, 40, 255), 0.9)
    lit += cv2.GaussianBlur(glare, (0, 0), 1.0)
    noise = rng.normal(0.0, rng.uniform(2.0, 7.0), lit.shape).astype(np.float32)
    return np.clip(lit + noise, 0, 255).astype(np.uint8), ambient


def _draw_hood(rng, image, camera, profile, daylight=1.0):
    """The car's own hood across the bottom of the frame: a glossy panel whose top edge bows
    down towards the sides, mirroring the road and its lines above it (blurred, squashed,
    strongest at the grazing edge), the way a dashcam behind the windscreen sees it; its paint
    lit by `daylight` (1 by day, the night's ambient share at night)."""
    height, width = image.shape[:2]
    top_centre = rng.uniform(*profile.hood_top_fraction) * height
    side_drop = rng.uniform(0.2, 0.9) * (height - top_centre)
    centre = width / 2 + rng.normal(0.0, 0.03 * width)
    columns = np.arange(width, dtype=np.float32)
    top = (top_centre + side_drop * ((columns - centre) / (width / 2)) ** 2).astype(np.float32)
    first = int(np.floor(top.min()))
    if first >= height:
        return
    rows = np.arange(first, height, dtype=np.float32)[:, None]
    cover = np.clip(rows - top[None, :] + 0.5, 0.0, 1.0)  # anti-aliased edge
    below = np.maximum(rows - top[None, :], 0.0)
    # The mirror image: the row `squash` times as far above the edge as this one is below it.
    squash = rng.uniform(1.5, 3.5)
    map_y = np.clip(top[None, :] - below * squash, 0, height - 1).astype(np.float32)
    map_x = np.broadcast_to(columns[None, :], map_y.shape).astype(np.float32)
    mirror = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR)
    mirror = cv2.GaussianBlur(mirror, (0, 0), rng.uniform(1.0, 5.0)).astype(np.float32)
    paint = np.asarray(_VEHICLE_COLOURS[int(rng.integers(len(_VEHICLE_COLOURS)))], np.float32)
    if rng.random() < 0.5:  # dark paint is the most common, and the most mirror-like
        paint = paint * rng.uniform(0.15, 0.5)
    paint = paint * min(1.0, 2.0 * daylight)
    depth = np.clip(below / max(height - top_centre, 1.0), 0.0, 1.0)
    shade = (1.0 - rng.uniform(0.0, 0.5) * depth)[..., None]
    gloss = rng.uniform(0.15, 0.6) * np.exp(-depth / rng.uniform(0.2, 0.8))[..., None]
    hood = paint[None, None, :] * shade * (1.0 - gloss) + mirror * gloss
    if rng.random() < 0.5:  # a highlight along the edge
        hood += (rng.uniform(20, 70) * min(1.0, 3.0 * daylight)
                 * np.exp(-below / rng.uniform(1.0, 4.0)))[..., None]
    region = image[first:].astype(np.float32)
    alpha = cover[..., None]
    image[first:] = np.clip(region * (1.0 - alpha) + hood * alpha, 0, 255).astype(np.uint8)


def _draw_overlays(rng, image):
    """A dashcam's overlays: a time stamp near a corner and sometimes a small logo badge."""
    height, width = image.shape[:2]
    scale = rng.uniform(0.5, 1.1) * width / IMAGE_WIDTH
    stamp = (f"{rng.integers(2013, 2027)}/{rng.integers(1, 13):02d}/{rng.integers(1, 29):02d} "
             if rng.random() < 0.6 else "") + (
             f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}")
    (text_width, text_height), _ = cv2.getTextSize(stamp, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    margin = int(rng.uniform(0.01, 0.04) * width)
    x = margin if rng.random() < 0.6 else width - margin - text_width
    y = height - margin if rng.random() < 0.7 else margin + text_height
    colour = (235, 235, 235) if rng.random() < 0.7 else (40, 220, 240)
    cv2.putText(image, stamp, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 4,
                cv2.LINE_AA)
    cv2.putText(image, stamp, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2, cv2.LINE_AA)
    if rng.random() < 0.5:
        badge_width, badge_height = int(rng.uniform(0.04, 0.09) * width), int(0.022 * width)
        left, top = int(rng.uniform(0.05, 0.15) * width), int(rng.uniform(0.0, 0.02) * height)
        cv2.rectangle(image, (left, top), (left + badge_width, top + badge_height),
                      (40, 40, 210), -1, cv2.LINE_AA)
        cv2.rectangle(image, (left + 3, top + 3), (left + badge_width - 3, top + badge_height - 3),
                      (240, 240, 240), 1, cv2.LINE_AA)


def _apply_camera_response(rng, image, cfg):
    """Exposure, contrast, gamma, white balance (one lookup table per channel), saturation, blur."""
    levels = np.arange(256, dtype=np.float32) / 255.0
    gamma = rng.uniform(0.8, 1.25)
    contrast = rng.uniform(0.8, 1.2)
    exposure = rng.uniform(0.7, 1.2)
    warm = rng.normal(0.0, 0.05)
    gains = (1.0 - warm, 1.0, 1.0 + warm)
    tables = [np.clip(((levels ** gamma - 0.5) * contrast + 0.5) * exposure * g, 0, 1) * 255
              for g in gains]
    lut = np.stack(tables, axis=-1).astype(np.uint8)[:, None, :]
    image = cv2.LUT(image, lut)
    saturation = rng.uniform(0.6, 1.15)
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    image = cv2.addWeighted(image, saturation, grey, 1.0 - saturation, 0.0)
    sigma = rng.uniform(0.0, cfg.max_blur_sigma) if cfg.max_blur_sigma > 0 else 0.0
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    return image


def _degrade(rng, image):
    """A frame kept small and scaled back up (down to 0.3-0.6 of its width: 512 x 288 is 0.4 of
    TuSimple's), with the sensor's noise."""
    height, width = image.shape[:2]
    scale = rng.uniform(0.3, 0.6)
    small = cv2.resize(image, (max(1, int(width * scale)), max(1, int(height * scale))),
                       interpolation=cv2.INTER_AREA)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    image += rng.normal(0.0, rng.uniform(1.0, 5.0), image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _roll_matrix(roll_deg, width, height):
    """2x3 affine rotating a width x height frame about its centre, zoomed just enough to hide
    the corners."""
    angle = np.deg2rad(abs(roll_deg))
    zoom = np.cos(angle) + np.sin(angle) * width / height if roll_deg else 1.0
    return cv2.getRotationMatrix2D((width / 2, height / 2), roll_deg, zoom)


# ------------------------------------------------------------------------------- labels

def _line_at_rows(camera, s, z_dense, label_top, roll_matrix, rows):
    """A line's x at each of `rows` of the rolled frame: (bool [R] the rows it spans below
    `label_top`, float [R] x), or None when under 2 of its points are left."""
    u, v = camera.project(s, z_dense)
    keep = v >= label_top
    u, v = u[keep], v[keep]
    if len(u) < 2:
        return None
    x = roll_matrix[0, 0] * u + roll_matrix[0, 1] * v + roll_matrix[0, 2]
    y = roll_matrix[1, 0] * u + roll_matrix[1, 1] * v + roll_matrix[1, 2]
    # walking away from the camera the line must climb the image; drop any part that does not
    climbing = y < np.minimum.accumulate(np.concatenate([[np.inf], y[:-1]]))
    x, y = x[climbing], y[climbing]
    if len(x) < 2:
        return None
    return (rows >= y.min()) & (rows <= y.max()), np.interp(rows, y[::-1], x[::-1])


def _unoccluded(occlusion, inverse, xs, rows):
    """bool [R]: the points (xs, rows) of the rolled frame that no upright object hides, looked
    up in the unrolled frame, where the occlusion mask was drawn."""
    height, width = occlusion.shape
    un_x = inverse[0, 0] * xs + inverse[0, 1] * rows + inverse[0, 2]
    un_y = inverse[1, 0] * xs + inverse[1, 1] * rows + inverse[1, 2]
    col = np.clip(np.round(un_x).astype(int), 0, width - 1)
    row = np.clip(np.round(un_y).astype(int), 0, height - 1)
    return occlusion[row, col] == 0


def _lane_labels(rng, camera, layout, occlusion, roll_matrix):
    """x of each labelled line's centre at every h_sample; -2 out of frame, beyond the annotated
    end, or beyond the last (or before the first) row where an upright object leaves it visible.
    Rows hidden between two visible stretches are labelled, as in the real labels."""
    v_far = camera.project(0.0, camera.far_z)[1]
    label_top = v_far + rng.uniform(2.0, 15.0)  # annotators stop a little short of the horizon
    z_dense = camera.dense_z()
    inverse = cv2.invertAffineTransform(roll_matrix)
    rows = np.asarray(H_SAMPLES, np.float64)
    lanes = []
    for index in layout.labelled:
        projected = _line_at_rows(camera, layout.lines[index].s, z_dense, label_top, roll_matrix,
                                  rows)
        if projected is None:
            continue
        inside, xs = projected
        xs_int = np.round(xs).astype(int)
        visible = inside & (xs_int >= 0) & (xs_int < camera.frame_width)
        seen = np.flatnonzero(visible & _unoccluded(occlusion, inverse, xs, rows))
        if seen.size == 0:
            continue
        # TuSimple's annotators continue a line through whatever hides it between two visible
        # stretches (no real label has a -2 between labelled points); a line whose near or far
        # end is hidden stops where it was last seen.
        through = np.zeros_like(visible)
        through[seen[0]:seen[-1] + 1] = True
        visible &= through
        lane = [int(value) if ok else NO_POINT for value, ok in zip(xs_int, visible)]
        if any(value != NO_POINT for value in lane):
            lanes.append(lane)
    return lanes


def _culane_lane_labels(rng, camera, layout, occlusion, roll_matrix):
    """CULane's labels of a frame: the ego lane's two lines and the next line on each side (at
    most 4, painted ones), each a point every 10 rows from the frame's bottom edge up to where
    the annotators stop, bottom first. Lines run on through the car's hood (not in `occlusion`)
    and through vehicles that hide them between two visible stretches; a line whose far end is
    hidden stops where it was last seen. Points a little outside the frame's sides are kept, as
    the annotators continue a line to the edge.

    Returns:
      list of lanes, left to right, each a list of (x, y) floats.
    """
    height, width = camera.frame_height, camera.frame_width
    v_far = camera.project(0.0, camera.far_z)[1]
    label_top = v_far + rng.uniform(2.0, 15.0) * height / IMAGE_HEIGHT
    z_dense = camera.dense_z()
    inverse = cv2.invertAffineTransform(roll_matrix)
    painted = [index for index in range(len(layout.lines)) if layout.lines[index].style != "none"]
    left = sorted((i for i in painted if layout.lines[i].s < 0), key=lambda i: -layout.lines[i].s)
    right = sorted((i for i in painted if layout.lines[i].s >= 0), key=lambda i: layout.lines[i].s)
    chosen = sorted(left[:2] + right[:2], key=lambda i: layout.lines[i].s)
    rows = np.asarray(culane_format.sample_rows(height), np.float64)
    margin = 0.03 * width
    lanes = []
    for index in chosen:
        projected = _line_at_rows(camera, layout.lines[index].s, z_dense, label_top, roll_matrix,
                                  rows)
        if projected is None:
            continue
        inside, xs = projected
        near_frame = inside & (xs >= -margin) & (xs < width + margin)
        in_frame = near_frame & (xs >= 0) & (xs < width) & (rows < height)
        seen = np.flatnonzero(in_frame & _unoccluded(occlusion, inverse, xs, rows))
        if seen.size == 0:
            continue
        # rows run from the bottom up: seen[-1] is the farthest visible point
        kept = near_frame & (np.arange(len(rows)) <= seen[-1])
        points = [(float(px), float(py)) for px, py, ok in zip(xs, rows, kept) if ok]
        if len(points) >= 2:
            lanes.append(points)
    return lanes


# ------------------------------------------------------------------------------- on disk

def generate(outdir, count, seed, split="train", randomization=None, overwrite=False,
             log_every=100, camera="tusimple"):
    """Writes `count` frames and their labels in the camera's dataset layout under `outdir`:
    TuSimple's (below) for `camera="tusimple"`, CULane's for the others (`_generate_culane`).

    Frame i is rendered from `numpy.random.default_rng([seed, i])`, so it does not depend on
    `count`, and goes to clip folder `LABEL_SETS[i % 3]`. Its label line goes to that set's label
    file (split "train") or to `test_label.json` (split "test"). Each label line is written as
    soon as its frame is on disk, so an interrupted run leaves consistent, usable files.

    Args:
      outdir: output folder (created if missing).
      count: number of frames (>= 0).
      seed: integer seed; the same seed gives byte-identical files.
      split: "train" (label_data_*.json, the training mix: 1 % of frames have no lane markings)
        or "test" (test_label.json, `DomainRandomization.evaluation()`: every frame has lanes).
      randomization: DomainRandomization (default: the split's mix, as above).
      overwrite: replace existing label files instead of refusing.
      log_every: log progress every this many frames.
      camera: a name of `CAMERAS`.

    Returns:
      list of pathlib.Path of the label files written, in LABEL_SETS order for "train" (for
      CULane's layout: its list file).

    Raises:
      ValueError: negative count, a non-integer seed, an unknown split or camera.
      FileExistsError: a label file exists already and `overwrite` is False.
      NotADirectoryError: `outdir` is an existing file.
    """
    outdir = pathlib.Path(outdir)
    count, seed = _check_count_and_seed(count, seed)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    profile = _profile(camera)
    if outdir.exists() and not outdir.is_dir():
        raise NotADirectoryError(f"--outdir {outdir} exists and is not a folder")
    if profile.labels == "culane":
        return _generate_culane(outdir, count, seed, split, randomization, overwrite, log_every,
                                profile)
    if split == "train":
        label_names = [name for name, _ in LABEL_SETS[:min(count, len(LABEL_SETS))]]
        randomization = randomization or DomainRandomization()
    else:
        label_names = [TEST_LABEL_FILE] if count else []
        randomization = randomization or DomainRandomization.evaluation()
    label_paths = [outdir / name for name in label_names]
    if not overwrite:
        for path in label_paths:
            if path.exists():
                raise FileExistsError(
                    f"{path} already exists; choose an empty --outdir or pass --overwrite")
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(path, "w", encoding="utf-8")) for path in label_paths]
        for i in range(count):
            clip_index = i % len(LABEL_SETS)
            label_file = files[clip_index if split == "train" else 0]
            raw_file = f"clips/{LABEL_SETS[clip_index][1]}/{seed}_{i:06d}/{FRAME_NAME}"
            jpeg, lanes = _render_jpeg(np.random.default_rng([seed, i]), randomization)
            frame_path = outdir / raw_file
            frame_path.parent.mkdir(parents=True, exist_ok=True)
            frame_path.write_bytes(jpeg)
            label_file.write(tusimple_format.format_label_line(raw_file, lanes, H_SAMPLES) + "\n")
            label_file.flush()
            if log_every and (i + 1) % log_every == 0:
                elapsed = time.perf_counter() - start
                logging.info("tusimple: %d/%d frames, %.1f ms/frame", i + 1, count,
                             1000 * elapsed / (i + 1))
    elapsed = time.perf_counter() - start
    logging.info("tusimple: wrote %d %s frames and %d label files to %s in %.1f s", count, split,
                 len(label_paths), outdir, elapsed)
    return label_paths


#: The list file of a split in CULane's layout.
CULANE_LISTS = {"train": culane_format.TRAIN_LIST, "test": "list/test.txt"}
#: Frames per clip folder in CULane's layout (its clips are a minute of 30 fps video, every 30th
#: frame kept).
_CULANE_CLIP_FRAMES = 60


def culane_frame_path(seed, index):
    """Where frame `index` of seed `seed` goes in CULane's layout:
    `driver_<seed>_30frame/<clip>.MP4/<frame>.jpg`."""
    clip, frame = divmod(index, _CULANE_CLIP_FRAMES)
    return f"driver_{seed}_30frame/{clip:05d}.MP4/{30 * frame:05d}.jpg"


def _generate_culane(outdir, count, seed, split, randomization, overwrite, log_every, profile):
    """`generate` in CULane's layout: frames with their `.lines.txt` beside them, and the split's
    list (`list/train_gt.txt` or `list/test.txt`, one frame a line), each line written once its
    frame and labels are on disk."""
    list_path = outdir / CULANE_LISTS[split]
    if list_path.exists() and not overwrite:
        raise FileExistsError(f"{list_path} already exists; choose an empty --outdir or pass "
                              "--overwrite")
    if randomization is None:
        randomization = DomainRandomization() if split == "train" else DomainRandomization.evaluation()
    list_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(list_path, "w", encoding="utf-8") as listing:
        for i in range(count):
            frame = culane_frame_path(seed, i)
            jpeg, lanes = _render_jpeg(np.random.default_rng([seed, i]), randomization, profile)
            frame_path = outdir / frame
            frame_path.parent.mkdir(parents=True, exist_ok=True)
            frame_path.write_bytes(jpeg)
            (outdir / culane_format.lanes_path(frame)).write_text(
                culane_format.format_lanes(lanes), encoding="utf-8")
            listing.write(f"/{frame}\n")
            listing.flush()
            if log_every and (i + 1) % log_every == 0:
                elapsed = time.perf_counter() - start
                logging.info("%s camera: %d/%d frames, %.1f ms/frame", profile.name, i + 1, count,
                             1000 * elapsed / (i + 1))
    logging.info("%s camera: wrote %d %s frames in CULane's layout to %s in %.1f s", profile.name,
                 count, split, outdir, time.perf_counter() - start)
    return [list_path]


def _check_count_and_seed(count, seed):
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(count), int(seed)
