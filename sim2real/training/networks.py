"""The networks of a training run: built from the config, optionally frozen in part or started from weights."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sim2real.core.errors import CheckpointError, ConfigError
from sim2real.training.config import TrainConfig
from sim2real.training.state_io import read_state
from sim2real.translator.aux_nets import AuxNets
from sim2real.translator.checkpoint import build_generator, load_checkpoint
from sim2real.translator.discriminator import ContentDiscriminator, MultiScaleDiscriminator
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.patch_nce import PatchProjector

__all__ = ["Networks", "build_networks", "freeze_generator", "load_initial_weights", "trainable"]


@dataclass
class Networks:
    """Everything with weights in a run."""

    gen: TranslatorGenerator
    gen_ema: TranslatorGenerator
    disc_target: MultiScaleDiscriminator
    disc_source: MultiScaleDiscriminator
    content_disc: ContentDiscriminator
    aux: AuxNets
    projector: PatchProjector | None = None

    def named(self) -> dict[str, nn.Module]:
        named: dict[str, nn.Module] = {"gen": self.gen, "gen_ema": self.gen_ema, "disc_target": self.disc_target,
                                       "disc_source": self.disc_source, "content_disc": self.content_disc,
                                       "aux": self.aux}
        if self.projector is not None:
            named["projector"] = self.projector
        return named

    def without_generator_state(self) -> list[nn.Module]:
        """The modules whose buffers are broadcast from rank 0 (the generators' state is pooled instead)."""
        return [self.disc_target, self.disc_source, self.content_disc, self.aux]


def build_networks(cfg: TrainConfig, device: torch.device) -> Networks:
    """Fresh networks of ``cfg`` on ``device``; the EMA generator starts as a frozen copy of the generator."""
    gen_cfg = cfg.generator_config()
    gen = TranslatorGenerator(gen_cfg)
    nets = Networks(
        gen=gen, gen_ema=copy.deepcopy(gen),
        disc_target=MultiScaleDiscriminator(cfg.discriminator),
        disc_source=MultiScaleDiscriminator(cfg.discriminator),
        content_disc=ContentDiscriminator(gen_cfg.content_channels),
        aux=AuxNets(cfg.aux),
        projector=PatchProjector([gen_cfg.content_channels]) if cfg.losses.nce > 0 else None,
    )
    for module in nets.named().values():
        module.to(device)
    nets.gen_ema.eval().requires_grad_(False)
    return nets


def trainable(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` that require a gradient."""
    return [p for p in module.parameters() if p.requires_grad]


def freeze_generator(gen: nn.Module, prefixes: Iterable[str]) -> None:
    """Freeze generator parameters whose names start with any of ``prefixes`` (fine-tuning)."""
    prefixes = tuple(prefixes)
    if not prefixes:
        return
    names = [n for n, _ in gen.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise ConfigError(f"freeze prefix {prefix!r} matches no generator parameter; top-level: {tops}")
    for name, param in gen.named_parameters():
        if name.startswith(prefixes):
            param.requires_grad_(False)


def load_initial_weights(nets: Networks, path: str | None, log: Callable[[str], Any]) -> None:
    """Fine-tune: start the generator (and EMA) from an inference checkpoint, or every network from a training
    checkpoint directory. Nothing when ``path`` is empty."""
    if not path:
        return
    source = Path(path)
    if source.suffix == ".safetensors":
        loaded = build_generator(load_checkpoint(source, map_location="cpu"))
        if loaded.cfg != nets.gen.cfg:
            raise CheckpointError(f"init_from {source}: its generator config differs from this run's "
                                  f"({loaded.cfg} vs {nets.gen.cfg})")
        state = loaded.state_dict()
        nets.gen.load_state_dict(state)
        nets.gen_ema.load_state_dict(state)
    else:
        models = read_state(source)["models"]
        for name, module in nets.named().items():
            module.load_state_dict(models[name])
    log(f"initialised from {source}")
