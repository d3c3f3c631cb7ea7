"""Typed generator configuration (nanoGPT ``GPTConfig`` style) and the named presets.

A :class:`GeneratorConfig` is built once, handed explicitly to :class:`~sim2real.translator.generator.
TranslatorGenerator`, and saved in checkpoints via :meth:`GeneratorConfig.to_dict`. Presets live in the
explicit registry :data:`GENERATOR_PRESETS`; :func:`get_generator_config` fails loudly on unknown names.

Resolution bookkeeping: the network runs at ``1 / work_scale`` of the input ("work resolution") and the
content code at ``1 / stride`` with ``stride = work_scale * 2 ** num_downsamples``. Input height and width
must be multiples of ``stride`` (640x360, 1280x720 and 1920x1080 are multiples of 8 but not of 16).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Final

from sim2real.core.errors import ConfigError
from sim2real.core.labels import CLASS_NAMES, NUM_CLASSES, THING_CLASSES, TRAIN_ID
from sim2real.translator.layers import PADDING_MODES

__all__ = [
    "DETAIL_MEANS",
    "GENERATOR_PRESETS",
    "INT_BOUNDS",
    "LABEL_RESOLUTIONS",
    "PADDING_MODES",
    "THING_CHROMA_SOURCES",
    "VALID_WORK_SCALES",
    "GeneratorConfig",
    "get_generator_config",
]

#: work_scale values the input stem supports (stride-``work_scale`` conv with kernel ``2*s - 1`` or 7).
VALID_WORK_SCALES: Final = (1, 2, 4)

#: where the source stem and the instance branch read the label maps: "input" = every input pixel (the
#: stem convolves full-resolution label channels; instance boxes and masks count every pixel); "work" =
#: the label at the centre pixel of each work-resolution cell (nearest downsampling by ``work_scale``: one
#: embedding lookup per cell, and boxes / masks from the sampled map, so box edges are multiples of
#: ``work_scale``; the stems are then centred on that pixel). With ``work_scale`` 1 the instance branch sees
#: the same map either way, but "work" still feeds the labels through a 1x1 projection, not the stem conv.
LABEL_RESOLUTIONS: Final = ("input", "work")

#: what the detail path's output is made zero-mean over when ``detail_highpass`` is on: "box" = a box of
#: 2 ``work_scale`` + 1 pixels around each pixel; "class" = the frame's pixels of the pixel's label; "class_box" =
#: the label's mean first, then the box's; "class_box_field" = the same as "class_box", with each pixel's class mean
#: read in the edge-pixel field's lookup instead of a gather of its own.
DETAIL_MEANS: Final = ("box", "class", "class_box", "class_box_field")
#: ``GeneratorConfig.decoder_thing_chroma``: where thing classes' chroma comes from
#: (:mod:`~sim2real.translator.thing_colour_maps`).
THING_CHROMA_SOURCES: Final = ("decoder", "untinted", "guide")


#: inclusive bounds of every integer field. Checked before anything is built: a checkpoint is a file from
#: elsewhere, and its config decides what is allocated (the widths are generous: ``full`` uses at most 128).
INT_BOUNDS: Final[dict[str, tuple[int, int]]] = {
    "num_classes": (1, 255),  # train ids are uint8 with 255 = ignore
    "max_instances": (1, 256),
    "work_scale": (1, 4),
    "num_downsamples": (0, 5),
    "base_channels": (1, 1024),
    "content_channels": (1, 1024),
    "num_enc_res": (0, 16),
    "num_dec_res": (0, 16),
    "label_embed_dim": (1, 256),
    "style_dim": (1, 512),
    "style_channels": (1, 1024),
    "style_mlp_dim": (1, 1024),
    "instance_channels": (1, 1024),
    "roi_size": (1, 32),
    "roi_sampling_ratio": (1, 8),
    "memory_slots": (1, 64),
    "memory_key_dim": (1, 512),
    "memory_value_dim": (1, 512),
    "detail_channels": (0, 64),
    "detail_width": (1, 256),
    "camera_knots": (2, 64),
    "coefficient_edge_pooling": (0, 8),
    "edge_clamp": (0, 8),
    "coefficient_lightness_bins": (0, 16),
    "coefficient_wide_edge_pooling": (0, 16),
}


#: GeneratorConfig's lists of class names (``core.labels.CLASS_NAMES``): tuples in the config, lists in its dict.
CLASS_NAME_FIELDS: Final = ("coefficient_wide_edge_classes", "coefficient_whole_classes", "marking_chroma_classes")

#: float fields of GeneratorConfig: (name, low, high, low end open).
_FLOAT_BOUNDS: Final = (("label_dropout", 0.0, 1.0, False), ("memory_momentum", 0.0, 1.0, False),
                        ("style_momentum", 0.0, 1.0, False), ("memory_temperature", 1e-3, 100.0, False),
                        ("colour_prior_pooled_share", 0.0, 1.0, True), ("coefficient_pooling", 0.0, 1.0, False),
                        ("camera_gamma", 1.0, 3.0, False), ("detail_gain", 0.0, 4.0, False))


def _check_wide_edge(cfg: GeneratorConfig) -> None:
    """ConfigError unless wide edge pooling's classes and radius come together, widen edge pooling and name no
    whole class."""
    if bool(cfg.coefficient_wide_edge_classes) != bool(cfg.coefficient_wide_edge_pooling):
        raise ConfigError("GeneratorConfig.coefficient_wide_edge_classes and coefficient_wide_edge_pooling go together "
                          f"(classes and their radius), got {list(cfg.coefficient_wide_edge_classes)} and "
                          f"{cfg.coefficient_wide_edge_pooling}")
    if cfg.coefficient_wide_edge_pooling and not 0 < cfg.coefficient_edge_pooling < cfg.coefficient_wide_edge_pooling:
        raise ConfigError(f"GeneratorConfig.coefficient_wide_edge_pooling ({cfg.coefficient_wide_edge_pooling}) widens "
                          f"edge pooling: it needs coefficient_edge_pooling > 0 and below it, got "
                          f"{cfg.coefficient_edge_pooling}")
    both = sorted(set(cfg.coefficient_wide_edge_classes) & set(cfg.coefficient_whole_classes))
    if both:
        raise ConfigError(f"GeneratorConfig.coefficient_wide_edge_classes {both} are in coefficient_whole_classes too, "
                          "whose cells take their class mean everywhere: list them in one of the two")


def _check_option_needs(cfg: GeneratorConfig) -> None:
    """ConfigError for an option of ``cfg`` that only means something with another one, set without it."""
    if cfg.detail_gain != 1.0 and cfg.detail_channels == 0:
        raise ConfigError("GeneratorConfig.detail_gain scales the detail path's output: it needs detail_channels > 0")
    if cfg.detail_highpass and cfg.detail_channels == 0:
        raise ConfigError("GeneratorConfig.detail_highpass needs a detail path (detail_channels > 0)")
    if cfg.detail_mean != "box" and not cfg.detail_highpass:
        raise ConfigError(f"GeneratorConfig.detail_mean {cfg.detail_mean!r} names the mean detail_highpass takes "
                          "off: it needs detail_highpass: true")
    if cfg.detail_mean == "class_box_field" and not cfg.coefficient_edge_pixels:
        raise ConfigError("GeneratorConfig.detail_mean class_box_field reads its class means in the edge-pixel "
                          "field's lookup: it needs coefficient_edge_pixels: true")
    if cfg.coefficient_edge_pixels and not cfg.coefficient_edge_pooling:
        raise ConfigError("GeneratorConfig.coefficient_edge_pixels is edge pooling per pixel: it needs "
                          "coefficient_edge_pooling > 0")
    _check_wide_edge(cfg)
    if cfg.coefficient_lightness_bins == 1:
        raise ConfigError("GeneratorConfig.coefficient_lightness_bins must be 0 (off) or >= 2, got 1")
    if cfg.coefficient_lightness_bins and not (cfg.coefficient_pooling or cfg.coefficient_edge_pooling
                                               or cfg.coefficient_whole_classes):
        raise ConfigError("GeneratorConfig.coefficient_lightness_bins bins the pooling targets: it needs "
                          "coefficient_pooling, coefficient_edge_pooling or coefficient_whole_classes")
    if cfg.colour_prior_per_frame and not cfg.use_colour_prior:
        raise ConfigError("GeneratorConfig.colour_prior_per_frame needs use_colour_prior")
    if cfg.marking_chroma_classes and not cfg.colour_prior_per_frame:
        raise ConfigError("GeneratorConfig.marking_chroma_classes weighs each pixel by its distance from its class's "
                          "frame mean: it needs use_colour_prior and colour_prior_per_frame")
    things = [n for n in cfg.marking_chroma_classes if TRAIN_ID[n] in THING_CLASSES]
    if things:
        raise ConfigError(f"GeneratorConfig.marking_chroma_classes must name stuff classes (thing classes keep their "
                          f"chroma with colour_prior_thing_chroma and decoder_thing_chroma), got {things}")


def _class_names(cfg: GeneratorConfig, field: str) -> tuple[str, ...]:
    """The class-name list ``field`` of ``cfg`` as a tuple; ConfigError unless distinct names of classes below
    ``num_classes``."""
    names = getattr(cfg, field)
    if isinstance(names, str) or not isinstance(names, list | tuple):
        raise ConfigError(f"GeneratorConfig.{field} must be a list of class names, got {names!r}")
    unknown = [n for n in names if n not in CLASS_NAMES or TRAIN_ID[n] >= cfg.num_classes]
    if unknown or len(set(names)) != len(names):
        raise ConfigError(f"GeneratorConfig.{field} must be distinct names of "
                          f"{list(CLASS_NAMES)} below num_classes, got {list(names)!r}")
    return tuple(names)


@dataclass(frozen=True)
class GeneratorConfig:
    """Every dimension of :class:`TranslatorGenerator`; see docs/translator.md for the data flow.

    Every field is checked on construction: types, :data:`INT_BOUNDS` for the integers, [0, 1] for the
    momenta and the dropout, the registries for the strings (ConfigError naming the field).

    Attributes:
        name: preset name (stored in checkpoints); "custom" for hand-made configs.
        num_classes: semantic classes (train ids 0..num_classes-1; anything else is "ignore").
        max_instances: N, the instance cap per frame (the N largest instances by pixel area are kept).
        work_scale: input downscale of the input stem (1, 2 or 4); detail is restored by the affine head.
        num_downsamples: stride-2 stages between work resolution and the content code.
        base_channels: channels at work resolution (doubled per downsample, capped by content_channels).
        content_channels: C, channels of the content code.
        num_enc_res: residual blocks (instance norm) at the end of the shared content encoder.
        num_dec_res: style-modulated residual blocks at the start of each decoder.
        label_embed_dim: E, width of the learned semantic embedding fed to the source stem.
        label_dropout: training-only probability that a source sample is shown "labels absent".
        style_dim: S, global style (attribute) code size.
        style_channels: width of the style encoders.
        style_mlp_dim: width of the style -> modulation MLP of the decoders.
        use_instance_branch: build the DUNIT instance branch.
        instance_channels: Ci, width of the instance encoder on RoI crops.
        roi_size: R, RoIAlign output size (R x R crops).
        roi_sampling_ratio: bilinear samples per RoI bin side (must be >= 1: fixed, export friendly).
        use_memory: build the MGUIT class-wise style memory.
        memory_slots: M, slots per class.
        memory_key_dim: Dk, key (query) size.
        memory_value_dim: Dv, value size.
        memory_momentum: moving-average momentum of memory updates (new = m * old + (1 - m) * mean).
        memory_temperature: softmax temperature of memory reads and the contrastive loss.
        style_momentum: momentum of the EMA mean-style buffers used when ``translate(style=None)``.
        padding_mode: padding of every generator convolution, one of :data:`PADDING_MODES` ("zeros" is
            fused into the convolution; "replicate" costs a pass per layer but keeps frame borders bright).
        body_padding_mode: padding of the content body's and the decoders' convolutions (below full resolution
            when ``work_scale`` > 1), one of :data:`PADDING_MODES`; None = ``padding_mode``. The stems, style
            encoders, instance encoder and detail path keep ``padding_mode``.
        label_resolution: one of :data:`LABEL_RESOLUTIONS` (see there).
        detail_channels: D, extra decoder outputs at work resolution that condition the full-resolution detail
            path (0 = no detail path: the affine colour head alone, as before).
        detail_width: width of the detail path's full-resolution convolution.
        detail_highpass: take the detail path's local mean (a box of 2 ``work_scale`` + 1 pixels) off its output,
            so that it adds only texture, grain and edges and no colour shift: without it the shipped model's
            detail output is ~99 % low-frequency energy, a second colour map beside the affine head
            (docs/translator.md, "Detail path"). Needs ``detail_channels`` > 0.
        detail_mean: which mean ``detail_highpass`` takes off, one of :data:`DETAIL_MEANS`. "box": the local mean (a
            step of the output between two classes turns into a band of + and - on either side of the edge: a
            halo). "class": at every pixel the mean over the frame's pixels of its label, sampled at the work
            cells' centres (:func:`~sim2real.translator.coefficient_pooling.class_mean_removed`): no band, but
            what varies slowly inside a class passes (a second colour map, which a model trained with the box
            never had shaped). "class_box": the class means, then the box: the box's output inside each class,
            without the steps' bands. Without labels (decoding a real frame) the class mean is the frame mean.
            "class_box_field": class_box's output, each pixel's class mean read in the edge-pixel field's lookup
            (needs ``coefficient_edge_pixels``; the target decoder only; the source decoder takes the box) instead
            of a gather of its own. Changes no weight.
        detail_gain: g in [0, 4]: the target decoder's detail output (and its class means) times g: the texture
            the translate path adds; 1 = as trained, 0 = none. Changes no weight (docs/translator.md "Detail
            gain").
        edge_clamp: r >= 0; in the target decoder, with labels, each pixel within r pixels of another label that
            has an interior pixel of its own label within 2r keeps the luma of its output (colour map + detail)
            inside the range of the colour map's luma over the interior pixels within 2r, its chroma unchanged
            (:mod:`~sim2real.translator.edge_clamp`): against light and dark outlines along label edges. 0 = off.
            Changes no weight.
        use_camera: a learned camera model per domain after the decoder (:mod:`~sim2real.translator.camera`).
        camera_knots: knots of the camera's tone curve.
        camera_gamma: the camera's optics and noise act on u^gamma (u the display value in [0, 1]): 1 = on display
            values (as every model before it), 2.2 = on approximately linear light, where a lens blurs and
            vignettes; in [1, 3].
        target_styles: names of the target datasets whose mean styles are kept apart (e.g. ("cityscapes",
            "camvid")); ``Translator(style=name)`` renders in one of them. Empty = one mean target style.
        use_colour_prior: a class-wise Lab colour map applied to the source frame before the target decoder
            (:mod:`~sim2real.translator.colour_prior`; fitted by the trainer at the start of a run); the
            decoder then learns the residual.
        colour_prior_per_frame: the prior's source statistics are each frame's own per class, shrunk toward
            the pooled ones (adapts to simulators whose colours differ from the training world's); False = one
            fixed map per class.
        colour_prior_pooled_share: in the per-frame prior, the pooled statistics weigh as this share of the
            frame's pixels in every class, in (0, 1].
        colour_prior_thing_chroma: the prior maps only the lightness of thing classes (person ... bicycle) and
            keeps their own chroma (Lab a, b), so a blue bus is not mapped to the real vehicles' mean colour.
        coefficient_pooling: share w in [0, 1] of each of the target decoder's work-resolution cells taken from
            the mean of the cells of its class in the frame (the label at the cell centre; when the code carries
            labels; :mod:`~sim2real.translator.coefficient_pooling`): fewer halos and smears at label edges.
            0 = off.
        coefficient_edge_pooling: r >= 0; the target decoder's class cells within r work cells of another label
            take their class's mean wholly (edge pooling, :mod:`~sim2real.translator.coefficient_pooling`): the
            halos come from those cells. 0 = off.
        coefficient_edge_pixels: edge pooling per pixel (needs ``coefficient_edge_pooling`` > 0): each
            full-resolution pixel takes the edge cells' share of its bilinear upsampling weights from its own
            label's class mean, not from the edge cells' (the other class's, across the edge): the upsampling
            carries no class's colour map across a label edge. Changes no weight.
        decoder_thing_chroma: one of :data:`THING_CHROMA_SOURCES`: where the target decoder's colour maps of thing
            classes (person ... bicycle) take their chroma from, with labels
            (:mod:`~sim2real.translator.thing_colour_maps`; each keeps the map's lightness). "decoder": the maps as
            they are; "untinted": a grey guide stays grey and a coloured one takes the map of its own chroma;
            "guide": the guide's chroma unchanged (with ``colour_prior_thing_chroma``, the source instance's own;
            exact for the colour map, before the output's tanh, detail path and camera). Changes no weight.
        coefficient_wide_edge_classes, coefficient_wide_edge_pooling: names of classes and R > r: their cells within
            R work cells of another label take their class mean wholly (wide edge pooling,
            :mod:`~sim2real.translator.coefficient_pooling`), e.g. ("building",) and 6. Changes no weight.
        coefficient_whole_classes: names of classes (``core.labels.CLASS_NAMES``) whose cells in the target decoder
            take their class mean wholly, with labels (:mod:`~sim2real.translator.coefficient_pooling`): one colour
            map per frame for the class (per lightness bin with ``coefficient_lightness_bins``), e.g. ("sky",).
            Changes no weight.
        coefficient_lightness_bins: L >= 2: the pooling targets above are class means per bin of the guide's
            lightness (:mod:`~sim2real.translator.lightness_bins`): a class's pooled maps follow lightness, so a
            black truck underside is not handed a grey truck's map at its edge. 0 = off. Changes no weight.
        marking_chroma_classes: names of stuff classes whose painted markings keep their chroma (a yellow centre
            line on the road stays yellow): pixels far in Lab chroma from their class's frame mean keep their
            deviation from it through the per-frame prior, and the target decoder keeps their guide chroma
            (:mod:`~sim2real.translator.markings`). Needs ``colour_prior_per_frame``. Changes no weight.
        identity_start: a fresh decoder returns its guide (with the colour prior: the prior's map) unchanged: its
            head's colour-coefficient weights start at zero (bias: the identity map) and its output is clamped to
            [-1, 1] instead of squashed by tanh. False = tanh and small random head weights, as every model before
            it: a fresh model then starts away from its prior (on the learnability check 25.09 dB against 30.67
            for its guide through the same camera).
    """

    name: str = "custom"
    num_classes: int = NUM_CLASSES
    max_instances: int = 16
    work_scale: int = 2
    num_downsamples: int = 2
    base_channels: int = 16
    content_channels: int = 64
    num_enc_res: int = 4
    num_dec_res: int = 1
    label_embed_dim: int = 8
    label_dropout: float = 0.3
    style_dim: int = 8
    style_channels: int = 64
    style_mlp_dim: int = 64
    use_instance_branch: bool = True
    instance_channels: int = 32
    roi_size: int = 7
    roi_sampling_ratio: int = 2
    use_memory: bool = True
    memory_slots: int = 4
    memory_key_dim: int = 32
    memory_value_dim: int = 32
    memory_momentum: float = 0.99
    memory_temperature: float = 0.1
    style_momentum: float = 0.99
    padding_mode: str = "replicate"
    body_padding_mode: str | None = None
    label_resolution: str = "input"
    detail_channels: int = 0
    detail_width: int = 8
    detail_highpass: bool = False
    detail_mean: str = "box"
    detail_gain: float = 1.0
    edge_clamp: int = 0
    use_camera: bool = False
    camera_knots: int = 8
    camera_gamma: float = 1.0
    target_styles: tuple[str, ...] = ()
    use_colour_prior: bool = False
    colour_prior_per_frame: bool = False
    colour_prior_pooled_share: float = 0.01
    colour_prior_thing_chroma: bool = False
    coefficient_pooling: float = 0.0
    coefficient_edge_pooling: int = 0
    coefficient_edge_pixels: bool = False
    decoder_thing_chroma: str = "decoder"
    coefficient_wide_edge_classes: tuple[str, ...] = ()
    coefficient_wide_edge_pooling: int = 0
    coefficient_whole_classes: tuple[str, ...] = ()
    coefficient_lightness_bins: int = 0
    marking_chroma_classes: tuple[str, ...] = ()
    identity_start: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 64:
            raise ConfigError(f"GeneratorConfig.name must be a string of 1..64 characters, got {self.name!r}")
        for field, (low, high) in INT_BOUNDS.items():
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"GeneratorConfig.{field} must be an int in [{low}, {high}], got {value!r}")
        self._check_target_styles()
        for field in CLASS_NAME_FIELDS:
            object.__setattr__(self, field, _class_names(self, field))
        for field in ("use_instance_branch", "use_memory", "use_camera", "use_colour_prior",
                      "colour_prior_per_frame", "colour_prior_thing_chroma", "detail_highpass", "identity_start",
                      "coefficient_edge_pixels"):
            if not isinstance(getattr(self, field), bool):
                raise ConfigError(f"GeneratorConfig.{field} must be true or false, got {getattr(self, field)!r}")
        if self.work_scale not in VALID_WORK_SCALES:
            raise ConfigError(
                f"GeneratorConfig.work_scale must be one of {VALID_WORK_SCALES}, got {self.work_scale!r}"
            )
        self._check_choices()
        for field, low, high, open_low in _FLOAT_BOUNDS:
            value = getattr(self, field)
            if (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
                    or value > high or (value <= low if open_low else value < low)):
                raise ConfigError(f"GeneratorConfig.{field} must be in {'(' if open_low else '['}{low:g}, {high:g}], "
                                  f"got {value!r}")
        _check_option_needs(self)
        if self.base_channels > self.content_channels:
            raise ConfigError(
                f"GeneratorConfig.base_channels ({self.base_channels}) must not exceed "
                f"content_channels ({self.content_channels})"
            )

    def _check_choices(self) -> None:
        for field, valid in (("padding_mode", PADDING_MODES), ("label_resolution", LABEL_RESOLUTIONS),
                             ("detail_mean", DETAIL_MEANS), ("decoder_thing_chroma", THING_CHROMA_SOURCES)):
            if getattr(self, field) not in valid:
                raise ConfigError(f"GeneratorConfig.{field} must be one of {list(valid)}, got {getattr(self, field)!r}")
        if self.body_padding_mode is not None and self.body_padding_mode not in PADDING_MODES:
            raise ConfigError(f"GeneratorConfig.body_padding_mode must be null or one of {list(PADDING_MODES)}, "
                              f"got {self.body_padding_mode!r}")

    def _check_target_styles(self) -> None:
        object.__setattr__(self, "target_styles", tuple(self.target_styles))
        names = self.target_styles
        if len(names) > 16 or len(set(names)) != len(names) or not all(
                isinstance(n, str) and 0 < len(n) <= 32 for n in names):
            raise ConfigError(f"GeneratorConfig.target_styles must be at most 16 distinct names of 1..32 characters, "
                              f"got {names!r}")

    @property
    def stride(self) -> int:
        """Input height and width must be multiples of this (content code is at 1 / stride)."""
        return self.work_scale * 2**self.num_downsamples

    def channels_at(self, level: int) -> int:
        """Channels at downsampling ``level`` (0 = work resolution, num_downsamples = content code)."""
        if level == self.num_downsamples:
            return self.content_channels
        return min(self.base_channels * 2**level, self.content_channels)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field (``stride`` is derived, not stored; tuples as lists)."""
        d = dataclasses.asdict(self)
        d["target_styles"] = list(self.target_styles)
        d.update({field: list(getattr(self, field)) for field in CLASS_NAME_FIELDS})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        """Inverse of :meth:`to_dict`. Unknown keys raise :class:`ConfigError` listing the valid ones."""
        if not isinstance(d, dict):
            raise ConfigError(f"GeneratorConfig.from_dict needs a dict, got {type(d).__name__}")
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ConfigError(f"unknown GeneratorConfig field(s) {unknown}; valid fields: {valid}")
        return cls(**d)


#: Explicit preset registry. ``lite``: CPU / embedded, < 2 GMACs per 640x360 frame; the network works at
#: 1/4 of the input (labels sampled there too) and pads with zeros, so at full resolution only the affine colour
#: head, the small detail path and the camera model run (docs/BENCHMARKS.md). ``full``: GPU quality (tens of
#: GMACs at 640x360), every pixel's labels, replicate padding. Both have the detail path (D = 4) and the camera
#: model. Figures: ``python -m sim2real.translator.complexity``.
GENERATOR_PRESETS: Final[dict[str, GeneratorConfig]] = {
    "lite": GeneratorConfig(
        name="lite", work_scale=4, num_downsamples=1, padding_mode="zeros", label_resolution="work",
        detail_channels=4, use_camera=True,
    ),
    "full": GeneratorConfig(
        name="full",
        max_instances=32,
        work_scale=1,
        num_downsamples=2,
        base_channels=32,
        content_channels=128,
        num_enc_res=3,
        num_dec_res=4,
        label_embed_dim=16,
        style_channels=128,
        style_mlp_dim=128,
        instance_channels=64,
        roi_size=8,
        memory_slots=8,
        memory_key_dim=64,
        memory_value_dim=64,
        detail_channels=4,
        use_camera=True,
    ),
}


def get_generator_config(name: str) -> GeneratorConfig:
    """Preset by name; raises :class:`ConfigError` listing :data:`GENERATOR_PRESETS` for unknown names."""
    try:
        return GENERATOR_PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown generator preset {name!r}; valid presets: {sorted(GENERATOR_PRESETS)}"
        ) from None
