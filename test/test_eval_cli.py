"""sim2real-eval end to end at CI size: a recorded 8-frame sim bag (128x256), a random-init lite model, seq0000."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import pytest
import torch

from sim2real.evaluation.evaluate import CRITICS_FILE, load_critics, main, save_critics
from sim2real.translator.aux_nets import AuxConfig, AuxNets

SUMMARY_KEYS = {"box_recall50", "box_miou", "flip_rate", "kid", "kid_std", "kid_critic", "static_flicker",
                "change_ratio", "ssim_instances", "edge_instances", "ssim_frame", "edge_frame"}


@pytest.fixture(scope="module")
def lite_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sim2real.translator.checkpoint import save_checkpoint
    from sim2real.translator.config import get_generator_config
    from sim2real.translator.generator import TranslatorGenerator

    torch.manual_seed(0)
    cfg = get_generator_config("lite")
    return save_checkpoint(tmp_path_factory.mktemp("model") / "lite.safetensors", TranslatorGenerator(cfg), cfg)


@pytest.fixture(scope="module")
def eval_run(lite_checkpoint: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[int, Path, float]:
    from sim_bridge.record_cli import main as record_main

    bag = tmp_path_factory.mktemp("simbag") / "sim"  # a small sim bag, as a user would record it
    assert record_main(["record", "--frames", "8", "--out", str(bag), "--width", "256", "--height", "128"]) == 0
    out = tmp_path_factory.mktemp("eval")
    t0 = time.perf_counter()
    rc = main(["--model", str(lite_checkpoint), "--source", str(bag), "--height", "128", "--width", "256",
               "--target", str(shared_data / "real" / "seq0000"), "--out", str(out),
               "--critic-steps", "30", "--critic-batch", "2", "--critic-channels", "8", "--device", "cpu",
               "--temporal-alpha", "1.0"])
    return rc, out, time.perf_counter() - t0


def _walk_numbers(obj: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in _walk_numbers(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [x for i, v in enumerate(obj) for x in _walk_numbers(v, f"{path}[{i}]")]
    return [(path, obj)] if isinstance(obj, float) else []


@pytest.mark.timeout(900)  # its fixture trains critics: ~10 s alone, minutes on a loaded machine
def test_eval_writes_reports_with_finite_values(eval_run: tuple[int, Path, float]) -> None:
    rc, out, wall = eval_run
    assert rc == 0
    for name in ("report.json", "report.md", "grid.png", CRITICS_FILE):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert set(report) >= {"meta", "summary", "delta", "small_classes", "per_class"}
    assert report["meta"]["size"] == [128, 256] and report["meta"]["source"]["frames"] == 8
    assert report["meta"]["target_frames"] == 30 and report["meta"]["model_name"] == "lite"
    assert report["meta"]["box_proposal_jitter"] == pytest.approx(0.15)  # the critics' training jitter
    assert set(report["summary"]) == {"source", "translated", "smoothed"}
    for row in ("source", "translated", "smoothed"):
        assert set(report["summary"][row]) == SUMMARY_KEYS
        for key, value in report["summary"][row].items():
            assert value is not None and math.isfinite(value), (row, key, value)
    for where, value in _walk_numbers(report):  # JSON has no NaN / inf anywhere (missing = null)
        assert math.isfinite(value), where
    assert set(report["small_classes"]) == {"traffic light", "traffic sign", "pole", "person"}
    assert "car" in report["per_class"] and report["per_class"]["car"]["boxes"] > 0
    print(f"\nsim2real-eval CI run: {wall:.1f} s")


def test_eval_reference_row_known_answers(eval_run: tuple[int, Path, float]) -> None:
    _, out, _ = eval_run
    report = json.loads((out / "report.json").read_text())
    src, trans = report["summary"]["source"], report["summary"]["translated"]
    # the source frames compared with themselves
    assert src["static_flicker"] == 0.0 and src["change_ratio"] == pytest.approx(1.0)
    assert src["ssim_instances"] == pytest.approx(1.0, abs=1e-5) and src["edge_frame"] == pytest.approx(1.0, abs=1e-5)
    for row in (src, trans):
        assert 0.0 <= row["flip_rate"] <= 1.0 and 0.0 <= row["box_recall50"] <= 1.0 and 0.0 <= row["box_miou"] <= 1.0
        assert row["static_flicker"] >= 0.0 and row["ssim_frame"] <= 1.0 + 1e-6
    assert report["delta"]["flip_rate"] == pytest.approx(trans["flip_rate"] - src["flip_rate"])
    # a random-init translator does change the image (it is not the identity)
    assert trans["ssim_frame"] < 1.0
    # the temporal smoother (alpha 1) holds static pixels: no static flicker, and it does not touch labels
    smoothed = report["summary"]["smoothed"]
    assert trans["static_flicker"] > 0.0 and smoothed["static_flicker"] == 0.0
    assert report["delta_smoothed"]["static_flicker"] == 0.0
    md = (out / "report.md").read_text()
    for text in ("| source |", "| translated |", "| smoothed (TemporalSmoother alpha 1.0) |", "## Per class",
                 "NOT comparable"):
        assert text in md, text
    grid = cv2.imread(str(out / "grid.png"))
    assert grid.shape == (4 * 128, 3 * 256, 3)


def test_critics_roundtrip_file_and_training_checkpoint(tmp_path: Path) -> None:
    from sim2real.training.state_io import write_state

    cfg = AuxConfig(box_channels=8, seg_channels=8)
    aux = AuxNets(cfg)
    saved = save_critics(aux, tmp_path / "c" / CRITICS_FILE, {"note": "test"})
    loaded, info = load_critics(saved)
    assert loaded.cfg == cfg and info["note"] == "test"
    for (k, a), (_, b) in zip(aux.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # a trainer checkpoint directory: models.aux + the aux block of the JSON config; also via its parent dir
    state = {"step": 7, "models": {"aux": aux.state_dict()}, "config": json.dumps({"aux": dataclasses.asdict(cfg)})}
    step_dir = write_state(tmp_path / "run" / "checkpoints", "step_00000007", state)
    for where in (step_dir, tmp_path / "run"):
        loaded, info = load_critics(where)
        assert loaded.cfg == cfg and info["step"] == 7
        assert torch.equal(loaded.segmenter.head_low.weight, aux.segmenter.head_low.weight)


def test_eval_bad_source_is_a_clear_error(lite_checkpoint: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--model", str(lite_checkpoint), "--source", str(tmp_path / "missing"), "--target", str(tmp_path),
               "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "neither 'procedural[:N]' nor an existing bag or folder" in capsys.readouterr().err
    rc = main(["--model", str(lite_checkpoint), "--source", "procedural:1", "--height", "64", "--width", "128",
               "--target", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2 and "at least 2" in capsys.readouterr().err
