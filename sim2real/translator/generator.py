"""Instance-aware, label-aware unpaired translator generator (DRIT / DUNIT / MGUIT lineage).

Data flow (docs/translator.md has the full diagram and the reasoning)::

    source rgb + labels --LabelStem--+                               +--> decoders["target"] --> fake target
                                     +--> ContentBody --> + delta --> |       ^ style (B, S), memory read
    target rgb ---------RGBStem------+    (shared)      (instance    +--> decoders["source"] --> fake source
                                                          branch)

* Content encoder: per-domain input stems at work resolution (``1 / work_scale``) then a shared body
  down to ``1 / stride``. The source stem is label-aware: RGB + learned semantic embedding + instance
  boundary map + a "labels absent" flag channel. During training each source sample is shown "labels
  absent" with probability ``label_dropout`` so the same stem also encodes label-free images (the fake
  source images of the t->s->t cycle). The target stem is RGB only: real target frames have no labels.
* Instance branch (DUNIT): applied whenever an instance map is given, in either domain.
* Style: per-domain style encoders give a global code (B, S) and a local value map (B, Dv, h, w).
* Decoders (one per domain): optional class-wise style (memory read, or the image's own value map for
  self-reconstruction) added to the content, style-modulated residual blocks and upsampling at low
  resolution, then a per-pixel affine colour model applied to the full-resolution input (detail comes
  from the input image; the network only predicts smooth 3x4 colour transforms + offsets).

Cycle conventions (the trainer's side, documented here because the encoder/decoder support them):

* s->t:   c = encode_content(x_s, "source", sem_s, inst_s);      y = decode(c, z_t, "target")
* t->s:   c = encode_content(x_t, "target");                      y = decode(c, z_s, "source")
  (no labels: no instance fusion, no memory read; pseudo labels may be passed if a segmenter gives them)
* s->t->s: c = encode_content(fake_t, "target", sem_s, inst_s)  (translation preserves labels, so the
  known source labels drive the instance branch and the memory; the target stem never sees labels);
  rec_s = decode(c, z_s, "source")
* t->s->t: c = encode_content(fake_s, "source")  (labels absent flag set); rec_t = decode(c, z_t, "target")

Inference is :meth:`TranslatorGenerator.translate`: the s->t path with the EMA mean target style.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import NUM_CLASSES, TRAIN_ID
from sim2real.translator.boxes import InstanceBoxes, instance_boundary_count
from sim2real.translator.camera import CameraModel
from sim2real.translator.coefficient_pooling import (
    NO_WIDE_EDGE,
    WideEdge,
    class_mean_removed,
    class_means_by_id,
    class_pooled_coefficients,
    edge_pooled_coefficients,
)
from sim2real.translator.colour_prior import ClassColourPrior
from sim2real.translator.config import THING_CHROMA_SOURCES, GeneratorConfig
from sim2real.translator.edge_clamp import edge_clamped, luma
from sim2real.translator.instance_branch import InstanceBranch
from sim2real.translator.layers import (
    AFFINE_COEFFS,
    COLUMN_ORDER,
    ConvNormAct,
    ModResBlock,
    ModulatedConv2d,
    PaddedConv2d,
    ResBlock,
    StyleMLP,
    box_mean,
    coefficients_by_label,
    column_affine_colour,
    inference_fast_path,
    padded_conv2d,
    replicate_pad,
    upsample_to,
    upsampled_affine_colour,
)
from sim2real.translator.lightness_bins import by_label_and_lightness
from sim2real.translator.markings import kept_guide_chroma
from sim2real.translator.memory import ClassStyleMemory, downsample_labels
from sim2real.translator.thing_colour_maps import thing_cells, thing_columns

__all__ = [
    "DOMAINS",
    "ContentBody",
    "ContentCode",
    "Decoder",
    "LabelStem",
    "RGBStem",
    "StyleEncoder",
    "TranslatorGenerator",
    "domain_index",
]

#: explicit domain registry: name -> index (memory value set, style-mean row).
DOMAINS: Final[dict[str, int]] = {"source": 0, "target": 1}


def domain_index(domain: str) -> int:
    """Index of a domain name; unknown names raise :class:`ConfigError` listing the valid ones."""
    try:
        return DOMAINS[domain]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown domain {domain!r}; valid domains: {sorted(DOMAINS)}") from None


def _stem_conv(
    in_channels: int, out_channels: int, work_scale: int, padding_mode: str, cell_centred: bool = False
) -> nn.Conv2d:
    """Full-res -> work-res conv: stride ``work_scale``, kernel 7 (scale 1) or ``2 * scale - 1``.

    Symmetric padding centres output i on input pixel ``s i``; ``cell_centred`` pads ``(s - 1 - s // 2,
    s - 1 + s // 2)`` instead, centring it on pixel ``s i + s // 2``: the pixel whose labels the cell
    samples (``label_resolution="work"``), half a pixel from the cell's centre ``s i + (s - 1) / 2``.
    """
    k = 7 if work_scale == 1 else 2 * work_scale - 1
    padding: int | tuple[int, int] = (k - 1) // 2
    if cell_centred and work_scale > 1:
        before = work_scale - 1 - work_scale // 2
        padding = (before, k - 1 - before)
    return PaddedConv2d(in_channels, out_channels, k, work_scale, padding=padding, padding_mode=padding_mode)


def _replicate_index(size: int, pad: int, device: torch.device) -> Tensor:
    """Source index of each position of a replicate-padded axis: (size + 2 pad,) int64, clamp(i - pad)."""
    return torch.arange(-pad, size + pad, device=device).clamp(0, size - 1)


@dataclass(frozen=True)
class ContentCode:
    """A content code plus what decoding and the losses need alongside it.

    Attributes:
        global_features: (B, C, h, w) shared content-encoder output (before instance fusion).
        instance_delta: (B, C, h, w) fused instance features (0 outside instances), None without branch
            or instance map. Replace it with zeros (``dataclasses.replace``) to ablate the branch.
        guide: (B, 3, H, W) the encoded image in [-1, 1]; the decoder's affine colour head acts on it.
        target_guide: (B, 3, H, W) the source image through the class-wise colour prior: what the *target*
            decoder's colour head acts on (None = ``guide``; only source codes with labels carry one).
        semantic: (B, H, W) int64 labels used for the memory read / update / contrastive loss, or None.
        instances: kept instance boxes (input pixels) or None.
        instance_masks: (B, N, h, w) instance coverage at feature resolution, or None.
        marking_weight: (B, 1, H, W) float32 in [0, 1], the painted pixels whose target_guide chroma the target
            decoder keeps (``cfg.marking_chroma_classes``, :mod:`~sim2real.translator.markings`), or None.
    """

    global_features: Tensor
    guide: Tensor
    instance_delta: Tensor | None = None
    semantic: Tensor | None = None
    instances: InstanceBoxes | None = None
    instance_masks: Tensor | None = None
    target_guide: Tensor | None = None
    marking_weight: Tensor | None = None

    def guide_for(self, domain: str) -> Tensor:
        """The image the decoder of ``domain`` transforms: ``target_guide`` for the target when present."""
        return self.target_guide if domain == "target" and self.target_guide is not None else self.guide

    @property
    def features(self) -> Tensor:
        """(B, C, h, w) content features the decoder sees: global + instance delta."""
        if self.instance_delta is None:
            return self.global_features
        return self.global_features + self.instance_delta

    @property
    def semantic_lowres(self) -> Tensor | None:
        """(B, h, w) labels nearest-downsampled (whole map) to the content resolution, or None."""
        if self.semantic is None:
            return None
        return downsample_labels(self.semantic, tuple(self.global_features.shape[-2:]))


class LabelStem(nn.Module):
    """Label-aware source stem: rgb (B, 3, H, W), labels -> (B, out_channels, H / s, W / s).

    Label channels: ``embed_dim`` semantic embedding + 1 instance boundary + 1 "labels absent" flag.
    Embedding rows: 0..K-1 classes, K = ignore (any other value, e.g. 255), K + 1 = labels absent.
    A sample is "absent" when ``semantic`` is None or ``drop[b]`` is True: embedding row K + 1, boundary 0,
    flag 1.

    ``label_resolution`` "input": one conv over [rgb, label channels] at every input pixel (``conv`` has
    3 + E + 2 input channels). "work": the labels are sampled at the centre of each work-resolution cell
    (:func:`~sim2real.translator.memory.downsample_labels`), the boundary is taken on the sampled instance
    map, and the label channels enter through a linear projection ``label_proj`` at that cell:
    ``lrelu(conv(rgb) + label_proj(labels))`` (``conv`` has 3 input channels).
    """

    def __init__(
        self, num_classes: int, embed_dim: int, out_channels: int, work_scale: int,
        *, padding_mode: str = "replicate", label_resolution: str = "input",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.work_scale = work_scale
        self.per_cell = label_resolution == "work"
        self.embed = nn.Embedding(num_classes + 2, embed_dim)
        rgb_and_labels = 3 if self.per_cell else 3 + embed_dim + 2
        self.conv = _stem_conv(rgb_and_labels, out_channels, work_scale, padding_mode, cell_centred=self.per_cell)
        self.label_proj = nn.Linear(embed_dim + 2, out_channels, bias=False) if self.per_cell else None
        self.act = nn.LeakyReLU(0.2)

    def code_table(self, dtype: torch.dtype) -> Tensor:
        """Label channels per code ``2 * row + edge``: (2 (K + 2), E + 2) = [embedding[row], edge, flag].

        ``flag`` (labels absent) is 1 exactly for row K + 1, which only absent samples use (and they have
        edge 0): so one lookup gives the embedding, the masked boundary and the flag channel together.
        """
        rows = self.embed.weight.shape[0]
        code = torch.arange(2 * rows, device=self.embed.weight.device)
        edge = (code % 2).to(dtype).unsqueeze(1)
        flag = (code // 2 == self.num_classes + 1).to(dtype).unsqueeze(1)
        return torch.cat([self.embed.weight.to(dtype).repeat_interleave(2, dim=0), edge, flag], dim=1)

    def label_codes(
        self, semantic: Tensor | None, instance: Tensor | None, drop: Tensor | None, shape: tuple[int, int, int],
        device: torch.device,
    ) -> Tensor:
        """Code ``2 * row + boundary`` of every label position: (B, H, W) int64 for maps of ``shape``."""
        B = shape[0]
        K = self.num_classes
        if semantic is None:
            index = torch.full(shape, K + 1, dtype=torch.long, device=device)
            absent = torch.ones(B, device=device, dtype=torch.bool)
        else:
            sem = semantic.long()
            index = torch.where((sem >= 0) & (sem < K), sem, torch.full_like(sem, K))
            absent = torch.zeros(B, device=device, dtype=torch.bool) if drop is None else drop
            index = torch.where(absent.view(B, 1, 1), torch.full_like(index, K + 1), index)
        code = index * 2
        if instance is not None:
            edge = instance_boundary_count(instance) > 0
            code = code + (edge & (~absent).view(B, 1, 1)).long()
        return code

    def forward(
        self, rgb: Tensor, semantic: Tensor | None, instance: Tensor | None, drop: Tensor | None = None
    ) -> Tensor:
        """rgb (B, 3, H, W), semantic / instance (B, H, W) or None, drop (B,) bool -> (B, Cout, h', w').

        "input" resolution: the conv input [rgb, embedding, boundary * present, absent flag] is assembled
        channels_last (B, H (+ 2p), W (+ 2p), 3 + E + 2): the label channels come from one lookup of
        ``2 * row + boundary`` in :meth:`code_table`; replicate padding is an index gather of the small rgb /
        code maps, zero padding the conv's own, so no full-resolution NCHW concat, pad or layout copy is made.
        """
        B, _, H, W = rgb.shape
        if self.per_cell:
            assert self.label_proj is not None
            s = self.work_scale
            h, w = H // s, W // s
            semantic = None if semantic is None else downsample_labels(semantic, (h, w))
            instance = None if instance is None else downsample_labels(instance, (h, w))
            code = self.label_codes(semantic, instance, drop, (B, h, w), rgb.device)
            table = self.code_table(rgb.dtype) @ self.label_proj.weight.t().to(rgb.dtype)  # (codes, Cout)
            return self.act(self.conv(rgb) + F.embedding(code, table).permute(0, 3, 1, 2))
        code = self.label_codes(semantic, instance, drop, (B, H, W), rgb.device)
        pad = int(self.conv.padding[0])  # type: ignore[index]
        rgb_nhwc = rgb.permute(0, 2, 3, 1)
        if self.conv.padding_mode == "replicate":  # padded here by gathering; the conv then pads nothing
            rows, cols = _replicate_index(H, pad, rgb.device), _replicate_index(W, pad, rgb.device)
            code = code.index_select(1, rows).index_select(2, cols)  # (B, H + 2p, W + 2p)
            rgb_nhwc = rgb_nhwc.index_select(1, rows).index_select(2, cols)
            pad = 0
        labels = F.embedding(code, self.code_table(rgb.dtype))  # (B, H (+ 2p), W (+ 2p), E + 2)
        x = torch.cat([rgb_nhwc, labels], dim=-1).permute(0, 3, 1, 2)  # channels_last view
        return self.act(F.conv2d(x, self.conv.weight, self.conv.bias, self.conv.stride, pad))


class RGBStem(nn.Module):
    """Label-free target stem: (B, 3, H, W) -> (B, out_channels, H / s, W / s)."""

    def __init__(
        self, out_channels: int, work_scale: int, *, padding_mode: str = "replicate", cell_centred: bool = False
    ) -> None:
        super().__init__()
        self.conv = _stem_conv(3, out_channels, work_scale, padding_mode, cell_centred)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, rgb: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, Cout, H / s, W / s)."""
        return self.act(self.conv(rgb))


class ContentBody(nn.Module):
    """Shared content encoder body: stride-2 stages then residual blocks (instance norm).

    channels[i] = width at level i (0 = work resolution); (B, channels[0], h0, w0) ->
    (B, channels[-1], h0 / 2^L, w0 / 2^L) with L = len(channels) - 1.
    """

    def __init__(self, channels: list[int], num_res: int, *, padding_mode: str = "replicate") -> None:
        super().__init__()
        self.down = nn.Sequential(
            *[
                ConvNormAct(c_in, c_out, 3, 2, norm="instance", act="relu", padding_mode=padding_mode)
                for c_in, c_out in itertools.pairwise(channels)
            ]
        )
        self.res = nn.Sequential(
            *[ResBlock(channels[-1], norm="instance", padding_mode=padding_mode) for _ in range(num_res)]
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C0, h0, w0) -> (B, C, h, w)."""
        return self.res(self.down(x))


class StyleEncoder(nn.Module):
    """Per-domain style (attribute) encoder, no normalisation (MUNIT).

    rgb (B, 3, H, W) -> global style (B, style_dim) and local value map (B, value_dim, H / stride,
    W / stride) for the class-wise memory (value_dim 0: no value head, an empty (B, 0, h, w) map).
    ``num_downsamples`` stride-2 convs reach the content stride; two more precede global average pooling.
    """

    def __init__(
        self, channels: int, style_dim: int, value_dim: int, work_scale: int, num_downsamples: int,
        *, padding_mode: str = "replicate", cell_centred: bool = False,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(_stem_conv(3, channels, work_scale, padding_mode, cell_centred), nn.LeakyReLU(0.2))

        def down() -> ConvNormAct:
            return ConvNormAct(channels, channels, 3, 2, norm="none", act="lrelu", padding_mode=padding_mode)

        self.to_content_stride = nn.Sequential(*[down() for _ in range(num_downsamples)])
        self.value_head = nn.Conv2d(channels, value_dim, 1) if value_dim > 0 else None
        self.global_trunk = nn.Sequential(down(), down(), nn.AdaptiveAvgPool2d(1))
        self.style_head = nn.Linear(channels, style_dim)

    def forward(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 3, H, W) -> (style (B, S), values (B, Dv, h, w))."""
        feat = self.to_content_stride(self.stem(rgb))
        style = self.style_head(self.global_trunk(feat).flatten(1))
        if self.value_head is None:
            return style, feat.new_zeros(feat.shape[0], 0, *feat.shape[2:])
        return style, self.value_head(feat)


class DetailPath(nn.Module):
    """Full-resolution detail: texture, grain and noise the affine colour head cannot make.

    Inputs: the guide (B, 3, H, W), D detail features at work resolution (B, D, h, w), bilinearly upsampled to
    (B, D, H, W) here, and a noise plane n (B, 1, H, W) (None = zeros: the mean output). The first feature sets
    the noise amplitude per pixel (StyleGAN-style noise injection with a class-aware, spatially varying strength):
        n' = softplus(f_0) * n,
        r  = conv1x1(lrelu(conv3x3([guide, f_1..f_{D-1}, n']))),      (B, 3, H, W)
    added to the affine output before the tanh. The 1x1 conv starts at zero, so a new detail path is a no-op.
    Without noise, f_0 is not upsampled and the n' plane (all zeros, zero also when padded) is left out of the
    3x3 convolution together with its weights: the same r, one full-resolution plane less to build and read.
    With ``highpass`` = k > 0 the output is r - box_k(r) (:func:`~sim2real.translator.layers.box_mean`): no
    colour shift survives, only what varies within k pixels; but a step of r at a label edge turns into a band
    of + and - on either side of it (a halo). With ``mean`` "class" the output is r minus the mean of r over the
    frame's pixels of each pixel's label instead, sampled at the work cells' centres
    (:func:`~sim2real.translator.coefficient_pooling.class_mean_removed`): no class's colour moves and a step
    stays a step, but what varies slowly inside a class passes. "class_box" takes the class means off first and
    then the box mean: inside a class the box's output, beside a label edge no band from the step.
    "class_box_field" returns r itself and its class means (:meth:`forward`); the :class:`Decoder` reads each
    pixel's class mean in its edge-pixel field's lookup and takes it off before the box (:meth:`Decoder._class_box`):
    ``class_box``'s output without a gather of its own.
    In an ONNX graph both convolutions are 3-D ones over a depth of 1 (:meth:`_depth1_convolutions`: the same
    numbers, kept out of ONNX Runtime's blocked layout).
    """

    def __init__(self, detail_channels: int, width: int, *, padding_mode: str = "replicate",
                 highpass: int = 0, mean: str = "box", num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.highpass, self.mean, self.num_classes = highpass, mean, num_classes
        self.conv = PaddedConv2d(3 + detail_channels, width, 3, padding=1, padding_mode=padding_mode)
        self.out = nn.Conv2d(width, 3, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, guide: Tensor, features: Tensor, noise: Tensor | None, labels: Tensor | None = None
                ) -> tuple[Tensor, Tensor | None]:
        """guide (B, 3, H, W), features (B, D, h, w), noise (B, 1, H, W) or None, labels (B, H, W) class ids or
        None (read by the class means) -> (the detail output (B, 3, H, W); for ``mean`` "class_box_field" with
        labels r itself, not yet high-passed, and the class means of r by label id (B, 3, 256)
        (:func:`~sim2real.translator.coefficient_pooling.class_means_by_id`), for the :class:`Decoder` to take off
        each pixel's before the box (:meth:`Decoder._class_box`); else the high-passed output and None)."""
        size, conv = guide.shape[-2:], self.conv  # conv: padded by 1 on every side (PaddedConv2d, int padding)
        if noise is None:
            x, weight = torch.cat([guide, upsample_to(features[:, 1:], size)], 1), conv.weight[:, :-1]
        else:
            features = upsample_to(features, size)
            n = F.softplus(features[:, :1]) * noise.to(guide.dtype)
            x, weight = torch.cat([guide, features[:, 1:], n], 1), conv.weight
        if torch.onnx.is_in_onnx_export():
            r = self._depth1_convolutions(x, weight)
        else:
            h = padded_conv2d(x, weight, conv.bias, 1, conv.pad_before, padding_mode=conv.padding_mode)
            r = self.out(F.leaky_relu(h, 0.2))
        if not self.highpass:
            return r, None
        cells = tuple(features.shape[-2:])
        if self.mean in ("class", "class_box"):
            r = class_mean_removed(r, labels, cells, self.num_classes).to(r.dtype)
        if self.mean == "class_box_field" and labels is not None:
            return r, class_means_by_id(r, labels, cells, self.num_classes)
        return (r if self.mean == "class" else r - box_mean(r, self.highpass)), None

    def _depth1_convolutions(self, x: Tensor, weight: Tensor) -> Tensor:
        """conv3x3 -> lrelu -> conv1x1 as 3-D convolutions over a depth of 1, for ONNX graphs: x (B, Cin, H, W),
        weight (width, Cin, 3, 3) -> (B, 3, H, W), the numbers of the 2-D path. ONNX Runtime moves 2-D
        convolutions into its blocked NCHWc layout, which rounds output channels up to its block (8 with AVX2,
        16 with AVX-512) and reorders back after: here 8 and 3 channels at full resolution. 3-D ones stay in NCHW
        (and the first still fuses with its LeakyRelu)."""
        pad = self.conv.pad_before
        if self.conv.padding_mode != "zeros":
            x, pad = replicate_pad(x, pad), 0
        h = F.leaky_relu(F.conv3d(x.unsqueeze(2), weight.unsqueeze(2), self.conv.bias, padding=(0, pad, pad)), 0.2)
        return F.conv3d(h, self.out.weight.unsqueeze(2), self.out.bias).squeeze(2)


class Decoder(nn.Module):
    """Per-domain decoder: content (B, C, h, w) + style (B, S) [+ style map] + guide -> (B, 3, H, W).

    content (+ 1x1 no-bias projection of an optional (B, value_dim, h, w) class-wise style map) ->
    ``num_res`` modulated residual blocks -> (nearest x2 upsample, modulated 3x3 conv, lrelu) per level
    -> 3x3 conv to 12 affine colour coefficients (+ D detail features) at work resolution (initialised near
    identity) [-> blended with their class means, ``pooling`` / ``edge_pooling`` > 0 or ``whole_classes`` and labels
    given; thing classes' maps with their chroma from ``thing_chroma``] -> bilinear
    upsampling to the guide's size -> tanh(A . guide + b [+ detail path r] [clamped at label-edge pixels,
    ``edge_clamp`` > 0 and labels given]) (``identity_start``: clamped to [-1, 1] instead, from a head whose
    colour-coefficient weights start at zero: a fresh decoder returns its guide).

    Args:
        channels: widths from the content level down to work resolution (channels[0] = C).
        num_res: modulated residual blocks at the content level.
        style_dim: S.
        mlp_dim: modulation latent width.
        value_dim: Dv of the style map (0 = no style-map input).
        padding_mode: one of :data:`~sim2real.translator.layers.PADDING_MODES`, of the blocks and the head.
        detail_padding_mode: of the full-resolution :class:`DetailPath`; None = ``padding_mode``.
        detail_channels: D (0 = no detail path).
        detail_width: width of the :class:`DetailPath`.
        detail_highpass: box size of the :class:`DetailPath`'s high-pass (0 = off).
        detail_mean: which mean the :class:`DetailPath`'s high-pass takes off (``detail_highpass`` > 0): "box",
            "class", "class_box" or "class_box_field" (``class_box`` with the class means read in the edge-pixel
            field's lookup, :meth:`_class_box`; needs ``edge_pixels``).
        pooling: share of the coefficients taken from their class means when labels are given
            (:func:`~sim2real.translator.coefficient_pooling.class_pooled_coefficients`); 0 = off.
        num_classes: class ids below this pool per class; cells of other ids take the mean of the frame's class
            cells (their own coefficients when the frame has none).
        identity_start: zero colour-coefficient weights at the start and a clamp to [-1, 1] instead of tanh.
        edge_pooling: cells within this many work cells of another label take their class mean wholly (with
            labels; 0 = off).
        wide_edge: with ``edge_pooling`` > 0, class ids whose cells take their class mean within a wider radius
            (:class:`~sim2real.translator.coefficient_pooling.WideEdge`; empty = off).
        edge_pixels: with ``edge_pooling`` > 0 and labels, each pixel takes the edge cells' share of its
            bilinear weights from its own label's class mean (edge pooling per pixel,
            :func:`~sim2real.translator.coefficient_pooling.edge_pooled_coefficients`): no class's map leaks across
            an edge in the upsampling.
        thing_chroma: with labels, where the chroma of thing classes' colour maps comes from: "decoder" (their
            maps as they are), "untinted" or "guide" (:mod:`~sim2real.translator.thing_colour_maps`).
        whole_classes: class ids whose cells take their class mean wholly, with labels (whole classes,
            :mod:`~sim2real.translator.coefficient_pooling`).
        edge_clamp: r > 0: with labels, the luma of the output (colour map + detail) at pixels within r of another
            label is clamped to the lightness of the regions they border (:mod:`~sim2real.translator.edge_clamp`);
            0 = off.
        lightness_bins: L >= 2: the pooling targets are class means per bin of the guide's lightness
            (:mod:`~sim2real.translator.lightness_bins`; needs a pooling option); 0 = off.
        detail_gain: the detail output and its class means times this (1 = as trained, 0 = none).
    """

    def __init__(
        self, channels: list[int], num_res: int, style_dim: int, mlp_dim: int, value_dim: int,
        *, padding_mode: str = "replicate", detail_padding_mode: str | None = None, detail_channels: int = 0,
        detail_width: int = 8, detail_highpass: int = 0, pooling: float = 0.0, num_classes: int = NUM_CLASSES,
        identity_start: bool = False, edge_pooling: int = 0, detail_mean: str = "box", edge_pixels: bool = False,
        thing_chroma: str = "decoder", whole_classes: tuple[int, ...] = (), edge_clamp: int = 0,
        lightness_bins: int = 0, detail_gain: float = 1.0, wide_edge: WideEdge = NO_WIDE_EDGE,
    ) -> None:
        super().__init__()
        if edge_pixels and edge_pooling <= 0:
            raise ValueError("edge_pixels needs edge_pooling > 0")
        if detail_mean == "class_box_field" and not edge_pixels:
            raise ValueError("detail_mean class_box_field reads its class means in the edge-pixel field's lookup: "
                             "it needs edge_pixels")
        if wide_edge.ids and not 0 < edge_pooling < wide_edge.radius:
            raise ValueError(f"wide_edge widens edge pooling: it needs 0 < edge_pooling ({edge_pooling}) < its radius "
                             f"({wide_edge.radius})")
        if edge_clamp < 0:
            raise ValueError(f"edge_clamp must be >= 0, got {edge_clamp}")
        if lightness_bins == 1 or lightness_bins < 0:
            raise ValueError(f"lightness_bins must be 0 (off) or >= 2, got {lightness_bins}")
        if lightness_bins and not (pooling > 0 or edge_pooling > 0 or whole_classes):
            raise ValueError("lightness_bins bins the pooling targets: it needs pooling, edge_pooling or "
                             "whole_classes")
        if thing_chroma not in THING_CHROMA_SOURCES:
            raise ValueError(f"thing_chroma must be one of {list(THING_CHROMA_SOURCES)}, got {thing_chroma!r}")
        self.pooling, self.num_classes, self.clamp = pooling, num_classes, identity_start
        self.edge_pooling, self.edge_pixels, self.thing_chroma = edge_pooling, edge_pixels, thing_chroma
        self.whole_classes, self.edge_clamp, self.lightness_bins = tuple(whole_classes), edge_clamp, lightness_bins
        self.detail_gain, self.wide_edge = float(detail_gain), WideEdge(tuple(wide_edge.ids), wide_edge.radius)
        self.mlp = StyleMLP(style_dim, mlp_dim)
        self.style_map_proj = nn.Conv2d(value_dim, channels[0], 1, bias=False) if value_dim > 0 else None
        self.res = nn.ModuleList([ModResBlock(channels[0], mlp_dim, padding_mode=padding_mode) for _ in range(num_res)])
        self.ups = nn.ModuleList(
            [ModulatedConv2d(channels[i], channels[i + 1], 3, mlp_dim, padding_mode=padding_mode)
             for i in range(len(channels) - 1)]
        )
        self.head = PaddedConv2d(channels[-1], AFFINE_COEFFS + detail_channels, 3, padding=1,
                                 padding_mode=padding_mode)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            if identity_start:
                self.head.weight[:AFFINE_COEFFS].zero_()
            self.head.bias.zero_()
            self.head.bias[:AFFINE_COEFFS].copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0, 0, 0, 0]))
        self.detail = (DetailPath(detail_channels, detail_width, padding_mode=detail_padding_mode or padding_mode,
                                  highpass=detail_highpass, mean=detail_mean, num_classes=num_classes)
                       if detail_channels > 0 else None)

    def _edge_field(self, affine: Tensor, edge: Tensor, table: Tensor, labels: Tensor,
                    detail_means: Tensor | None = None, *, lightness: Tensor | None = None
                    ) -> tuple[Tensor, Tensor | None]:
        """Edge pooling per pixel (``edge_pixels``): the pooled affine coefficients (B, 12, h, w), edge cells
        (B, 1, h, w), the class means by label id (B, 12, 256), or by lightness bin and label id (B, 12, L, 256)
        with the guide's lightness (B, 1, H, W)
        (:func:`~sim2real.translator.coefficient_pooling.edge_pooled_coefficients`), labels (B, H, W) -> the affine
        field at full resolution by column of [A | b] (B, 12, H, W) (:data:`~sim2real.translator.layers.COLUMN_ORDER`,
        for :func:`~sim2real.translator.layers.column_affine_colour`; ordered before the upsampling, at work
        resolution), and each pixel's column of ``detail_means`` (B, 3, H, W) (else None):

            c(p) = up(c (1 - e))(p) + up(e)(p) T[label(p)]

        with e = 1 on the edge cells (which hold their class mean T[label] wholly) and up the bilinear upsampling:
        the bilinear weights a pixel gives edge cells go to its own label's class mean (by lightness bin: the mean
        for its own lightness, :func:`~sim2real.translator.lightness_bins.by_label_and_lightness`) instead of the
        edge cells' labels'. Every pixel beside an edge gets its own class's map; looked up at 2x work resolution
        instead, the upsampling to full resolution blended the two classes over the pixel either side of every edge
        (a 1 px rim of the other class's map: ``edge_bleed``'s 1 px ring 16-18 levels against 5-6 here).

        ``detail_means`` (B, 3, 256), the detail output's class means by label id (``detail_mean``
        "class_box_field", for :meth:`_class_box`), are read in the same lookup as T (the same gathers)."""
        size = tuple(labels.shape[-2:])
        if size[0] % affine.shape[-2] or size[1] % affine.shape[-1]:
            raise ValueError(f"labels {size} are not a whole multiple of the coefficients' {tuple(affine.shape[-2:])}")
        order = list(COLUMN_ORDER)
        affine, table = affine[:, order], table[:, order]
        means = detail_means.to(table.dtype) if detail_means is not None and self.detail is not None else None
        if table.dim() == 3:
            own = coefficients_by_label(table if means is None else torch.cat([table, means], 1), labels)
            own, step_means = own[:, :AFFINE_COEFFS], (None if means is None else own[:, AFFINE_COEFFS:])
        elif lightness is None:
            raise ValueError("a class table per lightness bin (B, K, L, 256) needs the guide's lightness")
        else:
            own, step_means = by_label_and_lightness(table, labels, lightness[:, 0].float(), means)
        field = upsample_to(affine - edge * affine, size) + upsample_to(edge, size) * own
        return field, step_means

    def _class_box(self, r: Tensor, means: Tensor) -> Tensor:
        """``detail_mean`` "class_box_field": the detail path's r (B, 3, H, W), not yet high-passed, and each pixel's
        class mean of r, m[label(p)] (B, 3, H, W) from :meth:`_edge_field` -> ``class_box``'s output

            r' = r - m[label],    r' - box_k(r')

        (k the detail path's box): no class's colour moves, and a step of the class means makes no band beside
        the edge (``class_box`` gathers the means per pixel itself; here they come with the edge field's lookup)."""
        centred = r - means.to(r.dtype)
        return centred - box_mean(centred, self.detail.highpass)

    def _labelled_coefficients(self, coeffs: Tensor, labels: Tensor | None, lightness: Tensor | None
                               ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, Tensor] | None]:
        """The head's coefficients (B, 12 + D, h, w), labels (B, H, W) or None and the guide's lightness
        (B, 1, H, W) (``lightness_bins``; else None) -> (the coefficients after the pooling options and
        ``thing_chroma``, same shape and dtype; with edge pooling per pixel, what :meth:`_edge_field` takes:
        float32 affine coefficients, edge cells, class table and labels, else None)."""
        if labels is None:
            return coeffs, None
        options = {"whole_classes": self.whole_classes, "lightness": lightness, "bins": self.lightness_bins,
                   "wide": self.wide_edge}
        if self.edge_pixels:
            pooled, edge, table = edge_pooled_coefficients(coeffs, labels, self.pooling, self.num_classes,
                                                           self.edge_pooling, **options)
            if self.thing_chroma != "decoder":
                pooled, table = thing_cells(pooled, labels, self.thing_chroma), thing_columns(table, self.thing_chroma)
            return pooled.to(coeffs.dtype), (pooled[:, :AFFINE_COEFFS], edge, table[:, :AFFINE_COEFFS], labels)
        out = coeffs
        if self.pooling > 0 or self.edge_pooling > 0 or self.whole_classes:  # float32, also under autocast
            out = class_pooled_coefficients(coeffs, labels, self.pooling, self.num_classes, self.edge_pooling,
                                            **options)
        if self.thing_chroma != "decoder":
            with torch.autocast(coeffs.device.type, enabled=False):
                out = thing_cells(out.float(), labels, self.thing_chroma)
        return out.to(coeffs.dtype), None

    def forward(self, content: Tensor, style: Tensor, guide: Tensor, style_map: Tensor | None = None,
                detail_noise: Tensor | None = None, *, labels: Tensor | None = None) -> Tensor:
        """content (B, C, h, w), style (B, S), guide (B, 3, H, W), style_map (B, Dv, h, w), detail_noise
        (B, 1, H, W) or None, labels (B, H, W) class ids (for the coefficient pooling and the detail path's class
        means) or None -> (B, 3, H, W)."""
        return self.render(content, style, guide, style_map, detail_noise, labels=labels)[0]

    def render(self, content: Tensor, style: Tensor, guide: Tensor, style_map: Tensor | None = None,
               detail_noise: Tensor | None = None, *, labels: Tensor | None = None,
               marking_weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """As :meth:`forward`, also returning the coefficient field it applied: -> image (B, 3, H, W),
        coefficients (B, 12 + D, h, w) at work resolution (after the pooling). ``marking_weight`` (B, 1, H, W):
        where the colour map keeps the guide's chroma (:func:`~sim2real.translator.markings.kept_guide_chroma`,
        before the detail path and the edge clamp)."""
        x = content
        if style_map is not None and self.style_map_proj is not None and style_map.shape[1] > 0:
            x = x + self.style_map_proj(style_map)
        latent = self.mlp(style)
        for block in self.res:
            x = block(x, latent)
        for conv in self.ups:
            x = F.leaky_relu(conv(F.interpolate(x, scale_factor=2.0, mode="nearest"), latent), 0.2)
        lightness = luma(guide) if self.lightness_bins and labels is not None else None
        coeffs, edge_inputs = self._labelled_coefficients(self.head(x), labels, lightness)
        detail, means = (self.detail(guide, coeffs[:, AFFINE_COEFFS:], detail_noise, labels)
                         if self.detail is not None else (None, None))
        if detail is not None and self.detail_gain != 1.0:  # linear in r: its class means scale alike
            detail, means = detail * self.detail_gain, None if means is None else means * self.detail_gain
        pixel_means = None
        if edge_inputs is None:
            out = upsampled_affine_colour(coeffs[:, :AFFINE_COEFFS], guide)
            if means is not None and labels is not None:  # class means without the edge field (edge_pixels off)
                pixel_means = coefficients_by_label(means, labels)
        else:
            columns, pixel_means = self._edge_field(*edge_inputs, means, lightness=lightness)
            out = column_affine_colour(columns, guide)
        if marking_weight is not None:
            out = kept_guide_chroma(out, guide, marking_weight)
        if pixel_means is not None and detail is not None:  # class_box_field: its high-pass after the lookup
            detail = self._class_box(detail, pixel_means)
        if self.edge_clamp and labels is not None:
            out = edge_clamped(out, detail, labels, self.edge_clamp)
        elif detail is not None:
            out = out + detail
        if self.clamp:
            return (out.clamp_(-1.0, 1.0) if inference_fast_path(out) else out.clamp(-1.0, 1.0)), coeffs
        return (out.tanh_() if inference_fast_path(out) else torch.tanh(out)), coeffs


def _decoder(cfg: GeneratorConfig, domain: str, channels: list[int], value_dim: int, *, body_padding: str,
             padding: str) -> Decoder:
    """The decoder of ``domain``: the pooling options (coefficient pooling, edge pooling, wide edge pooling, edge
    pixels) act in the target decoder only, so the source decoder's detail path takes the box for
    ``class_box_field``."""
    target = domain == "target"
    return Decoder(channels, cfg.num_dec_res, cfg.style_dim, cfg.style_mlp_dim, value_dim,
                   padding_mode=body_padding, detail_padding_mode=padding, detail_channels=cfg.detail_channels,
                   detail_width=cfg.detail_width, detail_highpass=2 * cfg.work_scale + 1 if cfg.detail_highpass else 0,
                   identity_start=cfg.identity_start, pooling=cfg.coefficient_pooling if target else 0.0,
                   num_classes=cfg.num_classes, edge_pooling=cfg.coefficient_edge_pooling if target else 0,
                   detail_mean=cfg.detail_mean if target or cfg.detail_mean != "class_box_field" else "box",
                   edge_pixels=cfg.coefficient_edge_pixels and target,
                   thing_chroma=cfg.decoder_thing_chroma if target else "decoder",
                   whole_classes=tuple(TRAIN_ID[n] for n in cfg.coefficient_whole_classes) if target else (),
                   edge_clamp=cfg.edge_clamp if target else 0,
                   lightness_bins=cfg.coefficient_lightness_bins if target else 0,
                   detail_gain=cfg.detail_gain if target else 1.0,
                   wide_edge=WideEdge(tuple(TRAIN_ID[n] for n in cfg.coefficient_wide_edge_classes),
                                      cfg.coefficient_wide_edge_pooling) if target else NO_WIDE_EDGE)


class TranslatorGenerator(nn.Module):
    """Source <-> target generator; ``forward = translate`` (the source -> target inference path).

    Buffers beyond the weights: ``style_mean`` (2, S), the EMA of encoded styles per domain (row ``DOMAINS[name]``;
    see :meth:`update_style_mean`), and the memory's keys / values.

    Args:
        cfg: the :class:`GeneratorConfig`; kept as ``self.cfg`` (checkpoints store ``cfg.to_dict()``).
    """

    style_mean: Tensor

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        if not isinstance(cfg, GeneratorConfig):
            raise ConfigError(f"TranslatorGenerator needs a GeneratorConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        chans = [cfg.channels_at(i) for i in range(cfg.num_downsamples + 1)]
        pm, body_pm = cfg.padding_mode, cfg.body_padding_mode or cfg.padding_mode
        per_cell = cfg.label_resolution == "work"  # stems centred on the pixel each work cell samples
        self.stems = nn.ModuleDict({
            "source": LabelStem(cfg.num_classes, cfg.label_embed_dim, chans[0], cfg.work_scale, padding_mode=pm,
                                label_resolution=cfg.label_resolution),
            "target": RGBStem(chans[0], cfg.work_scale, padding_mode=pm, cell_centred=per_cell),
        })
        self.content_body = ContentBody(chans, cfg.num_enc_res, padding_mode=body_pm)
        self.instance_branch = (
            InstanceBranch(cfg.content_channels, cfg.instance_channels, cfg.roi_size, cfg.roi_sampling_ratio,
                           stride=cfg.stride, max_instances=cfg.max_instances, padding_mode=pm,
                           label_stride=cfg.work_scale if cfg.label_resolution == "work" else 1)
            if cfg.use_instance_branch else None
        )
        value_dim = cfg.memory_value_dim if cfg.use_memory else 0
        self.memory = (
            ClassStyleMemory(cfg.num_classes, cfg.memory_slots, cfg.memory_key_dim, cfg.memory_value_dim,
                             len(DOMAINS), momentum=cfg.memory_momentum,
                             temperature=cfg.memory_temperature)
            if cfg.use_memory else None
        )
        self.memory_query = nn.Conv2d(cfg.content_channels, cfg.memory_key_dim, 1) if cfg.use_memory else None
        self.style_encoders = nn.ModuleDict({
            d: StyleEncoder(cfg.style_channels, cfg.style_dim, value_dim, cfg.work_scale,
                            cfg.num_downsamples, padding_mode=pm, cell_centred=per_cell)
            for d in DOMAINS
        })
        self.decoders = nn.ModuleDict({d: _decoder(cfg, d, chans[::-1], value_dim, body_padding=body_pm, padding=pm)
                                       for d in DOMAINS})
        self.camera = CameraModel(len(DOMAINS), cfg.camera_knots, cfg.camera_gamma) if cfg.use_camera else None
        self.colour_prior = (ClassColourPrior(cfg.colour_prior_per_frame, cfg.colour_prior_pooled_share,
                                              thing_chroma=cfg.colour_prior_thing_chroma,
                                              marking_ids=tuple(TRAIN_ID[n] for n in cfg.marking_chroma_classes))
                             if cfg.use_colour_prior else None)
        self.register_buffer("style_mean", torch.zeros(len(DOMAINS), cfg.style_dim))
        if cfg.target_styles:  # one EMA mean style per named target dataset (absent in older checkpoints)
            self.register_buffer("target_style_means", torch.zeros(len(cfg.target_styles), cfg.style_dim))

    # ------------------------------------------------------------------------------------------ checks
    def check_inputs(self, rgb: Tensor, semantic: Tensor | None = None, instance: Tensor | None = None) -> None:
        """Raise a clear error unless rgb is (B, 3, H, W) with H, W multiples of ``cfg.stride`` and the
        label maps are (B, H, W) integer tensors.

        Raises:
            ConfigError: wrong image rank / channels or size not a multiple of the stride.
            LabelError: label maps of the wrong shape or dtype.
        """
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ConfigError(f"rgb must be (B, 3, H, W), got shape {tuple(rgb.shape)}")
        B, _, H, W = rgb.shape
        s = self.cfg.stride
        if H % s or W % s:
            raise ConfigError(
                f"input size {H}x{W} (HxW) is not a multiple of the generator stride {s} "
                f"(preset {self.cfg.name!r}); pad or resize to e.g. {-(-H // s) * s}x{-(-W // s) * s}"
            )
        for name, labels in (("semantic", semantic), ("instance", instance)):
            if labels is None:
                continue
            if tuple(labels.shape) != (B, H, W):
                raise LabelError(f"{name} must be (B, H, W) = {(B, H, W)}, got {tuple(labels.shape)}")
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise LabelError(f"{name} must be an integer tensor, got {labels.dtype}")

    # ----------------------------------------------------------------------------------------- content
    def encode_content(
        self, rgb: Tensor, domain: str, semantic: Tensor | None = None, instance: Tensor | None = None
    ) -> ContentCode:
        """Content code of ``rgb`` (B, 3, H, W) seen as an image of ``domain``.

        The "source" stem consumes ``semantic`` / ``instance`` (labels absent when None; in training mode
        each sample is dropped to "absent" with probability ``cfg.label_dropout``); the "target" stem is
        RGB only. In both domains a given ``instance`` map drives the instance branch and a given
        ``semantic`` map is carried in the code for the memory read in :meth:`decode`.
        Returns a :class:`ContentCode` with features at (B, C, H / stride, W / stride).
        """
        idx = domain_index(domain)
        self.check_inputs(rgb, semantic, instance)
        if idx == DOMAINS["source"]:
            drop = None
            if self.training and semantic is not None and self.cfg.label_dropout > 0:
                drop = torch.rand(rgb.shape[0], device=rgb.device) < self.cfg.label_dropout
            x = self.stems["source"](rgb, semantic, instance, drop)
        else:
            x = self.stems["target"](rgb)
        features = self.content_body(x)
        target_guide = marking = None
        if idx == DOMAINS["source"] and self.colour_prior is not None and semantic is not None:
            target_guide, marking = self.colour_prior.forward_with_markings(rgb, semantic)
        if self.instance_branch is None or instance is None:
            return ContentCode(global_features=features, guide=rgb, semantic=semantic, target_guide=target_guide,
                               marking_weight=marking)
        fusion = self.instance_branch(features, instance)
        return ContentCode(
            global_features=features, guide=rgb, instance_delta=fusion.delta, semantic=semantic,
            instances=fusion.instances, instance_masks=fusion.masks, target_guide=target_guide,
            marking_weight=marking,
        )

    # ------------------------------------------------------------------------------------------- style
    def encode_style_and_values(self, rgb: Tensor, domain: str) -> tuple[Tensor, Tensor]:
        """(B, 3, H, W) -> (global style (B, S), local value map (B, Dv, H / stride, W / stride)).

        The value map feeds :meth:`update_memory` and, as ``style_map``, self-reconstruction decodes;
        it has 0 channels when ``cfg.use_memory`` is False (decode then ignores it).
        """
        domain_index(domain)
        self.check_inputs(rgb)
        return self.style_encoders[domain](rgb)

    def encode_style(self, rgb: Tensor, domain: str) -> Tensor:
        """Global style (attribute) code: (B, 3, H, W) -> (B, style_dim)."""
        return self.encode_style_and_values(rgb, domain)[0]

    def mean_style(self, domain: str, batch: int) -> Tensor:
        """The EMA mean style of ``domain`` repeated: -> (batch, style_dim)."""
        return self.style_mean[domain_index(domain)].unsqueeze(0).expand(batch, -1)

    @torch.no_grad()
    def update_style_mean(self, style: Tensor, domain: str, reduce: Callable[[Tensor], Tensor] | None = None) -> None:
        """EMA of encoded styles (B, S): mean <- m * mean + (1 - m) * style.mean(0), m = cfg.style_momentum.

        ``reduce`` (data parallel): sums a (S + 1,) tensor [sum of styles, count] over the replicas, so the
        mean is over every replica's batch and the buffer stays identical on all of them.
        """
        row = self.style_mean[domain_index(domain)]
        style = style.detach().float()
        total = torch.cat([style.sum(0), style.new_full((1,), style.shape[0])])
        if reduce is not None:
            total = reduce(total)
        m = self.cfg.style_momentum
        row.mul_(m).add_(total[:-1] / total[-1], alpha=1.0 - m)

    # ------------------------------------------------------------------------------------------ memory
    def memory_queries(self, content: ContentCode) -> Tensor:
        """L2-normalised memory queries: -> (B, Dk, h, w). Raises ConfigError without a memory."""
        if self.memory_query is None:
            raise ConfigError("this generator has no class-wise memory (cfg.use_memory=False)")
        return F.normalize(self.memory_query(content.features), dim=1)

    def read_memory(self, content: ContentCode, domain: str) -> Tensor | None:
        """Class-wise style of ``domain`` for every content cell: -> (B, Dv, h, w); None when the generator
        has no memory or the code carries no labels."""
        if self.memory is None or content.semantic is None:
            return None
        return self.memory.read(self.memory_queries(content), content.semantic, domain_index(domain))

    @torch.no_grad()
    def update_memory(
        self, content: ContentCode, values: Tensor, domain: str, reduce: Callable[[Tensor], Tensor] | None = None
    ) -> None:
        """Moving-average memory update from a labelled content code and the same image's value map
        (B, Dv, h, w) from :meth:`encode_style_and_values`. Target frames need (pseudo) labels in
        ``content.semantic``; unlabelled pixels (255) are skipped. ``reduce``: see ClassStyleMemory.update.

        Runs in float32 with autocast off, whatever the dtype of a forward made under autocast: the memory
        buffers and the query conv's weights are float32, and the update is state, not a gradient path.
        """
        if self.memory is None or self.memory_query is None or content.semantic is None:
            return
        with torch.autocast(content.features.device.type, enabled=False):
            features = content.features.to(self.memory_query.weight.dtype)
            queries = F.normalize(self.memory_query(features), dim=1)
        self.memory.update(queries, values, content.semantic, domain_index(domain), reduce=reduce)

    def memory_contrastive_loss(self, content: ContentCode) -> Tensor:
        """MGUIT InfoNCE of the content queries against the memory keys (see ClassStyleMemory)."""
        if self.memory is None or content.semantic is None:
            return content.features.sum() * 0.0
        return self.memory.contrastive_loss(self.memory_queries(content), content.semantic)

    # ------------------------------------------------------------------------------------------ decode
    def decode(
        self, content: ContentCode, style: Tensor, domain: str, style_map: Tensor | None = None, *,
        noise: Tensor | None = None, frame_box: Tensor | None = None, camera: bool = True,
    ) -> Tensor:
        """Render ``content`` in ``domain`` with global ``style`` (B, S): -> (B, 3, H, W) in [-1, 1].

        ``style_map`` (B, Dv, h, w): class-wise local style; when None it is read from the memory (values of
        ``domain``) if the code carries labels. Pass the image's own value map for within-domain reconstruction.
        ``noise`` (B, 4, H, W) standard normal: plane 0 drives the detail path, planes 1-3 the camera's sensor
        noise; None = the mean output (no noise). ``frame_box`` (B, 4): where the image lies in its full frame
        (normalised x0, y0, x1, y1; None = the whole frame), for the camera's position-dependent effects.
        ``camera=False`` skips the camera model: for reconstructing a real frame from its own content, which
        already carries its camera's effects (applying them again would teach the camera to do nothing).
        """
        return self.decode_with_coefficients(content, style, domain, style_map, noise=noise, frame_box=frame_box,
                                             camera=camera)[0]

    def decode_with_coefficients(
        self, content: ContentCode, style: Tensor, domain: str, style_map: Tensor | None = None, *,
        noise: Tensor | None = None, frame_box: Tensor | None = None, camera: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """:meth:`decode`, also returning the decoder's coefficient field (:meth:`Decoder.render`): -> image
        (B, 3, H, W), coefficients (B, 12 + D, h, w)."""
        index = domain_index(domain)
        if style.dim() != 2 or style.shape != (content.guide.shape[0], self.cfg.style_dim):
            raise ConfigError(f"style must be (B, {self.cfg.style_dim}) with B = {content.guide.shape[0]}, "
                              f"got {tuple(style.shape)}")
        if style_map is None:
            style_map = self.read_memory(content, domain)
        image, coefficients = self.decoders[domain].render(
            content.features, style, content.guide_for(domain), style_map, None if noise is None else noise[:, :1],
            labels=content.semantic, marking_weight=content.marking_weight if domain == "target" else None)
        if self.camera is None or not camera:
            return image, coefficients
        return self.camera(image, index, frame_box, None if noise is None else noise[:, 1:4]), coefficients

    def translate(
        self, rgb: Tensor, semantic: Tensor | None, instance: Tensor | None, style: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Source -> target inference path: (B, 3, H, W) [-1, 1], labels (B, H, W) -> (B, 3, H, W) [-1, 1].

        ``style`` (B, S) defaults to the EMA mean target style; ``noise`` (B, 4, H, W) samples the model's random
        part (detail path and camera noise; None = the mean output). H and W must be multiples of
        ``cfg.stride``.
        """
        content = self.encode_content(rgb, "source", semantic, instance)
        if style is None:
            style = self.mean_style("target", rgb.shape[0]).to(rgb.dtype)
        return self.decode(content, style, "target", noise=noise)

    def forward(
        self, rgb: Tensor, semantic: Tensor | None, instance: Tensor | None, style: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Same as :meth:`translate`."""
        return self.translate(rgb, semantic, instance, style, noise)
