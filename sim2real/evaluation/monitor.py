"""Live label-preservation monitor: per-frame critic scores, a sliding window of them, thresholds (no rclpy).

:mod:`sim2real.nodes.monitor_node` feeds translated frames (image + the republished labels) through the
evaluation critics (:func:`sim2real.evaluation.evaluate.load_critics`) and keeps the last ``window``
evaluated frames here:

* **box recall@0.5** — the critics' box head refines the ground-truth instance boxes
  (:func:`~sim2real.translator.boxes.instance_boxes`), jittered as ``sim2real-eval`` does
  (:func:`~sim2real.translator.aux_nets.jitter_boxes`, amount = the critics' training jitter unless given,
  generator seeded by the frame's stamp, so a frame always gets the same proposals); a box counts as
  recalled when the refined box has IoU >= 0.5 with the ground truth (:func:`~sim2real.evaluation.metrics.box_tally`);
* **semantic flip rate** — share of labelled pixels (train ids 0..18; 255 excluded) whose segmenter argmax
  differs from the label (:func:`~sim2real.evaluation.metrics.flip_tally`).

Both are kept per class (:class:`~sim2real.evaluation.metrics.ClassTally`) and summed over the window, so the
overall numbers are box- / pixel-weighted over the window, and the small classes
(:data:`~sim2real.evaluation.metrics.REPORTED_SMALL_CLASSES`: traffic light, traffic sign, pole, person) are reported
apart. :class:`Thresholds` turns a :class:`WindowSummary` into warnings ("flip rate 0.41 > max_flip_rate
0.20 (by 0.21)"); :func:`build_report` gives the diagnostics level / message / key-values and the JSON
document the node publishes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import torch

from sim2real.core.labels import CLASS_NAMES, NUM_CLASSES
from sim2real.evaluation.metrics import REPORTED_SMALL_CLASSES, ClassTally, box_iou, box_tally, flip_tally
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
    """Critic scores of one frame: per-class box hits / boxes and flipped / labelled pixels.

    Attributes:
        recall: per class, ``total`` = boxes recalled at IoU 0.5, ``count`` = ground-truth boxes scored.
        flips: per class, ``total`` = flipped pixels, ``count`` = labelled pixels.
        stamp_ns: header stamp of the frame.
    """

    recall: ClassTally
    flips: ClassTally
    stamp_ns: int = 0


@torch.no_grad()
def score_frame(aux: Any, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray, *, jitter: float,
                seed: int, device: torch.device | str = "cpu", stamp_ns: int = 0) -> FrameScore:
    """Score one frame with the critics (an :class:`~sim2real.translator.aux_nets.AuxNets` in eval mode).

    Args:
        aux: the critics (``box_head``, ``segmenter``, ``cfg.max_instances`` / ``cfg.num_classes``).
        rgb: (H, W, 3) uint8 translated image.
        semantic: (H, W) integer train ids (255 = ignore; ids outside 0..K-1 are not counted).
        instance: (H, W) integer instance ids (0 = none).
        jitter: proposal jitter (centre shift up to jitter x size, sides x exp(+-jitter)); 0 = exact boxes.
        seed: seeds the proposal jitter (use the frame's stamp: the same frame gets the same proposals).
        device: where the critics are.
        stamp_ns: the frame's header stamp, kept in the score.
    """
    from sim2real.translator.aux_nets import instance_classes, jitter_boxes
    from sim2real.translator.boxes import instance_boxes

    image = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).to(device)  # msg views are read-only
    image = image.permute(2, 0, 1)[None].float().div_(127.5).sub_(1.0)  # (1, 3, H, W) in [-1, 1]
    sem = torch.from_numpy(np.asarray(semantic).astype(np.int64))[None].to(device)
    inst = torch.from_numpy(np.asarray(instance).astype(np.int64))[None].to(device)
    k = int(aux.cfg.num_classes)
    gt = instance_boxes(inst, aux.cfg.max_instances)
    classes = instance_classes(sem, inst, gt.ids, gt.valid, k)
    if bool(gt.valid.any()):
        proposals = gt.boxes
        if jitter > 0:
            gen = torch.Generator(device=gt.boxes.device).manual_seed(int(seed) % (2**63))
            proposals = jitter_boxes(gt.boxes, jitter, (image.shape[-2], image.shape[-1]), gen)
        pred, _ = aux.box_head(image, proposals)
        recall = box_tally(box_iou(pred, gt.boxes), gt.valid, classes, k).recall
    else:  # no instance in the frame: nothing to recall (and RoIAlign on zero-size slots is wasted work)
        recall = ClassTally.zeros(k)
    flips = flip_tally(aux.segmenter(image).argmax(1), sem, k)
    return FrameScore(recall=recall, flips=flips, stamp_ns=int(stamp_ns))


@dataclass(frozen=True)
class WindowSummary:
    """The window's totals: overall and per-class box recall@0.5 and flip rate (NaN where nothing counted).

    ``recall`` / ``flips`` are the summed tallies; ``frames`` how many frames the window holds (of
    ``size``); ``first_stamp_ns`` / ``last_stamp_ns`` the stamps of its oldest / newest frame.
    """

    frames: int
    size: int
    recall: ClassTally
    flips: ClassTally
    first_stamp_ns: int | None = None
    last_stamp_ns: int | None = None

    @property
    def box_recall(self) -> float:
        """Box-weighted recall@0.5 over the window (NaN without boxes)."""
        return self.recall.overall()

    @property
    def flip_rate(self) -> float:
        """Pixel-weighted flip rate over the window (NaN without labelled pixels)."""
        return self.flips.overall()

    @property
    def boxes(self) -> int:
        """Ground-truth boxes scored in the window."""
        return int(self.recall.count.sum())

    @property
    def labelled_pixels(self) -> int:
        """Labelled pixels scored in the window."""
        return int(self.flips.count.sum())

    def small_classes(self) -> dict[str, dict[str, float | int | None]]:
        """``{class name: {flip_rate, pixels, box_recall50, boxes}}`` for the reported small classes."""
        flip, recall = self.flips.per_class(), self.recall.per_class()
        return {
            CLASS_NAMES[c]: {
                "flip_rate": _finite(flip[c]), "pixels": int(self.flips.count[c]),
                "box_recall50": _finite(recall[c]), "boxes": int(self.recall.count[c]),
            }
            for c in REPORTED_SMALL_CLASSES
        }


class MonitorWindow:
    """The last ``size`` :class:`FrameScore` s (oldest dropped first) and their sums. Not thread-safe."""

    def __init__(self, size: int, num_classes: int = NUM_CLASSES) -> None:
        """A window of at most ``size`` (>= 1) frames of ``num_classes`` classes."""
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self._size = int(size)
        self._num_classes = int(num_classes)
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
        if score.recall.count.shape != (self._num_classes,) or score.flips.count.shape != (self._num_classes,):
            raise ValueError(f"FrameScore tallies must have {self._num_classes} classes")
        self._scores.append(score)

    def clear(self) -> None:
        """Forget every frame."""
        self._scores.clear()

    def summary(self) -> WindowSummary:
        """Sums over the frames in the window (recomputed from the frames: no drift from running sums)."""
        recall, flips = ClassTally.zeros(self._num_classes), ClassTally.zeros(self._num_classes)
        for s in self._scores:
            recall, flips = recall + s.recall, flips + s.flips
        first = self._scores[0].stamp_ns if self._scores else None
        last = self._scores[-1].stamp_ns if self._scores else None
        return WindowSummary(len(self._scores), self._size, recall, flips, first, last)


@dataclass(frozen=True)
class Thresholds:
    """When the monitor warns: box recall below ``min_box_recall`` or flip rate above ``max_flip_rate``,
    judged only once the window holds at least ``min_frames`` frames (a metric with nothing counted, e.g.
    no boxes in the window, is not judged)."""

    min_box_recall: float = 0.5
    max_flip_rate: float = 0.2
    min_frames: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_box_recall <= 1.0:
            raise ValueError(f"min_box_recall must be in [0, 1], got {self.min_box_recall}")
        if not 0.0 <= self.max_flip_rate <= 1.0:
            raise ValueError(f"max_flip_rate must be in [0, 1], got {self.max_flip_rate}")
        if self.min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {self.min_frames}")

    def violations(self, summary: WindowSummary) -> list[str]:
        """One message per crossed threshold, saying which and by how much (empty: all fine / not judged)."""
        if summary.frames < self.min_frames:
            return []
        out = []
        recall, flip = summary.box_recall, summary.flip_rate
        if math.isfinite(recall) and recall < self.min_box_recall:
            out.append(f"box recall@0.5 {recall:.3f} < min_box_recall {self.min_box_recall:.3f} "
                       f"(by {self.min_box_recall - recall:.3f})")
        if math.isfinite(flip) and flip > self.max_flip_rate:
            out.append(f"flip rate {flip:.3f} > max_flip_rate {self.max_flip_rate:.3f} "
                       f"(by {flip - self.max_flip_rate:.3f})")
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
    Diagnostic keys: ``box_recall50``, ``flip_rate``, ``boxes``, ``labelled_pixels``,
    ``flip_rate.<class>`` / ``box_recall50.<class>`` for the small classes, ``frames_in_window``, ``window``,
    ``evaluated``, ``skipped``, ``sets_received``, ``bad_messages``, ``unmatched_messages``,
    ``min_box_recall``, ``max_flip_rate``, then ``info``. NaN (nothing counted) is ``n/a`` there and ``null``
    in the document.
    """
    warnings = tuple(thresholds.violations(summary))
    level = DIAG_WARN if warnings else DIAG_OK
    if warnings:
        message = "; ".join(warnings)
    elif summary.frames < thresholds.min_frames:
        message = f"waiting for frames ({summary.frames}/{thresholds.min_frames} evaluated)"
    else:
        message = "ok"
    small = summary.small_classes()
    recall, flip = _finite(summary.box_recall), _finite(summary.flip_rate)
    document: dict[str, Any] = {
        "level": _LEVEL_NAMES[level], "message": message, "warnings": list(warnings),
        "box_recall50": recall, "boxes": summary.boxes,
        "flip_rate": flip, "labelled_pixels": summary.labelled_pixels,
        "small_classes": small,
        "frames_in_window": summary.frames, "window": summary.size,
        "first_stamp_ns": summary.first_stamp_ns, "last_stamp_ns": summary.last_stamp_ns,
        "evaluated": counters.evaluated, "skipped": counters.skipped, "sets_received": counters.sets,
        "bad_messages": counters.bad, "unmatched_messages": counters.unmatched,
        "thresholds": {"min_box_recall": thresholds.min_box_recall, "max_flip_rate": thresholds.max_flip_rate,
                       "min_frames": thresholds.min_frames},
        **(info or {}),
    }
    values: list[tuple[str, str]] = [
        ("box_recall50", _text(recall)), ("flip_rate", _text(flip)),
        ("boxes", _text(summary.boxes)), ("labelled_pixels", _text(summary.labelled_pixels)),
    ]
    values += [(f"flip_rate.{name}", _text(entry["flip_rate"])) for name, entry in small.items()]
    values += [(f"box_recall50.{name}", _text(entry["box_recall50"])) for name, entry in small.items()]
    values += [
        ("frames_in_window", _text(summary.frames)), ("window", _text(summary.size)),
        ("evaluated", _text(counters.evaluated)), ("skipped", _text(counters.skipped)),
        ("sets_received", _text(counters.sets)), ("bad_messages", _text(counters.bad)),
        ("unmatched_messages", _text(counters.unmatched)),
        ("min_box_recall", _text(thresholds.min_box_recall)), ("max_flip_rate", _text(thresholds.max_flip_rate)),
    ]
    values += [(str(k), _text(v)) for k, v in (info or {}).items()]
    return MonitorReport(level, message, warnings, tuple(values), document)
