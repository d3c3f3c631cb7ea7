"""``sim2real-perception-check``: does YOUR perception model behave on translated frames as on real ones?

    sim2real-perception-check --perception my_model.yaml --source recordings/sim_bag \\
        --translator models/default.safetensors [--translated recordings/translated_bag] \\
        [--real ../shared/data/camvid/val] --out out/perception

Runs the user's model (:mod:`sim2real.evaluation.perception`: ONNX or a Python entry point, described by a
YAML) on the simulator's frames ("source"), on the same frames translated by ``--translator`` ("translated")
and/or as recorded on the ``/translated/*`` topics of a bag ("recorded"), and optionally on real labelled frames
("real", a CamVid-style split), scores it against the labels (simulator labels; real labels for the real row)
per class of the model, and reports the gap "source vs translated vs real" per class: the share of the
source-to-real gap the translation closes (100 % = the model behaves on translated frames as on real ones;
negative = translation moved it further away). Writes ``<out>/report.json`` and ``report.md``.

``--source``: ``procedural[:N]`` (held-apart world seed), ``carla:DIR`` or a rosbag2 recording with
``/sim/camera/{image,semantic,instance}``. Exit status 2 on a user error (one line, no traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from sim2real.core.errors import ConfigError, Sim2RealError
from sim2real.translator.frames import to_uint8_image

__all__ = ["gap_closed", "main", "run_check"]


def _labelled_rows(args: argparse.Namespace) -> Iterator[tuple[str, Iterator[tuple[np.ndarray, np.ndarray,
                                                                                    np.ndarray | None]]]]:
    """(row name, frames as (rgb uint8, train ids, instance ids or None)) for every requested row."""
    from sim2real.evaluation.evaluate import EVAL_SIM_SEED
    from sim2real.evaluation.frames import load_source_frames

    size = (args.height, args.width)
    source = load_source_frames(args.source, args.frames, size, sim_seed=EVAL_SIM_SEED)

    def frames(rgb: torch.Tensor) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for i in range(len(source)):
            yield to_uint8_image(rgb[i]), source.semantic[i].numpy(), source.instance[i].numpy()

    yield "source", frames(source.rgb)
    if args.translator is not None:
        from sim2real.translator.inference import Translator

        translator = Translator.from_checkpoint(args.translator, device=args.device)
        out = torch.cat([translator.translate_normalized(source.rgb[i : i + 1], source.semantic[i : i + 1],
                                                         source.instance[i : i + 1]).float().cpu()
                         for i in range(len(source))])
        yield "translated", frames(out)
    if args.translated is not None:
        recorded = load_source_frames(str(args.translated), args.frames, size, topic_prefix="/translated")
        yield "recorded", ((to_uint8_image(recorded.rgb[i]), recorded.semantic[i].numpy(), recorded.instance[i].numpy())
                           for i in range(len(recorded)))
    if args.real is not None:
        from sim2real.evaluation.judge_training import load_camvid_split
        from sim2real.evaluation.perception import camvid_to_train_ids

        split = load_camvid_split(args.real, args.real_frames)
        yield "real", ((split.rgb[i], camvid_to_train_ids(split.labels[i]), None) for i in range(len(split)))


#: below this source-to-real gap (IoU / recall points) the share closed is not reported: it would be noise
MIN_GAP: Final = 0.02


def gap_closed(source: float | None, translated: float | None, real: float | None) -> float | None:
    """Share of the source-to-real gap that translation closes: (t - s) / (r - s); None when undefined or when
    |r - s| < MIN_GAP (a tiny gap makes any change look like hundreds of percent)."""
    if None in (source, translated, real) or abs(real - source) < MIN_GAP:
        return None
    return (translated - source) / (real - source)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    """Score every row; return the report (also written to ``args.out``)."""
    from sim2real.evaluation.perception import PerceptionTally, load_perception_model, load_spec

    spec = load_spec(args.perception)
    model = load_perception_model(spec)
    lut = spec.train_id_to_model()
    tallies: dict[str, PerceptionTally] = {}
    for row, frames in _labelled_rows(args):
        tally = tallies[row] = PerceptionTally(len(spec.classes))
        for rgb, semantic, instance in frames:
            target = lut[np.clip(semantic, 0, 255).astype(np.int64)]
            pred = model.predict(rgb)
            if spec.task == "segmentation":
                tally.add_segmentation(pred, target)
            elif instance is not None:
                tally.add_detection(pred, target, instance, score_threshold=spec.score_threshold,
                                    min_pixels=spec.min_pixels)
        print(f"sim2real-perception-check: {row}: {tally.frames} frames", flush=True)
    metric = "iou" if spec.task == "segmentation" else "recall"
    per_class: dict[str, dict[str, Any]] = {}
    for k in spec.scored:
        values = {row: _finite(getattr(t, metric)()[k]) for row, t in tallies.items()}
        name = spec.classes[k]
        per_class[name] = {**values, **{f"gap_closed_{row}": gap_closed(values.get("source"), values.get(row),
                                                                          values.get("real"))
                                        for row in ("translated", "recorded") if row in values}}
    # means over the classes every scoring row scores, so the rows' means compare like with like (a row that
    # scores nothing, e.g. real frames for a detector: no instance masks, has no mean and constrains nothing)
    scoring = [row for row in tallies if any(per_class[c][row] is not None for c in per_class)]
    common = [c for c in per_class if all(per_class[c][row] is not None for row in scoring)]
    means = {row: _finite(float(np.mean([per_class[c][row] for c in common]))) if common and row in scoring
             else None for row in tallies}
    report = {"model": spec.name, "task": spec.task, "metric": metric, "rows": list(tallies),
              "mean_over_classes": common,
              "frames": {row: t.frames for row, t in tallies.items()}, "mean": means, "per_class": per_class,
              "unmatched_detections_per_frame": ({row: t.unmatched / max(t.frames, 1) for row, t in tallies.items()}
                                                 if spec.task == "detection" else None),
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "report.md").write_text(_markdown(report))
    return report


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _markdown(report: dict[str, Any]) -> str:
    rows = report["rows"]
    gaps = [r for r in ("translated", "recorded") if r in rows and "real" in rows]
    lines = [f"# Perception check: {report['model']} ({report['task']}, {report['metric']} per class)", "",
             "Frames: " + ", ".join(f"{r} {n}" for r, n in report["frames"].items()), "",
             "| class | " + " | ".join(rows) + "".join(f" | gap closed ({g})" for g in gaps) + " |",
             "|---|" + "---|" * (len(rows) + len(gaps))]
    for name, entry in report["per_class"].items():
        cells = [_fmt(entry.get(r)) for r in rows]
        cells += [("–" if entry.get(f"gap_closed_{g}") is None else f"{100 * entry[f'gap_closed_{g}']:.0f} %")
                  for g in gaps]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(_fmt(report["mean"][r]) for r in rows) + " |" + " |" * len(gaps))
    lines += ["", "Gap closed = (translated − source) / (real − source): 100 % = the model behaves on translated "
              "frames as on real ones; below 0 = translation moved it further from its real behaviour.", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sim2real-perception-check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--perception", required=True, type=Path, help="YAML describing your model")
    p.add_argument("--source", required=True, help="procedural[:N] | carla:DIR | sim rosbag2 recording")
    p.add_argument("--translator", type=Path, help="translator checkpoint to translate the source frames with")
    p.add_argument("--translated", type=Path, help="a bag with the translated frames on /translated/* topics")
    p.add_argument("--real", type=Path, help="real labelled frames (CamVid-style split: images/ + labels/)")
    p.add_argument("--out", type=Path, default=Path("out/perception"), help="output directory")
    p.add_argument("--frames", type=int, help="at most this many source frames (default: procedural N, else 32)")
    p.add_argument("--real-frames", type=int, help="at most this many real frames (default all)")
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--device", default="auto", help="translator device")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 on a user error)."""
    args = build_parser().parse_args(argv)
    try:
        if args.translator is None and args.translated is None:
            raise ConfigError("give --translator (translate the source frames) and/or --translated (a recorded bag)")
        report = run_check(args)
    except Sim2RealError as exc:
        print(f"sim2real-perception-check: error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "report.md").read_text())
    print(f"sim2real-perception-check: mean {report['metric']}: "
          + ", ".join(f"{r} {_fmt(v)}" for r, v in report["mean"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
