"""TemporalSmoother: lower static-pixel flicker on a procedural camera sequence, moving pixels untouched."""

from __future__ import annotations

import pytest
import torch

from sim2real.core.errors import ConfigError
from sim2real.evaluation.metrics import FlickerTally, static_mask, temporal_flicker
from sim2real.evaluation.temporal import TemporalSmoother, temporal_blend


@pytest.fixture(scope="module")
def sequence() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """6 consecutive procedural frames at 64x128 and a random-init lite translator's outputs."""
    from sim2real.evaluation.frames import load_source_frames
    from sim2real.translator.config import get_generator_config
    from sim2real.translator.generator import TranslatorGenerator
    from sim2real.translator.inference import Translator

    src = load_source_frames("procedural:6", size=(64, 128))
    torch.manual_seed(0)
    cfg = get_generator_config("lite")
    tr = Translator.from_generator(TranslatorGenerator(cfg), cfg, device="cpu", precision="fp32")
    out = torch.cat([tr.translate_normalized(src.rgb[i : i + 1], src.semantic[i : i + 1], src.instance[i : i + 1])
                     for i in range(len(src))])
    return src.rgb, src.semantic, src.instance, out


def _flicker(rgb: torch.Tensor, sem: torch.Tensor, inst: torch.Tensor, out: torch.Tensor) -> FlickerTally:
    total = FlickerTally()
    for t in range(1, rgb.shape[0]):
        p, c = slice(t - 1, t), slice(t, t + 1)
        static = static_mask(rgb[p], rgb[c], semantic_prev=sem[p], semantic=sem[c], instance_prev=inst[p],
                             instance=inst[c])
        total = total + temporal_flicker(out[p], out[c], rgb[p], rgb[c], static)
    return total


def _smooth(smoother: TemporalSmoother, rgb: torch.Tensor, sem: torch.Tensor, inst: torch.Tensor,
            out: torch.Tensor) -> torch.Tensor:
    return torch.cat([smoother(rgb[t : t + 1], sem[t : t + 1], inst[t : t + 1], out[t : t + 1])
                      for t in range(rgb.shape[0])])


def test_smoother_removes_static_flicker(sequence: tuple[torch.Tensor, ...]) -> None:
    rgb, sem, inst, out = sequence
    raw = _flicker(rgb, sem, inst, out)
    assert raw.static_pixels > 0 and raw.static_flicker > 0.05  # the raw translator flickers in static pixels
    held = _smooth(TemporalSmoother(alpha=1.0), rgb, sem, inst, out)
    assert _flicker(rgb, sem, inst, held).static_flicker == 0.0
    half = _flicker(rgb, sem, inst, _smooth(TemporalSmoother(alpha=0.5), rgb, sem, inst, out))
    assert 0.0 < half.static_flicker < raw.static_flicker
    # first frame and pixels whose input changed are the translator's own output
    assert torch.equal(held[0], out[0])
    moved = ~static_mask(rgb[:-1], rgb[1:], semantic_prev=sem[:-1], semantic=sem[1:], instance_prev=inst[:-1],
                         instance=inst[1:])
    assert torch.equal(held[1:].permute(0, 2, 3, 1)[moved], out[1:].permute(0, 2, 3, 1)[moved])


def test_smoother_off_reset_and_shape_change(sequence: tuple[torch.Tensor, ...]) -> None:
    rgb, sem, inst, out = sequence
    assert torch.equal(_smooth(TemporalSmoother(alpha=0.0), rgb, sem, inst, out), out)
    s = TemporalSmoother()
    s(rgb[:1], sem[:1], inst[:1], out[:1])
    s.reset()
    assert torch.equal(s(rgb[1:2], sem[1:2], inst[1:2], out[1:2]), out[1:2])  # after reset: passes through
    small = out[:1, :, :32, :64]
    assert torch.equal(s(rgb[:1, :, :32, :64], sem[:1, :32, :64], inst[:1, :32, :64], small), small)
    with pytest.raises(ConfigError, match="alpha"):
        TemporalSmoother(alpha=1.5)


def test_smoother_reference_bounds_drift() -> None:
    """An input creeping by 1 level per frame under tolerance 2 is re-translated once it moved > 2 levels."""
    s = TemporalSmoother(alpha=1.0, tolerance=2.0, use_labels=False)
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    outs = []
    for t in range(5):
        rgb = torch.full((1, 3, 2, 2), t / 127.5)
        outs.append(s(rgb, labels, labels, torch.full((1, 3, 2, 2), float(t))))
    assert [float(o[0, 0, 0, 0]) for o in outs] == [0.0, 0.0, 0.0, 3.0, 3.0]


def test_temporal_blend_known_values() -> None:
    new, held = torch.zeros(1, 3, 1, 2), torch.ones(1, 3, 1, 2)
    static = torch.tensor([[[True, False]]])
    assert temporal_blend(new, held, static, 0.25)[0, :, 0].tolist() == [[0.25, 0.0]] * 3
