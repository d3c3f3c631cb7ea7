"""Scoring a translator against a known answer: the procedural simulator's camera look (sim_bridge look).

The learnability check trains sim -> look **unpaired**, then translates held-apart simulator frames whose look is
known. The look's deterministic part (colour remap, optics, tone curve; :mod:`sim_bridge.procedural.look`) is
what a perfect translator's mean output equals; its random part (texture, sensor noise) can only be matched in
its statistics. Scores per method:

* **PSNR** (dB) and **SSIM** (luminance, :func:`~sim2real.evaluation.metrics.ssim_map`) of the method's mean output
  against the deterministic part, averaged over frames;
* **random-part error**: the pixel-weighted mean over classes of | std(method's random part) - std(look's random
  part) | in 8-bit levels, where a method's random part = its output with noise minus its mean output (methods
  without noise synthesise none: their error is the look's own random-part std).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import torch
from torch import Tensor

from sim2real.core.labels import NUM_CLASSES
from sim2real.evaluation.frames import DEFAULT_HOURS
from sim2real.evaluation.metrics import ssim_map

__all__ = ["LookSet", "psnr", "random_part_error", "render_look_set", "score_known_answer", "write_look_folder"]

_SEQUENCE_GAP: Final = 997


@dataclass
class LookSet:
    """Simulator frames and their look: ``sim`` / ``full`` / ``deterministic`` (N, 3, H, W) in [-1, 1] (``full`` is
    the 8-bit look with texture and noise), ``semantic`` / ``instance`` (N, H, W) int64, ``indices`` (N,)."""

    sim: Tensor
    semantic: Tensor
    instance: Tensor
    full: Tensor
    deterministic: Tensor
    indices: list[int]

    def __len__(self) -> int:
        return int(self.sim.shape[0])


def render_look_set(count: int, size: tuple[int, int], world_seed: int, *, hours: tuple[float, ...] = DEFAULT_HOURS,
                    stride: int = 7, look: Any = None, start: int = 0) -> LookSet:
    """``count`` frames of the procedural world ``world_seed`` (spread over ``hours``, ``stride`` frames apart)
    and their camera look (default :class:`~sim_bridge.procedural.look.CameraLook`). ``start``: the number of
    the first frame, so that sets rendered in chunks (``start`` 0, n, 2n, ...) join into the one set."""
    from sim_bridge.procedural import ProceduralSimulator, SimConfig
    from sim_bridge.procedural.look import CameraLook, render_look

    look = look or CameraLook()
    base = SimConfig(width=size[1], height=size[0], seed=world_seed)
    sims = [ProceduralSimulator(dataclasses.replace(base, time_of_day=h)) for h in hours]
    rows: dict[str, list[Any]] = {"sim": [], "semantic": [], "instance": [], "full": [], "det": [], "idx": []}
    for i in range(start, start + count):
        index = (i % len(sims)) * _SEQUENCE_GAP + (i // len(sims)) * stride
        frame = sims[i % len(sims)].frame(index)
        out = render_look(frame.rgb, frame.semantic, index, look)
        rows["sim"].append(torch.from_numpy(frame.rgb).permute(2, 0, 1).float() / 127.5 - 1)
        rows["semantic"].append(torch.from_numpy(frame.semantic.astype(np.int64)))
        rows["instance"].append(torch.from_numpy(frame.instance.astype(np.int64)))
        rows["full"].append(torch.from_numpy(out.full).permute(2, 0, 1).float() / 127.5 - 1)
        rows["det"].append(torch.from_numpy(out.deterministic).permute(2, 0, 1) * 2 - 1)
        rows["idx"].append(index)
    return LookSet(torch.stack(rows["sim"]), torch.stack(rows["semantic"]), torch.stack(rows["instance"]),
                   torch.stack(rows["full"]), torch.stack(rows["det"]), rows["idx"])


def write_look_folder(looks: LookSet, folder: Path, labels: Path | None = None, *, first: int = 0) -> Path:
    """The full look frames as PNG files (an unlabelled target domain for ``sim2real-train``); with ``labels``,
    their semantic maps (train ids, mode L) under the same names there (for ``colour_prior.labels``). Frame i
    is named ``look_{first + i:05d}.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    if labels is not None:
        labels.mkdir(parents=True, exist_ok=True)
    for i in range(len(looks)):
        rgb = ((looks.full[i] + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        written = cv2.imwrite(str(folder / f"look_{first + i:05d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if labels is not None:
            semantic = looks.semantic[i].clamp(0, 255).numpy().astype(np.uint8)
            written = written and cv2.imwrite(str(labels / f"look_{first + i:05d}.png"), semantic)
        if not written:
            raise OSError(f"cannot write look frame {first + i} under {folder}")
    return folder


def psnr(x: Tensor, y: Tensor) -> float:
    """Mean over frames of 10 log10(1 / MSE) on [0, 1] images: (N, 3, H, W) x2 in [-1, 1] -> dB."""
    mse = (((x.float() - y.float()) * 0.5) ** 2).flatten(1).mean(1).clamp(min=1e-12)
    return float((10 * torch.log10(1 / mse)).mean())


def _class_std(residual: Tensor, semantic: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-class std of a residual (N, 3, H, W) in 8-bit levels and pixel counts: -> (K,), (K,)."""
    levels = residual.float() * 127.5
    std, count = np.zeros(NUM_CLASSES), np.zeros(NUM_CLASSES)
    for k in range(NUM_CLASSES):
        mask = semantic == k
        if mask.any():
            px = levels.permute(1, 0, 2, 3)[:, mask]
            std[k], count[k] = float(px.std()), float(mask.sum())
    return std, count


def random_part_error(method_residual: Tensor | None, look_residual: Tensor, semantic: Tensor) -> float:
    """Pixel-weighted mean over classes of |std(method residual) - std(look residual)| in 8-bit levels."""
    look_std, count = _class_std(look_residual, semantic)
    mine = _class_std(method_residual, semantic)[0] if method_residual is not None else np.zeros_like(look_std)
    return float((np.abs(mine - look_std) * count).sum() / max(count.sum(), 1))


def score_known_answer(looks: LookSet, means: dict[str, Tensor], sampled: dict[str, Tensor] | None = None
                       ) -> dict[str, dict[str, float]]:
    """PSNR / SSIM against the deterministic look and the random-part error of every method's outputs.

    ``means``: name -> (N, 3, H, W) mean outputs; ``sampled``: name -> outputs with noise (methods that
    synthesise a random part).
    """
    look_residual = looks.full - looks.deterministic
    out = {}
    for name, mean in means.items():
        noisy = (sampled or {}).get(name)
        out[name] = {
            "psnr": psnr(mean, looks.deterministic),
            "ssim": float(ssim_map(mean.float(), looks.deterministic.float()).mean()),
            "random_part_error": random_part_error(None if noisy is None else noisy - mean, look_residual,
                                                   looks.semantic),
        }
    return out
