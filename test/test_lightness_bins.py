"""Lightness bins (``coefficient_lightness_bins``): the hat weights, the per-pixel lookup and the binned class means
against known answers and float64 references (cell by cell: two frames, ids that are not classes, a whole class);
the things' colour maps per bin; a dark and a light part of one class keep their own maps at an
edge (plain class means hand both the same: the control); the generator (target decoder only), CPU autocast,
ONNX, the config and a run switching it on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from decoder_options import autocast_gaps, exported_and_eager_gaps, pooled_lite_generator, switched_on_for
from procedural_frames import procedural_frames

from sim2real.core.errors import ConfigError
from sim2real.translator.coefficient_pooling import ID_ROWS, class_pooled_coefficients, edge_pooled_coefficients
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.generator import Decoder
from sim2real.translator.lightness_bins import PRIOR_CELLS, by_label_and_lightness, lightness_weights
from sim2real.translator.memory import at_cell_centres, downsample_labels
from sim2real.translator.thing_colour_maps import thing_columns


def test_the_hat_weights_have_known_answers_and_sum_to_one() -> None:
    y = torch.tensor([-1.0, -1 / 3, 0.0, 0.5, 1.0, -3.0, 2.0])
    expected = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0.75, 0.25], [0, 0, 0, 1],
                             [1, 0, 0, 0], [0, 0, 0, 1]])
    assert torch.allclose(lightness_weights(y, 4), expected, atol=1e-6)
    random = lightness_weights(torch.rand(1000) * 2 - 1, 5)
    assert torch.allclose(random.sum(-1), torch.ones(1000)) and ((random > 0).sum(-1) <= 2).all()
    with pytest.raises(ValueError, match="bins"):
        lightness_weights(y, 1)


@pytest.mark.parametrize("batch", [1, 2])
def test_the_lookup_interpolates_each_pixels_own_label_between_its_two_bins(batch: int) -> None:
    torch.manual_seed(0)
    table = torch.randn(batch, 5, 4, ID_ROWS, dtype=torch.float64)
    labels = torch.randint(0, 19, (batch, 6, 7))
    labels[:, 0, 0], labels[:, 0, 1] = -4, 300  # not ids: column 255
    lightness = torch.rand(batch, 6, 7, dtype=torch.float64) * 2.4 - 1.2  # some beyond [-1, 1]: clamped
    constant = torch.randn(batch, 2, ID_ROWS, dtype=torch.float64)
    out, constant_out = by_label_and_lightness(table, labels, lightness, constant)
    ids = torch.where((labels < 0) | (labels > 255), 255, labels)
    weights = lightness_weights(lightness, 4)  # (B, h, w, L)
    columns = torch.stack([table[b][:, :, ids[b]] for b in range(batch)])  # (B, K, L, h, w)
    reference = (columns * weights.permute(0, 3, 1, 2).unsqueeze(1)).sum(2)
    assert torch.allclose(out, reference, atol=1e-12)
    assert torch.allclose(out[:, :, 0, 0], torch.einsum("bkl,bl->bk", table[:, :, :, 255], weights[:, 0, 0]))
    assert constant_out is not None
    assert torch.equal(constant_out, torch.stack([constant[b][:, ids[b]] for b in range(batch)]))  # by label alone
    alone, none = by_label_and_lightness(table, labels, lightness)
    assert none is None and torch.equal(alone, out)
    with pytest.raises(ValueError, match="constant columns"):  # another id count would read the wrong columns
        by_label_and_lightness(table, labels, lightness, constant[..., :200])


def _two_tone_class() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 16 x 16 frame at work scale 2 (8 x 8 cells): class 3 above, class 5 in the last two cell rows; class 3's
    left half dark (guide luma -0.8, coefficients 1) and its right half light (luma 0.8, coefficients 3); class 5
    mid-grey (luma 0, coefficients 10) -> coeffs (1, 2, 8, 8), labels (1, 16, 16), lightness (1, 1, 16, 16)."""
    labels = torch.full((1, 16, 16), 3)
    labels[:, 12:] = 5
    lightness = torch.zeros(1, 1, 16, 16)
    lightness[..., :12, :8], lightness[..., :12, 8:] = -0.8, 0.8
    coeffs = torch.full((1, 2, 8, 8), 10.0)
    coeffs[..., :6, :4], coeffs[..., :6, 4:] = 1.0, 3.0
    return coeffs, labels, lightness


def test_a_dark_and_a_light_part_of_one_class_keep_their_own_maps() -> None:
    """Class means per bin: with 2 bins the dark cells (weights 0.9 / 0.1) read 0.9 M[dark] + 0.1 M[light], each
    M pulled toward the class mean 2 by one prior cell; plain class means hand every cell 2 (the control)."""
    coeffs, labels, lightness = _two_tone_class()
    plain = class_pooled_coefficients(coeffs, labels, 1.0, 19)
    binned = class_pooled_coefficients(coeffs, labels, 1.0, 19, lightness=lightness, bins=2)
    n = 24  # cells of each half of class 3
    dark = (n * 0.9 * 1 + n * 0.1 * 3 + PRIOR_CELLS * 2) / (n + PRIOR_CELLS)  # bin 0: weight 0.9 dark, 0.1 light
    light = (n * 0.1 * 1 + n * 0.9 * 3 + PRIOR_CELLS * 2) / (n + PRIOR_CELLS)
    assert torch.allclose(plain[..., :6, :], torch.full((1, 2, 6, 8), 2.0))
    assert torch.allclose(binned[..., :6, :4], torch.tensor(0.9 * dark + 0.1 * light))
    assert torch.allclose(binned[..., :6, 4:], torch.tensor(0.1 * dark + 0.9 * light))
    assert torch.allclose(binned[..., 6:, :], torch.tensor(10.0))  # one lightness: its class mean


def test_edge_cells_and_the_edge_pixel_table_take_the_mean_of_their_own_lightness() -> None:
    """Edge pooling at radius 1 with 8 bins (luma -0.8 weighs 0.3 / 0.7 on bins 0 / 1, +0.8 on bins 6 / 7: the
    halves share no bin): class 3's cells beside class 5 take the mean of their own half (1 dark, 3 light), each
    bin's mean pulled toward the class mean 2 by the prior cell by at most 1 / (24 x 0.3 + 1) = 0.12; plain
    class means hand them 2 (the control)."""
    coeffs, labels, lightness = _two_tone_class()
    pooled, edge, table = edge_pooled_coefficients(coeffs, labels, 0.0, 19, 1, lightness=lightness, bins=8)
    assert table.shape == (1, 2, 8, ID_ROWS) and torch.equal(edge[0, 0, 5], torch.ones(8))
    pull = PRIOR_CELLS / (24 * 0.3 + PRIOR_CELLS)
    assert torch.allclose(pooled[0, :, 5, :4], torch.tensor(1.0), atol=pull)
    assert torch.allclose(pooled[0, :, 5, 4:], torch.tensor(3.0), atol=pull)
    plain = edge_pooled_coefficients(coeffs, labels, 0.0, 19, 1)[0]
    assert torch.allclose(plain[0, :, 5], torch.tensor(2.0))  # the control: the class mean
    assert torch.equal(pooled[0, :, :4], coeffs[0, :, :4])  # interior cells, pooling 0: their own
    decoder = Decoder([8, 8], 0, 4, 8, 0, pooling=0.0, edge_pooling=1, edge_pixels=True, lightness_bins=8)
    affine = torch.cat([pooled] * 6, 1)  # 12 planes
    field = decoder._edge_field(affine, edge, torch.cat([table] * 6, 1), labels, lightness=lightness)[0]
    assert torch.allclose(field[0, :, 10, :6], torch.tensor(1.0), atol=pull)  # dark edge pixels
    assert torch.allclose(field[0, :, 10, 10:], torch.tensor(3.0), atol=pull)


def _reference_pooling(coeffs: torch.Tensor, labels: torch.Tensor, lightness: torch.Tensor, *, weight: float,
                       radius: int, whole: tuple[int, ...], bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The binned pooling written out cell by cell in float64 (module docstrings of coefficient_pooling and
    lightness_bins): -> (pooled (B, K, h, w), table (B, K, L, 256))."""
    batch, channels, h, w = coeffs.shape
    cell_ids = downsample_labels(labels, (h, w))
    cell_weights = lightness_weights(at_cell_centres(lightness, (h, w))[:, 0], bins)  # (B, h, w, L)
    pooled, tables = coeffs.clone(), torch.zeros(batch, channels, bins, ID_ROWS, dtype=torch.float64)
    for b in range(batch):
        ids, c, hats = cell_ids[b], coeffs[b], cell_weights[b]
        is_class = (ids >= 0) & (ids < 19)
        frame_mean = c[:, is_class].mean(1)
        tables[b] = frame_mean[:, None, None]
        for k in ids[is_class].unique().tolist():
            cells = ids == k
            mean = c[:, cells].mean(1)
            for level in range(bins):
                hat = hats[..., level][cells]
                tables[b, :, level, k] = ((c[:, cells] * hat).sum(1) + mean) / (hat.sum() + 1)
        for i in range(h):
            for j in range(w):
                target = (tables[b][:, :, int(ids[i, j])] * hats[i, j]).sum(1) if is_class[i, j] else frame_mean
                window = ids[max(i - radius, 0):i + radius + 1, max(j - radius, 0):j + radius + 1]
                whole_or_edge = int(ids[i, j]) in whole or bool((window != ids[i, j]).any())
                share = 1.0 if whole_or_edge or not is_class[i, j] else weight
                pooled[b, :, i, j] = c[:, i, j] + share * (target - c[:, i, j])
    return pooled, tables


def test_the_pooling_matches_a_cell_by_cell_reference_with_odd_ids_two_frames_and_a_whole_class() -> None:
    torch.manual_seed(1)
    coeffs = torch.randn(2, 5, 6, 8, dtype=torch.float64)
    labels = torch.randint(0, 4, (2, 24, 32)) * 5  # classes 0, 5, 10, 15 at work scale 4
    labels[0, :8, :8], labels[0, 8:16, 24:], labels[1, 16:, :12] = -3, 300, 200  # not classes
    labels[1, :4, 12:20] = 19  # = num_classes: not a class
    lightness = torch.rand(2, 1, 24, 32, dtype=torch.float64) * 2 - 1
    expected, expected_table = _reference_pooling(coeffs, labels, lightness, weight=0.5, radius=1,
                                                        whole=(10,), bins=4)
    pooled, _, table = edge_pooled_coefficients(coeffs, labels, 0.5, 19, 1, whole_classes=(10,),
                                                lightness=lightness, bins=4)
    assert torch.allclose(pooled, expected.float(), atol=1e-5)
    assert torch.allclose(table, expected_table.float(), atol=1e-5)
    assert torch.equal(class_pooled_coefficients(coeffs, labels, 0.5, 19, 1, whole_classes=(10,),
                                                 lightness=lightness, bins=4), pooled)


@pytest.mark.parametrize("mode", ["guide", "untinted"])
def test_thing_colour_maps_act_on_each_bin_of_the_table(mode: str) -> None:
    torch.manual_seed(2)
    table = torch.randn(2, 16, 4, ID_ROWS)
    per_bin = torch.stack([thing_columns(table[:, :, level], mode) for level in range(4)], 2)
    assert torch.allclose(thing_columns(table, mode), per_bin, atol=1e-6)
    assert not torch.allclose(per_bin, table)  # the thing columns changed


def _generator(bins: int) -> torch.nn.Module:
    """The shipped decoder options (things' maps with the guide's chroma, the whole sky) with ``bins``."""
    return pooled_lite_generator(coefficient_lightness_bins=bins, decoder_thing_chroma="guide",
                                 coefficient_whole_classes=("sky",))


def test_the_generator_bins_in_the_target_decoder_only_and_only_with_labels() -> None:
    rgb, sem = procedural_frames(2, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    binned, plain = _generator(4), _generator(0)
    assert binned.decoders["target"].lightness_bins == 4 and binned.decoders["source"].lightness_bins == 0
    with torch.no_grad():
        assert (binned(rgb, sem, inst) - plain(rgb, sem, inst)).abs().amax() > 1e-3
        assert torch.equal(binned(rgb, None, None), plain(rgb, None, None))


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.bfloat16, 0.1), (torch.float16, 0.02)])
def test_the_binned_generator_runs_under_cpu_autocast(dtype: torch.dtype, tolerance: float) -> None:
    """CPU autocast standing in for CUDA's: within ``tolerance`` of fp32 at every pixel, while leaving the bins
    out moves some pixel by far more."""
    gap, control = autocast_gaps(_generator(4), _generator(0), dtype)
    assert gap < tolerance and control > 2 * tolerance


def test_the_bins_reach_onnx(tmp_path: Path) -> None:
    gen = _generator(4)
    config, gap, without = exported_and_eager_gaps(gen, tmp_path / "bins.onnx", "lightness_bins", 0)
    assert config["coefficient_lightness_bins"] == 4 and gap < 1e-4
    assert without > 1e-3


def test_the_config_checks_the_bins_and_a_run_may_switch_them_on(tmp_path: Path) -> None:
    for bad in (-1, 1, 17, 2.0):
        with pytest.raises(ConfigError, match="coefficient_lightness_bins"):
            GeneratorConfig(coefficient_pooling=0.5, coefficient_lightness_bins=bad)
    with pytest.raises(ConfigError, match="needs coefficient_pooling"):
        GeneratorConfig(coefficient_lightness_bins=4)
    with pytest.raises(ValueError, match="lightness_bins"):
        Decoder([8, 8], 0, 4, 8, 0, lightness_bins=4)
    cfg = GeneratorConfig(coefficient_edge_pooling=1, coefficient_lightness_bins=4)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    nets = switched_on_for(_generator(0), tmp_path, ["generator.coefficient_lightness_bins=4"])
    assert nets.gen.cfg.coefficient_lightness_bins == 4 and nets.gen.decoders["target"].lightness_bins == 4
