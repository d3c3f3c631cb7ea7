"""Edge pooling per pixel (``coefficient_edge_pixels``): the per-label lookup, the class means it reads, the field
against a float64 label-aware bilinear reference, pixels beside a label edge that keep their own class's map where
the plain upsampling blends the two, batches, the generator, ONNX, autocast, config and a run switching it on; the
detail path's class steps taken off in that field (``detail_mean: class_box_field``) against ``class_box``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from decoder_options import pooled_lite_generator, switched_on_for
from procedural_frames import procedural_frames

from sim2real.core.errors import ConfigError
from sim2real.translator.coefficient_pooling import (
    class_mean_removed,
    class_means_by_id,
    class_pooled_coefficients,
    edge_pooled_coefficients,
    near_other_label,
)
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.generator import Decoder, TranslatorGenerator
from sim2real.translator.layers import (
    COLUMN_ORDER,
    box_mean,
    coefficients_by_label,
    column_affine_colour,
    upsampled_affine_colour,
)
from sim2real.translator.memory import downsample_labels


def _decoder(weight: float = 0.5, radius: int = 1) -> Decoder:
    return Decoder([8, 8], 0, 4, 8, 0, pooling=weight, edge_pooling=radius, edge_pixels=True)


def _labels() -> torch.Tensor:
    """(2, 24, 32): frame 0 has a diagonal edge, a block of void (255) and a 1-px class-7 line that no cell centre
    (rows and columns 2, 6, ..., 30) hits; frame 1 is two halves split at x = 14, off the cell grid."""
    y, x = torch.meshgrid(torch.arange(24), torch.arange(32), indexing="ij")
    first = torch.where(x + y < 26, 2, 5)
    first[:8, 24:] = 255
    first[:, 9] = 7
    second = torch.where(x < 14, 1, 3)
    return torch.stack([first, second])


def test_coefficients_by_label_looks_up_each_pixels_column_for_one_frame_and_for_several() -> None:
    table = torch.arange(2 * 3 * 256, dtype=torch.float32).view(2, 3, 256)
    labels = torch.tensor([[[0, 5], [255, 300]], [[-4, 1], [2, 3]]])  # 300 and -4: not a class, column 255
    ids = torch.where((labels < 0) | (labels > 255), 255, labels)
    expected = torch.stack([table[b][:, ids[b]] for b in range(2)])
    assert torch.equal(coefficients_by_label(table, labels), expected)  # the per-frame gather
    assert torch.equal(coefficients_by_label(table[1:], labels[1:]), expected[1:])  # one frame: rows, transposed
    with pytest.raises(ValueError, match="same B"):
        coefficients_by_label(table, labels[:1])


def test_edge_pooled_coefficients_returns_the_pooling_its_edge_cells_and_every_ids_class_mean() -> None:
    torch.manual_seed(1)
    coeffs, labels = torch.randn(2, 5, 6, 8), _labels()
    pooled, edge, table = edge_pooled_coefficients(coeffs, labels, 0.5, 19, 1)
    assert torch.equal(pooled, class_pooled_coefficients(coeffs, labels, 0.5, 19, edge_radius=1))
    cells = downsample_labels(labels, (6, 8)).long()
    assert torch.equal(edge.bool(), near_other_label(cells.flatten(1), (6, 8), 1))
    for b in range(2):
        in_class = cells[b] < 19
        frame_mean = coeffs[b][:, in_class].mean(1)
        for label in (0, 1, 2, 3, 5, 7, 19, 255):
            member = cells[b] == label
            expected = coeffs[b][:, member].mean(1) if member.any() and label < 19 else frame_mean
            assert torch.allclose(table[b, :, label], expected, atol=1e-6), (b, label)
    assert table.shape == (2, 5, 256)
    with pytest.raises(ValueError, match="edge_radius"):
        edge_pooled_coefficients(coeffs, labels, 0.5, 19, 0)


def _bilinear_taps(i: int, scale: int, size: int) -> list[tuple[int, float]]:
    """The (cell, weight) pairs of output index i of a bilinear upsampling by ``scale`` (half-pixel centres, the
    border clamped, as torch's ``align_corners=False``)."""
    s = max((i + 0.5) / scale - 0.5, 0.0)
    low = min(math.floor(s), size - 1)
    high, frac = min(low + 1, size - 1), s - low
    return [(low, 1 - frac), (high, frac)]


def test_the_field_is_the_bilinear_upsampling_with_each_pixels_own_label_in_place_of_the_edge_cells() -> None:
    """float64 reference, per full-resolution pixel p: sum over its four cells k of w_k c(k), with c(k) = the class
    mean of p's label where k is an edge cell, the pooled coefficients elsewhere."""
    torch.manual_seed(2)
    coeffs, labels = torch.randn(2, 12, 6, 8), _labels()
    pooled, edge, table = edge_pooled_coefficients(coeffs, labels, 0.5, 19, 1)
    field = _decoder()._edge_field(pooled, edge, table, labels)[0]
    ref_pooled, ref_edge, ref_table = pooled.double(), edge.double(), table.double()
    expected = torch.zeros(2, 12, 24, 32, dtype=torch.float64)
    for b in range(2):
        for y in range(24):
            for x in range(32):
                own = ref_table[b, :, labels[b, y, x].clamp(0, 255)]
                for cy, wy in _bilinear_taps(y, 4, 6):
                    for cx, wx in _bilinear_taps(x, 4, 8):
                        value = own if ref_edge[b, 0, cy, cx] > 0 else ref_pooled[b, :, cy, cx]
                        expected[b, :, y, x] += wy * wx * value
    assert field.shape == (2, 12, 24, 32)
    assert torch.allclose(field.double(), expected[:, list(COLUMN_ORDER)], atol=1e-5)  # by column of [A | b]
    alone = _decoder()._edge_field(pooled[1:], edge[1:], table[1:], labels[1:])[0]  # one frame: the exported lookup
    assert torch.allclose(alone, field[1:], atol=1e-6)


def test_pixels_beside_an_edge_keep_their_own_class_map_where_the_plain_upsampling_blends_the_two() -> None:
    """Two classes split at x = 14, inside cell column 3 (x 12-15, centre 14: class 3), every cell at its class
    mean (weight 1). Plain bilinear upsampling gives class-1 pixels up to 4 px from the edge part of class 3's map
    (the control); per pixel every pixel, the two either side of the edge too, is its own class's map."""
    torch.manual_seed(4)
    coeffs, labels = torch.randn(1, 12, 6, 8), _labels()[1:]
    guide = torch.rand(1, 3, 24, 32) * 2 - 1
    pooled, edge, table = edge_pooled_coefficients(coeffs, labels, 1.0, 19, 1)
    out = column_affine_colour(_decoder(weight=1.0)._edge_field(pooled, edge, table, labels)[0], guide)
    own = upsampled_affine_colour(torch.where(labels.unsqueeze(1) == 1, pooled[..., :1, :1], pooled[..., :1, -1:]),
                                  guide)  # each pixel its class's (uniform) map
    plain = upsampled_affine_colour(pooled, guide)
    assert torch.allclose(out, own, atol=1e-5)
    assert (plain - own)[..., 10:13].norm(dim=1).amin() > 1e-2  # the control: class-1 pixels 2-4 px off the edge
    assert (plain - own)[..., 13].norm(dim=1).amin() > 1e-1  # the pixel at the edge, most of all


@pytest.mark.parametrize("work_scale", [4, 2])
def test_class_box_field_takes_the_bands_of_the_class_steps_off_as_class_box_does(work_scale: int) -> None:
    """A detail output r = a +0.3 / -0.2 step at x = 14 plus a texture. The box high-pass leaves a band of up to
    0.23 over columns 10-17 (the control); each pixel's class mean from the field's lookup, taken off before the
    box, gives ``class_box`` exactly, at either work scale."""
    labels = torch.zeros(1, 24, 32, dtype=torch.long)
    labels[..., 14:] = 1
    texture = 0.05 * torch.sin(torch.arange(32.0) * 2.1).expand(1, 3, 24, 32)
    r = torch.where(labels.unsqueeze(1) == 0, 0.3, -0.2) + texture
    decoder = Decoder([8, 8], 0, 4, 8, 0, detail_channels=2, detail_highpass=9, detail_mean="class_box_field",
                      edge_pooling=1, edge_pixels=True)
    cells = (24 // work_scale, 32 // work_scale)
    means = class_means_by_id(r, labels, cells, 19)
    zeros = (torch.zeros(1, 12, *cells), torch.zeros(1, 1, *cells), torch.zeros(1, 12, 256))
    field, pixel_means = decoder._edge_field(*zeros, labels, means)
    assert pixel_means is not None and not field.any()
    m = torch.where(labels.unsqueeze(1) == 0, means[..., 0, None, None], means[..., 1, None, None])
    assert torch.equal(pixel_means, m)
    exact = class_mean_removed(r, labels, cells, 19)
    exact = exact - box_mean(exact, 9)
    error = (decoder._class_box(r, pixel_means) - exact).abs().amax()
    box_error = (r - box_mean(r, 9) - exact).abs().amax(dim=(0, 1, 2))  # per column
    assert box_error[10:18].min() > 0.05 and box_error.max() > 0.2  # the control: the box's band
    assert error < 1e-6
    assert decoder._edge_field(*zeros, labels)[1] is None  # no detail means: nothing to look up


def test_the_detail_means_are_read_in_the_same_lookup_per_lightness_bin() -> None:
    """With a table per lightness bin the detail means (one per label, the same in every bin) come out of the
    lookup unblended: each pixel's column of the means, as a lookup of the means alone gives."""
    torch.manual_seed(7)
    labels = _labels()
    decoder = Decoder([8, 8], 0, 4, 8, 0, detail_channels=2, detail_highpass=9, detail_mean="class_box_field",
                      edge_pooling=1, edge_pixels=True, pooling=0.5, lightness_bins=3)
    affine, edge, table = torch.randn(2, 12, 6, 8), (torch.rand(2, 1, 6, 8) > 0.5).float(), torch.randn(2, 12, 3, 256)
    means, lightness = torch.randn(2, 3, 256), torch.rand(2, 1, 24, 32) * 2 - 1
    _, pixel_means = decoder._edge_field(affine, edge, table, labels, means, lightness=lightness)
    assert pixel_means is not None and torch.equal(pixel_means, coefficients_by_label(means, labels))
    _, alone = decoder._edge_field(affine[1:], edge[1:], table[1:], labels[1:], means[1:], lightness=lightness[1:])
    assert alone is not None and torch.equal(alone, pixel_means[1:])  # one frame: the exported lookup of rows


def test_the_field_has_gradients_and_checks_the_labels_size() -> None:
    torch.manual_seed(5)
    labels = _labels()
    decoder = Decoder([8, 8], 0, 4, 8, 0, detail_channels=2, detail_highpass=9, detail_mean="class_box_field",
                      edge_pooling=1, edge_pixels=True).double()
    inputs = (torch.randn(2, 12, 6, 8, dtype=torch.float64, requires_grad=True),
              (torch.rand(2, 1, 6, 8) > 0.5).double(),
              torch.randn(2, 12, 256, dtype=torch.float64, requires_grad=True))
    means = torch.randn(2, 3, 256, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, t, m: [*decoder._edge_field(a, inputs[1], t, labels, m)],
                                    (inputs[0], inputs[2], means))
    with pytest.raises(ValueError, match="not a whole multiple"):
        decoder._edge_field(*inputs, labels[:, :20])
    with pytest.raises(ValueError, match="needs edge_pixels"):
        Decoder([8, 8], 0, 4, 8, 0, detail_channels=2, detail_highpass=9, detail_mean="class_box_field",
                edge_pooling=1)


def test_the_pooled_means_stay_float32_under_autocast() -> None:
    torch.manual_seed(6)
    coeffs, labels = torch.randn(2, 12, 6, 8), _labels()
    reference = edge_pooled_coefficients(coeffs, labels, 0.5, 19, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = edge_pooled_coefficients(coeffs.bfloat16(), labels, 0.5, 19, 1)
    assert all(t.dtype == torch.float32 for t in low)
    # the bf16 input itself is off by ~4e-3 relative: means computed in bf16 would be off by far more
    assert all(torch.allclose(a, b, atol=3e-2) for a, b in zip(low, reference, strict=True))


def _generator(edge_pixels: bool, **overrides: object) -> TranslatorGenerator:
    return pooled_lite_generator(coefficient_edge_pixels=edge_pixels, **overrides)


def test_the_generator_looks_labels_up_only_in_the_target_decoder_and_only_with_labels() -> None:
    rgb, sem = procedural_frames(2, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    per_pixel, plain = _generator(True), _generator(False)
    assert per_pixel.decoders["target"].edge_pixels and not per_pixel.decoders["source"].edge_pixels
    with torch.no_grad():
        both = per_pixel(rgb, sem, inst)
        assert (both - plain(rgb, sem, inst)).abs().max() > 1e-2
        assert torch.allclose(both[1:], per_pixel(rgb[1:], sem[1:], inst[1:]), atol=1e-5)  # batch = frames alone
        assert torch.equal(per_pixel(rgb, None, None), plain(rgb, None, None))  # no labels: nothing to look up
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = per_pixel(rgb, sem, inst)
    assert (low.float() - both).abs().max() < 0.1  # the lookup runs under autocast too


def test_edge_pixels_reach_onnx(tmp_path: Path) -> None:
    from sim2real.translator.onnx_export import OnnxTranslator, export_onnx, onnx_parity

    gen = _generator(True)
    runner = OnnxTranslator(export_onnx(gen, tmp_path / "edge_pixels.onnx", 64, 96), intra_op_threads=1)
    assert runner.metadata["config"]["coefficient_edge_pixels"] is True
    assert onnx_parity(gen, runner) < 1e-3
    gen.decoders["target"].edge_pixels = False  # parity must see the difference
    assert onnx_parity(gen, runner) > 1e-2


@pytest.mark.parametrize("edge_clamp", [0, 1])
def test_the_generator_with_class_box_field_is_class_box_and_the_source_decoder_uses_the_box(edge_clamp: int) -> None:
    """End to end, through DetailPath.render and the decoder, with and without the edge clamp (which takes the
    detail apart from the colour map): ``class_box_field`` gives exact ``class_box``'s output (both with edge
    pixels; the plain box, the control, differs by 4e-3 on average on these random weights and this small,
    edge-dense frame); the source decoder (no edge pixels) keeps the box high-pass. With the edge pixels switched
    off at run time the class means are looked up alone: still ``class_box``."""
    rgb, sem = procedural_frames(1, seed=4, size=(128, 192))
    inst = torch.zeros_like(sem)
    outputs = {}
    for mean in ("class_box_field", "class_box", "box"):
        gen = _generator(True, detail_highpass=True, detail_mean=mean, edge_clamp=edge_clamp)
        with torch.no_grad():
            gen.decoders["target"].detail.out.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
            outputs[mean] = gen(rgb, sem, inst)
    assert gen.decoders["source"].detail.mean == "box"
    field = _generator(True, detail_highpass=True, detail_mean="class_box_field", edge_clamp=edge_clamp)
    assert field.decoders["source"].detail.mean == "box" and field.decoders["target"].detail.mean == "class_box_field"
    near = (outputs["class_box_field"] - outputs["class_box"]).abs().amax()
    box = (outputs["box"] - outputs["class_box"]).abs().mean()
    assert box > 1e-3 and near < 1e-5, (near, box)
    with torch.no_grad():
        field.decoders["target"].detail.out.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
        field.decoders["target"].edge_pixels = False
        without_field = field(rgb, sem, inst)
        field.decoders["target"].detail.mean = "class_box"
        reference = field(rgb, sem, inst)
    assert (without_field - reference).abs().amax() < 1e-5


@pytest.mark.parametrize("bins", [0, 4])
def test_class_box_field_reaches_onnx(tmp_path: Path, bins: int) -> None:
    """Exported, with and without lightness bins (with them the class means ride in the lower bin's gather)."""
    from sim2real.translator.onnx_export import OnnxTranslator, export_onnx, onnx_parity

    gen = _generator(True, detail_highpass=True, detail_mean="class_box_field", coefficient_lightness_bins=bins)
    with torch.no_grad():  # a detail path that draws something
        gen.decoders["target"].detail.out.weight.normal_(0, 0.3)
    runner = OnnxTranslator(export_onnx(gen, tmp_path / "class_box_field.onnx", 64, 96), intra_op_threads=1)
    assert runner.metadata["config"]["detail_mean"] == "class_box_field"
    assert onnx_parity(gen, runner) < 1e-3
    gen.decoders["target"].detail.mean = "box"  # no class means, the plain box high-pass: parity must see it
    assert onnx_parity(gen, runner) > 1e-3


def test_the_config_needs_edge_pooling_and_a_bool_and_class_box_field_needs_edge_pixels() -> None:
    with pytest.raises(ConfigError, match="coefficient_edge_pooling"):
        GeneratorConfig(coefficient_edge_pixels=True)
    with pytest.raises(ConfigError, match="coefficient_edge_pixels"):
        GeneratorConfig(coefficient_edge_pooling=2, coefficient_edge_pixels=1)
    with pytest.raises(ValueError, match="edge_pooling"):
        Decoder([8, 8], 0, 4, 8, 0, edge_pixels=True)
    with pytest.raises(ConfigError, match="coefficient_edge_pixels"):
        GeneratorConfig(detail_channels=4, detail_highpass=True, detail_mean="class_box_field",
                        coefficient_edge_pooling=2)


def test_a_run_may_switch_edge_pixels_on_for_a_trained_model(tmp_path: Path) -> None:
    nets = switched_on_for(_generator(False), tmp_path, [])
    assert nets.gen.cfg.coefficient_edge_pixels and nets.gen.decoders["target"].edge_pixels
