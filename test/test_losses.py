"""Loss terms against hand-computed values, gradient flow, masking and monotonicity."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from sim2real.core.errors import ConfigError
from sim2real.core.labels import IGNORE_ID, NUM_CLASSES, SMALL_CLASSES, TRAIN_ID
from sim2real.translator.losses import (
    ADVERSARIAL_LOSSES,
    box_consistency_loss,
    coefficient_anchor_loss,
    content_discriminator_loss,
    content_generator_loss,
    cross_cycle_loss,
    dark_level_loss,
    generalized_iou,
    get_adversarial_loss,
    hinge_d_loss,
    hinge_g_loss,
    instance_chroma_loss,
    instance_hue_loss,
    instance_mean_chroma,
    instance_shading_loss,
    kl_loss,
    latent_reconstruction_loss,
    lightness_gain_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    self_reconstruction_loss,
    semantic_class_weights,
    semantic_consistency_loss,
)


def t(values):
    return torch.tensor(values, dtype=torch.float32)


# ------------------------------------------------------------------ adversarial
def test_lsgan_hand_values():
    real = [t([[1.0, 0.0]]), t([[3.0]])]  # scale means: 0.5, 4 -> 2.25
    fake = [t([[1.0, -1.0]]), t([[0.0]])]  # scale means: 1, 0 -> 0.5
    d = lsgan_d_loss(real, fake)
    assert d["real"].item() == pytest.approx(2.25)
    assert d["fake"].item() == pytest.approx(0.5)
    assert d["total"].item() == pytest.approx(2.75)
    assert lsgan_g_loss(fake).item() == pytest.approx((2.0 + 1.0) / 2)  # scale means: (0+4)/2, 1


def test_hinge_hand_values():
    real = [t([0.5, 2.0])]
    fake = [t([-2.0, 0.5])]
    d = hinge_d_loss(real, fake)
    assert d["real"].item() == pytest.approx(0.25)
    assert d["fake"].item() == pytest.approx(0.75)
    assert hinge_g_loss(fake).item() == pytest.approx(0.75)
    assert hinge_g_loss([t([1.0]), t([3.0])]).item() == pytest.approx(-2.0)


def test_adversarial_registry():
    assert set(ADVERSARIAL_LOSSES) == {"lsgan", "hinge"}
    assert get_adversarial_loss("hinge").g_loss is hinge_g_loss
    with pytest.raises(ConfigError, match=r"hinge.*lsgan"):
        get_adversarial_loss("wgan")


@pytest.mark.parametrize("mode", ["lsgan", "hinge"])
def test_generator_adversarial_gradient_nonzero(mode):
    fake = [torch.randn(2, 1, 5, 5, requires_grad=True), torch.randn(2, 1, 3, 3, requires_grad=True)]
    loss = get_adversarial_loss(mode).g_loss(fake)
    loss.backward()
    assert all(f.grad.abs().sum() > 0 for f in fake)


# ------------------------------------------------------------------ reconstruction
def test_reconstruction_losses_hand_values():
    a = t([[1.0, 2.0], [3.0, 4.0]])
    b = t([[1.0, 0.0], [4.0, 4.0]])
    assert self_reconstruction_loss(a, b).item() == pytest.approx(0.75)
    assert cross_cycle_loss(a, b).item() == pytest.approx(0.75)
    assert latent_reconstruction_loss(a, b).item() == pytest.approx(0.75)
    assert self_reconstruction_loss(a, a).item() == 0.0


def test_kl_hand_values():
    assert kl_loss(torch.zeros(4, 8), torch.zeros(4, 8)).item() == 0.0
    assert kl_loss(t([[1.0]]), t([[0.0]])).item() == pytest.approx(0.5)
    # logvar = log 2, mu = 0: 0.5 * (2 - 1 - log 2)
    assert kl_loss(t([[0.0]]), t([[math.log(2.0)]])).item() == pytest.approx(0.5 * (1 - math.log(2.0)))
    assert kl_loss(t([[2.0, 0.0]])).item() == pytest.approx(1.0)


# ------------------------------------------------------------------ content adversarial
def test_content_losses():
    zero = torch.zeros(3)
    assert content_discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert content_generator_loss(zero, zero).item() == pytest.approx(0.0, abs=1e-6)
    confident = t([4.0, 5.0])
    assert content_generator_loss(confident, -confident).item() > 0.5
    # discriminator loss is small when it is right
    assert content_discriminator_loss(t([9.0]), t([-9.0])).item() < 1e-3
    logits = t([2.0, -1.0]).requires_grad_()
    content_generator_loss(logits, logits).backward()
    assert logits.grad.abs().sum() > 0


# ------------------------------------------------------------------ boxes
def test_giou_hand_values():
    a = t([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 4.0, 4.0]])
    b = t([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [0.0, 0.0, 4.0, 4.0]])
    g = generalized_iou(a, b)
    # overlap: IoU 1/7, enclosing 9, union 7 -> 1/7 - 2/9; disjoint: 0 - (3 - 2)/3; identical: 1
    expected = t([1 / 7 - 2 / 9, -1 / 3, 1.0])
    torch.testing.assert_close(g, expected)


def test_box_loss_exactly_zero_for_perfect_boxes():
    boxes = t([[[10.0, 12.0, 30.0, 40.0], [0.0, 0.0, 5.0, 7.0], [0.0, 0.0, 0.0, 0.0]]])
    valid = torch.tensor([[True, True, False]])
    out = box_consistency_loss(boxes.clone(), boxes, valid, (48, 64))
    assert out["total"].item() == 0.0
    assert out["l1"].item() == 0.0
    assert out["giou"].item() == 0.0


def test_box_loss_increases_monotonically_with_shift():
    gt = t([[[10.0, 10.0, 30.0, 26.0]]])
    valid = torch.tensor([[True]])
    values = []
    for shift in [0, 1, 2, 4, 8, 16, 24, 32]:
        pred = gt + t([shift, shift / 2, shift, shift / 2])
        values.append(box_consistency_loss(pred, gt, valid, (64, 96))["total"].item())
    assert values[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(values)), values


def test_box_loss_gradient_and_masking():
    gt = t([[[10.0, 10.0, 30.0, 26.0], [0.0, 0.0, 0.0, 0.0]]])
    pred = t([[[12.0, 9.0, 33.0, 25.0], [float("nan"), 0.0, float("inf"), 1.0]]]).requires_grad_()
    valid = torch.tensor([[True, False]])
    out = box_consistency_loss(pred, gt, valid, (64, 96))
    assert torch.isfinite(out["total"])
    out["total"].backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[0, 0].abs().sum() > 0
    assert pred.grad[0, 1].abs().sum() == 0
    # the invalid slot does not change the value
    ref = box_consistency_loss(pred[:, :1].detach(), gt[:, :1], valid[:, :1], (64, 96))
    assert out["total"].item() == pytest.approx(ref["total"].item())


def test_box_loss_no_valid_boxes_is_zero_and_attached():
    pred = torch.rand(2, 3, 4, requires_grad=True)
    out = box_consistency_loss(pred, torch.rand(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool), (8, 8))
    assert out["total"].item() == 0.0
    out["total"].backward()
    assert pred.grad is not None


def test_box_loss_shape_check():
    with pytest.raises(ValueError, match="box shapes"):
        box_consistency_loss(torch.zeros(1, 2, 4), torch.zeros(1, 3, 4), torch.ones(1, 2), (8, 8))


# ------------------------------------------------------------------ semantic
def test_semantic_class_weights():
    w = semantic_class_weights(5.0)
    assert w.shape == (NUM_CLASSES,)
    for c in range(NUM_CLASSES):
        assert w[c].item() == (5.0 if c in SMALL_CLASSES else 1.0)
    with pytest.raises(ConfigError):
        semantic_class_weights(0.0)


def test_semantic_loss_hand_value_and_ignore():
    logits = torch.zeros(1, NUM_CLASSES, 1, 3)
    logits[0, 0, 0, 0] = 2.0  # pixel 0: road predicted, label road
    semantic = torch.tensor([[[0, TRAIN_ID["traffic sign"], IGNORE_ID]]])
    p_road = math.exp(2.0) / (math.exp(2.0) + NUM_CLASSES - 1)
    ce0 = -math.log(p_road)
    ce1 = math.log(NUM_CLASSES)
    assert semantic_consistency_loss(logits, semantic).item() == pytest.approx((ce0 + ce1) / 2, rel=1e-5)
    weighted = semantic_consistency_loss(logits, semantic, semantic_class_weights(4.0)).item()
    assert weighted == pytest.approx((ce0 + 4 * ce1) / 5, rel=1e-5)
    assert weighted > (ce0 + ce1) / 2  # the washed-out sign costs more


def test_semantic_loss_all_ignored_is_zero_attached():
    logits = torch.randn(1, NUM_CLASSES, 2, 2, requires_grad=True)
    loss = semantic_consistency_loss(logits, torch.full((1, 2, 2), IGNORE_ID))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_semantic_loss_gradient_nonzero():
    logits = torch.randn(2, NUM_CLASSES, 4, 4, requires_grad=True)
    semantic = torch.randint(0, NUM_CLASSES, (2, 4, 4))
    semantic_consistency_loss(logits, semantic, semantic_class_weights(3.0)).backward()
    assert logits.grad.abs().sum() > 0


# ------------------------------------------------------------------ instance hue
SQ2, SQ6 = 2.0 ** 0.5, 6.0 ** 0.5


def chroma_image(grey: float, a: float, b: float, h: int = 4, w: int = 6) -> torch.Tensor:
    """(3, h, w) of one colour: ``grey`` on the grey axis plus opponent chroma (a, b)."""
    rgb = t([grey + a / SQ2 + b / SQ6, grey - a / SQ2 + b / SQ6, grey - 2 * b / SQ6])
    return rgb[:, None, None].expand(3, h, w).clone()


def hue_scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two frames: frame 0 holds instances 1 (left half) and 2 (right half), frame 1 instance 1 (top rows) and
    background. Reference chroma: (0.3, 0), (0, 0.05), grey; image: (-0.3, 0) (hue turned 180 degrees),
    (0.05, 0) (90 degrees), (0.2, 0.1) (any hue: the reference is grey)."""
    ref, img = torch.zeros(2, 3, 4, 6), torch.zeros(2, 3, 4, 6)
    inst = torch.zeros(2, 4, 6, dtype=torch.long)
    inst[0, :, :3], inst[0, :, 3:], inst[1, :2] = 1, 2, 1
    ref[0, :, :, :3], img[0, :, :, :3] = chroma_image(0.1, 0.3, 0.0)[..., :3], chroma_image(-0.2, -0.3, 0.0)[..., :3]
    ref[0, :, :, 3:], img[0, :, :, 3:] = chroma_image(0.0, 0.0, 0.05)[..., 3:], chroma_image(0.4, 0.05, 0.0)[..., 3:]
    ref[1, :, :2], img[1, :, :2] = chroma_image(0.5, 0.0, 0.0)[:, :2], chroma_image(0.5, 0.2, 0.1)[:, :2]
    img[1, :, 2:] = chroma_image(0.0, -0.9, 0.4)[:, 2:]  # background: not an instance, never counted
    return img, ref, inst


def test_instance_mean_chroma_keeps_frames_and_ids_apart():
    img, _, inst = hue_scene()
    means, keys = instance_mean_chroma(img, inst)
    assert keys.tolist() == [1, 2, 2 ** 32 + 1]  # frame * 2^32 + id: the two instances "1" stay apart
    torch.testing.assert_close(means, t([[-0.3, 0.0], [0.05, 0.0], [0.2, 0.1]]), atol=1e-6, rtol=0)


def test_instance_hue_hand_value():
    img, ref, inst = hue_scene()
    # (1 * (1 - cos 180) + min(0.05 / 0.1, 1) * (1 - cos 90) + 0 * ...) / 3 instances
    torch.testing.assert_close(instance_hue_loss(img, ref, inst), torch.tensor((2.0 + 0.5) / 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(instance_hue_loss(img, ref, inst, chroma_scale=0.5),
                               torch.tensor((0.6 * 2.0 + 0.1) / 3), atol=1e-5, rtol=0)


def test_instance_hue_ignores_lightness_and_saturation():
    _, ref, inst = hue_scene()
    grey_axis = torch.ones(3)[None, :, None, None]
    mean = ref.mean(dim=1, keepdim=True)
    changed = 0.3 * grey_axis + mean + 0.4 * (ref - mean)  # lighter, 60 % less saturated, the same hues
    assert float(instance_hue_loss(changed, ref, inst)) < 1e-6
    assert float(instance_hue_loss(-ref, ref, inst)) > 0.6  # the negative control: every hue turned over


def test_instance_hue_gradient_reaches_instances_of_the_image_only():
    img, ref, inst = hue_scene()
    img[0, :, :, :3] = chroma_image(-0.2, 0.0, 0.3)[..., :3]  # 90 degrees off (at 180, 1 - cos is stationary)
    ref[1, :, 2:] = chroma_image(0.0, 0.3, 0.3)[:, 2:]  # a coloured background: it would weigh if it were read
    img.requires_grad_(True)
    ref.requires_grad_(True)
    instance_hue_loss(img, ref, inst).backward()
    assert ref.grad is None
    grad = img.grad.abs().sum(dim=1)
    assert float(grad[0, :, :3].min()) > 0 and float(grad[0, :, 3:].min()) > 0
    assert float(grad[1].max()) == 0  # the grey-referenced instance weighs 0, the background is never read


def assert_zero_attached_without_instances(loss_fn, **bad_argument: float) -> None:
    """``loss_fn`` is 0 and attached to the image's graph without instances, and refuses ``bad_argument``."""
    img = torch.rand(1, 3, 4, 4, requires_grad=True)
    loss = loss_fn(img, img.detach(), torch.zeros(1, 4, 4, dtype=torch.long))
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    (name,) = bad_argument
    with pytest.raises(ConfigError, match=name):
        loss_fn(img, img, torch.ones(1, 4, 4, dtype=torch.long), **bad_argument)


def test_instance_hue_without_instances_is_zero_attached():
    assert_zero_attached_without_instances(instance_hue_loss, chroma_scale=0.0)


def test_instance_hue_near_grey_is_bounded_and_a_grey_output_costs_a_quarter_turn():
    _, ref, inst = hue_scene()
    scale = torch.linspace(1.0, 1e-6, 7)
    mean = ref.mean(dim=1, keepdim=True)
    for k in scale:  # the translation greys every instance out, keeping the hue
        img = (mean + k * (ref - mean)).requires_grad_(True)
        loss = instance_hue_loss(img, ref, inst, chroma_floor=0.02)
        loss.backward()
        assert float(img.grad.abs().sum()) < 2 / 0.02  # two weighing instances, each dL/dm <= 1 / (3 floor), x sqrt 3
    grey = mean.expand_as(ref)
    # every instance grey: 1 - 0 per instance, weighted 1, 0.5, 0
    torch.testing.assert_close(instance_hue_loss(grey, ref, inst), torch.tensor(1.5 / 3), atol=1e-6, rtol=0)


def test_instance_hue_is_float32_under_cpu_autocast():
    img, ref, inst = hue_scene()
    img = img.repeat(1, 1, 20, 20)  # 96 x 120 masks: a bf16 running sum would stop counting at 256
    ref, inst = ref.repeat(1, 1, 20, 20), inst.repeat(1, 20, 20)
    exact = instance_hue_loss(img, ref, inst)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = instance_hue_loss(img.bfloat16(), ref, inst)
        means, _ = instance_mean_chroma(img, inst)
    assert mixed.dtype == means.dtype == torch.float32
    torch.testing.assert_close(mixed, exact, atol=1e-2, rtol=0)  # bf16 inputs (8-bit mantissa), float32 sums


# ------------------------------------------------------------------ instance chroma ceiling
def test_instance_chroma_hand_value():
    img, ref, inst = hue_scene()
    # instances 1 and 2 of frame 0 keep their saturation (0.3 -> 0.3, 0.05 -> 0.05); the grey-referenced one
    # comes out at |(0.2, 0.1)| = sqrt 0.05: (sqrt 0.05 - 0 - margin) / (0.1 * 3 instances)
    excess = 0.05 ** 0.5
    torch.testing.assert_close(instance_chroma_loss(img, ref, inst), torch.tensor((excess - 0.05) / 0.3),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(instance_chroma_loss(img, ref, inst, margin=0.0, scale=0.5),
                               torch.tensor(excess / 1.5), atol=1e-5, rtol=0)
    assert float(instance_chroma_loss(img, ref, inst, margin=0.3)) == 0.0  # every excess within the margin


def test_instance_chroma_leaves_lightness_hue_and_desaturation_free():
    _, ref, inst = hue_scene()
    grey_axis = torch.ones(3)[None, :, None, None]
    mean = ref.mean(dim=1, keepdim=True)
    assert float(instance_chroma_loss(0.3 * grey_axis + mean + 0.4 * (ref - mean), ref, inst)) == 0.0
    assert float(instance_chroma_loss(-ref, ref, inst)) == 0.0  # hues turned over: the hue term's business
    # the negative control: every instance 1.5x as saturated: (0.5 * 0.3 - 0.05) + 0 + 0 over 0.1 * 3
    boosted = mean + 1.5 * (ref - mean)
    torch.testing.assert_close(instance_chroma_loss(boosted, ref, inst), torch.tensor(0.1 / 0.3), atol=1e-5, rtol=0)


def test_instance_chroma_gradient_is_one_over_scale_n_along_the_excess():
    img, ref, inst = hue_scene()
    img.requires_grad_(True)
    ref.requires_grad_(True)
    instance_chroma_loss(img, ref, inst).backward()
    assert ref.grad is None
    grad = img.grad.abs().sum(dim=1)
    assert float(grad[0].max()) == 0  # both frame-0 instances are within their ceiling
    assert float(grad[1, :2].min()) > 0 and float(grad[1, 2:].max()) == 0  # the background is never read
    # moving the whole instance by eps along its chroma direction raises L by eps / (0.1 N)
    a, b = 0.2 / 0.05 ** 0.5, 0.1 / 0.05 ** 0.5
    step = chroma_image(0.0, a, b)[:, :2]
    torch.testing.assert_close((img.grad[1, :, :2] * step).sum(), torch.tensor(1 / 0.3), atol=1e-4, rtol=0)


def test_instance_chroma_without_instances_zero_attached_and_checks_arguments():
    img = torch.rand(1, 3, 4, 4, requires_grad=True)
    loss = instance_chroma_loss(img, img.detach(), torch.zeros(1, 4, 4, dtype=torch.long))
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    with pytest.raises(ConfigError, match="margin"):
        instance_chroma_loss(img, img, torch.ones(1, 4, 4, dtype=torch.long), margin=-0.1)
    with pytest.raises(ConfigError, match="scale"):
        instance_chroma_loss(img, img, torch.ones(1, 4, 4, dtype=torch.long), scale=0.0)


# ------------------------------------------------------------------ dark-level ceiling
def test_dark_level_known_answers():
    ref = torch.zeros(1, 3, 2, 4)
    ref[..., :2], ref[..., 2:] = -0.9, 0.5  # a black half (4 pixels, luma -0.9) and a light half
    assert float(dark_level_loss(ref, ref)) == 0.0
    assert float(dark_level_loss(ref - 0.5, ref)) == 0.0  # darker costs nothing
    lifted = ref.clone()
    lifted[..., :2] = -0.4  # +0.5: 0.3 above the margin 0.2
    torch.testing.assert_close(dark_level_loss(lifted, ref), torch.tensor(0.09), atol=1e-6, rtol=0)
    torch.testing.assert_close(dark_level_loss(lifted, ref, margin=0.0), torch.tensor(0.25), atol=1e-6, rtol=0)
    lifted[0, :, 0, 0] = -0.8  # one pixel within the margin: (0 + 3 * 0.09) / 4
    torch.testing.assert_close(dark_level_loss(lifted, ref), torch.tensor(0.0675), atol=1e-6, rtol=0)
    light = ref.clone()
    light[..., 2:] = -1.0  # the light half painted black: not dark in the source, never read
    assert float(dark_level_loss(light, ref)) == 0.0
    assert float(dark_level_loss(lifted, ref, below=-0.95)) == 0.0  # no pixel that dark: 0


def test_dark_level_gradient_darkens_only_the_lifted_dark_pixels_and_checks_arguments():
    ref = torch.zeros(1, 3, 2, 4)
    ref[..., :2] = -0.9
    img = torch.full_like(ref, 0.0).requires_grad_(True)
    ref.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = dark_level_loss(img, ref)
    assert loss.dtype == torch.float32
    loss.backward()
    assert ref.grad is None
    assert float(img.grad[..., :2].min()) > 0 and float(img.grad[..., 2:].abs().max()) == 0
    with pytest.raises(ConfigError, match="margin"):
        dark_level_loss(img, ref, margin=-0.1)


# ------------------------------------------------------------------ instance shading floor
def shading_scene() -> tuple[torch.Tensor, torch.Tensor]:
    """One frame, two instances: 1 (left half) a grey body over a darker underside (luma 0.4 top rows, -0.6
    bottom rows: spread 0.5 std), 2 (right half) flat grey (no shading to keep)."""
    ref = torch.zeros(1, 3, 4, 6)
    ref[0, :, :2, :3], ref[0, :, 2:, :3], ref[0, :, :, 3:] = 0.4, -0.6, 0.1
    inst = torch.zeros(1, 4, 6, dtype=torch.long)
    inst[0, :, :3], inst[0, :, 3:] = 1, 2
    return ref, inst


def test_instance_shading_known_answers():
    ref, inst = shading_scene()
    assert float(instance_shading_loss(ref, ref, inst)) < 1e-6  # gain 1 (instance 2: float rounding of sigma 0)
    assert float(instance_shading_loss(0.6 * ref + 0.2, ref, inst)) < 1e-6  # gain 0.6, above the floor 0.5
    flat = torch.full_like(ref, -0.1)
    # instance 1 painted flat: gain 0, weight min(0.5 / 0.1, 1) = 1; instance 2 has sigma 0: weight 0; N = 2
    torch.testing.assert_close(instance_shading_loss(flat, ref, inst), torch.tensor(0.25 / 2), atol=1e-6, rtol=0)
    torch.testing.assert_close(instance_shading_loss(-ref, ref, inst), torch.tensor(1.5 ** 2 / 2), atol=1e-5, rtol=0)
    lifted = ref.clone()
    lifted[0, :, 2:, :3] = 0.1  # the underside painted lighter: gain (0.4 - 0.1) / 1.0 = 0.3
    torch.testing.assert_close(instance_shading_loss(lifted, ref, inst), torch.tensor(0.2 ** 2 / 2),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(instance_shading_loss(lifted, ref, inst, floor=0.3), torch.tensor(0.0),
                               atol=1e-6, rtol=0)
    # a chroma-only change (grey axis untouched) leaves the luma slope alone
    tinted = ref + torch.tensor([0.1, -0.1 * 0.299 / 0.587, 0.0])[None, :, None, None]
    assert float(instance_shading_loss(tinted, ref, inst)) < 1e-6


def test_instance_shading_gradient_raises_the_dark_part_contrast_only_inside_instances():
    ref, inst = shading_scene()
    inst[0, :, 5] = 0  # a background column: never read
    img = torch.full_like(ref, 0.1).requires_grad_(True)
    ref.requires_grad_(True)
    instance_shading_loss(img, ref, inst).backward()
    assert ref.grad is None
    grad = img.grad.sum(dim=1)
    assert float(grad[0, :2, :3].max()) < 0 < float(grad[0, 2:, :3].min())  # body lighter, underside darker
    assert float(img.grad[0, :, :, 5].abs().max()) == 0.0


def test_instance_shading_without_instances_zero_attached_float32_under_autocast_and_checks_arguments():
    assert_zero_attached_without_instances(instance_shading_loss, spread_scale=0.0)
    ref, inst = shading_scene()
    flat = torch.full_like(ref, -0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = instance_shading_loss(flat.bfloat16(), ref, inst)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, torch.tensor(0.125), atol=1e-3, rtol=0)


def test_instance_chroma_is_float32_under_cpu_autocast():
    img, ref, inst = hue_scene()
    img, ref, inst = img.repeat(1, 1, 20, 20), ref.repeat(1, 1, 20, 20), inst.repeat(1, 20, 20)
    exact = instance_chroma_loss(img, ref, inst)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = instance_chroma_loss(img.bfloat16(), ref, inst)
    assert mixed.dtype == torch.float32 and float(exact) > 0.5
    torch.testing.assert_close(mixed, exact, atol=2e-2, rtol=0)


def affine_cells(*matrices: list[list[float]], offset: float = 0.0, extra: int = 0) -> torch.Tensor:
    """One (1, 12 + extra, 1, n) coefficient field, cell k with the 3x3 matrix ``matrices[k]`` and offsets b."""
    cells = [torch.cat([torch.tensor(m, dtype=torch.float32).flatten(), torch.full((3 + extra,), offset)])
             for m in matrices]
    return torch.stack(cells, 1)[None, :, None, :]


def test_lightness_gain_hand_value():
    eye = [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    field = affine_cells(eye, [[0.2, 0, 0], [0, 0.2, 0], [0, 0, 0.2]], [[-1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]],
                         [[0, 0, 0], [0.5, 0, 0], [0, 0, 0]])
    # gains 1, 0.2, -1 (an inverted cell) and 0.587 * 0.5 (green row only): floor 0.5
    expected = (0.0 + 0.3 ** 2 + 1.5 ** 2 + (0.5 - 0.2935) ** 2) / 4
    torch.testing.assert_close(lightness_gain_loss(field, 0.5), torch.tensor(expected), atol=1e-6, rtol=0)
    assert float(lightness_gain_loss(field, -2.0)) == 0.0


def test_lightness_gain_reads_only_the_matrix():
    eye = [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    flat = [[0.0] * 3] * 3  # a painted cell: out = b whatever the guide (the negative control)
    assert float(lightness_gain_loss(affine_cells(eye, eye, offset=0.7, extra=4), 0.5)) == 0.0
    torch.testing.assert_close(lightness_gain_loss(affine_cells(flat, eye, offset=-0.3, extra=4), 0.5),
                               torch.tensor(0.25 / 2))
    # a recolouring that keeps the luma response (R and B swapped, gain 0.299 + 0.587 + 0.114 = 1) is free
    swapped = [[0, 0, 1.0], [0, 1.0, 0], [1.0, 0, 0]]
    assert float(lightness_gain_loss(affine_cells(swapped), 0.9)) == 0.0
    with pytest.raises(ValueError, match="coefficients"):
        lightness_gain_loss(torch.zeros(1, 9, 2, 2), 0.5)


def test_coefficient_anchor_hand_value():
    eye = [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    assert float(coefficient_anchor_loss(affine_cells(eye, eye, extra=4))) == 0.0  # detail features not anchored
    # cell 2: A_00 0.5 away, offsets 0.2 each: (0.5 + 3 * 0.2) / 12 over two cells (the negative control above)
    moved = [[1.5, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    field = torch.cat([affine_cells(eye), affine_cells(moved, offset=0.2)], -1)
    torch.testing.assert_close(coefficient_anchor_loss(field), torch.tensor((0.5 + 0.6) / 24), atol=1e-7, rtol=0)
    with pytest.raises(ValueError, match="coefficients"):
        coefficient_anchor_loss(torch.zeros(1, 9, 2, 2))


def test_lightness_gain_gradient_only_below_the_floor():
    eye = [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    field = affine_cells(eye, [[0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1]]).requires_grad_(True)
    lightness_gain_loss(field, 0.5).backward()
    assert float(field.grad[..., 0].abs().sum()) == 0.0
    # d/dA_ij of (0.5 - G)^2 / 2 = -(0.5 - 0.1) l_i: every matrix entry of the low cell is pushed up
    grad = field.grad[0, :9, 0, 1].view(3, 3)
    torch.testing.assert_close(grad, -0.4 * torch.tensor([0.299, 0.587, 0.114])[:, None].expand(3, 3),
                               atol=1e-6, rtol=0)
    assert float(field.grad[0, 9:, 0].abs().sum()) == 0.0


def test_lightness_gain_is_the_luma_response_of_apply_affine_colour():
    """G read off the layout = the luma change apply_affine_colour makes for a grey step of its guide."""
    from sim2real.translator.layers import apply_affine_colour

    torch.manual_seed(7)
    field = torch.randn(2, 12, 3, 4) * 0.5
    guide, step = torch.rand(2, 3, 3, 4) * 2 - 1, 0.25
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    response = ((apply_affine_colour(field, guide + step) - apply_affine_colour(field, guide)) * luma).sum(1) / step
    floor = float(response.max()) + 0.1  # every cell below it: the loss is the mean of (floor - G)^2
    torch.testing.assert_close(lightness_gain_loss(field, floor), (floor - response).square().mean(),
                               atol=1e-5, rtol=0)
