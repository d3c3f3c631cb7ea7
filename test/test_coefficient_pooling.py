"""Class-pooled decoder coefficients: known answers, cells without a class, the generator, checkpoint + ONNX,
autocast, init_from."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
import torch.nn.functional as F
from procedural_frames import procedural_frames

from sim2real.core.errors import ConfigError
from sim2real.translator.coefficient_pooling import class_pooled_coefficients
from sim2real.translator.config import GeneratorConfig, get_generator_config
from sim2real.translator.generator import TranslatorGenerator

if TYPE_CHECKING:
    from sim2real.training.networks import Networks


def test_weight_zero_keeps_the_cells_and_weight_one_gives_the_class_mean() -> None:
    torch.manual_seed(0)
    coeffs = torch.randn(2, 5, 6, 8)
    labels = torch.zeros(2, 24, 32, dtype=torch.long)
    labels[:, :, 16:] = 3  # left half class 0, right half class 3: cells 0-3 and 4-7 of each row
    assert torch.equal(class_pooled_coefficients(coeffs, labels, 0.0, 19), coeffs)
    out = class_pooled_coefficients(coeffs, labels, 1.0, 19)
    left, right = coeffs[..., :4].mean((-2, -1)), coeffs[..., 4:].mean((-2, -1))  # (2, 5)
    assert torch.allclose(out[..., :4], left[..., None, None].expand(-1, -1, 6, 4), atol=1e-6)
    assert torch.allclose(out[..., 4:], right[..., None, None].expand(-1, -1, 6, 4), atol=1e-6)
    half = class_pooled_coefficients(coeffs, labels, 0.5, 19)
    assert torch.allclose(half, 0.5 * out + 0.5 * coeffs, atol=1e-6)


def test_each_frame_pools_its_own_cells_by_the_label_at_their_centre() -> None:
    torch.manual_seed(1)
    coeffs = torch.randn(2, 3, 4, 4)
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, 5, 5] = 7  # one pixel off every cell centre (centres at 2, 6, 10, 14): no cell is class 7
    labels[1, 8:, :] = 4
    out = class_pooled_coefficients(coeffs, labels, 1.0, 19)
    assert torch.allclose(out[0], coeffs[0].mean((-2, -1))[:, None, None].expand(3, 4, 4), atol=1e-6)
    assert torch.allclose(out[1, :, :2], coeffs[1, :, :2].mean((-2, -1))[:, None, None].expand(3, 2, 4), atol=1e-6)
    assert torch.allclose(out[1, :, 2:], coeffs[1, :, 2:].mean((-2, -1))[:, None, None].expand(3, 2, 4), atol=1e-6)


def test_cells_without_a_class_take_the_mean_of_the_frames_class_cells() -> None:
    """Ignore / unknown ids / padding: the decoder never saw them in training; they take the frame's mean map, wholly,
    for any weight > 0 (a frame of no class at all, the node's all-255 map, keeps its coefficients)."""
    torch.manual_seed(2)
    coeffs = torch.randn(2, 3, 4, 4)
    assert torch.equal(class_pooled_coefficients(coeffs[:1], torch.full((1, 16, 16), 255), 1.0, 19), coeffs[:1])
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, 8:, :8] = 255
    labels[:, 8:, 8:] = -1
    other = labels.clone()
    other[1] = 255
    other[1, :, 8:] = 5  # the second frame: its own layout, class cells on the right half only
    for weight in (1.0, 0.5):
        out = class_pooled_coefficients(coeffs, other, weight, 19)
        for b, classed, void in ((0, (slice(0, 2), slice(None)), (slice(2, 4), slice(None))),
                                 (1, (slice(None), slice(2, 4)), (slice(None), slice(0, 2)))):
            own = coeffs[b][:, classed[0], classed[1]]
            class_mean = own.mean((-2, -1))[:, None, None]  # each frame's own class cells only
            assert torch.allclose(out[b][:, void[0], void[1]], class_mean.expand(3, -1, -1) * torch.ones(3, *
                                  out[b][:, void[0], void[1]].shape[1:]), atol=1e-6)  # void: wholly the mean
            assert torch.allclose(out[b][:, classed[0], classed[1]], own + weight * (class_mean - own), atol=1e-6)
    labels[1] = 255  # a frame without any class cell keeps its coefficients, beside a frame with some
    assert torch.equal(class_pooled_coefficients(coeffs, labels, 1.0, 19)[1], coeffs[1])
    assert torch.equal(class_pooled_coefficients(coeffs, labels, 0.0, 19), coeffs)  # pooling off: untouched


def test_the_config_bounds_the_weight() -> None:
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ConfigError, match="coefficient_pooling"):
            GeneratorConfig(coefficient_pooling=bad)


def _pooled_generator(weight: float, **overrides: object) -> TranslatorGenerator:
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_generator_config("lite"), coefficient_pooling=weight, **overrides)
    gen = TranslatorGenerator(cfg).eval()
    with torch.no_grad():  # a decoder head that varies in space, so pooling has something to change
        gen.decoders["target"].head.weight.mul_(20)
    return gen


def test_the_generator_pools_the_target_decoder_only_and_only_with_labels() -> None:
    rgb, sem = procedural_frames(1, seed=3)
    inst = torch.zeros_like(sem)
    pooled, plain = _pooled_generator(1.0), _pooled_generator(0.0)
    plain.load_state_dict(pooled.state_dict())
    with torch.no_grad():
        differs = (pooled(rgb, sem, inst) - plain(rgb, sem, inst)).abs().max()
        assert differs > 1e-2
        code = pooled.encode_content(rgb, "source", sem, inst)
        style = pooled.mean_style("source", 1)
        assert torch.equal(pooled.decode(code, style, "source"), plain.decode(code, style, "source"))
        assert torch.equal(pooled(rgb, None, None), plain(rgb, None, None))  # no labels: nothing to pool by
        # without detail path and camera (both position-dependent), the cells of a class share one colour map:
        # away from other classes (farther than the upsampling reaches) the output is a function of the colour
        out = _pooled_generator(1.0, detail_channels=0, use_camera=False)(rgb, sem, inst)
    near_other = F.max_pool2d((sem != 0).float()[None], 17, stride=1, padding=8)[0, 0] > 0
    road = (sem[0] == 0) & ~near_other
    colours = torch.unique(rgb[0][:, road].T, dim=0)
    first = (colours[0] == rgb[0][:, road].T).all(1)
    assert first.sum() > 100
    spread = out[0][:, road][:, first].std(1).max()
    assert spread < 1e-4, spread


def test_pooling_survives_checkpoint_and_onnx(tmp_path: Path) -> None:
    from sim2real.translator.checkpoint import build_generator, load_checkpoint, save_checkpoint
    from sim2real.translator.onnx_export import OnnxTranslator, export_onnx, onnx_parity

    gen = _pooled_generator(0.5)
    path = save_checkpoint(tmp_path / "pooled.safetensors", gen, gen.cfg)
    loaded = build_generator(load_checkpoint(path, map_location="cpu")).eval()
    assert loaded.cfg.coefficient_pooling == 0.5
    runner = OnnxTranslator(export_onnx(loaded, tmp_path / "pooled.onnx", 64, 96), intra_op_threads=1)
    assert onnx_parity(loaded, runner) < 1e-3
    loaded.decoders["target"].pooling = 0.0  # the unpooled model: parity must see the difference
    assert onnx_parity(loaded, runner) > 1e-2


def test_unlabelled_cells_export_to_onnx(tmp_path: Path) -> None:
    """The unlabelled-cell branch (frame mean; a frame of no class keeps its own) in the exported graph."""
    from sim2real.translator.onnx_export import ExportGraph, OnnxTranslator, export_onnx

    gen = _pooled_generator(0.5).eval()
    runner = OnnxTranslator(export_onnx(gen, tmp_path / "pooled.onnx", 64, 96), intra_op_threads=1)
    rgb, sem = procedural_frames(1, seed=6, size=(64, 96))
    inst = torch.zeros_like(sem)
    inst[:, 40:60, 60:80] = 1
    void = sem.clone()
    void[:, 16:48, 8:56] = 255  # covers many work-cell centres
    graph = ExportGraph(gen, gen.cfg.stride, 64, 96)
    outputs = {}
    for name, labels in (("labelled", sem), ("void block", void), ("all 255", torch.full_like(sem, 255))):
        with torch.inference_mode():
            eager = graph(rgb, labels, inst).float().numpy()
        exported = runner.translate_normalized(rgb.numpy(), labels.numpy(), inst.numpy())
        assert abs(eager - exported).max() < 1e-3, name
        outputs[name] = eager
    assert abs(outputs["void block"] - outputs["labelled"])[..., 16:48, 8:56].max() > 1e-2  # the branch ran


def test_pooling_computes_in_fp32_under_autocast() -> None:
    torch.manual_seed(2)
    coeffs = torch.randn(1, 12, 32, 64) * 3
    labels = procedural_frames(1, seed=4, size=(128, 256))[1]
    reference = class_pooled_coefficients(coeffs, labels, 0.5, 19)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = class_pooled_coefficients(coeffs, labels, 0.5, 19)
    assert out.dtype == torch.float32 and (out - reference).abs().max() < 1e-6


def _start_run_from_plain_model(tmp_path: Path, overrides: list[str]) -> tuple[TranslatorGenerator, Networks]:
    """Save a plain (unpooled, default-padded) lite generator and start a CPU run with ``overrides`` from it."""
    from sim2real.training.config import load_train_config
    from sim2real.training.networks import build_networks, load_initial_weights
    from sim2real.translator.checkpoint import save_checkpoint

    trained = _pooled_generator(0.0)
    path = save_checkpoint(tmp_path / "plain.safetensors", trained, trained.cfg)
    nets = build_networks(load_train_config(None, ["device=cpu", "validation_judge=null", *overrides]), "cpu")
    load_initial_weights(nets, str(path), lambda _: None)
    assert all(torch.equal(nets.gen.state_dict()[k], v) for k, v in trained.state_dict().items())
    return trained, nets


def test_a_run_may_switch_pooling_on_for_a_trained_model(tmp_path: Path) -> None:
    from sim2real.core.errors import CheckpointError

    _, nets = _start_run_from_plain_model(tmp_path, ["generator.coefficient_pooling=0.5"])
    assert nets.gen.cfg.coefficient_pooling == 0.5 and nets.gen.decoders["target"].pooling == 0.5
    with pytest.raises(CheckpointError, match="differs"):  # a difference in the weights is still refused
        _start_run_from_plain_model(tmp_path, ["generator.coefficient_pooling=0.5", "generator.detail_channels=2"])


def test_a_run_may_take_the_detail_paths_local_mean_off_for_a_trained_model(tmp_path: Path) -> None:
    trained, nets = _start_run_from_plain_model(tmp_path, ["generator.detail_highpass=true"])
    assert not trained.cfg.detail_highpass and nets.gen.cfg.detail_highpass
    assert nets.gen.decoders["target"].detail.highpass == 2 * nets.gen.cfg.work_scale + 1  # the same weights


def test_a_run_may_change_the_body_padding_of_a_trained_model(tmp_path: Path) -> None:
    trained, nets = _start_run_from_plain_model(tmp_path, ["generator.body_padding_mode=replicate"])
    assert trained.cfg.body_padding_mode is None
    convs = [m for m in nets.gen.content_body.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1]
    assert convs and all(m.padding_mode == "replicate" for m in convs)


def test_edge_pooling_gives_the_cells_near_another_label_their_class_mean_and_keeps_the_rest() -> None:
    """Two classes split at cell column 4 of 8 (cell = 4 px): radius r replaces columns 4-r..3+r wholly by their
    class mean; the other cells keep their own coefficients (weight 0) or their usual blend (weight 0.5)."""
    torch.manual_seed(3)
    coeffs = torch.randn(1, 5, 6, 8)
    labels = torch.zeros(1, 24, 32, dtype=torch.long)
    labels[:, :, 16:] = 3
    full = class_pooled_coefficients(coeffs, labels, 1.0, 19)
    for radius in (1, 2):
        near = torch.zeros(8, dtype=torch.bool)
        near[4 - radius : 4 + radius] = True
        for weight in (0.0, 0.5):
            out = class_pooled_coefficients(coeffs, labels, weight, 19, edge_radius=radius)
            assert torch.allclose(out[..., near], full[..., near], atol=1e-6), (radius, weight)
            blend = coeffs + weight * (full - coeffs)
            assert torch.allclose(out[..., ~near], blend[..., ~near], atol=1e-6), (radius, weight)
    assert torch.equal(class_pooled_coefficients(coeffs, labels, 0.0, 19, edge_radius=0), coeffs)  # off


def test_near_other_label_uses_the_chebyshev_window_and_not_the_frame_border() -> None:
    from sim2real.translator.coefficient_pooling import near_other_label

    cells = torch.zeros(1, 7, 7, dtype=torch.long)
    cells[0, 3, 3] = 5  # one odd cell in the middle
    near = near_other_label(cells.flatten(1), (7, 7), 2)[0, 0]
    expected = torch.zeros(7, 7, dtype=torch.bool)
    expected[1:6, 1:6] = True  # the 5x5 window around it (the odd cell sees its neighbours)
    assert torch.equal(near, expected)
    assert not near_other_label(torch.zeros(1, 49, dtype=torch.long), (7, 7), 3).any()  # one label: no edge


def test_edge_pooling_reaches_the_generator_and_onnx(tmp_path: Path) -> None:
    from sim2real.translator.onnx_export import OnnxTranslator, export_onnx, onnx_parity

    rgb, sem = procedural_frames(1, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    edge, plain = _pooled_generator(0.5, coefficient_edge_pooling=2), _pooled_generator(0.5)
    with torch.no_grad():
        assert (edge(rgb, sem, inst) - plain(rgb, sem, inst)).abs().max() > 1e-2
    runner = OnnxTranslator(export_onnx(edge, tmp_path / "edge.onnx", 64, 96), intra_op_threads=1)
    assert onnx_parity(edge, runner) < 1e-3
    edge.decoders["target"].edge_pooling = 0  # parity must see the difference
    assert onnx_parity(edge, runner) > 1e-2
    for bad in (-1, 9, 1.5, True):
        with pytest.raises(ConfigError, match="coefficient_edge_pooling"):
            GeneratorConfig(coefficient_edge_pooling=bad)


def test_a_run_may_switch_edge_pooling_on_for_a_trained_model(tmp_path: Path) -> None:
    _, nets = _start_run_from_plain_model(tmp_path, ["generator.coefficient_edge_pooling=2"])
    assert nets.gen.cfg.coefficient_edge_pooling == 2 and nets.gen.decoders["target"].edge_pooling == 2
