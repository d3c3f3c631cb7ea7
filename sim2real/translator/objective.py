"""The translator's training objective: one forward pass, the generator's, discriminators' and critics' losses.

SPADE-style split (``pix2pix_model.compute_generator_loss``): the networks stay loss-free; these functions
take the networks and batches explicitly and return dicts of named loss tensors, ``"total"`` being the
weighted sum that is back-propagated. A trainer step looks like::

    out = translate_batches(gen, aux, src, tgt)                       # one forward of the generator
    g = generator_losses(gen, d_tgt, d_src, aux, src, tgt, weights, content_disc=d_c, outputs=out)
    g["total"].backward(); opt_g.step()
    update_generator_state(gen, out)                                  # memory + EMA styles, no grad
    d = discriminator_losses(gen, d_tgt, d_src, aux, src, tgt, weights, content_disc=d_c, outputs=out)
    d["total"].backward(); opt_d.step()
    a = aux_losses(aux, src); a["total"].backward(); opt_aux.step()   # critics on source ground truth

Directions (see :mod:`sim2real.translator.generator` for the encoder conventions): s->t ``fake_target``,
t->s ``fake_source``, within-domain ``rec_*`` and DRIT cross-cycle ``cycle_*`` (s->t->s, t->s->t).
The discriminators, the content discriminator and the auxiliary critics are used *frozen* inside
:func:`generator_losses` (no parameter gradient, eval mode), so back-propagating ``"total"`` only fills
generator gradients, while the gradient still reaches the generator *through* them.

Real target frames carry no labels. Where labels are needed for them (the projection discriminator's
real / fake-source conditioning, the memory read and update in the target domain) they come from
``TargetBatch.semantic`` when given, else from the frozen segmenter's predictions (pseudo labels; see
:func:`translate_batches`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Final

import torch
from torch import Tensor

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import IGNORE_ID
from sim2real.translator.aux_nets import (
    AuxNets,
    box_class_loss,
    box_head_loss,
    frozen,
    instance_classes,
    jitter_boxes,
    photometric_jitter,
    segmenter_loss,
)
from sim2real.translator.boxes import instance_boxes
from sim2real.translator.discriminator import ContentDiscriminator, MultiScaleDiscriminator
from sim2real.translator.generator import ContentCode, TranslatorGenerator
from sim2real.translator.losses import (
    ADVERSARIAL_LOSSES,
    box_consistency_loss,
    coefficient_anchor_loss,
    content_discriminator_loss,
    content_generator_loss,
    cross_cycle_loss,
    dark_level_loss,
    get_adversarial_loss,
    instance_chroma_loss,
    instance_hue_loss,
    instance_shading_loss,
    kl_loss,
    latent_reconstruction_loss,
    lightness_gain_loss,
    memory_contrastive_loss,
    self_reconstruction_loss,
    semantic_class_weights,
    semantic_consistency_loss,
)
from sim2real.translator.patch_nce import PatchProjector, patch_nce_loss

__all__ = [
    "TERM_WEIGHTS",
    "LossWeights",
    "SourceBatch",
    "TargetBatch",
    "Translations",
    "aux_losses",
    "box_critic_losses",
    "discriminator_losses",
    "generator_losses",
    "pseudo_labels",
    "sample_noise",
    "semantic_critic_loss",
    "translate_batches",
    "translate_one_sided",
    "update_generator_state",
]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator objective (0 switches a term off: it is then neither computed nor reported).

    Defaults follow the papers the terms come from: image reconstructions 10 (MUNIT ``recon_x_w``,
    DRIT ``lambda_rec`` / ``lambda_cc``), latent reconstructions 1 (MUNIT ``recon_s_w``/``recon_c_w``),
    KL 0.01 (DRIT), adversarial and content-adversarial 1.

    Attributes:
        adv: image adversarial loss (both directions).
        cycle: DRIT cross-cycle L1 (s->t->s and t->s->t).
        self_recon: within-domain reconstruction L1.
        latent: content and style re-encoding L1.
        kl: KL of the style codes to N(0, I).
        content_adv: DRIT content-domain confusion.
        memory: MGUIT memory contrastive loss (ignored when the generator has no memory).
        bbox: box preservation on s->t through the frozen box head (L1 + GIoU on jittered proposals).
        bbox_class: the box head's class cross-entropy on s->t, weighted apart from the regression (it used to
            dominate the box term's gradient while the regression, fed exact proposals, had none).
        semantic: anti-flip cross-entropy of the frozen segmenter on s->t against source labels.
        nce: PatchNCE (CUT) between the content features of s->t and of the source (0 = off).
        instance_hue: every source instance keeps its mean colour's hue on s->t (0 = off; measured: see
            docs/translator.md "Instance hue").
        instance_chroma: no source instance's mean colour comes out more colourful than ``instance_chroma_margin``
            above its source's mean chroma on s->t (:func:`~sim2real.translator.losses.instance_chroma_loss`;
            0 = off): grey and white instances stay grey, which the hue term cannot hold.
        instance_chroma_margin: that margin (opponent chroma of images in [-1, 1]).
        lightness_gain: penalises the target decoder's lightness gain on s->t below ``lightness_gain_floor`` in
            every work cell (:func:`~sim2real.translator.losses.lightness_gain_loss`; 0 = off).
        lightness_gain_floor: that floor.
        instance_shading: penalises each source instance's shading gain on s->t (the least-squares slope of its
            output luma on its source luma) below ``instance_shading_floor``
            (:func:`~sim2real.translator.losses.instance_shading_loss`; 0 = off): a dark underside stays dark.
        instance_shading_floor: that floor.
        dark_level: penalises s->t pixels that are dark in the source (luma below ``dark_level_below``) and come
            out more than ``dark_level_margin`` lighter (:func:`~sim2real.translator.losses.dark_level_loss`;
            0 = off): a black underside stays black.
        dark_level_below, dark_level_margin: that threshold and margin (luma of images in [-1, 1]).
        coefficient_anchor: L1 of the target decoder's affine coefficients on s->t to the identity map
            (:func:`~sim2real.translator.losses.coefficient_anchor_loss`; 0 = off): the colours stay the guide's,
            the colour prior's, unless the other terms pay for leaving them.
        small_class_weight: extra CE weight of poles / traffic lights / traffic signs in ``semantic``.
        adversarial_mode: "lsgan" | "hinge" (:data:`sim2real.translator.losses.ADVERSARIAL_LOSSES`).
    """

    adv: float = 1.0
    cycle: float = 10.0
    self_recon: float = 10.0
    latent: float = 1.0
    kl: float = 0.01
    content_adv: float = 1.0
    memory: float = 1.0
    bbox: float = 1.0
    bbox_class: float = 1.0
    semantic: float = 1.0
    nce: float = 0.0
    instance_hue: float = 0.0
    instance_chroma: float = 0.0
    instance_chroma_margin: float = 0.05
    lightness_gain: float = 0.0
    lightness_gain_floor: float = 0.5
    instance_shading: float = 0.0
    instance_shading_floor: float = 0.5
    dark_level: float = 0.0
    dark_level_below: float = -0.6
    dark_level_margin: float = 0.2
    coefficient_anchor: float = 0.0
    small_class_weight: float = 5.0
    adversarial_mode: str = "lsgan"

    def __post_init__(self) -> None:
        if self.adversarial_mode not in ADVERSARIAL_LOSSES:
            raise ConfigError(
                f"unknown adversarial_mode {self.adversarial_mode!r}; valid: {sorted(ADVERSARIAL_LOSSES)}"
            )
        for f in fields(self):
            if f.name in ("adversarial_mode", "dark_level_below"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"LossWeights.{f.name} must be a number >= 0, got {value!r}")
        below = self.dark_level_below
        if isinstance(below, bool) or not isinstance(below, int | float) or not -1 < below <= 1:
            raise ConfigError(f"LossWeights.dark_level_below must be a luma in (-1, 1], got {below!r}")
        if self.small_class_weight <= 0:
            raise ConfigError(f"LossWeights.small_class_weight must be > 0, got {self.small_class_weight}")


#: generator loss term -> the LossWeights field that weights it in "total".
TERM_WEIGHTS: Final[dict[str, str]] = {
    "adv": "adv",
    "self_recon": "self_recon",
    "cycle": "cycle",
    "latent_content": "latent",
    "latent_style": "latent",
    "kl": "kl",
    "content_adv": "content_adv",
    "memory": "memory",
    "bbox": "bbox",
    "bbox_class": "bbox_class",
    "semantic": "semantic",
    "nce": "nce",
    "instance_hue": "instance_hue",
    "instance_chroma": "instance_chroma",
    "lightness_gain": "lightness_gain",
    "instance_shading": "instance_shading",
    "dark_level": "dark_level",
    "coefficient_anchor": "coefficient_anchor",
}


@dataclass(frozen=True)
class SourceBatch:
    """Simulator frames: rgb (B, 3, H, W) in [-1, 1], semantic (B, H, W) int64 0..18 | 255, instance (B, H, W);
    ``frame_box`` (B, 4): where each (cropped) frame lies in its full frame (None = whole frames)."""

    rgb: Tensor
    semantic: Tensor
    instance: Tensor
    frame_box: Tensor | None = None

    def __post_init__(self) -> None:
        _check_batch(self.rgb, self.semantic, self.instance)


@dataclass(frozen=True)
class TargetBatch:
    """Real frames: rgb (B, 3, H, W) in [-1, 1]; semantic (B, H, W) only if the real set is labelled;
    ``frame_box`` as for :class:`SourceBatch`; ``dataset`` (B,) int64: which named target dataset each frame is
    from (per-dataset mean styles), or None."""

    rgb: Tensor
    semantic: Tensor | None = None
    frame_box: Tensor | None = None
    dataset: Tensor | None = None

    def __post_init__(self) -> None:
        _check_batch(self.rgb, self.semantic, None)


def _check_batch(rgb: Tensor, semantic: Tensor | None, instance: Tensor | None) -> None:
    if rgb.dim() != 4 or rgb.shape[1] != 3 or not rgb.dtype.is_floating_point:
        raise ConfigError(f"rgb must be float (B, 3, H, W), got {rgb.dtype} {tuple(rgb.shape)}")
    b, _, h, w = rgb.shape
    for name, labels in (("semantic", semantic), ("instance", instance)):
        if labels is not None and (tuple(labels.shape) != (b, h, w) or labels.dtype.is_floating_point):
            raise LabelError(f"{name} must be integer (B, H, W) = {(b, h, w)}, got {labels.dtype} "
                             f"{tuple(labels.shape)}")


@dataclass(frozen=True)
class Translations:
    """Everything one generator forward pass produces (all attached to the graph).

    Codes: ``content_*`` (:class:`ContentCode`), ``style_*`` (B, S), ``values_*`` (B, Dv, h, w).
    Images (B, 3, H, W): ``fake_target`` (s->t), ``fake_source`` (t->s), ``rec_*`` (within domain),
    ``cycle_*`` (cross-cycle back to the own domain). ``*_fake_*`` are the re-encoded codes of the fakes.
    ``target_labels``: (B, H, W) labels used for target frames (given or pseudo), or None.
    ``coefficients_fake_target``: the target decoder's coefficient field of ``fake_target`` (B, 12 + D, h, w).
    A one-sided pass (:func:`translate_one_sided`) leaves every t->s, source-reconstruction and cycle field None.
    """

    content_source: ContentCode
    content_target: ContentCode
    style_source: Tensor | None
    style_target: Tensor
    values_source: Tensor | None
    values_target: Tensor
    fake_target: Tensor
    fake_source: Tensor | None
    rec_source: Tensor | None
    rec_target: Tensor
    content_fake_target: ContentCode
    content_fake_source: ContentCode | None
    style_fake_target: Tensor
    style_fake_source: Tensor | None
    cycle_source: Tensor | None
    cycle_target: Tensor | None
    target_labels: Tensor | None
    coefficients_fake_target: Tensor | None = None


@torch.no_grad()
def pseudo_labels(aux: AuxNets, rgb: Tensor, confidence: float) -> Tensor:
    """Frozen segmenter's argmax on (B, 3, H, W) -> (B, H, W) int64, IGNORE_ID where max prob < confidence."""
    with frozen(aux):
        prob = torch.softmax(aux.segmenter(rgb), dim=1)
    top, label = prob.max(dim=1)
    return torch.where(top >= confidence, label, torch.full_like(label, IGNORE_ID))


def translate_batches(
    gen: TranslatorGenerator,
    aux: AuxNets | None,
    batch_source: SourceBatch,
    batch_target: TargetBatch,
    *,
    pseudo_label_confidence: float = 0.0,
) -> Translations:
    """One DRIT-style forward pass of the generator in both directions plus the cross cycle.

    s->t:    c_s = E^c(x_s | y_s, inst_s), u = G_t(c_s, z_t)
    t->s:    c_t = E^c(x_t | y_t),         v = G_s(c_t, z_s)
    rec:     G_s(c_s, z_s, own value map), G_t(c_t, z_t, own value map)
    cycle:   G_s(E^c(u | y_s, inst_s), E^s_s(v)) ~ x_s,  G_t(E^c(v | y_t), E^s_t(u)) ~ x_t
    y_t = TargetBatch.semantic, else pseudo labels from the frozen segmenter (``aux``), else None.

    ``pseudo_label_confidence`` (default 0: plain argmax, every pixel labelled) sets pseudo labels below
    that softmax confidence to 255. Raising it gives cleaner target-memory updates, but a conditional
    discriminator then sees ignore patches only on real frames, a cue it could exploit. The segmenter
    must be trained (:func:`aux_losses`) before its pseudo labels mean anything.
    """
    x_s, x_t = batch_source.rgb, batch_target.rgb
    sem_s, inst_s = batch_source.semantic, batch_source.instance
    labels_t = batch_target.semantic
    if labels_t is None and aux is not None:
        labels_t = pseudo_labels(aux, x_t, pseudo_label_confidence)

    c_s = gen.encode_content(x_s, "source", sem_s, inst_s)
    c_t = gen.encode_content(x_t, "target", labels_t, None)
    z_s, v_s = gen.encode_style_and_values(x_s, "source")
    z_t, v_t = gen.encode_style_and_values(x_t, "target")

    box_s, box_t = batch_source.frame_box, batch_target.frame_box
    fake_t, coeffs_t = gen.decode_with_coefficients(c_s, z_t, "target", noise=sample_noise(gen, x_s),
                                                    frame_box=box_s)
    fake_s = gen.decode(c_t, z_s, "source", noise=sample_noise(gen, x_t), frame_box=box_t)
    rec_s = gen.decode(c_s, z_s, "source", style_map=v_s, frame_box=box_s)
    rec_t = gen.decode(c_t, z_t, "target", style_map=v_t, frame_box=box_t, camera=False)

    # fake_t has the source labels by construction; fake_s is shown "labels absent" unless y_t is known.
    c_ft = gen.encode_content(fake_t, "target", sem_s, inst_s)
    c_fs = gen.encode_content(fake_s, "source", labels_t, None)
    z_ft = gen.encode_style(fake_t, "target")
    z_fs = gen.encode_style(fake_s, "source")
    cyc_s = gen.decode(c_ft, z_fs, "source", frame_box=box_s)
    cyc_t = gen.decode(c_fs, z_ft, "target", frame_box=box_t)
    return Translations(
        content_source=c_s, content_target=c_t, style_source=z_s, style_target=z_t,
        values_source=v_s, values_target=v_t, fake_target=fake_t, fake_source=fake_s,
        rec_source=rec_s, rec_target=rec_t, content_fake_target=c_ft, content_fake_source=c_fs,
        style_fake_target=z_ft, style_fake_source=z_fs, cycle_source=cyc_s, cycle_target=cyc_t,
        target_labels=labels_t, coefficients_fake_target=coeffs_t,
    )


def sample_noise(gen: TranslatorGenerator, like: Tensor) -> Tensor | None:
    """Standard-normal noise planes (B, 4, H, W) for the generator's random part (detail path plane 0, camera
    sensor noise planes 1-3), or None when it has neither."""
    if gen.cfg.detail_channels == 0 and not gen.cfg.use_camera:
        return None
    return torch.randn(like.shape[0], 4, *like.shape[-2:], device=like.device, dtype=like.dtype)


def translate_one_sided(
    gen: TranslatorGenerator,
    aux: AuxNets | None,
    batch_source: SourceBatch,
    batch_target: TargetBatch,
    *,
    pseudo_label_confidence: float = 0.0,
) -> Translations:
    """The one-sided (CUT) forward pass: only what the s->t direction needs.

    s->t:      c_s = E^c(x_s | y_s, inst_s), u = G_t(c_s, E^s_t(x_t), noise)
    identity:  G_t(E^c(x_t | y_t), E^s_t(x_t), own value map) ~ x_t   (CUT's identity term, as self_recon;
               without the camera model: a real frame's content already carries its camera)
    re-encode: E^c(u | y_s, inst_s) (PatchNCE and latent_content), E^s_t(u)
    No t->s translation, no source reconstruction, no cycle: a camera that blurs and adds noise cannot be undone,
    so a cycle back to the simulator would fight it. The t->s fields of the result are None.
    """
    x_s, x_t = batch_source.rgb, batch_target.rgb
    labels_t = batch_target.semantic
    if labels_t is None and aux is not None:
        labels_t = pseudo_labels(aux, x_t, pseudo_label_confidence)
    c_s = gen.encode_content(x_s, "source", batch_source.semantic, batch_source.instance)
    c_t = gen.encode_content(x_t, "target", labels_t, None)
    z_t, v_t = gen.encode_style_and_values(x_t, "target")
    fake_t, coeffs_t = gen.decode_with_coefficients(c_s, z_t, "target", noise=sample_noise(gen, x_s),
                                                    frame_box=batch_source.frame_box)
    rec_t = gen.decode(c_t, z_t, "target", style_map=v_t, frame_box=batch_target.frame_box, camera=False)
    c_ft = gen.encode_content(fake_t, "target", batch_source.semantic, batch_source.instance)
    return Translations(
        content_source=c_s, content_target=c_t, style_source=None, style_target=z_t, values_source=None,
        values_target=v_t, fake_target=fake_t, fake_source=None, rec_source=None, rec_target=rec_t,
        content_fake_target=c_ft, content_fake_source=None, style_fake_target=gen.encode_style(fake_t, "target"),
        style_fake_source=None, cycle_source=None, cycle_target=None, target_labels=labels_t,
        coefficients_fake_target=coeffs_t,
    )


def _disc_labels(disc: MultiScaleDiscriminator, labels: Tensor | None) -> Tensor | None:
    """Labels for a discriminator: None for an unconditional one; a conditional one must get labels.

    (Feeding "all ignore" to the real side only would let a projection discriminator separate real from
    fake by the presence of labels alone, so missing labels are an error, not a fallback.)
    """
    if not disc.conditional:
        return None
    if labels is None:
        raise ConfigError(
            "a label-conditioned discriminator needs target-frame labels: pass TargetBatch.semantic or "
            "aux nets (segmenter pseudo labels), or use DiscriminatorConfig(num_classes=0)"
        )
    return labels


def box_critic_losses(aux: AuxNets, image: Tensor, batch_source: SourceBatch, *, jitter: float | None = None,
                      generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Box preservation of an s->t image (B, 3, H, W): the box head, given proposals jittered around the source's
    boxes as in its own training (``jitter``, default ``aux.cfg.box_jitter``), must regress the exact boxes back
    and name their classes.

    regression = L1 + (1 - GIoU) (:func:`~sim2real.translator.losses.box_consistency_loss`), class = CE, over the
    source's valid instances. Exact proposals would make the regression trivially zero for an identity-like
    head (no gradient); jittered ones make the object's appearance matter. Call inside
    :func:`~sim2real.translator.aux_nets.frozen` to use the head as a fixed critic. Returns {"l1", "giou",
    "cls", "total"} (total = regression only), all attached to ``image``.
    """
    boxes = instance_boxes(batch_source.instance, aux.cfg.max_instances)
    classes = instance_classes(batch_source.semantic, batch_source.instance, boxes.ids, boxes.valid,
                               aux.cfg.num_classes)
    amount = aux.cfg.box_jitter if jitter is None else jitter
    proposals = boxes.boxes.to(image.dtype)
    if amount > 0:
        proposals = jitter_boxes(proposals, amount, tuple(image.shape[-2:]), generator)
    pred, logits = aux.box_head(image, proposals)
    box = box_consistency_loss(pred, boxes.boxes.to(image.dtype), boxes.valid, tuple(image.shape[-2:]))
    cls = box_class_loss(logits, torch.where(boxes.valid, classes, torch.full_like(classes, IGNORE_ID)))
    return {"l1": box["l1"], "giou": box["giou"], "cls": cls, "total": box["total"]}


def semantic_critic_loss(
    aux: AuxNets, image: Tensor, batch_source: SourceBatch, *, small_class_weight: float = 1.0
) -> Tensor:
    """Anti-flip term for an s->t image (B, 3, H, W): CE(S(image), y_s), ignore 255, small classes weighted.

    See :func:`~sim2real.translator.losses.semantic_consistency_loss`; call inside ``frozen(aux)``.
    """
    cw = semantic_class_weights(small_class_weight, aux.cfg.num_classes)
    return semantic_consistency_loss(aux.segmenter(image), batch_source.semantic, cw)


def generator_losses(  # noqa: PLR0917 (the objective's documented positional contract)
    gen: TranslatorGenerator,
    disc_target: MultiScaleDiscriminator,
    disc_source: MultiScaleDiscriminator,
    aux: AuxNets | None,
    batch_source: SourceBatch,
    batch_target: TargetBatch,
    weights: LossWeights,
    *,
    content_disc: ContentDiscriminator | None = None,
    outputs: Translations | None = None,
    projector: PatchProjector | None = None,
) -> dict[str, Tensor]:
    """Named generator losses (unweighted) and ``"total"`` = sum_k weight_k * loss_k (see TERM_WEIGHTS).

    Terms (each skipped when its weight is 0 or what it needs is absent):

    * adv: L_G^adv(D_t(u | y_s)) + L_G^adv(D_s(v | y_t)) with the configured adversarial mode.
    * self_recon: ||rec_s - x_s||_1 + ||rec_t - x_t||_1.
    * cycle: ||cycle_s - x_s||_1 + ||cycle_t - x_t||_1 (DRIT cross-cycle).
    * latent_content: ||E^c(u) - sg(c_s)||_1 + ||E^c(v) - sg(c_t)||_1;
      latent_style: ||E^s_t(u) - sg(z_t)||_1 + ||E^s_s(v) - sg(z_s)||_1 (sg = stop-gradient, MUNIT).
    * kl: KL(z_s) + KL(z_t) (1/2 E[z^2]); content_adv: DRIT content confusion (needs ``content_disc``).
    * memory: MGUIT contrastive loss of the source content queries (needs a generator memory).
    * bbox: frozen box head on u, proposals jittered around the source boxes (needs ``aux``); bbox_class: its
      class CE; diagnostics bbox_l1 / bbox_giou.
    * semantic: CE(S(u), y_s) with small-class weights, frozen segmenter (needs ``aux``); nce: PatchNCE between
      E^c(u) and sg(c_s) through ``projector`` (CUT; needs ``projector``).
    * instance_hue, instance_chroma, instance_shading, dark_level, lightness_gain: the functions of those names
      in :mod:`sim2real.translator.losses` (``instance_hue_loss``, ...).

    After a one-sided pass (:func:`translate_one_sided`) the terms of the missing directions are left out.
    Discriminators, content discriminator and critics are frozen here, so ``total.backward()`` fills only
    generator gradients. Diagnostics (``bbox_l1`` ...) are detached and not part of the total.
    """
    out = outputs if outputs is not None else translate_batches(gen, aux, batch_source, batch_target)
    losses: dict[str, Tensor] = {}
    critics = [m for m in (disc_target, disc_source, content_disc, aux) if m is not None]
    with frozen(*critics):
        if weights.adv > 0:
            losses["adv"] = _adversarial_term(disc_target, disc_source, out, batch_source, batch_target,
                                              mode=weights.adversarial_mode)
        losses.update(_reconstruction_terms(out, batch_source.rgb, batch_target.rgb, weights))
        if weights.nce > 0 and projector is not None:
            losses["nce"] = patch_nce_loss([out.content_fake_target.global_features],
                                           [out.content_source.global_features], projector)
        if weights.content_adv > 0 and content_disc is not None:
            losses["content_adv"] = content_generator_loss(
                content_disc(out.content_source.global_features), content_disc(out.content_target.global_features)
            )
        losses.update(_instance_terms(gen, out, batch_source, weights))
        if aux is not None:
            losses.update(_critic_terms(aux, out.fake_target, batch_source, weights))
    total = batch_source.rgb.new_zeros(())
    for term, field in TERM_WEIGHTS.items():
        if term in losses:
            total = total + getattr(weights, field) * losses[term]
    losses["total"] = total
    return losses


def _instance_terms(gen: TranslatorGenerator, out: Translations, batch_source: SourceBatch, weights: LossWeights
                    ) -> dict[str, Tensor]:
    """memory (the class-style memory's contrastive loss), instance_hue (each instance keeps its hue on s->t),
    instance_chroma (no instance gets more colourful on s->t), lightness_gain (the s->t coefficient field keeps
    the guide's shading), instance_shading (each instance keeps its source's), dark_level (dark stays dark) and
    coefficient_anchor (and the guide's colours)."""
    losses: dict[str, Tensor] = {}
    if weights.memory > 0 and gen.memory is not None:
        queries = gen.memory_queries(out.content_source)
        losses["memory"] = memory_contrastive_loss(gen.memory, queries, batch_source.semantic)
    if weights.instance_hue > 0:
        losses["instance_hue"] = instance_hue_loss(out.fake_target, batch_source.rgb, batch_source.instance)
    if weights.instance_chroma > 0:
        losses["instance_chroma"] = instance_chroma_loss(out.fake_target, batch_source.rgb, batch_source.instance,
                                                         margin=weights.instance_chroma_margin)
    if weights.instance_shading > 0:
        losses["instance_shading"] = instance_shading_loss(out.fake_target, batch_source.rgb, batch_source.instance,
                                                           floor=weights.instance_shading_floor)
    if weights.dark_level > 0:
        losses["dark_level"] = dark_level_loss(out.fake_target, batch_source.rgb, below=weights.dark_level_below,
                                               margin=weights.dark_level_margin)
    if weights.lightness_gain > 0:
        if out.coefficients_fake_target is None:
            raise ConfigError("losses.lightness_gain needs the s->t coefficient field, and these translations carry "
                              "none (build them with translate_batches / translate_one_sided)")
        losses["lightness_gain"] = lightness_gain_loss(out.coefficients_fake_target, weights.lightness_gain_floor)
    if weights.coefficient_anchor > 0:
        if out.coefficients_fake_target is None:
            raise ConfigError("losses.coefficient_anchor needs the s->t coefficient field, and these translations "
                              "carry none (build them with translate_batches / translate_one_sided)")
        losses["coefficient_anchor"] = coefficient_anchor_loss(out.coefficients_fake_target)
    return losses


def _adversarial_term(disc_target: MultiScaleDiscriminator, disc_source: MultiScaleDiscriminator,
                      out: Translations, batch_source: SourceBatch, batch_target: TargetBatch, *, mode: str
                      ) -> Tensor:
    """L_G^adv(D_t(u | y_s)) (+ L_G^adv(D_s(v | y_t)) after a two-sided pass), discriminators frozen."""
    g_adv = get_adversarial_loss(mode).g_loss
    loss = g_adv(disc_target(out.fake_target, _disc_labels(disc_target, batch_source.semantic),
                             frame_box=batch_source.frame_box))
    if out.fake_source is not None:
        loss = loss + g_adv(disc_source(out.fake_source, _disc_labels(disc_source, out.target_labels),
                                        frame_box=batch_target.frame_box))
    return loss


def _critic_terms(aux: AuxNets, fake_target: Tensor, batch_source: SourceBatch, weights: LossWeights
                  ) -> dict[str, Tensor]:
    """Box and semantic preservation of s->t through the frozen critics (call inside ``frozen(aux)``)."""
    losses: dict[str, Tensor] = {}
    if weights.bbox > 0 or weights.bbox_class > 0:
        box = box_critic_losses(aux, fake_target, batch_source)
        losses["bbox"], losses["bbox_class"] = box["total"], box["cls"]
        losses["bbox_l1"], losses["bbox_giou"] = box["l1"].detach(), box["giou"].detach()
    if weights.semantic > 0:
        losses["semantic"] = semantic_critic_loss(aux, fake_target, batch_source,
                                                  small_class_weight=weights.small_class_weight)
    return losses


def _reconstruction_terms(out: Translations, x_s: Tensor, x_t: Tensor, weights: LossWeights) -> dict[str, Tensor]:
    """self_recon, cycle, latent_* and kl (the halves a one-sided pass has)."""
    losses: dict[str, Tensor] = {}
    if weights.self_recon > 0:
        losses["self_recon"] = self_reconstruction_loss(out.rec_target, x_t)
        if out.rec_source is not None:
            losses["self_recon"] = losses["self_recon"] + self_reconstruction_loss(out.rec_source, x_s)
    if weights.cycle > 0 and out.cycle_source is not None:
        losses["cycle"] = cross_cycle_loss(out.cycle_source, x_s) + cross_cycle_loss(out.cycle_target, x_t)
    if weights.latent > 0:
        losses.update(_latent_terms(out))
    if weights.kl > 0:
        losses["kl"] = kl_loss(out.style_target) + (kl_loss(out.style_source) if out.style_source is not None
                                                    else 0.0)
    return losses


def _latent_terms(out: Translations) -> dict[str, Tensor]:
    """MUNIT latent reconstructions of the re-encoded fakes (the t->s half only after a two-sided pass)."""
    content = latent_reconstruction_loss(out.content_fake_target.features, out.content_source.features.detach())
    style = latent_reconstruction_loss(out.style_fake_target, out.style_target.detach())
    if out.content_fake_source is not None:
        content = content + latent_reconstruction_loss(out.content_fake_source.features,
                                                       out.content_target.features.detach())
        style = style + latent_reconstruction_loss(out.style_fake_source, out.style_source.detach())
    return {"latent_content": content, "latent_style": style}


def discriminator_losses(  # noqa: PLR0917 (mirrors generator_losses)
    gen: TranslatorGenerator,
    disc_target: MultiScaleDiscriminator,
    disc_source: MultiScaleDiscriminator,
    aux: AuxNets | None,
    batch_source: SourceBatch,
    batch_target: TargetBatch,
    weights: LossWeights,
    *,
    content_disc: ContentDiscriminator | None = None,
    outputs: Translations | None = None,
) -> dict[str, Tensor]:
    """Discriminator-side losses on detached fakes; ``"total"`` = d_target + d_source (+ content).

    * d_target: L_D^adv(D_t(x_t | y_t), D_t(sg(u) | y_s)); d_source: L_D^adv(D_s(x_s | y_s), D_s(sg(v) | y_t)).
    * content: BCE(D_c(sg(c_s)), 1) + BCE(D_c(sg(c_t)), 0) when ``content_disc`` is given and
      ``weights.content_adv`` > 0.

    Without ``outputs`` the fakes are produced here under ``no_grad``. Only discriminator parameters get
    gradients from ``total`` (the generator outputs are detached).
    """
    if outputs is None:
        with torch.no_grad():
            outputs = translate_batches(gen, aux, batch_source, batch_target)
    d_adv = get_adversarial_loss(weights.adversarial_mode).d_loss
    x_s, x_t = batch_source.rgb, batch_target.rgb
    y_s, y_t = batch_source.semantic, outputs.target_labels
    box_s, box_t = batch_source.frame_box, batch_target.frame_box
    dt = d_adv(
        disc_target(x_t, _disc_labels(disc_target, y_t), frame_box=box_t),
        disc_target(outputs.fake_target.detach(), _disc_labels(disc_target, y_s), frame_box=box_s),
    )
    losses = {"d_target": dt["total"], "d_target_real": dt["real"].detach(), "d_target_fake": dt["fake"].detach()}
    total = dt["total"]
    if outputs.fake_source is not None:
        ds = d_adv(
            disc_source(x_s, _disc_labels(disc_source, y_s), frame_box=box_s),
            disc_source(outputs.fake_source.detach(), _disc_labels(disc_source, y_t), frame_box=box_t),
        )
        losses |= {"d_source": ds["total"], "d_source_real": ds["real"].detach(),
                   "d_source_fake": ds["fake"].detach()}
        total = total + ds["total"]
    if content_disc is not None and weights.content_adv > 0:
        losses["content"] = content_discriminator_loss(
            content_disc(outputs.content_source.global_features.detach()),
            content_disc(outputs.content_target.global_features.detach()),
        )
        total = total + weights.content_adv * losses["content"]
    losses["total"] = total
    return losses


@torch.no_grad()
def update_generator_state(
    gen: TranslatorGenerator, outputs: Translations, reduce: Callable[[Tensor], Tensor] | None = None
) -> None:
    """Non-gradient state after a generator step: EMA mean styles and the class-wise memory (both domains).

    The target domain's memory is updated only where target labels (given or pseudo) exist. Runs in float32
    whatever autocast the forward ran under. ``reduce`` (data parallel: an all-reduce sum over the replicas)
    pools the update's sums, so every replica applies the same update from all replicas' batches.
    """
    if outputs.style_source is not None:
        gen.update_style_mean(outputs.style_source, "source", reduce)
        gen.update_memory(outputs.content_source, outputs.values_source, "source", reduce)
    gen.update_style_mean(outputs.style_target, "target", reduce)
    gen.update_memory(outputs.content_target, outputs.values_target, "target", reduce)


def aux_losses(
    aux: AuxNets,
    batch_source: SourceBatch,
    *,
    small_class_weight: float = 1.0,
    photometric_strength: float = 0.2,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Train the critics on source ground truth: box head (jittered gt proposals) and segmenter.

    Source images are photometrically jittered (``photometric_strength``, 0 = off) so the critics rely on
    shape and layout more than on the simulator's exact colours, which they later judge on translated,
    real-looking images. Returns {"box_l1", "box_giou", "box_cls", "box", "segmenter", "total"}.
    """
    rgb = photometric_jitter(batch_source.rgb, photometric_strength, generator)
    boxes = instance_boxes(batch_source.instance, aux.cfg.max_instances)
    classes = instance_classes(batch_source.semantic, batch_source.instance, boxes.ids, boxes.valid,
                               aux.cfg.num_classes)
    box = box_head_loss(aux.box_head, rgb, boxes.boxes, boxes.valid, classes, generator=generator)
    cw = semantic_class_weights(small_class_weight, aux.cfg.num_classes) if small_class_weight != 1.0 else None
    seg = segmenter_loss(aux.segmenter, rgb, batch_source.semantic, cw)
    return {
        "box_l1": box["box_l1"].detach(), "box_giou": box["box_giou"].detach(), "box_cls": box["box_cls"].detach(),
        "box": box["total"], "segmenter": seg, "total": box["total"] + seg,
    }
