"""The evaluation report: verdicts of the model against every baseline, Markdown tables and the picture grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sim2real.core.labels import CAMVID_CLASS_NAMES, PALETTE
from sim2real.evaluation.baselines import CONTROLS
from sim2real.evaluation.judge import JudgeNet
from sim2real.evaluation.judging import judge_frames
from sim2real.translator.frames import to_uint8_image

__all__ = ["METRICS", "REPORTED_CLASSES", "render_markdown", "verdicts", "write_grid"]

#: summary key -> (title, +1 higher is better / -1 lower is better, std key or None).
METRICS: Final[dict[str, tuple[str, int, str | None]]] = {
    "judge_miou": ("judge mIoU", 1, None),
    "kid_judge": ("KID (judge features)", -1, "kid_judge_std"),
    "fd_judge": ("Fréchet distance (judge features)", -1, None),
    "kid_colour": ("KID (colour only)", -1, "kid_colour_std"),
    "instance_recall": ("instance recall", 1, None),
    "box_recall50": ("box recall@0.5 (judge components)", 1, None),
    "edge_bleed": ("label-edge bleed (levels)", -1, None),
    "edge_overshoot_light": ("light rims at label edges (levels)", -1, None),
    "edge_overshoot_dark": ("dark rims at label edges (levels)", -1, None),
    "instance_hue_error": ("instance hue error (degrees)", -1, None),
    "marking_hue_error": ("road-marking hue error (degrees)", -1, None),
    "fid_inception": ("FID (Inception)", -1, None),
    "kid_inception": ("KID (Inception)", -1, "kid_inception_std"),
}
#: a paired bootstrap difference smaller than this many standard deviations is a tie (about 95 %)
NOISE_SIGMAS: Final = 2.0
#: classes reported apart (small or safety-critical); their IoU gets a verdict against every baseline too.
REPORTED_CLASSES: Final = ("car", "pedestrian", "bicyclist", "pole", "sign/symbol")
#: CamVid class -> the Cityscapes train id whose palette colour draws it.
_CAMVID_COLOUR_ID: Final = (10, 2, 5, 0, 1, 8, 7, 4, 13, 11, 18)


def _fmt(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}g}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"


def _compare(direction: int, values: dict[str, float | None], noise: dict[str, float | None] | None, model: str
             ) -> dict[str, tuple[str, float, float]]:
    """name -> ("win" | "tie" | "loss" | "undecided", gain, spread) for every baseline with a value (not the
    model's own rows, not the controls); gain = (model - name) x direction.

    ``noise`` None: the metric has no noise model, the sign decides. Else a |gain| below ``noise[name]`` is a
    tie, and a baseline without a noise estimate (``noise[name]`` None) is undecided, never a win or a loss.
    """
    mine = values.get(model)
    out: dict[str, tuple[str, float, float]] = {}
    if mine is None:
        return out
    for name, v in values.items():
        if v is None or not _is_baseline(name, model):
            continue
        gain = (mine - v) * direction
        spread = 0.0 if noise is None else noise.get(name)
        if spread is None:
            out[name] = ("undecided", gain, 0.0)
        else:
            out[name] = ("tie" if gain == 0 or abs(gain) < spread else "win" if gain > 0 else "loss", gain, spread)
    return out


def _is_baseline(name: str, model: str) -> bool:
    """A row the model is compared with: not the model's own rows ("model", "model (smoothed)"), not a control."""
    return not name.startswith(model) and name not in CONTROLS


def _signed(gain: float) -> str:
    return f"{'+' if gain >= 0 else '−'}{_fmt(abs(gain), 3)}"


def _verdict(title: str, direction: int, values: dict[str, float | None], noise: dict[str, float | None] | None,
             model: str) -> tuple[str, set[str]]:
    """One verdict line and the baselines beaten (see :func:`_compare` for ``noise``)."""
    mine = values.get(model)
    if mine is None:
        return f"{title}: model –, not scored", set()
    result = _compare(direction, values, noise, model)
    by_kind = {kind: [(n, g, sp) for n, (k, g, sp) in result.items() if k == kind]
               for kind in ("win", "tie", "loss", "undecided")}
    arrow = "↑" if direction > 0 else "↓"
    text = f"{title} {arrow}{' (no noise estimate)' if noise is None else ''}: model {_fmt(mine)}"
    text += " — beats " + (", ".join(f"{n} ({_signed(g)})" for n, g, _ in by_kind["win"]) or "no baseline")
    if by_kind["tie"]:
        text += "; ties with " + ", ".join(f"{n} ({_signed(g)}, within noise ±{_fmt(sp, 2)})" if g else n
                                           for n, g, sp in by_kind["tie"])
    if by_kind["undecided"]:
        text += "; undecided (no noise estimate) against " + ", ".join(f"{n} ({_signed(g)})"
                                                                       for n, g, _ in by_kind["undecided"])
    if by_kind["loss"]:
        text += "; LOSES to " + ", ".join(f"{n} ({_signed(g)})" for n, g, _ in by_kind["loss"])
    return text, {n for n, _, _ in by_kind["win"]}


def verdicts(summary: dict[str, dict[str, Any]], model: str) -> list[str]:
    """One line per metric (and per reported class IoU): the baselines the model beats, ties with or loses to;
    then the joint line (judge mIoU AND judge KID), the one that counts.

    A difference is a tie ("within noise") when it is smaller than NOISE_SIGMAS x the paired block-bootstrap
    standard deviation of model - baseline (judge mIoU and class IoUs, uncertainty.py; "undecided" when the
    frames are too few for one), or than the larger of the two KID subset standard deviations (KIDs). Metrics
    without a noise model (FD, recalls, FID, edge bleed and overshoot, instance and road-marking hue error) say so
    in their line.
    """
    lines: list[str] = []
    beaten: dict[str, set[str]] = {}
    paired = summary.get(model, {}).get("paired_std") or {}
    for key, (title, direction, std_key) in METRICS.items():
        if key not in summary.get(model, {}):
            continue
        values = {name: row.get(key) for name, row in summary.items()}
        noise: dict[str, float | None] | None
        if key == "judge_miou":
            noise = {name: _scaled((paired.get(name) or {}).get("judge_miou")) for name in summary}
        elif std_key:
            noise = {name: max(row.get(std_key) or 0.0, summary[model].get(std_key) or 0.0)
                     for name, row in summary.items()}
        else:
            noise = None
        line, beaten[key] = _verdict(title, direction, values, noise, model)
        lines.append(line)
    for cls in REPORTED_CLASSES:
        values = {name: row["iou"].get(cls) for name, row in summary.items()}
        if values.get(model) is not None:
            noise = {name: _scaled(((paired.get(name) or {}).get("iou") or {}).get(cls)) for name in summary}
            lines.append(_verdict(f"IoU {cls}", 1, values, noise, model)[0])
    if "judge_miou" in beaten and "kid_judge" in beaten:
        lines.append(_joint_verdict(beaten["judge_miou"] & beaten["kid_judge"], summary, model))
    return lines


def _scaled(std: float | None) -> float | None:
    return None if std is None else NOISE_SIGMAS * std


def _joint_verdict(both: set[str], summary: dict[str, dict[str, Any]], model: str) -> str:
    """Labels and realism together: painting real class colours onto the label map (the ``painted_labels``
    control) can win judge mIoU alone, so a win counts only where the model is better on judge mIoU AND KID."""
    others = [n for n in summary if _is_baseline(n, model)]
    text = "judge mIoU and judge KID jointly: model beats " + (", ".join(n for n in others if n in both)
                                                                or "no baseline")
    rest = [n for n in others if n not in both]
    if rest:
        text += "; not on both: " + ", ".join(rest)
    for name in CONTROLS:
        if name in summary:
            row = summary[name]
            text += (f" (control {name}: mIoU {_fmt(row.get('judge_miou'))}, KID {_fmt(row.get('kid_judge'))}: "
                     "mIoU alone can be won without realism)")
    return text


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: setup, real reference and floors, summary, classes, groups, verdicts."""
    meta, summary = report["meta"], report["summary"]
    cfg = meta["config"]
    h, w = meta["size"]
    val = meta["judge"].get("validation", {})
    lines = ["# sim2real evaluation", "",
             f"- source: `{cfg['source']}` — {meta['source']['frames']} frames at {w}x{h} ({meta['source']['kind']})",
             f"- model: `{cfg['model']}`" + (f" ({meta.get('model_name')}, {meta.get('device')}, style "
                                              f"{meta.get('style') or 'mean'})"
                                              if cfg["model"] else " (none: baselines only)"),
             f"- judge: `{meta['judge']['path']}` (real-trained, never a training loss; CamVid-val mIoU "
             f"{_fmt(val.get('miou'))}: the ceiling on real frames)",
             f"- realism reference: `{cfg['real']}` ({report['real']['reference']['frames']} held-apart real frames); "
             f"baselines fitted on `{cfg['real_stats']}` ({meta['baseline_fit']['frames']} labelled real frames)",
             _overlap_line(meta), "", "## Real-vs-real floor", "",
             "| real set vs reference | frames | KID (judge) | FD (judge) | KID (colour) |", "|---|---|---|---|---|"]
    for name, row in report["real"].items():
        if name != "reference":
            lines.append(f"| {name}: `{row['path']}` | {row['frames']} | {_fmt(row['kid_judge'])} ± "
                         f"{_fmt(row['kid_judge_std'], 2)} | {_fmt(row['fd_judge'])} | {_fmt(row['kid_colour'])} |")
    keys = [k for k in METRICS if any(k in row for row in summary.values())]
    lines += ["", "## Summary", "", "| method | " + " | ".join(METRICS[k][0] + (" ↑" if METRICS[k][1] > 0 else " ↓")
                                                              for k in keys)
              + " | SSIM inst ↑ | static flicker ↓ | ms/frame |", "|---|" + "---|" * (len(keys) + 3)]
    for name, row in summary.items():
        cells = [_fmt(row.get(k)) + (f" ± {_fmt(row.get(METRICS[k][2]), 2)}" if METRICS[k][2] and
                                     row.get(METRICS[k][2]) is not None else "") for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_fmt(row['ssim_instances'])} | "
                     f"{_fmt(row['static_flicker'])} | {row['ms_per_frame']:.1f} |")
    lines += ["", "## Judge IoU per class", "", "| method | " + " | ".join(CAMVID_CLASS_NAMES) + " |",
              "|---|" + "---|" * len(CAMVID_CLASS_NAMES)]
    lines += [f"| {name} | " + " | ".join(_fmt(row["iou"][c], 3) for c in CAMVID_CLASS_NAMES) + " |"
              for name, row in summary.items()]
    groups = sorted({g for row in summary.values() for g in row["groups"]})
    if len(groups) > 1:
        lines += ["", "## Judge mIoU by group (time of day / frame)", "", "| method | " + " | ".join(groups) + " |",
                  "|---|" + "---|" * len(groups)]
        lines += [f"| {name} | " + " | ".join(_fmt(row["groups"].get(g, {}).get("judge_miou"), 3) for g in groups)
                  + " |" for name, row in summary.items()]
    lines += ["", "## Verdicts (model vs each baseline)", ""]
    lines += [f"- {v}" for v in report["verdicts"]] or ["- no model evaluated"]
    lines += ["", "![rows: source | class-wise transfer | model | judge on source | judge on model](grid.png)", ""]
    return "\n".join(lines)


def _overlap_line(meta: dict[str, Any]) -> str:
    ov = meta["overlap"]
    if ov.get("unknown"):
        return "- disjointness from the model's training data **unknown**: " + "; ".join(ov["unknown"])
    if not ov["known"] and meta["config"]["model"]:
        return "- training data of the model: **not recorded in the checkpoint** (disjointness unchecked)"
    if ov["overlap"]:
        return "- **OVERLAP with training data, allowed by --allow-overlap**: " + "; ".join(ov["reasons"])
    return "- frames disjoint from the model's training data (checked against its recorded config)"


def _classes_image(classes: Tensor) -> np.ndarray:
    colours = PALETTE[list(_CAMVID_COLOUR_ID)]
    return colours[classes.clamp(0, len(colours) - 1).numpy()]


def write_grid(path: Path, source: Any, outputs: dict[str, dict[int, Tensor]], judge: JudgeNet) -> None:
    """One row per grid frame: source | class-wise transfer | model | judge classes on source | on model
    (methods that were not run are skipped), each tile at half size."""
    columns = [m for m in ("classwise", "model") if m in outputs]
    rows = []
    for i in sorted(next(iter(outputs.values()), {})):
        src = source.rgb[i]
        tiles = [src] + [outputs[m][i] for m in columns]
        judged = [judge_frames(judge, t[None])[0][0] for t in (src, outputs[columns[-1]][i] if columns else src)]
        images = [to_uint8_image(t) for t in tiles] + [_classes_image(c) for c in judged]
        rows.append(np.concatenate([_half(im) for im in images], 1))
    if not rows:
        return
    if not cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def _half(image: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    h, w = image.shape[:2]
    return F.interpolate(t, size=(h // 2, w // 2), mode="area")[0].permute(1, 2, 0).round().byte().numpy()
