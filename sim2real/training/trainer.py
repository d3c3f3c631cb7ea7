"""The Trainer: alternating critic / generator / discriminator steps, EMA, AMP, DDP, checkpoints, logging.

The networks and the objective stay in :mod:`sim2real.translator`; this module only runs them (SPADE's
``pix2pix_trainer`` split). One step:

1. critics (box head + segmenter) on source ground truth (:func:`aux_losses`);
2. one generator forward in both directions (:func:`translate_batches`), generator losses, G update,
   memory / mean-style update;
3. discriminator losses on the detached fakes of the same forward, D update;
4. EMA of the generator weights, LR schedules.

Distributed (``torchrun``): every rank holds full replicas; gradients are averaged with one all-reduce per
optimizer step and buffers (memory, spectral-norm vectors, mean styles) are broadcast from rank 0 after the
step, which is what DDP does — done by hand because the objective calls several generator methods per
step, which DDP's forward-bound reducer does not support. Rank 0 alone logs and writes checkpoints.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sim2real.core.errors import CheckpointError, ConfigError
from sim2real.core.labels import overlay
from sim2real.training.config import TrainConfig, to_plain
from sim2real.training.state_io import find_resumable, prune_checkpoints, read_state, write_state
from sim2real.training.stream import BatchStream
from sim2real.translator.aux_nets import AuxNets
from sim2real.translator.boxes import instance_boxes
from sim2real.translator.checkpoint import build_generator, load_checkpoint, save_checkpoint
from sim2real.translator.discriminator import ContentDiscriminator, MultiScaleDiscriminator
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.objective import (
    SourceBatch,
    TargetBatch,
    aux_losses,
    discriminator_losses,
    generator_losses,
    translate_batches,
    update_generator_state,
)

__all__ = ["Trainer", "lr_factor", "select_device"]


def select_device(name: str) -> torch.device:
    """"auto" -> cuda if available else cpu; "cpu"; "cuda" / "cuda:N" (error if CUDA is absent)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here; use 'cpu' or 'auto'")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"invalid device {name!r}: {exc}; valid: auto, cpu, cuda, cuda:N") from exc


def lr_factor(schedule: str, step: int, steps: int, warmup: int, decay_start: float) -> float:
    """Multiplier of the base LR at ``step``: linear warm-up, then constant / linear / cosine decay to 0."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    start = decay_start * steps
    if schedule == "constant" or step < start:
        return 1.0
    t = min(1.0, (step - start) / max(1.0, steps - start))
    if schedule == "linear":
        return 1.0 - t
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    raise ConfigError(f"unknown LR schedule {schedule!r}; valid: constant, linear, cosine")


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


@dataclass
class Networks:
    """Everything with weights in a run."""

    gen: TranslatorGenerator
    gen_ema: TranslatorGenerator
    disc_target: MultiScaleDiscriminator
    disc_source: MultiScaleDiscriminator
    content_disc: ContentDiscriminator
    aux: AuxNets

    def named(self) -> dict[str, nn.Module]:
        return {"gen": self.gen, "gen_ema": self.gen_ema, "disc_target": self.disc_target,
                "disc_source": self.disc_source, "content_disc": self.content_disc, "aux": self.aux}


def _batch(sample: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in sample.items()}


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((rgb.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def preview_row(src: SourceBatch, fake: torch.Tensor, index: int = 0, max_boxes: int = 32) -> np.ndarray:
    """One picture row: source | translated | semantic overlay on translated | boxes on translated."""
    import cv2

    source = _to_uint8(src.rgb[index])
    translated = _to_uint8(fake[index])
    semantic = src.semantic[index].cpu().numpy().astype(np.uint8)
    boxes = instance_boxes(src.instance[index: index + 1], max_boxes)
    drawn = translated.copy()
    for box, ok in zip(boxes.boxes[0].tolist(), boxes.valid[0].tolist(), strict=True):
        if ok:
            x0, y0, x1, y1 = (round(v) for v in box)
            cv2.rectangle(drawn, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 0), 1)
    return np.concatenate([source, translated, overlay(translated, semantic, 0.45), drawn], axis=1)


class Trainer:
    """Runs one training configuration; resumable, DDP-aware (see module docstring).

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
        self.cfg = cfg
        self.progress = progress
        self.rank, self.world = _distributed()
        self.is_main = self.rank == 0
        self.log = log or (lambda msg: tqdm.write(msg) if self.is_main else None)
        self.device = select_device(cfg.device)
        self.amp = cfg.amp and self.device.type == "cuda"
        self.out_dir = Path(cfg.out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self._seed_everything(cfg.seed)
        self.nets = self._build_networks()
        self._freeze(cfg.freeze)
        self._init_from(cfg.init_from)
        self._broadcast_parameters()
        opt = cfg.optim
        adam = dict(betas=opt.betas, weight_decay=opt.weight_decay)
        self.opt_g = torch.optim.Adam(self._trainable(self.nets.gen), lr=opt.lr_generator, **adam)
        discs = [self.nets.disc_target, self.nets.disc_source, self.nets.content_disc]
        self.opt_d = torch.optim.Adam([p for d in discs for p in self._trainable(d)], lr=opt.lr_discriminator, **adam)
        self.opt_aux = torch.optim.Adam(self._trainable(self.nets.aux), lr=opt.lr_aux, **adam)
        self.optimizers = {"g": self.opt_g, "d": self.opt_d, "aux": self.opt_aux}
        factor = lambda step: lr_factor(opt.schedule, step, cfg.steps, opt.warmup_steps, opt.decay_start)  # noqa: E731
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, factor) for k, o in self.optimizers.items()}
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step = 0
        self.best: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        consumed = {"source": 0, "target": 0}
        if resume:
            path = find_resumable(self.ckpt_dir)
            if path is not None:
                consumed = self._load_state(path)
                self._truncate_metrics(self.step)
                self.log(f"resumed from {path} at step {self.step}")
        data_seed = cfg.seed + 1
        self.source = BatchStream(source, cfg.batch_size, data_seed, cfg.num_workers, consumed["source"])
        self.target = BatchStream(target, cfg.batch_size, data_seed + 1, cfg.num_workers, consumed["target"])
        self.val_source = val_source
        self._tb = None

    # --- construction ---------------------------------------------------------------------------------------
    def _seed_everything(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _build_networks(self) -> Networks:
        gen_cfg = self.cfg.generator_config()
        gen = TranslatorGenerator(gen_cfg)
        nets = Networks(
            gen=gen, gen_ema=copy.deepcopy(gen),
            disc_target=MultiScaleDiscriminator(self.cfg.discriminator),
            disc_source=MultiScaleDiscriminator(self.cfg.discriminator),
            content_disc=ContentDiscriminator(gen_cfg.content_channels),
            aux=AuxNets(self.cfg.aux),
        )
        for module in nets.named().values():
            module.to(self.device)
        nets.gen_ema.eval().requires_grad_(False)
        return nets

    @staticmethod
    def _trainable(module: nn.Module) -> list[nn.Parameter]:
        return [p for p in module.parameters() if p.requires_grad]

    def _freeze(self, prefixes: Iterable[str]) -> None:
        """Freeze generator parameters whose names start with any of ``prefixes`` (fine-tuning)."""
        prefixes = tuple(prefixes)
        if not prefixes:
            return
        names = [n for n, _ in self.nets.gen.named_parameters()]
        for prefix in prefixes:
            if not any(n.startswith(prefix) for n in names):
                tops = sorted({n.split(".")[0] for n in names})
                raise ConfigError(f"freeze prefix {prefix!r} matches no generator parameter; top-level: {tops}")
        for name, param in self.nets.gen.named_parameters():
            if name.startswith(prefixes):
                param.requires_grad_(False)

    def _init_from(self, path: str | None) -> None:
        """Fine-tune: start the generator (and EMA) from an inference checkpoint or a training checkpoint."""
        if not path:
            return
        source = Path(path)
        if source.suffix == ".safetensors":
            loaded = build_generator(load_checkpoint(source, map_location="cpu"))
            if loaded.cfg != self.nets.gen.cfg:
                raise CheckpointError(f"init_from {source}: its generator config differs from this run's "
                                      f"({loaded.cfg} vs {self.nets.gen.cfg})")
            state = loaded.state_dict()
            self.nets.gen.load_state_dict(state)
            self.nets.gen_ema.load_state_dict(state)
        else:
            models = read_state(source)["models"]
            for name, module in self.nets.named().items():
                module.load_state_dict(models[name])
        self.log(f"initialised from {source}")

    # --- distributed helpers --------------------------------------------------------------------------------
    def _broadcast_parameters(self) -> None:
        if self.world == 1:
            return
        for module in self.nets.named().values():
            for tensor in [*module.parameters(), *module.buffers()]:
                torch.distributed.broadcast(tensor.data, 0)

    def _average_gradients(self, params: list[nn.Parameter]) -> None:
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()

    def _broadcast_buffers(self) -> None:
        if self.world == 1:
            return
        for module in self.nets.named().values():
            for buf in module.buffers():
                torch.distributed.broadcast(buf.data, 0)

    def weights_digest(self) -> str:
        """SHA-256 of every generator and discriminator parameter and buffer (replica comparison)."""
        h = hashlib.sha256()
        for name, module in self.nets.named().items():
            for key, tensor in module.state_dict().items():
                h.update(f"{name}.{key}".encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def check_replicas(self) -> str:
        """All ranks compare weight digests; RuntimeError if any replica diverged. Returns the digest."""
        digest = self.weights_digest()
        if self.world == 1:
            return digest
        gathered: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(gathered, digest)
        if len(set(gathered)) != 1:
            raise RuntimeError(f"DDP replicas diverged: weight digests per rank {gathered}")
        self.log(f"replicas identical on {self.world} ranks: weights sha256 {digest[:16]}")
        return digest

    # --- one step -------------------------------------------------------------------------------------------
    def _optimize(self, loss: torch.Tensor, name: str) -> None:
        opt = self.optimizers[name]
        params = [p for g in opt.param_groups for p in g["params"]]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self._average_gradients(params)
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        self.scaler.step(opt)

    def train_step(self, src: SourceBatch, tgt: TargetBatch) -> dict[str, float]:
        """One critic + generator + discriminator step; returns the named losses as floats."""
        n, w = self.nets, self.cfg.losses
        for module in (n.gen, n.disc_target, n.disc_source, n.content_disc, n.aux):
            module.train()
        with torch.autocast(self.device.type, enabled=self.amp):
            a = aux_losses(n.aux, src, small_class_weight=w.small_class_weight)
        self._optimize(a["total"], "aux")
        with torch.autocast(self.device.type, enabled=self.amp):
            out = translate_batches(n.gen, n.aux, src, tgt)
            g = generator_losses(n.gen, n.disc_target, n.disc_source, n.aux, src, tgt, w,
                                 content_disc=n.content_disc, outputs=out)
        self._optimize(g["total"], "g")
        update_generator_state(n.gen, out)
        with torch.autocast(self.device.type, enabled=self.amp):
            d = discriminator_losses(n.gen, n.disc_target, n.disc_source, n.aux, src, tgt, w,
                                     content_disc=n.content_disc, outputs=out)
        self._optimize(d["total"], "d")
        self.scaler.update()
        self._broadcast_buffers()
        self._update_ema()
        for sched in self.schedulers.values():
            sched.step()
        self.step += 1
        self._last_preview = (src, out.fake_target.detach())
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
        """The next source and target batches, on the training device."""
        s = _batch(next(self.source), self.device)
        t = _batch(next(self.target), self.device)
        return SourceBatch(s["rgb"], s["semantic"], s["instance"]), TargetBatch(t["rgb"])

    # --- validation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Label preservation of the EMA generator on held-out source frames (lower is better).

        ``val/semantic``: the critics' semantic consistency CE on translated frames; ``val/bbox``: box
        consistency (L1 + GIoU + class); ``val/flip_rate``: share of labelled pixels whose segmenter class
        on the translated frame differs from the ground truth.
        """
        if self.val_source is None:
            return {}
        n = self.nets
        n.aux.eval()
        totals: dict[str, float] = {}
        count = 0
        for i in range(min(self.cfg.val_frames, len(self.val_source))):
            s = _batch(self.val_source[i], self.device)
            src = SourceBatch(s["rgb"][None], s["semantic"][None], s["instance"][None])
            tgt = TargetBatch(s["rgb"][None])
            out = translate_batches(n.gen_ema, n.aux, src, tgt)
            g = generator_losses(n.gen_ema, n.disc_target, n.disc_source, n.aux, src, tgt, self.cfg.losses,
                                 content_disc=n.content_disc, outputs=out)
            pred = n.aux.segmenter(out.fake_target).argmax(1)
            labelled = src.semantic != 255
            flips = ((pred != src.semantic) & labelled).sum() / labelled.sum().clamp(min=1)
            for key, value in (("semantic", g.get("semantic")), ("bbox", g.get("bbox")), ("flip_rate", flips)):
                if value is not None:
                    totals[f"val/{key}"] = totals.get(f"val/{key}", 0.0) + float(value)
            count += 1
        return {k: v / max(count, 1) for k, v in totals.items()}

    # --- checkpoints ----------------------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        state = {"torch": torch.get_rng_state(), "python": random.getstate(),
                 "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
        kind, keys, *rest = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def state(self) -> dict[str, Any]:
        """Everything needed for an exact resume."""
        return {
            "step": self.step,
            "models": {k: m.state_dict() for k, m in self.nets.named().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": self._rng_state(),
            "data": {"source": self.source.consumed, "target": self.target.consumed},
            "best": dict(self.best),
            "config": json.dumps(to_plain(self.cfg)),
        }

    def _load_state(self, path: Path) -> dict[str, int]:
        state = read_state(path, map_location=self.device)
        for name, module in self.nets.named().items():
            module.load_state_dict(state["models"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        self.scaler.load_state_dict(state["scaler"])
        self._set_rng_state({k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in state["rng"].items()})
        self.step = int(state["step"])
        self.best = dict(state["best"])
        return {k: int(v) for k, v in state["data"].items()}

    def export(self, path: str | Path) -> Path:
        """Write the EMA generator as an inference checkpoint (safetensors + embedded JSON)."""
        return save_checkpoint(path, self.nets.gen_ema, self.nets.gen_ema.cfg, ema=True,
                               training_data={"steps": self.step, "config": to_plain(self.cfg)})

    def save_checkpoint(self, val: dict[str, float] | None = None) -> Path | None:
        """Write the training state (rank 0); keep the last K and the best (lowest val/flip_rate + bbox)."""
        if not self.is_main:
            return None
        name = f"step_{self.step:08d}"
        path = write_state(self.ckpt_dir, name, self.state(),
                           extra_files={"generator.safetensors": self.export})
        if val:
            score = val.get("val/flip_rate", 0.0) + val.get("val/bbox", 0.0)
            if not self.best or score < self.best["score"]:
                self.best = {"score": score, "step": float(self.step)}
                (self.ckpt_dir / "best.json").write_text(json.dumps({"checkpoint": name, "score": score}))
        keep = set()
        if self.best:
            keep.add(f"step_{int(self.best['step']):08d}")
        prune_checkpoints(self.ckpt_dir, self.cfg.keep_last, keep)
        return path

    def _truncate_metrics(self, step: int) -> None:
        """Drop metrics rows logged after ``step`` by an interrupted run: those steps are about to be redone."""
        path = self.out_dir / "metrics.jsonl"
        if not self.is_main or not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short when the interrupted run was killed
                continue
            if row["step"] <= step:
                kept.append(line)
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        tmp.replace(path)

    # --- logging --------------------------------------------------------------------------------------------
    def _tensorboard(self) -> Any:
        if self._tb is None and self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
        return self._tb

    def _log_scalars(self, losses: dict[str, float], rate: float) -> None:
        record = {"step": self.step, **losses, "lr/g": self.schedulers["g"].get_last_lr()[0], "steps_per_s": rate}
        self.history.append(record)
        if not self.is_main:
            return
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        tb = self._tensorboard()
        for k, v in record.items():
            if k != "step":
                tb.add_scalar(k, v, self.step)

    def _log_images(self) -> None:
        if not self.is_main or not hasattr(self, "_last_preview"):
            return
        src, fake = self._last_preview
        grid = preview_row(src, fake)
        self._tensorboard().add_image("preview/source|translated|semantic|boxes", grid, self.step, dataformats="HWC")

    # --- the loop -------------------------------------------------------------------------------------------
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
        tick = time.monotonic()
        try:
            while self.step < total and not (should_stop and should_stop()):
                src, tgt = self.next_batches()
                losses = self.train_step(src, tgt)
                bar.update(1)
                bar.set_postfix({k.split("/")[1]: f"{losses[k]:.3f}" for k in ("g/total", "d/total", "aux/total")})
                if not all(math.isfinite(v) for v in losses.values()):
                    bad = sorted(k for k, v in losses.items() if not math.isfinite(v))
                    raise FloatingPointError(f"non-finite losses at step {self.step}: {bad}")
                if self.step % self.cfg.log_every == 0:
                    now = time.monotonic()
                    self._log_scalars(losses, self.cfg.log_every / max(now - tick, 1e-9))
                    tick = now
                if self.step % self.cfg.image_every == 0:
                    self._log_images()
                val = self.validate() if self.step % self.cfg.val_every == 0 else {}
                if val and self.is_main:
                    self._log_scalars(val, 0.0)
                if self.step % self.cfg.checkpoint_every == 0:
                    self.save_checkpoint(val)
                if on_step is not None:
                    on_step(self, losses)
        finally:
            bar.close()
            if self._tb is not None:
                self._tb.flush()
        return losses
