"""TranslatorGenerator: config/presets, shapes, size checks, instances, gradients, determinism, MACs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sim2real.core.errors import ConfigError, LabelError
from sim2real.translator.complexity import complexity_report, count_macs, count_params
from sim2real.translator.config import GENERATOR_PRESETS, GeneratorConfig, get_generator_config
from sim2real.translator.generator import ContentCode, TranslatorGenerator

PRESETS = sorted(GENERATOR_PRESETS)


def make_batch(cfg: GeneratorConfig, rows: int, cols: int, batch: int = 2, seed: int = 0):
    """rgb (B, 3, H, W) in [-1, 1], semantic with some 255, instance with two objects; H = rows * stride."""
    gen = torch.Generator().manual_seed(seed)
    H, W = rows * cfg.stride, cols * cfg.stride
    rgb = torch.rand(batch, 3, H, W, generator=gen) * 2 - 1
    semantic = torch.randint(0, cfg.num_classes, (batch, H, W), generator=gen)
    semantic[:, : H // 8] = 255
    instance = torch.zeros(batch, H, W, dtype=torch.long)
    instance[:, H // 4 : H // 2, W // 5 : W // 2] = 12
    instance[:, H // 2 :, 3 * W // 5 :] = 40000
    return rgb, semantic, instance


def model(preset: str, **overrides) -> TranslatorGenerator:
    torch.manual_seed(0)
    return TranslatorGenerator(dataclasses.replace(get_generator_config(preset), **overrides))


# ------------------------------------------------------------------------------------------------ config
def test_presets_and_registry() -> None:
    assert get_generator_config("lite").stride == 8 and get_generator_config("full").stride == 4
    for name in PRESETS:
        cfg = get_generator_config(name)
        assert cfg.name == name
        assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
        for w, h in ((640, 360), (1280, 720), (1920, 1080)):
            assert h % cfg.stride == 0 and w % cfg.stride == 0
    with pytest.raises(ConfigError, match="valid presets: \\['full', 'lite'\\]"):
        get_generator_config("medium")
    with pytest.raises(ConfigError, match="valid fields"):
        GeneratorConfig.from_dict({"nope": 1})
    with pytest.raises(ConfigError, match="work_scale"):
        GeneratorConfig(work_scale=3)
    with pytest.raises(ConfigError, match="max_instances"):
        GeneratorConfig(max_instances=0)
    with pytest.raises(ConfigError):
        TranslatorGenerator({"name": "lite"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"padding_mode must be one of \['replicate', 'zeros'\], got 'reflect'"):
        GeneratorConfig(padding_mode="reflect")
    with pytest.raises(ConfigError, match=r"label_resolution must be one of \['input', 'work'\]"):
        GeneratorConfig(label_resolution="content")


def test_configs_saved_before_padding_and_label_resolution_existed_still_load() -> None:
    """Checkpoints written before 2026-11-23 lack the two fields: they mean replicate padding, every pixel."""
    old = {k: v for k, v in GeneratorConfig(name="lite").to_dict().items()
           if k not in ("padding_mode", "label_resolution")}
    cfg = GeneratorConfig.from_dict(old)
    assert (cfg.padding_mode, cfg.label_resolution, cfg.work_scale) == ("replicate", "input", 2)
    gen = TranslatorGenerator(cfg)
    assert gen.stems["source"].conv.in_channels == 3 + cfg.label_embed_dim + 2
    assert gen.stems["source"].conv.padding_mode == "replicate"


def test_body_padding_mode_pads_the_body_and_decoders_and_leaves_the_rest() -> None:
    """body_padding_mode reaches the content body and the decoders' blocks and head; the stems, style encoders,
    instance encoder and full-resolution detail path keep padding_mode; None means padding_mode everywhere."""
    with pytest.raises(ConfigError, match=r"body_padding_mode must be null or one of \['replicate', 'zeros'\]"):
        GeneratorConfig(body_padding_mode="reflect")
    cfg = dataclasses.replace(get_generator_config("lite"), body_padding_mode="replicate")
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    body = ("content_body.", "decoders.source.res", "decoders.source.ups", "decoders.source.head",
            "decoders.target.res", "decoders.target.ups", "decoders.target.head")
    for body_mode, expect_body in ((None, "zeros"), ("replicate", "replicate"), ("zeros", "zeros")):
        gen = model("lite", body_padding_mode=body_mode)
        modes = {name: m.padding_mode for name, m in gen.named_modules()
                 if isinstance(getattr(m, "padding_mode", None), str) and not name.startswith("camera")}
        in_body = {n: p for n, p in modes.items() if n.startswith(body)}
        rest = {n: p for n, p in modes.items() if not n.startswith(body)}
        assert len(in_body) >= 8 and set(in_body.values()) == {expect_body}
        assert any(n.startswith("decoders.target.detail") for n in rest) and any(n.startswith("stems") for n in rest)
        assert set(rest.values()) == {"zeros"}
    old = {k: v for k, v in get_generator_config("lite").to_dict().items() if k != "body_padding_mode"}
    assert GeneratorConfig.from_dict(old) == get_generator_config("lite")  # configs saved before the field


def test_box_mean_and_the_high_pass_detail_path_have_known_answers() -> None:
    """box_mean of an impulse spreads 1/k^2 over the k x k box and nothing beyond; a constant stays constant at
    the borders (replicate). The high-pass detail path removes a constant output entirely and keeps an impulse's
    centre at 1 - 1/k^2; without it the constant passes."""
    from sim2real.translator.generator import DetailPath
    from sim2real.translator.layers import box_mean

    impulse = torch.zeros(1, 1, 21, 21)
    impulse[0, 0, 10, 10] = 1.0
    box = box_mean(impulse, 5)
    assert torch.allclose(box[0, 0, 8:13, 8:13], torch.full((5, 5), 1 / 25))
    assert box.sum().item() == pytest.approx(1.0) and box[0, 0, 13, 10] == 0 and box[0, 0, 10, 7] == 0
    assert torch.allclose(box_mean(torch.full((1, 2, 4, 6), 0.3), 9), torch.full((1, 2, 4, 6), 0.3))
    with pytest.raises(ValueError, match="positive odd"):
        box_mean(impulse, 4)
    guide, features = torch.zeros(1, 3, 16, 24), torch.zeros(1, 4, 4, 6)
    plain, high = DetailPath(4, 8), DetailPath(4, 8, highpass=9)
    for path in (plain, high):
        with torch.no_grad():
            path.out.weight.zero_()
            path.out.bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
    with torch.no_grad():
        assert torch.allclose(plain(guide, features, None)[0], torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)
                              .expand(1, 3, 16, 24))
        assert high(guide, features, None)[0].abs().max() < 1e-6
    with pytest.raises(ConfigError, match="detail_highpass needs a detail path"):
        GeneratorConfig(detail_highpass=True)
    cfg = dataclasses.replace(get_generator_config("lite"), detail_highpass=True)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    assert model("lite", detail_highpass=True).decoders["target"].detail.highpass == 9  # 2 work_scale + 1
    old = {k: v for k, v in get_generator_config("lite").to_dict().items() if k != "detail_highpass"}
    assert not GeneratorConfig.from_dict(old).detail_highpass  # configs saved before the field: off


# ------------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("preset", PRESETS)
def test_translate_shapes_at_odd_stride_multiples(preset: str) -> None:
    gen = model(preset).eval()
    cfg = gen.cfg
    rgb, semantic, instance = make_batch(cfg, 9, 13)
    with torch.no_grad():
        out = gen(rgb, semantic, instance)
        content = gen.encode_content(rgb, "source", semantic, instance)
        style = gen.encode_style(rgb, "target")
        style_t, values = gen.encode_style_and_values(rgb, "target")
    H, W = rgb.shape[-2:]
    assert out.shape == rgb.shape and out.dtype == rgb.dtype
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0
    assert isinstance(content, ContentCode)
    assert content.features.shape == (2, cfg.content_channels, H // cfg.stride, W // cfg.stride)
    assert content.semantic_lowres is not None and content.semantic_lowres.shape == (2, 9, 13)
    assert content.instances is not None and content.instances.boxes.shape == (2, cfg.max_instances, 4)
    assert content.instance_masks is not None and content.instance_masks.shape == (2, cfg.max_instances, 9, 13)
    assert style.shape == (2, cfg.style_dim) and torch.equal(style, style_t)
    assert values.shape == (2, cfg.memory_value_dim, 9, 13)


def test_non_multiple_size_raises_clear_error() -> None:
    gen = model("lite").eval()
    rgb, semantic, instance = make_batch(gen.cfg, 9, 13, batch=1)
    bad = rgb[:, :, :-1, :]
    with pytest.raises(ConfigError, match=r"71x104 \(HxW\) is not a multiple of the generator stride 8"):
        gen.translate(bad, semantic[:, :-1], instance[:, :-1])
    with pytest.raises(ConfigError, match="multiple of the generator stride"):
        gen.encode_style(rgb[..., :-3], "source")
    with pytest.raises(LabelError, match="semantic must be"):
        gen.translate(rgb, semantic[:, :-8], instance)
    with pytest.raises(LabelError, match="instance must be an integer"):
        gen.translate(rgb, semantic, instance.float())
    with pytest.raises(ConfigError, match="valid domains"):
        gen.encode_content(rgb, "real", semantic, instance)


# --------------------------------------------------------------------------------------------- instances
def test_zero_instances_equals_no_instance_map() -> None:
    gen = model("lite").eval()
    rgb, semantic, _ = make_batch(gen.cfg, 5, 7)
    empty = torch.zeros_like(semantic)
    with torch.no_grad():
        content = gen.encode_content(rgb, "source", semantic, empty)
        assert content.instance_delta is not None and not content.instance_delta.any()
        assert torch.equal(gen.translate(rgb, semantic, empty), gen.translate(rgb, semantic, None))


def test_more_instances_than_the_cap() -> None:
    gen = model("lite", max_instances=4, label_resolution="input").eval()
    rgb, semantic, _ = make_batch(gen.cfg, 6, 10, batch=1)
    instance = torch.zeros_like(semantic)
    for i in range(12):  # 12 instances in 8x8 tiles, growing areas; the 4 largest are ids 108..111
        side = 2 + i // 2
        r, c = divmod(i, 6)
        instance[0, r * 8 : r * 8 + side, c * 8 : c * 8 + side] = 100 + i
    with torch.no_grad():
        content = gen.encode_content(rgb, "source", semantic, instance)
        out = gen.translate(rgb, semantic, instance)
    assert content.instances is not None and content.instances.valid.all()
    assert sorted(content.instances.ids[0].tolist()) == [108, 109, 110, 111]
    assert torch.isfinite(out).all()


def test_work_resolution_labels_give_cell_aligned_boxes_and_ignore_sub_cell_detail() -> None:
    gen = model("lite", max_instances=4).eval()
    assert gen.cfg.label_resolution == "work" and gen.cfg.work_scale == 4
    rgb, semantic, _ = make_batch(gen.cfg, 6, 10, batch=1)
    instance = torch.zeros_like(semantic)
    instance[0, 5:23, 9:30] = 7  # rows 5..22, cols 9..29: sampled at rows 6..22, cols 10..26 (4k + 2)
    instance[0, 30:32, 40:42] = 9  # 2 x 2 pixels between cell centres: never sampled
    with torch.no_grad():
        content = gen.encode_content(rgb, "source", semantic, instance)
        out = gen.translate(rgb, semantic, instance)
        moved = semantic.clone()
        moved[0, 0:2, 0:2] = 3  # off the cell centres: the source stem does not see it
        same = gen.translate(rgb, moved, instance)
    boxes = content.instances
    assert boxes is not None and boxes.valid[0].tolist() == [True, False, False, False]
    assert boxes.ids[0, 0] == 7
    assert boxes.boxes[0, 0].tolist() == [8.0, 4.0, 28.0, 24.0]  # cells 2..6 x 1..5, in input pixels
    assert content.instance_masks is not None and content.instance_masks.shape == (1, 4, 6, 10)
    assert torch.isfinite(out).all() and torch.equal(out, same)


# ------------------------------------------------------------------------------------------- gradients
TRANSLATE_MODULES = ("stems.source", "content_body", "instance_branch", "memory_query", "decoders.target", "camera")
UNUSED_MODULES = ("stems.target", "style_encoders", "decoders.source")


def trained_detail_paths(gen: TranslatorGenerator) -> None:
    """The detail paths' output convs start at zero (a no-op), which by design holds back the gradient of the conv
    before them; perturb them as training does."""
    with torch.no_grad():
        for decoder in gen.decoders.values():
            if decoder.detail is not None:
                decoder.detail.out.weight.normal_(0, 0.1)


def test_identity_start_returns_the_colour_prior_s_map_and_still_learns() -> None:
    """A fresh lite with identity_start translates to its colour prior's map exactly (clamped to [-1, 1]); the
    default start (tanh, small random head weights) does not; the zero head still gets a gradient."""
    rgb, semantic, instance = make_batch(get_generator_config("lite"), 5, 7)
    gain, offset = torch.full((256, 3), 1.3), torch.tensor([[8.0, -6.0, 12.0]]).repeat(256, 1)
    outs = {}
    for start in (True, False):
        gen = model("lite", use_colour_prior=True, detail_channels=4, use_camera=False, identity_start=start).eval()
        gen.colour_prior.set_maps(gain, offset)
        with torch.no_grad():
            prior = gen.colour_prior(rgb, semantic).clamp(-1, 1)
            outs[start] = gen.translate(rgb, semantic, instance)
        assert (prior.abs() == 1).any() and (prior.abs() < 1).any()  # some pixels clamped, most not
    assert (outs[True] - prior).abs().max() < 1e-5
    assert (outs[False] - prior).abs().max() > 0.1
    gen = model("lite", use_colour_prior=True, identity_start=True).train()
    gen.colour_prior.set_maps(gain, offset)
    (gen.translate(rgb, semantic, instance) * torch.randn(2, 3, *rgb.shape[-2:])).sum().backward()
    assert gen.decoders["target"].head.weight.grad.abs().sum() > 0


def test_gradients_reach_every_translate_parameter() -> None:
    gen = model("lite").train()
    trained_detail_paths(gen)
    rgb, semantic, instance = make_batch(gen.cfg, 5, 7)
    gen.zero_grad()
    noise = torch.randn(2, 4, *rgb.shape[-2:])  # the random part too (the camera's noise level, the detail noise)
    out = gen.translate(rgb, semantic, instance, style=torch.randn(2, gen.cfg.style_dim), noise=noise)
    (out * torch.randn_like(out)).sum().backward()
    checked = 0
    for name, p in gen.named_parameters():
        if name.startswith(TRANSLATE_MODULES):
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
            checked += 1
        else:
            assert name.startswith(UNUSED_MODULES), f"parameter {name} belongs to no known path"
            assert p.grad is None, f"{name} is not on the translate path but got a gradient"
    assert checked > 20


def test_cycle_and_style_paths_carry_gradient() -> None:
    """s->t with an encoded target style, then s->t->s reconstruction with the known source labels."""
    gen = model("lite").train()
    trained_detail_paths(gen)
    x_s, sem, inst = make_batch(gen.cfg, 5, 7, seed=1)
    x_t, _, _ = make_batch(gen.cfg, 5, 7, seed=2)
    z_t, values_t = gen.encode_style_and_values(x_t, "target")
    z_s, values_s = gen.encode_style_and_values(x_s, "source")
    fake_t = gen.decode(gen.encode_content(x_s, "source", sem, inst), z_t, "target")
    back = gen.encode_content(fake_t, "target", sem, inst)
    rec_s = gen.decode(back, z_s, "source")
    fake_s = gen.decode(gen.encode_content(x_t, "target"), z_s, "source")  # t->s without labels
    self_rec = gen.decode(gen.encode_content(x_s, "source", sem, inst), z_s, "source", style_map=values_s)
    self_rec_t = gen.decode(gen.encode_content(x_t, "target"), z_t, "target", style_map=values_t)
    loss = (rec_s - x_s).abs().mean() + fake_s.mean() + (self_rec - x_s).abs().mean() + self_rec_t.mean()
    loss = loss + gen.memory_contrastive_loss(back)
    loss.backward()
    for prefix in ("stems.target", "style_encoders.source", "style_encoders.target", "decoders.source",
                   "memory_query"):
        grads = [p.grad for n, p in gen.named_parameters() if n.startswith(prefix)]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), prefix


def test_label_dropout_shows_labels_absent() -> None:
    gen = model("lite", label_dropout=1.0).train()
    rgb, semantic, instance = make_batch(gen.cfg, 5, 7)
    dropped = gen.encode_content(rgb, "source", semantic, instance)
    absent = gen.encode_content(rgb, "source", None, instance)
    assert torch.equal(dropped.global_features, absent.global_features)
    gen.eval()
    with torch.no_grad():
        labelled = gen.encode_content(rgb, "source", semantic, instance)
    assert not torch.allclose(labelled.global_features, absent.global_features)


# ---------------------------------------------------------------------------------- memory, style mean
def test_memory_update_and_style_mean() -> None:
    gen = model("lite").eval()
    rgb, semantic, instance = make_batch(gen.cfg, 5, 7)
    assert gen.memory is not None
    with torch.no_grad():
        content = gen.encode_content(rgb, "source", semantic, instance)
        _, values = gen.encode_style_and_values(rgb, "target")
        before = gen.memory.values.clone()
        gen.update_memory(content, values, "target")
        assert torch.equal(gen.memory.values[0], before[0]) and not torch.equal(gen.memory.values[1], before[1])
        style = torch.randn(2, gen.cfg.style_dim)
        gen.update_style_mean(style, "target")
        m = gen.cfg.style_momentum
        assert torch.allclose(gen.style_mean[1], (1 - m) * style.mean(0))
        assert torch.equal(gen.style_mean[0], torch.zeros(gen.cfg.style_dim))
        default = gen.translate(rgb, semantic, instance)
        explicit = gen.translate(rgb, semantic, instance, style=gen.style_mean[1].expand(2, -1))
    assert torch.equal(default, explicit)


def test_without_memory_or_instance_branch() -> None:
    gen = model("lite", use_memory=False, use_instance_branch=False).eval()
    rgb, semantic, instance = make_batch(gen.cfg, 3, 4)
    with torch.no_grad():
        content = gen.encode_content(rgb, "source", semantic, instance)
        assert content.instance_delta is None and gen.read_memory(content, "target") is None
        assert gen.translate(rgb, semantic, instance).shape == rgb.shape
        style, values = gen.encode_style_and_values(rgb, "target")
        assert values.shape == (2, 0, 3, 4)
        assert torch.equal(gen.decode(content, style, "target", style_map=values), gen.decode(content, style, "target"))
    assert not any(n.startswith(("memory", "instance_branch")) or "value_head" in n for n, _ in gen.named_parameters())
    with pytest.raises(ConfigError, match="no class-wise memory"):
        gen.memory_queries(content)


# ----------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("preset", PRESETS)
def test_deterministic_in_eval_mode(preset: str) -> None:
    gen = model(preset).eval()
    rgb, semantic, instance = make_batch(gen.cfg, 3, 5)
    with torch.no_grad():
        a = gen.translate(rgb, semantic, instance)
        b = gen.translate(rgb, semantic, instance)
        single = gen.translate(rgb[1:], semantic[1:], instance[1:])
    assert torch.equal(a, b)
    assert torch.allclose(a[1:], single, atol=1e-5)  # no cross-sample leakage in a batch


# ------------------------------------------------------------------------------------------ complexity
def test_lite_fits_three_gmacs_at_640x360() -> None:
    gen = model("lite")
    macs = count_macs(gen, 360, 640)
    assert 1e9 < macs <= 3e9
    assert gen.training  # mode restored
    assert count_params(gen) == sum(p.numel() for p in gen.parameters())
    gen.stems["target"].requires_grad_(False)
    assert count_params(gen, trainable_only=True) == count_params(gen) - count_params(gen.stems["target"])
    report = complexity_report("lite", 72, 104)
    assert report.startswith("lite") and "GMACs" in report
    with pytest.raises(ConfigError, match="stride"):
        complexity_report("lite", 70, 104)
