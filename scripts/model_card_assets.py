"""Build the model card's pictures and tables from a training run and the exported model.

    python scripts/model_card_assets.py RUN_DIR MODEL.safetensors OUT_DIR

Writes OUT_DIR/before_after_<k>.png (procedural frames of a held-out seed: sim | translated | label overlay),
OUT_DIR/loss_curves.png (generator / discriminator / critic totals, drawn with OpenCV), and prints a Markdown
table of the losses every ~10 % of the run for the card.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from sim2real.core.labels import overlay
from sim2real.translator.inference import Translator
from sim_bridge.procedural import ProceduralSimulator, SimConfig

CURVES = {"g/total": (40, 40, 220), "d/total": (40, 160, 40), "aux/total": (200, 120, 30)}


def _write_png(path: Path, bgr: np.ndarray) -> None:
    """cv2.imwrite, which only returns False on failure (e.g. a missing directory): raise instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"could not write {path}")


def before_after(model: Path, out: Path, frames: tuple[int, ...] = (30, 300, 900)) -> list[Path]:
    translator = Translator.from_checkpoint(model, device="cpu")
    paths = []
    for k, (index, hour) in enumerate(zip(frames, (12.0, 16.0, 18.5), strict=True)):
        frame = ProceduralSimulator(SimConfig(seed=4242, time_of_day=hour)).frame(index)
        fake = translator.translate(frame.rgb, frame.semantic, frame.instance)
        row = np.concatenate([frame.rgb, fake, overlay(fake, frame.semantic, 0.45)], axis=1)
        path = out / f"before_after_{k}.png"
        _write_png(path, cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def loss_curves(rows: list[dict], out: Path, size: tuple[int, int] = (900, 360)) -> Path:
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    steps = np.array([r["step"] for r in rows], float)
    for key, color in CURVES.items():
        ys = np.array([r.get(key, np.nan) for r in rows], float)
        ok = np.isfinite(ys)
        if ok.sum() < 2:
            continue
        # smooth with a running mean over ~2 % of the points, normalise each curve to its own range
        k = max(1, ok.sum() // 50)
        smooth = np.convolve(ys[ok], np.ones(k) / k, mode="valid")
        xs = steps[ok][k - 1:]
        lo, hi = float(smooth.min()), float(smooth.max())
        px = 40 + (xs - steps.min()) / max(1.0, steps.max() - steps.min()) * (w - 60)
        py = h - 30 - (smooth - lo) / max(1e-9, hi - lo) * (h - 70)
        pts = np.stack([px, py], 1).round().astype(np.int32)
        cv2.polylines(img, [pts], False, color, 2, cv2.LINE_AA)
        label = f"{key}: {smooth[0]:.2f} -> {smooth[-1]:.2f}"
        cv2.putText(img, label, (50 + 290 * list(CURVES).index(key), 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1,
                    cv2.LINE_AA)
    cv2.putText(img, f"step {int(steps.min())} .. {int(steps.max())} (each curve scaled to its own range)",
                (40, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (80, 80, 80), 1, cv2.LINE_AA)
    path = out / "loss_curves.png"
    _write_png(path, img)
    return path


def loss_table(rows: list[dict]) -> str:
    keys = ["g/total", "g/adv", "g/self_recon", "g/cycle", "g/bbox", "g/semantic", "d/total", "aux/segmenter",
            "aux/box"]
    picks = [rows[i] for i in sorted({round(j) for j in np.linspace(0, len(rows) - 1, 11)})]
    head = "| step | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1) + "\n"
    return head + "\n".join(
        f"| {r['step']} | " + " | ".join(f"{r[k]:.3f}" if k in r else "-" for k in keys) + " |" for r in picks)


def main() -> int:
    run, model, out = (Path(a) for a in sys.argv[1:4])
    out.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "g/total" in r]
    val_rows = [r for r in rows if "val/flip_rate" in r]
    for p in before_after(model, out):
        print(f"wrote {p}")
    print(f"wrote {loss_curves(train_rows, out)}")
    print(loss_table(train_rows))
    if val_rows:
        print("\nvalidation:", json.dumps(val_rows[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
