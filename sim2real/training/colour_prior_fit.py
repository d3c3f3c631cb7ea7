"""Fitting the generator's class-wise colour prior at the start of a run (``generator.use_colour_prior``).

The fixed prior is the ``classwise_pooled`` baseline's map (:func:`~sim2real.evaluation.baselines.
pooled_lab_maps`): per class, the Lab mean / std of the run's simulator frames pooled over
``colour_prior.source_frames`` samples, mapped to those of the labelled real frames of ``colour_prior.images`` /
``colour_prior.labels``. The per-frame prior (``generator.colour_prior_per_frame``) keeps both statistics per
class (:func:`frame_tables`) and maps each frame's own. Fitted once, stored in the generator's buffers (so in
every checkpoint and export), never trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import torch
from torch import Tensor

from sim2real.core.errors import ConfigError
from sim2real.core.labels import CAMVID_NUM_CLASSES
from sim2real.data.datasets import IMAGE_SUFFIXES
from sim2real.evaluation.baselines import RealColourStats, camvid_lut, fit_stats_of_frames, pooled_lab_maps
from sim2real.training.config import CameraCalibrationConfig, ColourPriorConfig
from sim2real.translator.colour_prior import FRAME_ROWS, ClassColourPrior

__all__ = ["SAMPLE_SEED", "PriorStatistics", "fit_colour_prior", "frame_tables", "install_colour_prior",
           "labelled_pairs", "labelled_set", "read_labelled_frames", "sample_indices", "source_frames"]


@dataclass(frozen=True)
class PriorStatistics:
    """What a colour prior is fitted from: Lab statistics of the labelled real frames and of the simulator
    frames, per class of one label space, and ``lut`` (256,) train id -> class (-1 = none)."""

    real: RealColourStats
    simulated: RealColourStats
    lut: Tensor


def labelled_pairs(images: Path, labels: Path, section: str = "colour_prior") -> list[tuple[Path, Path]]:
    """(image, label) files of two folders paired by file stem, sorted. Raises ConfigError (naming the config
    ``section``) when a folder is missing, holds no image, or an image has no label."""
    if not images.is_dir() or not labels.is_dir():
        raise ConfigError(f"{section}: {images} and {labels} must both be folders")
    label_of = {p.stem: p for p in labels.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"{section}: no image files in {images}")
    missing = [p.name for p in files if p.stem not in label_of]
    if missing:
        raise ConfigError(f"{section}: {len(missing)} image(s) in {images} have no label in {labels} "
                          f"(e.g. {missing[:3]})")
    return [(p, label_of[p.stem]) for p in files]


def read_labelled_frames(pairs: list[tuple[Path, Path]], max_frames: int, section: str = "colour_prior"
                         ) -> Iterator[tuple[Tensor, Tensor]]:
    """At most ``max_frames`` pairs (a fixed random subset, :func:`sample_indices`) as (rgb (3, H, W) in [-1, 1],
    labels (H, W) int64), one at a time. Raises ConfigError (naming the config ``section``) for an unreadable file
    or a label map of another size."""
    for image, label in (pairs[i] for i in sample_indices(len(pairs), max_frames)):
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        ids = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
        if bgr is None or ids is None or ids.ndim != 2 or ids.shape != bgr.shape[:2]:
            raise ConfigError(f"{section}: cannot read {image.name} with its label {label} as one frame "
                              "(both must decode, the label as one channel of the same size)")
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1).float() / 127.5 - 1
        yield rgb, torch.from_numpy(ids.astype(np.int64))


#: seed of the frames a prior is fitted from (a fixed subset: the same prior for the same data)
SAMPLE_SEED: Final = 0


def sample_indices(size: int, count: int) -> list[int]:
    """``min(count, size)`` distinct indices of ``size`` items, drawn uniformly at random with :data:`SAMPLE_SEED`,
    sorted (all of them when ``count >= size``). Random rather than evenly spaced: even spacing aliases with data
    that cycle a setting by index (the procedural source's four times of day: every 20th of 4 000 frames is 8:00;
    a look folder's frames cycle the same way)."""
    picked = torch.randperm(size, generator=torch.Generator().manual_seed(SAMPLE_SEED))[: min(count, size)]
    return sorted(picked.tolist())


def source_frames(source: object, count: int, lut: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """``count`` samples of a source dataset with their labels mapped by ``lut`` (train id -> class, -1 = none):
    a fixed random subset of a map-style dataset (:func:`sample_indices`), the first ones of a stream."""
    if hasattr(source, "__getitem__"):
        indices = sample_indices(len(source), count)  # type: ignore[arg-type]
        samples = (source[i] for i in indices)  # type: ignore[index]
    else:
        samples = islice(iter(source), count)  # type: ignore[call-overload]
    for sample in samples:
        if "semantic" not in sample:
            raise ConfigError("the source frames carry no semantic labels (fitting a colour prior or calibrating a "
                              "camera needs them)")
        yield sample["rgb"], lut[sample["semantic"].long().clamp(0, 255)]


def labelled_set(cfg: ColourPriorConfig | CameraCalibrationConfig, section: str
                 ) -> tuple[list[tuple[Path, Path]], Tensor, int]:
    """The (image, label) pairs of ``cfg``'s folders, the (256,) train id -> class table of its label space (-1 =
    none) and its class count (255, the ignore id, for train ids). ConfigErrors name ``section``."""
    if cfg.label_space == "camvid":
        lut, classes = camvid_lut(), CAMVID_NUM_CLASSES
    else:
        lut, classes = torch.arange(256), 255  # 255 = ignore
    pairs = [pair for images, labels in zip(cfg.images, cfg.labels, strict=True)
             for pair in labelled_pairs(Path(images), Path(labels), section)]
    return pairs, lut, classes


def fit_colour_prior(cfg: ColourPriorConfig, source: object) -> PriorStatistics:
    """The statistics of ``cfg``'s labelled real frames and of ``source`` (a source dataset) per class."""
    pairs, lut, classes = labelled_set(cfg, "colour_prior")
    real = fit_stats_of_frames(read_labelled_frames(pairs, cfg.max_frames), classes)
    simulated = fit_stats_of_frames(source_frames(source, cfg.source_frames, lut), classes)
    return PriorStatistics(real, simulated, lut)


def frame_tables(stats: PriorStatistics) -> tuple[Tensor, tuple[Tensor, Tensor], tuple[Tensor, Tensor], Tensor]:
    """The per-frame prior's tables (:meth:`ClassColourPrior.set_statistics`): every class with real and source
    statistics gets a row (in class order), the last row holds the global statistics for every other train id.
    Raises ConfigError when more classes have statistics than the prior has rows."""
    both = [k for k in range(min(len(stats.real.class_mean), len(stats.simulated.class_mean)))
            if not (np.isnan(stats.real.class_mean[k]).any() or np.isnan(stats.simulated.class_mean[k]).any())]
    if len(both) > FRAME_ROWS - 1:
        raise ConfigError(f"colour_prior: {len(both)} classes have statistics; a per-frame prior holds at most "
                          f"{FRAME_ROWS - 1}")

    def table(of: RealColourStats, field: str, glob: np.ndarray) -> Tensor:
        rows = np.tile(np.asarray(glob, np.float64), (FRAME_ROWS, 1))
        for row, k in enumerate(both):
            rows[row] = getattr(of, field)[k]
        return torch.from_numpy(rows).float()

    row_of_class = {k: row for row, k in enumerate(both)}
    class_of_id = torch.tensor([row_of_class.get(int(k), FRAME_ROWS - 1) for k in stats.lut.tolist()])
    adapts = torch.zeros(FRAME_ROWS)
    adapts[: len(both)] = 1
    real = (table(stats.real, "class_mean", stats.real.lab_mean), table(stats.real, "class_std", stats.real.lab_std))
    source = (table(stats.simulated, "class_mean", stats.simulated.lab_mean),
              table(stats.simulated, "class_std", stats.simulated.lab_std))
    return class_of_id, real, source, adapts


def install_colour_prior(prior: ClassColourPrior, stats: PriorStatistics) -> None:
    """Fit ``prior`` from ``stats``: the pooled map for a fixed prior, the class tables for a per-frame one."""
    if prior.per_frame:  # the setters copy into the prior's buffers, on its device
        prior.set_statistics(*frame_tables(stats))
    else:
        prior.set_maps(*pooled_lab_maps(stats.real, stats.simulated, stats.lut))
