"""Synthetic Cityscapes street scenes in the dataset's native file layout and id conventions.

A scene is a street seen by a pinhole camera 1.5 m above the road, in one-point perspective:
sky, facades with windows receding to the vanishing point, road with lane markings, kerbs,
sidewalks, grass strips, trees, poles with signs and traffic lights (stuff). Thing instances are
sized by their distance and drawn from the furthest to the nearest, so near ones hide far ones:
cars, trucks and buses driving ahead or parked (seen from behind, with their side running away)
and crossing far ahead (seen from the side); people alone, in overlapping groups and crossing;
riders on bicycles and motorcycles. Near objects are cut by the frame's edge. Crowd regions
("person group", "car group") carry no instance number, and the ego vehicle's bonnet sometimes
shows. Label ids come from `cityscapesscripts.helpers.labels`, looked up by name.

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
from enet_discrim.formats import cityscapes as cityscapes_format

SPLITS = ("train", "val")
# Invented city names, so synthetic files are never mistaken for real Cityscapes ones. Two val
# cities, so that scoring one city's predictions against the whole split can be tried.
CITIES = {"train": ("synthberg", "synthstadt", "synthdorf"), "val": ("synthheim", "synthfeld")}
FRAME_NUMBER = 19  # Cityscapes annotates the 20th frame of each snippet
INSTANCE_OFFSET = cityscapes_format.INSTANCE_ID_FACTOR  # instanceIds = labelId * 1000 + k
CAMERA_HEIGHT = 1.5  # metres above the road
FAR_Z = 400.0  # metres: where the street ends in the drawing


def _label_id(name):
    return cityscapes_labels.name2label[name].id


def render_sample(rng, width=1024, height=512):
    """Renders one synthetic street scene with its ground truth.

    Args:
      rng: numpy.random.Generator; the sample is a pure function of its state.
      width, height: image size in pixels (Cityscapes itself is 2048 x 1024).

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


def _grey(rng, low, high):
    return np.array([rng.uniform(low, high)] * 3) * rng.uniform(0.92, 1.08, 3)


class _Scene:
    """A street in one-point perspective, drawn far to near into an image and two label maps.

    A pinhole camera `CAMERA_HEIGHT` above the road looks down the street: a point X metres to
    the right, Y metres above the road and Z metres ahead lands at column `vanishing_x + f X / Z`
    and row `horizon + f (CAMERA_HEIGHT - Y) / Z`. Every object is a set of planar polygons in
    that space, so sizes follow distance, and drawing objects from the furthest to the nearest
    lets near ones hide far ones in the image and in both label maps alike.
    """

    def __init__(self, rng, width, height):
        self.rng = rng
        self.width, self.height = int(width), int(height)
        self.image = np.zeros((self.height, self.width, 3), np.uint8)
        self.label_ids = np.zeros((self.height, self.width), np.uint8)
        self.instance_ids = np.zeros((self.height, self.width), np.int32)
        self.next_instance = {}
        self.horizon = self.height * rng.uniform(0.4, 0.5)
        self.vanishing_x = self.width * rng.uniform(0.42, 0.58)
        self.focal = self.width * rng.uniform(0.95, 1.25)
        # the nearest visible road, at the bottom row
        self.near_z = self.focal * CAMERA_HEIGHT / (self.height - self.horizon)
        self.road_half = rng.uniform(3.5, 7.5)  # metres from the camera to each kerb
        self.offset = rng.uniform(-0.3, 0.3) * self.road_half  # camera's offset from the centre
        self.sidewalk = rng.uniform(2.5, 5.0)

    # ----------------------------------------------------------------- geometry
    def project(self, points):
        """[N, 3] points (X right, Y up, Z ahead, metres) -> [N, 2] pixel (x, y)."""
        points = np.asarray(points, float)
        z = np.maximum(points[:, 2], 0.5)
        x = self.vanishing_x + self.focal * points[:, 0] / z
        y = self.horizon + self.focal * (CAMERA_HEIGHT - points[:, 1]) / z
        return np.stack([x, y], axis=1)

    def quad_z(self, x0, x1, y0, y1, z):
        """A rectangle facing the camera at depth z (X from x0 to x1, Y from y0 to y1)."""
        return self.project([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])

    def quad_x(self, x, z0, z1, y0, y1):
        """A rectangle along the street at lateral x (Z from z0 to z1, Y from y0 to y1)."""
        return self.project([[x, y0, z0], [x, y0, z1], [x, y1, z1], [x, y1, z0]])

    def ground(self, x0, x1, z0, z1):
        """A patch of the ground plane."""
        return self.project([[x0, 0, z0], [x1, 0, z0], [x1, 0, z1], [x0, 0, z1]])

    def ellipse(self, x, y, z, rx, ry):
        centre = self.project([[x, y, z]])[0]
        scale = self.focal / max(z, 0.5)
        poly = cv2.ellipse2Poly((int(centre[0]), int(centre[1])),
                                (max(1, int(rx * scale)), max(1, int(ry * scale))), 0, 0, 360, 15)
        return poly.astype(float)

    # ----------------------------------------------------------------- painting
    def new_instance(self, name):
        """The next instanceIds value of a thing class."""
        label = cityscapes_labels.name2label[name]
        k = self.next_instance.get(label.id, 0)
        self.next_instance[label.id] = k + 1
        return label.id * INSTANCE_OFFSET + k

    def paint(self, polygons, name, colour, value=None):
        """Fills polygons in the image and both label maps.

        `value` is the instanceIds value to write: a `new_instance(name)` for a thing instance,
        None for stuff and for crowd regions of thing classes (the bare label id).
        """
        label = cityscapes_labels.name2label[name]
        fixed = [drawing.to_fixed_point(np.clip(p, -4 * self.width, 5 * self.width))
                 for p in polygons if len(p) >= 3]
        if not fixed:
            return
        cv2.fillPoly(self.image, fixed, drawing.cv_colour(colour), cv2.LINE_8, 3)
        cv2.fillPoly(self.label_ids, fixed, int(label.id), cv2.LINE_8, 3)
        cv2.fillPoly(self.instance_ids, fixed, int(label.id if value is None else value),
                     cv2.LINE_8, 3)

    def detail(self, polygons, colour):
        """Draws into the image only: windows, wheels and lights inside an object's silhouette."""
        fixed = [drawing.to_fixed_point(np.clip(p, -4 * self.width, 5 * self.width))
                 for p in polygons if len(p) >= 3]
        cv2.fillPoly(self.image, fixed, drawing.cv_colour(colour), cv2.LINE_8, 3)

    # ----------------------------------------------------------------- the scene
    def draw(self):
        rng = self.rng
        w, h = self.width, self.height
        sky = np.array([rng.uniform(180, 245), rng.uniform(150, 205), rng.uniform(110, 175)])
        self.paint([np.array([[0, 0], [w, 0], [w, h], [0, h]], float)], "sky", sky)
        left_kerb = -self.road_half - self.offset
        right_kerb = self.road_half - self.offset
        self._ground(left_kerb, right_kerb)
        objects = []  # (depth for ordering, callable)
        for side, kerb in ((-1, left_kerb), (1, right_kerb)):
            facade = kerb + side * self.sidewalk
            objects += self._buildings(side, facade)
            objects += self._street_furniture(side, kerb)
            objects += self._parked_cars(side, kerb)
            objects += self._pedestrians(side, kerb, facade)
        objects += self._traffic(left_kerb, right_kerb)
        objects += self._crowds(left_kerb, right_kerb)
        for _, draw in sorted(objects, key=lambda item: -item[0]):
            draw()
        if rng.random() < 0.6:
            top = h * rng.uniform(0.86, 0.93)
            bonnet = np.array([[0, h], [0, top + 0.05 * h], [w * 0.3, top], [w * 0.7, top],
                               [w, top + 0.05 * h], [w, h]], float)
            self.paint([bonnet], "ego vehicle", _grey(rng, 20, 80))

    def _ground(self, left_kerb, right_kerb):
        rng = self.rng
        far = FAR_Z
        self.paint([self.ground(-200, 200, 0.5, far)], "sidewalk", _grey(rng, 125, 175))
        road = _grey(rng, 75, 115)
        self.paint([self.ground(left_kerb, right_kerb, 0.5, far)], "road", road)
        # lane markings are road pixels in Cityscapes
        lane_width = rng.uniform(3.0, 3.6)
        paint = np.array([rng.uniform(190, 235)] * 3)
        for x in np.arange(left_kerb + lane_width, right_kerb - 1.0, lane_width):
            for z in np.arange(rng.uniform(0, 9), far / 4, 9.0):
                self.detail([self.ground(x - 0.07, x + 0.07, z, z + 3.0)], paint)
        if rng.random() < 0.5:  # a crossing
            z0 = rng.uniform(12, 40)
            for x in np.arange(left_kerb + 0.3, right_kerb - 0.3, 1.0):
                self.detail([self.ground(x, x + 0.5, z0, z0 + 3.0)], paint)
        kerb_colour = _grey(rng, 150, 200)
        for kerb, side in ((left_kerb, -1), (right_kerb, 1)):
            self.paint([self.quad_x(kerb, 0.5, far, 0, 0.12)], "sidewalk", kerb_colour)
            if rng.random() < 0.3:  # a strip of grass between kerb and footpath
                x0, x1 = sorted((kerb + side * 0.3, kerb + side * 1.3))
                self.paint([self.ground(x0, x1, 0.5, far)], "terrain",
                           (rng.uniform(40, 80), rng.uniform(110, 150), rng.uniform(70, 110)))

    def _buildings(self, side, facade):
        """Facades along the street, each a plane at lateral `facade`, from near to the far end."""
        rng = self.rng
        objects = []
        z = rng.uniform(0.5, 4.0)
        while z < FAR_Z * 0.5:
            length = rng.uniform(8, 30)
            height = rng.uniform(6, 25)
            colour = _grey(rng, 70, 210) * np.array([1.0, rng.uniform(0.9, 1.05), rng.uniform(0.85, 1.1)])
            setback = side * rng.uniform(0, 1.5)
            objects.append((z + length, self._building_fn(facade + setback, z, z + length, height,
                                                          colour)))
            z += length + (rng.uniform(2, 10) if rng.random() < 0.2 else 0)
        return objects

    def _building_fn(self, x, z0, z1, height, colour):
        rng = self.rng
        floor = rng.uniform(2.8, 3.6)
        window_w = rng.uniform(1.0, 1.8)
        spacing = window_w + rng.uniform(1.0, 2.5)
        glass = colour * rng.uniform(0.35, 0.6)

        def draw():
            # the end wall facing the camera shows when the next building is set back or absent
            outward = 30.0 if x > 0 else -30.0
            self.paint([self.quad_z(min(x, x + outward), max(x, x + outward), 0, height, z0)],
                       "building", colour * 0.8)
            self.paint([self.quad_x(x, z0, z1, 0, height)], "building", colour)
            for y in np.arange(floor * 0.9, height - 1.0, floor):
                for z in np.arange(z0 + 1.0, z1 - window_w, spacing):
                    if z > FAR_Z * 0.25:
                        break
                    self.detail([self.quad_x(x, z, z + window_w, y, y + 1.3)], glass)

        return draw

    def _street_furniture(self, side, kerb):
        """Poles with traffic signs or lights, and trees, along the kerb."""
        rng = self.rng
        objects = []
        for _ in range(int(rng.integers(1, 5))):
            z = rng.uniform(self.near_z * 0.8, 60)
            x = kerb + side * rng.uniform(0.4, 1.0)
            objects.append((z, self._pole_fn(x, z)))
        for _ in range(int(rng.integers(0, 5))):
            z = rng.uniform(self.near_z, 80)
            x = kerb + side * rng.uniform(0.8, 2.0)
            objects.append((z, self._tree_fn(x, z)))
        return objects

    def _pole_fn(self, x, z):
        rng = self.rng
        height = rng.uniform(3.0, 6.0)
        radius = rng.uniform(0.06, 0.12)
        light = rng.random() < 0.4

        def draw():
            pole = self.quad_z(x - radius, x + radius, 0, height, z)
            pole[:, 0] += np.array([-0.5, 0.5, 0.5, -0.5])  # at least a pixel wide
            self.paint([pole], "pole", _grey(rng, 70, 120))
            if light:
                self.paint([self.quad_z(x - 0.2, x + 0.2, height - 1.0, height, z)],
                           "traffic light", (30, 30, 30))
                lamp = self.ellipse(x, height - 0.25 - 0.3 * rng.integers(0, 3), z, 0.09, 0.09)
                self.detail([lamp], [(60, 60, 230), (60, 200, 230), (60, 220, 90)][rng.integers(3)])
            else:
                self.paint([self.quad_z(x - 0.35, x + 0.35, height - 0.7, height, z)],
                           "traffic sign", [(40, 160, 220), (220, 60, 40), (230, 230, 230)]
                           [rng.integers(3)])

        return draw

    def _tree_fn(self, x, z):
        rng = self.rng
        crown = rng.uniform(1.2, 2.8)
        trunk = rng.uniform(1.8, 3.0)
        leaf = (rng.uniform(30, 70), rng.uniform(90, 150), rng.uniform(40, 90))

        def draw():
            self.paint([self.quad_z(x - 0.12, x + 0.12, 0, trunk + crown, z)], "vegetation",
                       (40, 55, 70))
            self.paint([self.ellipse(x, trunk + crown, z, crown, crown * 0.9)], "vegetation", leaf)

        return draw

    def _parked_cars(self, side, kerb):
        """Cars parked along the kerb, seen from behind and along their side, near ones cut by
        the frame's edge."""
        rng = self.rng
        objects = []
        if rng.random() < 0.2:
            return objects
        z = rng.uniform(self.near_z * 0.7, self.near_z * 2.5)
        while z < 70:
            kind = rng.choice(["car", "car", "car", "car", "truck", "bus"])
            length, width = {"car": (4.5, 1.8), "truck": (7.0, 2.4), "bus": (11.0, 2.5)}[kind]
            x = kerb - side * (width / 2 + rng.uniform(0.1, 0.4))
            if rng.random() < 0.75:
                objects.append((z, self._vehicle_fn(kind, x, z, length, width, behind=True)))
            z += length + rng.uniform(0.5, 6.0)
        return objects

    def _traffic(self, left_kerb, right_kerb):
        """Vehicles driving in the lanes (from behind), crossing far ahead (from the side), and
        cyclists and motorcyclists."""
        rng = self.rng
        objects = []
        for _ in range(int(rng.integers(1, 6))):
            kind = rng.choice(["car", "car", "car", "truck", "bus"])
            length, width = {"car": (4.5, 1.8), "truck": (7.0, 2.4), "bus": (11.0, 2.5)}[kind]
            x = rng.uniform(left_kerb + 2.5, right_kerb - 2.5) if right_kerb - left_kerb > 5 else 0.0
            z = rng.uniform(self.near_z * 1.3, 80)
            objects.append((z, self._vehicle_fn(kind, x, z, length, width, behind=True)))
        if rng.random() < 0.5:  # a cross street with traffic seen from the side
            z = rng.uniform(20, 55)
            for _ in range(int(rng.integers(1, 3))):
                kind = rng.choice(["car", "car", "truck", "bus"])
                length, width = {"car": (4.5, 1.8), "truck": (7.0, 2.4), "bus": (11.0, 2.5)}[kind]
                x = rng.uniform(left_kerb - 3, right_kerb + 3)
                objects.append((z, self._vehicle_fn(kind, x, z, length, width, behind=False)))
        for _ in range(int(rng.integers(0, 4))):
            vehicle = "bicycle" if rng.random() < 0.6 else "motorcycle"
            behind = rng.random() < 0.5
            if behind:
                x = rng.uniform(left_kerb + 0.6, right_kerb - 0.6)
            else:
                x = rng.uniform(left_kerb - 1.0, right_kerb + 1.0)
            z = rng.uniform(self.near_z * 1.1, 45)
            objects.append((z, self._two_wheeler_fn(vehicle, x, z, behind)))
        return objects

    def _vehicle_fn(self, kind, x, z, length, width, behind):
        """A car, truck or bus; `behind`: its rear at depth z (with the side facing the camera's
        axis along the street), else its whole side at depth z, centred on x."""
        rng = self.rng
        colour = rng.uniform(20, 230, 3)
        if kind == "bus":
            colour = [(40, 60, 200), (200, 180, 40), (230, 230, 230), (40, 150, 60)][rng.integers(4)]
            colour = np.array(colour, float) * rng.uniform(0.85, 1.1)
        height = {"car": rng.uniform(1.4, 1.6), "truck": rng.uniform(3.0, 3.6),
                  "bus": rng.uniform(2.9, 3.3)}[kind]
        facing = rng.random() < 0.5  # side view: front to the left or to the right

        def draw():
            value = self.new_instance(kind)
            if behind:
                self._vehicle_behind(kind, x, z, length, width, height, colour, value)
            else:
                self._vehicle_side(kind, x, z, length, height, colour, value, facing)

        return draw

    def _vehicle_behind(self, kind, x, z, length, width, height, colour, value):
        x0, x1 = x - width / 2, x + width / 2
        # the side nearer the street's axis shows, running away to the vanishing point
        side_x = x0 if x > 0 else x1
        dark = colour * 0.75
        if kind == "car":
            body = [self.quad_x(side_x, z, z + length, 0.25, 0.95),
                    self.quad_x(side_x * 0.9 + x * 0.1, z + 1.0, z + length - 0.6, 0.95, height)]
            rear = [self.quad_z(x0, x1, 0.25, 0.95, z),
                    self.quad_z(x0 + 0.2, x1 - 0.2, 0.95, height, z + 0.6)]
        else:
            body = [self.quad_x(side_x, z, z + length, 0.35, height)]
            rear = [self.quad_z(x0, x1, 0.35, height, z)]
        wheels = [self.ellipse(side_x, 0.33, z + 0.8, 0.1, 0.33),
                  self.ellipse(side_x, 0.33, z + length - 0.9, 0.1, 0.33),
                  self.quad_z(x0 + 0.1, x0 + 0.35, 0, 0.4, z + 0.3),
                  self.quad_z(x1 - 0.35, x1 - 0.1, 0, 0.4, z + 0.3)]
        self.paint(wheels, kind, (25, 25, 25), value)
        self.paint(body, kind, dark, value)
        self.paint(rear, kind, colour, value)
        glass = (70, 60, 50)
        if kind == "car":
            self.detail([self.quad_z(x0 + 0.3, x1 - 0.3, 1.0, height - 0.08, z + 0.6)], glass)
        elif kind == "bus":
            self.detail([self.quad_z(x0 + 0.2, x1 - 0.2, 1.6, height - 0.3, z)], glass)
            for zz in np.arange(z + 1.0, z + length - 1.0, 1.6):
                self.detail([self.quad_x(side_x, zz, zz + 1.2, 1.4, height - 0.4)], glass)
        for lx in (x0 + 0.1, x1 - 0.4):
            self.detail([self.quad_z(lx, lx + 0.3, 0.7, 0.9, z)], (40, 40, 200))
        self.detail([self.quad_z(x - 0.25, x + 0.25, 0.4, 0.55, z)], (200, 200, 200))

    def _vehicle_side(self, kind, x, z, length, height, colour, value, facing):
        x0 = x - length / 2
        sign = 1 if facing else -1
        glass = (70, 60, 50)
        if kind == "car":
            cabin = np.array([[0.2, 0.95], [0.35, height], [0.75, height], [0.9, 0.95]])
            if not facing:
                cabin[:, 0] = 1 - cabin[:, 0]
            cabin_poly = self.project([[x0 + a * length, y, z] for a, y in cabin])
            shapes = [self.quad_z(x0, x0 + length, 0.25, 0.95, z), cabin_poly]
        elif kind == "truck":
            cab_len = 2.2
            cab_x = x0 + (length - cab_len if facing else 0)
            box = (x0, x0 + length - cab_len - 0.2) if facing else (x0 + cab_len + 0.2,
                                                                       x0 + length)
            shapes = [self.quad_z(cab_x, cab_x + cab_len, 0.4, height * 0.8, z),
                      self.quad_z(box[0], box[1], 0.5, height, z)]
        else:
            shapes = [self.quad_z(x0, x0 + length, 0.35, height, z)]
        wheels = [self.ellipse(x0 + 0.9, 0.35, z, 0.35, 0.35),
                  self.ellipse(x0 + length - 0.9, 0.35, z, 0.35, 0.35)]
        self.paint(shapes + wheels, kind, colour, value)
        self.detail(wheels, (25, 25, 25))
        if kind == "car":
            inner = self.project([[x0 + a * length, y, z] for a, y in
                                  (cabin * [1, 1] + [[0.03 * sign, 0.04], [0.03 * sign, -0.08],
                                                     [-0.03 * sign, -0.08], [-0.03 * sign, 0.04]])])
            self.detail([inner], glass)
        elif kind == "bus":
            for xx in np.arange(x0 + 0.6, x0 + length - 1.0, 1.5):
                self.detail([self.quad_z(xx, xx + 1.2, 1.4, height - 0.4, z)], glass)
        else:
            cab_x = x0 + (length - 2.2 if facing else 0)
            self.detail([self.quad_z(cab_x + 0.3, cab_x + 1.9, 1.6, height * 0.75, z)], glass)

    def _person_shapes(self, x, z, lift=0.0, height=None, legs_apart=None):
        rng = self.rng
        height = rng.uniform(1.55, 1.9) if height is None else height
        apart = rng.uniform(0.0, 0.18) if legs_apart is None else legs_apart
        head = self.ellipse(x, lift + height - 0.12, z, 0.1, 0.12)
        torso = self.quad_z(x - 0.2, x + 0.2, lift + 0.85, lift + height - 0.22, z)
        legs = [self.project([[x - 0.15, lift + 0.9, z], [x - 0.01, lift + 0.9, z],
                              [x - 0.04 - apart, lift, z], [x - 0.16 - apart, lift, z]]),
                self.project([[x + 0.01, lift + 0.9, z], [x + 0.15, lift + 0.9, z],
                              [x + 0.16 + apart, lift, z], [x + 0.04 + apart, lift, z]])]
        arms = [self.quad_z(x - 0.27, x - 0.19, lift + 0.8, lift + height - 0.25, z),
                self.quad_z(x + 0.19, x + 0.27, lift + 0.8, lift + height - 0.25, z)]
        return [head, torso] + legs + arms

    def _person_fn(self, x, z, name="person", lift=0.0):
        rng = self.rng
        clothes = rng.uniform(20, 200, 3)
        trousers = rng.uniform(20, 120, 3)
        skin = np.array([rng.uniform(60, 160), rng.uniform(90, 180), rng.uniform(140, 220)])

        def draw():
            shapes = self._person_shapes(x, z, lift)
            value = self.new_instance(name)
            self.paint(shapes, name, clothes, value)
            self.detail(shapes[2:4], trousers)
            self.detail(shapes[:1], skin)

        return draw

    def _pedestrians(self, side, kerb, facade):
        """People on the sidewalk, alone and in groups of 2-5 that overlap, and some crossing."""
        rng = self.rng
        objects = []
        near, far = sorted((kerb + side * 0.5, facade - side * 0.5))
        for _ in range(int(rng.integers(0, 4))):
            x = rng.uniform(near, far)
            z = rng.uniform(self.near_z * 0.9, 50)
            objects.append((z, self._person_fn(x, z)))
        for _ in range(int(rng.integers(0, 3))):  # groups: separate instances, overlapping
            x = rng.uniform(near, far)
            z = rng.uniform(self.near_z * 1.2, 40)
            for _ in range(int(rng.integers(2, 6))):
                px = x + rng.uniform(-0.8, 0.8)
                pz = z + rng.uniform(-1.5, 1.5)
                objects.append((pz, self._person_fn(px, pz)))
        if side == 1 and rng.random() < 0.4:  # crossing the road
            z = rng.uniform(self.near_z * 1.5, 30)
            for _ in range(int(rng.integers(1, 4))):
                x = rng.uniform(-self.road_half, self.road_half) - self.offset
                objects.append((z, self._person_fn(x, z + rng.uniform(-0.5, 0.5))))
        return objects

    def _two_wheeler_fn(self, vehicle, x, z, behind):
        rng = self.rng
        frame = rng.uniform(20, 200, 3) if vehicle == "motorcycle" else (35, 35, 35)
        facing = 1 if rng.random() < 0.5 else -1

        def draw():
            bike_value = self.new_instance(vehicle)
            if behind:
                wheel = self.quad_z(x - 0.05, x + 0.05, 0, 0.66, z + 0.15)
                body_w = 0.2 if vehicle == "motorcycle" else 0.04
                body = self.quad_z(x - body_w, x + body_w, 0.3, 0.9, z)
                bars = self.quad_z(x - 0.35, x + 0.35, 0.95, 1.02, z + 0.5)
                self.paint([wheel, body, bars], vehicle, frame, bike_value)
                self.detail([wheel], (25, 25, 25))
                rider_x, rider_z = x, z + 0.3
            else:
                r = 0.33
                centres = (x - 0.55, x + 0.55)
                mask = np.zeros_like(self.label_ids)
                scale = self.focal / z
                thickness = max(1, int((0.12 if vehicle == "motorcycle" else 0.05) * scale))
                for cx in centres:
                    c = self.project([[cx, r, z]])[0]
                    cv2.circle(mask, (int(c[0]), int(c[1])), max(1, int(r * scale)), 1, thickness)
                if vehicle == "motorcycle":
                    body = self.project([[x - 0.45, 0.45, z], [x + 0.45, 0.45, z],
                                         [x + 0.3 * facing, 0.85, z], [x - 0.4 * facing, 0.8, z]])
                    cv2.fillPoly(mask, [drawing.to_fixed_point(body)], 1, cv2.LINE_8, 3)
                else:
                    for a, b in (((x - 0.55, r), (x, 0.9)), ((x, 0.9), (x + 0.55, r)),
                                 ((x - 0.55, r), (x + 0.55, r)), ((x, 0.9), (x + 0.45 * facing, 1.0))):
                        pa, pb = self.project([[a[0], a[1], z], [b[0], b[1], z]])
                        cv2.line(mask, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), 1,
                                 thickness)
                # wheels and frames are thin wires, not fillable polygons: copy their pixels
                ys, xs = np.nonzero(mask)
                self.image[ys, xs] = drawing.cv_colour(frame)[:3] if vehicle == "motorcycle" \
                    else (30, 30, 30)
                self.label_ids[ys, xs] = _label_id(vehicle)
                self.instance_ids[ys, xs] = bike_value
                rider_x, rider_z = x, z - 0.05
            rider = self._person_shapes(rider_x, rider_z, lift=0.55, height=1.2, legs_apart=0.1)
            self.paint(rider, "rider", rng.uniform(20, 200, 3), self.new_instance("rider"))

        return draw

    def _crowds(self, left_kerb, right_kerb):
        """Crowd regions: thing pixels that carry no instance number."""
        rng = self.rng
        objects = []
        side = rng.choice([-1, 1])
        kerb = right_kerb if side > 0 else left_kerb
        x = kerb + side * rng.uniform(1.0, self.sidewalk - 0.5)
        z = rng.uniform(20, 50)

        def people(x=x, z=z):
            shapes = []
            for offset in np.linspace(-1.2, 1.2, int(rng.integers(4, 9))):
                shapes += self._person_shapes(x + offset * rng.uniform(0.3, 0.6),
                                              z + rng.uniform(-0.5, 0.5))
            self.paint(shapes, "person", rng.uniform(40, 150, 3))

        objects.append((z, people))
        if rng.random() < 0.4:
            z = rng.uniform(70, 120)
            x = rng.uniform(left_kerb + 1, right_kerb - 1)

            def cars(x=x, z=z):
                for offset in (-2.1, 0.0, 2.1):
                    self.paint([self.quad_z(x + offset - 0.9, x + offset + 0.9, 0.2, 1.5, z)],
                               "car", rng.uniform(40, 200, 3))

            objects.append((z, cars))
        return objects


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
            path = outdir / cityscapes_format.IMAGES_FOLDER / split / city / (
                stem + cityscapes_format.IMAGE_SUFFIX)
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
        image_dir = outdir / cityscapes_format.IMAGES_FOLDER / split / city
        gt_dir = outdir / cityscapes_format.GROUND_TRUTH_FOLDER / split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        colour = cv2.cvtColor(cv2.LUT(cv2.merge([label_ids] * 3), colours), cv2.COLOR_BGR2BGRA)
        _write_png(gt_dir / (stem + cityscapes_format.LABEL_IDS_SUFFIX), label_ids)
        _write_png(gt_dir / (stem + cityscapes_format.INSTANCE_IDS_SUFFIX),
                   instance_ids.astype(np.uint16))
        _write_png(gt_dir / (stem + cityscapes_format.COLOR_SUFFIX), colour)
        # the image last: its presence marks a complete sample
        image_path = image_dir / (stem + cityscapes_format.IMAGE_SUFFIX)
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
