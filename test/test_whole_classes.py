"""Whole classes (``coefficient_whole_classes``): their cells take their class mean wholly, on both pooling paths and
with no pooling at all; every other cell as without them; the generator (target decoder only), ONNX, the config
and a run switching it on for a trained model (a tuple field through ``init_from``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from decoder_options import exported_and_eager_gaps, pooled_lite_generator, switched_on_for
from procedural_frames import procedural_frames

from sim2real.core.errors import ConfigError
from sim2real.core.labels import TRAIN_ID
from sim2real.translator.coefficient_pooling import class_pooled_coefficients, edge_pooled_coefficients
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.generator import TranslatorGenerator

SKY, BUILDING, ROAD = TRAIN_ID["sky"], TRAIN_ID["building"], TRAIN_ID["road"]


def _labels() -> torch.Tensor:
    """(2, 24, 32): sky on top (rows 0-7), building (rows 8-15), road (rows 16-23); frame 1 has no sky."""
    labels = torch.full((2, 24, 32), ROAD)
    labels[:, :16] = BUILDING
    labels[0, :8] = SKY
    return labels


@pytest.mark.parametrize(("weight", "radius"), [(0.0, 0), (0.5, 0), (0.5, 1)])
def test_whole_class_cells_take_their_class_mean_and_the_rest_are_as_without(weight: float, radius: int) -> None:
    torch.manual_seed(0)
    coeffs, labels = torch.randn(2, 5, 6, 8), _labels()  # cells of 4x4 pixels: rows 0-1 sky in frame 0
    without = class_pooled_coefficients(coeffs, labels, weight, 19, radius)
    out = class_pooled_coefficients(coeffs, labels, weight, 19, radius, whole_classes=(SKY,))
    sky_mean = coeffs[0, :, :2].mean((-2, -1))
    assert torch.allclose(out[0, :, :2], sky_mean[:, None, None].expand(-1, 2, 8), atol=1e-6)
    assert (without[0, :, :2] - out[0, :, :2]).abs().max() > 0.1  # the control: not pooled wholly without it
    assert torch.equal(out[0, :, 2:], without[0, :, 2:]) and torch.equal(out[1], without[1])  # no sky in frame 1


def test_negative_ids_are_no_class_so_a_frame_of_them_keeps_its_own_coefficients() -> None:
    """Ids below 0 read as 255 (not a class), not as class 0: a whole road would otherwise pool them."""
    torch.manual_seed(2)
    coeffs, labels = torch.randn(1, 5, 6, 8), torch.full((1, 24, 32), -1)
    out = class_pooled_coefficients(coeffs, labels, 0.0, 19, 0, whole_classes=(ROAD,))
    assert torch.equal(out, coeffs)
    labels[:, 16:] = ROAD  # the control: road cells do take their mean
    assert not torch.equal(class_pooled_coefficients(coeffs, labels, 0.0, 19, 0, whole_classes=(ROAD,)), coeffs)


def test_edge_pooling_per_pixel_keeps_its_edge_cells_and_table_with_whole_classes() -> None:
    torch.manual_seed(1)
    coeffs, labels = torch.randn(2, 5, 6, 8), _labels()
    pooled, edge, table = edge_pooled_coefficients(coeffs, labels, 0.5, 19, 1, whole_classes=(SKY,))
    assert torch.equal(pooled, class_pooled_coefficients(coeffs, labels, 0.5, 19, 1, whole_classes=(SKY,)))
    plain_pooled, plain_edge, plain_table = edge_pooled_coefficients(coeffs, labels, 0.5, 19, 1)
    assert torch.equal(edge, plain_edge) and torch.equal(table, plain_table)  # the class means are the same
    assert not torch.equal(pooled, plain_pooled)


def _generator(whole: tuple[str, ...]) -> TranslatorGenerator:
    return pooled_lite_generator(coefficient_whole_classes=whole)


def test_the_generator_pools_whole_classes_in_the_target_decoder_only() -> None:
    rgb, sem = procedural_frames(2, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    whole, plain = _generator(("sky",)), _generator(())
    assert whole.decoders["target"].whole_classes == (SKY,) and whole.decoders["source"].whole_classes == ()
    assert (sem == SKY).any()
    with torch.no_grad():
        changed = (whole(rgb, sem, inst) - plain(rgb, sem, inst)).abs().amax(1) > 1e-4
        assert torch.equal(whole(rgb, None, None), plain(rgb, None, None))
    assert changed.any()
    near_sky = torch.nn.functional.max_pool2d((sem == SKY).float().unsqueeze(1), 33, 1, 16).squeeze(1) > 0
    assert not (changed & ~near_sky).any()  # the camera's blur spreads a change at most a few pixels


def test_whole_classes_reach_onnx(tmp_path: Path) -> None:
    """On a procedural frame with sky (``onnx_parity``'s synthetic frame has none)."""
    gen = _generator(("sky",))
    config, gap, without = exported_and_eager_gaps(gen, tmp_path / "whole.onnx", "whole_classes", ())
    assert config["coefficient_whole_classes"] == ["sky"] and gap < 1e-3
    assert without > 1e-3


def test_the_config_takes_distinct_class_names_and_a_run_may_switch_it_on(tmp_path: Path) -> None:
    for bad in (["skies"], "sky", ["sky", "sky"]):
        with pytest.raises(ConfigError, match="coefficient_whole_classes"):
            GeneratorConfig(coefficient_whole_classes=bad)
    cfg = GeneratorConfig(coefficient_whole_classes=["sky"])
    assert cfg.coefficient_whole_classes == ("sky",) and GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    nets = switched_on_for(_generator(()), tmp_path, ["generator.coefficient_whole_classes=[sky]"])
    assert nets.gen.cfg.coefficient_whole_classes == ("sky",) and nets.gen.decoders["target"].whole_classes == (SKY,)
