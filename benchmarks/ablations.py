"""Ablations of the translator recipe, measured with the judges (a benchmark script, not a test).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/ablations.py [--config config/train_default.yaml]
        [--steps 600] [--only full,no_camera] [--out runs/ablations] [--eval-frames 24]

Trains the recipe once per variant with the same seed and step budget (each variant = the config plus a few
overrides, listed in VARIANTS), then scores every exported model with ``sim2real-eval`` on the same held-apart
procedural frames (the judge, never anything the models trained against), and prints one table: judge mIoU,
IoU of car / pedestrian / pole / sign/symbol, instance recall, judge KID and colour KID, with the baselines'
rows from the same evaluation. Writes ``<out>/ablations.json`` and ``<out>/ablations.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: variant -> sim2real-train overrides switching one component off (or, last, one on: layout-matched crops).
VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no_instance_branch": ["generator.use_instance_branch=false"],
    "no_memory": ["generator.use_memory=false", "losses.memory=0"],
    "no_box_term": ["losses.bbox=0", "losses.bbox_class=0"],
    "no_semantic_term": ["losses.semantic=0"],
    "no_detail_path": ["generator.detail_channels=0"],
    "no_camera_model": ["generator.use_camera=false", "discriminator.coordinates=false"],
    "layout_matching": ["layout_candidates=4"],
}
COLUMNS = ("judge_miou", "car", "pedestrian", "pole", "sign/symbol", "instance_recall", "kid_judge", "kid_colour")


def run(cmd: list[str], log: Path) -> None:
    print("[ablations] " + " ".join(cmd), flush=True)
    with log.open("w") as out:
        if subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
            raise SystemExit(f"[ablations] failed: see {log}")


def row(summary: dict) -> dict[str, float | None]:
    out = {k: summary.get(k) for k in ("judge_miou", "instance_recall", "kid_judge", "kid_colour")}
    out |= {c: summary["iou"].get(c) for c in ("car", "pedestrian", "pole", "sign/symbol")}
    return out


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.4g}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "config" / "train_default.yaml")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--only", help="comma-separated subset of the variants")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "ablations")
    p.add_argument("--eval-frames", type=int, default=24)
    p.add_argument("overrides", nargs="*", help="extra sim2real-train overrides for every variant")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for name in names:
        t0 = time.time()
        run_dir = args.out / name
        run([sys.executable, "-m", "sim2real.training.cli", str(args.config), f"out_dir={run_dir}",
             f"steps={args.steps}", *args.overrides, *VARIANTS[name], "--no-resume"], args.out / f"{name}_train.log")
        eval_dir = args.out / f"{name}_eval"
        run([sys.executable, "-m", "sim2real.evaluation.evaluate", "--model", str(run_dir / "model.safetensors"),
             "--source", f"procedural:{args.eval_frames}", "--out", str(eval_dir), "--device", "cpu"],
            args.out / f"{name}_eval.log")
        report = json.loads((eval_dir / "report.json").read_text())
        results[name] = {"model": row(report["summary"]["model"]), "minutes": (time.time() - t0) / 60}
        results.setdefault("_baselines", {b: row(report["summary"][b]) for b in report["summary"] if b != "model"})
        print(f"[ablations] {name}: " + ", ".join(f"{k} {fmt(v)}" for k, v in results[name]["model"].items()),
              flush=True)
    lines = ["| variant | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    lines += [f"| {n} | " + " | ".join(fmt(results[n]["model"][c]) for c in COLUMNS) + " |" for n in names]
    lines += [f"| baseline: {b} | " + " | ".join(fmt(v[c]) for c in COLUMNS) + " |"
              for b, v in results.get("_baselines", {}).items()]
    (args.out / "ablations.md").write_text("\n".join(lines) + "\n")
    (args.out / "ablations.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
