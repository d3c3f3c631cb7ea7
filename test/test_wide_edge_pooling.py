"""Wide edge pooling (``coefficient_wide_edge_classes`` / ``coefficient_wide_edge_pooling``): cells of the listed
classes take their class mean within the wider radius of another label, every other cell as with plain edge
pooling; both pooling paths, the generator (target decoder only), ONNX, the config and a run switching it on for
a trained model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from decoder_options import exported_and_eager_gaps, pooled_lite_generator, switched_on_for
from procedural_frames import procedural_frames

from sim2real.core.errors import ConfigError
from sim2real.core.labels import TRAIN_ID
from sim2real.translator.coefficient_pooling import (
    WideEdge,
    class_pooled_coefficients,
    edge_cells,
    edge_pooled_coefficients,
)
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.memory import downsample_labels

BUILDING, POLE, ROAD = TRAIN_ID["building"], TRAIN_ID["pole"], TRAIN_ID["road"]


def _labels() -> torch.Tensor:
    """(1, 64, 64): building above row 32 with a pole in columns 16-17, road below; its 2x2 work cells
    (:func:`_cells`): building in cell rows 0-15 but cell column 8 (the pole), road from cell row 16."""
    labels = torch.full((1, 64, 64), ROAD)
    labels[:, :32] = BUILDING
    labels[:, :32, 16:18] = POLE
    return labels


def _cells() -> torch.Tensor:
    """(1, 32 * 32): the work cells' labels of :func:`_labels`."""
    return downsample_labels(_labels(), (32, 32)).flatten(1)


def _cell_distance() -> torch.Tensor:
    """(32, 32): each work cell's Chebyshev distance to a cell of another label (the frame border is none)."""
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    building = torch.minimum((cols - 8).abs(), 16 - rows)
    return torch.where(rows >= 16, rows - 15, torch.where(cols == 8, 1, building))


def test_edge_cells_widen_only_for_the_listed_classes() -> None:
    distance, building = _cell_distance(), _cells().view(32, 32) == BUILDING
    plain = edge_cells(_cells(), (32, 32), 2)[0, 0]
    wide = edge_cells(_cells(), (32, 32), 2, WideEdge((BUILDING,), 6))[0, 0]
    assert torch.equal(plain, distance <= 2)
    assert torch.equal(wide[building], (distance <= 6)[building])  # the building's cells: within 6
    assert torch.equal(wide[~building], plain[~building])  # the road and the pole as before
    assert (wide & ~plain).sum() > 50  # the control: the wide band holds cells plain pooling keeps


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_the_wide_band_takes_the_class_mean_and_every_other_cell_is_as_without(weight: float) -> None:
    """Frame 0 as :func:`_labels`; frame 1 unlabelled (255): no class cell, so no edge cell and its own maps."""
    torch.manual_seed(0)
    coeffs, labels = torch.randn(2, 5, 32, 32), torch.cat([_labels(), torch.full((1, 64, 64), 255)])
    cell_labels = _cells().view(32, 32)
    wide = WideEdge((BUILDING,), 6)
    without = class_pooled_coefficients(coeffs, labels, weight, 19, 2)
    out = class_pooled_coefficients(coeffs, labels, weight, 19, 2, wide=wide)
    assert torch.equal(out[1], without[1]) and torch.equal(out[1], coeffs[1])
    band = (cell_labels == BUILDING) & (_cell_distance() > 2) & (_cell_distance() <= 6)
    building_mean = coeffs[0][:, cell_labels == BUILDING].mean(1)
    assert torch.allclose(out[0][:, band], building_mean[:, None].expand(-1, int(band.sum())), atol=1e-5)
    assert (without[0][:, band] - out[0][:, band]).abs().max() > 0.5  # the control: not the mean without it
    assert torch.equal(out[0][:, ~band], without[0][:, ~band])
    pooled, edge, table = edge_pooled_coefficients(coeffs, labels, weight, 19, 2, wide=wide)
    assert torch.equal(pooled, out) and torch.equal(edge[0, 0] > 0, edge_cells(_cells(), (32, 32), 2, wide)[0, 0])
    assert not edge[1].any()
    assert torch.equal(table, edge_pooled_coefficients(coeffs, labels, weight, 19, 2)[2])  # the same class means


def test_with_lightness_bins_the_wide_band_takes_its_bins_class_mean() -> None:
    """Two tones of building (the guide's lightness -1 left of the pole, +1 right of it): each band cell takes its
    tone's bin of the building's means, (sum of the tone's cells + the class mean) / (their count + 1)
    (:mod:`~sim2real.translator.lightness_bins`), as the narrow band's cells do."""
    torch.manual_seed(2)
    coeffs, labels = torch.randn(1, 5, 32, 32), _labels()
    lightness = torch.full((1, 1, 64, 64), -1.0)
    lightness[..., 17:] = 1.0
    cell_labels, distance = _cells().view(32, 32), _cell_distance()
    wide = WideEdge((BUILDING,), 6)
    out = class_pooled_coefficients(coeffs, labels, 0.5, 19, 2, lightness=lightness, bins=4, wide=wide)
    without = class_pooled_coefficients(coeffs, labels, 0.5, 19, 2, lightness=lightness, bins=4)
    cols, class_mean = torch.arange(32).expand(32, 32), coeffs[0][:, cell_labels == BUILDING].mean(1, keepdim=True)
    for tone in (cols < 8, cols > 8):
        building = (cell_labels == BUILDING) & tone
        band = building & (distance > 2) & (distance <= 6)
        mean = (coeffs[0][:, building].sum(1, keepdim=True) + class_mean) / (int(building.sum()) + 1)
        assert band.any() and torch.allclose(out[0][:, band], mean.expand(-1, int(band.sum())), atol=1e-4)
        assert (without[0][:, band] - out[0][:, band]).abs().max() > 0.5


def _generator(classes: tuple[str, ...] = (), radius: int = 0) -> TranslatorGenerator:
    return pooled_lite_generator(coefficient_wide_edge_classes=classes, coefficient_wide_edge_pooling=radius)


def test_the_generator_widens_edge_pooling_in_the_target_decoder_only() -> None:
    rgb, sem = procedural_frames(2, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    wide, plain = _generator(("building",), 6), _generator()
    assert wide.decoders["target"].wide_edge == WideEdge((BUILDING,), 6)
    assert wide.decoders["source"].wide_edge == WideEdge()
    assert (sem == BUILDING).any()
    with torch.no_grad():
        changed = (wide(rgb, sem, inst) - plain(rgb, sem, inst)).abs().amax(1) > 1e-4
        assert torch.equal(wide(rgb, None, None), plain(rgb, None, None))
    assert changed.any()
    building_cells = (downsample_labels(sem, (16, 24)) == BUILDING).float().unsqueeze(1)
    others = (downsample_labels(sem, (16, 24)) != BUILDING).float().unsqueeze(1)
    band = building_cells * torch.nn.functional.max_pool2d(others, 13, 1, 6)  # building cells within 6 of another
    reach = torch.nn.functional.max_pool2d(band, 3, 1, 1)  # the upsampling reads a cell's neighbours
    reach = torch.nn.functional.interpolate(reach, scale_factor=4, mode="nearest")[:, 0] > 0
    reach = torch.nn.functional.max_pool2d(reach.float().unsqueeze(1), 7, 1, 3).squeeze(1) > 0  # the camera's blur
    assert (~reach).float().mean() > 0.2  # the control: much of the frame lies out of its reach
    assert not (changed & ~reach).any()


def test_wide_edge_pooling_reaches_onnx(tmp_path: Path) -> None:
    gen = _generator(("building",), 6)
    config, gap, without = exported_and_eager_gaps(gen, tmp_path / "wide.onnx", "wide_edge", WideEdge())
    assert config["coefficient_wide_edge_classes"] == ["building"] and config["coefficient_wide_edge_pooling"] == 6
    assert gap < 1e-3 and without > 1e-3


def test_the_config_checks_the_classes_and_radius_and_a_run_may_switch_it_on(tmp_path: Path) -> None:
    for bad, match in (({"coefficient_wide_edge_classes": ["building"]}, "go together"),
                       ({"coefficient_wide_edge_pooling": 6}, "go together"),
                       ({"coefficient_wide_edge_classes": ["building"], "coefficient_wide_edge_pooling": 2},
                        "widens edge pooling"),
                       ({"coefficient_wide_edge_classes": ["buildings"], "coefficient_wide_edge_pooling": 6},
                        "coefficient_wide_edge_classes"),
                       ({"coefficient_wide_edge_classes": ["building"], "coefficient_wide_edge_pooling": 17},
                        "coefficient_wide_edge_pooling")):
        with pytest.raises(ConfigError, match=match):
            GeneratorConfig(coefficient_edge_pooling=2, **bad)
    with pytest.raises(ConfigError, match="widens edge pooling"):
        GeneratorConfig(coefficient_wide_edge_classes=["building"], coefficient_wide_edge_pooling=6)
    with pytest.raises(ConfigError, match=r"\['sky'\] are in coefficient_whole_classes"):
        GeneratorConfig(coefficient_edge_pooling=2, coefficient_wide_edge_classes=["building", "sky"],
                        coefficient_wide_edge_pooling=6, coefficient_whole_classes=["sky"])
    cfg = GeneratorConfig(coefficient_edge_pooling=2, coefficient_wide_edge_classes=["building"],
                          coefficient_wide_edge_pooling=6)
    assert cfg.coefficient_wide_edge_classes == ("building",) and GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    nets = switched_on_for(_generator(), tmp_path, ["generator.coefficient_wide_edge_classes=[building]",
                                                    "generator.coefficient_wide_edge_pooling=6"])
    assert nets.gen.decoders["target"].wide_edge == WideEdge((BUILDING,), 6)
