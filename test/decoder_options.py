"""Helpers for the tests of the target decoder's inference-time options (edge pooling per pixel, whole classes,
thing colour maps, edge clamp, lightness bins): a small `lite` generator with spatially varying maps, a run
switching options on for it, its ONNX export against its eager graph and its CPU-autocast output against fp32."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from procedural_frames import procedural_frames

from sim2real.translator.config import get_generator_config
from sim2real.translator.generator import TranslatorGenerator

if TYPE_CHECKING:
    from sim2real.training.networks import Networks


def pooled_lite_generator(**overrides: object) -> TranslatorGenerator:
    """`lite` with coefficient pooling 0.5 and edge pooling 2 per pixel (``overrides`` replace any field), seed 0,
    its target decoder's head weights x 20: a field that varies in space, so the pooling has something to change."""
    torch.manual_seed(0)
    fields = {"coefficient_pooling": 0.5, "coefficient_edge_pooling": 2, "coefficient_edge_pixels": True, **overrides}
    gen = TranslatorGenerator(dataclasses.replace(get_generator_config("lite"), **fields)).eval()
    with torch.no_grad():
        gen.decoders["target"].head.weight.mul_(20)
    return gen


def switched_on_for(trained: TranslatorGenerator, tmp_path: Path, overrides: list[str]) -> Networks:
    """A training run's networks started (``init_from``) from ``trained`` saved as a checkpoint, with the
    ``generator.*`` ``overrides`` beside pooling 0.5 and edge pooling 2 per pixel; asserts every weight arrived."""
    from sim2real.training.config import load_train_config
    from sim2real.training.networks import build_networks, load_initial_weights
    from sim2real.translator.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "trained.safetensors", trained, trained.cfg)
    base = ["device=cpu", "validation_judge=null", "generator.coefficient_pooling=0.5",
            "generator.coefficient_edge_pooling=2", "generator.coefficient_edge_pixels=true"]
    nets = build_networks(load_train_config(None, base + overrides), "cpu")
    load_initial_weights(nets, str(path), lambda _: None)
    assert all(torch.equal(nets.gen.state_dict()[k], v) for k, v in trained.state_dict().items())
    return nets


def exported_and_eager_gaps(gen: TranslatorGenerator, path: Path, option: str, off: object
                             ) -> tuple[dict[str, Any], float, float]:
    """``gen`` exported to ONNX at 64x96 (``path``) and run there on a procedural frame with sky (seed 3; the
    export's own synthetic frame has none) -> (the file's generator config, the largest difference between that
    output and ``gen``'s eager graph, the same once the target decoder's ``option`` is set to ``off``: the control
    a test bounds from below, so that the comparison can see the option)."""
    from sim2real.translator.onnx_export import ExportGraph, OnnxTranslator, export_onnx

    runner = OnnxTranslator(export_onnx(gen, path, 64, 96), intra_op_threads=1)
    rgb, sem = procedural_frames(1, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    exported = torch.from_numpy(runner.translate_normalized(rgb.numpy(), sem.numpy(), inst.numpy()))

    def gap() -> float:
        with torch.inference_mode():
            out = ExportGraph(gen.eval(), gen.cfg.stride, 64, 96)(rgb, sem, inst)
        return float((out - exported).abs().max())

    with_option = gap()
    setattr(gen.decoders["target"], option, off)
    return runner.metadata["config"], with_option, gap()


def autocast_gaps(gen: TranslatorGenerator, without: TranslatorGenerator, dtype: torch.dtype) -> tuple[float, float]:
    """CPU autocast standing in for CUDA's, on a procedural frame (seed 3, 64x96): -> (the largest difference of
    ``gen`` under autocast in ``dtype`` to ``gen`` in fp32, the same for ``without`` (``gen`` without the option
    under test: the control a test bounds from below)); asserts the half-precision output is finite."""
    rgb, sem = procedural_frames(1, seed=3, size=(64, 96))
    inst = torch.zeros_like(sem)
    with torch.no_grad():
        full = gen(rgb, sem, inst)
        with torch.autocast("cpu", dtype=dtype):
            half, half_without = gen(rgb, sem, inst), without(rgb, sem, inst)
    assert torch.isfinite(half).all()
    return float((half.float() - full).abs().max()), float((half_without.float() - full).abs().max())
