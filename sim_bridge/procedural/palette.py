"""Colours of the procedural world (linear-ish RGB in [0, 1]), shared by the street, agent and world builders."""

from __future__ import annotations

from .primitives import Color

__all__ = [
    "ASPHALT", "BARK", "BIKE_ASPHALT", "CAR_PAINT", "CLOTHES", "DARK_METAL", "FACADES", "FOLIAGE", "GLASS", "GRASS",
    "METAL", "PAVEMENT", "SIGN_COLORS", "SKIN", "TIRE", "WHITE_PAINT", "YELLOW_PAINT", "shade",
]

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


def shade(color: Color, k: float) -> Color:
    """``color`` scaled by ``k`` (darker below 1, brighter above)."""
    return (color[0] * k, color[1] * k, color[2] * k)
