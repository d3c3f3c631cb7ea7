"""sim2real.evaluation.monitor: per-frame critic scores, sliding window, thresholds and the report (known answers)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sim2real.core.labels import NUM_CLASSES, TRAIN_ID
from sim2real.evaluation.metrics import ClassTally
from sim2real.evaluation.monitor import (
    DIAGNOSTIC_NAME,
    FrameScore,
    MonitorCounters,
    MonitorWindow,
    Thresholds,
    build_report,
    score_frame,
)
from sim2real.runtime.node_stats import DIAG_OK, DIAG_WARN

CAR, ROAD, POLE, PERSON = TRAIN_ID["car"], TRAIN_ID["road"], TRAIN_ID["pole"], TRAIN_ID["person"]


def tally(**per_class: tuple[float, float]) -> ClassTally:
    """ClassTally from {class name: (total, count)}."""
    t = ClassTally.zeros()
    for name, (total, count) in per_class.items():
        t.total[TRAIN_ID[name]] = total
        t.count[TRAIN_ID[name]] = count
    return t


def score(recall: dict[str, tuple[float, float]], flips: dict[str, tuple[float, float]], stamp: int) -> FrameScore:
    return FrameScore(recall=tally(**recall), flips=tally(**flips), stamp_ns=stamp)


# ------------------------------------------------------------------------------------------------- window
def test_window_sums_only_the_last_frames() -> None:
    w = MonitorWindow(2)
    w.add(score({"car": (0, 4)}, {"road": (100, 100)}, 1))  # falls out
    w.add(score({"car": (3, 4)}, {"road": (10, 100), "pole": (5, 10)}, 2))
    w.add(score({"car": (1, 2), "person": (0, 2)}, {"road": (0, 100), "person": (2, 20)}, 3))
    s = w.summary()
    assert (len(w), s.frames, s.size) == (2, 2, 2)
    assert (s.first_stamp_ns, s.last_stamp_ns) == (2, 3)
    assert s.box_recall == pytest.approx(4 / 8)  # (3 + 1 + 0) / (4 + 2 + 2)
    assert s.boxes == 8
    assert s.flip_rate == pytest.approx(17 / 230)  # (10 + 5 + 0 + 2) / (100 + 10 + 100 + 20)
    assert s.labelled_pixels == 230
    small = s.small_classes()
    assert list(small) == ["traffic light", "traffic sign", "pole", "person"]
    assert small["pole"] == {"flip_rate": pytest.approx(0.5), "pixels": 10, "box_recall50": None, "boxes": 0}
    assert small["person"] == {"flip_rate": pytest.approx(0.1), "pixels": 20, "box_recall50": 0.0, "boxes": 2}
    assert small["traffic light"]["flip_rate"] is None and small["traffic light"]["pixels"] == 0


def test_empty_window_is_nan_and_clear_forgets() -> None:
    w = MonitorWindow(3)
    assert math.isnan(w.summary().box_recall) and math.isnan(w.summary().flip_rate)
    w.add(score({"car": (1, 1)}, {"road": (0, 5)}, 7))
    w.clear()
    assert len(w) == 0 and w.summary().first_stamp_ns is None


def test_window_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="window size"):
        MonitorWindow(0)
    with pytest.raises(ValueError, match="classes"):
        MonitorWindow(2, num_classes=5).add(score({}, {}, 0))


# ------------------------------------------------------------------------------------------ thresholds
def test_thresholds_name_the_metric_and_the_margin() -> None:
    w = MonitorWindow(5)
    w.add(score({"car": (1, 4)}, {"road": (30, 100)}, 1))
    v = Thresholds(min_box_recall=0.5, max_flip_rate=0.2).violations(w.summary())
    assert v == ["box recall@0.5 0.250 < min_box_recall 0.500 (by 0.250)",
                 "flip rate 0.300 > max_flip_rate 0.200 (by 0.100)"]
    assert Thresholds(min_box_recall=0.25, max_flip_rate=0.3).violations(w.summary()) == []  # not strictly worse


def test_thresholds_wait_for_min_frames_and_skip_unmeasured_metrics() -> None:
    w = MonitorWindow(5)
    w.add(score({}, {"road": (90, 100)}, 1))  # no boxes: recall is NaN, not judged
    t = Thresholds(min_box_recall=0.9, max_flip_rate=0.1, min_frames=2)
    assert t.violations(w.summary()) == []
    w.add(score({}, {"road": (90, 100)}, 2))
    assert t.violations(w.summary()) == ["flip rate 0.900 > max_flip_rate 0.100 (by 0.800)"]
    with pytest.raises(ValueError):
        Thresholds(max_flip_rate=1.5)
    with pytest.raises(ValueError):
        Thresholds(min_frames=0)


# ------------------------------------------------------------------------------------------------ report
def test_report_ok_then_warn_with_the_same_numbers_in_diagnostics_and_json() -> None:
    w = MonitorWindow(4)
    w.add(score({"car": (3, 4)}, {"road": (5, 100), "pole": (1, 10)}, 11))
    counters = MonitorCounters(sets=9, evaluated=1, skipped=7, bad=1, unmatched=2)
    ok = build_report(w.summary(), Thresholds(0.5, 0.2), counters, {"critics": "c.safetensors"})
    assert ok.level == DIAG_OK and ok.message == "ok" and ok.warnings == ()
    values = dict(ok.values)
    assert values["box_recall50"] == "0.7500" and values["flip_rate"] == f"{6 / 110:.4f}"
    assert values["flip_rate.pole"] == "0.1000" and values["flip_rate.person"] == "n/a"
    counts = (values["frames_in_window"], values["window"], values["skipped"], values["evaluated"])
    assert counts == ("1", "4", "7", "1")
    assert values["critics"] == "c.safetensors"
    doc = json.loads(json.dumps(ok.document, allow_nan=False))  # strictly JSON: NaN became null
    assert doc["level"] == "OK" and doc["box_recall50"] == pytest.approx(0.75)
    assert doc["flip_rate"] == pytest.approx(6 / 110) and doc["small_classes"]["person"]["flip_rate"] is None
    assert (doc["sets_received"], doc["skipped"], doc["bad_messages"], doc["unmatched_messages"]) == (9, 7, 1, 2)
    assert values["unmatched_messages"] == "2"

    w.add(score({"car": (0, 4)}, {"road": (80, 100)}, 12))
    warn = build_report(w.summary(), Thresholds(0.5, 0.2), counters)
    assert warn.level == DIAG_WARN
    assert warn.message == ("box recall@0.5 0.375 < min_box_recall 0.500 (by 0.125); "
                            "flip rate 0.410 > max_flip_rate 0.200 (by 0.210)")
    assert warn.document["level"] == "WARN" and len(warn.document["warnings"]) == 2
    assert DIAGNOSTIC_NAME == "sim2real monitor"


def test_report_says_it_is_waiting_before_min_frames() -> None:
    w = MonitorWindow(4)
    w.add(score({}, {"road": (99, 100)}, 1))
    r = build_report(w.summary(), Thresholds(0.5, 0.2, min_frames=3), MonitorCounters())
    assert r.level == DIAG_OK and r.message == "waiting for frames (1/3 evaluated)"


# ------------------------------------------------------------------------------------------- score_frame
class _Segmenter:
    """Predicts a fixed class map (one-hot logits)."""

    def __init__(self, classes: np.ndarray) -> None:
        self.classes = torch.from_numpy(classes.astype(np.int64))

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        assert image.shape[1] == 3 and float(image.min()) >= -1.0 and float(image.max()) <= 1.0
        return torch.nn.functional.one_hot(self.classes, NUM_CLASSES).permute(2, 0, 1)[None].float()


class _BoxHead:
    """Returns the proposals shifted right by ``shift`` pixels; records the proposals it saw."""

    def __init__(self, shift: float) -> None:
        self.shift, self.seen = shift, []

    def __call__(self, image: torch.Tensor, proposals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append(proposals.clone())
        out = proposals + proposals.new_tensor([self.shift, 0.0, self.shift, 0.0])
        return out, torch.zeros(*proposals.shape[:2], NUM_CLASSES)


def _aux(pred: np.ndarray, shift: float, box_jitter: float = 0.15) -> SimpleNamespace:
    cfg = SimpleNamespace(num_classes=NUM_CLASSES, max_instances=8, box_jitter=box_jitter)
    return SimpleNamespace(cfg=cfg, segmenter=_Segmenter(pred), box_head=_BoxHead(shift))


def _frame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """16x32: road below, sky above (ignored top row), a car 8x8 (id 3) and a pole 8x2 (id 9)."""
    semantic = np.full((16, 32), TRAIN_ID["sky"], np.uint8)
    semantic[8:] = ROAD
    semantic[0] = 255
    instance = np.zeros((16, 32), np.uint16)
    semantic[8:16, 4:12], instance[8:16, 4:12] = CAR, 3
    semantic[4:12, 20:22], instance[4:12, 20:22] = POLE, 9
    rgb = np.random.default_rng(0).integers(0, 256, (16, 32, 3), dtype=np.uint8)
    return rgb, semantic, instance


def test_score_frame_counts_flipped_labelled_pixels_per_class() -> None:
    rgb, semantic, instance = _frame()
    pred = np.where(semantic == 255, 0, semantic).astype(np.int64)
    pred[4:12, 20:22] = ROAD  # every pole pixel flips (16)
    pred[0] = 5  # the ignored row: not counted whatever is predicted
    pred[15, 0:4] = TRAIN_ID["sidewalk"]  # 4 road pixels flip
    s = score_frame(_aux(pred, shift=0.0), rgb, semantic, instance, jitter=0.0, seed=0, stamp_ns=42)
    labelled = 15 * 32
    assert s.stamp_ns == 42
    assert s.flips.count.sum() == labelled
    assert s.flips.overall() == pytest.approx(20 / labelled)
    assert s.flips.per_class()[POLE] == 1.0 and s.flips.count[POLE] == 16
    assert s.flips.per_class()[CAR] == 0.0
    assert s.recall.overall() == 1.0 and s.recall.count[CAR] == 1 and s.recall.count[POLE] == 1


def test_score_frame_box_recall_follows_the_box_head() -> None:
    rgb, semantic, instance = _frame()
    pred = semantic.astype(np.int64) % NUM_CLASSES
    # a 3 px shift: car (8 px wide) IoU 5/11 = 0.45, pole (2 px wide) IoU 0 -> both boxes missed
    s = score_frame(_aux(pred, shift=3.0), rgb, semantic, instance, jitter=0.0, seed=0)
    assert s.recall.overall() == 0.0 and s.recall.count.sum() == 2
    # a 1 px shift: car IoU 7/9 = 0.78 (hit), pole (2 px wide) IoU 1/3 (miss)
    s = score_frame(_aux(pred, shift=1.0), rgb, semantic, instance, jitter=0.0, seed=0)
    assert s.recall.per_class()[CAR] == 1.0 and s.recall.per_class()[POLE] == 0.0


def test_score_frame_jitters_proposals_reproducibly_per_seed() -> None:
    rgb, semantic, instance = _frame()
    pred = semantic.astype(np.int64) % NUM_CLASSES
    aux = _aux(pred, shift=0.0)
    for seed in (5, 5, 6):
        score_frame(aux, rgb, semantic, instance, jitter=0.3, seed=seed)
    a, b, c = (p[0, :2] for p in aux.box_head.seen)
    exact = torch.tensor([[4.0, 8.0, 12.0, 16.0], [20.0, 4.0, 22.0, 12.0]])
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, exact)
    score_frame(aux, rgb, semantic, instance, jitter=0.0, seed=5)
    assert torch.equal(aux.box_head.seen[-1][0, :2], exact)


def test_score_frame_without_instances_scores_flips_only() -> None:
    rgb, semantic, instance = _frame()
    pred = semantic.astype(np.int64) % NUM_CLASSES
    s = score_frame(_aux(pred, shift=0.0), rgb, semantic, np.zeros_like(instance), jitter=0.15, seed=1)
    assert s.recall.count.sum() == 0 and math.isnan(s.recall.overall())
    assert s.flips.overall() == 0.0
