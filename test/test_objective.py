"""Training objective: every term finite, every generator term carries gradient to the generator (through
frozen critics where it should), discriminator/critic losses train only their own nets, aux critics behave
as box / label critics, and a short overfit run drives the reconstruction down."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import IGNORE_ID, TRAIN_ID
from sim2real.translator.aux_nets import (
    AuxConfig,
    AuxNets,
    BoxHead,
    box_head_loss,
    decode_box_deltas,
    frozen,
    instance_classes,
    photometric_jitter,
)
from sim2real.translator.boxes import instance_boxes
from sim2real.translator.config import get_generator_config
from sim2real.translator.discriminator import ContentDiscriminator, DiscriminatorConfig, MultiScaleDiscriminator
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.layers import apply_affine_colour, upsample_to
from sim2real.translator.losses import (
    box_consistency_loss,
    coefficient_anchor_loss,
    dark_level_loss,
    instance_chroma_loss,
    instance_hue_loss,
    instance_shading_loss,
    lightness_gain_loss,
    memory_contrastive_loss,
)
from sim2real.translator.objective import (
    TERM_WEIGHTS,
    LossWeights,
    SourceBatch,
    TargetBatch,
    aux_losses,
    box_critic_losses,
    discriminator_losses,
    generator_losses,
    semantic_critic_loss,
    translate_batches,
    update_generator_state,
)
from sim2real.translator.patch_nce import PatchProjector

H, W = 32, 48
CAR, SKY, VEG = TRAIN_ID["car"], TRAIN_ID["sky"], TRAIN_ID["vegetation"]


def make_source(batch: int = 2, seed: int = 0) -> SourceBatch:
    """Sky over vegetation, one or two cars, a traffic sign; smooth colour gradients + a little noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    rgb = torch.stack([0.3 * xx, 0.5 * yy, -0.2 + 0.6 * yy])[None].repeat(batch, 1, 1, 1)
    rgb = rgb + 0.05 * torch.randn(batch, 3, H, W, generator=g)
    sem = torch.where(yy < 0, SKY, VEG).long()[None].repeat(batch, 1, 1)
    inst = torch.zeros(batch, H, W, dtype=torch.long)
    for b in range(batch):
        x0 = 4 + 6 * b
        rgb[b, :, 18:28, x0:x0 + 16] = torch.tensor([0.9, -0.6, -0.4])[:, None, None]
        sem[b, 18:28, x0:x0 + 16] = CAR
        inst[b, 18:28, x0:x0 + 16] = 1000 + b
        sem[b, 4:8, 40:44] = TRAIN_ID["traffic sign"]
        rgb[b, :, 4:8, 40:44] = torch.tensor([0.9, 0.9, -0.9])[:, None, None]
    sem[:, 0, :] = IGNORE_ID
    return SourceBatch(rgb.clamp(-1, 1), sem, inst)


def with_grey_car(src: SourceBatch) -> SourceBatch:
    """``src`` with the last frame's car painted neutral grey (chroma exactly 0): the instance-chroma term reads
    it, the instance-hue term does not (a grey reference has no hue)."""
    rgb = src.rgb.clone()
    car = src.instance[-1] > 0
    rgb[-1][:, car] = 0.2
    return dataclasses.replace(src, rgb=rgb)


def make_target(batch: int = 2, seed: int = 1) -> TargetBatch:
    g = torch.Generator().manual_seed(seed)
    return TargetBatch(torch.rand(batch, 3, H, W, generator=g) * 2 - 1)


def small_nets(conditional: bool = True):
    torch.manual_seed(0)
    gcfg = get_generator_config("lite")
    gen = TranslatorGenerator(gcfg)
    dcfg = DiscriminatorConfig(base_channels=8, max_channels=32, feature_channels=8, num_scales=2,
                               num_classes=19 if conditional else 0)
    d_t, d_s = MultiScaleDiscriminator(dcfg), MultiScaleDiscriminator(dcfg)
    d_c = ContentDiscriminator(gcfg.content_channels, hidden=16)
    aux = AuxNets(AuxConfig(box_channels=8, box_hidden=16, seg_channels=8, max_instances=4))
    return gen, d_t, d_s, d_c, aux


def pretrain_aux(aux: AuxNets, src: SourceBatch, steps: int = 5) -> None:
    """A few critic steps so the box head's delta layer is no longer zero (a trained critic)."""
    opt = torch.optim.Adam(aux.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss = aux_losses(aux, src, generator=g)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    aux.zero_grad(set_to_none=True)


def gen_grads(loss: torch.Tensor, gen: TranslatorGenerator) -> list[torch.Tensor]:
    params = [p for p in gen.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [g for g in grads if g is not None]


# ------------------------------------------------------------------ config
def test_loss_weights_validation():
    assert LossWeights().adversarial_mode == "lsgan"
    with pytest.raises(ConfigError, match=r"hinge.*lsgan"):
        LossWeights(adversarial_mode="wgan")
    with pytest.raises(ConfigError, match="cycle"):
        LossWeights(cycle=-1.0)
    with pytest.raises(ConfigError):
        LossWeights(small_class_weight=0.0)
    assert set(TERM_WEIGHTS.values()) <= {f for f in LossWeights.__dataclass_fields__}


def test_batches_validate_shapes():
    src = make_source(1)
    with pytest.raises(LabelError, match="semantic"):
        SourceBatch(src.rgb, src.semantic[:, :-1], src.instance)
    with pytest.raises(ConfigError):
        TargetBatch(torch.zeros(1, 4, H, W))


# ------------------------------------------------------------------ generator side
def test_every_generator_term_finite_with_nonzero_generator_gradient():
    gen, d_t, d_s, d_c, aux = small_nets()
    src, tgt = with_grey_car(make_source()), make_target()
    pretrain_aux(aux, src)
    # floor 2: the decoder starts near the identity map (gain ~1), so the term has a gradient here; margin 0: any
    # colour the untrained generator gives the grey car costs
    weights = LossWeights(nce=1.0, instance_hue=1.0, instance_chroma=1.0, instance_chroma_margin=0.0,
                          lightness_gain=1.0, lightness_gain_floor=2.0, coefficient_anchor=1.0, instance_shading=1.0,
                          instance_shading_floor=2.0, dark_level=1.0, dark_level_below=1.0, dark_level_margin=0.0)
    projector = PatchProjector([gen.cfg.content_channels], dim=16)
    losses = generator_losses(gen, d_t, d_s, aux, src, tgt, weights, content_disc=d_c, projector=projector)
    assert set(TERM_WEIGHTS) <= set(losses), sorted(losses)
    for name, value in losses.items():
        assert torch.isfinite(value).all(), name
    for term in TERM_WEIGHTS:
        grads = gen_grads(losses[term], gen)
        assert grads, f"{term}: no gradient path to the generator"
        assert all(torch.isfinite(g).all() for g in grads), term
        assert sum(g.abs().sum() for g in grads) > 0, f"{term}: zero gradient w.r.t. generator"
    expected = sum(getattr(weights, TERM_WEIGHTS[t]) * losses[t] for t in TERM_WEIGHTS)
    torch.testing.assert_close(losses["total"], expected)


def test_total_backward_fills_only_generator_gradients():
    gen, d_t, d_s, d_c, aux = small_nets()
    src, tgt = make_source(), make_target()
    pretrain_aux(aux, src)
    losses = generator_losses(gen, d_t, d_s, aux, src, tgt, LossWeights(adversarial_mode="hinge"),
                              content_disc=d_c)
    losses["total"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())
    for net in (d_t, d_s, d_c, aux):
        assert all(p.grad is None for p in net.parameters()), type(net).__name__
        assert all(p.requires_grad for p in net.parameters())  # frozen() restored the flags
        assert net.training


def test_box_and_semantic_critics_carry_gradient_to_the_generator():
    """The two anti-washout terms specifically: box regression part alone, and the semantic CE."""
    gen, _, _, _, aux = small_nets()
    src, tgt = make_source(), make_target()
    pretrain_aux(aux, src)
    out = translate_batches(gen, aux, src, tgt)
    with frozen(aux):
        box = box_critic_losses(aux, out.fake_target, src)
        sem = semantic_critic_loss(aux, out.fake_target, src, small_class_weight=5.0)
    regression = box["l1"] + box["giou"]
    assert regression > 0
    for loss in (regression, box["cls"], sem):
        grads = gen_grads(loss, gen)
        assert sum(g.abs().sum() for g in grads) > 0
    # and the image itself gets a gradient from the regression part (no torch.Tensor([...]) rebuild)
    img = out.fake_target.detach().requires_grad_()
    with frozen(aux):
        b = box_critic_losses(aux, img, src)
    (b["l1"] + b["giou"]).backward()
    assert img.grad.abs().sum() > 0


def test_zero_weights_skip_terms():
    gen, d_t, d_s, d_c, aux = small_nets(conditional=False)
    w = LossWeights(adv=0, cycle=0, latent=0, kl=0, content_adv=0, memory=0, bbox=0, bbox_class=0, semantic=0)
    losses = generator_losses(gen, d_t, d_s, aux, make_source(), make_target(), w, content_disc=d_c)
    assert set(losses) == {"self_recon", "total"}
    torch.testing.assert_close(losses["total"], 10.0 * losses["self_recon"])


def test_memory_wrapper_matches_generator_memory():
    gen, *_ = small_nets()
    src = make_source()
    code = gen.encode_content(src.rgb, "source", src.semantic, src.instance)
    q = gen.memory_queries(code)
    loss = memory_contrastive_loss(gen.memory, q, src.semantic)
    torch.testing.assert_close(loss, gen.memory.contrastive_loss(q, src.semantic))
    assert loss > 0
    assert sum(g.abs().sum() for g in gen_grads(loss, gen)) > 0


def test_conditional_discriminator_without_target_labels_is_an_error():
    gen, d_t, d_s, _, _ = small_nets(conditional=True)
    with pytest.raises(ConfigError, match="labels"):
        generator_losses(gen, d_t, d_s, None, make_source(), make_target(), LossWeights())
    # given target labels it works without aux nets
    tgt = TargetBatch(make_target().rgb, torch.full((2, H, W), VEG, dtype=torch.long))
    losses = generator_losses(gen, d_t, d_s, None, make_source(), tgt, LossWeights())
    assert "bbox" not in losses and "semantic" not in losses and torch.isfinite(losses["total"])


def _term_off_and_on(weights: LossWeights, source=None):
    """A small generator's losses on one batch with the extra term off and on: (gen, src, outputs, off, on)."""
    gen, d_t, d_s, _, _ = small_nets(conditional=False)
    src, tgt = source or make_source(), make_target()
    out = translate_batches(gen, None, src, tgt)
    off = generator_losses(gen, d_t, d_s, None, src, tgt, LossWeights(), outputs=out)
    on = generator_losses(gen, d_t, d_s, None, src, tgt, weights, outputs=out)
    return gen, src, out, off, on


def _assert_weighted_term(name: str, weight: float, expected, gen, *, off: dict, on: dict) -> None:
    """``name`` is absent when off; when on it equals ``expected``, enters the total times ``weight`` and
    reaches the generator's weights."""
    assert name not in off and TERM_WEIGHTS[name] == name
    torch.testing.assert_close(on[name], expected)
    torch.testing.assert_close(on["total"], off["total"] + weight * expected)
    assert sum(g.abs().sum() for g in gen_grads(on[name], gen)) > 0


def test_instance_hue_term_is_weighted_into_the_total_only_when_on():
    gen, src, out, off, on = _term_off_and_on(LossWeights(instance_hue=3.0))
    expected = instance_hue_loss(out.fake_target, src.rgb, src.instance)
    assert float(expected.detach()) > 0  # an untrained generator does not keep the red cars' hue
    _assert_weighted_term("instance_hue", 3.0, expected, gen, off=off, on=on)


def test_instance_chroma_term_is_weighted_into_the_total_only_when_on():
    weights = LossWeights(instance_chroma=2.0, instance_chroma_margin=0.0)
    gen, src, out, off, on = _term_off_and_on(weights, with_grey_car(make_source()))
    expected = instance_chroma_loss(out.fake_target, src.rgb, src.instance, margin=0.0)
    assert float(expected.detach()) > 0  # the untrained generator tints the grey car
    _assert_weighted_term("instance_chroma", 2.0, expected, gen, off=off, on=on)
    _, _, _, _, wide = _term_off_and_on(LossWeights(instance_chroma=2.0, instance_chroma_margin=5.0), src)
    assert float(wide["instance_chroma"].detach()) == 0.0  # the margin reaches the term


def test_lightness_gain_term_reads_the_fake_target_coefficients():
    gen, _, out, off, on = _term_off_and_on(LossWeights(lightness_gain=2.0, lightness_gain_floor=1.5))
    expected = lightness_gain_loss(out.coefficients_fake_target, 1.5)
    assert float(expected.detach()) > 0.1  # gain ~1 near the identity start, floor 1.5
    _assert_weighted_term("lightness_gain", 2.0, expected, gen, off=off, on=on)


def test_instance_shading_term_reads_the_fake_target_against_the_source():
    weights = LossWeights(instance_shading=2.0, instance_shading_floor=1.5)
    gen, src, out, off, on = _term_off_and_on(weights, with_grey_car(make_source()))
    expected = instance_shading_loss(out.fake_target, src.rgb, src.instance, floor=1.5)
    assert float(expected.detach()) > 0  # floor 1.5: above any gain near the identity start
    _assert_weighted_term("instance_shading", 2.0, expected, gen, off=off, on=on)
    _, _, _, _, low = _term_off_and_on(LossWeights(instance_shading=2.0, instance_shading_floor=0.0), src)
    assert float(low["instance_shading"].detach()) < float(expected.detach())  # the floor reaches the term


def test_dark_level_term_reads_the_fake_target_against_the_source():
    src = make_source()
    src = dataclasses.replace(src, rgb=torch.full_like(src.rgb, -0.95))  # every source pixel black
    weights = LossWeights(dark_level=2.0, dark_level_margin=0.0)
    gen, src, out, off, on = _term_off_and_on(weights, src)
    expected = dark_level_loss(out.fake_target, src.rgb, margin=0.0)
    assert float(expected.detach()) > 0  # the untrained generator lifts some black pixel
    _assert_weighted_term("dark_level", 2.0, expected, gen, off=off, on=on)
    _, _, _, _, wide = _term_off_and_on(LossWeights(dark_level=2.0, dark_level_margin=5.0), src)
    assert float(wide["dark_level"].detach()) == 0.0  # the margin reaches the term
    with pytest.raises(ConfigError, match="dark_level_below"):
        LossWeights(dark_level_below=-1.0)


def test_coefficient_anchor_term_reads_the_fake_target_coefficients():
    gen, _, out, off, on = _term_off_and_on(LossWeights(coefficient_anchor=3.0))
    expected = coefficient_anchor_loss(out.coefficients_fake_target)
    assert float(expected.detach()) > 0.0  # a fresh tanh decoder's head has small random weights
    _assert_weighted_term("coefficient_anchor", 3.0, expected, gen, off=off, on=on)


def test_decoder_coefficients_are_the_ones_it_applied():
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_generator_config("lite"), detail_channels=4, detail_highpass=True,
                              coefficient_pooling=0.5, use_camera=True)
    gen = TranslatorGenerator(cfg).eval()
    with torch.no_grad():
        gen.decoders["target"].detail.out.weight.normal_(0, 0.3)  # a detail path that is not the zero start
    src = make_source()
    with torch.no_grad():
        content = gen.encode_content(src.rgb, "source", src.semantic, src.instance)
        style = gen.mean_style("target", src.rgb.shape[0])
        image, coeffs = gen.decode_with_coefficients(content, style, "target", camera=False)
        torch.testing.assert_close(gen.decode(content, style, "target", camera=False), image)
        guide = content.guide_for("target")
        assert coeffs.shape[-2:] == (H // gen.cfg.work_scale, W // gen.cfg.work_scale)
        rebuilt = apply_affine_colour(upsample_to(coeffs[:, :12], guide.shape[-2:]), guide)
        if gen.decoders["target"].detail is not None:
            rebuilt = rebuilt + gen.decoders["target"].detail(guide, coeffs[:, 12:], None, content.semantic)[0]
        torch.testing.assert_close(torch.tanh(rebuilt), image, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ discriminator / aux side
def test_discriminator_losses_train_only_discriminators():
    gen, d_t, d_s, d_c, aux = small_nets()
    src, tgt = make_source(), make_target()
    for mode in ("lsgan", "hinge"):
        losses = discriminator_losses(gen, d_t, d_s, aux, src, tgt, LossWeights(adversarial_mode=mode),
                                      content_disc=d_c)
        assert {"d_target", "d_source", "content", "total"} <= set(losses)
        assert all(torch.isfinite(v) for v in losses.values())
        losses["total"].backward()
    for net in (d_t, d_s, d_c):
        assert sum(p.grad.abs().sum() for p in net.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for p in gen.parameters())
    assert all(p.grad is None for p in aux.parameters())


def test_aux_losses_train_the_critics():
    _, _, _, _, aux = small_nets()
    losses = aux_losses(aux, make_source(), small_class_weight=3.0)
    assert {"box", "segmenter", "total"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    for net in (aux.box_head, aux.segmenter):
        assert sum(p.grad.abs().sum() for p in net.parameters() if p.grad is not None) > 0


def test_update_generator_state_moves_memory_and_style_mean():
    gen, _, _, _, aux = small_nets()
    src, tgt = make_source(), make_target()
    tgt = TargetBatch(tgt.rgb, torch.full((2, H, W), VEG, dtype=torch.long))
    out = translate_batches(gen, aux, src, tgt)
    keys, values, mean = gen.memory.keys.clone(), gen.memory.values.clone(), gen.style_mean.clone()
    update_generator_state(gen, out)
    assert not torch.equal(keys, gen.memory.keys)
    assert not torch.equal(values[1], gen.memory.values[1])  # target values, from the target labels
    assert not torch.equal(mean, gen.style_mean)


def test_frozen_blocks_parameter_gradients_but_not_input_gradients():
    aux = AuxNets(AuxConfig(seg_channels=8, box_channels=8, box_hidden=16))
    x = torch.randn(1, 3, H, W, requires_grad=True)
    with frozen(aux):
        assert not aux.training
        aux.segmenter(x).sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is None for p in aux.parameters())
    assert all(p.requires_grad for p in aux.parameters()) and aux.training


def test_instance_classes_majority_vote():
    sem = torch.tensor([[[13, 13, 11, 0], [13, 255, 11, 0]]])
    inst = torch.tensor([[[5, 5, 7, 0], [5, 5, 7, 9]]])
    ids = torch.tensor([[5, 7, 9, 0]])
    valid = torch.tensor([[True, True, True, False]])
    assert instance_classes(sem, inst, ids, valid).tolist() == [[13, 11, 0, IGNORE_ID]]


def test_decode_box_deltas_identity_and_shift():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    torch.testing.assert_close(decode_box_deltas(boxes, torch.zeros(1, 4)), boxes)
    shifted = decode_box_deltas(boxes, torch.tensor([[0.5, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(shifted, torch.tensor([[20.0, 20.0, 40.0, 60.0]]))


def test_photometric_jitter_range_and_identity():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert photometric_jitter(x, 0.0) is x
    y = photometric_jitter(x, 0.5, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and not torch.equal(x, y)


def _box_scenes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rgb = torch.full((n, 3, H, W), -0.6) + 0.05 * torch.randn(n, 3, H, W, generator=g)
    sem = torch.zeros(n, H, W, dtype=torch.long)
    inst = torch.zeros(n, H, W, dtype=torch.long)
    for i in range(n):
        h, w = int(torch.randint(6, 14, (1,), generator=g)), int(torch.randint(8, 18, (1,), generator=g))
        y, x = int(torch.randint(0, H - h, (1,), generator=g)), int(torch.randint(0, W - w, (1,), generator=g))
        rgb[i, :, y:y + h, x:x + w] = torch.tensor([0.8, -0.2, 0.1])[:, None, None]
        sem[i, y:y + h, x:x + w] = CAR
        inst[i, y:y + h, x:x + w] = 7
    return rgb, sem, inst


def test_trained_box_head_penalises_moved_and_erased_objects():
    """What makes the box term a box-*preservation* critic: same image -> low, object moved/erased -> high."""
    torch.manual_seed(0)
    head = BoxHead(AuxConfig(box_channels=8, box_hidden=32, max_instances=1, box_jitter=0.2))
    rgb, sem, inst = _box_scenes(32, seed=0)
    b = instance_boxes(inst, 1)
    cls = instance_classes(sem, inst, b.ids, b.valid)
    opt = torch.optim.Adam(head.parameters(), 1e-2)
    g = torch.Generator().manual_seed(1)
    for step in range(80):
        i = (step * 8) % 32
        loss = box_head_loss(head, rgb[i:i + 8], b.boxes[i:i + 8], b.valid[i:i + 8], cls[i:i + 8], generator=g)
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
    rgb, sem, inst = _box_scenes(8, seed=5)
    b = instance_boxes(inst, 1)

    def critic(image: torch.Tensor) -> float:
        with frozen(head), torch.no_grad():
            pred, _ = head(image, b.boxes)
            return box_consistency_loss(pred, b.boxes, b.valid, (H, W))["total"].item()

    same = critic(rgb)
    moved = critic(torch.roll(rgb, shifts=(0, 8), dims=(2, 3)))
    erased = critic(torch.full_like(rgb, -0.6))
    assert same < 0.8 * moved, (same, moved)
    assert same < 0.8 * erased, (same, erased)


# ------------------------------------------------------------------ overfit
@pytest.mark.timeout(900)  # 100 optimisation steps: ~10 s alone, minutes on a loaded 2-core machine
def test_overfit_reconstruction_halves_in_100_steps():
    """One source + one target frame (32x48), a tiny variant of the lite generator (same architecture and
    options, narrower: keeps the test ~10 s on a shared CPU), 100 Adam steps on the non-adversarial
    objective (reconstructions, latents, KL, memory): the reconstruction losses fall by >= 50%."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        get_generator_config("lite"), name="custom", base_channels=8, content_channels=32, num_enc_res=1,
        num_dec_res=1, style_channels=16, style_mlp_dim=16, instance_channels=8, memory_key_dim=8,
        memory_value_dim=8, label_embed_dim=4,
    )
    gen = TranslatorGenerator(cfg)
    d_cfg = DiscriminatorConfig(base_channels=8, max_channels=16, feature_channels=8, num_scales=1, num_classes=0)
    d_t, d_s = MultiScaleDiscriminator(d_cfg), MultiScaleDiscriminator(d_cfg)
    src = make_source(1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    tgt = TargetBatch(torch.stack([yy, -xx, 0.3 * torch.ones_like(xx)])[None])
    w = LossWeights(adv=0.0, content_adv=0.0, bbox=0.0, semantic=0.0)
    opt = torch.optim.Adam(gen.parameters(), 1e-3, betas=(0.5, 0.999))
    history = []
    for _ in range(100):
        out = translate_batches(gen, None, src, tgt)
        losses = generator_losses(gen, d_t, d_s, None, src, tgt, w, outputs=out)
        assert torch.isfinite(losses["total"])
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        update_generator_state(gen, out)
        history.append((losses["self_recon"] + losses["cycle"]).item())
    first = sum(history[:5]) / 5
    last = sum(history[-5:]) / 5
    assert last <= 0.5 * first, (first, last)


# ------------------------------------------------------------------ one-sided (CUT) with camera and detail path
def test_one_sided_pass_trains_the_detail_path_and_camera_through_the_adversarial_and_nce_terms():
    import dataclasses

    from sim2real.translator.objective import translate_one_sided

    torch.manual_seed(0)
    cfg = dataclasses.replace(get_generator_config("lite"), detail_channels=4, use_camera=True)
    gen = TranslatorGenerator(cfg)
    with torch.no_grad():  # a trained-looking detail path (its output conv starts at zero)
        for d in gen.decoders.values():
            d.detail.out.weight.normal_(0, 0.1)
    dcfg = DiscriminatorConfig(base_channels=8, max_channels=32, feature_channels=8, num_classes=0,
                               coordinates=True)
    d_t, d_s = MultiScaleDiscriminator(dcfg), MultiScaleDiscriminator(dcfg)
    box = torch.tensor([[0.1, 0.2, 0.6, 0.9], [0.4, 0.0, 1.0, 0.5]])
    src = dataclasses.replace(with_grey_car(make_source()), frame_box=box)
    tgt = dataclasses.replace(make_target(), frame_box=box.flip(0))
    out = translate_one_sided(gen, None, src, tgt)
    assert out.fake_source is None and out.cycle_source is None and out.rec_source is None
    # floor 2: above the identity start's gain ~1, so the shipped recipe's floor term is on and has a gradient here
    weights = LossWeights(nce=1.0, bbox=0, bbox_class=0, semantic=0, lightness_gain=1.0, lightness_gain_floor=2.0,
                          instance_hue=1.0, instance_chroma=1.0, instance_chroma_margin=0.0)
    projector = PatchProjector([cfg.content_channels], dim=16)
    losses = generator_losses(gen, d_t, d_s, None, src, tgt, weights, outputs=out, projector=projector)
    assert {"adv", "self_recon", "nce", "latent_content", "kl", "lightness_gain", "instance_hue",
            "instance_chroma"} <= set(losses)
    assert float(losses["lightness_gain"].detach()) > 0.5 and float(losses["instance_chroma"].detach()) > 0
    with pytest.raises(ConfigError, match="lightness_gain"):  # never skipped silently
        generator_losses(gen, d_t, d_s, None, src, tgt, weights, projector=projector,
                         outputs=dataclasses.replace(out, coefficients_fake_target=None))
    assert "cycle" not in losses
    losses["total"].backward()
    for name in ("camera.vignette", "camera.ca", "camera.blur", "camera.noise", "decoders.target.detail.conv.weight",
                 "decoders.target.detail.out.weight"):
        p = dict(gen.named_parameters())[name]
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in d_t.parameters())  # frozen inside generator_losses
    d = discriminator_losses(gen, d_t, d_s, None, src, tgt, weights, outputs=out)
    assert "d_source" not in d and torch.isfinite(d["total"])
    # the random part: two passes with different noise differ, the mean output (no noise) is deterministic
    c = gen.encode_content(src.rgb, "source", src.semantic, src.instance)
    z = gen.mean_style("target", 2)
    a, b = gen.decode(c, z, "target", noise=torch.randn(2, 4, H, W)), gen.decode(c, z, "target",
                                                                                noise=torch.randn(2, 4, H, W))
    m1, m2 = gen.decode(c, z, "target"), gen.decode(c, z, "target")
    assert (a - b).abs().max() > 1e-3 and torch.equal(m1, m2)
