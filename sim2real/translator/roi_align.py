"""RoIAlign (He et al., Mask R-CNN) on per-frame box sets, vectorised (matrix products or ``grid_sample``).

:func:`roi_align` uses ``torchvision.ops.roi_align`` when torchvision is importable and the project's own
:func:`roi_align_separable` otherwise (torchvision is not a dependency). :func:`roi_align_grid` is the
direct formulation (one ``grid_sample``), kept as the reference the separable one is tested against. All
follow torchvision's semantics:

* box corners are scaled by ``spatial_scale``; with ``aligned=True`` they are shifted by -0.5 so that a
  box [x1, x2) in input pixels covers the feature samples whose centres it contains;
* each of the ``ph x pw`` bins averages ``sampling_ratio x sampling_ratio`` bilinear samples placed at
  the centres of a regular sub-grid of the bin;
* a sample farther than one pixel outside the map (y < -1 or y > H, same for x) contributes 0 (but still
  counts in the average); others are clamped into [0, H-1] x [0, W-1] and interpolated bilinearly;
* ``aligned=False`` keeps the legacy behaviour (no shift; RoI size forced >= 1).

Difference: only a fixed ``sampling_ratio >= 1`` is supported (torchvision's adaptive ``-1``, a
per-RoI sample count, is data-dependent and would break static export).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sim2real.core.errors import ConfigError

__all__ = ["TORCHVISION_AVAILABLE", "bilinear_matrix", "roi_align", "roi_align_grid", "roi_align_separable"]

try:  # torchvision is optional: it is used when present, never required.
    from torchvision.ops import roi_align as _tv_roi_align

    TORCHVISION_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the environment
    _tv_roi_align = None
    TORCHVISION_AVAILABLE = False


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    ph, pw = (size, size) if isinstance(size, int) else size
    if ph < 1 or pw < 1:
        raise ConfigError(f"RoIAlign output_size must be >= 1, got {size!r}")
    return int(ph), int(pw)


def _check_args(features: Tensor, boxes: Tensor, sampling_ratio: int) -> None:
    if features.dim() != 4:
        raise ValueError(f"features must be (B, C, H, W), got shape {tuple(features.shape)}")
    if boxes.dim() != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != features.shape[0]:
        raise ValueError(
            f"boxes must be (B, N, 4) with B = {features.shape[0]}, got shape {tuple(boxes.shape)}"
        )
    if sampling_ratio < 1:
        raise ConfigError(f"sampling_ratio must be >= 1 (fixed sample grid), got {sampling_ratio}")


def _sample_coords(
    lo: Tensor, hi: Tensor, bins: int, sampling_ratio: int, aligned: bool
) -> Tensor:
    """Sample positions along one axis: (B, N) corners -> (B, N, bins * sampling_ratio)."""
    size = hi - lo
    if not aligned:
        size = size.clamp(min=1.0)
    bin_size = size / bins
    steps = torch.arange(bins * sampling_ratio, device=lo.device, dtype=lo.dtype)
    bin_index = torch.div(steps, sampling_ratio, rounding_mode="floor")
    sub = steps - bin_index * sampling_ratio
    frac = bin_index + (sub + 0.5) / sampling_ratio  # position in bin units from the RoI start
    return lo.unsqueeze(-1) + frac * bin_size.unsqueeze(-1)


def _roi_samples(
    features: Tensor, boxes: Tensor, output_size: int | tuple[int, int], spatial_scale: float, sampling_ratio: int, *,
    aligned: bool,
) -> tuple[int, int, Tensor, Tensor]:
    """Checked arguments -> ``(ph, pw, xs (B, N, pw*s), ys (B, N, ph*s))``: sample positions in feature pixels."""
    _check_args(features, boxes, sampling_ratio)
    ph, pw = _pair(output_size)
    scaled = boxes.to(features.dtype) * spatial_scale - (0.5 if aligned else 0.0)
    xs = _sample_coords(scaled[..., 0], scaled[..., 2], pw, sampling_ratio, aligned)
    ys = _sample_coords(scaled[..., 1], scaled[..., 3], ph, sampling_ratio, aligned)
    return ph, pw, xs, ys


def roi_align_grid(
    features: Tensor,
    boxes: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 2,
    *,
    aligned: bool = True,
) -> Tensor:
    """The project's RoIAlign: features (B, C, H, W), boxes (B, N, 4) -> (B, N, C, ph, pw).

    Boxes are ``x1, y1, x2, y2`` in input coordinates (multiplied by ``spatial_scale`` to reach the
    feature map), one set of N per frame. All B*N RoIs are sampled by a single ``grid_sample`` call on
    a (B, N*ph*s, pw*s) grid (s = ``sampling_ratio``): coordinates are clamped into the map first, so
    bilinear ``grid_sample`` (``align_corners=False``) reproduces torchvision's border handling exactly;
    samples beyond one pixel outside the map are zeroed afterwards.
    """
    ph, pw, xs, ys = _roi_samples(features, boxes, output_size, spatial_scale, sampling_ratio, aligned=aligned)
    B, C, H, W = features.shape
    N = boxes.shape[1]
    s = sampling_ratio
    valid = ((ys >= -1.0) & (ys <= H)).unsqueeze(-1) & ((xs >= -1.0) & (xs <= W)).unsqueeze(-2)
    gx = (2.0 * xs.clamp(0.0, W - 1.0) + 1.0) / W - 1.0
    gy = (2.0 * ys.clamp(0.0, H - 1.0) + 1.0) / H - 1.0
    grid = torch.stack(
        [gx.unsqueeze(-2).expand(B, N, ph * s, pw * s), gy.unsqueeze(-1).expand(B, N, ph * s, pw * s)],
        dim=-1,
    ).reshape(B, N * ph * s, pw * s, 2)
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
    sampled = sampled.reshape(B, C, N, ph * s, pw * s) * valid.unsqueeze(1).to(features.dtype)
    pooled = sampled.reshape(B, C, N, ph, s, pw, s).mean(dim=(4, 6))  # (B, C, N, ph, pw)
    return pooled.permute(0, 2, 1, 3, 4)


def bilinear_matrix(coord: Tensor, size: int) -> Tensor:
    """1-D bilinear interpolation weights at pixel coordinates: (..., L) -> (..., L, size).

    Row l holds the weights of the ``size`` source samples at position ``coord[l]`` (pixel centres at
    0, 1, ..., size - 1): the position is clamped into [0, size - 1], then ``1 - frac`` goes to its floor and
    ``frac`` to floor + 1 (clamped into range, where its weight is 0). This is ``grid_sample``'s bilinear
    border rule and torchvision RoIAlign's rule for samples not more than one pixel outside the map.
    """
    coord = coord.clamp(0.0, size - 1.0)
    lower = coord.floor()
    frac = (coord - lower).unsqueeze(-1)
    index = torch.arange(size, device=coord.device, dtype=coord.dtype)
    at_lower = (index == lower.unsqueeze(-1)).to(coord.dtype)
    at_upper = (index == (lower + 1.0).clamp(max=size - 1.0).unsqueeze(-1)).to(coord.dtype)
    return at_lower * (1.0 - frac) + at_upper * frac


def _bin_matrix(coords: Tensor, size: int, bins: int, sampling_ratio: int) -> Tensor:
    """Bin-averaged, validity-masked bilinear weights along one axis: (B, N, bins * s) -> (B, N, bins, size)."""
    valid = ((coords >= -1.0) & (coords <= size)).to(coords.dtype).unsqueeze(-1)
    weights = bilinear_matrix(coords, size) * valid  # (B, N, bins * s, size)
    return weights.reshape(*coords.shape[:-1], bins, sampling_ratio, size).mean(dim=-2)


def roi_align_separable(
    features: Tensor,
    boxes: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 2,
    *,
    aligned: bool = True,
) -> Tensor:
    """RoIAlign as two matrix products: features (B, C, H, W), boxes (B, N, 4) -> (B, N, C, ph, pw).

    Same numbers as :func:`roi_align_grid`. The samples of an axis-aligned box form a separable grid, and
    both the bin average and the "more than one pixel outside" mask factor per axis, so

        out[b, n, c] = Ay[b, n] @ features[b, c] @ Ax[b, n]^T

    with Ay (ph, H) and Ax (pw, W) the bin-averaged bilinear weights (:func:`bilinear_matrix`). All RoIs
    share one (C*H, W) @ (W, N*pw) product, then a batched (ph, H) @ (H, pw) per RoI and channel: no
    ``grid_sample`` (slow in onnxruntime: 3 ms for the lite instance branch at 640x360).
    """
    ph, pw, xs, ys = _roi_samples(features, boxes, output_size, spatial_scale, sampling_ratio, aligned=aligned)
    B, C, H, W = features.shape
    N = boxes.shape[1]
    ax = _bin_matrix(xs, W, pw, sampling_ratio)  # (B, N, pw, W)
    ay = _bin_matrix(ys, H, ph, sampling_ratio)  # (B, N, ph, H)
    # in the features' dtype even under autocast (which would run matmul in fp16 / bf16, unlike grid_sample)
    with torch.autocast(features.device.type, enabled=False):
        cols = torch.matmul(features.reshape(B, C * H, W), ax.reshape(B, N * pw, W).transpose(1, 2))
        cols = cols.reshape(B, C, H, N, pw).permute(0, 3, 1, 2, 4)  # (B, N, C, H, pw)
        return torch.matmul(ay.unsqueeze(2), cols)  # (B, N, C, ph, pw)


def roi_align(
    features: Tensor,
    boxes: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 2,
    *,
    aligned: bool = True,
    prefer_torchvision: bool = True,
) -> Tensor:
    """RoIAlign, features (B, C, H, W), boxes (B, N, 4) -> (B, N, C, ph, pw).

    Dispatches to ``torchvision.ops.roi_align`` when importable (and ``prefer_torchvision``), else to
    :func:`roi_align_separable`; both give the same numbers (see the module docstring).
    """
    _check_args(features, boxes, sampling_ratio)
    if not (prefer_torchvision and TORCHVISION_AVAILABLE):
        return roi_align_separable(features, boxes, output_size, spatial_scale, sampling_ratio, aligned=aligned)
    ph, pw = _pair(output_size)
    B, C = features.shape[:2]
    N = boxes.shape[1]
    out = _tv_roi_align(
        features, list(boxes.to(features.dtype).unbind(0)), (ph, pw), spatial_scale, sampling_ratio, aligned
    )
    return out.reshape(B, N, C, ph, pw)
