"""The Trainer: runs one training configuration, step by step, resumably, on one or several ranks.

The networks and the objective stay in :mod:`sim2real.translator`; this class only runs them (SPADE's
``pix2pix_trainer`` split), with its parts in their own modules: the networks (``networks``), the optimisers
and schedules (``optimization``), mixed precision and determinism (``numerics``), data-parallel replicas
(``replicas``), checkpoints and RNG states (``checkpointing``, ``state_io``), metrics and previews
(``run_log``), validation (``validation``) and the batch streams (``stream``). One step:

1. critics (box head + segmenter) on source ground truth (:func:`aux_losses`);
2. one generator forward in both directions (:func:`translate_batches`), generator losses, G update,
   memory / mean-style update (float32, pooled over the ranks);
3. discriminator losses on the detached fakes of the same forward, D update;
4. EMA of the generator weights, LR schedules.

Rank 0 alone logs and writes checkpoints.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sim2real.training.batches import TrainingBatches
from sim2real.training.checkpointing import CheckpointDir, capture_rng_state, restore_rng_state
from sim2real.training.config import TrainConfig, to_plain
from sim2real.training.lineage import LINEAGE_KEY, init_record, training_record
from sim2real.training.networks import build_networks, freeze_generator, load_initial_weights
from sim2real.training.numerics import MixedPrecision, enable_determinism
from sim2real.training.optimization import Optimization, lr_factor
from sim2real.training.replicas import Replicas, weights_digest
from sim2real.training.run_log import RunLog, preview_row
from sim2real.training.state_io import read_state
from sim2real.training.stream import BadFrameTally
from sim2real.training.validation import load_validation_judge, validate
from sim2real.translator.checkpoint import save_checkpoint
from sim2real.translator.device import resolve_device
from sim2real.translator.objective import (
    SourceBatch,
    TargetBatch,
    aux_losses,
    discriminator_losses,
    generator_losses,
    translate_batches,
    translate_one_sided,
    update_generator_state,
)
from sim2real.translator.styles import update_dataset_styles

__all__ = ["Trainer", "lr_factor", "preview_row"]


class Trainer:
    """Runs one training configuration; resumable, DDP-aware (see the module docstring).

    Args:
        cfg: the run's :class:`TrainConfig`.
        source: labelled source dataset (dicts with rgb / semantic / instance).
        target: unlabelled target dataset (dicts with rgb).
        val_source: held-out source frames for validation (the first ``cfg.val_frames`` are used).
        resume: continue from the newest valid checkpoint in ``cfg.out_dir`` when there is one.
        progress: show a tqdm bar with rate and ETA on rank 0 (off for nodes, which publish progress).
    """

    def __init__(self, cfg: TrainConfig, source: Any, target: Any, val_source: Any | None = None, *,
                 resume: bool = True, log: Callable[[str], None] | None = None, progress: bool = True) -> None:
        self.cfg, self.progress, self.val_source = cfg, progress, val_source
        self.replicas = Replicas()
        self.rank, self.world, self.is_main = self.replicas.rank, self.replicas.world, self.replicas.is_main
        self.log = log or (lambda msg: tqdm.write(msg) if self.is_main else None)
        self.device = resolve_device(cfg.device)
        self.precision = MixedPrecision.for_run(cfg.amp, cfg.amp_dtype, self.device)
        if cfg.deterministic:
            enable_determinism()
        self.out_dir = Path(cfg.out_dir)
        self._seed_everything(cfg.seed)
        self.nets = build_networks(cfg, self.device)
        freeze_generator(self.nets.gen, cfg.freeze)
        self.checkpoints = CheckpointDir(self.out_dir / "checkpoints", cfg.keep_last, self.is_main)
        path = self.checkpoints.resumable() if resume else None
        self.init_record: dict[str, Any] | None = None  # what the starting weights were trained on
        if path is None:  # a resumed run reads its weights, prior and start from its own state instead
            load_initial_weights(self.nets, cfg.init_from, self.log)
            self.init_record = init_record(cfg.init_from)
            self._fit_colour_prior(source)
            if cfg.camera_calibration.enabled:
                from sim2real.training.camera_calibration import calibrate_generators

                calibrate_generators(cfg, source, (self.nets.gen, self.nets.gen_ema), self.log)
        self.replicas.broadcast_parameters(self.nets.named().values())
        self.optimization = Optimization(self.nets, cfg, self.precision, self.replicas)
        self.run_log = RunLog(self.out_dir, self.is_main)
        self.judge = load_validation_judge(cfg.validation_judge, self.device) if val_source is not None else None
        self.step = 0
        self._micro = 0  # micro-batches since the last optimiser step (cfg.accumulate)
        consumed, bad_seen = {"source": 0, "target": 0}, ()
        if path is not None:
            consumed, bad_seen = self._load_state(path)
            self.run_log.truncate(self.step)
            self.log(f"resumed from {path} at step {self.step}")
        self.data = TrainingBatches(cfg, source, target, self.device, rank=self.rank, consumed=consumed,
                                    bad_frames=BadFrameTally(cfg.max_bad_frames, bad_seen), log=self.log)
        self._last_preview: tuple[SourceBatch, torch.Tensor] | None = None
        self._tick = time.monotonic()

    def _fit_colour_prior(self, source: Any) -> None:
        """Fit the generator's class-wise colour prior (``generator.use_colour_prior``) unless it came fitted
        with ``init_from``; the EMA generator gets the same maps."""
        prior = self.nets.gen.colour_prior
        if prior is None or bool(prior.fitted.item()):
            return
        from sim2real.training.colour_prior_fit import fit_colour_prior, install_colour_prior

        started = time.monotonic()
        stats = fit_colour_prior(self.cfg.colour_prior, source)
        for gen in (self.nets.gen, self.nets.gen_ema):
            install_colour_prior(gen.colour_prior, stats)
        kind = "per-frame" if prior.per_frame else "fixed"
        self.log(f"{kind} colour prior fitted in {time.monotonic() - started:.1f} s: {stats.real.frames} labelled "
                 f"real frames, {self.cfg.colour_prior.source_frames} source frames")

    # --- what the run has logged -------------------------------------------------------------------------
    @property
    def history(self) -> list[dict[str, float]]:
        """Every metrics row this rank logged (losses and validations)."""
        return self.run_log.history

    @property
    def best(self) -> dict[str, float]:
        """``{"score", "step"}`` of the best checkpoint so far (empty before the first validated one)."""
        return self.checkpoints.best

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    # --- one step ----------------------------------------------------------------------------------------
    def train_step(self, src: SourceBatch, tgt: TargetBatch) -> dict[str, float]:
        """One micro-batch of a critic + generator + discriminator step; returns the named losses as floats.

        With ``cfg.accumulate`` = k the gradients of k calls are summed (each loss / k) and the optimisers step
        on the k-th, which is when ``step`` advances and the EMA and schedules move.
        """
        n, w, opt = self.nets, self.cfg.losses, self.optimization
        k = self.cfg.accumulate
        self._micro = (self._micro + 1) % k
        last = self._micro == 0
        for module in (n.gen, n.disc_target, n.disc_source, n.content_disc, n.aux):
            module.train()
        with self.precision.autocast():
            a = aux_losses(n.aux, src, small_class_weight=w.small_class_weight)
        opt.optimize(a["total"], "aux", accumulate=k, step=last)
        translate = translate_one_sided if self.cfg.objective == "cut" else translate_batches
        with self.precision.autocast():
            out = translate(n.gen, n.aux, src, tgt)
            g = generator_losses(n.gen, n.disc_target, n.disc_source, n.aux, src, tgt, w,
                                 content_disc=n.content_disc, outputs=out, projector=n.projector)
        opt.optimize(g["total"], "g", accumulate=k, step=last)
        update_generator_state(n.gen, out, reduce=self.replicas.reduce_sum())
        if tgt.dataset is not None:
            update_dataset_styles(n.gen, out.style_target, tgt.dataset, reduce=self.replicas.reduce_sum())
        with self.precision.autocast():
            d = discriminator_losses(n.gen, n.disc_target, n.disc_source, n.aux, src, tgt, w,
                                     content_disc=n.content_disc, outputs=out)
        opt.optimize(d["total"], "d", accumulate=k, step=last)
        self._last_preview = (src, out.fake_target.detach())
        if last:
            opt.end_step()
            self.replicas.broadcast_buffers(n.without_generator_state())
            self._update_ema()
            self.step += 1
        losses = {f"g/{k}": v for k, v in g.items()} | {f"d/{k}": v for k, v in d.items()}
        losses |= {f"aux/{k}": v for k, v in a.items()}
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))  # warm-up: follow early weights
        for ema, live in zip(self.nets.gen_ema.parameters(), self.nets.gen.parameters(), strict=True):
            ema.lerp_(live.detach(), 1.0 - decay)
        for ema, live in zip(self.nets.gen_ema.buffers(), self.nets.gen.buffers(), strict=True):
            ema.copy_(live)

    def next_batches(self) -> tuple[SourceBatch, TargetBatch]:
        """The next source and target batches, on the training device (:class:`TrainingBatches`)."""
        return self.data.next()

    def validate(self) -> dict[str, float]:
        """The EMA generator on held-out source frames: label preservation through the critics (diagnostics)
        and the validation judge's mIoU, which alone selects the best checkpoint (``validation.validate``)."""
        if self.val_source is None:
            return {}
        return validate(self.nets, self.val_source, self.cfg.val_frames, self.cfg.losses, self.device,
                        judge=self.judge)

    # --- replicas ----------------------------------------------------------------------------------------
    def weights_digest(self) -> str:
        """SHA-256 of every generator and discriminator parameter and buffer (replica comparison)."""
        return weights_digest(self.nets.named())

    def check_replicas(self) -> str:
        """All ranks compare weight digests; RuntimeError if any replica diverged. Returns the digest."""
        return self.replicas.check(self.weights_digest(), self.log)

    # --- checkpoints -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed for an exact resume."""
        return {
            "step": self.step,
            "models": {k: m.state_dict() for k, m in self.nets.named().items()},
            **self.optimization.state_dict(),
            "rng": capture_rng_state(),
            "data": self.data.consumed,
            "bad_frames": list(self.data.bad_frames.seen),
            "best": dict(self.checkpoints.best),
            "config": json.dumps(to_plain(self.cfg)),
            LINEAGE_KEY: json.dumps(self.init_record),
        }

    def _load_state(self, path: Path) -> tuple[dict[str, int], tuple[str, ...]]:
        """Restore networks, optimisers, RNGs, step and best from ``path``; -> (samples consumed, bad frames seen)."""
        state = read_state(path, map_location=self.device)
        for name, module in self.nets.named().items():
            module.load_state_dict(state["models"][name])
        self.optimization.load_state_dict(state)
        restore_rng_state(state["rng"])
        self.step = int(state["step"])
        self.checkpoints.best = dict(state["best"])
        if LINEAGE_KEY in state:  # the start this run was made from, not what its init_from path holds now
            self.init_record = json.loads(state[LINEAGE_KEY])
        else:  # a state written before 2026-12-05: the init_from path is all there is
            self.init_record = init_record(self.cfg.init_from)
        return {k: int(v) for k, v in state["data"].items()}, tuple(state.get("bad_frames", ()))

    def export(self, path: str | Path) -> Path:
        """Write the EMA generator as an inference checkpoint (safetensors + embedded JSON)."""
        return save_checkpoint(path, self.nets.gen_ema, self.nets.gen_ema.cfg, ema=True,
                               training_data=training_record(self.cfg, self.step, self.init_record))

    def save_checkpoint(self, val: dict[str, float] | None = None) -> Path | None:
        """Write the training state (rank 0); keep the last K and the best (highest val/judge_miou)."""
        return self.checkpoints.save(self.step, self.state, self.export, val)

    # --- the loop ----------------------------------------------------------------------------------------
    def fit(self, steps: int | None = None, should_stop: Callable[[], bool] | None = None,
            on_step: Callable[[Trainer, dict[str, float]], None] | None = None) -> dict[str, float]:
        """Train until ``steps`` (default cfg.steps) or ``should_stop()``; returns the last losses."""
        total = steps if steps is not None else self.cfg.steps
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(to_plain(self.cfg), indent=2))
        bar = tqdm(total=total, initial=self.step, disable=not (self.is_main and self.progress), dynamic_ncols=True,
                   desc="train")
        losses: dict[str, float] = {}
        self._tick = time.monotonic()
        try:
            while self.step < total and not (should_stop and should_stop()):
                before = self.step
                losses = self.train_step(*self.next_batches())
                if self.step == before:  # a micro-batch of an accumulated step
                    continue
                bar.update(1)
                bar.set_postfix({k.split("/")[0]: f"{losses[k]:.3f}" for k in ("g/total", "d/total", "aux/total")})
                self._after_step(losses)
                if on_step is not None:
                    on_step(self, losses)
        finally:
            bar.close()
            self.run_log.flush()
        return losses

    def _after_step(self, losses: dict[str, float]) -> None:
        """The periodic work after a step: finiteness check, metrics, previews, validation, checkpoint."""
        if not all(math.isfinite(v) for v in losses.values()):
            bad = sorted(k for k, v in losses.items() if not math.isfinite(v))
            raise FloatingPointError(f"non-finite losses at step {self.step}: {bad}")
        cfg = self.cfg
        if self.step % cfg.log_every == 0:
            now = time.monotonic()
            rate = cfg.log_every / max(now - self._tick, 1e-9)
            self.run_log.scalars(self.step, {**losses, **self.data.layout_stats(), "lr/g": self.optimization.lr("g"),
                                             "steps_per_s": rate})
            self._tick = now
        if self.step % cfg.image_every == 0 and self._last_preview is not None:
            self.run_log.preview(self.step, *self._last_preview)
        val = self.validate() if self.step % cfg.val_every == 0 else {}
        if val and self.is_main:
            self.run_log.scalars(self.step, {**val, "lr/g": self.optimization.lr("g"), "steps_per_s": 0.0})
        if self.step % cfg.checkpoint_every == 0:
            self.save_checkpoint(val)
