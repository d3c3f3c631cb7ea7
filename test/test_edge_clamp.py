"""Edge clamp (``edge_clamp``): the window maximum, the label-edge mask and the luma clamp against known answers
(a step with detail lifting and sinking it, a light outline the colour map draws, a thin line left as it is),
nothing changed inside a class or in the chroma, the gradient; the generator (target decoder only, nothing
without labels), CPU autocast, ONNX, the config and a run switching it on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from decoder_options import autocast_gaps, exported_and_eager_gaps, pooled_lite_generator, switched_on_for
from procedural_frames import procedural_frames

from sim2real.core.colour import LUMA_WEIGHTS
from sim2real.core.errors import ConfigError
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.edge_clamp import (
    edge_clamped,
    interior_luma_range,
    label_edge_mask,
    luma,
    own_interior_within,
)
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.layers import window_max


def _step(rows: int = 4, cols: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """base (1, 3, rows, cols): 0 on the left half (label 3), 0.5 on the right (label 7); labels (1, rows, cols)."""
    labels = torch.full((1, rows, cols), 3)
    labels[..., cols // 2:] = 7
    return (labels.unsqueeze(1).expand(-1, 3, -1, -1) == 7).float() * 0.5, labels


@pytest.mark.parametrize("exporting", [False, True])
@pytest.mark.parametrize("radius", [1, 2, 3])
def test_the_window_maximum_is_max_pooling_within_the_frame(radius: int, exporting: bool,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Both paths: the eager one's shifted views and the row and column MaxPools an ONNX export gets."""
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: exporting)
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
def test_detail_stays_inside_the_colours_of_both_sides(lift: float, left_edge: float, right_edge: float) -> None:
    """Detail +0.3: the left edge column (0 + 0.3) stays inside [0, 0.5], the right one (0.5 + 0.3) stops at 0.5;
    detail -0.3: the left one stops at 0, the right one (0.2) stays. Columns 2 pixels from the edge keep it all."""
    base, labels = _step()
    out = edge_clamped(base, torch.full_like(base, lift), labels, 1)
    expected = base + lift
    expected[..., 3], expected[..., 4] = left_edge, right_edge
    assert torch.allclose(out, expected, atol=1e-6)
    assert not torch.allclose(base + lift, expected)  # the control: the clamp binds on one side


def test_a_light_outline_of_the_colour_map_goes_and_a_thin_line_is_left_as_it_is() -> None:
    """The right side's edge column mapped to 0.9 (an outline, e.g. a blend pixel under its class's map) comes
    back to the right side's 0.5; a line one pixel wide (label 5, no interior of its own within 2r) is left as it
    is, detail included, while the field's pixels beside it stay inside the field's colour."""
    base, labels = _step(cols=10)
    base[..., 5] = 0.9
    assert torch.allclose(edge_clamped(base, None, labels, 1)[..., 5], torch.full((1, 3, 4), 0.5))
    assert torch.equal(edge_clamped(base, None, labels, 1)[..., :5], base[..., :5])
    line, line_labels = torch.full((1, 3, 5, 9), 0.2), torch.full((1, 5, 9), 3)
    line[..., 4], line_labels[..., 4] = -0.8, 5
    detail = torch.zeros_like(line)
    detail[..., 3:6] = -0.5
    out = edge_clamped(line, detail, line_labels, 1)
    assert torch.allclose(out[..., 4], torch.full((1, 3, 5), -1.3))  # its own colour and its detail
    assert torch.allclose(out[..., 3], torch.full((1, 3, 5), 0.2)) and torch.allclose(out[..., 5], out[..., 3])


def test_ids_above_256_stay_apart_under_bf16() -> None:
    """bf16 holds integers exactly only up to 256: a line of id 301 in a field of 300 must stay a line of its own
    (left as it is), not merge with the field and be clamped to its lightness."""
    line, labels = torch.full((1, 3, 5, 9), 0.2), torch.full((1, 5, 9), 300)
    line[..., 4], labels[..., 4] = -0.8, 301
    out = edge_clamped(line.bfloat16(), None, labels, 1)
    assert torch.equal(out[..., 4], line.bfloat16()[..., 4])


def test_only_edge_pixels_with_an_interior_of_their_own_change_and_they_stay_in_range() -> None:
    torch.manual_seed(0)
    labels = torch.zeros(2, 24, 32, dtype=torch.long)
    labels[:, 6:14, 10:20] = 11
    labels[:, 2:22, 25] = 4  # a thin line: left as it is
    base, detail = torch.randn(2, 3, 24, 32), torch.randn(2, 3, 24, 32)
    out = edge_clamped(base, detail, labels, 2)
    edge = label_edge_mask(labels, 2)
    low, high = interior_luma_range(base, edge, 2)
    own_interior = own_interior_within(labels, edge, 2)
    assert not own_interior[:, 0, 2:22, 25].any() and own_interior[:, 0, 10, 10].all()
    clamped = edge & own_interior
    kept = ~clamped.expand(-1, 3, -1, -1)
    assert torch.equal(out[kept], (base + detail)[kept]) and (out != base + detail).any()
    y = luma(out)
    assert (y[clamped] <= high[clamped] + 1e-5).all() and (y[clamped] >= low[clamped] - 1e-5).all()
    assert torch.allclose(out - y, base + detail - luma(base + detail), atol=1e-5)  # the chroma stays
    with pytest.raises(ValueError, match="one shape"):
        edge_clamped(base, detail[:, :, :-1], labels, 1)


def test_the_gradient_reaches_the_detail_where_the_clamp_does_not_bind_and_only_its_chroma_where_it_does() -> None:
    """Where the luma is clamped, out_c = o_c + high - Y(o): d(sum_c out_c) / d detail_j = 1 - 3 w_j."""
    base, labels = _step()
    detail = torch.full_like(base, 0.3, requires_grad=True)
    edge_clamped(base, detail, labels, 1).sum().backward()
    assert detail.grad is not None
    bound = 1 - 3 * torch.tensor(LUMA_WEIGHTS).view(1, 3, 1)
    assert torch.allclose(detail.grad[..., 4], bound.expand(1, 3, 4))
    assert torch.all(detail.grad[..., [0, 3, 5, 7]] == 1)


def _generator(radius: int) -> TranslatorGenerator:
    """The pooled `lite` with a detail path whose output layer is random (a fresh one is zero)."""
    gen = pooled_lite_generator(detail_channels=4, detail_highpass=True, edge_clamp=radius)
    with torch.no_grad():
        for decoder in gen.decoders.values():
            decoder.detail.out.weight.normal_(0, 0.5)
    return gen


def test_the_generator_clamps_in_the_target_decoder_only_and_near_label_edges() -> None:
    rgb, sem = procedural_frames(2, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    clamped, plain = _generator(1), _generator(0)
    assert clamped.decoders["target"].edge_clamp == 1 and clamped.decoders["source"].edge_clamp == 0
    with torch.no_grad():
        changed = (clamped(rgb, sem, inst) - plain(rgb, sem, inst)).abs().amax(1) > 1e-4
        assert torch.equal(clamped(rgb, None, None), plain(rgb, None, None))
    assert changed.any()
    near_edge = torch.nn.functional.max_pool2d(label_edge_mask(sem, 1).float(), 9, 1, 4).squeeze(1) > 0
    assert not (changed & ~near_edge).any()  # the camera's blur spreads a change at most a few pixels


def test_without_a_detail_path_the_clamp_takes_the_colour_maps_outlines() -> None:
    rgb, sem = procedural_frames(2, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    clamped, plain = pooled_lite_generator(detail_channels=0, edge_clamp=1), pooled_lite_generator(detail_channels=0)
    with torch.no_grad():
        assert (clamped(rgb, sem, inst) - plain(rgb, sem, inst)).abs().amax() > 1e-3


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.bfloat16, 0.1), (torch.float16, 0.02)])
def test_the_clamped_generator_runs_under_cpu_autocast(dtype: torch.dtype, tolerance: float) -> None:
    """CPU autocast standing in for CUDA's: the clamp in half precision stays within ``tolerance`` of fp32 at every
    pixel, while leaving it out moves some pixel by far more (about 1.5 here)."""
    gap, control = autocast_gaps(_generator(1), _generator(0), dtype)
    assert gap < tolerance and control > 10 * tolerance


def test_the_clamp_reaches_onnx(tmp_path: Path) -> None:
    gen = _generator(1)
    config, gap, without = exported_and_eager_gaps(gen, tmp_path / "clamp.onnx", "edge_clamp", 0)
    assert config["edge_clamp"] == 1 and gap < 1e-3
    assert without > 1e-3


def test_the_config_bounds_the_radius_and_a_run_may_switch_it_on(tmp_path: Path) -> None:
    for bad in (-1, 9, 1.0):
        with pytest.raises(ConfigError, match="edge_clamp"):
            GeneratorConfig(edge_clamp=bad)
    cfg = GeneratorConfig(edge_clamp=2)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    nets = switched_on_for(_generator(0), tmp_path, ["generator.detail_channels=4", "generator.detail_highpass=true",
                                                     "generator.edge_clamp=1"])
    assert nets.gen.cfg.edge_clamp == 1 and nets.gen.decoders["target"].edge_clamp == 1
