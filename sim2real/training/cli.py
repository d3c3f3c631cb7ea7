"""``sim2real-train CONFIG.yaml [key.sub=value ...]``: train (or fine-tune) the translator.

Single process: ``sim2real-train config/train_lite.yaml steps=2000``. Several processes / GPUs:
``torchrun --nproc_per_node=N -m sim2real.training.cli config/train_lite.yaml`` (nccl on GPU, gloo on CPU).
At the end rank 0 exports the EMA generator to ``<out_dir>/model.safetensors``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sim2real.core.errors import Sim2RealError
from sim2real.data.datasets import (
    SKIPPED_KEY,
    BagSourceDataset,
    BagTargetDataset,
    CityscapesSourceDataset,
    ImageFolderDataset,
    ProceduralSourceDataset,
    SourceTopics,
    adapter_label_decoder,
    canonical_labels,
)
from sim2real.data.transforms import PairedTransform
from sim2real.training.bag_health import with_checked_bags
from sim2real.training.config import SourceDataConfig, TargetDataConfig, TrainConfig, load_train_config
from sim2real.training.lineage import VALIDATION_WORLD_OFFSET

__all__ = ["build_datasets", "main"]


def _transform(cfg: TrainConfig, train: bool) -> PairedTransform:
    if train:
        return PairedTransform(crop=cfg.crop, resize_short=cfg.resize_short, scale_range=(0.8, 1.25), hflip=0.5)
    return PairedTransform(crop=cfg.crop, resize_short=cfg.resize_short, hflip=0.0)


def _source(src: SourceDataConfig, paths: Sequence[str], transform: PairedTransform, seed: int) -> Any:
    if src.kind == "procedural":
        return ProceduralSourceDataset(src.frames, src.sim_width, src.sim_height, src.sim_seed, transform=transform,
                                       augment_seed=seed, extra_seeds=src.extra_sim_seeds)
    if src.kind == "bag":
        topics = SourceTopics(src.image_topic, src.semantic_topic, src.instance_topic)
        decoder = adapter_label_decoder(src.adapter) if src.adapter else canonical_labels
        return BagSourceDataset(list(paths), topics, tolerance_s=src.tolerance_s, transform=transform,
                                label_decoder=decoder, seed=seed, skip_bad_frames=True)
    return CityscapesSourceDataset(paths[0], transform=transform, seed=seed)


def _target(tgt: TargetDataConfig, transform: PairedTransform, seed: int) -> Any:
    if tgt.kind == "folder":
        return ImageFolderDataset(list(tgt.paths), transform=transform, seed=seed)
    return BagTargetDataset(list(tgt.paths), list(tgt.topics), transform=transform, seed=seed, skip_bad_frames=True)


def build_datasets(cfg: TrainConfig) -> tuple[Any, Any, Any]:
    """(source, target, validation source) for a config; validation frames are held out where possible."""
    src = cfg.source
    source = _source(src, src.paths, _transform(cfg, True), cfg.seed)
    target = _target(cfg.target, _transform(cfg, True), cfg.seed)
    if src.kind == "procedural":
        val = ProceduralSourceDataset(cfg.val_frames, src.sim_width, src.sim_height,
                                      src.sim_seed + VALIDATION_WORLD_OFFSET,
                                      transform=_transform(cfg, False))
    elif src.val_paths:
        val = _source(src, src.val_paths, _transform(cfg, False), cfg.seed)
    else:
        val = None
    if val is not None and not hasattr(val, "__getitem__"):  # streaming bag: take the first frames
        frames = []
        for sample in val:
            for problem in filter(None, sample.pop(SKIPPED_KEY, "").split("\n")):
                print(f"sim2real-train: validation: skipped bad frame in {problem}", file=sys.stderr)
            frames.append(sample)
            if len(frames) == cfg.val_frames:
                break
        val = frames
    return source, target, val


def _init_distributed() -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="sim2real-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="YAML config (see config/train_*.yaml); omit for defaults")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. steps=100 losses.bbox=2")
    parser.add_argument("--no-resume", action="store_true", help="start fresh even if out_dir has checkpoints")
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="leave out unreadable / corrupt bags (each reported) instead of stopping")
    parser.add_argument("--export", help="where to write the final EMA generator (default <out_dir>/model.safetensors)")
    args = parser.parse_args(argv)
    config = args.config
    overrides = list(args.overrides)
    if config is not None and "=" in config:  # only overrides given
        overrides.insert(0, config)
        config = None
    distributed = _init_distributed()
    try:
        from sim2real.training.trainer import Trainer

        cfg = with_checked_bags(load_train_config(config, overrides), skip_bad=args.skip_bad_files, log=print)
        if distributed and cfg.device == "auto" and torch.cuda.is_available():
            cfg = dataclasses.replace(cfg, device=f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
        source, target, val = build_datasets(cfg)
        trainer = Trainer(cfg, source, target, val, resume=not args.no_resume)
        trainer.fit()
        if trainer.world > 1:
            trainer.check_replicas()
        if trainer.is_main:
            trainer.save_checkpoint(trainer.validate())
            out = trainer.export(Path(args.export) if args.export else Path(cfg.out_dir) / "model.safetensors")
            trainer.log(f"exported {out}")
        if distributed:  # the other ranks wait for rank 0's export: the group is torn down by all ranks at once
            torch.distributed.barrier()
    except Sim2RealError as exc:
        print(f"sim2real-train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
