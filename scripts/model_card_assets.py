"""Build the model card's pictures and tables from a training run and the exported model.

    python scripts/model_card_assets.py RUN_DIR MODEL.safetensors OUT_DIR [--style NAME]

Writes into OUT_DIR:

* ``before_after_<k>.png``: held-apart procedural frames (world 2718, 12:00 / 16:00 / 18:30), rows of
  simulator | class-wise colour transfer | the model, then zooms (x3) on the smallest objects (people, riders,
  bicycles, poles, signs) in the same three columns;
* ``carla_<k>.png``: real CARLA frames (``../shared/data/carla`` through the CARLA adapter, half resolution):
  simulator | model, then zooms;
* ``loss_curves.png`` (generator / discriminator / critic totals, drawn with OpenCV);

and prints a Markdown table of the losses every ~10 % of the run and the last validation row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from sim2real.core.labels import TRAIN_ID
from sim2real.evaluation.baselines import apply_baseline, fit_real_stats
from sim2real.evaluation.frames import load_real_frames, load_source_frames
from sim2real.runtime.paths import data_dir
from sim2real.translator.frames import to_uint8_image
from sim2real.translator.inference import Translator

CURVES = {"g/total": (40, 40, 220), "d/total": (40, 160, 40), "aux/total": (200, 120, 30)}
SMALL = tuple(TRAIN_ID[n] for n in ("person", "rider", "bicycle", "motorcycle", "pole", "traffic sign",
                                    "traffic light"))
ZOOM, CROP = 3, 64


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    """cv2.imwrite of an RGB image, which only returns False on failure: raise instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def small_object_windows(semantic: np.ndarray, instance: np.ndarray, count: int = 4) -> list[tuple[int, int]]:
    """Top-left corners of up to ``count`` CROP x CROP windows centred on the smallest objects of the small
    classes (instances by pixel count, then pole / sign blobs), not overlapping."""
    h, w = semantic.shape
    centres: list[tuple[int, int, int]] = []
    for obj in np.unique(instance[instance > 0]):
        ys, xs = np.nonzero(instance == obj)
        if int(np.bincount(semantic[ys, xs]).argmax()) in SMALL and ys.size >= 30:
            centres.append((ys.size, int(ys.mean()), int(xs.mean())))
    mask = np.isin(semantic, [TRAIN_ID["pole"], TRAIN_ID["traffic sign"], TRAIN_ID["traffic light"]])
    count_cc, _, stats, cents = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    centres += [(int(stats[c, 4]), int(cents[c, 1]), int(cents[c, 0])) for c in range(1, count_cc)
                if stats[c, 4] >= 30]
    windows: list[tuple[int, int]] = []
    for _, cy, cx in sorted(centres):
        y, x = min(max(cy - CROP // 2, 0), h - CROP), min(max(cx - CROP // 2, 0), w - CROP)
        if all(abs(y - a) >= CROP or abs(x - b) >= CROP for a, b in windows):
            windows.append((y, x))
        if len(windows) == count:
            break
    return windows


def _zoom_row(images: list[np.ndarray], windows: list[tuple[int, int]], width: int) -> np.ndarray:
    """For each column image, its windows side by side, enlarged x ZOOM (nearest), padded to ``width``."""
    cols = []
    for img in images:
        tiles = [cv2.resize(img[y : y + CROP, x : x + CROP], (CROP * ZOOM, CROP * ZOOM),
                            interpolation=cv2.INTER_NEAREST) for y, x in windows] or [np.zeros((8, 8, 3), np.uint8)]
        strip = np.concatenate(tiles, 1)
        scale = min(1.0, width / strip.shape[1])
        strip = cv2.resize(strip, (round(strip.shape[1] * scale), round(strip.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
        pad = np.full((strip.shape[0], width - strip.shape[1], 3), 255, np.uint8)
        cols.append(np.concatenate([strip, pad], 1))
    return np.concatenate(cols, 1)


def _panel(columns: list[np.ndarray], semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
    top = np.concatenate(columns, 1)
    zoom = _zoom_row(columns, small_object_windows(semantic, instance), columns[0].shape[1])
    return np.concatenate([top, zoom], 0)


def procedural_panels(translator: Translator, out: Path) -> list[Path]:
    frames = load_source_frames("procedural:3", size=(360, 640), sim_seed=2718, hours=(12.0, 16.0, 18.5))
    real, labels = load_real_frames(data_dir() / "camvid" / "train", 360, labels=True)
    stats = fit_real_stats(real, labels)
    paths = []
    for k in range(len(frames)):
        rgb, sem, inst = frames.rgb[k : k + 1], frames.semantic[k : k + 1], frames.instance[k : k + 1]
        model = translator.translate_normalized(rgb, sem, inst).float().cpu()
        columns = [to_uint8_image(t[0]) for t in (rgb, apply_baseline("classwise", rgb, sem, stats), model)]
        paths.append(_write_png(out / f"before_after_{k}.png", _panel(columns, sem[0].numpy(), inst[0].numpy())))
    return paths


def carla_panels(translator: Translator, out: Path) -> list[Path]:
    frames = load_source_frames(f"carla:{data_dir() / 'carla'}", size=(360, 640))
    paths = []
    for k, i in enumerate((1, 7)):  # one window of each CARLA frame
        rgb, sem, inst = frames.rgb[i : i + 1], frames.semantic[i : i + 1], frames.instance[i : i + 1]
        model = translator.translate_normalized(rgb, sem, inst).float().cpu()
        columns = [to_uint8_image(rgb[0]), to_uint8_image(model[0])]
        paths.append(_write_png(out / f"carla_{k}.png", _panel(columns, sem[0].numpy(), inst[0].numpy())))
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
    return _write_png(out / "loss_curves.png", img[..., ::-1].copy())


def loss_table(rows: list[dict]) -> str:
    keys = ["g/total", "g/adv", "g/nce", "g/self_recon", "g/bbox", "g/bbox_class", "g/semantic", "d/total",
            "aux/total"]
    picks = [rows[i] for i in sorted({round(j) for j in np.linspace(0, len(rows) - 1, 11)})]
    head = "| step | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1) + "\n"
    return head + "\n".join(
        f"| {r['step']} | " + " | ".join(f"{r[k]:.3f}" if k in r else "-" for k in keys) + " |" for r in picks)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("model", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--style", help="the model's named target style to render in")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    translator = Translator.from_checkpoint(args.model, device="cpu", precision="fp32", style=args.style)
    for path in procedural_panels(translator, args.out) + carla_panels(translator, args.out):
        print(f"wrote {path}")
    metrics = args.run / "metrics.jsonl"
    if not metrics.is_file():
        print(f"no {metrics}: the loss curves and table were not redrawn")
        return 0
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    train_rows = [r for r in rows if "g/total" in r]
    print(f"wrote {loss_curves(train_rows, args.out)}")
    print(loss_table(train_rows))
    val_rows = [r for r in rows if any(k.startswith("val/") for k in r)]
    if val_rows:
        print("\nvalidation:", json.dumps(val_rows[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
