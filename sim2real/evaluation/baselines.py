"""Trivial baselines every translator report is compared with: no learning, statistics of real frames only.

All of them map simulator frames (B, 3, H, W) in [-1, 1] (with their semantic maps where used) to frames of the
same shape and range:

==================  ================================================================================
``identity``        the simulator frame unchanged
``reinhard``        global colour transfer (Reinhard et al., 2001): per channel of CIE Lab,
                    out = (x - mu_src) * sigma_real / sigma_src + mu_real, mu / sigma over the frame
``histogram``       per-channel histogram matching of RGB to the pooled histogram of the real frames
                    (out = CDF_real^-1(CDF_src(x)), 256 levels)
``classwise``       class-wise colour transfer: Reinhard per class, with the real statistics of each
                    CamVid class from labelled real frames and the source statistics of the simulator
                    frame's pixels of that class (its semantic map, train ids mapped to CamVid classes);
                    pixels of classes without real statistics (or with fewer than ``min_pixels`` in the
                    frame) use the global transfer.
``classwise_pooled`` the same per-class Lab transfer with the source statistics pooled over every
                    evaluated source frame instead of each frame's own: one fixed affine colour map per
                    class (6 numbers each), which no frame's content can skew. Usually the stronger of the
                    two; a class-wise style memory must beat both.
==================  ================================================================================

Every transfer caps the std ratio sigma_real / sigma_src to [1/4, 4], so a near-flat region (a uniform
simulator class) is not stretched into noise.

:class:`RealColourStats` holds the fitted statistics (fit once on the real frames, e.g. ``camvid/train``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from torch import Tensor

from sim2real.core.errors import ConfigError
from sim2real.core.labels import CAMVID_NUM_CLASSES, IGNORE_ID, TRAIN_ID_TO_CAMVID
from sim2real.translator.colour_prior import MAX_GAIN, PRIOR_ROWS, STD_EPS, lab_to_srgb, srgb_to_lab

__all__ = [
    "BASELINES",
    "CONTROLS",
    "RealColourStats",
    "apply_baseline",
    "camvid_lut",
    "classwise_transfer",
    "fit_real_stats",
    "fit_source_stats",
    "fit_stats_of_frames",
    "histogram_match",
    "lab_to_rgb",
    "paint_labels",
    "pooled_lab_maps",
    "reinhard_transfer",
    "rgb_to_lab",
]

#: the negative control rows of a report (not baselines: a label map, not a translation).
CONTROLS: Final = ("painted_labels",)
#: baseline names in report order.
BASELINES: Final = ("identity", "reinhard", "histogram", "classwise", "classwise_pooled")
_LEVELS: Final = 256


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [-1, 1] -> CIE Lab (D65; L in [0, 100]): (B, 3, H, W) -> (B, 3, H, W) float64."""
    return srgb_to_lab(rgb.double())


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIE Lab (D65) -> sRGB in [-1, 1] (clamped to the gamut): (B, 3, H, W) -> (B, 3, H, W) float32."""
    return lab_to_srgb(lab.double()).float()


@dataclass(frozen=True)
class RealColourStats:
    """Colour statistics of a set of real frames.

    ``lab_mean`` / ``lab_std`` (3,): global Lab statistics; ``class_mean`` / ``class_std`` (K, 3): per CamVid
    class (NaN rows for classes without labelled pixels); ``class_pixels`` (K,); ``cdf`` (3, 256): pooled
    cumulative histograms of the 8-bit RGB levels; ``frames``: how many frames they came from.
    """

    lab_mean: np.ndarray
    lab_std: np.ndarray
    class_mean: np.ndarray
    class_std: np.ndarray
    class_pixels: np.ndarray
    cdf: np.ndarray
    frames: int


def _to_levels(rgb: Tensor) -> Tensor:
    return ((rgb.float() + 1) * 127.5).round().clamp(0, 255).long()


def fit_real_stats(rgb: Tensor, labels: Tensor | None = None, num_classes: int = CAMVID_NUM_CLASSES
                   ) -> RealColourStats:
    """Fit :class:`RealColourStats` on real frames: rgb (N, 3, H, W) in [-1, 1], labels (N, H, W) CamVid ids
    (255 = ignore; None = no class statistics)."""
    if rgb.ndim != 4 or rgb.shape[1] != 3 or rgb.shape[0] < 1:
        raise ConfigError(f"fit_real_stats needs real frames (N, 3, H, W), got {tuple(rgb.shape)}")
    return fit_stats_of_frames(((rgb[i], None if labels is None else labels[i]) for i in range(rgb.shape[0])),
                               num_classes)


def fit_stats_of_frames(frames: Iterable[tuple[Tensor, Tensor | None]], num_classes: int = CAMVID_NUM_CLASSES
                        ) -> RealColourStats:
    """:func:`fit_real_stats` over a stream of frames, one at a time: (rgb (3, H, W) in [-1, 1], labels (H, W)
    class ids or None); frames may differ in size. Raises ConfigError for an empty stream."""
    sums = torch.zeros(num_classes + 1, 3, dtype=torch.float64)
    sq = torch.zeros_like(sums)
    counts = torch.zeros(num_classes + 1, dtype=torch.float64)
    hist = torch.zeros(3, _LEVELS, dtype=torch.float64)
    frames_seen = 0
    for rgb, labels in frames:
        lab = rgb_to_lab(rgb[None])[0].flatten(1).T  # (P, 3)
        cls = (labels.flatten().long() if labels is not None
               else torch.full((lab.shape[0],), IGNORE_ID, dtype=torch.long))
        valid = (cls >= 0) & (cls < num_classes) & (cls != IGNORE_ID)
        cls = torch.where(valid, cls, num_classes)  # last row: unlabelled
        sums.index_add_(0, cls, lab)
        sq.index_add_(0, cls, lab * lab)
        counts += torch.bincount(cls, minlength=num_classes + 1).double()
        levels = _to_levels(rgb).flatten(1)
        for c in range(3):
            hist[c] += torch.bincount(levels[c], minlength=_LEVELS).double()
        frames_seen += 1
    if frames_seen == 0:
        raise ConfigError("colour statistics need at least one frame, got none")
    total = counts.sum()
    mean = sums.sum(0) / total
    std = (sq.sum(0) / total - mean**2).clamp(min=0).sqrt()
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = (sums[:num_classes] / counts[:num_classes, None]).numpy()
        cs = np.sqrt(np.maximum((sq[:num_classes] / counts[:num_classes, None]).numpy() - cm**2, 0))
    cm[counts[:num_classes].numpy() == 0] = np.nan
    cs[counts[:num_classes].numpy() == 0] = np.nan
    cdf = (hist.cumsum(1) / hist.sum(1, keepdim=True)).numpy()
    return RealColourStats(mean.numpy(), std.numpy(), cm, cs, counts[:num_classes].numpy(), cdf, frames_seen)


def _affine(mean: np.ndarray, std: np.ndarray, source: tuple[np.ndarray, np.ndarray]) -> tuple[Tensor, Tensor]:
    """(gain, offset) (3,) float64 of out = (x - mu_src) * ratio + mu_real (see :func:`_transfer`)."""
    mu, sd = (torch.from_numpy(np.asarray(v, np.float64)) for v in source)
    ratio = (torch.from_numpy(np.asarray(std, np.float64)) / (sd + STD_EPS)).clamp(1 / MAX_GAIN, MAX_GAIN)
    return ratio, torch.from_numpy(np.asarray(mean, np.float64)) - mu * ratio


def pooled_lab_maps(stats: RealColourStats, source_stats: RealColourStats, class_lut: Tensor | None = None
                    ) -> tuple[Tensor, Tensor]:
    """The ``classwise_pooled`` transfer as a table: (gain, offset), each (256, 3) float64, row = train id, with
    lab(out) = gain[t] * lab(x) + offset[t]. An id whose class lacks real or source statistics (or that
    ``class_lut`` maps to none) takes the global map. For :class:`~sim2real.translator.colour_prior.
    ClassColourPrior`."""
    lut = camvid_lut() if class_lut is None else class_lut
    gain_glob, offset_glob = _affine(stats.lab_mean, stats.lab_std, (source_stats.lab_mean, source_stats.lab_std))
    gain = gain_glob.repeat(PRIOR_ROWS, 1)
    offset = offset_glob.repeat(PRIOR_ROWS, 1)
    for train_id in range(PRIOR_ROWS):
        k = int(lut[train_id])
        if k < 0 or k >= min(len(stats.class_mean), len(source_stats.class_mean)):
            continue
        if np.isnan(stats.class_mean[k]).any() or np.isnan(source_stats.class_mean[k]).any():
            continue
        gain[train_id], offset[train_id] = _affine(stats.class_mean[k], stats.class_std[k],
                                                   (source_stats.class_mean[k], source_stats.class_std[k]))
    return gain, offset


def _transfer(lab: Tensor, mask: Tensor, mean: np.ndarray, std: np.ndarray,
              source: tuple[np.ndarray, np.ndarray] | None = None) -> Tensor:
    """Reinhard transfer of the pixels in ``mask`` of one frame: lab (3, H, W), mask (H, W) -> (3, P) values.

    out = (x - mu_src) * clamp(sigma_real / sigma_src, 1/4, 4) + mu_real, with (mu_src, sigma_src) the pixels'
    own statistics or ``source`` (pooled statistics, (3,) each).
    """
    px = lab[:, mask]
    if source is None:
        source = (px.mean(1).numpy(), px.std(1, unbiased=False).numpy())
    gain, offset = _affine(mean, std, source)
    return px * gain.view(3, 1) + offset.view(3, 1)


def reinhard_transfer(rgb: Tensor, stats: RealColourStats) -> Tensor:
    """Global Lab mean / std transfer of each frame to the real statistics: (B, 3, H, W) -> (B, 3, H, W)."""
    lab = rgb_to_lab(rgb)
    out = torch.empty_like(lab)
    every = torch.ones(lab.shape[-2:], dtype=torch.bool)
    for b in range(lab.shape[0]):
        out[b] = _transfer(lab[b], every, stats.lab_mean, stats.lab_std).view_as(lab[b])
    return lab_to_rgb(out)


def histogram_match(rgb: Tensor, stats: RealColourStats) -> Tensor:
    """Per-channel histogram matching of each frame to the real frames' pooled histograms: -> (B, 3, H, W)."""
    levels = _to_levels(rgb)
    out = torch.empty(rgb.shape, dtype=torch.float32)
    for b in range(rgb.shape[0]):
        for c in range(3):
            counts = torch.bincount(levels[b, c].flatten(), minlength=_LEVELS).double().numpy()
            src_cdf = np.cumsum(counts) / counts.sum()
            # level -> the lowest real level whose CDF reaches the same quantile (CDF^-1 of a step function)
            mapping = np.searchsorted(stats.cdf[c], src_cdf - 1e-12, side="left").clip(0, _LEVELS - 1)
            out[b, c] = torch.from_numpy(mapping.astype(np.float32))[levels[b, c]]
    return out / 127.5 - 1


def camvid_lut() -> Tensor:
    """(256,) int64: train id -> CamVid class, -1 where none (the default class space of the real statistics)."""
    lut = torch.full((256,), -1, dtype=torch.long)
    for train_id, camvid in TRAIN_ID_TO_CAMVID.items():
        lut[train_id] = camvid
    return lut


def fit_source_stats(rgb: Tensor, semantic: Tensor, class_lut: Tensor | None = None) -> RealColourStats:
    """Pooled class statistics of simulator frames for ``classwise_pooled``: rgb (N, 3, H, W) in [-1, 1],
    semantic (N, H, W) train ids; ``class_lut`` as in :func:`classwise_transfer`."""
    lut = camvid_lut() if class_lut is None else class_lut
    return fit_real_stats(rgb, lut[semantic.long().clamp(0, 255)], num_classes=_lut_classes(lut))


def _lut_classes(lut: Tensor) -> int:
    return int(lut.max()) + 1


def classwise_transfer(rgb: Tensor, semantic: Tensor, stats: RealColourStats, *, min_pixels: int = 16,
                       class_lut: Tensor | None = None, source_stats: RealColourStats | None = None) -> Tensor:
    """Class-wise Reinhard transfer (module docstring): rgb (B, 3, H, W), semantic (B, H, W) train ids -> rgb.

    ``class_lut`` (256,): train id -> class index of ``stats`` (-1 = none); default :func:`camvid_lut` (statistics
    fitted on CamVid labels). Statistics fitted on train-id labels use ``torch.arange(256)``. ``source_stats``
    (from :func:`fit_source_stats`): pooled source statistics instead of each frame's own (``classwise_pooled``).
    """
    lut = camvid_lut() if class_lut is None else class_lut
    lab = rgb_to_lab(rgb)
    out = torch.empty_like(lab)
    every = torch.ones(lab.shape[-2:], dtype=torch.bool)
    glob = None if source_stats is None else (source_stats.lab_mean, source_stats.lab_std)
    for b in range(lab.shape[0]):
        out[b] = _transfer(lab[b], every, stats.lab_mean, stats.lab_std, glob).view_as(lab[b])
        classes = lut[semantic[b].long().clamp(0, 255)]
        for k in range(stats.class_mean.shape[0]):
            mask = classes == k
            # per frame, a class needs min_pixels for its own statistics; the pooled map applies to any pixel
            few = int(mask.sum()) < (min_pixels if source_stats is None else 1)
            if few or np.isnan(stats.class_mean[k]).any():
                continue
            src = None
            if source_stats is not None:
                if k >= len(source_stats.class_mean) or np.isnan(source_stats.class_mean[k]).any():
                    continue
                src = (source_stats.class_mean[k], source_stats.class_std[k])
            out[b][:, mask] = _transfer(lab[b], mask, stats.class_mean[k], stats.class_std[k], src)
    return lab_to_rgb(out)


def paint_labels(semantic: Tensor, stats: RealColourStats, class_lut: Tensor | None = None) -> Tensor:
    """The negative control ``painted_labels``: every pixel set to the real mean colour of its class (the global
    mean where the class has no statistics): semantic (B, H, W) train ids -> (B, 3, H, W) in [-1, 1].

    No texture, no shading: it shows what the judge's mIoU alone rewards (a label map in real colours scores
    well) and what its realism distance punishes."""
    lut = camvid_lut() if class_lut is None else class_lut
    classes = lut[semantic.long().clamp(0, 255)]
    means = torch.from_numpy(np.asarray(stats.class_mean, np.float64))
    glob = torch.from_numpy(np.asarray(stats.lab_mean, np.float64))
    table = torch.where(torch.isnan(means), glob.expand_as(means), means)  # (K, 3)
    table = torch.cat([table, glob[None]])  # last row: pixels without a class
    idx = torch.where((classes >= 0) & (classes < len(means)), classes, len(means))
    return lab_to_rgb(table[idx].permute(0, 3, 1, 2))


def apply_baseline(name: str, rgb: Tensor, semantic: Tensor, stats: RealColourStats, *,
                   class_lut: Tensor | None = None, source_stats: RealColourStats | None = None) -> Tensor:
    """Run the baseline ``name`` (one of :data:`BASELINES`) on frames: -> (B, 3, H, W) in [-1, 1]
    (``class_lut``, ``source_stats``: see :func:`classwise_transfer`; ``classwise_pooled`` needs ``source_stats``).
    """
    if name == "identity":
        return rgb.clone()
    if name == "reinhard":
        return reinhard_transfer(rgb, stats)
    if name == "histogram":
        return histogram_match(rgb, stats)
    if name == "classwise":
        return classwise_transfer(rgb, semantic, stats, class_lut=class_lut)
    if name == "classwise_pooled":
        if source_stats is None:
            raise ConfigError("classwise_pooled needs the pooled source statistics (fit_source_stats)")
        return classwise_transfer(rgb, semantic, stats, class_lut=class_lut, source_stats=source_stats)
    raise ConfigError(f"unknown baseline {name!r}; valid: {', '.join(BASELINES)}")
