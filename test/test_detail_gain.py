"""``detail_gain``: the target decoder's detail output times g (known answer through the tanh), the source decoder
untouched, 0 = no detail path, the class-mean bands scaled alike, ONNX, the config and a run switching it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from decoder_options import exported_and_eager_gaps, pooled_lite_generator, switched_on_for
from procedural_frames import procedural_frames

from sim2real.core.errors import ConfigError
from sim2real.translator.config import GeneratorConfig


def _generator(gain: float, **overrides: object) -> torch.nn.Module:
    """The pooled test `lite` with a high-pass detail path whose output is not small (its 1x1 weights x 50)."""
    gen = pooled_lite_generator(detail_channels=4, detail_highpass=True, detail_mean="class_box_field",
                                detail_gain=gain, use_camera=False, **overrides)
    with torch.no_grad():
        for domain in ("target", "source"):
            gen.decoders[domain].detail.out.weight.normal_(0, 0.5)
    return gen


def _frames() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rgb, sem = procedural_frames(2, seed=3, size=(64, 96))
    return rgb, sem, torch.zeros_like(sem)


@torch.no_grad()
def test_the_detail_scales_by_the_gain_inside_the_tanh_in_the_target_decoder_only() -> None:
    rgb, sem, inst = _frames()
    out = {g: _generator(g)(rgb, sem, inst).double() for g in (0.0, 0.5, 1.0, 2.0)}
    pre = {g: torch.atanh(o.clamp(-1 + 1e-6, 1 - 1e-6)) for g, o in out.items()}  # before the tanh
    readable = torch.stack([o.abs() < 0.99 for o in out.values()]).all(0)  # fp32 tanh near +-1 is not invertible
    assert readable.double().mean() > 0.95
    detail = pre[1.0] - pre[0.0]
    assert detail[readable].abs().amax() > 0.1  # a detail output worth scaling
    for g in (0.5, 2.0):  # known answer: the colour map plus g times the detail (with its class-mean bands)
        assert (pre[g] - (pre[0.0] + g * detail))[readable].abs().amax() < 1e-4
    # the class means the edge-pixel field reads (and the detail takes off before its box) are scaled too
    seen = {g: _detail_means_at_the_edge_field(_generator(g), rgb, sem, inst) for g in (0.5, 1.0)}
    assert seen[1.0].abs().amax() > 1e-3 and torch.allclose(seen[0.5], 0.5 * seen[1.0], atol=1e-7)
    gen = _generator(0.5)
    assert gen.decoders["target"].detail_gain == 0.5 and gen.decoders["source"].detail_gain == 1.0


def _detail_means_at_the_edge_field(gen: torch.nn.Module, *frame: torch.Tensor) -> torch.Tensor:
    """The detail output's class means (B, 3, 256) the target decoder hands its edge-pixel field."""
    decoder, seen = gen.decoders["target"], []
    field = decoder._edge_field

    def recording(*args: object, **kwargs: object) -> object:
        seen.append(args[4])  # (affine, edge, table, labels, detail_means)
        return field(*args, **kwargs)

    decoder._edge_field = recording
    gen(*frame)
    return seen[0]


@torch.no_grad()
def test_a_gain_of_zero_is_the_decoder_without_detail() -> None:
    rgb, sem, inst = _frames()
    off = _generator(0.0)
    zeroed = _generator(1.0)
    torch.nn.init.zeros_(zeroed.decoders["target"].detail.out.weight)
    torch.nn.init.zeros_(zeroed.decoders["target"].detail.out.bias)
    assert (off(rgb, sem, inst) - zeroed(rgb, sem, inst)).abs().amax() < 1e-6
    assert (off(rgb, sem, inst) - _generator(1.0)(rgb, sem, inst)).abs().amax() > 0.05  # control


def test_the_gain_reaches_onnx(tmp_path: Path) -> None:
    gen = _generator(0.5)
    config, gap, without = exported_and_eager_gaps(gen, tmp_path / "gain.onnx", "detail_gain", 1.0)
    assert config["detail_gain"] == 0.5 and gap < 1e-3
    assert without > 1e-2


def test_the_config_bounds_the_gain_and_a_run_may_change_it(tmp_path: Path) -> None:
    for bad in (-0.1, 4.5, True, float("nan")):
        with pytest.raises(ConfigError, match="detail_gain"):
            GeneratorConfig(detail_channels=4, detail_gain=bad)
    with pytest.raises(ConfigError, match="detail_gain scales the detail path"):
        GeneratorConfig(detail_gain=0.5)  # no detail path
    cfg = GeneratorConfig(detail_channels=4, detail_gain=0.5)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    nets = switched_on_for(_generator(1.0), tmp_path, ["generator.detail_channels=4", "generator.detail_highpass=true",
                                                       "generator.detail_mean=class_box_field",
                                                       "generator.use_camera=false", "generator.detail_gain=0.5"])
    assert nets.gen.cfg.detail_gain == 0.5 and nets.gen.decoders["target"].detail_gain == 0.5
