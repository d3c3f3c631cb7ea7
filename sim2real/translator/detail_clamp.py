"""Detail edge clamp: the detail path may not push a label-edge pixel outside the colours around it.

The detail path (:class:`~sim2real.translator.generator.DetailPath`) adds texture at full resolution. At a label
edge its output lifts or sinks the pixels along the edge beyond both sides' colours: a light or dark rim one or
two pixels wide (``edge_overshoot`` in ``sim2real-eval``), which no colour baseline has. With the clamp, each
pixel within r pixels of another label keeps base + detail only inside the range, per channel, that the colour
map's output (base, before the detail) spans over the (2r+1) x (2r+1) window around it:

    out = clamp(base + detail, min_N(base), max_N(base))   at pixels within r of another label,
    out = base + detail                                     elsewhere,

N the window. The pixel itself is in its window, so the clamp never removes the colour map's own output, only
detail that overshoots it; inside a class the detail path is unchanged. Pure torch; no weights.

The window maxima are separable: 2r + 1 shifted views of a replicate-padded tensor per axis, reduced by
``torch.maximum`` (replication adds no value the window does not hold, so the frame's outside is left out).
Eager CPU ``max_pool2d`` with stride 1 took 11 ms for three 640x360 planes, these shifts 0.5 ms; in ONNX Runtime
it is the other way round (a MaxPool 0.2-0.4 ms, the shifts' Pads, Slices and Maxes about three times that), so
an exported graph gets ``max_pool2d`` (the same numbers). The edge pixels take the clamp as
out + edge * (clamped - out): in ONNX Runtime a Where broadcasting the one-plane mask over three took 0.9 ms.
"""

from __future__ import annotations

from functools import reduce

import torch
import torch.nn.functional as F
from torch import Tensor


def window_max(x: Tensor, radius: int) -> Tensor:
    """x (B, C, H, W) -> (B, C, H, W): the maximum over the (2r+1) x (2r+1) window around each pixel, within the
    frame (module docstring: separable shifts of a replicate-padded x)."""
    height, width = x.shape[-2:]
    size = 2 * radius + 1
    if torch.onnx.is_in_onnx_export():
        return F.max_pool2d(x, size, 1, radius)  # pads with -inf: the same maxima
    padded = F.pad(x, (radius,) * 4, mode="replicate")
    rows = reduce(torch.maximum, [padded[..., k:k + width] for k in range(size)])
    return reduce(torch.maximum, [rows[..., k:k + height, :] for k in range(size)])


def label_edge_mask(labels: Tensor, radius: int) -> Tensor:
    """labels (B, H, W) class ids, radius r >= 1 -> (B, 1, H, W) bool: True where another label lies within r
    pixels (the (2r+1) x (2r+1) window; the frame's border counts as no label)."""
    if radius < 1:
        raise ValueError(f"label_edge_mask needs a radius >= 1, got {radius}")
    ids = labels.unsqueeze(1).float()  # ids <= 255: exact in float32
    return (window_max(ids, radius) != ids) | (window_max(-ids, radius) != -ids)


def edge_clamped_detail(base: Tensor, detail: Tensor, labels: Tensor, radius: int) -> Tensor:
    """base (B, 3, H, W) the colour map's output, detail (B, 3, H, W) the detail path's, labels (B, H, W) class ids,
    radius r >= 1 -> (B, 3, H, W): base + detail, clamped at label-edge pixels to the window's range of base
    (module docstring). Differentiable (the clamp passes the gradient where it does not bind)."""
    if base.shape != detail.shape or base.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"edge_clamped_detail needs base and detail of one shape (B, 3, H, W) and labels (B, H, W), "
                         f"got {tuple(base.shape)}, {tuple(detail.shape)}, {tuple(labels.shape)}")
    high, low = window_max(base, radius), -window_max(-base, radius)
    out = base + detail
    clamped = torch.minimum(torch.maximum(out, low), high)
    return out + label_edge_mask(labels, radius).to(out.dtype) * (clamped - out)
