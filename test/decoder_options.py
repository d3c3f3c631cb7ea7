"""Helpers for the tests of the target decoder's inference-time options (edge pooling per pixel, whole classes,
thing colour maps): a small `lite` generator with spatially varying maps, and a run switching options on for it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import torch

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
