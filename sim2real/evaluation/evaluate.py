"""``sim2real-eval``: score a translator checkpoint on source frames against real target frames.

    sim2real-eval --model models/lite.safetensors --source procedural:64 --target ../shared/data/real/seq0000 \\
        --out out/eval [--frames N] [--height 360 --width 640] [--critics runs/x/checkpoints/step_N]

Runs the translator on the source frames (in order: consecutive frames of a sequence), then computes
(:mod:`sim2real.evaluation.metrics`), with the **source frames themselves as the reference row**:

* box preservation — a :class:`~sim2real.translator.aux_nets.BoxHead` refines the ground-truth boxes on the
  source and on the translated frame; recall@IoU 0.5 and mean IoU against the ground truth, per class;
* semantic flip rate — a :class:`~sim2real.translator.aux_nets.Segmenter`'s classes vs the ground truth;
* realism — KID to the target frames on :func:`~sim2real.evaluation.metrics.handcrafted_features` (and on the
  segmenter's pooled features); **not comparable with published FID / KID** (no Inception weights offline);
* temporal flicker — output change in pixels whose input did not change between consecutive frames;
* structure — SSIM and Sobel edge agreement between source and translated frames inside instance masks.

The critics (box head + segmenter) come from ``--critics`` (a training checkpoint directory
``runs/x/checkpoints/step_N``, a run's ``checkpoints`` directory (latest step), or a ``critics.safetensors``
written by this tool) or are trained here on the source frames with
:func:`~sim2real.translator.objective.aux_losses` and cached as ``<out>/critics.safetensors``. Critics trained
on the evaluated frames fit them closely: the source row is then their training error and the translated
row measures what translation breaks.

Writes ``<out>/report.json``, ``<out>/report.md`` and ``<out>/grid.png`` (source | translated | label
overlay for a few frames).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sim2real.core.errors import CheckpointError, ConfigError, Sim2RealError
from sim2real.core.labels import CLASS_NAMES, IGNORE_ID, NUM_CLASSES, overlay
from sim2real.evaluation.metrics import (
    FEATURE_EXTRACTOR,
    REPORTED_SMALL_CLASSES,
    BoxTallies,
    ClassTally,
    FlickerTally,
    box_iou,
    box_tally,
    edge_agreement_map,
    flip_tally,
    handcrafted_features,
    kid,
    masked_class_tally,
    ssim_map,
    static_mask,
    temporal_flicker,
)

__all__ = [
    "CRITICS_FILE",
    "EvalConfig",
    "SourceFrames",
    "evaluate",
    "load_critics",
    "load_source_frames",
    "load_target_frames",
    "main",
    "save_critics",
    "segmenter_features",
    "train_critics",
]

CRITICS_FILE: Final = "critics.safetensors"
_CRITICS_FORMAT: Final = "sim2real-eval-critics"
_DEFAULT_SIZE: Final = (360, 640)
_DEFAULT_FRAMES: Final = 32
_BAG_SUFFIXES: Final = (".mcap", ".db3")


@dataclass(frozen=True)
class EvalConfig:
    """Everything one evaluation run depends on (stored in ``report.json`` under ``meta.config``).

    Attributes:
        model: translator checkpoint (``.safetensors``).
        source: ``procedural[:N]``, a rosbag2 recording (canonical /sim/camera/* topics) or a folder of
            Cityscapes-named frames.
        target: a folder of real images or a rosbag2 recording (``target_topic``).
        out: output directory.
        frames: source frames (default: N of ``procedural:N``, else 32).
        height, width: evaluation size (default: procedural 360x640, other sources as stored; the target
            frames are resized to it).
        target_frames: at most this many target frames.
        critics: trained critics (see the module docstring); None = train here.
        critic_steps, critic_batch, critic_channels, critic_lr, critic_crop: training of the critics here
            (random ``critic_crop`` (H, W) windows; None = whole frames).
        box_jitter: the box head scores jittered ground-truth proposals (centre shift up to ``box_jitter`` x
            size, sides x exp(+-box_jitter), seeded per frame, the same for both rows), so it has to find the
            object again; None = the critics' training jitter, 0 = exact boxes.
        temporal_alpha: also score the translated frames after :class:`~sim2real.evaluation.temporal.TemporalSmoother`
            with this alpha (row ``smoothed``); None = off.
        grid_frames: frames shown in grid.png.
        device, precision: for the translator (see ``Translator.from_checkpoint``); the critics run fp32.
        seed: procedural simulator seed and critic training seed.
    """

    model: Path
    source: str
    target: str
    out: Path
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    target_frames: int = 64
    target_topic: str = "/camera/image"
    critics: Path | None = None
    critic_steps: int = 300
    critic_batch: int = 4
    critic_channels: int = 16
    critic_lr: float = 1e-3
    critic_crop: tuple[int, int] | None = (128, 256)
    box_jitter: float | None = None
    temporal_alpha: float | None = None
    grid_frames: int = 4
    device: str = "auto"
    precision: str = "fp32"
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.height is None) != (self.width is None):
            raise ConfigError("give both --height and --width, or neither")
        for name in ("frames", "height", "width"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.target_frames < 2:
            raise ConfigError(f"target_frames must be >= 2 (KID needs two samples), got {self.target_frames}")
        if self.critic_steps < 0 or self.critic_batch < 1 or self.critic_channels < 1:
            raise ConfigError("critic_steps must be >= 0, critic_batch and critic_channels >= 1")
        if self.critic_crop is not None and min(self.critic_crop) < 8:
            raise ConfigError(f"critic_crop must be at least 8x8, got {self.critic_crop}")
        if self.temporal_alpha is not None and not 0.0 <= self.temporal_alpha <= 1.0:
            raise ConfigError(f"temporal_alpha must be in [0, 1], got {self.temporal_alpha}")
        if self.box_jitter is not None and not 0.0 <= self.box_jitter < 1.0:
            raise ConfigError(f"box_jitter must be in [0, 1), got {self.box_jitter}")


@dataclass
class SourceFrames:
    """Labelled source frames in order: rgb (T, 3, H, W) in [-1, 1], semantic / instance (T, H, W) int64."""

    rgb: Tensor
    semantic: Tensor
    instance: Tensor
    description: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.rgb.shape[0])


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
def _resize_sample(sample: dict[str, Tensor], size: tuple[int, int] | None) -> dict[str, Tensor]:
    """Resize a dataset sample to (H, W): rgb by area / bilinear, labels by nearest."""
    if size is None or tuple(sample["rgb"].shape[-2:]) == size:
        return sample
    shrink = size[0] < sample["rgb"].shape[-2]
    out = {"rgb": F.interpolate(sample["rgb"][None], size=size, mode="area" if shrink else "bilinear",
                                align_corners=None if shrink else False)[0].clamp(-1, 1)}
    for key in ("semantic", "instance"):
        if key in sample:
            out[key] = F.interpolate(sample[key][None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
    return out


def _is_bag(path: Path) -> bool:
    return path.suffix in _BAG_SUFFIXES or (path.is_dir() and (path / "metadata.yaml").is_file())


def _take(items: Iterator[dict[str, Tensor]], count: int) -> list[dict[str, Tensor]]:
    out = []
    for item in items:
        out.append(item)
        if len(out) == count:
            break
    return out


def load_source_frames(spec: str, frames: int | None = None, size: tuple[int, int] | None = None, seed: int = 0
                       ) -> SourceFrames:
    """Read source frames from ``procedural[:N]``, a rosbag2 recording or a Cityscapes-named folder.

    Procedural frames are consecutive frames 0..N-1 of one simulator run (a moving camera) rendered at
    ``size`` (default 360x640); other sources are resized to ``size`` when it is given.

    Raises:
        ConfigError: an unknown spec, a missing path or no frames.
    """
    from sim2real.data.datasets import BagSourceDataset, CityscapesSourceDataset, to_sample

    kind, _, count_text = spec.partition(":")
    if kind == "procedural":
        from sim_bridge.procedural import ProceduralSimulator, SimConfig

        try:
            count = frames or (int(count_text) if count_text else _DEFAULT_FRAMES)
        except ValueError as exc:
            raise ConfigError(f"source {spec!r}: expected procedural or procedural:N with an integer N") from exc
        height, width = size or _DEFAULT_SIZE
        sim = ProceduralSimulator(SimConfig(width=width, height=height, seed=seed))
        samples = [to_sample(f.rgb, f.semantic, f.instance) for f in (sim.frame(i) for i in range(count))]
        desc: dict[str, Any] = {"kind": "procedural", "seed": seed, "first_frame": 0}
    else:
        path = Path(spec)
        if not path.exists():
            raise ConfigError(f"source {spec!r} is neither 'procedural[:N]' nor an existing bag or folder")
        count = frames or _DEFAULT_FRAMES
        if _is_bag(path):
            samples = _take(iter(BagSourceDataset([path])), count)
            desc = {"kind": "bag", "path": str(path)}
        else:
            dataset = CityscapesSourceDataset(path)
            samples = [dataset[i] for i in range(min(count, len(dataset)))]
            desc = {"kind": "cityscapes_folder", "path": str(path)}
        samples = [_resize_sample(s, size) for s in samples]
    if not samples:
        raise ConfigError(f"source {spec!r} gave no frames")
    return SourceFrames(
        torch.stack([s["rgb"] for s in samples]), torch.stack([s["semantic"] for s in samples]),
        torch.stack([s["instance"] for s in samples]), desc | {"frames": len(samples)},
    )


def load_target_frames(spec: str, size: tuple[int, int], count: int, topic: str = "/camera/image") -> Tensor:
    """Real frames from an image folder (sorted) or a rosbag2 recording's ``topic``: -> (T, 3, H, W) in [-1, 1]."""
    from sim2real.data.datasets import BagTargetDataset, ImageFolderDataset

    path = Path(spec)
    if not path.exists():
        raise ConfigError(f"target {spec!r} does not exist (expected an image folder or a rosbag2 recording)")
    if _is_bag(path):
        samples = _take(iter(BagTargetDataset([path], [topic])), count)
    else:
        dataset = ImageFolderDataset([path])
        samples = [dataset[i] for i in range(min(count, len(dataset)))]
    if len(samples) < 2:
        raise ConfigError(f"target {spec!r} gave {len(samples)} frame(s); KID needs at least 2")
    return torch.stack([_resize_sample(s, size)["rgb"] for s in samples])


# --------------------------------------------------------------------------------------------------
# Critics
# --------------------------------------------------------------------------------------------------
def save_critics(aux: Any, path: Path, info: dict[str, Any]) -> Path:
    """Write an AuxNets' weights and config to ``path`` (safetensors; config + ``info`` in the metadata)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in aux.state_dict().items()}
    meta = {"format": _CRITICS_FORMAT, "aux_config": json.dumps(dataclasses.asdict(aux.cfg)),
            "info": json.dumps(info, sort_keys=True)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def _aux_from(cfg_dict: dict[str, Any], state: dict[str, Tensor]) -> Any:
    from sim2real.translator.aux_nets import AuxConfig, AuxNets

    aux = AuxNets(AuxConfig(**cfg_dict))
    aux.load_state_dict(state)
    return aux.eval()


def _read_critics_file(path: Path) -> tuple[Any, dict[str, Any]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != _CRITICS_FORMAT:
        raise CheckpointError(f"{path} is not a critics file written by sim2real-eval (format {meta.get('format')!r})")
    return _aux_from(json.loads(meta["aux_config"]), load_file(str(path))), json.loads(meta.get("info", "{}"))


def load_critics(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load trained critics -> (AuxNets in eval mode, description).

    ``path``: a training checkpoint directory (``state.json`` + ``state.safetensors``; the ``aux`` model and
    the ``aux`` block of its config), a directory of such checkpoints (the latest is used), or a
    ``critics.safetensors`` written by :func:`save_critics` (or a directory holding one).
    """
    from sim2real.training.state_io import STATE_JSON, list_checkpoints, read_state

    path = Path(path)
    if path.is_file():
        aux, info = _read_critics_file(path)
        return aux, {"origin": str(path), **info}
    if (path / CRITICS_FILE).is_file():
        return load_critics(path / CRITICS_FILE)
    if not (path / STATE_JSON).is_file():
        steps = list_checkpoints(path) or list_checkpoints(path / "checkpoints")
        if not steps:
            raise CheckpointError(f"--critics {path}: no {CRITICS_FILE}, {STATE_JSON} or step_* checkpoints there")
        path = steps[-1]
    state = read_state(path)
    models = state.get("models", {})
    if "aux" not in models:
        raise CheckpointError(f"training checkpoint {path} has no 'aux' model (has {sorted(models)})")
    cfg = json.loads(state["config"]).get("aux", {}) if "config" in state else {}
    return _aux_from(cfg, models["aux"]), {"origin": str(path), "step": int(state.get("step", -1))}


def train_critics(frames: SourceFrames, steps: int, *, batch: int = 4, channels: int = 32, lr: float = 1e-3,
                  crop: tuple[int, int] | None = (128, 256), seed: int = 0) -> tuple[Any, dict[str, float]]:
    """Train a BoxHead + Segmenter on the source frames' ground truth with ``aux_losses`` (Adam).

    Each step draws ``batch`` random frames and one random ``crop`` (H, W) window of them (seeded; None or a
    crop no smaller than the frame = whole frames). Both critics are fully convolutional / RoI-based, so
    crop-trained critics apply to whole frames; crops keep a CPU step short. Returns (AuxNets in eval mode,
    last-step losses).
    """
    from sim2real.translator.aux_nets import AuxConfig, AuxNets
    from sim2real.translator.objective import SourceBatch, aux_losses

    torch.manual_seed(seed)
    aux = AuxNets(AuxConfig(box_channels=channels, seg_channels=channels)).train()
    opt = torch.optim.Adam(aux.parameters(), lr=lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed)
    losses: dict[str, float] = {}
    for _ in range(steps):
        idx = torch.randint(len(frames), (min(batch, len(frames)),), generator=gen)
        y, x, ch, cw = _crop_window(tuple(frames.rgb.shape[-2:]), crop, gen)
        win = (idx, slice(y, y + ch), slice(x, x + cw))
        out = aux_losses(aux, SourceBatch(frames.rgb[idx][..., win[1], win[2]], frames.semantic[win],
                                          frames.instance[win]), generator=gen)
        opt.zero_grad(set_to_none=True)
        out["total"].backward()
        opt.step()
        losses = {k: float(v.detach()) for k, v in out.items()}
    return aux.eval(), losses


def _crop_window(size: tuple[int, ...], crop: tuple[int, int] | None, gen: torch.Generator
                 ) -> tuple[int, int, int, int]:
    """A random (y, x, h, w) window of ``crop`` inside ``size`` (H, W); the whole frame without a crop."""
    H, W = int(size[0]), int(size[1])
    if crop is None:
        return 0, 0, H, W
    h, w = min(crop[0], H), min(crop[1], W)
    y = int(torch.randint(H - h + 1, (1,), generator=gen))
    x = int(torch.randint(W - w + 1, (1,), generator=gen))
    return y, x, h, w


def segmenter_features(segmenter: Any, rgb: Tensor) -> Tensor:
    """Pooled context features of a :class:`Segmenter`: (B, 3, H, W) -> (B, 2 * 4c) (channel means and stds)."""
    high = segmenter.stem(rgb)
    low = segmenter.down(high)
    low = low + segmenter.context(low)
    return torch.cat((low.mean((2, 3)), low.std((2, 3))), 1)


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------
@dataclass
class _RowTallies:
    """Everything accumulated for one row (source reference or translated)."""

    boxes: BoxTallies = field(default_factory=lambda: BoxTallies(ClassTally.zeros(), ClassTally.zeros()))
    flips: ClassTally = field(default_factory=ClassTally.zeros)
    ssim: ClassTally = field(default_factory=ClassTally.zeros)
    edge: ClassTally = field(default_factory=ClassTally.zeros)
    ssim_frame: ClassTally = field(default_factory=ClassTally.zeros)
    edge_frame: ClassTally = field(default_factory=ClassTally.zeros)
    flicker: FlickerTally = field(default_factory=FlickerTally)
    features: list[Tensor] = field(default_factory=list)
    critic_features: list[Tensor] = field(default_factory=list)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@torch.no_grad()
def _score_frame(row: _RowTallies, aux: Any, image: Tensor, reference: Tensor, *, semantic: Tensor,
                 instance: Tensor, jitter: float, seed: int) -> None:
    """Add one frame (B = 1) to ``row``: ``image`` scored against the source ``reference`` and labels.

    The box head refines ground-truth boxes jittered by ``jitter`` with a generator seeded by ``seed``.
    """
    from sim2real.translator.aux_nets import instance_classes, jitter_boxes
    from sim2real.translator.boxes import instance_boxes

    gt = instance_boxes(instance, aux.cfg.max_instances)
    classes = instance_classes(semantic, instance, gt.ids, gt.valid, aux.cfg.num_classes)
    proposals = gt.boxes
    if jitter > 0:
        proposals = jitter_boxes(gt.boxes, jitter, tuple(image.shape[-2:]), torch.Generator().manual_seed(seed))
    pred, _ = aux.box_head(image, proposals)
    row.boxes = row.boxes + box_tally(box_iou(pred, gt.boxes), gt.valid, classes)
    row.flips = row.flips + flip_tally(aux.segmenter(image).argmax(1), semantic)
    ssim, edge = ssim_map(reference, image), edge_agreement_map(reference, image)
    things = instance > 0
    row.ssim = row.ssim + masked_class_tally(ssim, things, semantic)
    row.edge = row.edge + masked_class_tally(edge, things, semantic)
    labelled = semantic != IGNORE_ID
    row.ssim_frame = row.ssim_frame + masked_class_tally(ssim, labelled, semantic)
    row.edge_frame = row.edge_frame + masked_class_tally(edge, labelled, semantic)
    row.features.append(handcrafted_features(image))
    row.critic_features.append(segmenter_features(aux.segmenter, image))


def _summary(row: _RowTallies, target_feats: Tensor, target_critic: Tensor) -> dict[str, float | None]:
    k, k_std = kid(torch.cat(row.features), target_feats)
    kc, _ = kid(torch.cat(row.critic_features), target_critic)
    return {
        "box_recall50": _finite(row.boxes.recall.overall()), "box_miou": _finite(row.boxes.iou.overall()),
        "flip_rate": _finite(row.flips.overall()),
        "kid": _finite(k), "kid_std": _finite(k_std), "kid_critic": _finite(kc),
        "static_flicker": _finite(row.flicker.static_flicker), "change_ratio": _finite(row.flicker.change_ratio),
        "ssim_instances": _finite(row.ssim.overall()), "edge_instances": _finite(row.edge.overall()),
        "ssim_frame": _finite(row.ssim_frame.overall()), "edge_frame": _finite(row.edge_frame.overall()),
    }


def _per_class(row: _RowTallies) -> dict[str, dict[str, float | None]]:
    cols = {"flip_rate": row.flips, "box_recall50": row.boxes.recall, "box_miou": row.boxes.iou,
            "ssim_instances": row.ssim, "edge_instances": row.edge}
    values = {k: t.per_class() for k, t in cols.items()}
    return {CLASS_NAMES[c]: {k: _finite(v[c]) for k, v in values.items()} for c in range(NUM_CLASSES)}


#: for each summary key: +1 when higher is better, -1 when lower is better, 0 when neither.
_DIRECTION: Final = {"box_recall50": 1, "box_miou": 1, "flip_rate": -1, "kid": -1, "kid_std": 0, "kid_critic": -1,
                     "static_flicker": -1, "change_ratio": 0, "ssim_instances": 1, "edge_instances": 1,
                     "ssim_frame": 1, "edge_frame": 1}


def evaluate(cfg: EvalConfig, log: Any = print) -> dict[str, Any]:
    """Run the whole evaluation of ``cfg``; writes report.json / report.md / grid.png and returns the report."""
    from sim2real.translator.inference import Translator

    start = time.perf_counter()
    size = (cfg.height, cfg.width) if cfg.height is not None and cfg.width is not None else None
    source = load_source_frames(cfg.source, cfg.frames, size, cfg.seed)
    if len(source) < 2:
        raise ConfigError(f"source {cfg.source!r} gave {len(source)} frame; the evaluation needs at least 2 "
                          "(flicker compares consecutive frames, KID needs two samples)")
    H, W = source.rgb.shape[-2:]
    target = load_target_frames(cfg.target, (int(H), int(W)), cfg.target_frames, cfg.target_topic)
    log(f"sim2real-eval: {len(source)} source frames {W}x{H} ({source.description['kind']}), "
        f"{len(target)} target frames")
    translator = Translator.from_checkpoint(cfg.model, device=cfg.device, precision=cfg.precision)

    cfg.out.mkdir(parents=True, exist_ok=True)
    aux, critics_info = _critics(cfg, source, log)

    translated = []
    translator.warmup(int(H), int(W))
    t0 = time.perf_counter()
    for i in range(len(source)):
        y = translator.translate_normalized(source.rgb[i : i + 1], source.semantic[i : i + 1],
                                            source.instance[i : i + 1])
        translated.append(y.cpu())
    ms_per_frame = 1000.0 * (time.perf_counter() - t0) / len(source)
    fake = torch.cat(translated)

    jitter = aux.cfg.box_jitter if cfg.box_jitter is None else cfg.box_jitter
    outputs = {"source": source.rgb, "translated": fake}
    if cfg.temporal_alpha is not None:
        from sim2real.evaluation.temporal import TemporalSmoother

        smoother = TemporalSmoother(alpha=cfg.temporal_alpha)
        outputs["smoothed"] = torch.cat([
            smoother(source.rgb[i : i + 1], source.semantic[i : i + 1], source.instance[i : i + 1], fake[i : i + 1])
            for i in range(len(source))])
    rows = {name: _RowTallies() for name in outputs}
    for i in range(len(source)):
        sl = slice(i, i + 1)
        for name, images in outputs.items():
            row = rows[name]
            _score_frame(row, aux, images[sl], source.rgb[sl], semantic=source.semantic[sl],
                         instance=source.instance[sl], jitter=jitter, seed=cfg.seed * 1_000_003 + i)
            if i > 0:
                prev = slice(i - 1, i)
                static = static_mask(source.rgb[prev], source.rgb[sl], semantic_prev=source.semantic[prev],
                                     semantic=source.semantic[sl], instance_prev=source.instance[prev],
                                     instance=source.instance[sl])
                row.flicker = row.flicker + temporal_flicker(images[prev], images[sl], source.rgb[prev],
                                                             source.rgb[sl], static)
    with torch.no_grad():
        target_feats = handcrafted_features(target)
        target_critic = torch.cat([segmenter_features(aux.segmenter, target[i : i + 1]) for i in range(len(target))])
    summary = {name: _summary(row, target_feats, target_critic) for name, row in rows.items()}
    deltas = {name: {k: (None if summary["source"][k] is None or summary[name][k] is None
                         else summary[name][k] - summary["source"][k]) for k in summary["source"]}
              for name in rows if name != "source"}
    per_class_rows = {name: _per_class(row) for name, row in rows.items()}
    pixels = rows["source"].flips.count
    boxes = rows["source"].boxes.recall.count
    per_class = {
        CLASS_NAMES[c]: {"pixels": int(pixels[c]), "boxes": int(boxes[c]),
                         **{name: per_class_rows[name][CLASS_NAMES[c]] for name in rows}}
        for c in range(NUM_CLASSES) if pixels[c] > 0 or boxes[c] > 0
    }
    report = {
        "meta": {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()},
            "model_name": translator.model_name, "device": str(translator.device), "precision": translator.precision,
            "source": source.description, "size": [int(H), int(W)], "target_frames": len(target),
            "critics": critics_info, "box_proposal_jitter": jitter, "feature_extractor": FEATURE_EXTRACTOR,
            "kid_note": "KID on hand-crafted features (kid) and on the critic segmenter's pooled features "
                        "(kid_critic); neither uses Inception weights, so values are NOT comparable with "
                        "published FID/KID, only between runs of this tool with the same extractor / critics.",
            "translate_ms_per_frame": ms_per_frame, "torch": torch.__version__,
        },
        "summary": summary,
        "delta": deltas["translated"],
        **({"delta_smoothed": deltas["smoothed"]} if "smoothed" in deltas else {}),
        "direction": dict(_DIRECTION),
        "small_classes": {CLASS_NAMES[c]: per_class.get(CLASS_NAMES[c]) for c in REPORTED_SMALL_CLASSES},
        "per_class": per_class,
    }
    _write_grid(cfg.out / "grid.png", source, fake, cfg.grid_frames)
    report["meta"]["wall_s"] = time.perf_counter() - start
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    (cfg.out / "report.md").write_text(render_markdown(report))
    log(f"sim2real-eval: wrote {cfg.out / 'report.json'}, report.md, grid.png in {report['meta']['wall_s']:.1f} s")
    return report


def _critics(cfg: EvalConfig, source: SourceFrames, log: Any) -> tuple[Any, dict[str, Any]]:
    """Load ``cfg.critics``, reuse a matching cached ``<out>/critics.safetensors``, or train and cache."""
    if cfg.critics is not None:
        aux, info = load_critics(cfg.critics)
        log(f"sim2real-eval: critics from {info['origin']}")
        return aux, info
    key = {"source": cfg.source, "frames": len(source), "size": list(source.rgb.shape[-2:]), "seed": cfg.seed,
           "steps": cfg.critic_steps, "batch": cfg.critic_batch, "channels": cfg.critic_channels, "lr": cfg.critic_lr,
           "crop": list(cfg.critic_crop) if cfg.critic_crop else None}
    cache = cfg.out / CRITICS_FILE
    if cache.is_file():
        try:
            aux, info = _read_critics_file(cache)
        except (CheckpointError, ValueError, KeyError, RuntimeError, OSError):
            info = {}
        if info.get("key") == key:
            log(f"sim2real-eval: critics from cache {cache}")
            return aux, {"origin": str(cache), **info}
    t0 = time.perf_counter()
    aux, losses = train_critics(source, cfg.critic_steps, batch=cfg.critic_batch, channels=cfg.critic_channels,
                                lr=cfg.critic_lr, crop=cfg.critic_crop, seed=cfg.seed)
    info = {"key": key, "final_losses": losses, "train_s": time.perf_counter() - t0}
    save_critics(aux, cache, info)
    log(f"sim2real-eval: trained critics for {cfg.critic_steps} steps in {info['train_s']:.1f} s -> {cache}")
    return aux, {"origin": "trained", "cache": str(cache), **info}


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------
def _to_uint8(rgb: Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((rgb.float() + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _write_grid(path: Path, source: SourceFrames, fake: Tensor, count: int) -> None:
    """Rows of evenly spaced frames: source | translated | translated with the label overlay."""
    idx = np.unique(np.linspace(0, len(source) - 1, max(1, min(count, len(source)))).round().astype(int))
    rows = []
    for i in idx:
        src, out = _to_uint8(source.rgb[i]), _to_uint8(fake[i])
        sem = source.semantic[i].numpy().astype(np.uint8)
        rows.append(np.concatenate((src, out, overlay(out, sem, 0.5)), axis=1))
    grid = np.concatenate(rows, axis=0)
    if not cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def _fmt(v: float | None, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


_SUMMARY_COLUMNS: Final = (
    ("box_recall50", "box recall@0.5 ↑"), ("box_miou", "box mIoU ↑"), ("flip_rate", "flip rate ↓"),
    ("kid", "KID (hand-crafted) ↓"), ("kid_critic", "KID (critic) ↓"), ("static_flicker", "static flicker ↓"),
    ("change_ratio", "Δout/Δin"), ("ssim_instances", "SSIM inst ↑"), ("edge_instances", "edge inst ↑"),
    ("ssim_frame", "SSIM frame ↑"), ("edge_frame", "edge frame ↑"),
)
_CLASS_COLUMNS: Final = (("flip_rate", "flip"), ("box_recall50", "recall@0.5"), ("box_miou", "mIoU"),
                         ("ssim_instances", "SSIM inst"), ("edge_instances", "edge inst"))


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: summary (source reference, translated, delta), small classes, per class."""
    meta = report["meta"]
    h, w = meta["size"]
    lines = [
        "# sim2real evaluation", "",
        f"- model: `{meta['config']['model']}` ({meta['model_name']}, {meta['device']}, {meta['precision']}), "
        f"{meta['translate_ms_per_frame']:.1f} ms / frame",
        f"- source: `{meta['config']['source']}` — {meta['source']['frames']} frames at {w}x{h}; "
        f"target: `{meta['config']['target']}` — {meta['target_frames']} frames",
        f"- critics: {meta['critics'].get('origin')}",
        f"- realism features: `{meta['feature_extractor']}`. {meta['kid_note']}",
        "- the **source** row scores the simulator frames themselves (critics' own error; KID of sim vs real); "
        "flicker = mean |Δoutput| (8-bit levels) where the input did not change between consecutive frames.",
        "", "## Summary", "",
        "| row | " + " | ".join(title for _, title in _SUMMARY_COLUMNS) + " |",
        "|---|" + "---|" * len(_SUMMARY_COLUMNS),
    ]
    for name, row in report["summary"].items():
        label = f"smoothed (TemporalSmoother alpha {meta['config']['temporal_alpha']})" if name == "smoothed" else name
        lines.append(f"| {label} | " + " | ".join(_fmt(row[k]) for k, _ in _SUMMARY_COLUMNS) + " |")
    lines.append("| Δ (translated − source) | " + " | ".join(_fmt(report["delta"][k]) for k, _ in _SUMMARY_COLUMNS)
                 + " |")

    def class_table(classes: dict[str, Any]) -> list[str]:
        head = ["| class | pixels | boxes | " + " | ".join(f"{t} src | {t} trans" for _, t in _CLASS_COLUMNS) + " |",
                "|---|---|---|" + "---|---|" * len(_CLASS_COLUMNS)]
        body = []
        for cname, entry in classes.items():
            if entry is None:
                body.append(f"| {cname} | 0 | 0 | " + " | ".join("– | –" for _ in _CLASS_COLUMNS) + " |")
                continue
            cells = " | ".join(f"{_fmt(entry['source'][k])} | {_fmt(entry['translated'][k])}"
                               for k, _ in _CLASS_COLUMNS)
            body.append(f"| {cname} | {entry['pixels']} | {entry['boxes']} | {cells} |")
        return head + body

    lines += ["", "## Small classes (traffic light, traffic sign, pole, person)", ""]
    lines += class_table(report["small_classes"])
    lines += ["", "## Per class", ""]
    lines += class_table(report["per_class"])
    lines += ["", "![source | translated | label overlay](grid.png)", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``sim2real-eval`` argument parser."""
    p = argparse.ArgumentParser(prog="sim2real-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="translator checkpoint (.safetensors)")
    p.add_argument("--source", required=True, help="procedural[:N] | rosbag2 recording | Cityscapes-named folder")
    p.add_argument("--target", required=True, help="folder of real images or rosbag2 recording")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--frames", type=int, help="number of source frames (default N of procedural:N, else 32)")
    p.add_argument("--height", type=int, help="evaluation height (default: procedural 360, else as stored)")
    p.add_argument("--width", type=int, help="evaluation width (default: procedural 640, else as stored)")
    p.add_argument("--target-frames", type=int, default=64, help="at most this many target frames (default 64)")
    p.add_argument("--target-topic", default="/camera/image", help="image topic when --target is a bag")
    p.add_argument("--critics", type=Path, help="training checkpoint dir (step_N), a run's checkpoints dir, or "
                                                 "a critics.safetensors; default: train on the source frames")
    p.add_argument("--critic-steps", type=int, default=300, help="training steps for the critics (default 300)")
    p.add_argument("--critic-batch", type=int, default=4, help="frames per critic step (default 4)")
    p.add_argument("--critic-channels", type=int, default=16, help="width of the critics trained here (default 16)")
    p.add_argument("--critic-crop", default="128x256",
                   help="HxW random training crops for the critics trained here, or 'none' (default 128x256)")
    p.add_argument("--box-jitter", type=float,
                   help="jitter of the ground-truth proposals the box head refines (default: the critics' own)")
    p.add_argument("--temporal-alpha", type=float,
                   help="also score a 'smoothed' row: the translated frames through TemporalSmoother(alpha)")
    p.add_argument("--grid-frames", type=int, default=4, help="frames in grid.png (default 4)")
    p.add_argument("--device", default="auto", help="translator device: auto | cpu | cuda[:N]")
    p.add_argument("--precision", default="fp32", help="translator precision: auto | fp32 | fp16 | bf16")
    p.add_argument("--seed", type=int, default=0, help="simulator and critic-training seed")
    return p


def _parse_size(text: str) -> tuple[int, int] | None:
    """'HxW' -> (H, W); 'none' -> None."""
    if text.lower() == "none":
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ConfigError(f"expected a size HxW (e.g. 128x256) or 'none', got {text!r}") from exc
    return h, w


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``sim2real-eval``); returns the exit code (2 on a sim2real error)."""
    args = build_parser().parse_args(argv)
    try:
        cfg = EvalConfig(
            model=args.model, source=args.source, target=args.target, out=args.out, frames=args.frames,
            height=args.height, width=args.width, target_frames=args.target_frames, target_topic=args.target_topic,
            critics=args.critics, critic_steps=args.critic_steps, critic_batch=args.critic_batch,
            critic_channels=args.critic_channels, critic_crop=_parse_size(args.critic_crop),
            box_jitter=args.box_jitter, temporal_alpha=args.temporal_alpha, grid_frames=args.grid_frames,
            device=args.device, precision=args.precision, seed=args.seed,
        )
        evaluate(cfg)
    except Sim2RealError as exc:
        print(f"sim2real-eval: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
