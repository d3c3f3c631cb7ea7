"""benchmarks/detail_energy.py: the detail path's output split into its box mean and the rest, on known outputs."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from sim2real.evaluation.frames import load_source_frames
from sim2real.translator.config import get_generator_config
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.inference import Translator

ROOT = Path(__file__).resolve().parents[1]
BIAS = torch.tensor([0.3, -0.2, 0.1])


def _bench() -> object:
    spec = importlib.util.spec_from_file_location("detail_energy", ROOT / "benchmarks" / "detail_energy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _translator(**overrides: object) -> Translator:
    """lite whose detail path outputs the constant BIAS (zero 1x1 weights), with ``overrides``."""
    cfg = dataclasses.replace(get_generator_config("lite"), **overrides)
    torch.manual_seed(0)
    gen = TranslatorGenerator(cfg)
    if gen.decoders["target"].detail is not None:
        with torch.no_grad():
            gen.decoders["target"].detail.out.weight.zero_()
            gen.decoders["target"].detail.out.bias.copy_(BIAS)
    return Translator.from_generator(gen, cfg, device="cpu", precision="fp32")


def test_a_constant_detail_output_is_all_frame_mean_and_the_high_pass_removes_it() -> None:
    bench = _bench()
    frames = load_source_frames("procedural:2", 2, (64, 128), sim_seed=2718)
    plain = bench.detail_energy(_translator(), frames)
    rms = float(BIAS.pow(2).mean().sqrt()) * 127.5
    assert plain["box"] == 9 and plain["rms"] == pytest.approx(rms, rel=1e-4)
    assert plain["frame_mean"] == pytest.approx(rms, rel=1e-4)  # all of it a frame-wide shift
    assert plain["between_cells"] < 1e-3 and plain["within_cell"] < 1e-3
    # the output moves with the bias's sign: R up, G down (through the tanh and the camera, so not 1:1)
    assert plain["output_change"][0] > 1 and plain["output_change"][1] < -1
    high = bench.detail_energy(_translator(detail_highpass=True), frames)
    assert high["rms"] < 1e-3 and max(abs(v) for v in high["output_change"]) < 1e-3  # float rounding only
    with pytest.raises(ValueError, match="no detail path"):
        bench.detail_energy(_translator(detail_channels=0), frames)
