"""Instance boxes, per-instance coverage masks and boundary maps from instance-id maps (pure, vectorised).

Every function here is a pure tensor function with static output shapes (N = ``max_instances`` slots
padded with ``valid=False``), so the translate path stays free of data-dependent control flow and
exports to ONNX. Instance ids are canonical uint16 values held in int64 tensors; 0 = no instance.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from sim2real.core.errors import ConfigError, LabelError

__all__ = [
    "ID_SPACE", "InstanceBoxes", "instance_boundaries", "instance_boundary_count", "instance_boxes", "instance_masks",
]

#: size of the instance id space (uint16): per-id statistics are scattered into tables this long.
ID_SPACE: Final = 65536


class InstanceBoxes(NamedTuple):
    """The N kept instances of each frame, largest pixel area first, padded with ``valid=False``.

    Attributes:
        boxes: (B, N, 4) float32 ``x1, y1, x2, y2`` in input pixels; x2 / y2 exclusive (x2 = max x + 1).
            Padding rows are zeros.
        ids: (B, N) int64 instance ids (0 on padding rows).
        valid: (B, N) bool.
    """

    boxes: Tensor
    ids: Tensor
    valid: Tensor


def _check_instance(instance: Tensor) -> None:
    if instance.dim() != 3:
        raise LabelError(f"instance map must be (B, H, W), got shape {tuple(instance.shape)}")
    if instance.dtype.is_floating_point or instance.dtype == torch.bool:
        raise LabelError(f"instance map must be an integer tensor, got {instance.dtype}")


def instance_boxes(instance: Tensor, max_instances: int) -> InstanceBoxes:
    """Tight boxes of the ``max_instances`` largest instances of each frame.

    (B, H, W) -> boxes (B, N, 4), ids (B, N), valid (B, N) with N = ``max_instances``.

    Per-id pixel counts and min/max coordinates are scattered into (B, 65536) tables (``scatter_add`` /
    ``scatter_reduce`` amin/amax over the flattened pixels), then ``topk`` keeps the N largest by pixel
    area (ties: smaller id first). Frames with fewer than N instances are padded with ``valid=False``.

    Args:
        instance: (B, H, W) integer ids in [0, 65535]; 0 = no instance.
        max_instances: N >= 1.
    Raises:
        LabelError: wrong rank / dtype.
        ConfigError: ``max_instances`` < 1.
    """
    _check_instance(instance)
    if max_instances < 1:
        raise ConfigError(f"max_instances must be >= 1, got {max_instances}")
    B, H, W = instance.shape
    device = instance.device
    ids = instance.reshape(B, H * W).long()
    ys = torch.arange(H, device=device).repeat_interleave(W).expand(B, H * W)
    xs = torch.arange(W, device=device).repeat(H).expand(B, H * W)

    count = torch.zeros(B, ID_SPACE, dtype=torch.long, device=device)
    count.scatter_add_(1, ids, torch.ones_like(ids))
    big = torch.full((B, ID_SPACE), H * W, dtype=torch.long, device=device)
    small = torch.full((B, ID_SPACE), -1, dtype=torch.long, device=device)
    x_min = big.scatter_reduce(1, ids, xs, reduce="amin")
    y_min = big.scatter_reduce(1, ids, ys, reduce="amin")
    x_max = small.scatter_reduce(1, ids, xs, reduce="amax")
    y_max = small.scatter_reduce(1, ids, ys, reduce="amax")
    count[:, 0] = 0  # 0 is "no instance"

    # rank key: area first, then smaller id; exact in int64 (area <= H*W, id < 65536).
    id_range = torch.arange(ID_SPACE, device=device)
    key = torch.where(count > 0, count * ID_SPACE + (ID_SPACE - 1 - id_range), torch.zeros_like(count))
    k = min(max_instances, ID_SPACE)
    top_key, top_id = torch.topk(key, k, dim=1)
    valid = top_key > 0
    boxes = torch.stack(
        [
            x_min.gather(1, top_id), y_min.gather(1, top_id),
            x_max.gather(1, top_id) + 1, y_max.gather(1, top_id) + 1,
        ],
        dim=-1,
    ).float()
    boxes = boxes * valid.unsqueeze(-1)
    out_ids = top_id * valid
    if k < max_instances:  # pragma: no cover - only when max_instances exceeds the uint16 id space
        pad = max_instances - k
        boxes = F.pad(boxes, (0, 0, 0, pad))
        out_ids = F.pad(out_ids, (0, pad))
        valid = F.pad(valid, (0, pad))
    return InstanceBoxes(boxes=boxes, ids=out_ids, valid=valid)


def instance_masks(instance: Tensor, ids: Tensor, valid: Tensor, stride: int) -> Tensor:
    """Per-instance coverage of each ``stride x stride`` cell: the mask at feature resolution.

    instance (B, H, W), ids (B, N), valid (B, N) -> (B, N, H/stride, W/stride) float in [0, 1].

    Cell (i, j) of slot n holds the fraction of the cell's pixels whose id is ``ids[b, n]`` (area
    downsampling). Invalid slots are all-zero. Computed without a (B, N, H, W) intermediate: a (B, 65536)
    id -> slot lookup table maps every pixel to its slot (or the spare slot N), and one ``scatter_add``
    accumulates cell counts into (B, (N + 1) * h * w).

    Raises:
        LabelError: wrong rank / dtype, or H, W not multiples of ``stride``.
    """
    _check_instance(instance)
    B, H, W = instance.shape
    N = ids.shape[1]
    if H % stride or W % stride:
        raise LabelError(f"instance map {H}x{W} is not a multiple of stride {stride}")
    h, w = H // stride, W // stride
    device = instance.device
    slot_of_id = torch.full((B, ID_SPACE), N, dtype=torch.long, device=device)
    slots = torch.arange(N, device=device).expand(B, N)
    # invalid slots scatter into id 0's entry, which is then reset to the spare slot.
    slot_of_id.scatter_(1, ids * valid, torch.where(valid, slots, torch.full_like(slots, N)))
    slot_of_id[:, 0] = N
    pixel_slot = slot_of_id.gather(1, instance.reshape(B, H * W).long())  # (B, H*W)
    cell = (torch.arange(H, device=device) // stride).unsqueeze(1) * w + (
        torch.arange(W, device=device) // stride
    ).unsqueeze(0)
    index = pixel_slot * (h * w) + cell.reshape(1, H * W)
    counts = torch.zeros(B, (N + 1) * h * w, dtype=torch.float32, device=device)
    counts.scatter_add_(1, index, torch.ones(B, H * W, dtype=torch.float32, device=device))
    return counts.reshape(B, N + 1, h, w)[:, :N] / float(stride * stride)


def instance_boundary_count(instance: Tensor) -> Tensor:
    """Number of 4-neighbours with a different instance id: (B, H, W) -> (B, H, W) uint8 in 0..4.

    ``> 0`` is the boundary map of :func:`instance_boundaries`; kept in uint8 so the full-resolution work
    is four compares and adds on bytes (the label stem turns it into a table index without a float map).
    """
    _check_instance(instance)
    horizontal = (instance[:, :, 1:] != instance[:, :, :-1]).to(torch.uint8)
    vertical = (instance[:, 1:, :] != instance[:, :-1, :]).to(torch.uint8)
    count = F.pad(horizontal, (1, 0)) + F.pad(horizontal, (0, 1))
    return count + F.pad(vertical, (0, 0, 1, 0)) + F.pad(vertical, (0, 0, 0, 1))


def instance_boundaries(instance: Tensor) -> Tensor:
    """Pixels with a 4-neighbour of a different instance id (0 counts as an id).

    (B, H, W) -> (B, 1, H, W) float in {0, 1}. Same convention as :func:`sim2real.core.labels.
    instance_boundaries` (both sides of a change are marked; the image border is not a boundary).
    """
    return (instance_boundary_count(instance) > 0).float().unsqueeze(1)
