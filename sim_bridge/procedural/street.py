"""Static street builders of the procedural world: ground and markings, buildings, roadside greenery, fences and
walls, street lamps, road signs, crosswalks and traffic lights.

Plain functions that append primitives to a :class:`PrimitiveBuilder`; random content is drawn from the ``rng``
passed in, in a fixed order (so a segment's content is a pure function of its ``random.Random``). Instance ids are
handed in by the caller (:mod:`.scene` owns the id ranges); stuff is drawn with instance 0.
"""

# The builders take the geometry of one object positionally by design (PLR0917).
# ruff: noqa: PLR0917

from __future__ import annotations

import math
import random

from sim2real.core.labels import TRAIN_ID

from .layout import BUILDING_LINE, CAR_LANES_HALF, LANE_WIDTH, ROAD_HALF, SIDEWALK_OUT, TERRAIN_OUT
from .palette import (
    ASPHALT,
    BARK,
    BIKE_ASPHALT,
    DARK_METAL,
    FACADES,
    FOLIAGE,
    GLASS,
    GRASS,
    METAL,
    PAVEMENT,
    SIGN_COLORS,
    WHITE_PAINT,
    YELLOW_PAINT,
    shade,
)
from .primitives import (
    FACE_BACK,
    FACE_FRONT,
    FACE_LEFT,
    FACE_RIGHT,
    LAYER_BACKGROUND,
    LAYER_GROUND,
    LAYER_MARKINGS,
    Material,
    PrimitiveBuilder,
)

__all__ = [
    "SIGNAL_CYCLE_S", "Signal", "buildings", "crosswalk", "ground", "road_sign", "roadside", "signal_lamps",
    "signal_post", "street_lamp",
]

C = TRAIN_ID
ROAD, SIDEWALK, BUILDING, WALL, FENCE = C["road"], C["sidewalk"], C["building"], C["wall"], C["fence"]
POLE, LIGHT, SIGN, VEGETATION, TERRAIN = C["pole"], C["traffic light"], C["traffic sign"], C["vegetation"], C[
    "terrain"]

SIGNAL_CYCLE_S = 24.0

#: a traffic-light head: (s, d, facing, instance id, cycle phase in s); its lamps are drawn per frame
Signal = tuple[float, float, int, int, float]


def ground(b: PrimitiveBuilder, es: float, s_max: float) -> None:
    """The ground from the ego position ``es`` to ``s_max``: a far terrain plane, road, bike lanes, sidewalks,
    terrain and lane markings (coarser strips farther away)."""
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
        b.ground(g, 0, s, e, -CAR_LANES_HALF, CAR_LANES_HALF, 0.0, ROAD, shade(ASPHALT, v))
        for side in (-1.0, 1.0):
            b.ground(g, 0, s, e, side * CAR_LANES_HALF, side * ROAD_HALF, 0.0, ROAD, BIKE_ASPHALT)
            b.ground(g, 0, s, e, side * ROAD_HALF, side * SIDEWALK_OUT, 0.0, SIDEWALK,
                     shade(PAVEMENT, 1.0 + 0.04 * math.sin(i * 3.7 + side)))
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


def buildings(b: PrimitiveBuilder, rng: random.Random, side: int, sa: float, sb: float) -> None:
    """A row of buildings behind the building line on ``side`` over [sa, sb], with lit or dark windows."""
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


def roadside(b: PrimitiveBuilder, rng: random.Random, side: int, sa: float, sb: float) -> None:
    """Fence or hedge, sometimes a wall, and a row of trees between the sidewalk and the buildings on ``side``."""
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
                  shade(color, 1.1))
        s += rng.uniform(7.0, 16.0)


def street_lamp(b: PrimitiveBuilder, inst: int, side: int, s: float) -> None:
    """A street lamp at ``s`` on the sidewalk of ``side``, its arm reaching over the bike lane."""
    d = side * 8.9
    g = b.group(s - 0.3, s + 0.3, d, side * 7.0)
    b.box(g, 0, s - 0.09, s + 0.09, d - 0.09, d + 0.09, 0.0, 8.0, POLE, inst, METAL)
    b.box(g, 1, s - 0.06, s + 0.06, d, side * 7.4, 7.75, 7.9, POLE, inst, METAL)
    b.box(g, 2, s - 0.25, s + 0.25, side * 7.0, side * 7.6, 7.55, 7.75, POLE, inst, (0.9, 0.88, 0.75),
          Material.LAMP)


def road_sign(b: PrimitiveBuilder, rng: random.Random, pole: int, sign: int, side: int, s: float) -> None:
    """A road sign (square or diamond face towards the traffic of ``side``) on a thin pole at ``s``."""
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


def crosswalk(b: PrimitiveBuilder, st: float) -> None:
    """Zebra stripes across the car lanes and a stop line, just before the traffic lights at ``st``."""
    g = b.group(st - 8.0, st - 2.0, -ROAD_HALF, ROAD_HALF, LAYER_MARKINGS)
    d = -CAR_LANES_HALF + 0.3
    while d < CAR_LANES_HALF - 0.3:
        b.ground(g, 1, st - 6.5, st - 3.0, d, d + 0.5, 0.0, ROAD, WHITE_PAINT)
        d += 1.0
    b.ground(g, 1, st - 8.0, st - 7.6, 0.2, CAR_LANES_HALF, 0.0, ROAD, WHITE_PAINT)


def signal_post(b: PrimitiveBuilder, rng: random.Random, pole: int, heads: tuple[int, int, int], side: int,
                st: float) -> list[Signal]:
    """A traffic-light post at ``st`` on ``side``: pole, mast arm and three dark heads (two over the car lanes,
    one on the pole). Returns the heads as :data:`Signal` for :func:`signal_lamps` to light per frame."""
    facing = -side  # right side faces the ego (-s), left side faces oncoming traffic
    d_pole = side * 8.9
    g = b.group(st - 0.3, st + 0.3, d_pole, side * 1.0)
    b.box(g, 0, st - 0.12, st + 0.12, d_pole - 0.12, d_pole + 0.12, 0.0, 6.3, POLE, pole, METAL)
    b.box(g, 1, st - 0.08, st + 0.08, d_pole, side * 1.0, 5.95, 6.12, POLE, pole, METAL)
    signals: list[Signal] = []
    for head, (d_head, y_top) in zip(heads, ((side * 5.25, 5.95), (side * 1.75, 5.95), (d_pole - side * 0.3, 3.8)),
                                     strict=True):
        b.box(g, 2, st - 0.18, st + 0.18, d_head - 0.18, d_head + 0.18, y_top - 1.0, y_top, LIGHT, head, DARK_METAL)
        signals.append((st + facing * 0.19, d_head, facing, head, rng.uniform(0, 1) * 2.0))
    return signals


def signal_lamps(b: PrimitiveBuilder, signal: Signal, t: float) -> None:
    """The red, yellow and green lamps of one traffic-light head at time ``t`` (one lit, the others dim)."""
    s, d, facing, inst, phase = signal
    g = b.group(s - 0.2, s + 0.2, d - 0.2, d + 0.2)
    cycle = ((t + phase * SIGNAL_CYCLE_S / 2.0) % SIGNAL_CYCLE_S) / SIGNAL_CYCLE_S
    active = 2 if cycle < 0.45 else 1 if cycle < 0.55 else 0  # 0 red, 1 yellow, 2 green
    y_top = 5.95 if abs(abs(d) - 8.6) > 0.5 else 3.8
    colors = ((0.95, 0.12, 0.08), (0.98, 0.70, 0.05), (0.15, 0.95, 0.35))
    for lamp in range(3):
        yc = y_top - 0.2 - 0.3 * lamp
        on = lamp == active
        color = colors[lamp] if on else shade(colors[lamp], 0.18)
        verts = ((s, d - 0.11, yc - 0.11), (s, d + 0.11, yc - 0.11), (s, d + 0.11, yc + 0.11),
                 (s, d - 0.11, yc + 0.11))
        b.quad(g, 0, verts, (float(facing), 0.0, 0.0), LIGHT, inst, color,
               Material.SIGNAL if on else Material.DIFFUSE)
