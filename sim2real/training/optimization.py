"""Optimisers of a run: Adam for the critics, the generator and the discriminators, LR schedules, loss scaling."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from sim2real.core.errors import ConfigError
from sim2real.training.config import TrainConfig
from sim2real.training.networks import Networks, trainable
from sim2real.training.numerics import MixedPrecision
from sim2real.training.replicas import Replicas

__all__ = ["Optimization", "lr_factor", "warmup_ramp"]


def lr_factor(schedule: str, step: int, steps: int, warmup: int, decay_start: float) -> float:
    """Multiplier of the base LR at ``step``: linear warm-up, then constant / linear / cosine decay to 0."""
    if warmup and step < warmup:
        return warmup_ramp(step, warmup)
    start = decay_start * steps
    if schedule == "constant" or step < start:
        return 1.0
    t = min(1.0, (step - start) / max(1.0, steps - start))
    if schedule == "linear":
        return 1.0 - t
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    raise ConfigError(f"unknown LR schedule {schedule!r}; valid: constant, linear, cosine")


def warmup_ramp(step: int, warmup: int) -> float:
    """A linear warm-up's LR multiplier at ``step``: (step + 1) / warmup over the first ``warmup`` steps, then 1
    (``warmup`` 0: always 1). ``optim.warmup_steps``' ramp in :func:`lr_factor`, and the generator's own."""
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def _generator_groups(nets: Networks, lr: float, lr_camera: float) -> list[dict[str, Any]]:
    """The generator optimiser's parameter groups: the network (+ PatchNCE projector) at ``lr``, the camera
    model's few physical parameters at ``lr_camera`` (each group keeps its own rate under the schedule)."""
    camera = [p for n, p in nets.gen.named_parameters() if p.requires_grad and n.startswith("camera.")]
    ids = {id(p) for p in camera}
    rest = [p for p in trainable(nets.gen) if id(p) not in ids]
    rest += trainable(nets.projector) if nets.projector is not None else []
    return [{"params": rest, "lr": lr}] + ([{"params": camera, "lr": lr_camera}] if camera else [])


class Optimization:
    """Three optimisers by name (``"aux"``, ``"g"``, ``"d"``), their LR schedules and one GradScaler.

    :meth:`optimize` is one update of one of them; :meth:`end_step` closes a training step (scaler update,
    schedules). Gradients are averaged over the replicas before clipping.
    """

    def __init__(self, nets: Networks, cfg: TrainConfig, precision: MixedPrecision, replicas: Replicas) -> None:
        opt = cfg.optim
        adam = dict(betas=opt.betas, weight_decay=opt.weight_decay)
        discs = [nets.disc_target, nets.disc_source, nets.content_disc]
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "g": torch.optim.Adam(_generator_groups(nets, opt.lr_generator, opt.lr_camera), **adam),
            "d": torch.optim.Adam([p for d in discs for p in trainable(d)], lr=opt.lr_discriminator, **adam),
            "aux": torch.optim.Adam(trainable(nets.aux), lr=opt.lr_aux, **adam),
        }

        def factor(step: int) -> float:
            return lr_factor(opt.schedule, step, cfg.steps, opt.warmup_steps, opt.decay_start)

        def generator_factor(step: int) -> float:
            return factor(step) * warmup_ramp(step, opt.generator_warmup_steps)

        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, generator_factor if k == "g" else factor)
                           for k, o in self.optimizers.items()}
        self.scaler = precision.grad_scaler()
        self.grad_clip = opt.grad_clip
        self.replicas = replicas

    def optimize(self, loss: torch.Tensor, name: str, *, accumulate: int = 1, step: bool = True) -> None:
        """Backward of ``loss / accumulate`` (scaled) into the gradients of ``name``; with ``step``, then the
        gradients (summed over the micro-batches since the last step) averaged over the ranks, clipped, one step,
        and zeroed for the next."""
        opt = self.optimizers[name]
        self.scaler.scale(loss / accumulate).backward()
        if step:
            self._step(opt)

    def _step(self, opt: torch.optim.Optimizer) -> None:
        params: list[nn.Parameter] = [p for g in opt.param_groups for p in g["params"]]
        self.replicas.average_gradients(params)
        if self.grad_clip > 0:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(opt)
        opt.zero_grad(set_to_none=True)

    def end_step(self) -> None:
        """After all three updates of a step: adapt the loss scale, advance the LR schedules."""
        self.scaler.update()
        for sched in self.schedulers.values():
            sched.step()

    def lr(self, name: str) -> float:
        """The current learning rate of optimiser ``name``."""
        return self.schedulers[name].get_last_lr()[0]

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        self.scaler.load_state_dict(state["scaler"])
