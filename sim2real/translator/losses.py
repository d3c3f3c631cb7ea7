"""Loss terms of the instance-aware translator, each a small pure function with its equation.

Notation: ``x_s`` a source (simulator) image, ``x_t`` a target (real) image, ``E^c`` / ``E^s`` the content /
style encoders, ``G`` the decoder, ``D`` an image discriminator returning a list of patch-logit maps (one
per scale), ``D_c`` the content discriminator. Expectations ``E[.]`` are means over batch and patches;
multi-scale adversarial losses are averaged over scales (so the weight does not depend on num_scales).

Every function only uses tensor ops on its inputs, so gradients reach whatever produced them; in
particular :func:`box_consistency_loss` never rebuilds boxes from Python numbers (DUNIT's released bbox
loss does ``torch.Tensor([...])`` and so carries no gradient).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sim2real.core.colour import LUMA_WEIGHTS
from sim2real.core.errors import ConfigError
from sim2real.core.labels import IGNORE_ID, NUM_CLASSES, SMALL_CLASSES
from sim2real.translator.memory import ClassStyleMemory

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialLoss",
    "box_consistency_loss",
    "content_discriminator_loss",
    "content_generator_loss",
    "cross_cycle_loss",
    "dark_level_loss",
    "generalized_iou",
    "get_adversarial_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "instance_chroma_loss",
    "instance_hue_loss",
    "instance_mean_chroma",
    "instance_shading_loss",
    "kl_loss",
    "latent_reconstruction_loss",
    "lightness_gain_loss",
    "lsgan_d_loss",
    "lsgan_g_loss",
    "memory_contrastive_loss",
    "normalize_boxes",
    "self_reconstruction_loss",
    "semantic_class_weights",
    "semantic_consistency_loss",
]


# --------------------------------------------------------------------------------------------------
# Adversarial
# --------------------------------------------------------------------------------------------------
def _scale_mean(terms: list[Tensor]) -> Tensor:
    if not terms:
        raise ValueError("adversarial losses need at least one discriminator scale")
    return torch.stack(terms).mean()


def lsgan_d_loss(real: Sequence[Tensor], fake: Sequence[Tensor]) -> dict[str, Tensor]:
    """Least-squares GAN discriminator loss (Mao et al., 2017, "Least Squares GANs", Eq. 2, a=0, b=c=1).

    L_D = E[(D(x) - 1)^2] + E[D(G(z))^2], averaged over scales; the paper's 1/2 factors are dropped, as in
    pix2pixHD and MUNIT. ``fake`` must be computed on detached generator outputs. Returns {"real", "fake",
    "total"}.
    """
    r = _scale_mean([((d - 1.0) ** 2).mean() for d in real])
    f = _scale_mean([(d**2).mean() for d in fake])
    return {"real": r, "fake": f, "total": r + f}


def lsgan_g_loss(fake: Sequence[Tensor]) -> Tensor:
    """Least-squares GAN generator loss (Mao et al., 2017, Eq. 2, c=1, no 1/2): L_G = E[(D(G(z)) - 1)^2]."""
    return _scale_mean([((d - 1.0) ** 2).mean() for d in fake])


def hinge_d_loss(real: Sequence[Tensor], fake: Sequence[Tensor]) -> dict[str, Tensor]:
    """Hinge discriminator loss (Lim & Ye, 2017 "Geometric GAN"; as used by SAGAN, Zhang et al., 2019).

    L_D = E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))], averaged over scales. Returns {"real", "fake",
    "total"}.
    """
    r = _scale_mean([F.relu(1.0 - d).mean() for d in real])
    f = _scale_mean([F.relu(1.0 + d).mean() for d in fake])
    return {"real": r, "fake": f, "total": r + f}


def hinge_g_loss(fake: Sequence[Tensor]) -> Tensor:
    """Hinge generator loss (Lim & Ye, 2017; SAGAN, Zhang et al., 2019): L_G = -E[D(G(z))]."""
    return _scale_mean([-d.mean() for d in fake])


@dataclass(frozen=True)
class AdversarialLoss:
    """A GAN objective: the discriminator's and the generator's side."""

    d_loss: Callable[[Sequence[Tensor], Sequence[Tensor]], dict[str, Tensor]]
    g_loss: Callable[[Sequence[Tensor]], Tensor]


#: adversarial objective registry.
ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    "lsgan": AdversarialLoss(lsgan_d_loss, lsgan_g_loss),
    "hinge": AdversarialLoss(hinge_d_loss, hinge_g_loss),
}


def get_adversarial_loss(name: str) -> AdversarialLoss:
    """Look up an adversarial objective by name; raises ConfigError listing the valid names."""
    try:
        return ADVERSARIAL_LOSSES[name]
    except KeyError:
        raise ConfigError(
            f"unknown adversarial loss {name!r}; valid: {sorted(ADVERSARIAL_LOSSES)}"
        ) from None


# --------------------------------------------------------------------------------------------------
# Reconstruction (MUNIT / DRIT)
# --------------------------------------------------------------------------------------------------
def self_reconstruction_loss(reconstruction: Tensor, image: Tensor) -> Tensor:
    """Self reconstruction: DRIT (Lee et al., 2018) Sec. 3.3 "L_1^recon"; MUNIT Sec. 3.2 "L_recon^x".

    L = E[|| G(E^c(x), E^s(x)) - x ||_1], mean absolute error over all elements.
    """
    return (reconstruction - image).abs().mean()


def cross_cycle_loss(cycled: Tensor, image: Tensor) -> Tensor:
    """Cross-cycle consistency, DRIT (Lee et al., 2018) Sec. 3.2 "L_1^cc".

    With u = G_t(E^c(x_s), E^s(x_t)) and v = G_s(E^c(x_t), E^s(x_s)):
    L = E[|| G_s(E^c(u), E^s(v)) - x_s ||_1] (+ the symmetric target term, passed separately).
    """
    return (cycled - image).abs().mean()


def latent_reconstruction_loss(recovered: Tensor, code: Tensor) -> Tensor:
    """Latent reconstruction: MUNIT Sec. 3.2 "L_recon^c" / "L_recon^s"; DRIT Sec. 3.3 "L_1^latent".

    L = E[|| E(G(c, s)) - code ||_1]; the ``code`` side is used as given (pass it detached for the
    MUNIT variant where the target code is a constant, or attached for DRIT's symmetric version).
    """
    return (recovered - code).abs().mean()


def kl_loss(mu: Tensor, logvar: Tensor | None = None) -> Tensor:
    """KL of the style posterior to N(0, I): DRIT Sec. 3.3 "L_KL" (closed form: Kingma & Welling, App. B).

    With logvar: KL = 1/2 E_b[ sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j) ] / J, i.e. averaged over the
    J code dimensions. Without logvar (a deterministic style code, unit variance): KL = 1/2 E[mu^2].
    """
    if logvar is None:
        return 0.5 * (mu**2).mean()
    return 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).mean()


# --------------------------------------------------------------------------------------------------
# Content adversarial (DRIT)
# --------------------------------------------------------------------------------------------------
def content_discriminator_loss(logits_source: Tensor, logits_target: Tensor) -> Tensor:
    """Content discriminator loss, DRIT Eq. 2 "L_adv^content" (discriminator side).

    D_c learns which domain a content code came from: L = BCE(D_c(c_s), 1) + BCE(D_c(c_t), 0), with the
    content codes detached by the caller.
    """
    return F.binary_cross_entropy_with_logits(
        logits_source, torch.ones_like(logits_source)
    ) + F.binary_cross_entropy_with_logits(logits_target, torch.zeros_like(logits_target))


def content_generator_loss(logits_source: Tensor, logits_target: Tensor) -> Tensor:
    """Content confusion loss, DRIT Eq. 2 "L_adv^content" (encoder side, as in DRIT's released code).

    The content encoders are pushed to make D_c maximally unsure: L = BCE(D_c(c_s), 1/2) + BCE(D_c(c_t), 1/2)
    minus its minimum 2 ln 2, so the loss is 0 at complete confusion.
    """
    half_s = torch.full_like(logits_source, 0.5)
    half_t = torch.full_like(logits_target, 0.5)
    bce = F.binary_cross_entropy_with_logits(logits_source, half_s) + F.binary_cross_entropy_with_logits(
        logits_target, half_t
    )
    return bce - 2.0 * torch.log(torch.tensor(2.0, dtype=bce.dtype, device=bce.device))


# --------------------------------------------------------------------------------------------------
# Bounding-box consistency (DUNIT, with a differentiable GIoU)
# --------------------------------------------------------------------------------------------------
def normalize_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Pixel xyxy boxes (..., 4) -> coordinates divided by (W, H, W, H) for image_size = (H, W)."""
    h, w = image_size
    scale = boxes.new_tensor([w, h, w, h])
    return boxes / scale


def generalized_iou(a: Tensor, b: Tensor, eps: float = 1e-7) -> Tensor:
    """Generalized IoU of aligned xyxy boxes (Rezatofighi et al., 2019, Alg. 1): (..., 4), (..., 4) -> (...).

    GIoU = IoU - |C \\ (A u B)| / |C|, with C the smallest box enclosing A and B. In [-1, 1]; exactly 1 for
    identical non-degenerate boxes. Areas are clamped below by ``eps`` (not shifted) so the result is exact.
    """
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    area_a = (ax2 - ax1).clamp(min=0) * (ay2 - ay1).clamp(min=0)
    area_b = (bx2 - bx1).clamp(min=0) * (by2 - by1).clamp(min=0)
    iw = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp(min=0)
    ih = (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp(min=0)
    inter = iw * ih
    union = area_a + area_b - inter
    iou = inter / union.clamp(min=eps)
    cw = torch.maximum(ax2, bx2) - torch.minimum(ax1, bx1)
    ch = torch.maximum(ay2, by2) - torch.minimum(ay1, by1)
    enclosing = (cw * ch).clamp(min=eps)
    return iou - (enclosing - union) / enclosing


def box_consistency_loss(
    pred: Tensor,
    target: Tensor,
    valid: Tensor,
    image_size: tuple[int, int],
    *,
    l1_weight: float = 1.0,
    giou_weight: float = 1.0,
) -> dict[str, Tensor]:
    """Box preservation loss: L1 on normalised coordinates + GIoU loss, masked by ``valid``.

    DUNIT (Bhattacharjee et al., 2020) Sec. 3 "instance consistency loss" compares boxes detected on the
    translated image with the source boxes; here, as DETR's box loss (Carion et al., 2020, Sec. 3.1
    "Bounding box loss"), per valid box i:

        L = l1_weight * || b_i - b̂_i ||_1 / 4 + giou_weight * (1 - GIoU(b_i, b̂_i))

    averaged over valid boxes, with b in normalised coordinates (x / W, y / H). Shapes: pred, target
    (B, N, 4) pixel xyxy; valid (B, N) bool. Exactly 0 when pred == target; pure tensor ops, so the
    gradient reaches ``pred``. Returns {"l1", "giou", "total"}.
    """
    if pred.shape != target.shape or pred.shape[:-1] != valid.shape or pred.shape[-1] != 4:
        raise ValueError(
            f"box shapes must be (B, N, 4), (B, N, 4), (B, N); got {tuple(pred.shape)}, "
            f"{tuple(target.shape)}, {tuple(valid.shape)}"
        )
    keep = valid.bool()
    count = keep.sum().clamp(min=1).to(pred.dtype)
    # invalid slots (padding, possibly garbage or NaN) are swapped for a unit box before any arithmetic,
    # so neither their value nor their gradient can leak into the loss.
    dummy = pred.new_tensor([0.0, 0.0, 1.0, 1.0])
    p = normalize_boxes(torch.where(keep[..., None], pred, dummy), image_size)
    t = normalize_boxes(torch.where(keep[..., None], target.to(pred.dtype), dummy), image_size)
    zero = pred.new_zeros(())
    l1 = torch.where(keep, (p - t).abs().mean(dim=-1), zero).sum() / count
    giou = torch.where(keep, 1.0 - generalized_iou(p, t), zero).sum() / count
    return {"l1": l1, "giou": giou, "total": l1_weight * l1 + giou_weight * giou}


# --------------------------------------------------------------------------------------------------
# Semantic consistency (anti-flip)
# --------------------------------------------------------------------------------------------------
def semantic_class_weights(
    small_class_weight: float,
    num_classes: int = NUM_CLASSES,
    small_classes: frozenset[int] = SMALL_CLASSES,
) -> Tensor:
    """Per-class CE weights (num_classes,): 1 everywhere, ``small_class_weight`` for the small classes."""
    if small_class_weight <= 0:
        raise ConfigError(f"small_class_weight must be > 0, got {small_class_weight}")
    w = torch.ones(num_classes)
    w[sorted(small_classes)] = float(small_class_weight)
    return w


def semantic_consistency_loss(
    logits: Tensor, semantic: Tensor, class_weights: Tensor | None = None
) -> Tensor:
    """Semantic (anti-flip) consistency: a frozen segmenter must still read the source labels.

    Cross-entropy of a frozen segmenter's prediction S(G(x_s)) on the translated image against the source
    semantic map y_s. CyCADA (Hoffman et al., 2018) Sec. 3 "L_sem" uses the same form with the source
    model's own predictions as labels; the simulator gives exact labels, so we use those:

        L = - sum_p w_{y_p} log softmax(S(G(x_s)))_p[y_p] / sum_p w_{y_p},   over pixels with y_p != 255

    Shapes: logits (B, K, H, W) float, semantic (B, H, W) int64; class_weights (K,) or None (see
    :func:`semantic_class_weights`, which up-weights poles, traffic lights and traffic signs). Returns 0
    (attached to the graph) when every pixel is ignored.
    """
    if bool((semantic != IGNORE_ID).any()):
        weight = None if class_weights is None else class_weights.to(logits.device, logits.dtype)
        return F.cross_entropy(logits, semantic, weight=weight, ignore_index=IGNORE_ID)
    return logits.sum() * 0.0


# --------------------------------------------------------------------------------------------------
# Instance hue preservation
# --------------------------------------------------------------------------------------------------
#: unit vectors of the opponent chroma plane (orthogonal to the grey axis R = G = B), rows a and b
_OPPONENT_CHROMA = ((2.0 ** -0.5, -(2.0 ** -0.5), 0.0), (6.0 ** -0.5, 6.0 ** -0.5, -2.0 * 6.0 ** -0.5))


def _instance_groups(instance: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(B, H, W) ids -> (inside (B*H*W,) bool: pixels with id > 0, slot (P,): each such pixel's instance index,
    counts (N,) float32, keys (N,) = frame * 2^32 + id, sorted)."""
    b = instance.shape[0]
    ids = instance.reshape(b, -1).long()
    frame = torch.arange(b, device=ids.device)[:, None].expand_as(ids)
    inside = (ids > 0).flatten()
    keys, slot = torch.unique((frame * 2 ** 32 + ids).flatten()[inside], return_inverse=True)
    return inside, slot, torch.bincount(slot, minlength=keys.numel()).float(), keys


def _group_mean_chroma(image: Tensor, inside: Tensor, slot: Tensor, counts: Tensor) -> Tensor:
    """Mean opponent chroma (N, 2) float32 of the groups of :func:`_instance_groups` in ``image`` (B, 3, H, W)."""
    with torch.autocast(image.device.type, enabled=False):
        image = image.float()
        basis = torch.tensor(_OPPONENT_CHROMA, device=image.device)
        pixels = torch.einsum("kc,bchw->bhwk", basis, image).reshape(-1, 2)[inside]  # (P, 2)
        sums = torch.zeros(counts.numel(), 2, device=image.device).index_add(0, slot, pixels)
        return sums / counts[:, None]


def instance_mean_chroma(image: Tensor, instance: Tensor) -> tuple[Tensor, Tensor]:
    """Mean opponent chroma of every instance: a = (R - G) / sqrt 2, b = (R + G - 2B) / sqrt 6, averaged over
    each (frame, instance id > 0) mask, in float32 (also under autocast: a half-precision sum over thousands of
    pixels is far off).

    Shapes: image (B, 3, H, W) float, instance (B, H, W) integer. Returns (means (N, 2), keys (N,)) over the N
    instances present, ordered by key = frame * 2^32 + id (attached to ``image``'s graph).
    """
    inside, slot, counts, keys = _instance_groups(instance)
    return _group_mean_chroma(image, inside, slot, counts), keys


def _instance_chroma_pair(image: Tensor, reference: Tensor, instance: Tensor) -> tuple[Tensor, Tensor] | None:
    """Mean opponent chroma (N, 2) of every instance in ``image`` and in the detached ``reference`` (float32), or
    None when no frame has an instance."""
    inside, slot, counts, _ = _instance_groups(instance)
    if counts.numel() == 0:
        return None
    return (_group_mean_chroma(image, inside, slot, counts),
            _group_mean_chroma(reference.detach(), inside, slot, counts))


def instance_hue_loss(image: Tensor, reference: Tensor, instance: Tensor, *, chroma_scale: float = 0.1,
                      chroma_floor: float = 0.02) -> Tensor:
    """Instance hue preservation: each instance of a translation keeps the hue of its mean colour in the source.

    With m_i and r_i the mean opponent chroma of instance i in ``image`` and in ``reference``
    (:func:`instance_mean_chroma`; images in [-1, 1], so chroma is in those units too),

        L = sum_i w_i (1 - m_i . r_i / (|r_i| max(|m_i|, chroma_floor))) / N,    w_i = min(|r_i| / chroma_scale, 1)

    over the N instances (id > 0). Above ``chroma_floor`` this is 1 - cos of the hue angle: only the hue (the
    direction in the chroma plane) is held, lightness and saturation stay free. Below it the term is linear in
    m_i, so the gradient stays bounded (by 1 / chroma_floor) where a translation greys an instance out, and a
    grey output costs 1 (a hue a quarter-turn off). A nearly grey reference instance has no hue to keep and weighs
    ~ |r_i| / chroma_scale. Like any function of the angle, 1 - cos is stationary at a hue turned over (180
    degrees): it holds hues from the start of training rather than turning back one already lost.
    Motivation: the adversarial term alone turns a blue car brown (the real frames' dominant car colours); a
    perception test needs the scenario's car colours. Shapes: image, reference (B, 3, H, W) float, instance
    (B, H, W) integer. The reference is detached. Float32, also under autocast. Returns 0 (attached to ``image``)
    when no frame has an instance.
    """
    if chroma_scale <= 0 or chroma_floor <= 0:
        raise ConfigError(f"chroma_scale and chroma_floor must be > 0, got {chroma_scale}, {chroma_floor}")
    pair = _instance_chroma_pair(image, reference, instance)
    if pair is None:
        return image.float().sum() * 0.0
    means, ref = pair
    ref_norm = ref.norm(dim=1)
    weight = (ref_norm / chroma_scale).clamp(max=1.0)
    cosine = (means * ref).sum(dim=1) / (ref_norm.clamp(min=1e-12) * means.norm(dim=1).clamp(min=chroma_floor))
    return (weight * (1.0 - cosine)).sum() / means.shape[0]


def instance_chroma_loss(image: Tensor, reference: Tensor, instance: Tensor, *, margin: float = 0.05,
                         scale: float = 0.1) -> Tensor:
    """Instance chroma ceiling: no instance's mean colour comes out more colourful than in the source.

    With m_i and r_i the mean opponent chroma of instance i in ``image`` and in ``reference``
    (:func:`instance_mean_chroma`; images in [-1, 1], so chroma and ``margin`` are in those units),

        L = sum_i max(0, |m_i| - |r_i| - margin) / (scale N)

    over the N instances (id > 0): zero while an instance's mean colour stays within ``margin`` of its source
    saturation (desaturating costs nothing), linear above it (a gradient of 1 / (scale N) per instance, bounded;
    ``scale`` only normalises, unlike :func:`instance_hue_loss`'s ``chroma_scale``). It reads the mean colour only:
    an instance turned half red, half cyan costs nothing. It is the counterpart of :func:`instance_hue_loss` for
    grey and white instances, which have no hue to hold: the shipped model turned a white bus at dusk salmon-red
    (mean chroma 0.02 -> 0.17). It also penalises a legitimate illuminant cast on grey objects (dusk, sodium
    light) beyond ``margin``. Shapes: image, reference (B, 3, H, W) float, instance (B, H, W) integer. The
    reference is detached. Float32, also under autocast. Returns 0 (attached to ``image``) when no frame has an
    instance.
    """
    if margin < 0 or scale <= 0:
        raise ConfigError(f"margin must be >= 0 and scale > 0, got {margin}, {scale}")
    pair = _instance_chroma_pair(image, reference, instance)
    if pair is None:
        return image.float().sum() * 0.0
    means, ref = pair
    excess = F.relu(means.norm(dim=1) - ref.norm(dim=1) - margin)
    return excess.sum() / (scale * means.shape[0])


def _luma(image: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, H, W) float32 luma (``LUMA_WEIGHTS``); call with autocast off."""
    return torch.einsum("c,bchw->bhw", image.new_tensor(LUMA_WEIGHTS, dtype=torch.float32), image.float())


def instance_shading_loss(image: Tensor, reference: Tensor, instance: Tensor, *, floor: float = 0.5,
                          spread_scale: float = 0.1) -> Tensor:
    """Instance shading floor: each instance keeps its source's light and dark parts (a truck's black underside
    stays darker than its body).

    With s_p and t_p the luma (weights l, images in [-1, 1]) of pixel p of instance i in ``reference`` and in
    ``image``, and sigma_i the standard deviation of s over the instance, its shading gain is the least-squares
    slope of t on s,

        G_i = cov_i(s, t) / sigma_i^2,    L = sum_i w_i max(0, floor - G_i)^2 / N,
        w_i = min(sigma_i / spread_scale, 1)

    over the N instances (id > 0). The identity has G = 1, an instance painted one flat colour G = 0, its
    lightness turned over G = -1. Lifting only the dark parts (an underside painted brown) lowers G. An instance
    with no shading in the source has no gain to hold and weighs ~ sigma_i / spread_scale. Unlike
    :func:`lightness_gain_loss`, which reads each work cell's colour map, this reads the output pixels (detail
    path and camera model included) over a whole instance, so an offset field that paints a dark part lighter
    pays for it. Shapes: image, reference (B, 3, H, W) float, instance (B, H, W) integer. The reference is
    detached. Float32, also under autocast. Returns 0 (attached to ``image``) when no frame has an instance.
    """
    if spread_scale <= 0:
        raise ConfigError(f"spread_scale must be > 0, got {spread_scale}")
    inside, slot, counts, _ = _instance_groups(instance)
    if counts.numel() == 0:
        return image.float().sum() * 0.0
    with torch.autocast(image.device.type, enabled=False):
        t, s = (_luma(x).flatten()[inside] for x in (image, reference.detach()))

        def group_mean(values: Tensor) -> Tensor:
            return torch.zeros_like(counts).index_add(0, slot, values) / counts

        ds, dt = s - group_mean(s)[slot], t - group_mean(t)[slot]
        variance = group_mean(ds * ds)
        gain = group_mean(ds * dt) / variance.clamp(min=1e-8)
        weight = (variance.sqrt() / spread_scale).clamp(max=1.0)
        return (weight * F.relu(floor - gain).square()).sum() / counts.numel()


def dark_level_loss(image: Tensor, reference: Tensor, *, below: float = -0.6, margin: float = 0.2) -> Tensor:
    """Dark-level ceiling: what is dark in the source stays dark (a truck's black underside, tyres, shadows).

    With s_p and t_p the luma (weights l) of pixel p in ``reference`` and in ``image`` (both in [-1, 1]),

        L = sum_{p: s_p < below} max(0, t_p - s_p - margin)^2 / |{p: s_p < below}|

    (0 when no pixel is that dark). Below ``below`` (-0.6: the darkest fifth of the range) a pixel may come out
    at most ``margin`` (0.2: a tenth of the range, ~25 8-bit levels) lighter than in the source at no cost;
    darker always costs nothing. A real camera keeps scene black near its black level; an offset-heavy colour map
    lifts it to a brownish grey, which neither :func:`lightness_gain_loss` (a slope, per work cell) nor
    :func:`instance_shading_loss` (a slope, per instance) sees, since a lift by a constant keeps every slope.
    Reads the output pixels (detail path and camera model included). Shapes: image, reference (B, 3, H, W)
    float. The reference is detached. Float32, also under autocast.
    """
    if margin < 0:
        raise ConfigError(f"margin must be >= 0, got {margin}")
    with torch.autocast(image.device.type, enabled=False):
        t, s = _luma(image), _luma(reference.detach())
        dark = s < below
        lift = F.relu(t - s - margin).square() * dark
        return lift.sum() / dark.sum().clamp(min=1)


def lightness_gain_loss(coefficients: Tensor, floor: float) -> Tensor:
    """Lightness-gain floor on the decoder's affine colour coefficients: the output keeps its guide's shading.

    The decoder maps its guide g by out = A(q) g + b(q) per work cell q (before the tanh). With luma weights l,
    the luma response of that affine map to a grey step of the guide (before the tanh; the detail path and the
    camera model are not counted) is the cell's lightness gain G(q) = sum_i l_i sum_j A_ij(q), and

        L = mean_q max(0, floor - G(q))^2

    Without it the shipped weights had gains near 0 (and below) for trucks, sidewalks, walls, terrain and
    vegetation: those regions were painted by the offset field b alone, which is smooth over several cells, so a
    truck's black underside came out light. A camera's response is monotonic in scene radiance; the hinge pushes
    every cell's gain up to ``floor`` (a soft bound: cells may stay a little below it), keeping the guide's edges
    and shading in the output while leaving the colour map free above it. Shapes: coefficients (B, K >= 12, h, w),
    the 12 affine coefficients first in the layout of
    :func:`~sim2real.translator.layers.apply_affine_colour` (A_ij at channel 3 i + j, b_i at 9 + i). Float32.
    """
    if coefficients.dim() != 4 or coefficients.shape[1] < 12:
        raise ValueError(f"coefficients must be (B, K >= 12, h, w), got {tuple(coefficients.shape)}")
    rows = coefficients[:, :9].float().unflatten(1, (3, 3)).sum(2)  # (B, 3, h, w): sum_j A_ij
    gain = (rows * rows.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)).sum(1)
    return F.relu(floor - gain).square().mean()


def coefficient_anchor_loss(coefficients: Tensor) -> Tensor:
    """Anchor of the decoder's affine colour coefficients to the identity map: the output keeps its guide's colours
    (with the colour prior, the prior's class-wise map) unless the other terms pay for leaving them.

        L = mean_{q, k} | c_k(q) - e_k |

    over the work cells q and the 12 coefficients k (A row-major, then b; :func:`~sim2real.translator.layers.
    apply_affine_colour`), with e the identity (A = I, b = 0). Shapes: coefficients (B, K >= 12, h, w); the detail
    features beyond the first 12 are not anchored. Float32.
    """
    if coefficients.dim() != 4 or coefficients.shape[1] < 12:
        raise ValueError(f"coefficients must be (B, K >= 12, h, w), got {tuple(coefficients.shape)}")
    identity = coefficients.new_tensor([1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0, 0, 0, 0], dtype=torch.float32)
    return (coefficients[:, :12].float() - identity.view(1, 12, 1, 1)).abs().mean()


# --------------------------------------------------------------------------------------------------
# Class-style memory contrastive (MGUIT)
# --------------------------------------------------------------------------------------------------
def memory_contrastive_loss(memory: ClassStyleMemory, query: Tensor, semantic: Tensor) -> Tensor:
    """Class-style memory feature-contrastive loss (MGUIT, Jeong et al., 2021, Sec. 3 memory losses).

    Thin wrapper over :meth:`sim2real.translator.memory.ClassStyleMemory.contrastive_loss`, an InfoNCE over
    memory keys: for each labelled query pixel p of class c_p, with k+ its best slot of class c_p,

        L = -mean_p log( exp(q_p . k+ / t) / sum_j exp(q_p . k_j / t) )

    Shapes: query (B, Dk, h, w), semantic (B, H, W). Keys are buffers: the gradient reaches the query only.
    """
    return memory.contrastive_loss(query, semantic)
