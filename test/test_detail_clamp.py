"""Detail edge clamp (``detail_edge_clamp``): the window maximum, the label-edge mask and the clamp against known
answers (a step with detail lifting and sinking it), nothing changed inside a class, the gradient where the clamp
does not bind; the generator (target decoder only, nothing without labels), ONNX, the config and a run switching
it on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from decoder_options import exported_and_eager_gap, pooled_lite_generator, switched_on_for
from procedural_frames import procedural_frames

from sim2real.core.errors import ConfigError
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.detail_clamp import edge_clamped_detail, label_edge_mask, window_max
from sim2real.translator.generator import TranslatorGenerator


def _step(rows: int = 4, cols: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """base (1, 3, rows, cols): 0 on the left half (label 3), 0.5 on the right (label 7); labels (1, rows, cols)."""
    labels = torch.full((1, rows, cols), 3)
    labels[..., cols // 2:] = 7
    return (labels.unsqueeze(1).expand(-1, 3, -1, -1) == 7).float() * 0.5, labels


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_the_window_maximum_is_max_pooling_within_the_frame(radius: int) -> None:
    torch.manual_seed(radius)
    x = torch.randn(2, 3, 9, 13)
    pooled = torch.nn.functional.max_pool2d(x, 2 * radius + 1, 1, radius)  # pads with -inf: the frame only
    assert torch.equal(window_max(x, radius), pooled)
    assert window_max(x, radius)[0, 0, 0, 0] == x[0, 0, :radius + 1, :radius + 1].max()


def test_the_edge_mask_marks_pixels_within_r_of_another_label_and_not_the_frame_border() -> None:
    labels = torch.zeros(1, 7, 7, dtype=torch.long)
    assert not label_edge_mask(labels, 2).any()  # one label: the border is no edge
    labels[0, 3, 3] = 5
    for radius in (1, 2):
        expected = torch.zeros(7, 7, dtype=torch.bool)
        expected[3 - radius:4 + radius, 3 - radius:4 + radius] = True
        assert torch.equal(label_edge_mask(labels, radius)[0, 0], expected)
    with pytest.raises(ValueError, match="radius"):
        label_edge_mask(labels, 0)


@pytest.mark.parametrize(("lift", "left_edge", "right_edge"), [(0.3, 0.3, 0.5), (-0.3, 0.0, 0.2)])
def test_the_clamp_keeps_edge_pixels_inside_the_colours_around_them(lift: float, left_edge: float,
                                                                     right_edge: float) -> None:
    """Detail +0.3: the left edge column (0 + 0.3) stays inside [0, 0.5], the right one (0.5 + 0.3) stops at 0.5;
    detail -0.3: the left one stops at 0, the right one (0.2) stays. Columns 2 pixels from the edge keep it all."""
    base, labels = _step()
    out = edge_clamped_detail(base, torch.full_like(base, lift), labels, 1)
    expected = base + lift
    expected[..., 3], expected[..., 4] = left_edge, right_edge
    assert torch.allclose(out, expected, atol=1e-6)
    assert not torch.allclose(base + lift, expected)  # the control: the clamp binds on one side


def test_only_edge_pixels_change_and_they_stay_in_range() -> None:
    torch.manual_seed(0)
    labels = torch.zeros(2, 24, 32, dtype=torch.long)
    labels[:, 6:14, 10:20] = 11
    base, detail = torch.randn(2, 3, 24, 32), torch.randn(2, 3, 24, 32)
    out = edge_clamped_detail(base, detail, labels, 2)
    edge = label_edge_mask(labels, 2).expand(-1, 3, -1, -1)
    assert torch.equal(out[~edge], (base + detail)[~edge])
    assert (out != base + detail).any()
    high, low = torch.nn.functional.max_pool2d(base, 5, 1, 2), -torch.nn.functional.max_pool2d(-base, 5, 1, 2)
    assert (out[edge] <= high[edge] + 1e-6).all() and (out[edge] >= low[edge] - 1e-6).all()  # out + (clamped - out)
    with pytest.raises(ValueError, match="one shape"):
        edge_clamped_detail(base, detail[:, :, :-1], labels, 1)


def test_the_gradient_reaches_the_detail_where_the_clamp_does_not_bind() -> None:
    base, labels = _step()
    detail = torch.full_like(base, 0.3, requires_grad=True)
    edge_clamped_detail(base, detail, labels, 1).sum().backward()
    assert detail.grad is not None
    assert torch.all(detail.grad[..., 4] == 0) and torch.all(detail.grad[..., [0, 3, 5, 7]] == 1)


def _generator(radius: int) -> TranslatorGenerator:
    """The pooled `lite` with a detail path whose output layer is random (a fresh one is zero: nothing to clamp)."""
    gen = pooled_lite_generator(detail_channels=4, detail_highpass=True, detail_edge_clamp=radius)
    with torch.no_grad():
        for decoder in gen.decoders.values():
            decoder.detail.out.weight.normal_(0, 0.5)
    return gen


def test_the_generator_clamps_in_the_target_decoder_only_and_near_label_edges() -> None:
    rgb, sem = procedural_frames(2, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    clamped, plain = _generator(1), _generator(0)
    assert clamped.decoders["target"].detail_edge_clamp == 1 and clamped.decoders["source"].detail_edge_clamp == 0
    with torch.no_grad():
        changed = (clamped(rgb, sem, inst) - plain(rgb, sem, inst)).abs().amax(1) > 1e-4
        assert torch.equal(clamped(rgb, None, None), plain(rgb, None, None))
    assert changed.any()
    near_edge = torch.nn.functional.max_pool2d(label_edge_mask(sem, 1).float(), 9, 1, 4).squeeze(1) > 0
    assert not (changed & ~near_edge).any()  # the camera's blur spreads a change at most a few pixels


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_clamped_generator_runs_under_cpu_autocast(dtype: torch.dtype) -> None:
    """CPU autocast standing in for CUDA's: the clamp's shifts and mask in half precision, close to fp32."""
    rgb, sem = procedural_frames(1, seed=3, size=(64, 96))
    inst, gen = torch.zeros_like(sem), _generator(1)
    with torch.no_grad():
        full = gen(rgb, sem, inst)
        with torch.autocast("cpu", dtype=dtype):
            half = gen(rgb, sem, inst)
    assert torch.isfinite(half).all() and (half.float() - full).abs().mean() < 0.01


def test_the_clamp_reaches_onnx(tmp_path: Path) -> None:
    gen = _generator(1)
    config, gap = exported_and_eager_gap(gen, tmp_path / "clamp.onnx")
    assert config["detail_edge_clamp"] == 1 and gap() < 1e-3
    gen.decoders["target"].detail_edge_clamp = 0  # the comparison must see the difference
    assert gap() > 1e-3


def test_the_config_needs_a_detail_path_and_a_run_may_switch_it_on(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="detail_edge_clamp.*detail path"):
        GeneratorConfig(detail_edge_clamp=1)
    for bad in (-1, 9, 1.0):
        with pytest.raises(ConfigError, match="detail_edge_clamp"):
            GeneratorConfig(detail_channels=4, detail_edge_clamp=bad)
    cfg = GeneratorConfig(detail_channels=4, detail_edge_clamp=2)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    nets = switched_on_for(_generator(0), tmp_path, ["generator.detail_channels=4", "generator.detail_highpass=true",
                                                     "generator.detail_edge_clamp=1"])
    assert nets.gen.cfg.detail_edge_clamp == 1 and nets.gen.decoders["target"].detail_edge_clamp == 1
