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

:class:`World` decides what is where and when; the geometry of static things is drawn by :mod:`.street`, that of
moving things by :mod:`.agents` (cross-section in :mod:`.layout`, colours in :mod:`.palette`).
"""

# Deterministic procedural content, not cryptography (S311); the placement methods take the frame's time and
# s-window positionally (PLR0917).
# ruff: noqa: S311, PLR0917

from __future__ import annotations

import math
import random
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from sim2real.core.labels import TRAIN_ID

from . import agents, street
from .agents import SlotDraws
from .config import SimConfig
from .layout import EGO_D
from .palette import CAR_PAINT, CLOTHES, DARK_METAL, SKIN
from .primitives import PrimitiveBuilder, Primitives

__all__ = ["EGO_D", "Road", "Scene", "World"]

SEGMENT_LEN = 40.0

# --- instance id ranges (uint16) -----------------------------------------------------------------
VEHICLE_BASE = 1  # 4 lanes x 2000 slots -> 1..8000
CYCLIST_BASE = 8001  # 2 bike lanes x 1000 slots x (bicycle, rider) -> 8001..12000
MOTO_RIDER_BASE = 12001  # 4 lanes x 1000 -> 12001..16000
STATIC_BASE = 16001  # 100 segments (mod) x 400 -> 16001..56000
PEDESTRIAN_BASE = 56001  # 4 bands x 2000 -> 56001..64000
STATIC_PER_SEGMENT = 400

PERSON, RIDER = TRAIN_ID["person"], TRAIN_ID["rider"]
MOTORCYCLE, BICYCLE = TRAIN_ID["motorcycle"], TRAIN_ID["bicycle"]

# lanes: (centre d, direction); speed is a function of the ego speed (see World._lane_speed)
VEHICLE_LANES = ((-5.25, -1), (-1.75, -1), (EGO_D, 1), (5.25, 1))
EGO_LANE = 2
VEHICLE_SPACING = 24.0
BIKE_LANES = ((7.75, 1), (-7.75, -1))
BIKE_SPACING = 35.0
PED_BANDS = ((9.6, 1, 1.3), (11.1, -1, 1.4), (-9.6, -1, 1.3), (-11.1, 1, 1.2))
PED_SPACING = 8.0


def _key(seed: int, stream: int, n: int) -> int:
    """A unique non-negative integer seed for ``random.Random`` from (seed, stream, slot)."""
    return (seed << 48) ^ (stream << 36) ^ (n & 0xFFFFFFFFF)


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
    #: traffic-light heads; their lamps are added per frame
    signals: tuple[street.Signal, ...]


class World:
    """Builds :class:`Scene` snapshots for a :class:`SimConfig`; caches generated road segments."""

    def __init__(self, config: SimConfig, cache_segments: int = 16) -> None:
        self.config = config
        self.road = Road(config.seed)
        self._cache: OrderedDict[int, _Segment] = OrderedDict()
        self._cache_size = cache_segments
        self._slots: dict[tuple[int, int], list[float]] = {}

    def _slot(self, stream: int, n: int) -> SlotDraws:
        """The random numbers of slot ``n`` of a lattice (cached: a pure function of seed, stream, n)."""
        key = (stream, n)
        values = self._slots.get(key)
        if values is None:
            if len(self._slots) > 20_000:
                self._slots.clear()
            rng = random.Random(_key(self.config.seed, stream, n))
            values = self._slots[key] = [rng.random() for _ in range(SLOT_DRAWS)]
        return SlotDraws(values)

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
        street.ground(b, es, s_max)
        k0, k1 = math.floor(s_min / SEGMENT_LEN), math.floor(s_max / SEGMENT_LEN)
        for k in range(k0, k1 + 1):
            seg = self._segment(k)
            parts.append(seg.primitives)
            objects.update(seg.objects)
            for signal in seg.signals:
                street.signal_lamps(b, signal, t)
        self._vehicles(b, objects, t, es, s_min, s_max)
        self._cyclists(b, objects, t, s_min, s_max)
        self._pedestrians(b, objects, t, es, s_min, s_max)
        parts.append(b.build())
        return Scene(index, t, es, EGO_D, Primitives.concat(parts), objects)

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
        signals: list[street.Signal] = []
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
            street.buildings(b, rng, side, sa, sb)
            street.roadside(b, rng, side, sa, sb)
            # street lamps, two per side per segment
            for j in range(2):
                sl = sa + (5.0 if side > 0 else 15.0) + 20.0 * j + rng.uniform(-1.0, 1.0)
                if signal_here and abs(sl - st) < 3.0:
                    continue
                street.street_lamp(b, new_id("pole"), side, sl)
            if rng.random() < 0.7:
                ss = sa + rng.uniform(1.0, 39.0)
                if not (signal_here and abs(ss - st) < 4.0):
                    street.road_sign(b, rng, new_id("pole"), new_id("traffic sign"), side, ss)
        if signal_here:
            street.crosswalk(b, st)
            for side in (-1, 1):
                pole = new_id("pole")
                heads = (new_id("traffic light"), new_id("traffic light"), new_id("traffic light"))
                signals += street.signal_post(b, rng, pole, heads, side, st)
        return _Segment(b.build(), objects, tuple(signals))

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
                    agents.car(b, rng, inst, s, d, direction, paint, far=s - es > 70.0)
                elif kind < 0.82:
                    objects[inst] = "truck"
                    agents.truck(b, rng, inst, s, d, direction, paint)
                elif kind < 0.92:
                    objects[inst] = "bus"
                    agents.bus(b, inst, s, d, direction, paint)
                else:
                    rider = MOTO_RIDER_BASE + lane * 1000 + n % 1000
                    objects[inst] = "motorcycle"
                    objects[rider] = "rider"
                    g = b.group(s - 1.1, s + 1.1, d - 0.4, d + 0.4)
                    agents.two_wheeler(b, g, inst, MOTORCYCLE, s, d, direction, paint, motor=True)
                    agents.person(b, g, 3, rider, RIDER, s - direction * 0.15, d, direction, 1.75,
                                  0.0, rng.choice(CLOTHES), DARK_METAL, rng.choice(SKIN), seated=0.85)

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
                agents.two_wheeler(b, g, bike, BICYCLE, s, d, direction, rng.choice(CAR_PAINT), motor=False)
                agents.person(b, g, 3, bike + 1, RIDER, s - direction * 0.1, d, direction, rng.uniform(1.6, 1.9),
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
                agents.person(b, g, 0, inst, PERSON, s, d, direction, height, stride_phase,
                              rng.choice(CLOTHES), rng.choice(CLOTHES), rng.choice(SKIN), far=s - es > 45.0)
