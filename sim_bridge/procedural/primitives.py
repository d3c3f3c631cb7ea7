"""Flat-shaded drawing primitives in road coordinates, collected per frame and frozen into arrays.

Road coordinates: ``s`` along the road centre line (m), ``d`` lateral (m, positive = right of the
centre line when looking along +s), ``y`` up (m). The renderer maps them to the world with
``x = centre(s) + d, z = s``.

Primitives belong to *groups*: the unit the painter's algorithm sorts (far to near). A group has a
layer (background, ground, markings, objects) and a footprint rectangle in (s, d) used for the
distance key; inside a group, primitives are drawn in ``order``.
"""

# A primitive is its geometry: builders take coordinates positionally by design.
# ruff: noqa: PLR0917

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FACE_ALL", "FACE_BACK", "FACE_FRONT", "FACE_LEFT", "FACE_RIGHT", "FACE_TOP", "LAYER_BACKGROUND",
    "LAYER_GROUND", "LAYER_MARKINGS", "LAYER_OBJECTS", "Material", "PrimitiveBuilder", "Primitives",
]

# box faces: -s, +s, -d, +d, +y
FACE_FRONT, FACE_BACK, FACE_LEFT, FACE_RIGHT, FACE_TOP = 1, 2, 4, 8, 16
FACE_ALL = 31

LAYER_BACKGROUND, LAYER_GROUND, LAYER_MARKINGS, LAYER_OBJECTS = 0, 1, 2, 3

Color = tuple[float, float, float]


class Material:
    """Material codes: how a face reacts to light (see ``render.shade``)."""

    DIFFUSE = 0
    GLASS = 1  # dark, slightly reflective; never lit
    WINDOW = 2  # glass by day, warm emissive light at night
    HEADLIGHT = 3  # pale lens by day, bright at night
    TAILLIGHT = 4  # red lens, brighter at night
    LAMP = 5  # street lamp head: emissive at night
    SIGNAL = 6  # an active traffic-light lamp: always emissive (its base colour)
    EMISSIVE = 7  # always emissive


@dataclass(frozen=True)
class Primitives:
    """Frozen primitive arrays. Box floats: s0 s1 d0 d1 y0 y1 r g b; quad floats: 4x(s d y), n(s d y), r g b.

    Ints (boxes): group order cls inst mat facemask; (quads): group order cls inst mat cull.
    Groups: floats s0 s1 d0 d1 (footprint), ints layer.
    """

    box_f: np.ndarray
    box_i: np.ndarray
    quad_f: np.ndarray
    quad_i: np.ndarray
    group_f: np.ndarray
    group_layer: np.ndarray

    @staticmethod
    def concat(parts: Sequence[Primitives]) -> Primitives:
        """Concatenate, renumbering groups so that each part keeps its own."""
        box_i, quad_i = [], []
        offset = 0
        for p in parts:
            bi = p.box_i.copy()
            bi[:, 0] += offset
            qi = p.quad_i.copy()
            qi[:, 0] += offset
            box_i.append(bi)
            quad_i.append(qi)
            offset += len(p.group_layer)
        return Primitives(
            box_f=np.concatenate([p.box_f for p in parts]),
            box_i=np.concatenate(box_i),
            quad_f=np.concatenate([p.quad_f for p in parts]),
            quad_i=np.concatenate(quad_i),
            group_f=np.concatenate([p.group_f for p in parts]),
            group_layer=np.concatenate([p.group_layer for p in parts]),
        )


class PrimitiveBuilder:
    """Collects boxes and quads (plain Python lists, cheap appends) and freezes them into :class:`Primitives`."""

    def __init__(self) -> None:
        self._box_f: list[tuple[float, ...]] = []
        self._box_i: list[tuple[int, ...]] = []
        self._quad_f: list[tuple[float, ...]] = []
        self._quad_i: list[tuple[int, ...]] = []
        self._group_f: list[tuple[float, float, float, float]] = []
        self._group_layer: list[int] = []

    def group(self, s0: float, s1: float, d0: float, d1: float, layer: int = LAYER_OBJECTS) -> int:
        """Open a new group with footprint [s0, s1] x [d0, d1]; returns its index."""
        self._group_f.append((min(s0, s1), max(s0, s1), min(d0, d1), max(d0, d1)))
        self._group_layer.append(layer)
        return len(self._group_layer) - 1

    def box(
        self, group: int, order: int, s0: float, s1: float, d0: float, d1: float, y0: float, y1: float,
        cls: int, inst: int, color: Color, mat: int = Material.DIFFUSE, faces: int = FACE_ALL,
    ) -> None:
        """An axis-aligned (in road coordinates) box; only the faces in ``faces`` exist."""
        self._box_f.append((min(s0, s1), max(s0, s1), min(d0, d1), max(d0, d1), y0, y1, *color))
        self._box_i.append((group, order, cls, inst, mat, faces))

    def quad(
        self, group: int, order: int, verts: Sequence[tuple[float, float, float]],
        normal: tuple[float, float, float] | None, cls: int, inst: int, color: Color,
        mat: int = Material.DIFFUSE,
    ) -> None:
        """A planar convex quad with vertices (s, d, y) in cyclic order; ``normal=None`` draws both sides."""
        flat = [c for v in verts for c in v]
        if normal is None:
            self._quad_f.append((*flat, 0.0, 0.0, 1.0, *color))
        else:
            self._quad_f.append((*flat, *normal, *color))
        self._quad_i.append((group, order, cls, inst, mat, 0 if normal is None else 1))

    def ground(
        self, group: int, order: int, s0: float, s1: float, d0: float, d1: float, y: float,
        cls: int, color: Color, mat: int = Material.DIFFUSE,
    ) -> None:
        """A horizontal rectangle (stuff, instance 0) facing up, drawn from both sides."""
        self.quad(group, order, ((s0, d0, y), (s0, d1, y), (s1, d1, y), (s1, d0, y)), None, cls, 0, color, mat)

    def build(self) -> Primitives:
        """Freeze into arrays."""
        return Primitives(
            box_f=np.asarray(self._box_f, dtype=np.float64).reshape(-1, 9),
            box_i=np.asarray(self._box_i, dtype=np.int64).reshape(-1, 6),
            quad_f=np.asarray(self._quad_f, dtype=np.float64).reshape(-1, 18),
            quad_i=np.asarray(self._quad_i, dtype=np.int64).reshape(-1, 6),
            group_f=np.asarray(self._group_f, dtype=np.float64).reshape(-1, 4),
            group_layer=np.asarray(self._group_layer, dtype=np.int64),
        )
