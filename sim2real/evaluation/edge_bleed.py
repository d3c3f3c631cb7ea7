"""Label-edge bleed: how much a translation's colours depend on the nearness of another class (halos, smears).

A translation that maps each class's colours by one function of the source colour (identity, a colour transfer,
a class-wise transfer) changes a pixel near a label edge the way it changes the class's pixels far from any edge.
Halos (a pale band of sky along a building) and smears (a car's colour spread onto the road) break that: near
the edge the output departs from the class's own colour map.

Per frame and class, the change a pixel gets (translated - source, per channel) is compared with the mean change
the class's *interior* pixels of the same source colour get (interior: farther than ``INTERIOR_PX`` from any pixel
of another label; same colour: the same ``COLOUR_BIN``-level bin in each channel, at least ``MIN_BIN`` interior
pixels in it; an interior pixel is compared with the mean of the *other* interior pixels of its bin). Per class
c, pooled over frames, the mean squared residual per channel (8-bit levels^2) over its band pixels and over its
interior pixels give the excess ``e_c = max(0, ms_band_c - ms_interior_c)``, and

    residual(p) = (out_p - src_p) - mean_{q interior, class(q) = class(p), bin(q) = bin(p), q != p} (out_q - src_q)
    bleed = sqrt(sum_c n_band_c * e_c / sum_c n_band_c)

band pixels: ``BAND_PX[0] <= d <= BAND_PX[1]``, with ``d`` the distance (px, L2) to the nearest pixel of another
label; band pixels whose colour bin has too few interior pixels are not scored. The band starts at 2 px so a lens
blur of about a pixel is not counted; subtracting each class's own interior (in quadrature) removes what is not
tied to edges (texture, noise, vignetting, a colour map that varies inside a bin), whatever its size in each
class. 0 for the identity and any per-class colour offset; a uniform +20-level halo over every band pixel reads
+20 on top of any noise; over a share s of the band pixels, 20 sqrt(s). It never goes below 0: an edge that
changes less than the interior is not better.

**Profile by distance** (:meth:`BleedTally.profile`): the same excess over each ring of :data:`RINGS_PX` (1, 2,
3-4, 5-8 and 9-16 px from another label) instead of the band: where the halos lie. A ring reads the size of what
is tied to edges at that distance; 1 px, outside the band, also holds a lens blur's step, 9-16 px a colour map
that varies with the distance to the edges.

Imports numpy and OpenCV only (used by :mod:`sim2real.evaluation.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import cv2
import numpy as np

#: pixels farther than this from another label are the reference for their class
INTERIOR_PX: Final = 16.0
#: band of pixels scored for bleed, in pixels from the nearest pixel of another label (inclusive)
BAND_PX: Final = (2.0, 8.0)
#: rings of the profile by distance: (name, lowest distance, highest distance, highest included)
RINGS_PX: Final = (("1", 1.0, 1.5, False), ("2", 1.5, 2.5, False), ("3-4", 2.5, 4.5, False),
                   ("5-8", 4.5, 8.5, False), ("9-16", 8.5, INTERIOR_PX, True))
#: source colours are binned by this many 8-bit levels per channel
COLOUR_BIN: Final = 8
#: a colour bin is a reference when this many interior pixels of the class fall in it
MIN_BIN: Final = 5


@dataclass
class BleedTally:
    """Per class id: sums of squared residuals (8-bit levels, per channel) and counts, band and interior."""

    classes: dict[int, np.ndarray] = field(default_factory=dict)  # id -> [band_sq, band_n, interior_sq, interior_n]
    rings: dict[int, np.ndarray] = field(default_factory=dict)  # id -> (len(RINGS_PX) + 1, 2): [sq, n], interior last

    def add(self, class_id: int, band_sq: float, band_n: int, interior_sq: float, interior_n: int) -> None:
        row = self.classes.setdefault(class_id, np.zeros(4))
        row += (band_sq, band_n, interior_sq, interior_n)

    def add_rings(self, class_id: int, rings: np.ndarray) -> None:
        """rings (len(RINGS_PX) + 1, 2): squared residual sums and counts (per channel) of the class's pixels in
        each ring, then in its interior."""
        self.rings[class_id] = self.rings.get(class_id, np.zeros((len(RINGS_PX) + 1, 2))) + rings

    def __add__(self, other: BleedTally) -> BleedTally:
        out = BleedTally({c: v.copy() for c, v in self.classes.items()}, {c: v.copy() for c, v in self.rings.items()})
        for c, v in other.classes.items():
            out.add(c, *v)
        for c, v in other.rings.items():
            out.add_rings(c, v)
        return out

    def profile(self) -> dict[str, float]:
        """Ring name (:data:`RINGS_PX`) -> the excess of that ring over the interior, as :meth:`bleed` for the
        band (levels; NaN for a ring without a scored pixel)."""
        out = {}
        for i, (name, *_) in enumerate(RINGS_PX):
            rows = [(r[i], r[-1]) for r in self.rings.values() if r[i, 1] > 0 and r[-1, 1] > 0]
            weight = sum(ring[1] for ring, _ in rows)
            excess = sum(ring[1] * max(0.0, ring[0] / ring[1] - inner[0] / inner[1]) for ring, inner in rows)
            out[name] = float(np.sqrt(excess / weight)) if weight else float("nan")
        return out

    def _scored(self) -> np.ndarray:
        """(N, 4) rows of the classes with band and interior pixels."""
        rows = [v for v in self.classes.values() if v[1] > 0 and v[3] > 0]
        return np.array(rows).reshape(-1, 4)

    def band_rms(self) -> float:
        """RMS residual over every scored band pixel (levels); NaN when no class was scored."""
        rows = self._scored()
        return float(np.sqrt(rows[:, 0].sum() / rows[:, 1].sum())) if len(rows) else float("nan")

    def interior_rms(self) -> float:
        """RMS residual over every scored interior pixel (levels); NaN when no class was scored."""
        rows = self._scored()
        return float(np.sqrt(rows[:, 2].sum() / rows[:, 3].sum())) if len(rows) else float("nan")

    def bleed(self) -> float:
        """sqrt of the band-weighted mean per-class excess of band over interior mean square (levels); NaN when
        no class was scored."""
        rows = self._scored()
        if not len(rows):
            return float("nan")
        excess = np.maximum(0.0, rows[:, 0] / rows[:, 1] - rows[:, 2] / rows[:, 3])
        return float(np.sqrt((rows[:, 1] * excess).sum() / rows[:, 1].sum()))


def distance_to_other_label(labels: np.ndarray) -> np.ndarray:
    """(H, W) integer labels -> (H, W) float32 L2 distance in pixels to the nearest pixel of another label.

    A pixel whose 4-neighbourhood holds another label is at distance 1 (no other label in the frame: +inf).
    """
    edge = np.zeros(labels.shape, bool)
    dy = labels[1:, :] != labels[:-1, :]
    dx = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    if not edge.any():
        return np.full(labels.shape, np.inf, np.float32)
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) + 1.0


def _bin_index(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 -> (N,) int64 index of the colour bin."""
    q = (rgb // COLOUR_BIN).astype(np.int64)
    n = 256 // COLOUR_BIN
    return (q[:, 0] * n + q[:, 1]) * n + q[:, 2]


def edge_bleed_tally(source: np.ndarray, translated: np.ndarray, labels: np.ndarray,
                     ignore: int | None = None) -> BleedTally:
    """One frame: source and translated (H, W, 3) uint8, labels (H, W) int -> :class:`BleedTally`.

    ``ignore``: a label value not scored (its pixels still bound the other classes).
    """
    if source.shape != translated.shape or source.shape[:2] != labels.shape or source.ndim != 3:
        raise ValueError(f"source {source.shape}, translated {translated.shape} and labels {labels.shape} "
                         "must be (H, W, 3), (H, W, 3) and (H, W)")
    dist = distance_to_other_label(labels).ravel()
    flat = labels.ravel()
    src = source.reshape(-1, 3)
    change = translated.reshape(-1, 3).astype(np.float64) - src
    bins = _bin_index(src)
    n_bins = (256 // COLOUR_BIN) ** 3
    interior_px = dist > INTERIOR_PX
    band_px = (dist >= BAND_PX[0]) & (dist <= BAND_PX[1])
    tally = BleedTally()
    for c in np.unique(flat):
        if ignore is not None and c == ignore:
            continue
        cls = flat == c
        inner, near = np.flatnonzero(cls & interior_px), np.flatnonzero(cls & band_px)
        count = np.bincount(bins[inner], minlength=n_bins)
        mean = np.stack([np.bincount(bins[inner], weights=change[inner, k], minlength=n_bins)
                         for k in range(3)], 1) / np.maximum(count, 1)[:, None]
        near = near[count[bins[near]] >= MIN_BIN]
        inner = inner[count[bins[inner]] >= MIN_BIN]
        band_sq = float(((change[near] - mean[bins[near]]) ** 2).sum())
        n = count[bins[inner]][:, None]
        interior_sq = float((((change[inner] - mean[bins[inner]]) * n / (n - 1)) ** 2).sum())  # leave one out
        if len(near) and len(inner):
            tally.add(int(c), band_sq, 3 * len(near), interior_sq, 3 * len(inner))
        if len(inner):
            members = np.flatnonzero(cls)
            scored = members[count[bins[members]] >= MIN_BIN]
            rings = _ring_sums(((change[scored] - mean[bins[scored]]) ** 2).sum(1), dist[scored])
            tally.add_rings(int(c), np.vstack([rings, [interior_sq, 3 * len(inner)]]))
    return tally


def _ring_sums(residual_sq: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """One class's scored pixels (in a bin with an interior reference): their squared residuals summed over
    channels (M,) and their distances to another label (M,) -> (len(RINGS_PX), 2): per ring of :data:`RINGS_PX`
    the sum of squares and the count (per channel)."""
    out = np.zeros((len(RINGS_PX), 2))
    for i, (_, low, high, closed) in enumerate(RINGS_PX):
        ring = (dist >= low) & ((dist <= high) if closed else (dist < high))
        out[i] = (float(residual_sq[ring].sum()), 3 * int(ring.sum()))
    return out
