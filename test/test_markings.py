"""Painted markings keep their chroma (``marking_chroma_classes``, ``sim2real/translator/markings.py``): the weight
and the decoder's chroma swap against known answers; the per-frame prior keeps a yellow stripe's chroma deviation
on the road and maps every other pixel exactly as without the option (a stripe on the sidewalk as the control);
the generator (target decoder only), ONNX, the config checks and a zero-step run switching it on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from procedural_frames import procedural_frames

from sim2real.core.colour import LUMA_WEIGHTS
from sim2real.core.errors import ConfigError
from sim2real.core.labels import TRAIN_ID
from sim2real.translator.colour_prior import FRAME_ROWS, STATS_STRIDE, ClassColourPrior, lab_to_srgb, srgb_to_lab
from sim2real.translator.config import GeneratorConfig, get_generator_config
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.markings import MARKING_CHROMA_RANGE, kept_guide_chroma, marked_lab, marking_columns

ROAD, SIDEWALK = TRAIN_ID["road"], TRAIN_ID["sidewalk"]
YELLOW_LAB = (86.0, -5.0, 23.0)  # CARLA's pale yellow centre line
_W = torch.tensor(LUMA_WEIGHTS, dtype=torch.float64).view(1, 3, 1, 1)


@pytest.mark.parametrize("gains", [(1.5, 0.5), (0.5, 1.5)])
def test_the_weight_ramps_in_the_squared_chroma_distance_and_the_map_keeps_the_deviation_at_one_gain(
        gains: tuple[float, float]) -> None:
    """Known answers of ``marked_lab`` on five pixels of one marking class (mu_k = (2, -3) in a, b; chroma gains
    1.5 and 0.5 either way round, so s = 0.5 and the map changes the axis whose gain is 1.5) and one pixel of
    another class."""
    low, high = MARKING_CHROMA_RANGE
    mid = ((low * low + high * high) / 2) ** 0.5  # halfway in the squared distance
    offsets = [(0.0, 0.0), (low, 0.0), (0.0, -mid), (high, 0.0), (-18.0, 24.0), (-18.0, 24.0)]
    lab = torch.tensor([[[[50.0 + 7 * i, 2 + da, -3 + db] for i, (da, db) in enumerate(offsets)]]])  # (1, 1, 6, 3)
    columns = marking_columns(torch.tensor([[1.2, *gains]]), torch.tensor([[40.0, 2.0, -3.0]])).view(1, 1, 1, 6)
    gaps = [0.5 - g for g in gains]
    assert columns.flatten().tolist() == pytest.approx([0, 2, -3, 0, *gaps])  # s - g
    member = torch.tensor([[[1.0, 1, 1, 1, 1, 0]]])
    mapped = torch.randn(1, 1, 6, 3)
    out, weight = marked_lab(lab, mapped, columns, member)
    assert weight.flatten().tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0, 0.0], abs=1e-5)
    expected = mapped.clone()
    for i, offset in enumerate(offsets):  # m (s - g) (x - mu_k) on a and b
        for axis in (0, 1):
            expected[0, 0, i, 1 + axis] += float(weight[0, 0, i]) * gaps[axis] * offset[axis]
    assert torch.allclose(out, expected, atol=1e-4)


def test_the_decoder_keeps_the_guides_chroma_and_its_own_lightness_where_the_weight_is_one() -> None:
    torch.manual_seed(0)
    out, guide = torch.randn(2, 3, 5, 6, dtype=torch.float64), torch.randn(2, 3, 5, 6, dtype=torch.float64)
    weight = torch.rand(2, 1, 5, 6, dtype=torch.float64)
    weight[:, :, 0], weight[:, :, 1] = 1.0, 0.0
    kept = kept_guide_chroma(out, guide, weight)

    def luma(x: torch.Tensor) -> torch.Tensor:
        return (x * _W).sum(1, keepdim=True)

    assert torch.allclose(luma(kept), luma(out), atol=1e-12)  # the map's lightness, everywhere
    chroma = kept - luma(kept)
    assert torch.allclose(chroma[:, :, 0], (guide - luma(guide))[:, :, 0], atol=1e-12)  # m = 1: the guide's chroma
    assert torch.equal(kept[:, :, 1], out[:, :, 1])  # m = 0: unchanged
    expected = out - luma(out) + weight * ((guide - luma(guide)) - (out - luma(out)))
    assert torch.allclose(chroma, expected, atol=1e-12)  # linear in m between the two
    # known answer: a grey output (0.2) of a yellow guide takes the guide's chroma at the grey's lightness
    yellow = torch.tensor([0.6, 0.5, -0.2], dtype=torch.float64).view(1, 3, 1, 1)
    grey = torch.full((1, 3, 1, 1), 0.2, dtype=torch.float64)
    y = float(luma(yellow))
    assert kept_guide_chroma(grey, yellow, torch.ones(1, 1, 1, 1)).flatten().tolist() == pytest.approx(
        [0.2 + 0.6 - y, 0.2 + 0.5 - y, 0.2 - 0.2 - y], abs=1e-12)


def _prior(marking_ids: tuple[int, ...]) -> ClassColourPrior:
    """A per-frame prior whose road and sidewalk rows map a warm grey (L 60, b 4) onto a darker, bluer road with
    a wider spread in Lab a (std 1 -> 3: a gain on a well above the one on b, which turns a stripe's hue)."""
    prior = ClassColourPrior(per_frame=True, marking_ids=marking_ids)
    class_of_id = torch.full((256,), FRAME_ROWS - 1)
    class_of_id[ROAD], class_of_id[SIDEWALK] = 0, 1
    source_mean = torch.tensor([60.0, 1.0, 4.0]).expand(FRAME_ROWS, 3).clone()
    real_mean = torch.tensor([40.0, 0.0, -3.0]).expand(FRAME_ROWS, 3).clone()
    source_std = torch.tensor([8.0, 1.0, 2.0]).expand(FRAME_ROWS, 3).clone()
    real_std = torch.tensor([8.0, 3.0, 3.0]).expand(FRAME_ROWS, 3).clone()
    adapts = torch.zeros(FRAME_ROWS)
    adapts[:2] = 1
    prior.set_statistics(class_of_id, (real_mean, real_std), (source_mean, source_std), adapts)
    return prior


def _striped_frame() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 64x96 frame: road (left) and sidewalk (right) of warm grey with Lab noise, a yellow stripe 3 px wide
    across both -> rgb (1, 3, H, W), semantic (1, H, W), the road stripe's and the sidewalk stripe's masks (H, W)."""
    gen = torch.Generator().manual_seed(0)
    lab = torch.tensor([60.0, 1.0, 4.0], dtype=torch.float64).view(1, 3, 1, 1).repeat(1, 1, 64, 96)
    lab = lab + torch.randn(1, 3, 64, 96, generator=gen, dtype=torch.float64) * torch.tensor([4.0, 0.7, 0.7]).view(
        1, 3, 1, 1)
    stripe = torch.zeros(1, 64, 96, dtype=torch.bool)
    stripe[:, 30:33] = True
    lab[:, :, 30:33] = torch.tensor(YELLOW_LAB, dtype=torch.float64).view(1, 3, 1, 1)
    sem = torch.full((1, 64, 96), ROAD)
    sem[:, :, 48:] = SIDEWALK
    return lab_to_srgb(lab).float(), sem, (stripe & (sem == ROAD))[0], (stripe & (sem == SIDEWALK))[0]


def test_the_prior_keeps_a_road_stripes_chroma_deviation_and_maps_every_other_pixel_as_before() -> None:
    rgb, sem, road_stripe, sidewalk_stripe = _striped_frame()
    marked, plain = _prior((ROAD,)), _prior(())
    out, weight = marked.forward_with_markings(rgb, sem)
    before, none = plain.forward_with_markings(rgb, sem)
    assert none is None and torch.equal(marked(rgb, sem), out)
    assert weight.shape == (1, 1, 64, 96)
    assert float(weight[0, 0][road_stripe].min()) == 1.0 and float(weight[0, 0][~road_stripe].max()) == 0.0
    assert torch.allclose(out[:, :, ~road_stripe], before[:, :, ~road_stripe], atol=1e-6)
    # the road stripe: chroma mu_real + s (x - mu_k), with mu_k the prior's own class mean of the frame and
    # s = min(g_a, g_b) the smaller of its chroma gains
    lab_in, lab_out, lab_before = (srgb_to_lab(t.double())[0] for t in (rgb, out, before))
    s = STATS_STRIDE
    gain, _, mean = marked.frame_statistics(srgb_to_lab(rgb)[:, :, ::s, ::s].permute(0, 2, 3, 1).float(),
                                            marked.class_of_id[sem[:, ::s, ::s]])
    g_a, g_b = gain[0, 0, 1].item(), gain[0, 0, 2].item()
    assert g_a > 1.5 * g_b  # the premise: gains far apart, which turn a stripe's hue
    deviation = lab_in[1:, road_stripe].T - mean[0, 0, 1:].double()
    expected = marked.real_mean[0, 1:].double() + min(g_a, g_b) * deviation
    assert torch.allclose(lab_out[1:, road_stripe].T, expected, atol=0.3)
    assert (lab_before[1:, road_stripe].T - expected).abs().max() > 5  # the control: rotated without it
    assert torch.allclose(lab_out[0], lab_before[0], atol=0.05)  # its lightness mapped as before
    bulk = (sem[0] == ROAD) & ~road_stripe

    def hue_against_the_road(lab: torch.Tensor) -> float:
        """The angle (degrees) in Lab (a, b) of the stripe's mean chroma less the rest of the road's."""
        a, b = (lab[1:, road_stripe].mean(1) - lab[1:, bulk].mean(1)).tolist()
        return float(np.degrees(np.arctan2(b, a)))

    source_hue = hue_against_the_road(lab_in)
    assert abs(hue_against_the_road(lab_out) - source_hue) < 2  # one gain for a and b: the hue stays
    assert abs(hue_against_the_road(lab_before) - source_hue) > 10  # the control: the two gains turn it
    assert torch.allclose(out[:, :, sidewalk_stripe], before[:, :, sidewalk_stripe], atol=1e-6)


def test_a_batch_maps_each_frame_as_alone_and_labels_of_any_integer_dtype_mark_alike() -> None:
    """B = 2 (the striped frame, and a frame without road): each frame's output and weight equal its own run's
    (the second has no road pixel: weight 0 everywhere); uint8 and int32 labels give the same as int64."""
    rgb, sem, road_stripe, _ = _striped_frame()
    no_road = torch.full_like(sem, SIDEWALK)
    prior = _prior((ROAD,))
    out, weight = prior.forward_with_markings(torch.cat([rgb, rgb.flip(-1)]), torch.cat([sem, no_road]))
    for k, (frame, labels) in enumerate(((rgb, sem), (rgb.flip(-1), no_road))):
        alone, alone_weight = prior.forward_with_markings(frame, labels)
        assert torch.allclose(out[k : k + 1], alone, atol=1e-6) and torch.equal(weight[k : k + 1], alone_weight)
    assert float(weight[0, 0][road_stripe].min()) == 1.0 and not weight[1].any()
    for dtype in (torch.uint8, torch.int32):
        same, same_weight = prior.forward_with_markings(rgb, sem.to(dtype))
        assert torch.equal(same_weight, weight[:1]) and torch.allclose(same, out[:1], atol=1e-6)


def test_no_pixel_is_a_marking_where_the_class_mean_is_not_the_classs_own() -> None:
    """A marking class on the no-class row (no statistics: mu_k would be the whole frame's mean), on a row that
    does not follow the frame (adapts 0: the pooled mean), or an unfitted prior: weight 0, the output as without
    the option."""
    rgb, sem, _, _ = _striped_frame()
    plain = _prior(())
    for breaks in ("no-class row", "adapts", "unfitted"):
        prior = _prior((ROAD,))
        if breaks == "no-class row":
            prior.class_of_id[ROAD] = FRAME_ROWS - 1
            plain.class_of_id[ROAD] = FRAME_ROWS - 1
        elif breaks == "adapts":
            prior.adapts[0] = 0
            plain.adapts[0] = 0
        else:
            prior.fitted.zero_()
            plain.fitted.zero_()
        out, weight = prior.forward_with_markings(rgb, sem)
        assert not weight.any(), breaks
        assert torch.allclose(out, plain(rgb, sem), atol=1e-6), breaks
        plain = _prior(())
    assert _prior((ROAD,)).forward_with_markings(rgb, sem)[1].any()  # the control: the class's own row marks


def test_markings_need_the_per_frame_prior_and_train_ids() -> None:
    with pytest.raises(ValueError, match="per-frame"):
        ClassColourPrior(per_frame=False, marking_ids=(ROAD,))
    with pytest.raises(ValueError, match="train ids"):
        ClassColourPrior(per_frame=True, marking_ids=(300,))


def _marking_generator(classes: tuple[str, ...]) -> TranslatorGenerator:
    """`lite` with the per-frame prior of :func:`_prior` (installed as fitted statistics), seed 0."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_generator_config("lite"), use_colour_prior=True, colour_prior_per_frame=True,
                              marking_chroma_classes=classes)
    gen = TranslatorGenerator(cfg).eval()
    gen.colour_prior.load_state_dict(_prior(()).state_dict())
    return gen


def test_the_generator_changes_only_the_road_stripe_in_the_target_decoder() -> None:
    rgb, sem, road_stripe, _ = _striped_frame()
    inst = torch.zeros_like(sem)
    marked, plain = _marking_generator(("road",)), _marking_generator(())
    assert marked.colour_prior.marking_ids == (ROAD,)
    with torch.no_grad():
        after, before = marked(rgb, sem, inst), plain(rgb, sem, inst)
        content = marked.encode_content(rgb, "source", sem, inst)
        style = marked.mean_style("source", 1)
        assert torch.equal(marked.decode(content, style, "source"), plain.decode(content, style, "source"))
        assert torch.equal(marked(rgb, None, None), plain(rgb, None, None))
    changed = (after - before).abs().amax(1)[0] > 1e-4
    assert changed[road_stripe].all()
    near = torch.nn.functional.max_pool2d(road_stripe[None, None].float(), 17, 1, 8)[0, 0] > 0
    assert not (changed & ~near).any()  # the camera's blur spreads a change a few pixels at most


def test_the_target_decoder_keeps_the_guides_chroma_on_the_stripe_and_its_own_lightness() -> None:
    """Without a detail path or camera and with a clamped output (identity start, head weights randomised), the
    target decoder's output is its colour map A g + b: on the stripe (weight 1) its chroma is the prior's (the
    guide's) and its luma the map's; the control without the weight keeps the map's own chroma."""
    torch.manual_seed(1)
    cfg = dataclasses.replace(get_generator_config("lite"), detail_channels=0, use_camera=False, identity_start=True,
                              use_colour_prior=True, colour_prior_per_frame=True, marking_chroma_classes=("road",))
    gen = TranslatorGenerator(cfg).eval()
    gen.colour_prior.load_state_dict(_prior(()).state_dict())
    with torch.no_grad():
        gen.decoders["target"].head.weight.normal_(0, 0.02)
        rgb, sem, road_stripe, _ = _striped_frame()
        content = gen.encode_content(rgb, "source", sem, torch.zeros_like(sem))
        style = gen.mean_style("target", 1)
        kept = gen.decode(content, style, "target")
        own = gen.decode(dataclasses.replace(content, marking_weight=None), style, "target")
    w = _W.float()
    guide = content.target_guide
    chroma = [(t - (t * w).sum(1, keepdim=True))[..., road_stripe] for t in (kept, own, guide)]
    assert kept[..., road_stripe].abs().max() < 1 and own[..., road_stripe].abs().max() < 1  # not clamped
    assert torch.allclose(chroma[0], chroma[2], atol=1e-5)
    assert (chroma[1] - chroma[2]).abs().max() > 0.05  # the control: the map's own chroma
    assert torch.allclose((kept * w).sum(1), (own * w).sum(1), atol=1e-5)  # the map's lightness everywhere
    assert torch.equal(kept[..., ~road_stripe], own[..., ~road_stripe])


def test_with_a_tanh_output_the_stripe_keeps_the_guides_hue_up_to_the_squashing() -> None:
    """The shipped decoders squash their output with tanh (``identity_start`` false) after the chroma swap: the
    stripe's chroma is then the guide's up to that squashing, its hue (Lab) within a few degrees of the guide's;
    the control without the weight is far off (the map's own chroma)."""
    torch.manual_seed(1)
    cfg = dataclasses.replace(get_generator_config("lite"), detail_channels=0, use_camera=False,
                              use_colour_prior=True, colour_prior_per_frame=True, marking_chroma_classes=("road",))
    gen = TranslatorGenerator(cfg).eval()
    gen.colour_prior.load_state_dict(_prior(()).state_dict())
    rgb, sem, road_stripe, _ = _striped_frame()
    with torch.no_grad():
        content = gen.encode_content(rgb, "source", sem, torch.zeros_like(sem))
        style = gen.mean_style("target", 1)
        kept = gen.decode(content, style, "target")
        own = gen.decode(dataclasses.replace(content, marking_weight=None), style, "target")

    def stripe_hue(image: torch.Tensor) -> float:
        a, b = srgb_to_lab(image.double())[0, 1:, road_stripe].mean(1).tolist()
        return float(np.degrees(np.arctan2(b, a)))

    guide_hue = stripe_hue(content.target_guide)
    assert abs(stripe_hue(kept) - guide_hue) < 5
    assert abs(stripe_hue(own) - guide_hue) > 20


def test_gradients_flow_through_the_marked_decoder() -> None:
    """Training with the option on: the loss's gradient reaches the target decoder's head through the chroma swap
    and is finite (the weight itself is a constant of the source frame)."""
    gen = _marking_generator(("road",)).train()
    rgb, sem, _, _ = _striped_frame()
    gen(rgb, sem, torch.zeros_like(sem)).square().mean().backward()
    grad = gen.decoders["target"].head.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_the_option_runs_under_cpu_autocast_close_to_float32() -> None:
    """CPU autocast standing in for CUDA's: the weight is float32 from the prior (which computes in fp32), the
    chroma swap takes the decoder's half-precision output."""
    rgb, sem, road_stripe, _ = _striped_frame()
    inst = torch.zeros_like(sem)
    gen = _marking_generator(("road",))
    with torch.no_grad():
        full = gen(rgb, sem, inst)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = gen(rgb, sem, inst)
            content = gen.encode_content(rgb, "source", sem, inst)
    assert content.marking_weight.dtype == torch.float32 and torch.isfinite(half).all()
    assert (half.float() - full).abs().max() < 0.1
    assert (half.float() - full)[..., road_stripe].abs().max() < 0.05


def test_markings_reach_onnx(tmp_path: Path) -> None:
    from sim2real.translator.checkpoint import build_generator, load_checkpoint, save_checkpoint
    from sim2real.translator.onnx_export import OnnxTranslator, export_onnx

    gen = _marking_generator(("road",))
    loaded = build_generator(load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", gen, gen.cfg))).eval()
    assert loaded.cfg.marking_chroma_classes == ("road",)
    runner = OnnxTranslator(export_onnx(loaded, tmp_path / "m.onnx", 64, 96), intra_op_threads=1)
    assert runner.metadata["config"]["marking_chroma_classes"] == ["road"]
    rgb, sem, _, _ = _striped_frame()
    inst = torch.zeros_like(sem)
    exported = runner.translate_normalized(rgb.numpy(), sem.numpy(), inst.numpy())
    with torch.no_grad():
        eager, without = loaded(rgb, sem, inst).numpy(), _marking_generator(())(rgb, sem, inst).numpy()
    assert np.abs(exported - eager).max() < 1e-3
    assert np.abs(exported - without).max() > 1e-2  # the graph holds the option


def test_the_config_checks_its_classes_and_a_zero_step_run_may_switch_them_on() -> None:
    from sim2real.training.networks import check_generator_config

    base = dataclasses.replace(get_generator_config("lite"), use_colour_prior=True, colour_prior_per_frame=True)
    switched = dataclasses.replace(base, marking_chroma_classes=["road", "sidewalk"])
    assert switched.marking_chroma_classes == ("road", "sidewalk")
    assert GeneratorConfig.from_dict(switched.to_dict()) == switched
    check_generator_config(base, switched, Path("trained.safetensors"), lambda _: None)  # no error
    for bad, match in ((["lane"], "distinct names"), (["road", "road"], "distinct names"), ("road", "list"),
                       (["car"], "stuff classes")):
        with pytest.raises(ConfigError, match=match):
            dataclasses.replace(base, marking_chroma_classes=bad)
    with pytest.raises(ConfigError, match="colour_prior_per_frame"):
        dataclasses.replace(base, colour_prior_per_frame=False, marking_chroma_classes=["road"])


def test_procedural_frames_without_markings_on_their_roads_translate_as_before() -> None:
    """Procedural frames of world 3 at 64x96 whose road pixels are all within the weight's first radius of their
    class's frame mean: the option changes nothing."""
    rgb, sem = procedural_frames(1, seed=3, size=(64, 96))
    lab = srgb_to_lab(rgb.double())[0]
    road = sem[0] == ROAD
    lab[1:, road] = lab[1:, road].mean(1, keepdim=True)  # an unpainted road: one chroma
    rgb = lab_to_srgb(lab[None]).float()
    inst = torch.zeros_like(sem)
    with torch.no_grad():
        assert torch.allclose(_marking_generator(("road",))(rgb, sem, inst), _marking_generator(())(rgb, sem, inst),
                              atol=1e-6)
