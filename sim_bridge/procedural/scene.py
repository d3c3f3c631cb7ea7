"""World model of the procedural simulator: a gently curving road, generated in segments from the seed.

Everything is a pure function of ``(config, frame index)``:

* the road centre line ``x = centre(s)`` is a sum of two long sinusoids whose amplitudes and phases come
  from the seed;
* static content (buildings, trees, fences, walls, street lamps, signs, traffic lights, crosswalks)
  is generated per 40 m segment from ``random.Random(key(seed, segment))`` and cached;
* moving things live on *slot lattices*: lane ``j`` has slots ``n`` spaced along the road that move
  at the lane's speed; a slot's occupancy, object kind, size, colour and small speed oscillation come
  from ``random.Random(key(seed, lane, n))``. So any frame can be built directly (random access) and
  two simulators with the same seed agree bit for bit.

Instance ids are derived from (lane, slot) or (segment, index), hence stable for as long as an object
is visible; id ranges never overlap (see ``*_BASE``). Stuff (road, sky, building, vegetation,
terrain, wall, fence, sidewalk) has instance 0; poles, signs and traffic lights carry ids.
"""

# Deterministic procedural content, not cryptography (S311); the private builders take the geometry of
# one object positionally by design (PLR0917).
# ruff: noqa: S311, PLR0917

from __future__ import annotations

import math
import random
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from sim2real.core.labels import TRAIN_ID

from .config import SimConfig
from .primitives import (
    FACE_BACK,
    FACE_FRONT,
    FACE_LEFT,
    FACE_RIGHT,
    LAYER_BACKGROUND,
    LAYER_GROUND,
    LAYER_MARKINGS,
    Color,
    Material,
    PrimitiveBuilder,
    Primitives,
)

__all__ = ["EGO_D", "Road", "Scene", "World"]

# --- road layout (lateral offsets d, metres) ---------------------------------------------------
LANE_WIDTH = 3.5
CAR_LANES_HALF = 7.0  # car lanes span [-7, 7]
ROAD_HALF = 8.5  # plus a 1.5 m bike lane each side
SIDEWALK_OUT = 12.0
TERRAIN_OUT = 45.0
BUILDING_LINE = 15.0
EGO_D = 1.75  # ego drives in the inner right lane
SEGMENT_LEN = 40.0

# --- instance id ranges (uint16) -----------------------------------------------------------------
VEHICLE_BASE = 1  # 4 lanes x 2000 slots -> 1..8000
CYCLIST_BASE = 8001  # 2 bike lanes x 1000 slots x (bicycle, rider) -> 8001..12000
MOTO_RIDER_BASE = 12001  # 4 lanes x 1000 -> 12001..16000
STATIC_BASE = 16001  # 100 segments (mod) x 400 -> 16001..56000
PEDESTRIAN_BASE = 56001  # 4 bands x 2000 -> 56001..64000
STATIC_PER_SEGMENT = 400

C = TRAIN_ID
ROAD, SIDEWALK, BUILDING, WALL, FENCE = C["road"], C["sidewalk"], C["building"], C["wall"], C["fence"]
POLE, LIGHT, SIGN, VEGETATION, TERRAIN = C["pole"], C["traffic light"], C["traffic sign"], C["vegetation"], C[
    "terrain"]
PERSON, RIDER, CAR, TRUCK, BUS = C["person"], C["rider"], C["car"], C["truck"], C["bus"]
MOTORCYCLE, BICYCLE = C["motorcycle"], C["bicycle"]

# lanes: (centre d, direction); speed is a function of the ego speed (see World._lane_speed)
VEHICLE_LANES = ((-5.25, -1), (-1.75, -1), (EGO_D, 1), (5.25, 1))
EGO_LANE = 2
VEHICLE_SPACING = 24.0
BIKE_LANES = ((7.75, 1), (-7.75, -1))
BIKE_SPACING = 35.0
PED_BANDS = ((9.6, 1, 1.3), (11.1, -1, 1.4), (-9.6, -1, 1.3), (-11.1, 1, 1.2))
PED_SPACING = 8.0

# --- colours (linear-ish RGB in [0, 1]) ----------------------------------------------------------
ASPHALT: Color = (0.30, 0.30, 0.32)
BIKE_ASPHALT: Color = (0.36, 0.27, 0.26)
PAVEMENT: Color = (0.62, 0.60, 0.57)
GRASS: Color = (0.34, 0.46, 0.20)
WHITE_PAINT: Color = (0.88, 0.88, 0.86)
YELLOW_PAINT: Color = (0.90, 0.72, 0.15)
FACADES: tuple[Color, ...] = (
    (0.78, 0.70, 0.58), (0.62, 0.32, 0.24), (0.55, 0.55, 0.57), (0.86, 0.84, 0.80), (0.45, 0.50, 0.60),
    (0.70, 0.58, 0.42), (0.40, 0.38, 0.36),
)
GLASS: Color = (0.10, 0.13, 0.17)
FOLIAGE: tuple[Color, ...] = ((0.16, 0.36, 0.10), (0.22, 0.42, 0.14), (0.28, 0.40, 0.12), (0.12, 0.30, 0.12))
BARK: Color = (0.32, 0.23, 0.15)
METAL: Color = (0.42, 0.43, 0.45)
DARK_METAL: Color = (0.12, 0.12, 0.13)
CAR_PAINT: tuple[Color, ...] = (
    (0.75, 0.08, 0.08), (0.10, 0.20, 0.60), (0.90, 0.90, 0.90), (0.06, 0.06, 0.07), (0.62, 0.63, 0.66),
    (0.85, 0.70, 0.10), (0.20, 0.40, 0.25), (0.45, 0.30, 0.20),
)
CLOTHES: tuple[Color, ...] = (
    (0.15, 0.15, 0.40), (0.55, 0.10, 0.10), (0.20, 0.20, 0.20), (0.80, 0.80, 0.75), (0.20, 0.45, 0.25),
    (0.70, 0.55, 0.20), (0.40, 0.25, 0.45), (0.10, 0.35, 0.55),
)
SKIN: tuple[Color, ...] = ((0.93, 0.76, 0.62), (0.78, 0.58, 0.42), (0.55, 0.38, 0.26), (0.36, 0.24, 0.16))
SIGN_COLORS: tuple[Color, ...] = ((0.10, 0.30, 0.75), (0.85, 0.10, 0.10), (0.95, 0.80, 0.10), (0.95, 0.95, 0.95))
TIRE: Color = (0.05, 0.05, 0.05)

SIGNAL_CYCLE_S = 24.0


def _key(seed: int, stream: int, n: int) -> int:
    """A unique non-negative integer seed for ``random.Random`` from (seed, stream, slot)."""
    return (seed << 48) ^ (stream << 36) ^ (n & 0xFFFFFFFFF)


class _Draws:
    """Replays a fixed list of uniform [0, 1) numbers with the ``random.Random`` methods the scene uses."""

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


SLOT_DRAWS = 24  # random numbers per moving-object slot (more than any object kind consumes)


class Road:
    """The road centre line ``x = centre(s)``: two long sinusoids (amplitude <= 8 m and <= 2.5 m)."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(_key(seed, 1, 0))
        self.a1 = rng.uniform(0.0, 8.0)
        self.k1 = 2 * math.pi / rng.uniform(500.0, 900.0)
        self.p1 = rng.uniform(0.0, 2 * math.pi)
        self.a2 = rng.uniform(0.0, 2.5)
        self.k2 = 2 * math.pi / rng.uniform(200.0, 350.0)
        self.p2 = rng.uniform(0.0, 2 * math.pi)

    def centre(self, s: float | np.ndarray) -> float | np.ndarray:
        """Lateral world position of the centre line at arc position ``s``."""
        return self.a1 * np.sin(self.k1 * s + self.p1) + self.a2 * np.sin(self.k2 * s + self.p2)

    def slope(self, s: float | np.ndarray) -> float | np.ndarray:
        """d centre / d s at ``s``."""
        return (self.a1 * self.k1 * np.cos(self.k1 * s + self.p1)
                + self.a2 * self.k2 * np.cos(self.k2 * s + self.p2))


@dataclass(frozen=True)
class Scene:
    """One frame's world snapshot: ego pose in road coordinates, primitives, and the objects they draw.

    ``objects`` maps every instance id in ``primitives`` to the class name it is drawn as.
    """

    index: int
    time_s: float
    ego_s: float
    ego_d: float
    primitives: Primitives
    objects: dict[int, str]


@dataclass(frozen=True)
class _Segment:
    primitives: Primitives
    objects: dict[int, str]
    #: traffic-light heads: (s, d, facing, instance id, cycle phase in s); lamps are added per frame
    signals: tuple[tuple[float, float, int, int, float], ...]


def _shade(color: Color, k: float) -> Color:
    return (color[0] * k, color[1] * k, color[2] * k)


class World:
    """Builds :class:`Scene` snapshots for a :class:`SimConfig`; caches generated road segments."""

    def __init__(self, config: SimConfig, cache_segments: int = 16) -> None:
        self.config = config
        self.road = Road(config.seed)
        self._cache: OrderedDict[int, _Segment] = OrderedDict()
        self._cache_size = cache_segments
        self._slots: dict[tuple[int, int], list[float]] = {}

    def _slot(self, stream: int, n: int) -> _Draws:
        """The random numbers of slot ``n`` of a lattice (cached: a pure function of seed, stream, n)."""
        key = (stream, n)
        values = self._slots.get(key)
        if values is None:
            if len(self._slots) > 20_000:
                self._slots.clear()
            rng = random.Random(_key(self.config.seed, stream, n))
            values = self._slots[key] = [rng.random() for _ in range(SLOT_DRAWS)]
        return _Draws(values)

    # ---------------------------------------------------------------- public
    def ego_s(self, t: float) -> float:
        """Arc position of the ego camera at time ``t``."""
        return self.config.ego_speed * t

    def snapshot(self, index: int) -> Scene:
        """The world at frame ``index`` (a pure function of config and index)."""
        cfg = self.config
        t = cfg.time_s(index)
        es = self.ego_s(t)
        s_min, s_max = es - 12.0, es + cfg.view_distance
        parts: list[Primitives] = []
        objects: dict[int, str] = {}
        b = PrimitiveBuilder()
        self._ground(b, es, s_max)
        k0, k1 = math.floor(s_min / SEGMENT_LEN), math.floor(s_max / SEGMENT_LEN)
        for k in range(k0, k1 + 1):
            seg = self._segment(k)
            parts.append(seg.primitives)
            objects.update(seg.objects)
            for signal in seg.signals:
                self._signal_lamps(b, signal, t)
        self._vehicles(b, objects, t, es, s_min, s_max)
        self._cyclists(b, objects, t, s_min, s_max)
        self._pedestrians(b, objects, t, es, s_min, s_max)
        parts.append(b.build())
        return Scene(index, t, es, EGO_D, Primitives.concat(parts), objects)

    # ---------------------------------------------------------------- ground
    def _ground(self, b: PrimitiveBuilder, es: float, s_max: float) -> None:
        g = b.group(es, es + 1e4, -1e4, 1e4, LAYER_BACKGROUND)
        b.ground(g, 0, es + 20.0, es + 6000.0, -6000.0, 6000.0, 0.0, TERRAIN, GRASS)
        g = b.group(es, s_max, -TERRAIN_OUT, TERRAIN_OUT, LAYER_GROUND)
        gm = b.group(es, s_max, -ROAD_HALF, ROAD_HALF, LAYER_MARKINGS)
        s = math.floor(es / 4.0) * 4.0
        while s < s_max:
            step = 4.0 if s < es + 40.0 else 8.0 if s < es + 80.0 else 16.0
            s = math.floor(s / step) * step
            e = s + step
            i = int(s // 4)
            v = 1.0 + 0.05 * math.sin(i * 12.9898 + 0.3) * math.sin(i * 0.731)
            b.ground(g, 0, s, e, -CAR_LANES_HALF, CAR_LANES_HALF, 0.0, ROAD, _shade(ASPHALT, v))
            for side in (-1.0, 1.0):
                b.ground(g, 0, s, e, side * CAR_LANES_HALF, side * ROAD_HALF, 0.0, ROAD, BIKE_ASPHALT)
                b.ground(g, 0, s, e, side * ROAD_HALF, side * SIDEWALK_OUT, 0.0, SIDEWALK,
                         _shade(PAVEMENT, 1.0 + 0.04 * math.sin(i * 3.7 + side)))
                b.ground(g, 0, s, e, side * SIDEWALK_OUT, side * TERRAIN_OUT, 0.0, TERRAIN, GRASS)
                # solid lines: centre double yellow, bike-lane separators
                b.ground(gm, 0, s, e, side * 0.08, side * 0.20, 0.0, ROAD, YELLOW_PAINT)
                b.ground(gm, 0, s, e, side * (CAR_LANES_HALF - 0.08), side * (CAR_LANES_HALF + 0.08), 0.0,
                         ROAD, WHITE_PAINT)
            s = e
        # dashed lane dividers: 3 m dash every 9 m, anchored to the world
        n = math.floor(es / 9.0)
        while n * 9.0 < min(s_max, es + 110.0):
            for side in (-1.0, 1.0):
                b.ground(gm, 0, n * 9.0, n * 9.0 + 3.0, side * (LANE_WIDTH - 0.07), side * (LANE_WIDTH + 0.07),
                         0.0, ROAD, WHITE_PAINT)
            n += 1

    # ---------------------------------------------------------------- static segments
    def _segment(self, k: int) -> _Segment:
        seg = self._cache.get(k)
        if seg is None:
            seg = self._build_segment(k)
            self._cache[k] = seg
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(k)
        return seg

    def _build_segment(self, k: int) -> _Segment:
        rng = random.Random(_key(self.config.seed, 2, k))
        b = PrimitiveBuilder()
        objects: dict[int, str] = {}
        signals: list[tuple[float, float, int, int, float]] = []
        next_id = [STATIC_BASE + (k % 100) * STATIC_PER_SEGMENT]

        def new_id(kind: str) -> int:
            i = next_id[0]
            next_id[0] += 1
            objects[i] = kind
            return i

        sa, sb = k * SEGMENT_LEN, (k + 1) * SEGMENT_LEN
        signal_here = rng.random() < 0.35
        st = sa + 30.0
        for side in (-1, 1):
            self._buildings(b, rng, side, sa, sb)
            self._roadside(b, rng, side, sa, sb)
            # street lamps, two per side per segment
            for j in range(2):
                sl = sa + (5.0 if side > 0 else 15.0) + 20.0 * j + rng.uniform(-1.0, 1.0)
                if signal_here and abs(sl - st) < 3.0:
                    continue
                self._street_lamp(b, new_id("pole"), side, sl)
            if rng.random() < 0.7:
                ss = sa + rng.uniform(1.0, 39.0)
                if not (signal_here and abs(ss - st) < 4.0):
                    self._sign(b, rng, new_id("pole"), new_id("traffic sign"), side, ss)
        if signal_here:
            self._crosswalk(b, st)
            for side in (-1, 1):
                pole = new_id("pole")
                facing = -side  # right side faces the ego (-s), left side faces oncoming traffic
                d_pole = side * 8.9
                g = b.group(st - 0.3, st + 0.3, d_pole, side * 1.0)
                b.box(g, 0, st - 0.12, st + 0.12, d_pole - 0.12, d_pole + 0.12, 0.0, 6.3, POLE, pole, METAL)
                b.box(g, 1, st - 0.08, st + 0.08, d_pole, side * 1.0, 5.95, 6.12, POLE, pole, METAL)
                for d_head, y_top in ((side * 5.25, 5.95), (side * 1.75, 5.95), (d_pole - side * 0.3, 3.8)):
                    head = new_id("traffic light")
                    b.box(g, 2, st - 0.18, st + 0.18, d_head - 0.18, d_head + 0.18, y_top - 1.0, y_top, LIGHT,
                          head, DARK_METAL)
                    signals.append((st + facing * 0.19, d_head, facing, head, rng.uniform(0, 1) * 2.0))
        return _Segment(b.build(), objects, tuple(signals))

    def _buildings(self, b: PrimitiveBuilder, rng: random.Random, side: int, sa: float, sb: float) -> None:
        s = sa + rng.uniform(0.0, 3.0)
        toward_road = FACE_LEFT if side > 0 else FACE_RIGHT
        while s < sb - 4.0:
            e = min(s + rng.uniform(8.0, 30.0), sb)
            setback = rng.uniform(0.0, 5.0)
            depth = rng.uniform(8.0, 18.0)
            height = rng.uniform(6.0, 32.0)
            color = rng.choice(FACADES)
            d_front = side * (BUILDING_LINE + setback)
            d_back = side * (BUILDING_LINE + setback + depth)
            n_chunks = max(1, math.ceil((e - s) / 10.0))
            floors = min(int((height - 1.0) / 3.2), 5)
            lit = [rng.random() < 0.45 for _ in range(n_chunks * floors)]
            for j in range(n_chunks):
                c0 = s + (e - s) * j / n_chunks
                c1 = s + (e - s) * (j + 1) / n_chunks
                faces = toward_road | (FACE_FRONT if j == 0 else 0) | (FACE_BACK if j == n_chunks - 1 else 0)
                g = b.group(c0, c1, d_front, d_back)
                b.box(g, 0, c0, c1, d_front, d_back, 0.0, height, BUILDING, 0, color, faces=faces)
                dw = d_front - side * 0.02
                for f in range(floors):
                    y0 = 1.2 + 3.2 * f
                    mat = Material.WINDOW if lit[j * floors + f] else Material.GLASS
                    b.quad(g, 1, ((c0 + 0.6, dw, y0), (c1 - 0.6, dw, y0), (c1 - 0.6, dw, y0 + 1.5),
                                  (c0 + 0.6, dw, y0 + 1.5)), (0.0, -side, 0.0), BUILDING, 0, GLASS, mat)
            s = e + rng.uniform(1.0, 8.0)

    def _roadside(self, b: PrimitiveBuilder, rng: random.Random, side: int, sa: float, sb: float) -> None:
        # fence or hedge along the sidewalk's outer edge; sometimes a wall in front of the buildings
        kind = rng.random()
        if kind < 0.6:
            s0 = sa + rng.uniform(0.0, 15.0)
            s1 = min(sb, s0 + rng.uniform(6.0, 22.0))
            d0, d1 = side * 12.3, side * (12.36 if kind < 0.35 else 12.95)
            g = b.group(s0, s1, d0, d1)
            if kind < 0.35:
                b.box(g, 0, s0, s1, d0, d1, 0.0, 1.15, FENCE, 0, (0.45, 0.47, 0.42))
            else:
                b.box(g, 0, s0, s1, d0, d1, 0.0, 0.9, VEGETATION, 0, rng.choice(FOLIAGE))
        if rng.random() < 0.35:
            s0 = sa + rng.uniform(0.0, 25.0)
            s1 = s0 + rng.uniform(5.0, 14.0)
            d0, d1 = side * 14.5, side * 14.8
            g = b.group(s0, s1, d0, d1)
            b.box(g, 0, s0, s1, d0, d1, 0.0, rng.uniform(1.6, 2.6), WALL, 0, (0.60, 0.56, 0.50))
        s = sa + rng.uniform(2.0, 10.0)
        while s < sb:
            if rng.random() < 0.75:
                d = side * rng.uniform(13.2, 13.8)
                trunk_h = rng.uniform(2.4, 3.2)
                size = rng.uniform(2.2, 3.4)
                top = trunk_h + size * rng.uniform(0.8, 1.3)
                color = rng.choice(FOLIAGE)
                g = b.group(s - size / 2, s + size / 2, d - size / 2, d + size / 2)
                b.box(g, 0, s - 0.17, s + 0.17, d - 0.17, d + 0.17, 0.0, trunk_h, VEGETATION, 0, BARK)
                b.box(g, 1, s - size / 2, s + size / 2, d - size / 2, d + size / 2, trunk_h - 0.2, top,
                      VEGETATION, 0, color)
                h2 = size * 0.6
                b.box(g, 2, s - h2 / 2, s + h2 / 2, d - h2 / 2, d + h2 / 2, top, top + h2 * 0.6, VEGETATION, 0,
                      _shade(color, 1.1))
            s += rng.uniform(7.0, 16.0)

    @staticmethod
    def _street_lamp(b: PrimitiveBuilder, inst: int, side: int, s: float) -> None:
        d = side * 8.9
        g = b.group(s - 0.3, s + 0.3, d, side * 7.0)
        b.box(g, 0, s - 0.09, s + 0.09, d - 0.09, d + 0.09, 0.0, 8.0, POLE, inst, METAL)
        b.box(g, 1, s - 0.06, s + 0.06, d, side * 7.4, 7.75, 7.9, POLE, inst, METAL)
        b.box(g, 2, s - 0.25, s + 0.25, side * 7.0, side * 7.6, 7.55, 7.75, POLE, inst, (0.9, 0.88, 0.75),
              Material.LAMP)

    @staticmethod
    def _sign(b: PrimitiveBuilder, rng: random.Random, pole: int, sign: int, side: int, s: float) -> None:
        d = side * 9.3
        facing = -side
        g = b.group(s - 0.4, s + 0.4, d - 0.4, d + 0.4)
        b.box(g, 0, s - 0.04, s + 0.04, d - 0.04, d + 0.04, 0.0, 2.9, POLE, pole, METAL)
        b.box(g, 1, s - 0.03, s + 0.03, d - 0.37, d + 0.37, 2.1, 2.85, SIGN, sign, METAL)
        color = rng.choice(SIGN_COLORS)
        sf = s + facing * 0.035
        if rng.random() < 0.4:  # diamond
            verts = ((sf, d, 2.1), (sf, d + 0.37, 2.475), (sf, d, 2.85), (sf, d - 0.37, 2.475))
        else:
            verts = ((sf, d - 0.33, 2.14), (sf, d + 0.33, 2.14), (sf, d + 0.33, 2.81), (sf, d - 0.33, 2.81))
        b.quad(g, 2, verts, (float(facing), 0.0, 0.0), SIGN, sign, color)

    @staticmethod
    def _crosswalk(b: PrimitiveBuilder, st: float) -> None:
        g = b.group(st - 8.0, st - 2.0, -ROAD_HALF, ROAD_HALF, LAYER_MARKINGS)
        d = -CAR_LANES_HALF + 0.3
        while d < CAR_LANES_HALF - 0.3:
            b.ground(g, 1, st - 6.5, st - 3.0, d, d + 0.5, 0.0, ROAD, WHITE_PAINT)
            d += 1.0
        b.ground(g, 1, st - 8.0, st - 7.6, 0.2, CAR_LANES_HALF, 0.0, ROAD, WHITE_PAINT)

    def _signal_lamps(self, b: PrimitiveBuilder, signal: tuple[float, float, int, int, float], t: float) -> None:
        s, d, facing, inst, phase = signal
        g = b.group(s - 0.2, s + 0.2, d - 0.2, d + 0.2)
        cycle = ((t + phase * SIGNAL_CYCLE_S / 2.0) % SIGNAL_CYCLE_S) / SIGNAL_CYCLE_S
        active = 2 if cycle < 0.45 else 1 if cycle < 0.55 else 0  # 0 red, 1 yellow, 2 green
        y_top = 5.95 if abs(abs(d) - 8.6) > 0.5 else 3.8
        colors = ((0.95, 0.12, 0.08), (0.98, 0.70, 0.05), (0.15, 0.95, 0.35))
        for lamp in range(3):
            yc = y_top - 0.2 - 0.3 * lamp
            on = lamp == active
            color = colors[lamp] if on else _shade(colors[lamp], 0.18)
            verts = ((s, d - 0.11, yc - 0.11), (s, d + 0.11, yc - 0.11), (s, d + 0.11, yc + 0.11),
                     (s, d - 0.11, yc + 0.11))
            b.quad(g, 0, verts, (float(facing), 0.0, 0.0), LIGHT, inst, color,
                   Material.SIGNAL if on else Material.DIFFUSE)

    # ---------------------------------------------------------------- moving things
    def _lane_speed(self, lane: int) -> float:
        ego = self.config.ego_speed
        return (-(0.8 * ego + 6.0), -(ego + 3.0), ego, 0.7 * ego + 1.5)[lane]

    def _vehicles(self, b: PrimitiveBuilder, objects: dict[int, str], t: float, es: float, s_min: float,
                  s_max: float) -> None:
        density = self.config.traffic_density
        for lane, (d_lane, direction) in enumerate(VEHICLE_LANES):
            v = self._lane_speed(lane)
            shift = v * t
            n0 = math.floor((s_min - shift - 12.0) / VEHICLE_SPACING)
            n1 = math.ceil((s_max - shift + 12.0) / VEHICLE_SPACING)
            for n in range(n0, n1 + 1):
                rng = self._slot(10 + lane, n)
                occupied = rng.random() < density * (0.6 if lane == EGO_LANE else 1.0)
                jitter = rng.uniform(-3.0, 3.0)
                if not occupied or (lane == EGO_LANE and -40.0 < n * VEHICLE_SPACING + jitter < 16.0):
                    continue
                amp, omega, phi = rng.uniform(0.0, 2.0), rng.uniform(0.05, 0.25), rng.uniform(0, 2 * math.pi)
                s = n * VEHICLE_SPACING + jitter + shift + amp * math.sin(omega * t + phi)
                if not s_min - 8.0 < s < s_max + 8.0:
                    continue
                inst = VEHICLE_BASE + lane * 2000 + n % 2000
                d = d_lane + rng.uniform(-0.25, 0.25)
                kind = rng.random()
                paint = rng.choice(CAR_PAINT)
                if kind < 0.70:
                    objects[inst] = "car"
                    self._car(b, rng, inst, s, d, direction, paint, far=s - es > 70.0)
                elif kind < 0.82:
                    objects[inst] = "truck"
                    self._truck(b, rng, inst, s, d, direction, paint)
                elif kind < 0.92:
                    objects[inst] = "bus"
                    self._bus(b, inst, s, d, direction, paint)
                else:
                    rider = MOTO_RIDER_BASE + lane * 1000 + n % 1000
                    objects[inst] = "motorcycle"
                    objects[rider] = "rider"
                    g = b.group(s - 1.1, s + 1.1, d - 0.4, d + 0.4)
                    self._two_wheeler(b, g, inst, MOTORCYCLE, s, d, direction, paint, motor=True)
                    self._person(b, g, 3, rider, RIDER, s - direction * 0.15, d, direction, 1.75,
                                 0.0, rng.choice(CLOTHES), DARK_METAL, rng.choice(SKIN), seated=0.85)

    @staticmethod
    def _lights(b: PrimitiveBuilder, g: int, inst: int, cls: int, s: float, d: float, direction: int,
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

    def _car(self, b: PrimitiveBuilder, rng: _Draws, inst: int, s: float, d: float, direction: int,
             paint: Color, far: bool = False) -> None:
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
        self._lights(b, g, inst, CAR, s, d, direction, length, width, 0.62)

    def _truck(self, b: PrimitiveBuilder, rng: _Draws, inst: int, s: float, d: float, direction: int,
               paint: Color) -> None:
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
        self._lights(b, g, inst, TRUCK, s, d, direction, length, width, 0.8)

    def _bus(self, b: PrimitiveBuilder, inst: int, s: float, d: float, direction: int, paint: Color) -> None:
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
        self._lights(b, g, inst, BUS, s, d, direction, length, width, 0.7)

    @staticmethod
    def _two_wheeler(b: PrimitiveBuilder, g: int, inst: int, cls: int, s: float, d: float, direction: int,
                     paint: Color, motor: bool) -> None:
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

    @staticmethod
    def _person(b: PrimitiveBuilder, g: int, order: int, inst: int, cls: int, s: float, d: float,
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

    def _cyclists(self, b: PrimitiveBuilder, objects: dict[int, str], t: float, s_min: float,
                  s_max: float) -> None:
        density = 0.5 * self.config.traffic_density
        for lane, (d_lane, direction) in enumerate(BIKE_LANES):
            v = direction * 4.5
            shift = v * t
            n0 = math.floor((s_min - shift - 5.0) / BIKE_SPACING)
            n1 = math.ceil((s_max - shift + 5.0) / BIKE_SPACING)
            for n in range(n0, n1 + 1):
                rng = self._slot(20 + lane, n)
                if rng.random() >= density:
                    continue
                amp, omega, phi = rng.uniform(0.0, 3.0), rng.uniform(0.1, 0.3), rng.uniform(0, 2 * math.pi)
                s = n * BIKE_SPACING + rng.uniform(-5.0, 5.0) + shift + amp * math.sin(omega * t + phi)
                if not s_min - 2.0 < s < s_max + 2.0:
                    continue
                d = d_lane + rng.uniform(-0.2, 0.2)
                bike = CYCLIST_BASE + lane * 2000 + 2 * (n % 1000)
                objects[bike] = "bicycle"
                objects[bike + 1] = "rider"
                g = b.group(s - 0.9, s + 0.9, d - 0.35, d + 0.35)
                self._two_wheeler(b, g, bike, BICYCLE, s, d, direction, rng.choice(CAR_PAINT), motor=False)
                self._person(b, g, 3, bike + 1, RIDER, s - direction * 0.1, d, direction, rng.uniform(1.6, 1.9),
                             0.0, rng.choice(CLOTHES), rng.choice(CLOTHES), rng.choice(SKIN), seated=0.95)

    def _pedestrians(self, b: PrimitiveBuilder, objects: dict[int, str], t: float, es: float, s_min: float,
                     s_max: float) -> None:
        density = self.config.pedestrian_density
        for band, (d_band, direction, speed) in enumerate(PED_BANDS):
            shift = direction * speed * t
            n0 = math.floor((s_min - shift - 4.0) / PED_SPACING)
            n1 = math.ceil((s_max - shift + 4.0) / PED_SPACING)
            for n in range(n0, n1 + 1):
                rng = self._slot(30 + band, n)
                if rng.random() >= density:
                    continue
                amp, omega, phi = rng.uniform(0.0, 1.5), rng.uniform(0.1, 0.4), rng.uniform(0, 2 * math.pi)
                s = n * PED_SPACING + rng.uniform(-2.5, 2.5) + shift + amp * math.sin(omega * t + phi)
                if not s_min - 1.0 < s < s_max + 1.0:
                    continue
                d = d_band + rng.uniform(-0.35, 0.35)
                height = rng.uniform(1.5, 1.9)
                inst = PEDESTRIAN_BASE + band * 2000 + n % 2000
                objects[inst] = "person"
                g = b.group(s - 0.35, s + 0.35, d - 0.3, d + 0.3)
                stride_phase = (s - rng.uniform(0.0, 1.0)) * math.pi / 0.7
                self._person(b, g, 0, inst, PERSON, s, d, direction, height, stride_phase,
                             rng.choice(CLOTHES), rng.choice(CLOTHES), rng.choice(SKIN), far=s - es > 45.0)
