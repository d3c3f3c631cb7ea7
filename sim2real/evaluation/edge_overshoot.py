"""Label-edge overshoot: light and dark rims drawn along label edges (a sharpening halo).

A lens blurs a label edge into a ramp between the two sides: every pixel on it lies between the lightness of the
flat parts around it. A sharpening filter, or a translator that learned one, overshoots: a light rim on the
light side, a dark rim on the dark side (a pale line along a building's edge against the sky, a dark line along
a lamp post). Edge bleed (:mod:`sim2real.evaluation.edge_bleed`) starts 2 px from the edge, so it does not see
a rim 1-2 px wide; this measure does.

Per frame, with y the luma (8-bit levels, :data:`sim2real.core.colour.LUMA_WEIGHTS`) and d the distance to the
nearest pixel of another label (:func:`sim2real.evaluation.edge_bleed.distance_to_other_label`):

    flat  = {q : d(q) >= FLAT_PX}                         (the parts the edge runs between)
    hi(p) = max {y(q) : q in flat, |q - p|_inf <= RADIUS_PX},   lo(p) = min {...}
    light(p) = max(0, y(p) - hi(p)),    dark(p) = max(0, lo(p) - y(p))

over the edge pixels p (d(p) <= EDGE_PX: the pixels with another label in their 4-neighbourhood, both sides of
the edge) that have a flat pixel of their own label in their window: a structure thinner than about
2 ``FLAT_PX`` (a distant pole) has no flat part to compare with and is not scored. Reported: the means of light
and dark over the scored pixels, pooled over frames (levels). 0 for a frame of flat regions and for any monotone
ramp across the edge (a blur). A frame of flat regions with its edge pixels raised 20 levels reads 20 light
where both sides are equally light, 10 where they differ (the dark side's raised pixels stay below the light
side). Texture in the flat parts widens the envelope, so texture is not counted as a rim; nor is a halo wider
than ``FLAT_PX`` (it lifts the envelope too; edge bleed sees it). The source's own figure (the identity's) is
the reference: a rendered frame has rims of its own (a lit edge, an outline).

Imports numpy and OpenCV only (used by :mod:`sim2real.evaluation.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from sim2real.core.colour import LUMA_WEIGHTS
from sim2real.evaluation.edge_bleed import distance_to_other_label

__all__ = ["EDGE_PX", "FLAT_PX", "RADIUS_PX", "OvershootTally", "edge_overshoot_tally"]

#: pixels at most this far from another label are scored (1: a 4-neighbour has another label)
EDGE_PX: Final = 1.0
#: pixels at least this far from another label form the envelope
FLAT_PX: Final = 3.0
#: half-size (px) of the square window the envelope is taken over
RADIUS_PX: Final = 5
_NONE: Final = 1.0e4  # stands for "no flat pixel" in the max / min filters


@dataclass(frozen=True)
class OvershootTally:
    """Sums over scored edge pixels: light and dark overshoot (8-bit luma levels) and their count."""

    light_sum: float = 0.0
    dark_sum: float = 0.0
    count: int = 0

    def __add__(self, other: OvershootTally) -> OvershootTally:
        return OvershootTally(self.light_sum + other.light_sum, self.dark_sum + other.dark_sum,
                              self.count + other.count)

    def light(self) -> float:
        """Mean light overshoot per edge pixel (levels); NaN when no pixel was scored."""
        return self.light_sum / self.count if self.count else float("nan")

    def dark(self) -> float:
        """Mean dark overshoot per edge pixel (levels); NaN when no pixel was scored."""
        return self.dark_sum / self.count if self.count else float("nan")


def edge_overshoot_tally(rgb: np.ndarray, labels: np.ndarray, ignore: int | None = None) -> OvershootTally:
    """One frame: rgb (H, W, 3) uint8, labels (H, W) int -> :class:`OvershootTally`.

    ``ignore``: a label value whose pixels are neither scored nor part of the envelope (they still bound the
    other labels).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != labels.shape:
        raise ValueError(f"rgb {rgb.shape} and labels {labels.shape} must be (H, W, 3) and (H, W)")
    luma = rgb.astype(np.float32) @ np.asarray(LUMA_WEIGHTS, np.float32)
    dist = distance_to_other_label(labels)
    valid = np.ones(labels.shape, bool) if ignore is None else labels != ignore
    flat = valid & (dist >= FLAT_PX)
    window = np.ones((2 * RADIUS_PX + 1, 2 * RADIUS_PX + 1), np.uint8)
    hi = cv2.dilate(np.where(flat, luma, -_NONE).astype(np.float32), window, borderValue=-_NONE)
    lo = cv2.erode(np.where(flat, luma, _NONE).astype(np.float32), window, borderValue=_NONE)
    scored = valid & (dist <= EDGE_PX) & _own_flat_near(labels, flat, window)
    if not scored.any():
        return OvershootTally()
    light = np.maximum(0.0, luma[scored] - hi[scored])
    dark = np.maximum(0.0, lo[scored] - luma[scored])
    return OvershootTally(float(light.sum()), float(dark.sum()), int(scored.sum()))


def _own_flat_near(labels: np.ndarray, flat: np.ndarray, window: np.ndarray) -> np.ndarray:
    """(H, W) bool: the window around the pixel holds a flat pixel of the pixel's own label."""
    out = np.zeros(labels.shape, bool)
    for c in np.unique(labels[flat]):
        near = cv2.dilate((flat & (labels == c)).astype(np.uint8), window) > 0
        out |= near & (labels == c)
    return out
