"""Live label-preservation monitor: per-frame judge scores, a sliding window of them, thresholds (no rclpy).

:mod:`sim2real.nodes.monitor_node` feeds translated frames (image + the republished labels) through the
evaluation judge (:mod:`sim2real.evaluation.judge`: a segmenter trained on real frames, never a training loss)
and keeps the last ``window`` evaluated frames here, scored as ``sim2real-eval`` scores them
(:mod:`sim2real.evaluation.judging`, the same code):

* **judge mIoU** — the confusion of the judge's classes with the frame's labels mapped to CamVid's classes,
  summed over the window; mIoU over the classes that occur in the labels;
* **instance recall** — share of the labels' car / pedestrian / bicyclist instances (>= 64 px) of which at
  least half the pixels are judged as their class.

Both are kept per class and summed over the window; the reported classes (car, pedestrian, bicyclist, pole,
sign/symbol) get their IoU apart. :class:`Thresholds` turns a :class:`WindowSummary` into warnings ("judge
mIoU 0.12 < min_judge_miou 0.20 (by 0.08)"); :func:`build_report` gives the diagnostics level / message /
key-values and the JSON document the node publishes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import torch

from sim2real.core.labels import CAMVID_CLASS_NAMES, CAMVID_NUM_CLASSES
from sim2real.evaluation.judge import JudgeNet
from sim2real.evaluation.judge_training import confusion_matrix, iou_from_confusion
from sim2real.evaluation.judging import ObjectTally, camvid_labels, judge_frames, object_tally
from sim2real.evaluation.report import REPORTED_CLASSES
from sim2real.runtime.node_stats import DIAG_OK, DIAG_WARN

__all__ = [
    "DIAGNOSTIC_NAME",
    "FrameScore",
    "MonitorCounters",
    "MonitorReport",
    "MonitorWindow",
    "Thresholds",
    "WindowSummary",
    "build_report",
    "score_frame",
]

#: ``diagnostic_msgs/DiagnosticStatus.name`` of the monitor.
DIAGNOSTIC_NAME: Final = "sim2real monitor"
_LEVEL_NAMES: Final = {DIAG_OK: "OK", DIAG_WARN: "WARN"}


@dataclass(frozen=True)
class FrameScore:
    """Judge scores of one frame: ``confusion`` (K, K) int64 (rows = labels, CamVid classes), ``objects``."""

    confusion: np.ndarray
    objects: ObjectTally = field(default_factory=ObjectTally)
    stamp_ns: int = 0


@torch.no_grad()
def score_frame(judge: JudgeNet, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray, *,
                device: torch.device | str = "cpu", stamp_ns: int = 0) -> FrameScore:
    """Score one translated frame with the judge.

    Args:
        judge: the evaluation judge in eval mode, on ``device``.
        rgb: (H, W, 3) uint8 translated image.
        semantic: (H, W) integer train ids (255 = ignore; classes without a CamVid counterpart are not counted).
        instance: (H, W) integer instance ids (0 = none).
        device: where the judge is.
        stamp_ns: the frame's header stamp, kept in the score.
    """
    image = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).to(device)  # msg views are read-only
    image = image.permute(2, 0, 1)[None].float().div_(127.5).sub_(1.0)  # (1, 3, H, W) in [-1, 1]
    sem = torch.from_numpy(np.asarray(semantic).astype(np.int64))[None]
    inst = torch.from_numpy(np.asarray(instance).astype(np.int64))[None]
    pred = judge_frames(judge, image)[0].cpu()
    return FrameScore(confusion=confusion_matrix(pred, camvid_labels(sem), CAMVID_NUM_CLASSES),
                      objects=object_tally(pred[0], sem[0], inst[0]), stamp_ns=int(stamp_ns))


@dataclass(frozen=True)
class WindowSummary:
    """The window's totals: summed confusion and object tallies; ``frames`` held (of ``size``); the stamps of
    its oldest / newest frame."""

    frames: int
    size: int
    confusion: np.ndarray
    objects: ObjectTally
    first_stamp_ns: int | None = None
    last_stamp_ns: int | None = None

    def iou(self) -> np.ndarray:
        """(K,) judge IoU per CamVid class, NaN for classes absent from the labels."""
        return iou_from_confusion(self.confusion)

    @property
    def judge_miou(self) -> float:
        """Judge mIoU over the window (NaN without labelled pixels)."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan

    @property
    def instance_recall(self) -> float:
        """Instance-weighted recall over the window (NaN without instances)."""
        return self.objects.instance_recall()

    @property
    def instances(self) -> int:
        """Instances scored in the window."""
        return int(self.objects.instances.sum())

    @property
    def labelled_pixels(self) -> int:
        """Labelled pixels scored in the window."""
        return int(self.confusion.sum())

    def reported_classes(self) -> dict[str, dict[str, float | int | None]]:
        """``{class: {iou, pixels}}`` for the reported classes (car, pedestrian, bicyclist, pole, sign/symbol)."""
        iou, pixels = self.iou(), self.confusion.sum(1)
        return {name: {"iou": _finite(iou[c]), "pixels": int(pixels[c])}
                for name in REPORTED_CLASSES for c in [CAMVID_CLASS_NAMES.index(name)]}


class MonitorWindow:
    """The last ``size`` :class:`FrameScore` s (oldest dropped first) and their sums. Not thread-safe."""

    def __init__(self, size: int) -> None:
        """A window of at most ``size`` (>= 1) frames."""
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self._size = int(size)
        self._scores: deque[FrameScore] = deque(maxlen=self._size)

    @property
    def size(self) -> int:
        """Largest number of frames kept."""
        return self._size

    def __len__(self) -> int:
        """Frames currently in the window."""
        return len(self._scores)

    def add(self, score: FrameScore) -> None:
        """Append one frame's scores (the oldest falls out once the window is full)."""
        if score.confusion.shape != (CAMVID_NUM_CLASSES, CAMVID_NUM_CLASSES):
            raise ValueError(f"FrameScore.confusion must be {CAMVID_NUM_CLASSES}x{CAMVID_NUM_CLASSES}, "
                             f"got {score.confusion.shape}")
        self._scores.append(score)

    def clear(self) -> None:
        """Forget every frame."""
        self._scores.clear()

    def summary(self) -> WindowSummary:
        """Sums over the frames in the window (recomputed from the frames: no drift from running sums)."""
        confusion = np.zeros((CAMVID_NUM_CLASSES, CAMVID_NUM_CLASSES), np.int64)
        objects = ObjectTally()
        for s in self._scores:
            confusion, objects = confusion + s.confusion, objects + s.objects
        first = self._scores[0].stamp_ns if self._scores else None
        last = self._scores[-1].stamp_ns if self._scores else None
        return WindowSummary(len(self._scores), self._size, confusion, objects, first, last)


@dataclass(frozen=True)
class Thresholds:
    """When the monitor warns: judge mIoU below ``min_judge_miou`` or instance recall below
    ``min_instance_recall``, judged only once the window holds at least ``min_frames`` frames (a metric with
    nothing counted, e.g. no instances in the window, is not judged). Set them from what ``sim2real-eval``
    reports for your simulator's untranslated frames: a translation that breaks labels drops below the source."""

    min_judge_miou: float = 0.1
    min_instance_recall: float = 0.1
    min_frames: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_judge_miou <= 1.0:
            raise ValueError(f"min_judge_miou must be in [0, 1], got {self.min_judge_miou}")
        if not 0.0 <= self.min_instance_recall <= 1.0:
            raise ValueError(f"min_instance_recall must be in [0, 1], got {self.min_instance_recall}")
        if self.min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {self.min_frames}")

    def violations(self, summary: WindowSummary) -> list[str]:
        """One message per crossed threshold, saying which and by how much (empty: all fine / not judged)."""
        if summary.frames < self.min_frames:
            return []
        out = []
        miou, recall = summary.judge_miou, summary.instance_recall
        if math.isfinite(miou) and miou < self.min_judge_miou:
            out.append(f"judge mIoU {miou:.3f} < min_judge_miou {self.min_judge_miou:.3f} "
                       f"(by {self.min_judge_miou - miou:.3f})")
        if math.isfinite(recall) and recall < self.min_instance_recall:
            out.append(f"instance recall {recall:.3f} < min_instance_recall {self.min_instance_recall:.3f} "
                       f"(by {self.min_instance_recall - recall:.3f})")
        return out


@dataclass(frozen=True)
class MonitorCounters:
    """Frame accounting of the node: synchronised sets received, evaluated, skipped (superseded before the
    evaluator was free) and malformed; ``sets == evaluated + skipped + bad + pending`` (pending <= 1).
    ``unmatched``: messages the stamp synchroniser dropped (no partner with the same stamp, queue overflow,
    duplicate stamp), i.e. never part of a set."""

    sets: int = 0
    evaluated: int = 0
    skipped: int = 0
    bad: int = 0
    unmatched: int = 0


@dataclass(frozen=True)
class MonitorReport:
    """What the node publishes for one window: diagnostics ``level`` / ``message`` / ``values`` and the
    same numbers as a JSON-serialisable ``document``."""

    level: int
    message: str
    warnings: tuple[str, ...]
    values: tuple[tuple[str, str], ...]
    document: dict[str, Any]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _text(v: float | int | str | None) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def build_report(summary: WindowSummary, thresholds: Thresholds, counters: MonitorCounters,
                 info: dict[str, Any] | None = None) -> MonitorReport:
    """Diagnostics content and JSON document of one window.

    Level WARN when :meth:`Thresholds.violations` is non-empty (message: the violations joined), else OK
    (message: "ok", or "waiting for frames (n/min)" before ``min_frames`` frames were evaluated).
    Diagnostic keys: ``judge_miou``, ``instance_recall``, ``instances``, ``labelled_pixels``, ``iou.<class>``
    for the reported classes, ``frames_in_window``, ``window``, ``evaluated``, ``skipped``, ``sets_received``,
    ``bad_messages``, ``unmatched_messages``, ``min_judge_miou``, ``min_instance_recall``, then ``info``. NaN
    (nothing counted) is ``n/a`` there and ``null`` in the document.
    """
    warnings = tuple(thresholds.violations(summary))
    level = DIAG_WARN if warnings else DIAG_OK
    if warnings:
        message = "; ".join(warnings)
    elif summary.frames < thresholds.min_frames:
        message = f"waiting for frames ({summary.frames}/{thresholds.min_frames} evaluated)"
    else:
        message = "ok"
    classes = summary.reported_classes()
    miou, recall = _finite(summary.judge_miou), _finite(summary.instance_recall)
    document: dict[str, Any] = {
        "level": _LEVEL_NAMES[level], "message": message, "warnings": list(warnings),
        "judge_miou": miou, "labelled_pixels": summary.labelled_pixels,
        "instance_recall": recall, "instances": summary.instances,
        "classes": classes,
        "frames_in_window": summary.frames, "window": summary.size,
        "first_stamp_ns": summary.first_stamp_ns, "last_stamp_ns": summary.last_stamp_ns,
        "evaluated": counters.evaluated, "skipped": counters.skipped, "sets_received": counters.sets,
        "bad_messages": counters.bad, "unmatched_messages": counters.unmatched,
        "thresholds": {"min_judge_miou": thresholds.min_judge_miou,
                       "min_instance_recall": thresholds.min_instance_recall, "min_frames": thresholds.min_frames},
        **(info or {}),
    }
    values: list[tuple[str, str]] = [
        ("judge_miou", _text(miou)), ("instance_recall", _text(recall)),
        ("instances", _text(summary.instances)), ("labelled_pixels", _text(summary.labelled_pixels)),
    ]
    values += [(f"iou.{name}", _text(entry["iou"])) for name, entry in classes.items()]
    values += [
        ("frames_in_window", _text(summary.frames)), ("window", _text(summary.size)),
        ("evaluated", _text(counters.evaluated)), ("skipped", _text(counters.skipped)),
        ("sets_received", _text(counters.sets)), ("bad_messages", _text(counters.bad)),
        ("unmatched_messages", _text(counters.unmatched)),
        ("min_judge_miou", _text(thresholds.min_judge_miou)),
        ("min_instance_recall", _text(thresholds.min_instance_recall)),
    ]
    values += [(str(k), _text(v)) for k, v in (info or {}).items()]
    return MonitorReport(level, message, warnings, tuple(values), document)
