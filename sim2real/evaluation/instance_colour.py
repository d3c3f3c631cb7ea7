"""Instance colour: whether each object keeps its own colour (a blue bus stays blue, a red car red).

A translation may make colours more or less saturated, as real cameras and scenes are (the simulator's vehicle
colours spread several times wider than real ones), but it should not give every object of a class the same
hue: an engineer who tracks or re-identifies objects expects a red car to leave red. Per frame and thing
instance (instance id > 0, at least ``MIN_PIXELS`` pixels), the mean CIE Lab a, b of its pixels in the source
(a_s, b_s) and in the translation (a_t, b_t) give, over the *coloured* instances (source chroma
C_s = |(a_s, b_s)| >= ``MIN_CHROMA``):

    hue_error    = mean_i angle((a_s, b_s)_i, (a_t, b_t)_i)          degrees in [0, 180]
    chroma_ratio = median_i C_t,i / C_s,i

and, over the *grey* instances (C_s < ``GREY_CHROMA``), ``grey_tint`` = mean_i C_t,i (Lab units): the colour a
translation paints on white, grey and black objects. The identity scores 0, 1 and the grey instances' own chroma;
a rotation of every a, b by theta degrees scores theta; halving every chroma scores hue 0, ratio 0.5; painting
every instance one colour scores a large hue error. Scaling every chroma down keeps each hue while the output
keeps some chroma: that collapse shows in the chroma ratio (which has no better direction: real colours are
less saturated than simulated ones). Below a few Lab units of output chroma the angle is noise (an output
scaled to 0.1 of chroma 30 reads ~6 degrees, a wholly grey one an arbitrary angle), so read the hue error with
the chroma ratio. Each instance's chroma is that of its mean (a, b), not the mean of its pixels' chroma. Lab
from OpenCV (sRGB, D65; L in [0, 100], a, b about [-128, 127]).

Imports numpy and OpenCV only (used by :mod:`sim2real.evaluation.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Self

import cv2
import numpy as np

#: instances with fewer pixels are not scored (their mean colour is mostly edge and blur)
MIN_PIXELS: Final = 200
#: an instance is coloured when the chroma of its source's mean Lab (a, b) is at least this
MIN_CHROMA: Final = 12.0
#: an instance is grey when the chroma of its source's mean Lab (a, b) is below this
GREY_CHROMA: Final = 5.0


def turn_degrees(table: np.ndarray) -> np.ndarray:
    """(N, 4) rows [a_source, b_source, a_translated, b_translated] -> (N,) the angle between the two (a, b)
    vectors of each row, degrees in [0, 180] (a vector of (0, 0) has no angle: arctan2 reads 0 degrees for it)."""
    turn = np.arctan2(table[:, 3], table[:, 2]) - np.arctan2(table[:, 1], table[:, 0])
    return np.degrees(np.abs(np.angle(np.exp(1j * turn))))


def length_ratio(table: np.ndarray) -> np.ndarray:
    """(N, 4) rows as :func:`turn_degrees` -> (N,) |translated (a, b)| / |source (a, b)|."""
    return np.hypot(table[:, 2], table[:, 3]) / np.hypot(table[:, 0], table[:, 1])


@dataclass
class AbPairTally:
    """Rows of two Lab (a, b) vectors, [a_source, b_source, a_translated, b_translated], summed over frames by
    ``+`` (the instance and road-marking colour tallies)."""

    rows: list[np.ndarray] = field(default_factory=list)

    def __add__(self, other: Self) -> Self:
        return type(self)(self.rows + other.rows)

    def _table(self) -> np.ndarray:
        return np.array(self.rows, np.float64).reshape(-1, 4)


@dataclass
class InstanceColourTally(AbPairTally):
    """Mean Lab (a, b) per scored instance: rows [a_source, b_source, a_translated, b_translated]."""

    def _coloured(self) -> np.ndarray:
        t = self._table()
        return t[np.hypot(t[:, 0], t[:, 1]) >= MIN_CHROMA]

    def coloured_count(self) -> int:
        return len(self._coloured())

    def hue_error(self) -> float:
        """Mean angle (degrees) between the source's and the translation's mean (a, b) over coloured instances;
        NaN without one. A translated mean of (0, 0) has no angle: arctan2 reads 0 degrees for it."""
        t = self._coloured()
        return float(turn_degrees(t).mean()) if len(t) else float("nan")

    def chroma_ratio(self) -> float:
        """Median of translated / source chroma over coloured instances; NaN without one."""
        t = self._coloured()
        return float(np.median(length_ratio(t))) if len(t) else float("nan")

    def grey_tint(self) -> float:
        """Mean translated chroma (Lab units) over instances grey in the source; NaN without one."""
        t = self._table()
        t = t[np.hypot(t[:, 0], t[:, 1]) < GREY_CHROMA]
        return float(np.hypot(t[:, 2], t[:, 3]).mean()) if len(t) else float("nan")


def lab_ab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB -> (N, 2) float32 CIE Lab a, b, N the number of pixels."""
    lab = cv2.cvtColor(rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    return lab.reshape(-1, 3)[:, 1:]


def instance_colour_tally(source: np.ndarray, translated: np.ndarray, instance: np.ndarray
                          ) -> InstanceColourTally:
    """One frame: source and translated (H, W, 3) uint8 RGB, instance ids (H, W) int (0 = no instance) ->
    :class:`InstanceColourTally` of its instances with at least ``MIN_PIXELS`` pixels."""
    if source.shape != translated.shape or source.shape[:2] != instance.shape or source.ndim != 3:
        raise ValueError(f"source {source.shape}, translated {translated.shape} and instance {instance.shape} "
                         "must be (H, W, 3), (H, W, 3) and (H, W)")
    ids, index, counts = np.unique(instance.ravel(), return_inverse=True, return_counts=True)
    keep = (ids > 0) & (counts >= MIN_PIXELS)
    if not keep.any():
        return InstanceColourTally()
    sums = [np.stack([np.bincount(index, weights=ab[:, k], minlength=len(ids)) for k in range(2)], 1)
            for ab in (lab_ab(source), lab_ab(translated))]
    means = np.concatenate(sums, 1)[keep] / counts[keep, None]
    return InstanceColourTally(list(means))
