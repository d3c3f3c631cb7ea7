"""Where thing classes' chroma comes from (``decoder_thing_chroma``): the two maps' algebra against known answers
("untinted": grey in, grey out; "guide": the guide's chroma out), only thing cells and thing columns changed, the
decoder on both pooling paths (road controls that keep the decoder's tint), the generator (target decoder only,
nothing without labels), ONNX, the config and a run switching it on for a trained model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from decoder_options import pooled_lite_generator, switched_on_for
from procedural_frames import procedural_frames

from sim2real.core.errors import ConfigError
from sim2real.core.labels import TRAIN_ID
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.generator import Decoder, TranslatorGenerator
from sim2real.translator.thing_colour_maps import LUMA_WEIGHTS, guide_chroma, thing_cells, thing_columns, untinted

CAR, BUS, ROAD, SKY = TRAIN_ID["car"], TRAIN_ID["bus"], TRAIN_ID["road"], TRAIN_ID["sky"]
_W = torch.tensor(LUMA_WEIGHTS, dtype=torch.float64).view(1, 3, 1, 1)


def _apply(coeffs: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """A g + b per pixel: coeffs (B, 12, h, w), guide (B, 3, h, w)."""
    return torch.einsum("bij...,bj...->bi...", coeffs[:, :9].unflatten(1, (3, 3)), guide) + coeffs[:, 9:12]


def _luma(x: torch.Tensor) -> torch.Tensor:
    return (x * _W.to(x.dtype)).sum(1, keepdim=True)


def test_a_grey_guide_leaves_grey_with_the_maps_lightness_and_a_coloured_one_keeps_only_its_own_chroma() -> None:
    torch.manual_seed(0)
    coeffs = torch.randn(2, 14, 5, 6, dtype=torch.float64)
    neutral = untinted(coeffs)
    grey = torch.randn(2, 1, 5, 6, dtype=torch.float64).expand(2, 3, 5, 6)
    out = _apply(neutral, grey)
    assert (out - out[:, :1]).abs().max() < 1e-12  # grey
    assert torch.allclose(out[:, :1], _luma(_apply(coeffs, grey)), atol=1e-12)  # with the map's lightness
    assert (_apply(coeffs, grey) - _apply(coeffs, grey)[:, :1]).abs().max() > 0.5  # the control: tinted before
    guide = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    out = _apply(neutral, guide)
    assert torch.allclose(_luma(out), _luma(_apply(coeffs, guide)), atol=1e-12)  # lightness unchanged
    own = _apply(torch.cat([coeffs[:, :9], torch.zeros_like(coeffs[:, 9:12])], 1), guide - _luma(guide))
    assert torch.allclose(out - _luma(out), own - _luma(own), atol=1e-12)  # chroma: P(A (g - y 1))
    assert torch.equal(neutral[:, 12:], coeffs[:, 12:])  # the detail channels untouched


def test_known_answers_a_red_offset_becomes_its_luma_in_grey_and_a_neutral_map_is_unchanged() -> None:
    tinted = torch.tensor([1.0, 0, 0, 0, 1, 0, 0, 0, 1, 0.3, 0, 0]).view(1, 12, 1)
    expected = torch.tensor([1.0, 0, 0, 0, 1, 0, 0, 0, 1, 0.0897, 0.0897, 0.0897]).view(1, 12, 1)
    assert torch.allclose(untinted(tinted), expected, atol=1e-6)
    neutral = torch.tensor([0.8, 0.1, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1, 0.8, -0.2, -0.2, -0.2]).view(1, 12, 1)
    assert torch.allclose(untinted(neutral), neutral, atol=1e-7)  # rows sum to 1, b grey: nothing to take off
    red_gain = torch.tensor([1.5, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]).view(1, 12, 1)  # the red channel x 1.5
    fixed = untinted(red_gain)
    white = torch.ones(1, 3, 1)
    assert torch.allclose(_apply(fixed, white), torch.full((1, 3, 1), 1.1495), atol=1e-6)  # white stays white
    red = torch.tensor([1.0, -1, -1]).view(1, 3, 1)
    assert _apply(fixed, red)[0, 0, 0] > _apply(fixed, red)[0, 1, 0] + 1  # a red guide stays red


def test_guide_chroma_keeps_the_guides_chroma_and_the_maps_lightness() -> None:
    torch.manual_seed(3)
    coeffs = torch.randn(2, 14, 5, 6, dtype=torch.float64)
    guide = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    out = _apply(guide_chroma(coeffs), guide)
    assert torch.allclose(_luma(out), _luma(_apply(coeffs, guide)), atol=1e-12)
    assert torch.allclose(out - _luma(out), guide - _luma(guide), atol=1e-12)
    before = _apply(coeffs, guide)
    assert ((before - _luma(before)) - (guide - _luma(guide))).abs().max() > 0.5  # the control: the map's chroma
    assert torch.equal(guide_chroma(coeffs)[:, 12:], coeffs[:, 12:])
    # known answer: the identity map with a red offset keeps the guide's chroma and lifts it by w . b = 0.0897
    tinted = torch.tensor([1.0, 0, 0, 0, 1, 0, 0, 0, 1, 0.3, 0, 0]).view(1, 12, 1)
    expected = torch.tensor([1.0, 0, 0, 0, 1, 0, 0, 0, 1, 0.0897, 0.0897, 0.0897]).view(1, 12, 1)
    assert torch.allclose(guide_chroma(tinted), expected, atol=1e-6)
    swap = torch.tensor([0.0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]).view(1, 12, 1)  # swaps red and green
    red = torch.tensor([0.6, -0.4, -0.4]).view(1, 3, 1)
    assert torch.allclose(_apply(guide_chroma(swap), red), red + (0.587 - 0.299) * 1.0, atol=1e-6)


def _labels() -> torch.Tensor:
    """(1, 8, 8) at work scale 1 for cells: car, road, bus and void (255) quadrants."""
    labels = torch.full((1, 8, 8), CAR)
    labels[:, :4, 4:] = ROAD
    labels[:, 4:, :4] = BUS
    labels[:, 4:, 4:] = 255
    return labels


@pytest.mark.parametrize(("mode", "change"), [("untinted", untinted), ("guide", guide_chroma)])
def test_only_thing_cells_and_thing_columns_change(mode: str, change: object) -> None:
    torch.manual_seed(1)
    coeffs, labels = torch.randn(1, 14, 4, 4), _labels()
    out = thing_cells(coeffs, labels, mode)  # cells of 2x2 pixels: the label at each cell's centre
    thing = torch.zeros(4, 4, dtype=torch.bool)
    thing[:2, :2] = thing[2:, :2] = True
    assert torch.allclose(out[..., thing], change(coeffs)[..., thing], atol=1e-6)
    assert torch.equal(out[..., ~thing], coeffs[..., ~thing])
    table = torch.randn(2, 12, 256)
    columns = thing_columns(table, mode)
    for label in range(256):
        expected = change(table[..., label:label + 1]) if label in (11, 12, 13, 14, 15, 16, 17, 18) else \
            table[..., label:label + 1]
        assert torch.allclose(columns[..., label:label + 1], expected, atol=1e-6), label


@pytest.mark.parametrize(("pooling", "edge_pixels"), [(0.0, False), (0.5, False), (0.5, True)])
def test_the_decoder_renders_a_grey_guide_grey_on_things_and_tinted_on_road(pooling: float, edge_pixels: bool) -> None:
    """Random, strongly varying decoder maps; a grey guide; no pooling, pooling, edge pooling per pixel. Car and bus
    pixels come out grey wherever their upsampling reads only thing maps (every pixel when the frame is all
    things); road pixels stay tinted."""
    torch.manual_seed(2)
    decoder = Decoder([8, 8], 0, 4, 8, 0, pooling=pooling, edge_pooling=1 if edge_pixels else 0,
                      edge_pixels=edge_pixels, thing_chroma="untinted").eval()
    with torch.no_grad():
        decoder.head.weight.mul_(20)
        content, style = torch.randn(1, 8, 6, 8), torch.randn(1, 4)
        guide = (torch.rand(1, 1, 24, 32) * 1.6 - 0.8).expand(1, 3, 24, 32)
        things = torch.where(torch.arange(32) < 14, CAR, BUS).expand(1, 24, 32)
        out = decoder(content, style, guide, labels=things)
        assert (out - out[:, :1]).abs().max() < 1e-5
        road = decoder(content, style, guide, labels=torch.full((1, 24, 32), ROAD))
        assert (road - road[:, :1]).abs().amax() > 0.05  # the control: the same maps on road keep their tint
        decoder.thing_chroma = "decoder"
        plain = decoder(content, style, guide, labels=things)
        assert (plain - plain[:, :1]).abs().amax() > 0.05  # and on things without the option


def test_the_decoder_keeps_the_guides_chroma_on_things_and_its_own_on_road() -> None:
    """Clamped output (``identity_start``) with random, in-range maps and edge pooling per pixel; car left of x = 14,
    road right of it (the edge inside cell column 3). Car pixels leave with exactly the guide's chroma but for the
    1 px blend either side of the edge (the field's last upsampling); road pixels with the decoder's."""
    torch.manual_seed(5)
    decoder = Decoder([8, 8], 0, 4, 8, 0, pooling=0.5, edge_pooling=1, edge_pixels=True, identity_start=True,
                      thing_chroma="guide").eval()
    with torch.no_grad():
        decoder.head.weight.normal_(0, 0.05)
        content, style = torch.randn(1, 8, 6, 8), torch.randn(1, 4)
        guide = torch.rand(1, 3, 24, 32) * 1.0 - 0.5
        labels = torch.where(torch.arange(32) < 14, CAR, ROAD).expand(1, 24, 32)
        out = decoder(content, style, guide, labels=labels).double()
    assert out[..., :13].abs().max() < 0.99  # no clamp reached on things: the maps alone
    chroma = guide.double() - _luma(guide.double())
    out_chroma = out - _luma(out)
    assert torch.allclose(out_chroma[..., :13], chroma[..., :13], atol=1e-5)  # from the cells and the class table
    assert (out_chroma[..., 15:] - chroma[..., 15:]).abs().amax() > 0.02


def test_the_option_runs_under_autocast_close_to_float32() -> None:
    rgb, sem = procedural_frames(1, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    for mode in ("untinted", "guide"):
        gen = _generator(mode)
        with torch.no_grad():
            full = gen(rgb, sem, inst)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = gen(rgb, sem, inst)
        assert (low.float() - full).abs().max() < 0.1, mode


def _generator(thing_chroma: str) -> TranslatorGenerator:
    return pooled_lite_generator(decoder_thing_chroma=thing_chroma)


def test_the_generator_changes_only_thing_pixels_in_the_target_decoder_and_nothing_without_labels() -> None:
    rgb, sem = procedural_frames(2, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    grey, plain = _generator("untinted"), _generator("decoder")
    assert grey.decoders["target"].thing_chroma == "untinted" and grey.decoders["source"].thing_chroma == "decoder"
    with torch.no_grad():
        both, before = grey(rgb, sem, inst), plain(rgb, sem, inst)
        assert torch.equal(grey(rgb, None, None), plain(rgb, None, None))
    changed = (both - before).abs().amax(1) > 1e-4  # (B, H, W)
    thing = (sem >= TRAIN_ID["person"]) & (sem <= TRAIN_ID["bicycle"])
    assert changed.any() and thing.any()
    near_thing = torch.nn.functional.max_pool2d(thing.float().unsqueeze(1), 33, 1, 16).squeeze(1) > 0
    assert not (changed & ~near_thing).any()  # the camera's blur spreads a change at most a few pixels


@pytest.mark.parametrize("mode", ["untinted", "guide"])
def test_decoder_thing_chroma_reaches_onnx(tmp_path: Path, mode: str) -> None:
    from sim2real.translator.onnx_export import OnnxTranslator, export_onnx, onnx_parity

    gen = _generator(mode)
    runner = OnnxTranslator(export_onnx(gen, tmp_path / f"{mode}.onnx", 64, 96), intra_op_threads=1)
    assert runner.metadata["config"]["decoder_thing_chroma"] == mode
    assert onnx_parity(gen, runner) < 1e-3
    gen.decoders["target"].thing_chroma = "decoder"  # parity must see the difference
    assert onnx_parity(gen, runner) > 1e-3


def test_the_config_takes_one_of_its_choices_and_a_run_may_switch_it_on_for_a_trained_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="decoder_thing_chroma"):
        GeneratorConfig(decoder_thing_chroma="grey")
    with pytest.raises(ValueError, match="thing_chroma"):
        Decoder([8, 8], 0, 4, 8, 0, thing_chroma="grey")
    nets = switched_on_for(_generator("decoder"), tmp_path, ["generator.decoder_thing_chroma=guide"])
    assert nets.gen.cfg.decoder_thing_chroma == "guide" and nets.gen.decoders["target"].thing_chroma == "guide"
