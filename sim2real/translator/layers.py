"""Building blocks of the translator generator. Modules take explicit dimensions (SPADE style).

* :class:`ConvNormAct`, :class:`ResBlock`: content-encoder blocks (instance norm, MUNIT).
* :class:`ModulatedConv2d`, :class:`ModResBlock`: style-modulated decoder blocks (StyleGAN2 weight
  modulation + demodulation, applied as input scaling / output scaling around a plain conv). Unlike
  AdaIN they use no spatial statistics, so a local change of the content code stays local in the image.
* :func:`apply_affine_colour`: the full-resolution head: a per-pixel 3x4 affine colour model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim2real.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "AFFINE_COEFFS",
    "NORMS",
    "ConvNormAct",
    "ModResBlock",
    "ModulatedConv2d",
    "ResBlock",
    "StyleMLP",
    "apply_affine_colour",
    "make_activation",
    "make_norm",
]

#: channels of the affine colour head: a 3x3 matrix (row-major) then a 3-vector offset.
AFFINE_COEFFS: Final = 12

#: explicit registries: name -> factory(channels) / factory().
NORMS: Final[dict[str, Callable[[int], nn.Module]]] = {
    "instance": lambda c: nn.InstanceNorm2d(c, affine=True),
    "none": lambda c: nn.Identity(),
}
ACTIVATIONS: Final[dict[str, Callable[[], nn.Module]]] = {
    "relu": lambda: nn.ReLU(inplace=False),
    "lrelu": lambda: nn.LeakyReLU(0.2, inplace=False),
    "none": nn.Identity,
}


def make_norm(name: str, channels: int) -> nn.Module:
    """Norm layer from :data:`NORMS`; unknown names raise :class:`ConfigError` listing the valid ones."""
    if name not in NORMS:
        raise ConfigError(f"unknown norm {name!r}; valid norms: {sorted(NORMS)}")
    return NORMS[name](channels)


def make_activation(name: str) -> nn.Module:
    """Activation from :data:`ACTIVATIONS`; unknown names raise :class:`ConfigError`."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; valid activations: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class ConvNormAct(nn.Sequential):
    """conv(kernel, stride, 'same'-style replicate padding) -> norm -> activation."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
        *, norm: str = "instance", act: str = "relu",
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2,
                      padding_mode="replicate"),
            make_norm(norm, out_channels),
            make_activation(act),
        )


class ResBlock(nn.Module):
    """x + conv-norm-relu-conv-norm(x), constant width: (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, norm=norm, act="relu"),
            ConvNormAct(channels, channels, norm=norm, act="none"),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, C, h, w)."""
        return x + self.body(x)


class StyleMLP(nn.Sequential):
    """Style code -> modulation latent: (B, style_dim) -> (B, hidden)."""

    def __init__(self, style_dim: int, hidden: int, layers: int = 2) -> None:
        mods: list[nn.Module] = []
        width = style_dim
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        super().__init__(*mods)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution, input-scaling form (``fused_modconv=False``).

    y = demod(s) * conv(x * s, W) + b with s = A(w) (per-sample, per-input-channel scales, A initialised
    to output 1) and demod_o(s) = 1 / sqrt(sum_{i,k} (W_oik s_i)^2 + eps). Mathematically equal to
    convolving with per-sample weights W_oik s_i / ||W_o s||, but runs as one ordinary conv on the batch.
    (B, Cin, h, w), (B, latent) -> (B, Cout, h, w).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, latent_dim: int, demodulate: bool = True
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = nn.Linear(latent_dim, in_channels)
        nn.init.ones_(self.affine.bias)
        self.affine.weight.data.normal_(0.0, 0.1 / math.sqrt(latent_dim))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = (kernel_size - 1) // 2
        self.demodulate = demodulate

    def forward(self, x: Tensor, latent: Tensor) -> Tensor:
        """(B, Cin, h, w), (B, latent_dim) -> (B, Cout, h, w)."""
        s = self.affine(latent)  # (B, Cin)
        weight = self.weight * self.scale
        x = x * s[:, :, None, None]
        if self.padding:
            x = F.pad(x, (self.padding,) * 4, mode="replicate")
        y = F.conv2d(x, weight)
        if self.demodulate:
            w_sq = weight.pow(2).sum(dim=(2, 3))  # (Cout, Cin)
            demod = torch.rsqrt(s.pow(2) @ w_sq.t() + 1e-8)  # (B, Cout)
            y = y * demod[:, :, None, None]
        return y + self.bias[None, :, None, None]


class ModResBlock(nn.Module):
    """Style-modulated residual block: x + modconv(lrelu(modconv(x, w)), w), (B, C, h, w) -> same."""

    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.conv1 = ModulatedConv2d(channels, channels, 3, latent_dim)
        self.conv2 = ModulatedConv2d(channels, channels, 3, latent_dim)

    def forward(self, x: Tensor, latent: Tensor) -> Tensor:
        """(B, C, h, w), (B, latent_dim) -> (B, C, h, w)."""
        return x + self.conv2(F.leaky_relu(self.conv1(x, latent), 0.2), latent)


def apply_affine_colour(coeffs: Tensor, image: Tensor) -> Tensor:
    """Per-pixel affine colour model: coeffs (B, 12, H, W), image (B, 3, H, W) -> (B, 3, H, W).

    out_i = sum_j A_ij * image_j + b_i with A = coeffs[:, 0:9] (row-major 3x3) and b = coeffs[:, 9:12].
    """
    if coeffs.shape[1] != AFFINE_COEFFS or coeffs.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"coeffs must be (B, 12, H, W) matching image {tuple(image.shape)}, got "
                         f"{tuple(coeffs.shape)}")
    B, _, H, W = coeffs.shape
    A = coeffs[:, :9].reshape(B, 3, 3, H, W)
    return (A * image.unsqueeze(1)).sum(dim=2) + coeffs[:, 9:]
