"""A fixed class-wise colour prior: one affine CIE Lab map per semantic class, applied before the decoder.

For a pixel of train id t with sRGB colour x::

    lab(out) = gain[t] * lab(x) + offset[t]          (per Lab channel; gain, offset: (256, 3) buffers)

The maps are fitted once, before training, from pooled colour statistics (the ``classwise_pooled`` baseline's
map: gain = clamp(sigma_real / sigma_sim, 1/4, 4), offset = mu_real - gain * mu_sim, per class; the global map
for ids without statistics) and then stay fixed: the decoder, detail path and camera model learn the residual
(shading, texture, optics) on top. Fresh, the prior is the identity (gain 1, offset 0).

The sRGB <-> Lab conversions here are the project's one implementation (the baselines use them in float64);
they keep the input dtype and export to ONNX (Pow, MatMul, Where, Gather).
"""

from __future__ import annotations

from typing import Final

import torch
from torch import Tensor, nn

__all__ = ["ClassColourPrior", "lab_to_srgb", "srgb_to_lab"]

#: train ids 0..255 (255 = ignore): one map per possible label value.
PRIOR_ROWS: Final = 256
# sRGB (D65) <-> CIE XYZ, and the D65 white point.
_RGB2XYZ: Final = ((0.4124564, 0.3575761, 0.1804375),
                   (0.2126729, 0.7151522, 0.0721750),
                   (0.0193339, 0.1191920, 0.9503041))
_WHITE: Final = (0.95047, 1.0, 1.08883)
_DELTA: Final = 6 / 29


def _matrix(values: tuple[tuple[float, ...], ...], like: Tensor, inverse: bool = False) -> Tensor:
    m = torch.tensor(values, dtype=torch.float64)
    return (torch.linalg.inv(m) if inverse else m).to(like.dtype).to(like.device)


def srgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [-1, 1] -> CIE Lab (D65; L in [0, 100]): (B, 3, H, W) -> (B, 3, H, W), same dtype."""
    u = ((rgb + 1) * 0.5).clamp(0, 1)
    lin = torch.where(u <= 0.04045, u / 12.92, ((u + 0.055) / 1.055) ** 2.4)
    white = torch.tensor(_WHITE, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    xyz = torch.einsum("ij,bjhw->bihw", _matrix(_RGB2XYZ, rgb), lin) / white
    f = torch.where(xyz > _DELTA**3, xyz.clamp(min=1e-12) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29)
    return torch.stack((116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])), 1)


def lab_to_srgb(lab: Tensor) -> Tensor:
    """CIE Lab (D65) -> sRGB in [-1, 1], clamped to the gamut: (B, 3, H, W) -> (B, 3, H, W), same dtype."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack((fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200), 1)
    white = torch.tensor(_WHITE, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    xyz = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29)) * white
    lin = torch.einsum("ij,bjhw->bihw", _matrix(_RGB2XYZ, lab, inverse=True), xyz).clamp(min=0)
    srgb = torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp(min=1e-12) ** (1 / 2.4) - 0.055)
    return srgb.clamp(0, 1) * 2 - 1


class ClassColourPrior(nn.Module):
    """Per-class affine Lab map (module docstring): buffers ``gain`` and ``offset`` (256, 3), ``fitted`` (1,)."""

    gain: Tensor
    offset: Tensor
    fitted: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("gain", torch.ones(PRIOR_ROWS, 3))
        self.register_buffer("offset", torch.zeros(PRIOR_ROWS, 3))
        self.register_buffer("fitted", torch.zeros(1))

    @torch.no_grad()
    def set_maps(self, gain: Tensor, offset: Tensor) -> None:
        """Install fitted maps: gain, offset (256, 3) (row = train id); marks the prior fitted."""
        if gain.shape != (PRIOR_ROWS, 3) or offset.shape != (PRIOR_ROWS, 3):
            raise ValueError(f"colour prior maps must be ({PRIOR_ROWS}, 3), got {tuple(gain.shape)} and "
                             f"{tuple(offset.shape)}")
        if not (torch.isfinite(gain).all() and torch.isfinite(offset).all()):
            raise ValueError("colour prior maps must be finite")
        self.gain.copy_(gain)
        self.offset.copy_(offset)
        self.fitted.fill_(1.0)

    def forward(self, rgb: Tensor, semantic: Tensor) -> Tensor:
        """rgb (B, 3, H, W) in [-1, 1], semantic (B, H, W) train ids -> (B, 3, H, W) in [-1, 1]."""
        index = semantic.long().clamp(0, PRIOR_ROWS - 1)
        gain = self.gain.to(rgb.dtype)[index].permute(0, 3, 1, 2)  # (B, 3, H, W)
        offset = self.offset.to(rgb.dtype)[index].permute(0, 3, 1, 2)
        return lab_to_srgb(srgb_to_lab(rgb) * gain + offset)
