"""Geometry builders of the moving things in the procedural world: cars, trucks, buses, motorcycles, bicycles,
riders and pedestrians, as blocky boxes with light and window decals.

Plain functions that append primitives to a :class:`PrimitiveBuilder`; where and when an agent appears, and its
instance id, is decided by :class:`.scene.World`. Sizes and colours come from the agent's slot: a
:class:`SlotDraws` that replays that slot's fixed random numbers.
"""

# The builders take the geometry of one object positionally by design (PLR0917).
# ruff: noqa: PLR0917

from __future__ import annotations

import math

from sim2real.core.labels import TRAIN_ID

from .layout import EGO_D
from .palette import DARK_METAL, GLASS, TIRE
from .primitives import Color, Material, PrimitiveBuilder

__all__ = ["SlotDraws", "bus", "car", "person", "truck", "two_wheeler"]

CAR, TRUCK, BUS = TRAIN_ID["car"], TRAIN_ID["truck"], TRAIN_ID["bus"]


class SlotDraws:
    """Replays one slot's fixed list of uniform [0, 1) numbers with the ``random.Random`` methods that the world
    and the agent builders use."""

    __slots__ = ("_i", "_values")

    def __init__(self, values: list[float]) -> None:
        self._values = values
        self._i = 0

    def random(self) -> float:
        value = self._values[self._i]
        self._i += 1
        return value

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def choice(self, seq: tuple[Color, ...]) -> Color:
        return seq[int(self.random() * len(seq))]


def _vehicle_lights(b: PrimitiveBuilder, g: int, inst: int, cls: int, s: float, d: float, direction: int,
                    length: float, width: float, y: float) -> None:
    # headlights on the front face, tail lights on the rear face, as decals 2 cm proud of the face
    for end, mat, color in ((1, Material.HEADLIGHT, (0.92, 0.92, 0.85)), (-1, Material.TAILLIGHT,
                                                                                (0.70, 0.05, 0.05))):
        face_dir = end * direction
        sf = s + face_dir * (length / 2 + 0.02)
        for lat in (-1, 1):
            dc = d + lat * (width / 2 - 0.3)
            verts = ((sf, dc - 0.18, y), (sf, dc + 0.18, y), (sf, dc + 0.18, y + 0.16),
                     (sf, dc - 0.18, y + 0.16))
            b.quad(g, 5, verts, (float(face_dir), 0.0, 0.0), cls, inst, color, mat)


def car(b: PrimitiveBuilder, rng: SlotDraws, inst: int, s: float, d: float, direction: int, paint: Color,
        far: bool = False) -> None:
    """A car centred at (s, d) driving towards ``direction`` (+1 = +s); ``far``: without wheels."""
    length, width, height = rng.uniform(3.9, 4.9), rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.6)
    h2 = length / 2
    g = b.group(s - h2, s + h2, d - width / 2, d + width / 2)
    for axle in () if far else (-1, 1):
        sa = s + axle * (h2 - 0.85)
        b.box(g, 0, sa - 0.32, sa + 0.32, d - width / 2 + 0.05, d + width / 2 - 0.05, 0.0, 0.55, CAR, inst,
              TIRE)
    b.box(g, 1, s - h2, s + h2, d - width / 2, d + width / 2, 0.28, 0.95, CAR, inst, paint)
    front, back = (h2 - 1.1, -h2 + 0.6) if direction > 0 else (-h2 + 1.1, h2 - 0.6)
    b.box(g, 2, s + back, s + front, d - width / 2 + 0.1, d + width / 2 - 0.1, 0.95, height, CAR, inst,
          (paint[0] * 0.25 + 0.05, paint[1] * 0.25 + 0.06, paint[2] * 0.25 + 0.08), Material.GLASS)
    _vehicle_lights(b, g, inst, CAR, s, d, direction, length, width, 0.62)


def truck(b: PrimitiveBuilder, rng: SlotDraws, inst: int, s: float, d: float, direction: int,
          paint: Color) -> None:
    """A truck centred at (s, d): cab in ``paint`` at the front, cargo box of a random colour behind it."""
    length, width = rng.uniform(7.5, 10.0), 2.45
    h2 = length / 2
    g = b.group(s - h2, s + h2, d - width / 2, d + width / 2)
    for axle in (-0.75, 0.75):
        sa = s + axle * h2
        b.box(g, 0, sa - 0.5, sa + 0.5, d - width / 2 + 0.05, d + width / 2 - 0.05, 0.0, 0.95, TRUCK, inst,
              TIRE)
    cab_front = s + direction * h2
    cab_back = cab_front - direction * 2.2
    b.box(g, 1, cab_back, cab_front, d - width / 2 + 0.05, d + width / 2 - 0.05, 0.5, 3.0, TRUCK, inst,
          paint)
    cargo = rng.choice(((0.92, 0.92, 0.90), (0.85, 0.45, 0.10), (0.55, 0.58, 0.60)))
    b.box(g, 2, cab_back - direction * 0.3, s - direction * h2, d - width / 2, d + width / 2, 0.6,
          rng.uniform(3.3, 3.9), TRUCK, inst, cargo)
    # windscreen decal
    sf = cab_front + direction * 0.02
    b.quad(g, 3, ((sf, d - 1.0, 1.9), (sf, d + 1.0, 1.9), (sf, d + 1.0, 2.8), (sf, d - 1.0, 2.8)),
           (float(direction), 0.0, 0.0), TRUCK, inst, GLASS, Material.GLASS)
    _vehicle_lights(b, g, inst, TRUCK, s, d, direction, length, width, 0.8)


def bus(b: PrimitiveBuilder, inst: int, s: float, d: float, direction: int, paint: Color) -> None:
    """An 11.5 m bus centred at (s, d) with window bands on both sides and both ends."""
    length, width = 11.5, 2.55
    h2, w2 = length / 2, width / 2
    g = b.group(s - h2, s + h2, d - w2, d + w2)
    for axle in (-0.6, 0.6):
        sa = s + axle * h2
        b.box(g, 0, sa - 0.5, sa + 0.5, d - w2 + 0.05, d + w2 - 0.05, 0.0, 1.0, BUS, inst, TIRE)
    b.box(g, 1, s - h2, s + h2, d - w2, d + w2, 0.35, 3.1, BUS, inst, paint)
    for lat in (-1, 1):  # window bands on both sides
        dw = d + lat * (w2 + 0.02)
        b.quad(g, 2, ((s - h2 + 0.5, dw, 1.4), (s + h2 - 0.5, dw, 1.4), (s + h2 - 0.5, dw, 2.5),
                      (s - h2 + 0.5, dw, 2.5)), (0.0, float(lat), 0.0), BUS, inst, GLASS, Material.GLASS)
    for end in (-1, 1):
        sf = s + end * (h2 + 0.02)
        b.quad(g, 2, ((sf, d - w2 + 0.2, 1.3), (sf, d + w2 - 0.2, 1.3), (sf, d + w2 - 0.2, 2.7),
                      (sf, d - w2 + 0.2, 2.7)), (float(end), 0.0, 0.0), BUS, inst, GLASS, Material.GLASS)
    _vehicle_lights(b, g, inst, BUS, s, d, direction, length, width, 0.7)


def two_wheeler(b: PrimitiveBuilder, g: int, inst: int, cls: int, s: float, d: float, direction: int,
                paint: Color, motor: bool) -> None:
    """A motorcycle (``motor``, with a headlight) or a bicycle centred at (s, d), into group ``g``."""
    r = 0.33 if motor else 0.34
    half_track = 0.7 if motor else 0.55
    wd = 0.07 if motor else 0.03
    for end in (-1, 1):
        sw = s + end * half_track
        b.box(g, 0, sw - r, sw + r, d - wd, d + wd, 0.0, 2 * r, cls, inst, TIRE)
    if motor:
        b.box(g, 1, s - 0.6, s + 0.6, d - 0.24, d + 0.24, 0.35, 0.9, cls, inst, paint)
        b.box(g, 1, s + direction * 0.55, s + direction * 0.75, d - 0.35, d + 0.35, 0.95, 1.05, cls, inst,
              DARK_METAL)
        sf = s + direction * 0.62
        b.quad(g, 2, ((sf, d - 0.1, 0.75), (sf, d + 0.1, 0.75), (sf, d + 0.1, 0.9), (sf, d - 0.1, 0.9)),
               (float(direction), 0.0, 0.0), cls, inst, (0.92, 0.92, 0.85), Material.HEADLIGHT)
    else:
        b.box(g, 1, s - 0.45, s + 0.45, d - 0.03, d + 0.03, 0.45, 0.6, cls, inst, paint)
        b.box(g, 1, s + direction * 0.4, s + direction * 0.5, d - 0.03, d + 0.03, 0.45, 1.0, cls, inst,
              paint)
        b.box(g, 2, s + direction * 0.42, s + direction * 0.5, d - 0.3, d + 0.3, 0.95, 1.02, cls, inst,
              DARK_METAL)


def person(b: PrimitiveBuilder, g: int, order: int, inst: int, cls: int, s: float, d: float,
           direction: int, height: float, phase: float, shirt: Color, pants: Color, skin: Color,
           seated: float = 0.0, far: bool = False) -> None:
    """A blocky person facing ``direction`` (+1 = +s). ``seated`` > 0: hip height of a rider.

    ``far``: level of detail for distant walkers, one body box and the head.
    """
    near_side = 1 if d < EGO_D else -1  # lateral side that faces the camera
    head = 0.13 * height
    torso = 0.30 * height
    leg = height - head - torso - 0.02
    if far:
        b.box(g, order, s - 0.13, s + 0.13, d - 0.22, d + 0.22, 0.0, leg + torso, cls, inst, shirt)
        top = leg + torso + head + 0.02
        b.box(g, order + 1, s - 0.1, s + 0.1, d - 0.09, d + 0.09, top - head, top, cls, inst, skin)
        return
    hip = seated if seated > 0 else leg
    swing = 0.0 if seated > 0 else 0.2 * math.sin(phase)
    for lat in (-1, 1):
        o = order + (1 if lat == near_side else 0)
        ls = s + lat * swing
        if seated > 0:  # legs hang down from the saddle towards the pedals
            b.box(g, o, s - 0.08, s + 0.12 * direction + 0.08 * direction, d + lat * 0.2 - 0.07,
                  d + lat * 0.2 + 0.07, 0.3, hip, cls, inst, pants)
        else:
            b.box(g, o, ls - 0.08, ls + 0.08, d + lat * 0.11 - 0.07, d + lat * 0.11 + 0.07, 0.0, hip, cls,
                  inst, pants)
    lean = 0.12 * direction if seated > 0 else 0.0
    b.box(g, order + 2, s + lean - 0.13, s + lean + 0.13, d - 0.21, d + 0.21, hip, hip + torso, cls, inst,
          shirt)
    for lat in (-1, 1):
        o = order + (3 if lat == near_side else 1)
        if seated > 0:
            a0, a1 = s + lean, s + lean + direction * 0.45
        else:
            a0, a1 = s - lat * swing - 0.06, s - lat * swing + 0.06
        b.box(g, o, a0, a1, d + lat * 0.215 - 0.06 + lat * 0.03, d + lat * 0.215 + 0.06 + lat * 0.03,
              hip + 0.12 if seated > 0 else hip + 0.05, hip + torso - 0.03, cls, inst, shirt)
    top = hip + torso + head + 0.02
    b.box(g, order + 4, s + lean - 0.1, s + lean + 0.1, d - 0.09, d + 0.09, top - head, top, cls, inst, skin)
