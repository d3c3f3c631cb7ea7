"""Auxiliary critics trained on *source* images with the simulator's ground truth: a box head and a segmenter.

They are trained once (or alongside the GAN) on source images with :func:`box_head_loss` and
:func:`segmenter_loss`, then used *frozen* (:func:`frozen`: parameters do not get gradients, but the
gradient still flows to the input image) to score translated images:

* :class:`BoxHead` — DUNIT (Bhattacharjee et al., 2020) runs a full detector on the translated image and
  compares its boxes with the source boxes. We know the source boxes exactly, so instead of detecting from
  scratch the head *refines known boxes*: it RoIAligns image features in a context window around each
  proposal and regresses Faster R-CNN box deltas plus a class logit. During training the proposals are the
  ground-truth boxes jittered, so the head learns to move a box onto the object evidence inside the window.
  Used as a critic, the proposals are the exact source boxes: if the translated image keeps the object in
  place, the regressed box stays on it (loss ~ the head's own error on source images); if the object is
  moved, shrunk, smeared or erased, the regressed box follows the evidence away from the source box and the
  class logit loses confidence, so the box consistency loss grows. This is cheaper and more stable than a
  detector (no NMS, no matching) and its output is a differentiable function of the image.
* :class:`Segmenter` — a small fully convolutional net (19 classes) whose prediction on the translated
  image must match the source semantic map (the anti-flip term; :func:`semantic_consistency_loss`).

No torchvision: RoIAlign comes from :mod:`sim2real.translator.roi_align`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim2real.core.errors import ConfigError
from sim2real.core.labels import IGNORE_ID, NUM_CLASSES
from sim2real.translator.boxes import ID_SPACE
from sim2real.translator.losses import box_consistency_loss, semantic_consistency_loss
from sim2real.translator.roi_align import roi_align

__all__ = [
    "AuxConfig",
    "AuxNets",
    "BoxHead",
    "Segmenter",
    "box_class_loss",
    "box_head_loss",
    "decode_box_deltas",
    "expand_boxes",
    "frozen",
    "instance_classes",
    "jitter_boxes",
    "photometric_jitter",
    "segmenter_loss",
]

#: Faster R-CNN's clamp on log-size deltas (log(1000 / 16)).
MAX_LOG_DELTA = math.log(1000.0 / 16.0)


@dataclass(frozen=True)
class AuxConfig:
    """Configuration of the auxiliary critics.

    Attributes:
        in_channels: image channels.
        num_classes: semantic classes (train ids 0..num_classes-1).
        box_channels: width of the box head's backbone.
        roi_size: RoIAlign output size (roi_size x roi_size).
        box_context: each proposal is enlarged by this factor (about its centre) before pooling, so the
            head sees the object even when the proposal is off.
        box_hidden: hidden units of the box head's MLP.
        box_jitter: training proposals: centre shifted by up to box_jitter * size, sides scaled by up to
            exp(+-box_jitter).
        max_instances: boxes per image (slots of ``boxes.instance_boxes``).
        seg_channels: width of the segmenter.
    """

    in_channels: int = 3
    num_classes: int = NUM_CLASSES
    box_channels: int = 32
    roi_size: int = 7
    box_context: float = 1.5
    box_hidden: int = 128
    box_jitter: float = 0.15
    max_instances: int = 32
    seg_channels: int = 32

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_classes", "box_channels", "roi_size", "box_hidden", "max_instances",
                     "seg_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"AuxConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.box_context < 1.0:
            raise ConfigError(f"AuxConfig.box_context must be >= 1, got {self.box_context}")
        if not 0.0 <= self.box_jitter < 1.0:
            raise ConfigError(f"AuxConfig.box_jitter must be in [0, 1), got {self.box_jitter}")


# --------------------------------------------------------------------------------------------------
# Pure box helpers
# --------------------------------------------------------------------------------------------------
def _cxcywh(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x1, y1, x2, y2 = boxes.unbind(-1)
    return (x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1


def _xyxy(cx: Tensor, cy: Tensor, w: Tensor, h: Tensor) -> Tensor:
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def expand_boxes(boxes: Tensor, factor: float) -> Tensor:
    """Scale xyxy boxes (..., 4) about their centres by ``factor`` -> (..., 4)."""
    cx, cy, w, h = _cxcywh(boxes)
    return _xyxy(cx, cy, w * factor, h * factor)


def decode_box_deltas(proposals: Tensor, deltas: Tensor, min_size: float = 1.0) -> Tensor:
    """Apply Faster R-CNN deltas (Ren et al., 2015, Eq. 2) to xyxy proposals: (..., 4), (..., 4) -> (..., 4).

    x = x_a + dx * w_a, y = y_a + dy * h_a, w = w_a * exp(dw), h = h_a * exp(dh); proposal sizes are
    clamped below by ``min_size`` pixels and dw, dh by log(1000/16), so the output is always finite.
    """
    cx, cy, w, h = _cxcywh(proposals)
    w = w.clamp(min=min_size)
    h = h.clamp(min=min_size)
    dx, dy, dw, dh = deltas.unbind(-1)
    dw = dw.clamp(max=MAX_LOG_DELTA)
    dh = dh.clamp(max=MAX_LOG_DELTA)
    return _xyxy(cx + dx * w, cy + dy * h, w * dw.exp(), h * dh.exp())


def jitter_boxes(boxes: Tensor, amount: float, image_size: tuple[int, int],
                 generator: torch.Generator | None = None) -> Tensor:
    """Random proposals around xyxy boxes (..., 4): centre shift up to amount * size, size x exp(+-amount).

    The result is clipped to the image (H, W). Used to train :class:`BoxHead`; no gradient is needed.
    """
    cx, cy, w, h = _cxcywh(boxes)
    noise = torch.rand(*boxes.shape, generator=generator, device=boxes.device, dtype=boxes.dtype) * 2 - 1
    nx, ny, nw, nh = (noise * amount).unbind(-1)
    out = _xyxy(cx + nx * w, cy + ny * h, w * nw.exp(), h * nh.exp())
    height, width = image_size
    limit = boxes.new_tensor([width, height, width, height])
    return torch.minimum(out.clamp(min=0), limit)


def photometric_jitter(rgb: Tensor, strength: float, generator: torch.Generator | None = None) -> Tensor:
    """Per-sample random contrast, per-channel gain and brightness on [-1, 1] images: (B, 3, H, W) -> same.

    x' = clamp(((x - mean) * (1 + a) + mean) * (1 + g_c) + b, -1, 1) with a, g_c, b ~ U(-strength, strength)
    drawn per sample (g per channel). ``strength`` 0 returns the input unchanged.
    """
    if strength <= 0:
        return rgb
    B, C = rgb.shape[:2]

    def uniform(*shape: int) -> Tensor:
        r = torch.rand(*shape, generator=generator, device=rgb.device, dtype=rgb.dtype)
        return (r * 2 - 1) * strength

    mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
    out = (rgb - mean) * (1 + uniform(B, 1, 1, 1)) + mean
    return (out * (1 + uniform(B, C, 1, 1)) + uniform(B, 1, 1, 1)).clamp(-1.0, 1.0)


def instance_classes(semantic: Tensor, instance: Tensor, ids: Tensor, valid: Tensor,
                     num_classes: int = NUM_CLASSES) -> Tensor:
    """Majority semantic class of each instance: (B, H, W), (B, H, W), (B, N), (B, N) -> (B, N) int64.

    One ``scatter_add`` of (instance id, class) pairs into a (B, 65536 * (K + 1)) count table (no
    (B, N, H, W) intermediate), then a gather at ``ids``. Ignore-labelled pixels do not vote; an invalid
    slot, or an instance with only ignored pixels, gets ``IGNORE_ID``. Ids must be uint16 values.
    """
    B = semantic.shape[0]
    K = num_classes
    known = (semantic >= 0) & (semantic < K)
    sem = torch.where(known, semantic, torch.full_like(semantic, K)).long()
    key = (instance.long() * (K + 1) + sem).reshape(B, -1)
    counts = torch.zeros(B, ID_SPACE * (K + 1), device=semantic.device)
    counts.scatter_add_(1, key, torch.ones_like(key, dtype=counts.dtype))
    table = counts.view(B, ID_SPACE, K + 1)
    index = ids.long().clamp(0, ID_SPACE - 1).unsqueeze(-1).expand(B, ids.shape[1], K + 1)
    per_class = table.gather(1, index)[..., :K]  # (B, N, K)
    cls = per_class.argmax(dim=-1)
    ok = valid.bool() & (per_class.sum(dim=-1) > 0)
    return torch.where(ok, cls, torch.full_like(cls, IGNORE_ID))


# --------------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------------
def _conv_block(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.GroupNorm(min(8, out_ch), out_ch),
        nn.LeakyReLU(0.2),
    )


class BoxHead(nn.Module):
    """Refines known boxes from image features: image + proposals -> refined boxes + class logits.

    Backbone: three 3x3 conv blocks, total stride 4. Each proposal, enlarged by ``box_context``, is
    RoIAligned to roi_size x roi_size, flattened and fed to a 2-layer MLP predicting Faster R-CNN deltas
    relative to the (unenlarged) proposal and ``num_classes`` logits. No BatchNorm, so train/eval and
    frozen use all behave the same.
    """

    STRIDE = 4

    def __init__(self, cfg: AuxConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.box_channels
        self.backbone = nn.Sequential(
            _conv_block(cfg.in_channels, c),
            _conv_block(c, 2 * c, stride=2),
            _conv_block(2 * c, 2 * c, stride=2),
        )
        self.mlp = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * c * cfg.roi_size**2, cfg.box_hidden), nn.LeakyReLU(0.2),
            nn.Linear(cfg.box_hidden, cfg.box_hidden), nn.LeakyReLU(0.2),
        )
        self.delta = nn.Linear(cfg.box_hidden, 4)
        self.cls = nn.Linear(cfg.box_hidden, cfg.num_classes)
        # start as the identity refinement: deltas 0.
        nn.init.zeros_(self.delta.weight)
        nn.init.zeros_(self.delta.bias)

    def forward(self, image: Tensor, proposals: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, H, W) image, (B, N, 4) xyxy pixel proposals -> ((B, N, 4) boxes, (B, N, K) logits)."""
        b, n = proposals.shape[:2]
        feats = self.backbone(image)
        windows = expand_boxes(proposals.to(feats.dtype), self.cfg.box_context)
        pooled = _roi_pool(feats, windows, self.cfg.roi_size, 1.0 / self.STRIDE)  # (B*N, C, r, r)
        hidden = self.mlp(pooled)
        deltas = self.delta(hidden).view(b, n, 4)
        logits = self.cls(hidden).view(b, n, self.cfg.num_classes)
        return decode_box_deltas(proposals.to(feats.dtype), deltas), logits


def _roi_pool(features: Tensor, boxes: Tensor, size: int, spatial_scale: float) -> Tensor:
    """RoIAlign (B, C, h, w) features at (B, N, 4) image-pixel boxes -> (B * N, C, size, size)."""
    b, n = boxes.shape[:2]
    pooled = roi_align(features, boxes, (size, size), spatial_scale=spatial_scale)
    return pooled.reshape(b * n, features.shape[1], size, size)


class Segmenter(nn.Module):
    """Small FCN: (B, C, H, W) image -> (B, num_classes, H, W) logits.

    Stride-4 encoder with two dilated blocks, upsampled bilinearly and added to a full-resolution 1x1 skip
    branch, so thin structures (poles, traffic lights and signs) survive the downsampling.
    """

    def __init__(self, cfg: AuxConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.seg_channels
        self.stem = _conv_block(cfg.in_channels, c)
        self.down = nn.Sequential(_conv_block(c, 2 * c, stride=2), _conv_block(2 * c, 4 * c, stride=2))
        self.context = nn.Sequential(
            _conv_block(4 * c, 4 * c, dilation=2), _conv_block(4 * c, 4 * c, dilation=4)
        )
        self.head_low = nn.Conv2d(4 * c, cfg.num_classes, 1)
        self.head_high = nn.Conv2d(c, cfg.num_classes, 1)

    def forward(self, image: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, num_classes, H, W) logits."""
        high = self.stem(image)
        low = self.down(high)
        low = low + self.context(low)
        up = F.interpolate(self.head_low(low), size=image.shape[-2:], mode="bilinear", align_corners=False)
        return up + self.head_high(high)


class AuxNets(nn.Module):
    """The two critics together, built from one :class:`AuxConfig`."""

    def __init__(self, cfg: AuxConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.box_head = BoxHead(cfg)
        self.segmenter = Segmenter(cfg)


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Use modules as fixed critics: parameters get no gradient, eval mode; gradients still reach inputs.

    Restores every parameter's ``requires_grad`` and every module's training flag on exit.
    """
    params = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    modes = [(m, m.training) for m in modules]
    try:
        for p, _ in params:
            p.requires_grad_(False)
        for m, _ in modes:
            m.eval()
        yield
    finally:
        for p, flag in params:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.train(mode)


# --------------------------------------------------------------------------------------------------
# Training losses (source images, ground truth)
# --------------------------------------------------------------------------------------------------
def box_head_loss(
    head: BoxHead,
    rgb: Tensor,
    boxes: Tensor,
    valid: Tensor,
    classes: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Train the box head on source ground truth: jittered gt proposals -> gt boxes and classes.

    L = L1 + (1 - GIoU) on the refined boxes (:func:`box_consistency_loss`) + CE(class logits, gt class)
    over valid boxes with a known class. Shapes: rgb (B, 3, H, W), boxes (B, N, 4) xyxy px, valid (B, N),
    classes (B, N) int64 (IGNORE_ID = unknown). Returns {"box_l1", "box_giou", "box_cls", "total"}.
    """
    size = (rgb.shape[-2], rgb.shape[-1])
    proposals = jitter_boxes(boxes.to(rgb.dtype), head.cfg.box_jitter, size, generator)
    pred, logits = head(rgb, proposals)
    box = box_consistency_loss(pred, boxes.to(rgb.dtype), valid, size)
    cls = box_class_loss(logits, torch.where(valid.bool(), classes, torch.full_like(classes, IGNORE_ID)))
    return {"box_l1": box["l1"], "box_giou": box["giou"], "box_cls": cls, "total": box["total"] + cls}


def box_class_loss(logits: Tensor, classes: Tensor) -> Tensor:
    """Per-box class cross-entropy: (B, N, K) logits, (B, N) labels (IGNORE_ID skipped) -> scalar.

    0 (attached to the graph) when no box has a known class.
    """
    if bool((classes != IGNORE_ID).any()):
        return F.cross_entropy(logits.flatten(0, 1), classes.flatten(), ignore_index=IGNORE_ID)
    return logits.sum() * 0.0


def segmenter_loss(segmenter: Segmenter, rgb: Tensor, semantic: Tensor,
                   class_weights: Tensor | None = None) -> Tensor:
    """Train the segmenter on source ground truth: CE(S(x_s), y_s), ignore 255, optional class weights."""
    return semantic_consistency_loss(segmenter(rgb), semantic, class_weights)
