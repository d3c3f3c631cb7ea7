"""Paired augmentation: one random crop / resize / flip applied identically to RGB and its label maps.

RGB is resampled with area/linear interpolation; semantic and instance maps with nearest neighbour, so no
label value is ever invented.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sim2real.core.errors import ConfigError

__all__ = ["PairedTransform", "resize_pair"]


def resize_pair(rgb: np.ndarray, labels: list[np.ndarray], height: int, width: int
                ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Resize (H, W, 3) RGB with INTER_AREA (shrinking) / INTER_LINEAR and each (H, W) label with NEAREST."""
    shrinking = height * width < rgb.shape[0] * rgb.shape[1]
    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    labels = [cv2.resize(lab, (width, height), interpolation=cv2.INTER_NEAREST) for lab in labels]
    return rgb, labels


@dataclass(frozen=True)
class PairedTransform:
    """Random scale, crop and horizontal flip shared by an RGB frame and its label maps.

    Steps: scale the short side to ``resize_short`` (if set) times a random factor in ``scale_range``, take a
    random ``crop`` (height, width) window (if set; the frame is padded with ignore labels if smaller),
    then flip left-right with probability ``hflip``.
    """

    crop: tuple[int, int] | None = None
    resize_short: int | None = None
    scale_range: tuple[float, float] = (1.0, 1.0)
    hflip: float = 0.5

    def __post_init__(self) -> None:
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) <= 0):
            raise ConfigError(f"crop must be (height, width) > 0, got {self.crop}")
        if self.resize_short is not None and self.resize_short <= 0:
            raise ConfigError(f"resize_short must be > 0, got {self.resize_short}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ConfigError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if not 0.0 <= self.hflip <= 1.0:
            raise ConfigError(f"hflip is a probability in [0, 1], got {self.hflip}")

    def __call__(self, rgb: np.ndarray, labels: list[np.ndarray], rng: np.random.Generator,
                 pad_values: list[int] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """(H, W, 3) uint8 + [(H, W) label] -> transformed copies (labels padded with ``pad_values``)."""
        rgb, labels, _ = self.apply(rgb, labels, rng, pad_values)
        return rgb, labels

    def apply(self, rgb: np.ndarray, labels: list[np.ndarray], rng: np.random.Generator,
              pad_values: list[int] | None = None) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """As ``__call__``, plus the window's ``frame_box``: (4,) float32 (x0, y0, x1, y1) of the output in
        normalised coordinates of the input frame (mirrored with a flip; it may reach past 1 where padded), for
        position-dependent camera effects (:mod:`sim2real.translator.camera`)."""
        h, w = rgb.shape[:2]
        scale = rng.uniform(*self.scale_range)
        if self.resize_short is not None:
            scale *= self.resize_short / min(h, w)
        if abs(scale - 1.0) > 1e-6:
            rgb, labels = resize_pair(rgb, labels, max(1, round(h * scale)), max(1, round(w * scale)))
        sh, sw = rgb.shape[:2]
        box = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
        if self.crop is not None:
            rgb, labels, (y, x) = self._crop(rgb, labels, rng, pad_values or [0] * len(labels))
            ch, cw = self.crop
            box = np.array([x / sw, y / sh, (x + cw) / sw, (y + ch) / sh], np.float32)
        if rng.random() < self.hflip:
            rgb = rgb[:, ::-1]
            labels = [lab[:, ::-1] for lab in labels]
            box = np.array([1 - box[2], box[1], 1 - box[0], box[3]], np.float32)
        return np.ascontiguousarray(rgb), [np.ascontiguousarray(lab) for lab in labels], box

    def _crop(self, rgb: np.ndarray, labels: list[np.ndarray], rng: np.random.Generator,
              pad_values: list[int]) -> tuple[np.ndarray, list[np.ndarray], tuple[int, int]]:
        ch, cw = self.crop
        h, w = rgb.shape[:2]
        if h < ch or w < cw:  # pad bottom/right: RGB by edge replication, labels with their "none" value
            ph, pw = max(0, ch - h), max(0, cw - w)
            rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
            labels = [np.pad(lab, ((0, ph), (0, pw)), constant_values=v)
                      for lab, v in zip(labels, pad_values, strict=True)]
            h, w = rgb.shape[:2]
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        return rgb[y:y + ch, x:x + cw], [lab[y:y + ch, x:x + cw] for lab in labels], (y, x)
