"""sim2real.evaluation.monitor: per-frame judge scores, sliding window, thresholds and the report (known answers)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sim2real.core.labels import CAMVID_CLASS_NAMES, CAMVID_NUM_CLASSES, TRAIN_ID
from sim2real.evaluation.judging import ObjectTally
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

K = CAMVID_NUM_CLASSES
ROAD, CAR, PED, POLE = (CAMVID_CLASS_NAMES.index(n) for n in ("road", "car", "pedestrian", "pole"))


def confusion(*cells: tuple[int, int, int]) -> np.ndarray:
    """(label class, judged class, pixels) cells -> (K, K) confusion."""
    c = np.zeros((K, K), np.int64)
    for row, col, n in cells:
        c[row, col] += n
    return c


def objects(instances: dict[int, int], recalled: dict[int, int]) -> ObjectTally:
    t = ObjectTally()
    for cls, n in instances.items():
        t.instances[cls] = n
    for cls, n in recalled.items():
        t.recalled[cls] = n
    return t


# ------------------------------------------------------------------------------------------------- window
def test_window_sums_only_the_last_frames() -> None:
    w = MonitorWindow(2)
    w.add(FrameScore(confusion((ROAD, CAR, 100)), objects({CAR: 4}, {}), 1))  # falls out
    w.add(FrameScore(confusion((ROAD, ROAD, 90), (ROAD, CAR, 10), (CAR, CAR, 30)), objects({CAR: 2}, {CAR: 1}), 2))
    w.add(FrameScore(confusion((ROAD, ROAD, 100), (PED, ROAD, 20)), objects({CAR: 1, PED: 1}, {CAR: 1}), 3))
    s = w.summary()
    assert (len(w), s.frames, s.size) == (2, 2, 2)
    assert (s.first_stamp_ns, s.last_stamp_ns) == (2, 3)
    # road: TP 190, FN 10, FP 20 (pedestrians judged road) -> 190/220; car: TP 30, FP 10 -> 30/40; ped: 0/20
    iou = s.iou()
    assert iou[ROAD] == pytest.approx(190 / 220) and iou[CAR] == pytest.approx(30 / 40) and iou[PED] == 0.0
    assert np.isnan(iou[POLE])  # not in the labels: not part of the mean
    assert s.judge_miou == pytest.approx((190 / 220 + 30 / 40 + 0) / 3)
    assert s.instance_recall == pytest.approx(2 / 4) and s.instances == 4
    assert s.labelled_pixels == 250
    classes = s.reported_classes()
    assert list(classes) == ["car", "pedestrian", "bicyclist", "pole", "sign/symbol"]
    assert classes["car"] == {"iou": pytest.approx(0.75), "pixels": 30}
    assert classes["pole"] == {"iou": None, "pixels": 0}


def test_empty_window_is_nan_and_clear_forgets() -> None:
    w = MonitorWindow(3)
    assert math.isnan(w.summary().judge_miou) and math.isnan(w.summary().instance_recall)
    w.add(FrameScore(confusion((ROAD, ROAD, 5)), stamp_ns=7))
    w.clear()
    assert len(w) == 0 and w.summary().first_stamp_ns is None


def test_window_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="window size"):
        MonitorWindow(0)
    with pytest.raises(ValueError, match="confusion"):
        MonitorWindow(2).add(FrameScore(np.zeros((5, 5), np.int64)))


# ------------------------------------------------------------------------------------------ thresholds
def test_thresholds_name_the_metric_and_the_margin() -> None:
    w = MonitorWindow(5)
    w.add(FrameScore(confusion((ROAD, ROAD, 30), (ROAD, CAR, 70)), objects({CAR: 4}, {CAR: 1}), 1))
    s = w.summary()  # road IoU 0.3, car IoU 0 (no car labels: NaN, not counted) -> mIoU 0.3; recall 0.25
    assert s.judge_miou == pytest.approx(0.3)
    out = Thresholds(min_judge_miou=0.5, min_instance_recall=0.5).violations(s)
    assert out == ["judge mIoU 0.300 < min_judge_miou 0.500 (by 0.200)",
                   "instance recall 0.250 < min_instance_recall 0.500 (by 0.250)"]
    assert Thresholds(min_judge_miou=0.3, min_instance_recall=0.25).violations(s) == []  # at the limit: fine
    assert Thresholds(min_judge_miou=0.9, min_frames=2).violations(s) == []  # too few frames: not judged


def test_a_metric_with_nothing_counted_is_not_judged() -> None:
    w = MonitorWindow(2)
    w.add(FrameScore(confusion((ROAD, ROAD, 10))))  # no instances
    assert Thresholds(min_judge_miou=0.0, min_instance_recall=1.0).violations(w.summary()) == []


@pytest.mark.parametrize("kwargs", [{"min_judge_miou": 1.5}, {"min_instance_recall": -0.1}, {"min_frames": 0}])
def test_threshold_ranges(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Thresholds(**kwargs)


# ---------------------------------------------------------------------------------------------- report
def test_report_levels_keys_and_json() -> None:
    w = MonitorWindow(3)
    w.add(FrameScore(confusion((ROAD, ROAD, 80), (CAR, CAR, 20)), objects({CAR: 1}, {CAR: 1}), 11))
    counters = MonitorCounters(sets=3, evaluated=1, skipped=1, bad=1, unmatched=2)
    ok = build_report(w.summary(), Thresholds(0.5, 0.5), counters, {"judge": "j.safetensors"})
    assert ok.level == DIAG_OK and ok.message == "ok" and not ok.warnings
    keys = [k for k, _ in ok.values]
    assert keys[:4] == ["judge_miou", "instance_recall", "instances", "labelled_pixels"]
    assert {"iou.car", "iou.pole", "frames_in_window", "evaluated", "skipped", "sets_received", "bad_messages",
            "unmatched_messages", "min_judge_miou", "min_instance_recall", "judge"} <= set(keys)
    assert dict(ok.values)["iou.pole"] == "n/a" and dict(ok.values)["judge_miou"] == "1.0000"
    doc = json.loads(json.dumps(ok.document))  # serialisable, NaN -> null
    assert doc["classes"]["pole"]["iou"] is None and doc["judge_miou"] == 1.0 and doc["level"] == "OK"
    warn = build_report(w.summary(), Thresholds(1.0, 1.0, 1), counters)
    assert warn.level == DIAG_OK  # exactly at the thresholds
    waiting = build_report(w.summary(), Thresholds(0.5, 0.5, 3), counters)
    assert waiting.message == "waiting for frames (1/3 evaluated)"
    w.add(FrameScore(confusion((ROAD, CAR, 100)), objects({CAR: 1}, {}), 12))
    bad = build_report(w.summary(), Thresholds(0.9, 0.9), counters)
    assert bad.level == DIAG_WARN and "judge mIoU" in bad.message and "instance recall 0.500" in bad.message
    assert DIAGNOSTIC_NAME == "sim2real monitor"


# ----------------------------------------------------------------------------------------- score_frame
def test_score_frame_matches_the_judge_and_the_labels(tmp_path) -> None:
    from sim2real.evaluation.judge import JudgeConfig, JudgeNet

    torch.manual_seed(0)
    judge = JudgeNet(JudgeConfig(widths=(4, 8, 8, 8), blocks=(0, 0, 0), decoder_width=8)).eval()
    with torch.no_grad():  # a judge that calls every pixel "road": its head's bias decides
        judge.head.weight.zero_()
        judge.head.bias.copy_(torch.arange(K, dtype=torch.float32) * 0 - 10)
        judge.head.bias[ROAD] = 10.0
    rgb = np.zeros((32, 48, 3), np.uint8)
    semantic = np.full((32, 48), TRAIN_ID["road"], np.uint8)
    semantic[:8, :16] = TRAIN_ID["car"]  # 128 car pixels: a car instance judged road -> not recalled
    semantic[20:, :] = TRAIN_ID["terrain"]  # no CamVid class: not counted
    instance = np.zeros((32, 48), np.uint16)
    instance[:8, :16] = 5
    s = score_frame(judge, rgb, semantic, instance, stamp_ns=42)
    assert s.stamp_ns == 42
    assert s.confusion[ROAD, ROAD] == 20 * 48 - 128 and s.confusion[CAR, ROAD] == 128
    assert s.confusion.sum() == 20 * 48  # terrain rows not counted
    assert s.objects.instances[CAR] == 1 and s.objects.recalled[CAR] == 0
