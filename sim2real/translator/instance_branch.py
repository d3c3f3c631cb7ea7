"""DUNIT instance branch (Bhattacharjee et al., CVPR 2020): instance-level content fused into the global map.

::

    instance (B, H, W) --instance_boxes--> boxes (B, N, 4), ids, valid --instance_masks--> m (B, N, h, w)
    features (B, C, h, w) --RoIAlign(1/stride)--> crops (B*N, C, R, R) --conv stack--> (B*N, Ci, R, R)
    paste: each crop resampled into its own box at feature resolution (separable bilinear: two matmuls),
           times its own mask m_n, summed over n -> (B, Ci, h, w) --1x1 conv, no bias--> delta (B, C, h, w)

``delta`` is exactly zero at cells no kept instance touches, so adding it to the global features leaves
those cells unchanged; with zero instances (all ``valid`` False) the branch is a no-op. Everything is
vectorised over B*N with static shapes (N = ``max_instances``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from sim2real.core.errors import ConfigError
from sim2real.translator.boxes import InstanceBoxes, instance_boxes, instance_masks
from sim2real.translator.layers import ConvNormAct
from sim2real.translator.memory import downsample_labels
from sim2real.translator.roi_align import bilinear_matrix, roi_align

__all__ = ["InstanceBranch", "InstanceFusion", "paste_instances"]


class InstanceFusion(NamedTuple):
    """What :class:`InstanceBranch` returns.

    Attributes:
        delta: (B, C, h, w) fused instance features to add to the global map (0 outside instances).
        instances: the kept instances (boxes in input pixels, ids, valid).
        masks: (B, N, h, w) per-instance coverage at feature resolution.
    """

    delta: Tensor
    instances: InstanceBoxes
    masks: Tensor


def _bilinear_weights(grid: Tensor, size: int) -> Tensor:
    """1-D bilinear interpolation matrix of ``grid_sample`` (align_corners=False, border padding).

    grid (..., L) normalised coordinates in [-1, 1] units -> (..., L, size), via the unnormalised pixel
    coordinate ``((g + 1) * size - 1) / 2`` (:func:`~sim2real.translator.roi_align.bilinear_matrix`).
    """
    return bilinear_matrix(((grid + 1.0) * size - 1.0) / 2.0, size)


def paste_instances(crops: Tensor, boxes: Tensor, masks: Tensor, stride: int) -> Tensor:
    """Resample every crop into its box and mask-weight it: (B, N, Ci, R, R) -> (B, Ci, h, w).

    boxes (B, N, 4) are ``x1, y1, x2, y2`` in input pixels (x2 exclusive), masks (B, N, h, w) the coverage
    of each instance per stride x stride cell. Cell (i, j) has its centre at ((j + 0.5) * stride,
    (i + 0.5) * stride) in input pixels; its relative position u = (x - x1) / (x2 - x1) in the box picks
    the crop sample at crop coordinate u * R (crop cell centres sit at (k + 0.5) / R, RoIAlign's bins),
    bilinearly, border-clamped. out = sum_n masks_n * sample_n.

    The sampling grid of one box is separable (the column position depends on j only, the row position on
    i only), so the bilinear resampling is ``Wy @ crop @ Wx^T`` with (h, R) and (w, R) interpolation
    matrices: the same weights as ``grid_sample(..., "bilinear", "border", align_corners=False)`` on that
    grid, as two small batched matmuls (much faster than a generic grid sampler, in eager and in
    onnxruntime). The mask weighting and the sum over instances go into the second one, per cell row i:
    out[:, i, j] = sum_(n, s) (Wy_n crop_n)[:, i, s] (masks_n(i, j) Wx_n(j, s)), a contraction over N R
    (no (B, N, Ci, h, w) tensor: 1.5 -> 0.9 ms at 640x360 in onnxruntime). They run in the crops' dtype
    (float32 from the branch) with autocast off.
    """
    R = crops.shape[-1]
    h, w = masks.shape[-2:]
    dtype = crops.dtype
    cx = (torch.arange(w, device=crops.device, dtype=dtype) + 0.5) * stride  # (w,)
    cy = (torch.arange(h, device=crops.device, dtype=dtype) + 0.5) * stride  # (h,)
    x1, y1, x2, y2 = boxes.to(dtype).unbind(-1)  # (B, N) each
    u = (cx.view(1, 1, w) - x1.unsqueeze(-1)) / (x2 - x1).clamp(min=1.0).unsqueeze(-1)  # (B, N, w)
    v = (cy.view(1, 1, h) - y1.unsqueeze(-1)) / (y2 - y1).clamp(min=1.0).unsqueeze(-1)  # (B, N, h)
    wx = _bilinear_weights(2.0 * u - 1.0, R)  # (B, N, w, R)
    wy = _bilinear_weights(2.0 * v - 1.0, R)  # (B, N, h, R)
    B, N, Ci = crops.shape[:3]
    # in the crops' dtype even under autocast (which would run the matmuls in fp16 / bf16: 1e-2 off)
    with torch.autocast(crops.device.type, enabled=False):
        rows = torch.matmul(wy.unsqueeze(2), crops)  # (B, N, Ci, h, R)
        rows = rows.permute(0, 3, 2, 1, 4).reshape(B, h, Ci, N * R)  # (B, h, Ci, N R)
        # masks_n(i, j) Wx_n(j, s), built in the layout of the contraction over (n, s): (B, h, N R, w)
        columns = masks.to(dtype).permute(0, 2, 1, 3).unsqueeze(3) * wx.transpose(-1, -2).unsqueeze(1)
        return torch.matmul(rows, columns.reshape(B, h, N * R, w)).permute(0, 2, 1, 3)  # (B, Ci, h, w)


class InstanceBranch(nn.Module):
    """RoIAlign -> instance encoder -> mask-weighted paste -> 1x1 projection (no bias).

    Args:
        content_channels: C of the global feature map.
        instance_channels: Ci of the instance encoder.
        roi_size: R, crop size.
        sampling_ratio: RoIAlign samples per bin side (>= 1).
        stride: input pixels per feature cell.
        max_instances: N, instances kept per frame (largest pixel area first).
        padding_mode: padding of the encoder convs (:data:`~sim2real.translator.layers.PADDING_MODES`).
        label_stride: boxes and masks come from the instance map sampled at the centre of every
            ``label_stride`` x ``label_stride`` cell (1: every pixel); box edges are then multiples of it.
    """

    def __init__(
        self, content_channels: int, instance_channels: int, roi_size: int, sampling_ratio: int,
        *, stride: int, max_instances: int, padding_mode: str = "replicate", label_stride: int = 1,
    ) -> None:
        super().__init__()
        if label_stride < 1 or stride % label_stride:
            raise ConfigError(f"label_stride {label_stride} must be >= 1 and divide the stride {stride}")
        self.label_stride = label_stride
        self.roi_size = roi_size
        self.sampling_ratio = sampling_ratio
        self.stride = stride
        self.max_instances = max_instances
        self.encoder = nn.Sequential(
            ConvNormAct(content_channels, instance_channels, norm="none", act="lrelu", padding_mode=padding_mode),
            ConvNormAct(instance_channels, instance_channels, norm="none", act="lrelu", padding_mode=padding_mode),
            ConvNormAct(instance_channels, instance_channels, norm="none", act="lrelu", padding_mode=padding_mode),
        )
        self.project = nn.Conv2d(instance_channels, content_channels, 1, bias=False)

    def sampled_map(self, instance: Tensor) -> Tensor:
        """The instance map the branch counts: (B, H, W) -> (B, H / label_stride, W / label_stride)."""
        if self.label_stride == 1:
            return instance
        H, W = instance.shape[-2:]
        return downsample_labels(instance, (H // self.label_stride, W // self.label_stride))

    def kept_instances(self, sampled: Tensor) -> InstanceBoxes:
        """The ``max_instances`` largest instances of a :meth:`sampled_map`, boxes in input pixels."""
        inst = instance_boxes(sampled, self.max_instances)
        if self.label_stride == 1:
            return inst
        return inst._replace(boxes=inst.boxes * float(self.label_stride))

    def forward(self, features: Tensor, instance: Tensor) -> InstanceFusion:
        """features (B, C, h, w), instance (B, H, W) with H = h * stride -> :class:`InstanceFusion`.

        The geometric resampling (RoIAlign, paste) runs in float32 whatever the feature dtype, so box
        coordinates keep sub-pixel precision under fp16 / bf16 inference; the convs run in the input dtype.
        """
        B, C = features.shape[:2]
        dtype = features.dtype
        sampled = self.sampled_map(instance)
        inst = self.kept_instances(sampled)
        masks = instance_masks(sampled, inst.ids, inst.valid, self.stride // self.label_stride)  # (B, N, h, w)
        crops = roi_align(
            features.float(), inst.boxes, self.roi_size, 1.0 / self.stride, self.sampling_ratio, aligned=True
        )
        N, R = inst.boxes.shape[1], self.roi_size
        encoded = self.encoder(crops.reshape(B * N, C, R, R).to(dtype))
        encoded = encoded.reshape(B, N, encoded.shape[1], R, R)
        pasted = paste_instances(encoded.float(), inst.boxes, masks, self.stride).to(dtype)
        return InstanceFusion(delta=self.project(pasted), instances=inst, masks=masks)
