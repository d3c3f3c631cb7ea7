"""A "camera look" with a known answer: the procedural frame rendered a second time as a known camera would see it.

The learnability check of the translator (``benchmarks/learnability.py``) trains **unpaired** sim -> look and
scores the result against the known answer. The look is a fixed, class-dependent image formation model
(Carlson et al., 2018, "Modeling Camera Effects to Improve Visual Learning from Synthetic Data"), applied in this
order to the simulator frame x (sRGB in [0, 1]):

1. **per-class colour remap** (scene albedo): in linear RGB, v = M_k u + o_k for the pixel's class k, where
   M_k = diag(g_k) (s_k I + (1 - s_k) 1 w^T) (saturation s_k, channel gains g_k, luma weights w) and o_k an offset;
2. **per-class texture** (random part): v <- v (1 + a_k t_k(p)) with a zero-mean field t_k of the class's kind —
   asphalt grain (fine noise), foliage (blobs over 2-8 px), facade (vertical streaks + grain);
3. **lateral chromatic aberration**: the red channel magnified by (1 + c), blue by (1 - c) about the centre;
4. **defocus blur**: Gaussian, sigma ``blur_sigma`` px;
5. **vignetting**: v <- v (1 - vignette r^2), r = distance to the centre / half-diagonal;
6. **sensor noise** (random part): v <- v + n, n ~ N(0, noise_shot v + noise_read^2) (a noise-level function);
7. **tone curve**: y = (v (1 + v / w^2) / (1 + v)) ** (1 / 2.2) (extended Reinhard, white point w), clipped, 8 bit.

The **deterministic part** is the same pipeline without texture and noise: what an ideal translator's mean output
would be. Texture and noise are seeded by (``seed``, frame index), so a frame's look is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import cv2
import numpy as np

from sim2real.core.labels import IGNORE_ID, TRAIN_ID

__all__ = ["CameraLook", "LookFrame", "display_to_linear", "render_look", "through_look_optics"]

_LUMA: Final = np.array([0.2126, 0.7152, 0.0722], np.float32)


@dataclass(frozen=True)
class ClassLook:
    """Appearance of one class: channel gains, saturation, linear offset, texture kind and amplitude."""

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    texture: str = "grain"
    amplitude: float = 0.0


def _default_classes() -> dict[str, ClassLook]:
    """A plausible real camera in an overcast, slightly warm city (values chosen once; see the module docstring)."""
    return {
        "road": ClassLook((0.85, 0.82, 0.80), 0.5, (0.010, 0.010, 0.012), "grain", 0.10),
        "sidewalk": ClassLook((0.90, 0.80, 0.78), 0.6, (0.015, 0.012, 0.010), "grain", 0.08),
        "building": ClassLook((1.05, 0.92, 0.80), 0.7, (0.0, 0.0, 0.0), "facade", 0.12),
        "wall": ClassLook((0.95, 0.90, 0.85), 0.6, (0.0, 0.0, 0.0), "facade", 0.10),
        "fence": ClassLook((0.80, 0.80, 0.80), 0.6, (0.0, 0.0, 0.0), "grain", 0.06),
        "pole": ClassLook((0.75, 0.75, 0.78), 0.5, (0.0, 0.0, 0.0), "grain", 0.04),
        "traffic light": ClassLook((0.90, 0.90, 0.90), 1.0, (0.0, 0.0, 0.0), "grain", 0.03),
        "traffic sign": ClassLook((0.95, 0.90, 0.85), 1.1, (0.0, 0.0, 0.0), "grain", 0.03),
        "vegetation": ClassLook((0.70, 0.95, 0.45), 1.25, (0.0, 0.005, 0.0), "foliage", 0.30),
        "terrain": ClassLook((0.90, 0.95, 0.55), 0.9, (0.0, 0.0, 0.0), "foliage", 0.18),
        "sky": ClassLook((0.95, 0.98, 1.02), 0.35, (0.06, 0.06, 0.06), "grain", 0.0),
        "person": ClassLook((0.95, 0.88, 0.85), 0.8, (0.0, 0.0, 0.0), "grain", 0.05),
        "rider": ClassLook((0.95, 0.88, 0.85), 0.8, (0.0, 0.0, 0.0), "grain", 0.05),
        "car": ClassLook((0.92, 0.92, 0.95), 0.75, (0.0, 0.0, 0.005), "grain", 0.03),
        "truck": ClassLook((0.90, 0.90, 0.92), 0.7, (0.0, 0.0, 0.0), "grain", 0.04),
        "bus": ClassLook((0.92, 0.90, 0.90), 0.8, (0.0, 0.0, 0.0), "grain", 0.04),
        "train": ClassLook((0.90, 0.90, 0.90), 0.8, (0.0, 0.0, 0.0), "grain", 0.04),
        "motorcycle": ClassLook((0.90, 0.90, 0.92), 0.8, (0.0, 0.0, 0.0), "grain", 0.03),
        "bicycle": ClassLook((0.90, 0.90, 0.92), 0.8, (0.0, 0.0, 0.0), "grain", 0.03),
    }


@dataclass(frozen=True)
class CameraLook:
    """The look's parameters (module docstring); ``classes`` maps Cityscapes class names to :class:`ClassLook`."""

    classes: dict[str, ClassLook] = field(default_factory=_default_classes)
    chromatic_aberration: float = 0.004
    blur_sigma: float = 1.1
    vignette: float = 0.4
    noise_shot: float = 0.0004
    noise_read: float = 0.006
    white_point: float = 1.6
    seed: int = 0

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(256, 3, 3) colour matrices, (256, 3) offsets, (256,) texture amplitudes, (256,) texture kinds
        (0 grain, 1 foliage, 2 facade), indexed by train id (identity for ids without an entry)."""
        mats = np.tile(np.eye(3, dtype=np.float32), (256, 1, 1))
        offs = np.zeros((256, 3), np.float32)
        amps = np.zeros(256, np.float32)
        kinds = np.zeros(256, np.int64)
        for name, look in self.classes.items():
            k = TRAIN_ID[name]
            sat = look.saturation * np.eye(3, dtype=np.float32) + (1 - look.saturation) * np.outer(
                np.ones(3, np.float32), _LUMA)
            mats[k] = np.diag(np.float32(look.gain)) @ sat
            offs[k] = look.offset
            amps[k] = look.amplitude
            kinds[k] = ("grain", "foliage", "facade").index(look.texture)
        return mats, offs, amps, kinds


@dataclass(frozen=True)
class LookFrame:
    """The look of one frame: ``full`` (H, W, 3) uint8 (with texture and noise) and ``deterministic`` (H, W, 3)
    float32 in [0, 1] (without them): the known answer."""

    full: np.ndarray
    deterministic: np.ndarray


def _texture_fields(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) zero-mean unit-std fields: grain, foliage, facade."""
    h, w = shape
    grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.7)
    foliage = sum(cv2.resize(rng.standard_normal((max(2, h // s), max(2, w // s))).astype(np.float32), (w, h),
                             interpolation=cv2.INTER_CUBIC) for s in (2, 4, 8))
    streaks = np.repeat(rng.standard_normal((1, w)).astype(np.float32), h, 0)
    facade = cv2.GaussianBlur(streaks, (0, 0), 1.0) + 0.5 * grain
    fields = np.stack([grain, foliage, facade])
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    return fields / (fields.std(axis=(1, 2), keepdims=True) + 1e-6)


def _radius2(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return (((x + 0.5 - w / 2) ** 2 + (y + 0.5 - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)).astype(np.float32)


def _magnify(channel: np.ndarray, factor: float) -> np.ndarray:
    """Sample a channel magnified by ``factor`` about the image centre (bilinear, edges replicated)."""
    h, w = channel.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    return cv2.remap(channel, cx + (x - cx) / factor, cy + (y - cy) / factor, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _optics_and_tone(v: np.ndarray, look: CameraLook, noise: np.ndarray | None) -> np.ndarray:
    c = look.chromatic_aberration
    v = np.stack([_magnify(v[..., 0], 1 + c), v[..., 1], _magnify(v[..., 2], 1 - c)], -1)
    v = cv2.GaussianBlur(v, (0, 0), look.blur_sigma) if look.blur_sigma > 0 else v
    v = v * (1 - look.vignette * _radius2(v.shape[:2]))[..., None]
    if noise is not None:
        v = v + noise * np.sqrt(look.noise_shot * np.clip(v, 0, None) + look.noise_read**2)
    v = np.clip(v, 0, None)
    w2 = look.white_point**2
    return np.clip(v * (1 + v / w2) / (1 + v), 0, 1) ** (1 / 2.2)


def display_to_linear(y: np.ndarray, look: CameraLook) -> np.ndarray:
    """The inverse of the look's tone curve (step 7): display values y in [0, 1] -> linear v >= 0 (same shape).

    With z = y^2.2 and w the white point, v (1 + v / w^2) / (1 + v) = z is the quadratic
    v^2 / w^2 + (1 - z) v - z = 0, whose root v >= 0 is taken (y = 1 gives v = w)."""
    z = np.clip(y, 0, 1).astype(np.float64) ** 2.2
    a = 1 / look.white_point**2
    return ((-(1 - z) + np.sqrt((1 - z) ** 2 + 4 * a * z)) / (2 * a)).astype(np.float32)


def through_look_optics(image: np.ndarray, look: CameraLook) -> np.ndarray:
    """An image rendered with the look's tone curve but no optics, (H, W, 3) float in [0, 1] -> the same scene
    through the look's optics and tone (steps 3-5 and 7, deterministic): linearised by :func:`display_to_linear`,
    then aberration, blur and vignetting in linear light, as the look applies them. For diagnostics: what a
    translator's colours score with the look's exact camera (``benchmarks/learnability.py --look-optics``)."""
    return _optics_and_tone(display_to_linear(image, look), look, None).astype(np.float32)


def render_look(rgb: np.ndarray, semantic: np.ndarray, index: int, look: CameraLook | None = None) -> LookFrame:
    """The look of one simulator frame: rgb (H, W, 3) uint8, semantic (H, W) train ids, frame index (seeds the
    random part) -> :class:`LookFrame`."""
    look = look or CameraLook()
    mats, offs, amps, kinds = look.tables()
    sem = np.where(semantic == IGNORE_ID, 255, semantic).astype(np.int64)
    u = (rgb.astype(np.float32) / 255.0) ** 2.2  # sRGB -> approximately linear
    v = np.einsum("hwij,hwj->hwi", mats[sem], u) + offs[sem]
    rng = np.random.default_rng([look.seed, index])
    fields = _texture_fields(sem.shape, rng)
    texture = np.take_along_axis(fields, kinds[sem][None], 0)[0] * amps[sem]
    noise = rng.standard_normal(v.shape).astype(np.float32)
    deterministic = _optics_and_tone(v, look, None).astype(np.float32)
    full = _optics_and_tone(v * (1 + texture[..., None]), look, noise)
    return LookFrame(np.round(full * 255).astype(np.uint8), deterministic)
