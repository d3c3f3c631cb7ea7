"""Training and validation of the evaluation judge on real, labelled frames (CamVid).

``benchmarks/train_judge.py`` is the command; this module holds the pieces it needs so they are tested:
reading a CamVid split, the augmentation, the class weights, one optimisation step and the confusion-matrix
validation. Nothing here ever sees simulator frames or translator outputs.

Loss: weighted cross-entropy over labelled pixels,
    L = sum_p w[y_p] * (-log softmax(z_p)[y_p]) / sum_p w[y_p]      (unlabelled pixels excluded),
with w = sqrt(median_freq / freq) clipped to [0.2, 5] (square root of SegNet's median-frequency
balancing: small classes such as pole and sign/symbol weigh more, without the false positives of the full
balancing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sim2real.core.errors import ConfigError
from sim2real.core.labels import CAMVID_NUM_CLASSES, CAMVID_UNLABELLED, IGNORE_ID

__all__ = [
    "AugmentConfig",
    "LabelledFrames",
    "augment_batch",
    "class_weights",
    "confusion_matrix",
    "iou_from_confusion",
    "load_camvid_split",
    "segment",
]


@dataclass
class LabelledFrames:
    """Real frames with labels: rgb (N, H, W, 3) uint8 RGB; labels (N, H, W) uint8 (255 = ignore)."""

    rgb: np.ndarray
    labels: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return int(self.rgb.shape[0])


def load_camvid_split(root: Path, limit: int | None = None) -> LabelledFrames:
    """Read ``root/images/*.jpg`` and ``root/labels/*.png`` (same stems; SegNet's 11-class ids, 11 -> 255).

    Raises:
        ConfigError: a missing folder, an image without a label (or the reverse), unreadable files or sizes
            that differ between an image and its label.
    """
    images, labels = root / "images", root / "labels"
    if not images.is_dir() or not labels.is_dir():
        raise ConfigError(f"{root} is not a CamVid split (expected images/ and labels/ inside)")
    stems = sorted(p.stem for p in images.glob("*.jpg"))
    label_stems = sorted(p.stem for p in labels.glob("*.png"))
    if stems != label_stems:
        missing = sorted(set(stems) ^ set(label_stems))[:5]
        raise ConfigError(f"{root}: images and labels do not pair up (e.g. {missing})")
    if limit is not None:
        stems = stems[:limit]
    if not stems:
        raise ConfigError(f"{root}: no frames")
    rgb, lab = [], []
    for stem in stems:
        bgr = cv2.imread(str(images / f"{stem}.jpg"), cv2.IMREAD_COLOR)
        label = cv2.imread(str(labels / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        if bgr is None or label is None or label.ndim != 2 or label.shape != bgr.shape[:2]:
            raise ConfigError(f"{root}: cannot read frame {stem} (image and label must decode to the same size)")
        rgb.append(bgr[..., ::-1])
        lab.append(np.where(label >= CAMVID_UNLABELLED, IGNORE_ID, label).astype(np.uint8))
    return LabelledFrames(np.stack(rgb), np.stack(lab), stems)


def class_weights(labels: np.ndarray, num_classes: int = CAMVID_NUM_CLASSES, low: float = 0.2, high: float = 5.0
                  ) -> Tensor:
    """sqrt(median frequency / frequency) per class, clipped to [low, high]: (N, H, W) uint8 -> (K,) float32.

    Frequencies are pixel shares among labelled pixels; a class that never occurs gets ``high``.
    """
    counts = np.bincount(labels[labels != IGNORE_ID].ravel(), minlength=num_classes)[:num_classes].astype(float)
    freq = counts / max(counts.sum(), 1.0)
    median = float(np.median(freq[freq > 0])) if (freq > 0).any() else 1.0
    with np.errstate(divide="ignore"):
        w = np.where(freq > 0, np.sqrt(median / np.maximum(freq, 1e-12)), high)
    return torch.from_numpy(np.clip(w, low, high).astype(np.float32))


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of one training sample.

    Geometry: scale by s ~ U[scale] (area for shrinking, bilinear for enlarging; labels nearest), a random
    ``crop`` (padded with ignore where the scaled frame is smaller), horizontal flip with p = 0.5.
    Photometry (each independently): brightness x U[1 - b, 1 + b], contrast about the mean x U[1 - c, 1 + c],
    saturation x U[1 - s, 1 + s], per-channel gain x U[1 - g, 1 + g] (white balance), Gaussian blur with
    sigma ~ U[0, blur_sigma] with p = ``blur_p``, Gaussian noise with sigma ~ U[0, noise] with p = ``noise_p``.
    """

    crop: tuple[int, int] = (256, 320)
    scale: tuple[float, float] = (0.6, 1.4)
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    channel_gain: float = 0.08
    blur_sigma: float = 1.2
    blur_p: float = 0.25
    noise: float = 0.04
    noise_p: float = 0.25


def _scaled_crop(rgb: np.ndarray, label: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    s = rng.uniform(*cfg.scale)
    h, w = label.shape
    sh, sw = max(8, round(h * s)), max(8, round(w * s))
    rgb = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    label = cv2.resize(label, (sw, sh), interpolation=cv2.INTER_NEAREST)
    ch, cw = cfg.crop
    out_rgb = np.zeros((ch, cw, 3), np.uint8)
    out_lab = np.full((ch, cw), IGNORE_ID, np.uint8)
    y0 = int(rng.integers(0, max(sh - ch, 0) + 1))
    x0 = int(rng.integers(0, max(sw - cw, 0) + 1))
    crop_rgb, crop_lab = rgb[y0:y0 + ch, x0:x0 + cw], label[y0:y0 + ch, x0:x0 + cw]
    out_rgb[: crop_rgb.shape[0], : crop_rgb.shape[1]] = crop_rgb
    out_lab[: crop_lab.shape[0], : crop_lab.shape[1]] = crop_lab
    if rng.random() < 0.5:
        out_rgb, out_lab = out_rgb[:, ::-1], out_lab[:, ::-1]
    return out_rgb, out_lab


def _photometric(x: Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> Tensor:
    """Colour, blur and noise on one (3, H, W) image in [0, 1]."""
    x = x * rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    gray = x.mean(0, keepdim=True)
    x = (x - gray) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation) + gray
    gains = torch.from_numpy(rng.uniform(1 - cfg.channel_gain, 1 + cfg.channel_gain, 3).astype(np.float32))
    x = x * gains.view(3, 1, 1)
    if rng.random() < cfg.blur_p:
        sigma = rng.uniform(0.0, cfg.blur_sigma)
        if sigma > 0.2:
            radius = math.ceil(3 * sigma)
            t = torch.arange(-radius, radius + 1, dtype=torch.float32)
            k = torch.exp(-0.5 * (t / sigma) ** 2)
            k = k / k.sum()
            x = F.conv2d(F.pad(x[:, None], (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
            x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))[:, 0]
    if rng.random() < cfg.noise_p:
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        x = x + torch.randn(x.shape, generator=gen) * rng.uniform(0.0, cfg.noise)
    return x.clamp(0, 1)


def augment_batch(frames: LabelledFrames, indices: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator
                  ) -> tuple[Tensor, Tensor]:
    """Augmented training batch: -> rgb (B, 3, *crop) float in [-1, 1], labels (B, *crop) int64 (255 ignore)."""
    rgbs, labs = [], []
    for i in indices:
        rgb, lab = _scaled_crop(frames.rgb[i], frames.labels[i], cfg, rng)
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0
        rgbs.append(_photometric(x, cfg, rng) * 2 - 1)
        labs.append(torch.from_numpy(np.ascontiguousarray(lab)).long())
    return torch.stack(rgbs), torch.stack(labs)


@torch.no_grad()
def segment(net: torch.nn.Module, rgb: Tensor, batch: int = 4) -> Tensor:
    """Class map of frames: (N, 3, H, W) in [-1, 1] -> (N, H, W) int64 (argmax of the logits), in batches."""
    out = [net(rgb[i:i + batch]).argmax(1) for i in range(0, rgb.shape[0], batch)]
    return torch.cat(out)


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = target class, columns = predicted class, over pixels with target < K."""
    keep = (target >= 0) & (target < num_classes)
    idx = target[keep].long() * num_classes + pred[keep].long().clamp(0, num_classes - 1)
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes).numpy()


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU = TP / (TP + FP + FN) from a confusion matrix: (K, K) -> (K,), NaN where the class never
    occurs in the target (its false positives still count, as false negatives of the true classes)."""
    tp = np.diag(conf).astype(float)
    denom = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(conf.sum(1) > 0, tp / np.maximum(denom, 1), np.nan)
