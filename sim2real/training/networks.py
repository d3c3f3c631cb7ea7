"""The networks of a training run: built from the config, optionally frozen in part or started from weights."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn

from sim2real.core.errors import CheckpointError, ConfigError
from sim2real.training.config import TrainConfig
from sim2real.training.state_io import EXPORTED_GENERATOR, read_state
from sim2real.translator.aux_nets import AuxNets
from sim2real.translator.checkpoint import build_generator, load_checkpoint, read_checkpoint_document
from sim2real.translator.colour_prior import ClassColourPrior
from sim2real.translator.config import GeneratorConfig
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


#: generator config fields a run may change when it starts from another model's weights: they change no weight
#: (how much of the decoder's coefficients are pooled per class, near label edges (wider for some classes) and for
#: whole classes; how the content body and decoders pad; whether, and which, mean of the detail path's output is
#: taken off; where thing classes' colour maps take their chroma from; how near label edges the output is clamped;
#: whether the pooling targets are taken per lightness bin; how strong the detail path's texture is; which classes'
#: painted markings keep their chroma).
RUN_MAY_CHANGE: Final = ("coefficient_pooling", "coefficient_edge_pooling", "body_padding_mode",
                         "detail_highpass", "detail_mean", "coefficient_edge_pixels", "decoder_thing_chroma",
                         "coefficient_whole_classes", "edge_clamp", "coefficient_lightness_bins", "detail_gain",
                         "marking_chroma_classes", "coefficient_wide_edge_classes",
                         "coefficient_wide_edge_pooling")


def _prior_keys(per_frame: bool) -> set[str]:
    return {f"colour_prior.{k}" for k in ClassColourPrior(per_frame).state_dict()}


def _load_generator(gen: nn.Module, state: dict[str, torch.Tensor], source: Path) -> bool:
    """Load a generator state; a colour prior of the other kind (fixed / per frame: exactly the other kind's
    buffers) is left out and stays unfitted, so the run fits its own at the start. Returns whether it was left
    out. Anything else that does not fit (including a missing prior) is a CheckpointError."""
    prior = {k for k in state if k.startswith("colour_prior.")}
    own = {k for k in gen.state_dict() if k.startswith("colour_prior.")}
    other_kind = bool(own) and prior != own and prior in (_prior_keys(False), _prior_keys(True))
    if other_kind:
        state = {k: v for k, v in state.items() if k not in prior}
    missing, unexpected = gen.load_state_dict(state, strict=False)
    if unexpected or any(not (other_kind and k in own) for k in missing):
        raise CheckpointError(f"init_from {source}: the generator state does not fit this run's (missing "
                              f"{missing}, unexpected {unexpected})")
    return other_kind


def check_generator_config(loaded: GeneratorConfig, run: GeneratorConfig, source: Path,
                           log: Callable[[str], Any]) -> None:
    """CheckpointError when the generator config ``source`` was trained with differs from this run's beyond the
    fields a run may change (``RUN_MAY_CHANGE``) and the kind of colour prior; each of those that does differ is
    logged with both values. Compared as plain fields (a mix of the two configs need not be a valid one)."""
    run_fields = run.to_dict()  # as plain JSON values (lists, not tuples), as loaded.to_dict() gives them
    mixed = {**loaded.to_dict(), **{f: run_fields[f] for f in RUN_MAY_CHANGE}}
    prior_fields = ("colour_prior_per_frame", "colour_prior_pooled_share", "colour_prior_thing_chroma")
    other_prior = loaded.use_colour_prior and run.use_colour_prior and {
        **mixed, **{f: run_fields[f] for f in prior_fields}} == run_fields
    if mixed != run_fields and not other_prior:
        raise CheckpointError(f"init_from {source}: its generator config differs from this run's "
                              f"({loaded} vs {run})")
    for name in RUN_MAY_CHANGE:
        if getattr(loaded, name) != getattr(run, name):
            log(f"init_from {source}: generator.{name} was {getattr(loaded, name)!r}, this run uses "
                f"{getattr(run, name)!r}")


def _directory_generator_config(directory: Path, log: Callable[[str], Any]) -> GeneratorConfig | None:
    """The generator config a training checkpoint directory's run used, as embedded in its exported
    ``generator.safetensors`` (every directory has one; :func:`read_state` checks it is there); None (logged) when
    this version cannot read it: the weights must then fit by their shapes alone."""
    try:
        return GeneratorConfig.from_dict(read_checkpoint_document(directory / EXPORTED_GENERATOR)["config"])
    except (CheckpointError, OSError, KeyError, TypeError, ConfigError) as exc:
        log(f"init_from {directory}: its {EXPORTED_GENERATOR} cannot be read by this version ({exc}); the generator "
            f"config is not compared, only the weights' shapes")
        return None


def load_initial_weights(nets: Networks, path: str | None, log: Callable[[str], Any]) -> None:
    """Fine-tune: start the generator (and EMA) from an inference checkpoint, or every network from a training
    checkpoint directory. Nothing when ``path`` is empty. The generator config it was trained with must be this
    run's (:func:`check_generator_config`); its colour prior may be of another kind than the run's (fixed -> per
    frame): the run then fits its own."""
    if not path:
        return
    source = Path(path)
    if source.suffix == ".safetensors":
        loaded = build_generator(load_checkpoint(source, map_location="cpu"))
        check_generator_config(loaded.cfg, nets.gen.cfg, source, log)
        states = {"gen": loaded.state_dict(), "gen_ema": loaded.state_dict()}
    else:
        states = read_state(source)["models"]
        saved = _directory_generator_config(source, log)
        if saved is not None:
            check_generator_config(saved, nets.gen.cfg, source, log)
        for name, module in nets.named().items():
            if name not in ("gen", "gen_ema"):
                module.load_state_dict(states[name])
    refit = [_load_generator(gen, states[name], source) for name, gen in (("gen", nets.gen), ("gen_ema", nets.gen_ema))]
    if any(refit):
        log(f"init_from {source}: its colour prior is of another kind; this run fits its own")
    log(f"initialised from {source}")
