"""Edge clamp: a pixel beside a label edge may not leave the lightness of the regions it borders.

Two things draw rims and outlines one or two pixels wide along label edges (``edge_overshoot`` in
``sim2real-eval``), which no colour baseline has:

* the class-wise colour maps (the prior's and the decoder's) applied to the source's edge pixels. A rendered
  edge pixel often holds a blend of both sides' colours (anti-aliasing, a label mask a pixel off), and its
  label's map, fitted to that class's colours, sends it beyond both sides: a light outline around a dark car or
  a lamp post's base on CARLA frames;
* the detail path (:class:`~sim2real.translator.generator.DetailPath`), whose response to the guide's edges
  lifts or sinks the pixels along them.

With the clamp, each pixel within r pixels of another label (an edge pixel) keeps the luma of the decoder's
output, base + detail (base the colour map's output), inside the lightness of the regions it lies between:

    out = o + (clamp(Y(o), low, high) - Y(o))   at edge pixels with an interior pixel of their own label within 2r,
    out = o                                     elsewhere,          o = base + detail,

    [low, high] = the range of Y(base) over the interior pixels (not edge pixels, of any label) within 2r,

Y the luma (``core.colour.LUMA_WEIGHTS``, summing to 1): the correction is added to all three channels alike,
so the pixel's chroma stays (rims and outlines are lightness; a per-channel clamp measured the same and cost
three planes' maxima instead of one: 5.7 against 3.6 ms for the clamp alone in ONNX Runtime).

Within 2r every edge pixel reaches the interior on both sides of a straight edge. Structures narrower than
2r + 1 pixels (a distant pole) have no interior of their own and keep their output, detail included: clamped to
their surroundings' colours they would vanish. "An interior pixel of their own label" is read off the largest
and the smallest interior label within reach: exact where at most two labels' interiors are in reach; with three
or more a pixel may be left unclamped (never clamped wrongly). The ignore id counts as a label: its region has
colours of its own. Inside a class nothing changes. Pure torch; no weights.

The window maxima are :func:`~sim2real.translator.layers.window_max` (separable; fast both eager and in ONNX
Runtime). Masks act by arithmetic: the correction is multiplied by the one-plane mask,
and the edge pixels drop out of the range's maxima by subtracting a large number (a Where broadcasting a
one-plane mask over three planes took 0.8-0.9 ms in ONNX Runtime).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sim2real.core.colour import LUMA_WEIGHTS
from sim2real.translator.coefficient_pooling import near_other_label
from sim2real.translator.layers import window_max

#: subtracted from the edge pixels before the window maxima, so that only interior pixels can be the maximum
#: (finite: also in fp16).
_EXCLUDED: float = 1.0e4


def label_edge_mask(labels: Tensor, radius: int) -> Tensor:
    """labels (B, H, W) class ids, radius r >= 1 -> (B, 1, H, W) bool: True where another label lies within r
    pixels (the (2r+1) x (2r+1) window; the frame's border counts as no label): coefficient pooling's
    :func:`~sim2real.translator.coefficient_pooling.near_other_label` at full resolution."""
    if radius < 1:
        raise ValueError(f"label_edge_mask needs a radius >= 1, got {radius}")
    return near_other_label(labels.flatten(1), tuple(labels.shape[-2:]), radius)


def luma(x: Tensor) -> Tensor:
    """x (B, 3, H, W) -> (B, 1, H, W): the weighted sum of the channels by ``LUMA_WEIGHTS``."""
    red, green, blue = LUMA_WEIGHTS
    return x[:, :1] * red + x[:, 1:2] * green + x[:, 2:3] * blue


def own_interior_within(labels: Tensor, edge: Tensor, radius: int) -> Tensor:
    """labels (B, H, W), edge (B, 1, H, W) from :func:`label_edge_mask` at ``radius`` -> (B, 1, H, W) bool: where an
    interior pixel of the pixel's own label lies within 2r, read off the largest and the smallest interior label
    within reach (module docstring). Ids compare in float32 (exact to 2^24, whatever the autocast dtype)."""
    ids = labels.unsqueeze(1).float()
    excluded = edge.float() * _EXCLUDED
    reach = 2 * radius
    return (window_max(ids - excluded, reach) == ids) | (window_max(-ids - excluded, reach) == -ids)


def interior_luma_range(base: Tensor, edge: Tensor, radius: int) -> tuple[Tensor, Tensor]:
    """base (B, 3, H, W), edge (B, 1, H, W) from :func:`label_edge_mask` at ``radius`` -> (low, high), each
    (B, 1, H, W): the range of base's luma over the interior pixels within 2r (meaningless where there is none)."""
    y, excluded = luma(base), edge.to(base.dtype) * _EXCLUDED
    return -window_max(-y - excluded, 2 * radius), window_max(y - excluded, 2 * radius)


def edge_clamped(base: Tensor, detail: Tensor | None, labels: Tensor, radius: int) -> Tensor:
    """base (B, 3, H, W) the colour map's output, detail (B, 3, H, W) the detail path's or None (no detail path),
    labels (B, H, W) class ids, radius r >= 1 -> (B, 3, H, W): base + detail with its luma clamped at the pixels
    within r of another label (module docstring). Differentiable (the clamp passes the gradient where it does not
    bind; where it binds, to o's chroma and to the neighbours' base through the range)."""
    if (detail is not None and detail.shape != base.shape) or base.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"edge_clamped needs base and detail of one shape (B, 3, H, W) and labels (B, H, W), "
                         f"got {tuple(base.shape)}, {None if detail is None else tuple(detail.shape)}, "
                         f"{tuple(labels.shape)}")
    edge = label_edge_mask(labels, radius)
    low, high = interior_luma_range(base, edge, radius)
    out = base if detail is None else base + detail
    y = luma(out)
    clamped = edge & own_interior_within(labels, edge, radius)
    return out + clamped.to(out.dtype) * (torch.minimum(torch.maximum(y, low), high) - y)
