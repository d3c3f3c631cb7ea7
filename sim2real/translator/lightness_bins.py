"""Coefficient pooling per class *and guide lightness* (``GeneratorConfig.coefficient_lightness_bins``).

Coefficient pooling (:mod:`~sim2real.translator.coefficient_pooling`) gives a cell its class's mean colour map.
One affine map per class cannot make a truck's black underside black and its grey side near-white, so the
decoder makes them with spatially varying maps; edge pooling then hands the cells along the underside's edge the
class mean, a map for a mid-grey truck, and the underside gets a lighter band inside its outline (the pooled
maps disagree with the local ones exactly where lightness differs from the class's typical one).

With L >= 2 lightness bins the pooling target of a cell is its class's mean *over cells of similar guide
lightness*, read by hat weights on L bin centres spread evenly over the guide's range [-1, 1]:

    h_l(y) = max(0, 1 - |y - y_l| (L - 1) / 2),    y_l = -1 + 2 l / (L - 1),    sum_l h_l(y) = 1 on [-1, 1]
    M[k, l] = (sum_{q: label(q) = k} h_l(y_q) c(q) + lam m_k) / (sum_{q: label(q) = k} h_l(y_q) + lam)
    target(q) = sum_l h_l(y_q) M[label(q), l]

with y the luma of the decoder's guide at the cell's centre pixel, m_k the class mean and lam =
:data:`PRIOR_CELLS` (a bin with little weight falls back to the class mean). A class's pooled maps become a
piecewise-affine function of guide lightness (interpolated between bins, so no contour at a bin boundary) instead
of one affine map; with L = 1 bin it would be the class mean. The edge-pixel field reads the table per pixel, by
the pixel's own label and lightness (:func:`by_label_and_lightness`). It changes no weight, so a trained model can
take it on (``training.networks.RUN_MAY_CHANGE``).
"""

from __future__ import annotations

from typing import Final

import torch
from torch import Tensor

from sim2real.translator.layers import columns_by_index

#: the pseudo-count of class-mean cells each (class, bin) mean holds
PRIOR_CELLS: Final = 1.0


def lightness_weights(y: Tensor, bins: int) -> Tensor:
    """y (...) guide lightness in [-1, 1] (clamped) -> (..., bins) hat weights h_l(y) (module docstring): at most
    two non-zero, summing to 1."""
    if bins < 2:
        raise ValueError(f"lightness bins must be >= 2, got {bins}")
    centres = torch.linspace(-1.0, 1.0, bins, device=y.device, dtype=y.dtype)
    return (1 - (y.clamp(-1.0, 1.0).unsqueeze(-1) - centres).abs() * ((bins - 1) / 2)).clamp(min=0)


def binned_class_means(values: Tensor, member: Tensor, weights: Tensor, class_means: Tensor) -> Tensor:
    """values (B, K, N) the cells' coefficients, member (B, N, C) their one-hot classes, weights (B, N, L) their
    lightness weights, class_means (B, K, C) m_k -> M (B, K, L, C) of the module docstring. Two products with
    the one-hot classes, without a (B, N, C L) one-hot of class and bin."""
    batch, channels, _ = values.shape
    per_bin = weights.transpose(1, 2)  # (B, L, N)
    sums = ((values.unsqueeze(2) * per_bin.unsqueeze(1)).flatten(1, 2) @ member).view(batch, channels, -1,
                                                                                        member.shape[2])
    totals = (per_bin @ member).unsqueeze(1)  # (B, 1, L, C)
    return (sums + PRIOR_CELLS * class_means.unsqueeze(2)) / (totals + PRIOR_CELLS)


def by_label_and_lightness(table: Tensor, labels: Tensor, lightness: Tensor, constant: Tensor | None = None
                           ) -> tuple[Tensor, Tensor | None]:
    """table (B, K, L, R) a map per lightness bin and label id, labels (B, h, w) integer ids, lightness (B, h, w)
    in [-1, 1] -> (B, K, h, w): each pixel's column of its label, interpolated between its two bins by the hat
    weights; and, for ``constant`` (B, E, R) columns that do not depend on lightness, each pixel's column of those
    (B, E, h, w) (else None). An id outside [0, R) reads column R - 1 (as
    :func:`~sim2real.translator.layers.coefficients_by_label`).

    Read as the lower bin's column plus the hat weight times the step to the next bin's, T_l + h (T_{l+1} - T_l):
    two gathers whatever L (the lower columns with the constant ones, and the steps) and two full-resolution
    operations per plane for the blend."""
    batch, channels, bins, rows = table.shape
    if constant is not None and (constant.dim() != 3 or constant.shape[0] != batch or constant.shape[2] != rows):
        raise ValueError(f"constant columns must be (B, E, R) = ({batch}, E, {rows}) like the table "
                         f"{tuple(table.shape)}, got {tuple(constant.shape)}")
    ids = labels.long()
    ids = torch.where((ids < 0) | (ids >= rows), rows - 1, ids)
    position = (lightness.clamp(-1.0, 1.0) + 1) * ((bins - 1) / 2)
    low = position.floor().clamp(max=bins - 2)
    upper = (position - low).unsqueeze(1)
    column = low.long() * rows + ids  # column l R + id of the (B, ., (L - 1) R) tables below
    lower = table[:, :, :-1]
    steps = (table[:, :, 1:] - lower).reshape(batch, channels, -1)
    lower = lower.reshape(batch, channels, -1)
    if constant is not None:
        lower = torch.cat([lower, constant.to(lower.dtype).repeat(1, 1, bins - 1)], 1)
    lower_map = columns_by_index(lower, column)
    blended = lower_map[:, :channels] + upper * columns_by_index(steps, column)
    return blended, (lower_map[:, channels:] if constant is not None else None)
