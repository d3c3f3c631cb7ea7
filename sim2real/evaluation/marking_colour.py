"""Road-marking colour: whether the road's painted markings keep their hue against the road (a yellow centre line
stays yellow, whatever the road's colour becomes).

Per frame, over its road pixels (train id ``ROAD``), CIE Lab a, b from OpenCV (sRGB, D65): the road's median
source chroma (a, b) per frame; a pixel is *painted* when its source chroma lies at least ``PAINT_CHROMA`` Lab
units from that median (CARLA's asphalt varies by 1-3, its yellow lines by ~20; white lines are not painted in
this sense: they differ in lightness, not chroma). In a frame with at least ``MIN_PIXELS`` painted and as many
unpainted road pixels, the vector from the unpainted pixels' mean (a, b) to the painted pixels' mean,

    d_s in the source,   d_t in the translation,

gives the angle between d_s and d_t (degrees, 0-180) and the ratio |d_t| / |d_s|. Over the frames that have
markings: ``hue_error`` = the mean angle, ``chroma_ratio`` = the median ratio (descriptive: real paint is less
saturated than a simulator's; no better direction).

The identity scores 0 and 1. A colour cast added to every pixel moves both means alike (0); scaling every
chroma about any point keeps the angle (0, and a ratio below 1); a map that turns the painted pixels' hue
against the road's by theta (per-axis gains on a and b, or a road colour map that takes the yellow off) scores
about theta: CARLA's yellow lines turned mint green read ~25-30 degrees. Its verdicts have no noise estimate
(frames with markings are few). Imports numpy (and the Lab conversion, tally and angle of :mod:`~sim2real.evaluation.
instance_colour`); used by :mod:`sim2real.evaluation.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from sim2real.core.labels import TRAIN_ID
from sim2real.evaluation.instance_colour import AbPairTally, lab_ab, length_ratio, turn_degrees

#: the class whose markings are scored (train id)
ROAD: Final = TRAIN_ID["road"]
#: a road pixel is painted when its source chroma lies at least this far (Lab a, b) from the road's median
PAINT_CHROMA: Final = 12.0
#: a frame is scored when it has at least this many painted and this many unpainted road pixels
MIN_PIXELS: Final = 50


@dataclass
class MarkingColourTally(AbPairTally):
    """Per scored frame, the vectors from the road's unpainted to its painted mean (a, b): rows [d_s (2), d_t (2)]."""

    def frames(self) -> int:
        return len(self.rows)

    def hue_error(self) -> float:
        """Mean angle (degrees) between d_s and d_t over the scored frames; NaN without one."""
        t = self._table()
        return float(turn_degrees(t).mean()) if len(t) else float("nan")

    def chroma_ratio(self) -> float:
        """Median |d_t| / |d_s| over the scored frames; NaN without one."""
        t = self._table()
        return float(np.median(length_ratio(t))) if len(t) else float("nan")


def marking_colour_tally(source: np.ndarray, translated: np.ndarray, semantic: np.ndarray) -> MarkingColourTally:
    """One frame: source and translated (H, W, 3) uint8 RGB, semantic (H, W) train ids -> its
    :class:`MarkingColourTally` (no row when the frame has too few painted or unpainted road pixels)."""
    if source.shape != translated.shape or source.shape[:2] != semantic.shape or source.ndim != 3:
        raise ValueError(f"source {source.shape}, translated {translated.shape} and semantic {semantic.shape} "
                         "must be (H, W, 3), (H, W, 3) and (H, W)")
    road = semantic == ROAD
    if road.sum() < 2 * MIN_PIXELS:
        return MarkingColourTally()
    src, out = lab_ab(source[road]), lab_ab(translated[road])
    painted = np.hypot(*(src - np.median(src, 0)).T) >= PAINT_CHROMA
    if min(painted.sum(), (~painted).sum()) < MIN_PIXELS:
        return MarkingColourTally()
    vectors = [ab[painted].mean(0) - ab[~painted].mean(0) for ab in (src, out)]
    return MarkingColourTally([np.concatenate(vectors)])
