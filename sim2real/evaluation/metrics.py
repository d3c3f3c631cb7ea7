"""Evaluation metrics for translated frames: label preservation, realism, temporal stability, structure.

Pure torch / numpy functions (no model, no I/O); :mod:`sim2real.evaluation.evaluate` runs the models and feeds them.
Images are float tensors ``(B, 3, H, W)`` in [-1, 1] (the network space of :mod:`sim2real.translator`);
semantic maps ``(B, H, W)`` int64 train ids (255 = ignore); instance maps ``(B, H, W)`` int64 (0 = none).

Per-class quantities are accumulated over frames as :class:`ClassTally` (a sum and a count per class), so
a whole sequence is summarised without keeping every frame:

================  ===========================================================================  ==========
metric            definition                                                                   better
================  ===========================================================================  ==========
box recall@0.5    share of ground-truth boxes whose predicted box has IoU >= 0.5               higher
box mean IoU      mean IoU of predicted vs ground-truth boxes                                  higher
flip rate         share of labelled pixels whose predicted class differs from the ground truth lower
KID               unbiased MMD^2, polynomial kernel (x.y / d + 1)^3 (Binkowski et al., 2018),  lower
                  on :func:`handcrafted_features` (NOT Inception: not comparable with papers)
static flicker    mean |out_t - out_{t-1}| (8-bit levels) over pixels whose input (rgb, labels)  lower
                  did not change between the frames; 0 for a static input and a deterministic
                  per-pixel translator
change ratio      mean |delta out| / mean |delta in| over all pixels (1 = identity)             ~1
SSIM              Wang et al. (2004), Gaussian 11x11 window, sigma 1.5, on luminance            higher
edge agreement    gradient-magnitude similarity (GMS, Xue et al., 2014) of Sobel magnitudes     higher
================  ===========================================================================  ==========
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sim2real.core.colour import LUMA_WEIGHTS
from sim2real.core.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID

__all__ = [
    "FEATURE_EXTRACTOR",
    "REPORTED_SMALL_CLASSES",
    "BoxTallies",
    "ClassTally",
    "FlickerTally",
    "box_iou",
    "box_tally",
    "colour_features",
    "edge_agreement_map",
    "flip_tally",
    "frechet_distance",
    "frechet_distance_features",
    "handcrafted_features",
    "kid",
    "luminance",
    "masked_class_tally",
    "mmd2_unbiased",
    "pairwise_box_iou",
    "polynomial_kernel",
    "sobel_magnitude",
    "ssim_map",
    "static_mask",
    "temporal_flicker",
]

#: classes reported separately (thin / small, safety-critical, most prone to flips).
REPORTED_SMALL_CLASSES: Final[tuple[int, ...]] = tuple(
    TRAIN_ID[n] for n in ("traffic light", "traffic sign", "pole", "person")
)
#: name and version of the realism feature embedding; numbers are only comparable within one version.
FEATURE_EXTRACTOR: Final = "sim2real-handcrafted-v1"


# --------------------------------------------------------------------------------------------------
# Accumulation
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassTally:
    """Per-class sums and counts, added up over frames: ``total`` (K,), ``count`` (K,) float64.

    ``per_class()`` = total / count (NaN where count is 0); ``overall()`` = sum(total) / sum(count)
    (pixel- or box-weighted over all classes; NaN when nothing was counted).
    """

    total: np.ndarray
    count: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int = NUM_CLASSES) -> ClassTally:
        """An empty tally of ``num_classes`` classes."""
        return cls(np.zeros(num_classes), np.zeros(num_classes))

    def __add__(self, other: ClassTally) -> ClassTally:
        return ClassTally(self.total + other.total, self.count + other.count)

    def per_class(self) -> np.ndarray:
        """(K,) float64 means, NaN for classes with no count."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.total / np.maximum(self.count, 1e-300), np.nan)

    def overall(self) -> float:
        """Count-weighted mean over all classes (NaN when empty)."""
        n = float(self.count.sum())
        return float(self.total.sum()) / n if n > 0 else math.nan


def _class_sums(values: Tensor, classes: Tensor, keep: Tensor, num_classes: int) -> ClassTally:
    """Sum ``values`` and count elements per class where ``keep``: same-shape tensors -> ClassTally (K,)."""
    cls = classes[keep].long().flatten()
    vals = values[keep].double().flatten()
    total = torch.zeros(num_classes, dtype=torch.float64, device=values.device).index_add_(0, cls, vals)
    count = torch.bincount(cls, minlength=num_classes)[:num_classes].double()
    return ClassTally(total.cpu().numpy(), count.cpu().numpy())


# --------------------------------------------------------------------------------------------------
# Box preservation
# --------------------------------------------------------------------------------------------------
def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise IoU of xyxy boxes: (..., 4), (..., 4) -> (...); 0 where the union is empty."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def pairwise_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """All pairs: (B, N, 4), (B, M, 4) -> (B, N, M) IoU."""
    return box_iou(a[:, :, None, :], b[:, None, :, :])


class BoxTallies(NamedTuple):
    """Per-class box statistics: ``recall`` (hits at the IoU threshold / boxes) and ``iou`` (IoU sum / boxes)."""

    recall: ClassTally
    iou: ClassTally

    def __add__(self, other: BoxTallies) -> BoxTallies:  # type: ignore[override]
        return BoxTallies(self.recall + other.recall, self.iou + other.iou)


def box_tally(iou: Tensor, valid: Tensor, classes: Tensor, num_classes: int = NUM_CLASSES,
              iou_threshold: float = 0.5) -> BoxTallies:
    """Recall@``iou_threshold`` and mean-IoU tallies from each ground-truth box's IoU with its prediction.

    Args:
        iou: (B, N) IoU of ground-truth box n with its predicted box (:func:`box_iou` for predictions
            aligned with the ground-truth slots, as :class:`~sim2real.translator.aux_nets.BoxHead` gives;
            ``pairwise_box_iou(gt, pred).amax(-1)`` for a free detector).
        valid: (B, N) bool, ground-truth slot in use.
        classes: (B, N) int64 class of each box (IGNORE_ID = unknown, not counted).
    """
    keep = valid.bool() & (classes >= 0) & (classes < num_classes)
    hits = (iou >= iou_threshold).double()
    return BoxTallies(_class_sums(hits, classes, keep, num_classes), _class_sums(iou, classes, keep, num_classes))


# --------------------------------------------------------------------------------------------------
# Semantic flips
# --------------------------------------------------------------------------------------------------
def flip_tally(pred: Tensor, target: Tensor, num_classes: int = NUM_CLASSES) -> ClassTally:
    """Flipped labelled pixels per ground-truth class: (B, H, W) predicted ids, (B, H, W) ground truth.

    ``per_class()`` is the flip rate of each class (share of its pixels predicted as another class),
    ``overall()`` the share of all labelled pixels (IGNORE_ID excluded) that flipped.
    """
    keep = (target >= 0) & (target < num_classes)
    return _class_sums((pred != target).double(), target, keep, num_classes)


# --------------------------------------------------------------------------------------------------
# Realism: KID on an offline feature embedding
# --------------------------------------------------------------------------------------------------
def polynomial_kernel(x: Tensor, y: Tensor, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> Tensor:
    """k(x, y) = (gamma x.y + coef0)^degree, gamma = 1 / D by default: (N, D), (M, D) -> (N, M)."""
    g = 1.0 / x.shape[1] if gamma is None else gamma
    return (g * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x: Tensor, y: Tensor, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
                  ) -> Tensor:
    """Unbiased MMD^2 (Gretton et al., 2012, Eq. 3) with :func:`polynomial_kernel`: (m, D), (n, D) -> ().

    MMD^2_u = sum_{i!=j} k(x_i, x_j) / (m (m-1)) + sum_{i!=j} k(y_i, y_j) / (n (n-1))
              - 2 sum_{i,j} k(x_i, y_j) / (m n).   Needs m, n >= 2; can be slightly negative.
    """
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    x, y = x.double(), y.double()
    kxx = polynomial_kernel(x, x, degree, gamma, coef0)
    kyy = polynomial_kernel(y, y, degree, gamma, coef0)
    kxy = polynomial_kernel(x, y, degree, gamma, coef0)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return sxx + syy - 2.0 * kxy.mean()


def kid(x: Tensor, y: Tensor, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
        ) -> tuple[float, float]:
    """Kernel Inception Distance on given features (Binkowski et al., 2018): (m, D), (n, D) -> (mean, std).

    Mean and standard deviation of :func:`mmd2_unbiased` (cubic polynomial kernel) over ``num_subsets``
    random subsets of ``min(subset_size, m, n)`` samples per set (drawn without replacement, seeded).
    When both sets are no larger than the subset size, the whole sets are used once (std 0).
    """
    size = min(subset_size, x.shape[0], y.shape[0])
    if size >= x.shape[0] and size >= y.shape[0]:
        return float(mmd2_unbiased(x, y)), 0.0
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(num_subsets):
        ix = torch.randperm(x.shape[0], generator=gen)[:size]
        iy = torch.randperm(y.shape[0], generator=gen)[:size]
        values.append(float(mmd2_unbiased(x[ix.to(x.device)], y[iy.to(y.device)])))
    arr = np.asarray(values)
    return float(arr.mean()), float(arr.std())


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (eigh; tiny negative eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance of two Gaussians: (D,), (D, D), (D,), (D, D) -> float.

    d^2 = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)), with Tr((S1 S2)^(1/2)) = sum of the square roots
    of the eigenvalues of the symmetric PSD matrix S1^(1/2) S2 S1^(1/2) (same spectrum as S1 S2). numpy only,
    float64; no scipy ``sqrtm`` (whose complex / eps fallbacks pytorch-fid needs for singular covariances).
    Returns the squared distance, as every FID implementation does.
    """
    mu1, mu2 = np.asarray(mu1, np.float64).reshape(-1), np.asarray(mu2, np.float64).reshape(-1)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, "
                         f"sigma2 {s2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, mu2, s1, s2)):
        raise ValueError("non-finite mean or covariance")
    s1, s2 = (s1 + s1.T) / 2.0, (s2 + s2.T) / 2.0
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    eig = np.linalg.eigvalsh((m + m.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def _gaussian_stats(x: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, D), got {a.shape}")
    return a.mean(axis=0), np.cov(a, rowvar=False)


def frechet_distance_features(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
    """FID of two feature sets: (N, D), (M, D) -> float; mean and unbiased covariance (``np.cov``, ddof 1), as
    pytorch-fid / torch-fidelity / clean-fid compute them. Quote it with N (FID is biased in the sample count).
    """
    (mu1, s1), (mu2, s2) = _gaussian_stats(x), _gaussian_stats(y)
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature widths differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    value = frechet_distance(mu1, s1, mu2, s2)
    return max(value, 0.0) if math.isfinite(value) else value


_FEATURE_SIZE: Final = (128, 256)
_HIST_BINS: Final = 16


def luminance(rgb: Tensor) -> Tensor:
    """Rec. 601 luma of [-1, 1] RGB, mapped to [0, 1]: (B, 3, H, W) -> (B, H, W)."""
    w = rgb.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    return ((rgb * w).sum(1) + 1.0) * 0.5


def _sobel(gray: Tensor) -> tuple[Tensor, Tensor]:
    """Sobel x / y derivatives (normalised by 1/4), replicate border: (B, H, W) -> 2 x (B, H, W)."""
    kx = gray.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4.0
    k = torch.stack((kx, kx.T))[:, None]  # (2, 1, 3, 3)
    g = F.conv2d(F.pad(gray[:, None], (1, 1, 1, 1), mode="replicate"), k)
    return g[:, 0], g[:, 1]


def sobel_magnitude(gray: Tensor) -> Tensor:
    """Sobel gradient magnitude (kernels / 4): (B, H, W) in [0, 1] -> (B, H, W) in [0, sqrt(2)]."""
    gx, gy = _sobel(gray)
    return torch.sqrt(gx * gx + gy * gy)


def _histogram(values: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """Normalised per-sample histogram: (B, P) -> (B, bins), rows sum to 1."""
    idx = ((values - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)
    counts = torch.zeros(values.shape[0], bins, device=values.device, dtype=values.dtype)
    counts.scatter_add_(1, idx, torch.ones_like(values))
    return counts / values.shape[1]


def _colour_block(x: Tensor) -> Tensor:
    """Colour part of the hand-crafted embedding: (B, 3, h, w) in [-1, 1] -> (B, 62)."""
    flat = x.flatten(2)  # (B, 3, P)
    u = (x + 1.0) * 0.5
    sat = (u.amax(1) - u.amin(1)).flatten(1)
    return torch.cat([
        torch.cat([_histogram(flat[:, c], _HIST_BINS, -1.0, 1.0) for c in range(3)], 1) * _HIST_BINS,
        flat.mean(-1) * 4.0, flat.std(-1) * 4.0, _histogram(sat, 8, 0.0, 1.0) * 8.0,
    ], 1)


@torch.no_grad()
def colour_features(rgb: Tensor) -> Tensor:
    """Colour-only embedding (no structure): (B, 3, H, W) in [-1, 1] -> (B, 62) float32.

    The colour block of :func:`handcrafted_features` (per-channel 16-bin histograms, channel means and stds,
    8-bin saturation histogram, on the frame area-resized to 128x256). A distance on it shows how much of a
    realism gap is colour alone; reported as its own column beside the learned-feature distances.
    """
    return _colour_block(F.interpolate(rgb.float(), size=_FEATURE_SIZE, mode="area")).float()


@torch.no_grad()
def handcrafted_features(rgb: Tensor) -> Tensor:
    """A fixed, offline image embedding for KID: (B, 3, H, W) in [-1, 1] -> (B, 126) float32.

    No learned weights (no hub download): images are area-resized to 128x256, then
      * colour (62): per-channel histograms (16 bins each), channel means and stds, saturation histogram
        (8 bins);
      * texture (23): mean oriented Sobel energy in 4 directions (0, 90, 45, 135 degrees) and mean absolute
        Laplacian of the luminance at 3 scales (1, 1/2, 1/4), log10 gradient-magnitude histogram (8 bins);
      * layout (41): mean luminance on a 4x8 grid, mean colour of 3 horizontal bands.
    Blocks are scaled by fixed constants so every block is O(1); nothing is estimated from the data, so
    the embedding (and KID on it) is comparable across runs of this project (``FEATURE_EXTRACTOR``) but
    **not** with published FID / KID numbers, which use Inception-v3 features.
    """
    x = F.interpolate(rgb.float(), size=_FEATURE_SIZE, mode="area")
    feats = [_colour_block(x)]
    gray = luminance(x)
    lap_k = gray.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    g = gray
    for scale in range(3):
        if scale:
            g = F.avg_pool2d(g[:, None], 2)[:, 0]
        gx, gy = _sobel(g)
        energies = torch.stack((gx.abs(), gy.abs(), (gx + gy).abs() / math.sqrt(2), (gx - gy).abs() / math.sqrt(2)))
        feats.append(energies.mean((2, 3)).T * 8.0)  # (B, 4)
        lap = F.conv2d(F.pad(g[:, None], (1, 1, 1, 1), mode="replicate"), lap_k)
        feats.append(lap.abs().mean((1, 2, 3))[:, None] * 8.0)
        if scale == 0:
            mag = torch.sqrt(gx * gx + gy * gy).flatten(1)
            feats.append(_histogram(torch.log10(mag + 1e-4), 8, -4.0, 0.2) * 8.0)
    feats.append(F.adaptive_avg_pool2d(gray[:, None], (4, 8)).flatten(1) * 2.0)
    feats.append(F.adaptive_avg_pool2d(x, (3, 1)).flatten(1) * 2.0)
    return torch.cat(feats, 1).float()


# --------------------------------------------------------------------------------------------------
# Temporal flicker
# --------------------------------------------------------------------------------------------------
def static_mask(rgb_prev: Tensor, rgb: Tensor, *, semantic_prev: Tensor | None = None,
                semantic: Tensor | None = None, instance_prev: Tensor | None = None,
                instance: Tensor | None = None, tolerance: float = 0.0
                ) -> Tensor:
    """Pixels whose input did not change between two frames: (B, 3, H, W) x2 [+ labels (B, H, W)] -> (B, H, W).

    A pixel is static when every channel moved by at most ``tolerance`` (in 8-bit levels) and, where
    given, its semantic and instance labels are equal.
    """
    delta = (rgb - rgb_prev).abs().amax(1) * 127.5
    mask = delta <= tolerance + 1e-3
    if semantic is not None and semantic_prev is not None:
        mask &= semantic == semantic_prev
    if instance is not None and instance_prev is not None:
        mask &= instance == instance_prev
    return mask


@dataclass(frozen=True)
class FlickerTally:
    """Sums for the temporal metrics over frame pairs (all in 8-bit levels, averaged over channels).

    ``static_delta`` / ``static_pixels``: |out change| summed over static pixels and their count;
    ``delta_out`` / ``delta_in``: |out change| and |input change| summed over all ``pixels``.
    """

    static_delta: float = 0.0
    static_pixels: float = 0.0
    delta_out: float = 0.0
    delta_in: float = 0.0
    pixels: float = 0.0

    def __add__(self, other: FlickerTally) -> FlickerTally:
        return FlickerTally(self.static_delta + other.static_delta, self.static_pixels + other.static_pixels,
                            self.delta_out + other.delta_out, self.delta_in + other.delta_in,
                            self.pixels + other.pixels)

    @property
    def static_flicker(self) -> float:
        """Mean |out_t - out_{t-1}| over static-input pixels, 8-bit levels (NaN without static pixels)."""
        return self.static_delta / self.static_pixels if self.static_pixels > 0 else math.nan

    @property
    def change_ratio(self) -> float:
        """mean |delta out| / mean |delta in| over all pixels; 0 when neither changed, inf if only out did."""
        if self.delta_in > 0:
            return self.delta_out / self.delta_in
        return 0.0 if self.delta_out == 0 else math.inf


def temporal_flicker(out_prev: Tensor, out: Tensor, in_prev: Tensor, inp: Tensor, static: Tensor) -> FlickerTally:
    """Flicker sums for one pair of consecutive frames.

    Args:
        out_prev, out: (B, 3, H, W) translated frames t-1 and t, in [-1, 1].
        in_prev, inp: (B, 3, H, W) input frames t-1 and t, in [-1, 1].
        static: (B, H, W) bool from :func:`static_mask` (input unchanged there).
    Returns:
        A :class:`FlickerTally`; identical outputs give ``static_flicker == 0``.
    """
    d_out = (out - out_prev).abs().mean(1) * 127.5  # (B, H, W)
    d_in = (inp - in_prev).abs().mean(1) * 127.5
    return FlickerTally(
        static_delta=float(d_out[static].double().sum()), static_pixels=float(static.sum()),
        delta_out=float(d_out.double().sum()), delta_in=float(d_in.double().sum()), pixels=float(d_out.numel()),
    )


# --------------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------------
def _gaussian_window(size: int, sigma: float, like: Tensor) -> Tensor:
    r = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-pixel SSIM (Wang et al., 2004) of the luminance of two images: (B, 3, H, W) x2 in [-1, 1] -> (B, H, W).

    Gaussian window (``window`` x ``window``, ``sigma``), data range 1 (luminance in [0, 1]),
    C1 = 0.01^2, C2 = 0.03^2, reflect padding so the map has the input size. Identical images give 1.
    """
    a, b = luminance(x.float())[:, None], luminance(y.float())[:, None]
    w = _gaussian_window(window, sigma, a)
    p = window // 2

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.pad(t, (p, p, p, p), mode="reflect"), w)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return s[:, 0]


def edge_agreement_map(x: Tensor, y: Tensor, c: float = 0.0026) -> Tensor:
    """Gradient-magnitude similarity (GMS, Xue et al., 2014): (B, 3, H, W) x2 in [-1, 1] -> (B, H, W) in [0, 1].

    GMS = (2 m_x m_y + c) / (m_x^2 + m_y^2 + c) with m the :func:`sobel_magnitude` of the luminance in
    [0, 1]. 1 where the edge strengths agree (identical images: 1 everywhere), -> 0 where an edge exists
    in only one image.
    """
    mx, my = sobel_magnitude(luminance(x.float())), sobel_magnitude(luminance(y.float()))
    return (2 * mx * my + c) / (mx * mx + my * my + c)


def masked_class_tally(values: Tensor, mask: Tensor, semantic: Tensor, num_classes: int = NUM_CLASSES
                       ) -> ClassTally:
    """Per-class sum and count of a per-pixel map inside ``mask``: (B, H, W) float, bool, int64 -> ClassTally.

    Used with ``mask = instance > 0`` to score SSIM / edge agreement inside instance masks per class.
    """
    keep = mask.bool() & (semantic >= 0) & (semantic < num_classes) & (semantic != IGNORE_ID)
    return _class_sums(values, semantic, keep, num_classes)
