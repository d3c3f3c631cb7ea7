"""``sim2real-eval``: score a translator against trivial baselines with judges it never trained against.

    sim2real-eval --model models/default.safetensors [--source procedural:48] [--out out/eval]
    sim2real-eval --model m.safetensors --source carla:../shared/data/carla --out out/eval_carla
    sim2real-eval --baselines-only --source recordings/run1 --out out/eval_bag

Every method — the baselines of :mod:`sim2real.evaluation.baselines` (identity, Reinhard, histogram matching,
class-wise colour transfer) and the model — translates the same labelled simulator frames, and the same judges
score them (:mod:`sim2real.evaluation.judging`):

* **judge mIoU** (+ per-class IoU): the real-trained segmenter (``models/judges/camvid_segmenter``) against the
  simulator's labels — realism and label preservation in one number (FCN-score);
* **objects**: instance recall, box recall@0.5 / box mIoU from the judge's own connected components;
* **realism distances** to held-apart real frames (default ``camvid/val``): KID (mean ± std over subsets) and
  Fréchet distance on the judge's pooled multi-layer features, KID on colour-only features; with
  ``--inception-weights`` also FID / KID on standard Inception features (the numbers to quote in papers);
* **structure and time**: SSIM / edge agreement with the source inside instances, static flicker.

The report ends with a verdict per metric: which baselines the model beats and by how much, and where it loses.
Frames must be disjoint from the model's training data: the checkpoint records its training config, and an
overlapping source or real set is refused unless ``--allow-overlap``. The training critics of a run are never
read. Writes ``<out>/report.json``, ``report.md`` and ``grid.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor

from sim2real.core.errors import ConfigError, Sim2RealError
from sim2real.core.labels import CAMVID_CLASS_NAMES, IGNORE_ID
from sim2real.evaluation.baselines import (
    BASELINES,
    RealColourStats,
    apply_baseline,
    fit_real_stats,
    fit_source_stats,
    paint_labels,
)
from sim2real.evaluation.edge_bleed import BleedTally, edge_bleed_tally
from sim2real.evaluation.edge_overshoot import OvershootTally, edge_overshoot_tally
from sim2real.evaluation.frames import DEFAULT_HOURS, SourceFrames, load_real_frames, load_source_frames
from sim2real.evaluation.instance_colour import InstanceColourTally, instance_colour_tally
from sim2real.evaluation.judge import JudgeNet, load_judge
from sim2real.evaluation.judging import JudgeTally
from sim2real.evaluation.marking_colour import MarkingColourTally, marking_colour_tally
from sim2real.evaluation.metrics import (
    ClassTally,
    FlickerTally,
    edge_agreement_map,
    frechet_distance_features,
    kid,
    masked_class_tally,
    ssim_map,
    static_mask,
    temporal_flicker,
)
from sim2real.evaluation.provenance import check_disjoint, training_provenance
from sim2real.evaluation.report import render_markdown, verdicts, write_grid
from sim2real.evaluation.uncertainty import block_bootstrap, bootstrap_ious
from sim2real.runtime.paths import data_dir, share_dir
from sim2real.translator.frames import denormalize_rgb, normalize_rgb

__all__ = ["DEFAULT_JUDGE", "EVAL_SIM_SEED", "EvalConfig", "evaluate", "main", "score_method"]

DEFAULT_JUDGE: Final = "models/judges/camvid_segmenter.safetensors"
#: procedural world seed of the default evaluation frames (training uses 0 and validation 1000 by default).
EVAL_SIM_SEED: Final = 2718
MODEL: Final = "model"


@dataclass(frozen=True)
class EvalConfig:
    """Everything one evaluation run depends on (stored in ``report.json`` under ``meta.config``).

    Attributes:
        model: translator checkpoint; None = baselines only.
        source: ``procedural[:N]``, ``carla:DIR``, a rosbag2 recording or a Cityscapes-named folder.
        out: output directory.
        judge: the real-trained segmenter (None = the shipped one).
        real: held-apart real frames for the realism distances (None = ``<data>/camvid/val``).
        real_stats: labelled real frames the colour baselines are fitted on (None = ``<data>/camvid/train``).
        floor: another real set, for the real-vs-real floor of the distances (None = ``<data>/real``; "" = off).
        frames, height, width: source frames and size (default 48 procedural frames at 360x640).
        sim_seed, hours, stride: the procedural world, its times of day and the frame step of its sequences.
        baselines: which baselines to run (subset of :data:`BASELINES`).
        inception_weights: FID Inception-v3 weights for the standard FID / KID (None = skip).
        allow_overlap: evaluate even when the frames overlap the model's training data.
        temporal_alpha: also score the model through ``TemporalSmoother(alpha)`` (None = off).
        real_frames: at most this many frames of each real set (None = all).
        kid_subsets: subsets for the KID mean ± std.
        style: render in this named target style of the model (trained with ``target.styles``); "mean" = its
            mean style; None = the style named like a folder of ``real`` (:func:`matching_style`), else the mean.
        backend: the translator's inference backend: "torch" (default), "onnxruntime" (what the translate
            node runs on a CPU: with int8 encoder convolutions when the checkpoint is calibrated) or "auto".
        grid_frames, device, precision, seed: as usual.
    """

    model: Path | None
    source: str = "procedural:48"
    out: Path = Path("out/eval")
    judge: Path | None = None
    real: Path | None = None
    real_stats: Path | None = None
    floor: Path | None = None
    frames: int | None = None
    height: int = 360
    width: int = 640
    sim_seed: int = EVAL_SIM_SEED
    hours: tuple[float, ...] = DEFAULT_HOURS
    stride: int = 3
    baselines: tuple[str, ...] = BASELINES
    inception_weights: Path | None = None
    allow_overlap: bool = False
    temporal_alpha: float | None = None
    real_frames: int | None = None
    kid_subsets: int = 100
    style: str | None = None
    grid_frames: int = 4
    device: str = "auto"
    precision: str = "fp32"
    backend: str = "torch"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.real_frames is not None and self.real_frames < 2:
            raise ConfigError(f"real_frames must be >= 2 (the distances need two samples), got {self.real_frames}")
        for name in ("height", "width", "stride", "kid_subsets", "grid_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.frames is not None and self.frames < 2:
            raise ConfigError(f"frames must be >= 2 (the distances need two samples), got {self.frames}")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ConfigError(f"unknown baseline(s) {unknown}; valid: {', '.join(BASELINES)}")
        if self.model is None and not self.baselines:
            raise ConfigError("nothing to evaluate: give --model or at least one baseline")
        if self.temporal_alpha is not None and not 0.0 <= self.temporal_alpha <= 1.0:
            raise ConfigError(f"temporal_alpha must be in [0, 1], got {self.temporal_alpha}")

    def resolved(self) -> EvalConfig:
        """The config with every default path filled in."""
        data = data_dir()
        return dataclasses.replace(
            self,
            judge=self.judge or share_dir() / DEFAULT_JUDGE,
            real=self.real or data / "camvid" / "val",
            real_stats=self.real_stats or data / "camvid" / "train",
            floor=(data / "real") if self.floor is None else (self.floor if str(self.floor) else None),
        )


@dataclass
class MethodScores:
    """One method's tallies: overall judge tally, per-group judge tallies, structure and flicker."""

    judge: JudgeTally = field(default_factory=JudgeTally)
    groups: dict[str, JudgeTally] = field(default_factory=dict)
    ssim: ClassTally = field(default_factory=ClassTally.zeros)
    edge: ClassTally = field(default_factory=ClassTally.zeros)
    flicker: FlickerTally = field(default_factory=FlickerTally)
    bleed: BleedTally = field(default_factory=BleedTally)
    overshoot: OvershootTally = field(default_factory=OvershootTally)
    colour: InstanceColourTally = field(default_factory=InstanceColourTally)
    markings: MarkingColourTally = field(default_factory=MarkingColourTally)
    grid: dict[int, Tensor] = field(default_factory=dict)
    seconds: float = 0.0


def matching_style(styles: Sequence[str], reference: Path | None) -> str | None:
    """The one of a model's named target ``styles`` whose name is a folder of the reference frames' path (e.g.
    ``camvid`` for ``.../camvid/val``), or None (the mean style): the model is then judged in the domain it is
    compared with."""
    parts = {p.lower() for p in Path(reference).resolve().parts} if reference is not None else set()
    return next((name for name in styles if name.lower() in parts), None)


def translator_styles(model: Path) -> list[str]:
    """The named target styles a checkpoint was trained with ([] for one mean target style)."""
    from sim2real.translator.checkpoint import read_checkpoint_document

    return list((read_checkpoint_document(model).get("config") or {}).get("target_styles") or [])


def score_method(translate: Callable[[int], Tensor], source: SourceFrames, judge: JudgeNet,
                 grid_frames: Sequence[int] = ()) -> MethodScores:
    """Translate every source frame with ``translate(i) -> (1, 3, H, W)`` and score it with the judge."""
    scores = MethodScores()
    prev: Tensor | None = None
    for i in range(len(source)):
        t0 = time.perf_counter()
        out = to_8bit_levels(translate(i).float().cpu())  # scored as published: rgb8
        scores.seconds += time.perf_counter() - t0
        sl = slice(i, i + 1)
        sem, inst, src = source.semantic[sl], source.instance[sl], source.rgb[sl]
        scores.judge.add(judge, out, sem, inst)
        scores.groups.setdefault(source.groups[i], JudgeTally()).add_counts(
            scores.judge.last_confusion, scores.judge.last_objects, 1)
        things = inst > 0
        scores.ssim = scores.ssim + masked_class_tally(ssim_map(src, out), things, sem)
        scores.edge = scores.edge + masked_class_tally(edge_agreement_map(src, out), things, sem)
        src8, out8 = denormalize_rgb(src)[0].numpy(), denormalize_rgb(out)[0].numpy()
        scores.bleed = scores.bleed + edge_bleed_tally(src8, out8, sem[0].numpy(), ignore=IGNORE_ID)
        scores.overshoot = scores.overshoot + edge_overshoot_tally(out8, sem[0].numpy(), ignore=IGNORE_ID)
        scores.colour = scores.colour + instance_colour_tally(src8, out8, inst[0].numpy())
        scores.markings = scores.markings + marking_colour_tally(src8, out8, sem[0].numpy())
        if prev is not None and source.sequence[i] == source.sequence[i - 1]:
            p = slice(i - 1, i)
            static = static_mask(source.rgb[p], src, semantic_prev=source.semantic[p], semantic=sem,
                                 instance_prev=source.instance[p], instance=inst)
            scores.flicker = scores.flicker + temporal_flicker(prev, out, source.rgb[p], src, static)
        if i in grid_frames:
            scores.grid[i] = out[0]
        prev = out
    return scores


def to_8bit_levels(x: Tensor) -> Tensor:
    """Frames in [-1, 1] quantised as the node publishes them (rgb8), back in [-1, 1]: (B, 3, H, W) -> same."""
    return normalize_rgb(denormalize_rgb(x))


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _summary(scores: MethodScores, real_feats: Tensor, real_colour: Tensor, subsets: int, seed: int
             ) -> dict[str, Any]:
    feats, colour = scores.judge.feature_matrix(), scores.judge.colour_matrix()
    k, k_std = kid(feats, real_feats, num_subsets=subsets, seed=seed)
    kc, kc_std = kid(colour, real_colour, num_subsets=subsets, seed=seed)
    iou = scores.judge.iou()
    obj = scores.judge.objects
    return {
        "judge_miou": _finite(scores.judge.miou()),
        "kid_judge": _finite(k), "kid_judge_std": _finite(k_std),
        "fd_judge": _finite(frechet_distance_features(feats, real_feats)),
        "kid_colour": _finite(kc), "kid_colour_std": _finite(kc_std),
        "instance_recall": _finite(obj.instance_recall()), "box_recall50": _finite(obj.box_recall50()),
        "box_miou": _finite(obj.box_miou()),
        "ssim_instances": _finite(scores.ssim.overall()), "edge_instances": _finite(scores.edge.overall()),
        "static_flicker": _finite(scores.flicker.static_flicker),
        "edge_bleed": _finite(scores.bleed.bleed()), "edge_bleed_band_rms": _finite(scores.bleed.band_rms()),
        "edge_bleed_interior_rms": _finite(scores.bleed.interior_rms()),
        "edge_bleed_profile": {ring: _finite(v) for ring, v in scores.bleed.profile().items()},
        "edge_overshoot_light": _finite(scores.overshoot.light()),
        "edge_overshoot_dark": _finite(scores.overshoot.dark()),
        "instance_hue_error": _finite(scores.colour.hue_error()),
        "instance_chroma_ratio": _finite(scores.colour.chroma_ratio()),
        "instance_grey_tint": _finite(scores.colour.grey_tint()),
        "coloured_instances": scores.colour.coloured_count(),
        "marking_hue_error": _finite(scores.markings.hue_error()),
        "marking_chroma_ratio": _finite(scores.markings.chroma_ratio()),
        "marked_frames": scores.markings.frames(),
        "iou": {name: _finite(v) for name, v in zip(CAMVID_CLASS_NAMES, iou, strict=True)},
        "groups": {g: {"judge_miou": _finite(t.miou()), "instance_recall": _finite(t.objects.instance_recall()),
                       "frames": t.frames} for g, t in scores.groups.items()},
        "ms_per_frame": 1000.0 * scores.seconds / max(len(scores.judge.features), 1),
    }


def _add_bootstrap(summary: dict[str, dict[str, Any]], scores: dict[str, MethodScores], source: SourceFrames,
                   seed: int) -> None:
    """Block-bootstrap standard deviations (uncertainty.py) into ``summary``: per method ``judge_miou_std`` and
    ``iou_std``; for the model, ``paired_std`` {baseline: {"judge_miou": s, "iou": {class: s}}} of the
    differences model - baseline on the same resamples. Every one is None when the frames hold too few
    independent blocks (e.g. CARLA windows of two frames: clusters resampled whole)."""
    if source.clusters is not None:
        resamples = block_bootstrap(source.clusters, seed=seed, block=len(source))
    else:
        resamples = block_bootstrap(source.sequence.tolist(), seed=seed)
    k = len(CAMVID_CLASS_NAMES)
    boot = {name: (bootstrap_ious(np.stack(s.judge.frame_confusions), resamples) if resamples
                   else np.full((0, k), np.nan)) for name, s in scores.items()}

    def std(x: np.ndarray) -> float | None:
        x = x[np.isfinite(x)]
        return float(x.std()) if x.size > 1 else None

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples of absent classes
        miou = {name: np.nanmean(b, axis=1) for name, b in boot.items()}
        for name, b in boot.items():
            summary[name]["judge_miou_std"] = std(miou[name])
            summary[name]["iou_std"] = {c: std(b[:, j]) for j, c in enumerate(CAMVID_CLASS_NAMES)}
        if MODEL in boot:
            summary[MODEL]["paired_std"] = {
                name: {"judge_miou": std(miou[MODEL] - miou[name]),
                       "iou": {c: std(boot[MODEL][:, j] - b[:, j]) for j, c in enumerate(CAMVID_CLASS_NAMES)}}
                for name, b in boot.items() if not name.startswith(MODEL)}


def _real_rows(cfg: EvalConfig, judge: JudgeNet, real: Tensor, real_labels: Tensor | None, *,
               stats_frames: Tensor, log: Callable[[str], None]) -> tuple[dict[str, Any], Tensor, Tensor]:
    """Judge the real reference frames; the floor distances of other real sets to them."""
    ref = JudgeTally()
    for i in range(real.shape[0]):
        labels = real_labels[i : i + 1] if real_labels is not None else torch.full(
            (1, *real.shape[-2:]), IGNORE_ID, dtype=torch.long)
        ref.add_real(judge, real[i : i + 1], labels)
    real_feats, real_colour = ref.feature_matrix(), ref.colour_matrix()
    rows: dict[str, Any] = {"reference": {"path": str(cfg.real), "frames": int(real.shape[0]),
                                          "judge_miou_on_its_labels": _finite(ref.miou()) if real_labels is not None
                                          else None}}
    floors = {"real_stats": stats_frames}
    if cfg.floor is not None:
        floors["floor"] = load_real_frames(cfg.floor, cfg.height, cfg.real_frames)[0]
    for name, frames in floors.items():
        tally = JudgeTally()
        for i in range(frames.shape[0]):
            tally.add_features_only(judge, frames[i : i + 1])
        f, c = tally.feature_matrix(), tally.colour_matrix()
        k, k_std = kid(f, real_feats, num_subsets=cfg.kid_subsets, seed=cfg.seed)
        kc, _ = kid(c, real_colour, num_subsets=cfg.kid_subsets, seed=cfg.seed)
        rows[name] = {"path": str(cfg.real_stats if name == "real_stats" else cfg.floor), "frames": int(f.shape[0]),
                      "kid_judge": _finite(k), "kid_judge_std": _finite(k_std),
                      "fd_judge": _finite(frechet_distance_features(f, real_feats)), "kid_colour": _finite(kc)}
        log(f"sim2real-eval: floor {name}: KID(judge) {k:.4g} ± {k_std:.2g} to the reference")
    return rows, real_feats, real_colour


def _methods(cfg: EvalConfig, source: SourceFrames, stats: RealColourStats, log: Callable[[str], None]
             ) -> tuple[dict[str, Callable[[int], Tensor]], dict[str, Any]]:
    methods: dict[str, Callable[[int], Tensor]] = {}
    pooled = fit_source_stats(source.rgb, source.semantic) if "classwise_pooled" in cfg.baselines else None
    for name in cfg.baselines:
        methods[name] = (lambda i, n=name: apply_baseline(n, source.rgb[i : i + 1], source.semantic[i : i + 1],
                                                          stats, source_stats=pooled))
    methods["painted_labels"] = lambda i: paint_labels(source.semantic[i : i + 1], stats)  # negative control
    info: dict[str, Any] = {}
    if cfg.model is not None:
        from sim2real.translator.inference import Translator

        styles = translator_styles(cfg.model)
        style = (None if cfg.style == "mean" else cfg.style if cfg.style is not None
                 else matching_style(styles, cfg.real))
        translator = Translator.from_checkpoint(cfg.model, device=cfg.device, precision=cfg.precision,
                                                style=style, backend=cfg.backend)
        translator.warmup(cfg.height, cfg.width)

        def run_model(i: int) -> Tensor:
            return translator.translate_normalized(source.rgb[i : i + 1], source.semantic[i : i + 1],
                                                   source.instance[i : i + 1])

        methods[MODEL] = run_model
        info = {"model_name": translator.model_name, "device": str(translator.device),
                "precision": translator.precision, "style": style, "backend": translator.backend,
                "quantization": translator.quantization}
        if style is not None and cfg.style is None:
            log(f"sim2real-eval: rendering in the model's {style!r} style (the reference frames' dataset; --style "
                "to choose another)")
        elif cfg.style is None and styles:
            log(f"sim2real-eval: no style of the model {styles} is named like a folder of "
                f"{cfg.real}: rendering in its mean style (--style to choose one)")
        if cfg.temporal_alpha is not None:
            from sim2real.evaluation.temporal import TemporalSmoother

            smoother = TemporalSmoother(alpha=cfg.temporal_alpha)
            methods[f"{MODEL} (smoothed)"] = lambda i: smoother(
                source.rgb[i : i + 1], source.semantic[i : i + 1], source.instance[i : i + 1], run_model(i))
        log(f"sim2real-eval: model {cfg.model} ({translator.model_name}, {translator.device}, backend "
            f"{translator.backend}, quantization {translator.quantization})")
    return methods, info


def evaluate(cfg: EvalConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the evaluation of ``cfg`` (defaults resolved); writes report.json / report.md / grid.png."""
    start = time.perf_counter()
    cfg = cfg.resolved()
    provenance = training_provenance(cfg.model) if cfg.model is not None else None
    overlap = check_disjoint(cfg, provenance)
    judge, judge_info = load_judge(cfg.judge)
    source = load_source_frames(cfg.source, cfg.frames, (cfg.height, cfg.width), sim_seed=cfg.sim_seed,
                                hours=cfg.hours, stride=cfg.stride)
    if len(source) < 2:
        raise ConfigError(f"source {cfg.source!r} gave {len(source)} frame; the distances need at least 2")
    real, real_labels = load_real_frames(cfg.real, cfg.height, cfg.real_frames)
    stats_rgb, stats_labels = load_real_frames(cfg.real_stats, cfg.height, cfg.real_frames, labels=True)
    stats = fit_real_stats(stats_rgb, stats_labels)
    log(f"sim2real-eval: {len(source)} source frames {cfg.width}x{cfg.height} ({source.description['kind']}), "
        f"{real.shape[0]} real reference frames, baselines fitted on {stats.frames} labelled real frames")
    real_rows, real_feats, real_colour = _real_rows(cfg, judge, real, real_labels, stats_frames=stats_rgb, log=log)
    methods, model_info = _methods(cfg, source, stats, log)
    grid_idx = sorted({int(i) for i in np.linspace(0, len(source) - 1, min(cfg.grid_frames, len(source))).round()})
    scores = {}
    for name, translate in methods.items():
        scores[name] = score_method(translate, source, judge, grid_idx)
        log(f"sim2real-eval: scored {name} (judge mIoU {scores[name].judge.miou():.4f})")
    summary = {name: _summary(s, real_feats, real_colour, cfg.kid_subsets, cfg.seed) for name, s in scores.items()}
    _add_bootstrap(summary, scores, source, cfg.seed)
    if cfg.inception_weights is not None:
        _add_inception(cfg, summary, source, methods, real)
    report = {
        "meta": {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()},
            "source": source.description, "size": [cfg.height, cfg.width], **model_info,
            "judge": {"path": str(cfg.judge), "validation": judge_info.get("validation", {})},
            "training_provenance": provenance, "overlap": overlap,
            "baseline_fit": {"path": str(cfg.real_stats), "frames": stats.frames}, "torch": torch.__version__,
        },
        "real": real_rows,
        "summary": summary,
        "verdicts": verdicts(summary, MODEL) if MODEL in summary else [],
    }
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_grid(cfg.out / "grid.png", source, {n: s.grid for n, s in scores.items()}, judge)
    report["meta"]["wall_s"] = time.perf_counter() - start
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (cfg.out / "report.md").write_text(render_markdown(report))
    log(f"sim2real-eval: wrote {cfg.out / 'report.json'}, report.md, grid.png in {report['meta']['wall_s']:.1f} s")
    for line in report["verdicts"]:
        log(f"sim2real-eval: verdict: {line}")
    return report


def _add_inception(cfg: EvalConfig, summary: dict[str, Any], source: SourceFrames,
                   methods: dict[str, Callable[[int], Tensor]], real: Tensor) -> None:
    """FID / KID on standard Inception features for every method (the user's weights; no download)."""
    from sim2real.evaluation.inception import inception_features, load_inception
    from sim2real.evaluation.metrics import frechet_distance_features as fid

    net = load_inception(cfg.inception_weights)
    real_f = inception_features(net, real)
    for name, translate in methods.items():
        outputs = [to_8bit_levels(translate(i).float().cpu()) for i in range(len(source))]
        f = inception_features(net, torch.cat(outputs))
        k, k_std = kid(f, real_f, num_subsets=cfg.kid_subsets, seed=cfg.seed)
        summary[name].update({"fid_inception": _finite(fid(f, real_f)), "kid_inception": _finite(k),
                              "kid_inception_std": _finite(k_std)})


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``sim2real-eval`` argument parser."""
    p = argparse.ArgumentParser(prog="sim2real-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="translator checkpoint (.safetensors)")
    p.add_argument("--baselines-only", action="store_true", help="no model: score the baselines only")
    p.add_argument("--source", default="procedural:48",
                   help="procedural[:N] | carla:DIR | rosbag2 recording | Cityscapes-named folder (default "
                        "procedural:48, held-apart world seed)")
    p.add_argument("--out", type=Path, default=Path("out/eval"), help="output directory (default out/eval)")
    p.add_argument("--judge", type=Path, help=f"judge segmenter (default: the shipped {DEFAULT_JUDGE})")
    p.add_argument("--real", type=Path, help="held-apart real frames for the distances (default camvid/val)")
    p.add_argument("--real-stats", type=Path, help="labelled real frames for the baselines (default camvid/train)")
    p.add_argument("--floor", type=Path, help="another real set for the real-vs-real floor (default real/; '' off)")
    p.add_argument("--frames", type=int, help="number of source frames")
    p.add_argument("--height", type=int, default=360, help="evaluation height (default 360)")
    p.add_argument("--width", type=int, default=640, help="evaluation width (default 640)")
    p.add_argument("--sim-seed", type=int, default=EVAL_SIM_SEED,
                   help=f"procedural world seed (default {EVAL_SIM_SEED}, held apart from training)")
    p.add_argument("--hours", default=",".join(f"{h:g}" for h in DEFAULT_HOURS),
                   help="procedural times of day, comma-separated (default 8,12,16,18.5)")
    p.add_argument("--baselines", default=",".join(BASELINES), help=f"subset of {','.join(BASELINES)}")
    p.add_argument("--inception-weights", type=Path,
                   help="FID Inception-v3 weights (pt_inception-2015-12-05 .pth state dict or .safetensors)")
    p.add_argument("--allow-overlap", action="store_true",
                   help="evaluate even if the frames overlap the model's training data")
    p.add_argument("--temporal-alpha", type=float, help="also score the model through TemporalSmoother(alpha)")
    p.add_argument("--style", help="the model's named target style to render in, or 'mean' (what translate_node"
                                   " renders without its style parameter); default: the style named like a folder"
                                   " of --real, else the mean style")
    p.add_argument("--grid-frames", type=int, default=4, help="frames in grid.png (default 4)")
    p.add_argument("--device", default="auto", help="translator device: auto | cpu | cuda[:N]")
    p.add_argument("--precision", default="fp32", help="translator precision: auto | fp32 | fp16 | bf16")
    p.add_argument("--backend", default="torch", help="translator backend: torch | onnxruntime (the translate "
                                                      "node's on a CPU, int8 encoders when calibrated) | auto")
    p.add_argument("--real-frames", type=int, help="at most this many frames of each real set (default all)")
    p.add_argument("--kid-subsets", type=int, default=100, help="random subsets for the KID mean ± std (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the KID subsets")
    return p


def _config_from(args: argparse.Namespace) -> EvalConfig:
    if (args.model is None) != args.baselines_only:
        raise ConfigError("give --model, or --baselines-only to score the baselines alone")
    try:
        hours = tuple(float(h) for h in args.hours.split(",") if h.strip())
    except ValueError as exc:
        raise ConfigError(f"--hours must be comma-separated numbers, got {args.hours!r}") from exc
    return EvalConfig(
        model=args.model, source=args.source, out=args.out, judge=args.judge, real=args.real,
        real_stats=args.real_stats, floor=args.floor, frames=args.frames, height=args.height, width=args.width,
        sim_seed=args.sim_seed, hours=hours, baselines=tuple(b for b in args.baselines.split(",") if b),
        inception_weights=args.inception_weights, allow_overlap=args.allow_overlap,
        temporal_alpha=args.temporal_alpha, real_frames=args.real_frames, kid_subsets=args.kid_subsets,
        style=args.style, grid_frames=args.grid_frames, device=args.device, precision=args.precision,
        backend=args.backend, seed=args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``sim2real-eval``); returns the exit code (2 on a user error)."""
    args = build_parser().parse_args(argv)
    try:
        evaluate(_config_from(args))
    except Sim2RealError as exc:
        print(f"sim2real-eval: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
