"""Class-pooled decoder coefficients: fewer halos and smears at label edges.

The decoder predicts its affine colour coefficients (and the detail path's features) at work resolution. Their
field is smooth over several cells, also across label edges, so a class near another takes part of the other's
colour map (halos of sky along buildings, a car's colour smeared onto the road). Pooling blends each work cell's
coefficients with their mean over the cells of the same class in the frame, before the upsampling:

    c'(q) = (1 - w) * c(q) + w * mean_{q': label(q') = label(q)} c(q')

with ``label(q)`` the label at the centre pixel of work cell q (:func:`~sim2real.translator.memory.downsample_labels`)
and ``w`` = ``GeneratorConfig.coefficient_pooling``. A cell whose label is not a class (``< 0`` or
``>= num_classes``: ignore / void, unknown ids, padding) takes, whenever ``w > 0``, the mean over every class cell
of its frame, wholly:

    c'(q) = mean_{q' of a class} c(q')

The decoder never saw such cells in training (the procedural simulator labels every pixel), so their own
coefficients are not to be trusted: on CARLA's frames its "static" banners (void) came out as pale green boxes.
The frame's mean map treats an unlabelled region like the frame as a whole. A frame without any class cell (the
node's all-255 map when labels are missing) keeps its own coefficients. Padded cells (label 255) take the frame
mean too; the bilinear upsampling carries a little of it into the last real row or column next to them (no padding
at 640x360 or 1280x720). Done at work resolution it costs a (B, hw, num_classes) one-hot product; the bilinear
upsampling that follows still mixes neighbouring cells within one cell of an edge (pooling each full-resolution
pixel by its own label removed a little more bleed but cost 8 ms per 640x360 frame in ONNX Runtime). Computed in
float32, also under autocast (a bf16 mean over thousands of cells is off by a few per cent).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sim2real.translator.memory import downsample_labels


def class_pooled_coefficients(coeffs: Tensor, labels: Tensor, weight: float, num_classes: int) -> Tensor:
    """coeffs (B, K, h, w) at work resolution, labels (B, H, W) integer ids -> (B, K, h, w) float32.

    ``weight`` 0 returns the coefficients unchanged (as float32); 1 gives every cell of a class its class's mean.
    For any ``weight`` > 0, cells of no class take the mean over the frame's class cells (module docstring).
    """
    with torch.autocast(coeffs.device.type, enabled=False):
        coeffs = coeffs.float()
        if weight == 0:
            return coeffs
        cell_ids = downsample_labels(labels, tuple(coeffs.shape[-2:])).long().flatten(1)  # (B, hw)
        member = (cell_ids.unsqueeze(-1) == torch.arange(num_classes, device=coeffs.device)).float()  # (B, hw, C)
        means = (coeffs.flatten(2) @ member) / member.sum(1).clamp(min=1).unsqueeze(1)  # (B, K, C)
        pooled = (means @ member.transpose(1, 2)).view_as(coeffs)  # each cell's class mean (0: no class)
        is_class = member.sum(-1).view(coeffs.shape[0], 1, *coeffs.shape[-2:])  # (B, 1, h, w) 1 or 0
        class_cells = is_class.sum((2, 3), keepdim=True)  # (B, 1, 1, 1)
        frame_mean = (coeffs * is_class).sum((2, 3), keepdim=True) / class_cells.clamp(min=1)  # (B, K, 1, 1)
        in_class = is_class > 0
        target = torch.where(in_class, pooled, frame_mean)
        share = torch.where(in_class, weight, (class_cells > 0).float())  # no class cell at all: own coefficients
        return coeffs + share * (target - coeffs)
