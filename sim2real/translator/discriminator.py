"""Discriminators: multi-scale (projection) PatchGAN on images, and a content-domain classifier.

``MultiScaleDiscriminator`` follows pix2pixHD (Wang et al., 2018, "High-Resolution Image Synthesis and
Semantic Manipulation with Conditional GANs", Sec. 3.2): ``num_scales`` identical PatchGANs, each seeing
the image average-pooled by a further factor 2. Each PatchGAN (Isola et al., 2017) is ``n_layers`` 4x4
stride-2 convolutions followed by two 4x4 stride-1 convolutions, so with ``n_layers=3`` every output
logit sees a 70x70 window of its input (the "70x70 PatchGAN").

Optionally the discriminator is *label-conditioned by projection* (Miyato & Koyama, 2018, "cGANs with
Projection Discriminator", Sec. 3: f(x, y) = y^T V phi(x) + psi(phi(x))), applied per patch:

    D(x, y)[p] = psi(phi(x)[p]) + <embed(y[p]), phi(x)[p]>

where ``phi(x)[p]`` is the feature vector of patch ``p``, ``psi`` a learned linear map (1x1 conv) and
``y[p]`` the semantic label nearest-downsampled onto the patch grid. The ignore label (255) maps to an
all-zero, never-trained embedding row, so ignored patches contribute nothing beyond ``psi``.

``ContentDiscriminator`` classifies which domain a content code came from; the generator is trained to
confuse it (DRIT, Lee et al., 2018, Eq. 2 "content adversarial loss").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import IGNORE_ID, NUM_CLASSES
from sim2real.translator.camera import frame_coordinates

__all__ = [
    "NORM_LAYERS",
    "ContentDiscriminator",
    "DiscriminatorConfig",
    "MultiScaleDiscriminator",
    "PatchDiscriminator",
    "coordinate_planes",
    "downsample_labels",
    "patchgan_receptive_field",
]

KERNEL_SIZE = 4
#: pix2pixHD's padding for the 4x4 convolutions: ceil((k - 1) / 2).
PADDING = 2


def _no_norm(channels: int) -> nn.Module:
    return nn.Identity()


def _instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


def _group_norm(channels: int) -> nn.Module:
    return nn.GroupNorm(min(32, channels), channels)


#: normalisation layer registry: name -> factory(channels).
NORM_LAYERS: dict[str, Callable[[int], nn.Module]] = {
    "none": _no_norm,
    "instance": _instance_norm,
    "group": _group_norm,
}


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Configuration of one :class:`MultiScaleDiscriminator`.

    Attributes:
        in_channels: image channels (3 for RGB).
        base_channels: channels of the first conv (doubled per stride-2 layer, capped at max_channels).
        max_channels: cap on channels.
        n_layers: number of stride-2 4x4 convs; 3 gives the 70x70 receptive field.
        num_scales: number of PatchGANs; scale k sees the image average-pooled k times by 2.
        spectral_norm: wrap every conv in spectral normalisation (Miyato et al., 2018).
        norm: normalisation after the inner convs, one of :data:`NORM_LAYERS`.
        num_classes: 0 = unconditional; > 0 = projection-conditioned on semantic labels 0..num_classes-1
            (255 = ignore).
        feature_channels: channels of the per-patch feature phi(x) that psi and the projection read.
        coordinates: also feed each pixel's position in its full frame (x, y in half frame heights from the
            centre, from the window's ``frame_box``; :func:`coordinate_planes`) as 2 extra input channels
            (CoordConv, Liu et al. 2018), so position-dependent
            camera effects (vignetting, chromatic aberration) are visible on random crops.
    """

    in_channels: int = 3
    base_channels: int = 64
    max_channels: int = 512
    n_layers: int = 3
    num_scales: int = 2
    spectral_norm: bool = True
    norm: str = "none"
    num_classes: int = NUM_CLASSES
    feature_channels: int = 64
    coordinates: bool = False

    def __post_init__(self) -> None:
        if self.norm not in NORM_LAYERS:
            raise ConfigError(f"unknown discriminator norm {self.norm!r}; valid: {sorted(NORM_LAYERS)}")
        for name in ("in_channels", "base_channels", "max_channels", "n_layers", "num_scales",
                     "feature_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DiscriminatorConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_classes < 0:
            raise ConfigError(f"DiscriminatorConfig.num_classes must be >= 0, got {self.num_classes}")

    @property
    def conditional(self) -> bool:
        """True when the discriminator is projection-conditioned on semantic labels."""
        return self.num_classes > 0


def patchgan_receptive_field(n_layers: int, kernel_size: int = KERNEL_SIZE) -> int:
    """Receptive field (pixels) of one PatchGAN logit: ``n_layers`` stride-2 convs + two stride-1 convs.

    Walks back from one output unit: r <- (r - 1) * stride + kernel. For n_layers=3, k=4: 70.
    """
    r = 1
    strides = [2] * n_layers + [1, 1]
    for stride in reversed(strides):
        r = (r - 1) * stride + kernel_size
    return r


def downsample_labels(semantic: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of a label map: (B, H, W) int64 -> (B, h, w) int64.

    ``nearest-exact``: output cell i takes the label at source index floor((i + 0.5) * H / h), its centre
    (the same convention as :func:`sim2real.translator.memory.downsample_labels`).
    """
    if semantic.dim() != 3:
        raise LabelError(f"semantic must be (B, H, W), got shape {tuple(semantic.shape)}")
    out = F.interpolate(semantic[:, None].float(), size=size, mode="nearest-exact")
    return out[:, 0].long()


def _conv(in_ch: int, out_ch: int, stride: int, spectral: bool, *, kernel_size: int = KERNEL_SIZE,
          padding: int = PADDING) -> nn.Module:
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding)
    return nn.utils.parametrizations.spectral_norm(conv) if spectral else conv


class PatchDiscriminator(nn.Module):
    """One (projection) PatchGAN: (B, C, H, W) image [+ (B, H, W) labels] -> (B, 1, h, w) logits."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        sn = cfg.spectral_norm
        norm = NORM_LAYERS[cfg.norm]
        in_channels = cfg.in_channels + (2 if cfg.coordinates else 0)
        layers: list[nn.Module] = [_conv(in_channels, cfg.base_channels, 2, sn), nn.LeakyReLU(0.2)]
        ch = cfg.base_channels
        for _ in range(1, cfg.n_layers):
            nxt = min(ch * 2, cfg.max_channels)
            layers += [_conv(ch, nxt, 2, sn), norm(nxt), nn.LeakyReLU(0.2)]
            ch = nxt
        nxt = min(ch * 2, cfg.max_channels)
        layers += [_conv(ch, nxt, 1, sn), norm(nxt), nn.LeakyReLU(0.2)]
        # phi: the last 4x4 stride-1 conv gives the per-patch feature vector; psi is 1x1 (adds no field).
        layers += [_conv(nxt, cfg.feature_channels, 1, sn), nn.LeakyReLU(0.2)]
        self.phi = nn.Sequential(*layers)
        self.psi = _conv(cfg.feature_channels, 1, 1, sn, kernel_size=1, padding=0)
        self.embed: nn.Embedding | None = None
        if cfg.conditional:
            # row num_classes is the ignore label: zero and never updated (padding_idx).
            self.embed = nn.Embedding(cfg.num_classes + 1, cfg.feature_channels, padding_idx=cfg.num_classes)
            nn.init.normal_(self.embed.weight, std=0.02)
            with torch.no_grad():
                self.embed.weight[cfg.num_classes].zero_()

    def forward(self, x: Tensor, semantic: Tensor | None = None) -> Tensor:
        """(B, C, H, W) image, optional (B, H, W) int64 labels -> (B, 1, h, w) patch logits."""
        feat = self.phi(x)
        out = self.psi(feat)
        if self.embed is not None:
            if semantic is None:
                raise LabelError("this discriminator is label-conditioned: pass the semantic map")
            labels = downsample_labels(semantic, feat.shape[-2:])
            labels = _to_embedding_index(labels, self.cfg.num_classes)
            emb = self.embed(labels).permute(0, 3, 1, 2)  # (B, F, h, w)
            out = out + (emb * feat).sum(dim=1, keepdim=True)
        return out


def _to_embedding_index(labels: Tensor, num_classes: int) -> Tensor:
    """Map ignore (255) to the zero embedding row ``num_classes``; reject anything else out of range."""
    ignore = labels == IGNORE_ID
    bad = ~ignore & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        raise LabelError(f"semantic labels must be in 0..{num_classes - 1} or {IGNORE_ID}")
    return torch.where(ignore, torch.full_like(labels, num_classes), labels)


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD multi-scale PatchGAN: image [+ labels] -> list of (B, 1, h_k, w_k) logits, finest first."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scales = nn.ModuleList(PatchDiscriminator(cfg) for _ in range(cfg.num_scales))

    @property
    def conditional(self) -> bool:
        """True when ``forward`` needs a semantic map."""
        return self.cfg.conditional

    def forward(self, x: Tensor, semantic: Tensor | None = None, frame_box: Tensor | None = None) -> list[Tensor]:
        """(B, C, H, W) image, optional (B, H, W) labels, optional (B, 4) frame boxes (None = whole frames) ->
        [(B, 1, h_k, w_k)] for k in 0..num_scales-1."""
        if self.cfg.coordinates:
            x = torch.cat([x, coordinate_planes(x, frame_box)], 1)
        outputs: list[Tensor] = []
        for k, disc in enumerate(self.scales):
            if k > 0:
                x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
            outputs.append(disc(x, semantic))
        return outputs


def coordinate_planes(x: Tensor, frame_box: Tensor | None) -> Tensor:
    """Each pixel's full-frame position in units of half the frame height: (B, C, H, W), (B, 4) normalised
    boxes or None -> (B, 2, H, W) (x then y; the frame centre is 0; y in [-1, 1], x in [-aspect, aspect]).

    Both planes step by the same amount per pixel whatever the frame's aspect ratio (the full frame's size is
    the crop's divided by its box), so the planes say where a pixel is without telling a 16:9 dataset from a
    4:3 one by their slope. The x range still differs (a crop at the side edge of a 16:9 frame reaches |x| 1.78,
    a 4:3 frame 1.33): only crops within |x| <= 1.33 carry no hint of the dataset."""
    B, _, H, W = x.shape
    box = (frame_box if frame_box is not None else x.new_tensor([0.0, 0.0, 1.0, 1.0]).expand(B, 4)).to(x.dtype)
    aspect = (W / (box[:, 2] - box[:, 0]).clamp(min=1e-6)) / (H / (box[:, 3] - box[:, 1]).clamp(min=1e-6))
    xs = (frame_coordinates(W, box, 0) * 2 - 1) * aspect[:, None]  # (B, W)
    ys = frame_coordinates(H, box, 1) * 2 - 1  # (B, H)
    return torch.stack([xs[:, None, :].expand(B, H, W), ys[:, :, None].expand(B, H, W)], 1)


class ContentDiscriminator(nn.Module):
    """Domain classifier on content codes (DRIT): (B, channels, h, w) -> (B,) logit of "source domain".

    ``num_layers`` 3x3 stride-2 convs with LeakyReLU (no normalisation, so a 1x1 content map works; spectral
    norm keeps it Lipschitz), global average pooling and a linear layer.
    """

    def __init__(
        self, channels: int, hidden: int = 256, num_layers: int = 3, spectral_norm: bool = True
    ) -> None:
        super().__init__()
        if channels < 1 or hidden < 1 or num_layers < 1:
            raise ConfigError("ContentDiscriminator needs channels, hidden and num_layers >= 1")
        layers: list[nn.Module] = []
        ch = channels
        for _ in range(num_layers):
            layers += [_conv(ch, hidden, 2, spectral_norm, kernel_size=3, padding=1), nn.LeakyReLU(0.2)]
            ch = hidden
        self.body = nn.Sequential(*layers)
        head = nn.Linear(hidden, 1)
        self.head = nn.utils.parametrizations.spectral_norm(head) if spectral_norm else head

    def forward(self, content: Tensor) -> Tensor:
        """(B, C, h, w) content features -> (B,) logits (> 0: looks like the source domain)."""
        feat = self.body(content).mean(dim=(2, 3))
        return self.head(feat)[:, 0]
