"""Synthetic Cityscapes street scenes in the dataset's native file layout and id conventions.

A scene is a street in one-point perspective: sky, buildings, trees, road and sidewalks (stuff),
with cars, persons, riders and bicycles as separate instances, crowd regions ("person group",
"car group") that carry no instance number, poles and traffic signs, and sometimes the ego
vehicle's bonnet. Label ids come from `cityscapesscripts.helpers.labels`, looked up by name.

On-disk layout (as Cityscapes ships it)::

    DIR/leftImg8bit/SPLIT/CITY/CITY_SSSSSS_FFFFFF_leftImg8bit.png     RGB, 8 bit
    DIR/gtFine/SPLIT/CITY/CITY_SSSSSS_FFFFFF_gtFine_labelIds.png      uint8 label ids
    DIR/gtFine/SPLIT/CITY/CITY_SSSSSS_FFFFFF_gtFine_instanceIds.png   16-bit: id*1000+k for
                                                                     thing instances, else id
    DIR/gtFine/SPLIT/CITY/CITY_SSSSSS_FFFFFF_gtFine_color.png         RGBA label colours
"""
import pathlib
import time

import cv2
import numpy as np
from absl import logging
from cityscapesscripts.helpers import labels as cityscapes_labels

from enet_discrim.data.synthetic import drawing

SPLITS = ("train", "val")
# Invented city names, so synthetic files are never mistaken for real Cityscapes ones.
CITIES = {"train": ("synthberg", "synthstadt", "synthdorf"), "val": ("synthheim",)}
FRAME_NUMBER = 19  # Cityscapes annotates the 20th frame of each snippet
INSTANCE_OFFSET = 1000  # instanceIds = labelId * 1000 + k for thing instances


def _label_id(name):
    return cityscapes_labels.name2label[name].id


def render_sample(rng, width=1024, height=512):
    """Renders one synthetic street scene with its ground truth.

    Args:
      rng: numpy.random.Generator; the sample is a pure function of its state.
      width, height: image size in pixels (Cityscapes is 2048 x 1024).

    Returns:
      (image_bgr uint8 [height, width, 3] in OpenCV channel order,
       label_ids uint8 [height, width] Cityscapes label ids,
       instance_ids int32 [height, width]: labelId * 1000 + k on thing instances (k = 0, 1, ...),
         the bare labelId on stuff and on crowd regions of thing classes).
    """
    scene = _Scene(rng, width, height)
    scene.draw()
    image = cv2.GaussianBlur(scene.image, (0, 0), 0.6)
    noise = drawing.tile_to(drawing.grain_tile(rng, 128), height, width)
    image = np.clip(image.astype(np.float32) + 3.0 * noise[..., None], 0, 255).astype(np.uint8)
    return image, scene.label_ids, scene.instance_ids


class _Scene:
    """Canvas of an image, a label-id map and an instance-id map drawn with the same shapes."""

    def __init__(self, rng, width, height):
        self.rng = rng
        self.width, self.height = int(width), int(height)
        self.image = np.zeros((self.height, self.width, 3), np.uint8)
        self.label_ids = np.zeros((self.height, self.width), np.uint8)
        self.instance_ids = np.zeros((self.height, self.width), np.int32)
        self.next_instance = {}
        self.horizon = self.height * rng.uniform(0.38, 0.5)
        self.vanishing_x = self.width * rng.uniform(0.4, 0.6)

    def paint(self, polygons, name, colour, instance=True):
        """Fills polygons in all three maps. `instance` False marks a crowd region of a thing class.

        Returns the instance id written (label id for stuff and crowds).
        """
        label = cityscapes_labels.name2label[name]
        value = label.id
        if label.hasInstances and instance:
            k = self.next_instance.get(label.id, 0)
            self.next_instance[label.id] = k + 1
            value = label.id * INSTANCE_OFFSET + k
        fixed = [drawing.to_fixed_point(p) for p in polygons if len(p) >= 3]
        cv2.fillPoly(self.image, fixed, drawing.cv_colour(colour), cv2.LINE_8, 3)
        cv2.fillPoly(self.label_ids, fixed, int(label.id), cv2.LINE_8, 3)
        cv2.fillPoly(self.instance_ids, fixed, int(value), cv2.LINE_8, 3)
        return value

    def ground_y(self, depth):
        """Image row of the ground at `depth` (1 = bottom of the image, larger = further)."""
        return self.horizon + (self.height - self.horizon) / depth

    def scale(self, depth):
        """Pixels per metre at `depth`, for a camera 1.5 m above the ground."""
        return (self.height - self.horizon) / depth / 1.5

    def draw(self):
        rng = self.rng
        w, h = self.width, self.height
        sky = np.array([rng.uniform(180, 240), rng.uniform(150, 200), rng.uniform(110, 170)])
        self.paint([np.array([[0, 0], [w, 0], [w, h], [0, h]], float)], "sky", sky)
        self._buildings()
        self._trees()
        road_half = rng.uniform(0.25, 0.45) * w
        left_kerb, right_kerb = self.vanishing_x - road_half, self.vanishing_x + road_half
        vx, hy = self.vanishing_x, self.horizon
        sidewalk = np.array([rng.uniform(120, 170)] * 3)
        self.paint([np.array([[0, hy], [w, hy], [w, h], [0, h]], float)], "sidewalk", sidewalk)
        road = np.array([rng.uniform(80, 120)] * 3) * np.array([1.05, 0.95, 1.0])
        self.paint([np.array([[vx, hy], [left_kerb, h], [right_kerb, h]], float)], "road", road)
        things = []
        for _ in range(int(rng.integers(3, 7))):
            things.append(("car", rng.uniform(1.8, 14.0), rng.uniform(-0.8, 0.8)))
        for _ in range(int(rng.integers(2, 6))):
            things.append(("person", rng.uniform(1.5, 12.0), rng.choice([-1.1, 1.1]) +
                           rng.normal(0, 0.08)))
        for _ in range(int(rng.integers(1, 3))):
            things.append(("cyclist", rng.uniform(1.5, 10.0), rng.uniform(-0.7, 0.7)))
        things.append(("person_group", rng.uniform(4.0, 12.0), rng.choice([-1.2, 1.2])))
        if rng.random() < 0.5:
            things.append(("car_group", rng.uniform(8.0, 14.0), rng.uniform(-0.6, 0.6)))
        for _ in range(int(rng.integers(1, 4))):
            things.append(("pole", rng.uniform(1.5, 10.0), rng.choice([-1.05, 1.05])))
        for kind, depth, lateral in sorted(things, key=lambda thing: -thing[1]):
            x = self.vanishing_x + lateral * road_half / depth
            getattr(self, "_" + kind)(x, depth)
        if rng.random() < 0.7:
            top = h * rng.uniform(0.85, 0.92)
            bonnet = np.array([[0, h], [0, top + 0.05 * h], [w * 0.3, top], [w * 0.7, top],
                               [w, top + 0.05 * h], [w, h]], float)
            self.paint([bonnet], "ego vehicle", (rng.uniform(20, 80),) * 3)

    def _buildings(self):
        rng = self.rng
        x = -rng.uniform(0, 50)
        while x < self.width:
            bw = rng.uniform(0.08, 0.25) * self.width
            top = self.horizon - rng.uniform(0.1, 0.8) * self.horizon
            colour = np.array([rng.uniform(60, 200)] * 3) * rng.uniform(0.85, 1.15, 3)
            self.paint([np.array([[x, top], [x + bw, top], [x + bw, self.horizon + 2],
                                  [x, self.horizon + 2]], float)], "building", colour)
            for wy in np.arange(top + 8, self.horizon - 10, rng.uniform(14, 24)):
                for wx in np.arange(x + 6, x + bw - 10, rng.uniform(12, 20)):
                    cv2.rectangle(self.image, (int(wx), int(wy)), (int(wx + 6), int(wy + 8)),
                                  drawing.cv_colour(colour * 0.5), -1)
            x += bw

    def _trees(self):
        rng = self.rng
        for _ in range(int(rng.integers(2, 8))):
            cx = rng.uniform(0, self.width)
            r = rng.uniform(0.03, 0.1) * self.width
            cy = self.horizon - r * rng.uniform(0.2, 0.9)
            circle = cv2.ellipse2Poly((int(cx), int(cy)), (int(r), int(r * 0.9)), 0, 0, 360, 10)
            self.paint([circle.astype(float)], "vegetation",
                       (rng.uniform(30, 70), rng.uniform(90, 140), rng.uniform(40, 90)))

    def _box(self, x, bottom, half_width, top):
        return np.array([[x - half_width, top], [x + half_width, top], [x + half_width, bottom],
                         [x - half_width, bottom]], float)

    def _car(self, x, depth, crowd=False):
        rng = self.rng
        k = self.scale(depth)
        bottom = self.ground_y(depth)
        colour = np.array(rng.uniform(20, 230, 3))
        body = self._box(x, bottom - 0.25 * k, 0.9 * k, bottom - 1.0 * k)
        cabin = self._box(x, bottom - 0.95 * k, 0.7 * k, bottom - 1.5 * k)
        wheels = [self._box(x - 0.65 * k, bottom, 0.18 * k, bottom - 0.4 * k),
                  self._box(x + 0.65 * k, bottom, 0.18 * k, bottom - 0.4 * k)]
        polygons = [body, cabin] + wheels
        self.paint(polygons, "car", colour, instance=not crowd)
        # details inside the silhouette touch the image only
        window = self._box(x, bottom - 1.02 * k, 0.6 * k, bottom - 1.42 * k)
        cv2.fillPoly(self.image, [drawing.to_fixed_point(window)], (60, 50, 40), cv2.LINE_8, 3)
        for wheel in wheels:
            cv2.fillPoly(self.image, [drawing.to_fixed_point(wheel)], (20, 20, 20), cv2.LINE_8, 3)

    def _person_shapes(self, x, depth, lift=0.0):
        k = self.scale(depth)
        bottom = self.ground_y(depth) - lift * k
        height = self.rng.uniform(1.6, 1.9)
        head = cv2.ellipse2Poly((int(x), int(bottom - (height - 0.12) * k)),
                                (max(1, int(0.11 * k)), max(1, int(0.13 * k))), 0, 0, 360, 20)
        torso = self._box(x, bottom - 0.85 * k, 0.22 * k, bottom - (height - 0.25) * k)
        legs = [self._box(x - 0.1 * k, bottom, 0.07 * k, bottom - 0.9 * k),
                self._box(x + 0.1 * k, bottom, 0.07 * k, bottom - 0.9 * k)]
        return [head.astype(float), torso] + legs

    def _person(self, x, depth):
        colour = self.rng.uniform(20, 200, 3)
        self.paint(self._person_shapes(x, depth), "person", colour)

    def _person_group(self, x, depth):
        """Several overlapping people labelled as one crowd region (no instance number)."""
        k = self.scale(depth)
        shapes = []
        for offset in np.linspace(-1.2, 1.2, int(self.rng.integers(4, 8))):
            shapes += self._person_shapes(x + offset * k * self.rng.uniform(0.3, 0.5), depth)
        self.paint(shapes, "person", self.rng.uniform(40, 150, 3), instance=False)

    def _car_group(self, x, depth):
        """A far queue of cars labelled as one crowd region."""
        k = self.scale(depth)
        for offset in (-1.0, 0.0, 1.0):
            self._car(x + offset * 1.9 * k, depth, crowd=True)

    def _cyclist(self, x, depth):
        k = self.scale(depth)
        bottom = self.ground_y(depth)
        radius = max(1, int(0.33 * k))
        thickness = max(1, int(0.06 * k))
        bike = np.zeros_like(self.label_ids)
        for dx in (-0.55, 0.55):
            cv2.circle(bike, (int(x + dx * k), int(bottom - 0.33 * k)), radius, 1, thickness)
        cv2.line(bike, (int(x - 0.55 * k), int(bottom - 0.33 * k)),
                 (int(x + 0.55 * k), int(bottom - 0.33 * k)), 1, thickness)
        cv2.line(bike, (int(x), int(bottom - 0.33 * k)), (int(x), int(bottom - 0.9 * k)), 1,
                 thickness)
        # the wheels and frame are thin wires, not fillable polygons: copy their pixels
        ys, xs = np.nonzero(bike)
        label = _label_id("bicycle")
        k_id = self.next_instance.get(label, 0)
        self.next_instance[label] = k_id + 1
        self.image[ys, xs] = (30, 30, 30)
        self.label_ids[ys, xs] = label
        self.instance_ids[ys, xs] = label * INSTANCE_OFFSET + k_id
        self.paint(self._person_shapes(x, depth, lift=0.5), "rider", self.rng.uniform(20, 200, 3))

    def _pole(self, x, depth):
        k = self.scale(depth)
        bottom = self.ground_y(depth)
        top = bottom - 4.0 * k
        self.paint([self._box(x, bottom, max(0.6, 0.06 * k), top)], "pole", (90, 90, 90))
        sign = self._box(x, top + 0.7 * k, 0.35 * k, top)
        self.paint([sign], "traffic sign", (40, 160, 220))


def generate(outdir, count, seed, split, width=1024, height=512, overwrite=False, log_every=100):
    """Writes `count` samples in Cityscapes' native layout under `outdir`.

    Sample i is rendered from `numpy.random.default_rng([seed, split index, i])`; it goes to city
    `CITIES[split][i % len]` as `<city>_<i // len:06d>_000019`.

    Args:
      outdir: dataset root (created if missing).
      count: number of samples (>= 0).
      seed: integer seed; the same seed gives byte-identical files.
      split: "train" or "val".
      width, height: image size (1024 x 512 by default; Cityscapes itself is 2048 x 1024).
      overwrite: replace existing files instead of refusing.
      log_every: log progress every this many samples.

    Returns:
      list of pathlib.Path of the leftImg8bit images written.

    Raises:
      ValueError: bad count, seed, split or size.
      FileExistsError: an output file exists and `overwrite` is False.
      NotADirectoryError: `outdir` is an existing file.
    """
    outdir = pathlib.Path(outdir)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    for name, value in (("count", count), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not (16 <= int(width) <= 8192 and 16 <= int(height) <= 8192):
        raise ValueError(f"width and height must be in 16..8192, got {width}x{height}")
    if outdir.exists() and not outdir.is_dir():
        raise NotADirectoryError(f"--outdir {outdir} exists and is not a folder")
    cities = CITIES[split]
    stems = [(cities[i % len(cities)], f"{cities[i % len(cities)]}_{i // len(cities):06d}_"
              f"{FRAME_NUMBER:06d}") for i in range(count)]
    if not overwrite:
        for city, stem in stems:
            path = outdir / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
            if path.exists():
                raise FileExistsError(
                    f"{path} already exists; choose an empty --outdir or pass --overwrite")
    colours = np.zeros((256, 1, 3), np.uint8)  # label id -> BGR colour for the _color.png
    for label in cityscapes_labels.labels:
        if 0 <= label.id < 256:
            colours[label.id, 0] = label.color[::-1]
    images = []
    start = time.perf_counter()
    for i, (city, stem) in enumerate(stems):
        rng = np.random.default_rng([seed, SPLITS.index(split), i])
        image, label_ids, instance_ids = render_sample(rng, width, height)
        image_dir = outdir / "leftImg8bit" / split / city
        gt_dir = outdir / "gtFine" / split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        colour = cv2.cvtColor(cv2.LUT(cv2.merge([label_ids] * 3), colours), cv2.COLOR_BGR2BGRA)
        _write_png(gt_dir / f"{stem}_gtFine_labelIds.png", label_ids)
        _write_png(gt_dir / f"{stem}_gtFine_instanceIds.png", instance_ids.astype(np.uint16))
        _write_png(gt_dir / f"{stem}_gtFine_color.png", colour)
        # the image last: its presence marks a complete sample
        image_path = image_dir / f"{stem}_leftImg8bit.png"
        _write_png(image_path, image)
        images.append(image_path)
        if log_every and (i + 1) % log_every == 0:
            logging.info("cityscapes: %d/%d samples, %.1f ms/sample", i + 1, count,
                         1000 * (time.perf_counter() - start) / (i + 1))
    logging.info("cityscapes: wrote %d %s samples (%dx%d) to %s in %.1f s", count, split, width,
                 height, outdir, time.perf_counter() - start)
    return images


def _write_png(path, array):
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")
