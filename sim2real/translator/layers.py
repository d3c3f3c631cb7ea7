"""Building blocks of the translator generator. Modules take explicit dimensions (SPADE style).

* :class:`ConvNormAct`, :class:`ResBlock`: content-encoder blocks (instance norm, MUNIT).
* :class:`ModulatedConv2d`, :class:`ModResBlock`: style-modulated decoder blocks (StyleGAN2 weight
  modulation + demodulation, applied as input scaling / output scaling around a plain conv). Unlike
  AdaIN they use no spatial statistics, so a local change of the content code stays local in the image.
* :func:`apply_affine_colour`: the full-resolution head: a per-pixel 3x4 affine colour model;
  :func:`upsampled_affine_colour` the same with coefficients at work resolution, bilinearly upsampled first.
* :class:`PaddedConv2d`, :func:`replicate_pad`: a convolution padded by one of :data:`PADDING_MODES`;
  replicate padding keeps a channels_last input channels_last (no NCHW round trip before the oneDNN
  convolution); zero padding is the convolution's own (onnxruntime and oneDNN fuse it into the kernel).

Inference fast paths (taken only when no gradient is being recorded, and never while tracing for ONNX
export) compute exactly the same function with fewer full-resolution passes; training runs the plain
formulation. ``test/test_fast_paths.py`` checks both against each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import reduce
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim2real.core.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "AFFINE_COEFFS",
    "COLUMN_ORDER",
    "NORMS",
    "PADDING_MODES",
    "ConvNormAct",
    "ModResBlock",
    "ModulatedConv2d",
    "PaddedConv2d",
    "ResBlock",
    "StyleMLP",
    "apply_affine_colour",
    "box_mean",
    "column_affine_colour",
    "demodulation",
    "inference_fast_path",
    "make_activation",
    "make_norm",
    "padded_conv2d",
    "replicate_pad",
    "upsample_to",
    "upsampled_affine_colour",
    "window_max",
]

#: channels of the affine colour head: a 3x3 matrix (row-major) then a 3-vector offset.
AFFINE_COEFFS: Final = 12
#: the affine coefficients by column of [A | b]: A_:0, A_:1, A_:2 (3 each), then b (:func:`column_affine_colour`).
COLUMN_ORDER: Final = (0, 3, 6, 1, 4, 7, 2, 5, 8, 9, 10, 11)

#: padding modes of every generator convolution (``GeneratorConfig.padding_mode``): replicate padding
#: avoids dark frame borders but costs a separate pass per layer; zero padding is fused into the conv.
PADDING_MODES: Final = ("replicate", "zeros")

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


def _exporting() -> bool:
    """True while tracing / scripting (ONNX export) or compiling (``torch.compile``): the fast paths, whose
    in-place writes into strided outputs break a dynamo graph, are skipped then (inductor fuses the plain
    formulation itself)."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling())


def inference_fast_path(*tensors: Tensor) -> bool:
    """True when an inference-only fast path may run: not exporting or compiling, and no gradient recorded
    for ``tensors``."""
    if _exporting():
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def replicate_pad(x: Tensor, pad: int) -> Tensor:
    """Replicate-pad the last two dims by ``pad`` on every side: (B, C, H, W) -> (B, C, H + 2p, W + 2p).

    Same values as ``F.pad(x, (pad,) * 4, mode="replicate")``. At inference (not exporting) the result is
    written channels_last whatever ``x``'s layout (one interior copy + border strips): ``F.pad`` returns
    NCHW, which the following oneDNN convolution copies to channels_last again (instance norm returns
    NCHW even for channels_last input, so both cases occur).
    """
    if pad == 0:
        return x
    B, C, H, W = x.shape
    if C == 1 or x.dim() != 4 or not inference_fast_path(x):
        return F.pad(x, (pad,) * 4, mode="replicate")
    p = pad
    y = torch.empty((B, C, H + 2 * p, W + 2 * p), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    y[:, :, p : p + H, p : p + W] = x
    y[:, :, p : p + H, :p] = x[:, :, :, :1]
    y[:, :, p : p + H, p + W :] = x[:, :, :, W - 1 :]
    y[:, :, :p, :] = y[:, :, p : p + 1, :]
    y[:, :, p + H :, :] = y[:, :, p + H - 1 : p + H, :]
    return y


def check_padding_mode(padding_mode: str) -> str:
    """``padding_mode`` if it is one of :data:`PADDING_MODES`, else a :class:`ConfigError` listing them."""
    if padding_mode not in PADDING_MODES:
        raise ConfigError(f"unknown padding mode {padding_mode!r}; valid padding modes: {list(PADDING_MODES)}")
    return padding_mode


def padded_conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int, *, padding_mode: str
) -> Tensor:
    """conv2d of ``x`` (B, Cin, H, W) padded by ``padding`` on every side in ``padding_mode``."""
    if padding_mode == "zeros":
        return F.conv2d(x, weight, bias, stride, padding)
    return F.conv2d(replicate_pad(x, padding), weight, bias, stride)


class PaddedConv2d(nn.Conv2d):
    """``nn.Conv2d`` padded in one of :data:`PADDING_MODES` (same parameters and state-dict keys as
    ``nn.Conv2d``); replicate padding goes through :func:`replicate_pad`, so channels_last activations stay
    channels_last.

    ``padding`` is an int (every side) or ``(before, after)``, applied to both axes: e.g. a stride-4,
    kernel-7 conv padded (1, 5) centres output i on input pixel 4 i + 2 instead of 4 i.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *,
        padding: int | tuple[int, int] = 0, padding_mode: str = "replicate", bias: bool = True,
    ) -> None:
        before, after = (padding, padding) if isinstance(padding, int) else padding
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=before if before == after else 0,
                         bias=bias, padding_mode=check_padding_mode(padding_mode))
        self.pad_before, self.pad_after = before, after

    def forward(self, x: Tensor) -> Tensor:
        """(B, Cin, H, W) -> (B, Cout, H', W')."""
        stride = int(self.stride[0])  # type: ignore[index]
        if self.pad_before == self.pad_after:
            return padded_conv2d(x, self.weight, self.bias, stride, self.pad_before, padding_mode=self.padding_mode)
        sides = (self.pad_before, self.pad_after) * 2
        padded = F.pad(x, sides, mode="replicate") if self.padding_mode == "replicate" else F.pad(x, sides)
        return F.conv2d(padded, self.weight, self.bias, stride)


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
    """conv(kernel, stride, 'same'-style padding in ``padding_mode``) -> norm -> activation."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
        *, norm: str = "instance", act: str = "relu", padding_mode: str = "replicate",
    ) -> None:
        super().__init__(
            PaddedConv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2,
                         padding_mode=padding_mode),
            make_norm(norm, out_channels),
            make_activation(act),
        )


class ResBlock(nn.Module):
    """x + conv-norm-relu-conv-norm(x), constant width: (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, channels: int, norm: str = "instance", *, padding_mode: str = "replicate") -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, norm=norm, act="relu", padding_mode=padding_mode),
            ConvNormAct(channels, channels, norm=norm, act="none", padding_mode=padding_mode),
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
        self, in_channels: int, out_channels: int, kernel_size: int, latent_dim: int, demodulate: bool = True,
        *, padding_mode: str = "replicate",
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = nn.Linear(latent_dim, in_channels)
        nn.init.ones_(self.affine.bias)
        self.affine.weight.data.normal_(0.0, 0.1 / math.sqrt(latent_dim))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = (kernel_size - 1) // 2
        self.padding_mode = check_padding_mode(padding_mode)
        self.demodulate = demodulate

    def forward(self, x: Tensor, latent: Tensor) -> Tensor:
        """(B, Cin, h, w), (B, latent_dim) -> (B, Cout, h, w)."""
        s = self.affine(latent)  # (B, Cin)
        weight = self.weight * self.scale
        # an ONNX export traced at batch 1 folds s[0] into the weight: ExportGraph's graphs are static batch 1 with
        # the model's mean style (a constant); a graph with a batch axis and a style per frame must not take this
        if x.shape[0] == 1 and (inference_fast_path(x, latent, self.weight) or torch.onnx.is_in_onnx_export()):
            return self._forward_folded(x, s, weight)
        x = x * s[:, :, None, None]
        if self.padding and self.padding_mode == "replicate":
            y = F.conv2d(F.pad(x, (self.padding,) * 4, mode="replicate"), weight)
        else:
            y = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            y = y * demodulation(s, weight).to(y.dtype)[:, :, None, None]
        return y + self.bias[None, :, None, None]

    def _forward_folded(self, x: Tensor, s: Tensor, weight: Tensor) -> Tensor:
        """Batch-1 inference: scale and demodulation folded into the (Cout, Cin, k, k) weight, bias into the
        conv, so the only full-size pass is the convolution itself (StyleGAN2 ``fused_modconv``). Also in a
        batch-1 ONNX export: the exported graphs (``ExportGraph``) use the model's mean style, so the folded
        weight is a constant there."""
        w = weight * s[0][None, :, None, None]
        if self.demodulate:
            w = w * demodulation(s, weight).to(w.dtype)[0][:, None, None, None]  # same as the unfolded path
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            w = w.contiguous(memory_format=torch.channels_last)
        return padded_conv2d(x, w, self.bias, 1, self.padding, padding_mode=self.padding_mode)


def demodulation(s: Tensor, weight: Tensor, eps: float = 1e-8) -> Tensor:
    """StyleGAN2 demodulation factors: styles (B, Cin), weight (Cout, Cin, k, k) -> (B, Cout) float32,
    ``1 / sqrt(sum_{i,k} (W_oik s_i)^2 + eps)``.

    Always float32 with autocast off: in fp16 ``eps`` = 1e-8 rounds to 0 (the smallest fp16 is 6e-8), so a
    zero style would give rsqrt(0) = inf and a NaN output. (B, Cin) @ (Cin, Cout) costs nothing.
    """
    with torch.autocast(s.device.type, enabled=False):
        w_sq = weight.float().pow(2).sum(dim=(2, 3))  # (Cout, Cin)
        return torch.rsqrt(s.float().pow(2) @ w_sq.t() + eps)


class ModResBlock(nn.Module):
    """Style-modulated residual block: x + modconv(lrelu(modconv(x, w)), w), (B, C, h, w) -> same."""

    def __init__(self, channels: int, latent_dim: int, *, padding_mode: str = "replicate") -> None:
        super().__init__()
        self.conv1 = ModulatedConv2d(channels, channels, 3, latent_dim, padding_mode=padding_mode)
        self.conv2 = ModulatedConv2d(channels, channels, 3, latent_dim, padding_mode=padding_mode)

    def forward(self, x: Tensor, latent: Tensor) -> Tensor:
        """(B, C, h, w), (B, latent_dim) -> (B, C, h, w)."""
        return x + self.conv2(F.leaky_relu(self.conv1(x, latent), 0.2), latent)


def apply_affine_colour(coeffs: Tensor, image: Tensor) -> Tensor:
    """Per-pixel affine colour model: coeffs (B, 12, H, W), image (B, 3, H, W) -> (B, 3, H, W).

    out_i = sum_j A_ij * image_j + b_i with A = coeffs[:, 0:9] (row-major 3x3) and b = coeffs[:, 9:12].
    Computed per output channel as three fused multiply-adds (``addcmul``) on (B, H, W) planes; no
    (B, 3, 3, H, W) broadcast product is materialised. Result is NCHW-contiguous.
    """
    if coeffs.shape[1] != AFFINE_COEFFS or coeffs.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"coeffs must be (B, 12, H, W) matching image {tuple(image.shape)}, got "
                         f"{tuple(coeffs.shape)}")
    coeffs = coeffs.contiguous()
    g = image.contiguous().unbind(1)
    if inference_fast_path(coeffs, image):  # write each channel straight into the output, in place
        result = coeffs.new_empty((coeffs.shape[0], 3, *coeffs.shape[-2:]))
        for i in range(3):
            out = result[:, i]
            torch.addcmul(coeffs[:, 9 + i], coeffs[:, 3 * i], g[0], out=out)
            out.addcmul_(coeffs[:, 3 * i + 1], g[1]).addcmul_(coeffs[:, 3 * i + 2], g[2])
        return result
    planes = []
    for i in range(3):  # three output channels, each b_i + A_i0 g_0 + A_i1 g_1 + A_i2 g_2
        out = torch.addcmul(coeffs[:, 9 + i], coeffs[:, 3 * i], g[0])
        out = torch.addcmul(out, coeffs[:, 3 * i + 1], g[1])
        planes.append(torch.addcmul(out, coeffs[:, 3 * i + 2], g[2]))
    return torch.stack(planes, dim=1)


def upsample_to(t: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinear upsampling (half-pixel centres): (B, C, h, w) -> (B, C, *size); ``t`` itself at that size, an
    empty (B, 0, *size) for C = 0."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    if t.shape[1] == 0:
        return t.new_empty((t.shape[0], 0, *size))
    return F.interpolate(t.contiguous(), size=tuple(size), mode="bilinear", align_corners=False)


def coefficients_by_label(table: Tensor, labels: Tensor) -> Tensor:
    """Each pixel's column of a per-label table: table (B, K, R), labels (B, h, w) integer ids -> (B, K, h, w),
    out[b, :, y, x] = table[b, :, labels[b, y, x]]; an id outside [0, R) reads the last column (with R = 256 ids,
    column 255: not a class, as the coefficient pooling treats negative ids and ids >= 256).

    For one frame (the exported graph's batch) a gather of whole rows of the transposed table and a transpose to
    planes (in ONNX Runtime ~6 times faster than gathering the K planes one element at a time); more frames
    gather along the last axis per frame."""
    if table.shape[0] != labels.shape[0] or table.dim() != 3 or labels.dim() != 3:
        raise ValueError(f"table must be (B, K, R) and labels (B, h, w) with the same B, got {tuple(table.shape)} "
                         f"and {tuple(labels.shape)}")
    last = table.shape[2] - 1
    ids = labels.long()
    return columns_by_index(table, torch.where((ids < 0) | (ids > last), last, ids))


def columns_by_index(table: Tensor, index: Tensor) -> Tensor:
    """:func:`coefficients_by_label` for an ``index`` (B, h, w) int64 known to lie in [0, R): no clamping."""
    if table.shape[0] == 1:
        return table[0].t()[index[0]].permute(2, 0, 1).unsqueeze(0)
    flat = index.flatten(1).unsqueeze(1).expand(-1, table.shape[1], -1)
    return table.gather(2, flat).view(*table.shape[:2], *index.shape[1:])


def box_mean(x: Tensor, size: int) -> Tensor:
    """Mean over a ``size`` x ``size`` box around every pixel (odd ``size``, replicate border): (B, C, H, W) ->
    (B, C, H, W). Separable: one edge Pad on every side, then two 1-D average poolings (ONNX AveragePool); the
    padded rows pooled along the width are the edge rows' pooled values, so this is padding between the poolings
    without a second Pad. Under CPU autocast the poolings run in float32, so a bf16 input comes back as float32."""
    if size % 2 != 1 or size < 1:
        raise ValueError(f"box size must be a positive odd number, got {size}")
    r = size // 2
    x = F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), (1, size), stride=1)
    return F.avg_pool2d(x, (size, 1), stride=1)


def window_max(x: Tensor, radius: int) -> Tensor:
    """x (B, C, H, W) -> (B, C, H, W): the maximum over the (2r+1) x (2r+1) window around each pixel, within the
    frame. Separable: eager, 2r + 1 shifted views of a replicate-padded x per axis reduced by ``torch.maximum``
    (replication adds no value the window does not hold); in an ONNX export, a row and a column ``max_pool2d``
    (padded with -inf: the same maxima). Eager CPU ``max_pool2d`` with stride 1 took 11 ms for three 640x360 planes,
    the shifts 0.5 ms; in ONNX Runtime a MaxPool takes 0.2-0.4 ms and the shifts' Pads, Slices and Maxes about three
    times that, and row and column passes 0.5 ms less than square windows for the edge clamp's six."""
    height, width = x.shape[-2:]
    size = 2 * radius + 1
    if torch.onnx.is_in_onnx_export():
        rows = F.max_pool2d(x, (1, size), 1, (0, radius))
        return F.max_pool2d(rows, (size, 1), 1, (radius, 0))
    padded = F.pad(x, (radius,) * 4, mode="replicate")
    rows = reduce(torch.maximum, [padded[..., k:k + width] for k in range(size)])
    return reduce(torch.maximum, [rows[..., k:k + height, :] for k in range(size)])


def upsampled_affine_colour(coeffs: Tensor, image: Tensor) -> Tensor:
    """:func:`apply_affine_colour` of ``coeffs`` (B, 12, h, w) bilinearly upsampled to ``image``'s (B, 3, H, W).

    Exported (ONNX; also under ``torch.compile``) as one upsampling of the 12 planes ordered by column of [A | b]
    (A_:0, A_:1, A_:2, b), viewed as (B, 4, 3, H, W), times the guide planes with a plane of ones, (B, 4, 1, H, W),
    summed over the columns by a (1, 4) MatMul of ones: b + A_:0 g_0 + A_:1 g_1 + A_:2 g_2 with no plane split out
    (~1.4 ms of 640x360 faster in onnxruntime than four 3-plane upsamplings and broadcast sums; a ReduceSum over
    the columns is ~0.3 ms slower than the MatMul; the product and sum are :func:`column_affine_colour`, which the
    decoder's full-resolution edge-pixel field also goes through). Eager: one upsampling and
    :func:`apply_affine_colour`. Same values.
    """
    if coeffs.shape[1] != AFFINE_COEFFS or coeffs.shape[0] != image.shape[0] or image.shape[1] != 3:
        raise ValueError(f"coeffs must be (B, 12, h, w) and image (B, 3, H, W) with the same B, got "
                         f"{tuple(coeffs.shape)} and {tuple(image.shape)}")
    size = image.shape[-2:]
    if not _exporting():
        return apply_affine_colour(upsample_to(coeffs, size), image)
    return column_affine_colour(upsample_to(coeffs[:, list(COLUMN_ORDER)], size), image)


def column_affine_colour(columns: Tensor, image: Tensor) -> Tensor:
    """The affine colour model with its coefficients by column (:data:`COLUMN_ORDER`) at the image's size: columns
    (B, 12, H, W) = [A_:0 | A_:1 | A_:2 | b], image (B, 3, H, W) -> b + A_:0 g_0 + A_:1 g_1 + A_:2 g_2 (B, 3, H, W).
    The columns viewed as (B, 4, 3, H, W) times the guide planes with a plane of ones, (B, 4, 1, H, W), summed over
    the columns by a (1, 4) MatMul of ones: no plane split out (see :func:`upsampled_affine_colour`). Eager: three
    fused multiply-adds (``addcmul``) of 3-plane slices (~2 ms faster at 640x360), the same values."""
    if columns.shape[1] != AFFINE_COEFFS or columns.shape[-2:] != image.shape[-2:] or image.shape[1] != 3:
        raise ValueError(f"columns must be (B, 12, H, W) at the size of image {tuple(image.shape)}, got "
                         f"{tuple(columns.shape)}")
    if not _exporting():
        out = torch.addcmul(columns[:, 9:12], columns[:, 0:3], image[:, 0:1])
        return out.addcmul_(columns[:, 3:6], image[:, 1:2]).addcmul_(columns[:, 6:9], image[:, 2:3])
    B, (H, W) = image.shape[0], image.shape[-2:]
    guide = torch.cat([image, torch.ones_like(image[:, :1])], 1).view(B, 4, 1, H, W)  # (g_0, g_1, g_2, 1)
    terms = (columns.reshape(B, 4, 3, H, W) * guide).view(B, 4, 3 * H * W)
    with torch.autocast(terms.device.type, enabled=False):  # a sum in the terms' dtype, as the eager one, also compiled
        return torch.matmul(terms.new_ones(1, 1, 4), terms).view(B, 3, H, W)  # the sum over columns as a MatMul
