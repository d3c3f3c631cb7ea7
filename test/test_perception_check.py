"""sim2real-perception-check with the shipped judge exported to ONNX as "the user's model", on a recorded sim bag:
source vs translated vs recorded vs real, the gap closed per class, a Python-entry-point detector, user errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sim2real.evaluation.perception_check import gap_closed, main

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # perception_models (entry points)
H, W, FRAMES = 180, 320, 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from sim2real.evaluation.judge import export_judge_onnx, load_judge
    from sim2real.translator.checkpoint import save_checkpoint
    from sim2real.translator.config import get_generator_config
    from sim2real.translator.generator import TranslatorGenerator
    from sim_bridge.procedural import SimConfig
    from sim_bridge.record_cli import record

    tmp = tmp_path_factory.mktemp("perception")
    onnx_path = export_judge_onnx(load_judge(REPO / "models/judges/camvid_segmenter.safetensors")[0],
                                  tmp / "judge.onnx")
    spec = yaml.safe_load((REPO / "config/perception/camvid_judge.yaml").read_text())
    spec["path"] = "judge.onnx"
    (tmp / "judge.yaml").write_text(yaml.safe_dump(spec))
    sim = SimConfig(width=W, height=H, seed=2718)
    record(sim, str(tmp / "sim_bag"), FRAMES)
    record(sim, str(tmp / "translated_bag"), FRAMES, namespace="/translated")  # "recorded": the sim frames as is
    torch.manual_seed(0)
    cfg = get_generator_config("lite")
    model = save_checkpoint(tmp / "lite.safetensors", TranslatorGenerator(cfg), cfg)
    return {"tmp": tmp, "yaml": tmp / "judge.yaml", "onnx": onnx_path, "model": model}


def run(setup: dict[str, Path], *extra: str, perception: Path | None = None, out: str = "out") -> tuple[int, dict]:
    rc = main(["--perception", str(perception or setup["yaml"]), "--source", str(setup["tmp"] / "sim_bag"),
               "--height", str(H), "--width", str(W), "--out", str(setup["tmp"] / out), *extra])
    report = json.loads((setup["tmp"] / out / "report.json").read_text()) if rc == 0 else {}
    return rc, report


@pytest.mark.timeout(600)
def test_onnx_segmenter_source_translated_recorded_real(setup, shared_data: Path) -> None:
    rc, report = run(setup, "--translator", str(setup["model"]), "--translated", str(setup["tmp"] / "translated_bag"),
                     "--real", str(shared_data / "camvid" / "val"), "--real-frames", "6")
    assert rc == 0
    assert report["rows"] == ["source", "translated", "recorded", "real"] and report["metric"] == "iou"
    assert report["frames"] == {"source": FRAMES, "translated": FRAMES, "recorded": FRAMES, "real": 6}
    per_class = report["per_class"]
    assert set(per_class) == {"sky", "building", "pole", "road", "pavement", "tree", "sign/symbol", "fence", "car",
                              "pedestrian", "bicyclist"}
    for name, entry in per_class.items():
        # the recorded bag holds the simulator frames themselves: it scores exactly the source, closes 0 % of the gap
        assert entry["recorded"] == entry["source"], name
        if entry["source"] is not None and entry["real"] is not None and entry["real"] != entry["source"]:
            assert entry["gap_closed_recorded"] == pytest.approx(0.0)
            assert entry["gap_closed_translated"] == pytest.approx(
                gap_closed(entry["source"], entry["translated"], entry["real"]))
    assert report["mean"]["real"] > report["mean"]["source"]  # a real-trained model is at home on real frames
    md = (setup["tmp"] / "out" / "report.md").read_text()
    assert "| car |" in md and "gap closed (translated)" in md


def test_onnx_scores_equal_the_judge_run_directly(setup) -> None:
    """The YAML's normalisation reaches the model as the judge expects it: ONNX-through-spec == torch judge."""
    from sim2real.evaluation.frames import load_source_frames
    from sim2real.evaluation.judge import load_judge
    from sim2real.evaluation.judging import JudgeTally

    rc, report = run(setup, "--translated", str(setup["tmp"] / "translated_bag"), out="parity")
    assert rc == 0
    frames = load_source_frames(str(setup["tmp"] / "sim_bag"), FRAMES, (H, W))
    tally = JudgeTally()
    tally.add(load_judge(REPO / "models/judges/camvid_segmenter.safetensors")[0], frames.rgb, frames.semantic,
              frames.instance)
    direct = dict(zip(json.loads((REPO / "models/judges/camvid_segmenter.json").read_text())["classes"],
                      tally.iou(), strict=True))
    for name, entry in report["per_class"].items():
        if entry["source"] is None:
            assert np.isnan(direct[name])
        else:
            assert entry["source"] == pytest.approx(direct[name], abs=2e-3), name


def test_python_entry_points_detector_and_a_broken_segmenter(setup, tmp_path: Path, shared_data: Path) -> None:
    det = {"name": "judge-detector", "task": "detection", "runtime": "python",
           "entry_point": "perception_models.judge_detector:detect", "classes": ["car"],
           "class_map": {"car": ["car", "truck", "bus"]}, "input": {"mean": [0.5] * 3, "std": [0.5] * 3},
           "min_pixels": 64}
    (tmp_path / "det.yaml").write_text(yaml.safe_dump(det))
    rc, report = run(setup, "--translated", str(setup["tmp"] / "translated_bag"), "--real",
                     str(shared_data / "camvid" / "val"), "--real-frames", "2", perception=tmp_path / "det.yaml",
                     out="det")
    assert rc == 0 and report["metric"] == "recall" and set(report["per_class"]) == {"car"}
    # real frames have no instance masks, so no recall: that row has no mean and does not empty the others'
    assert report["per_class"]["car"]["real"] is None and report["mean"]["real"] is None
    assert report["mean"]["source"] == report["per_class"]["car"]["source"] and report["mean_over_classes"] == ["car"]
    car = report["per_class"]["car"]
    assert car["source"] is not None and 0.0 <= car["source"] <= 1.0 and car["recorded"] == car["source"]
    assert set(report["unmatched_detections_per_frame"]) == {"source", "recorded", "real"}
    broken = yaml.safe_load(setup["yaml"].read_text()) | {"runtime": "python", "path": None,
                                                          "entry_point": "perception_models.judge_detector:"
                                                                         "constant_road"}
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    rc, bad = run(setup, "--translated", str(setup["tmp"] / "translated_bag"), perception=tmp_path / "broken.yaml",
                  out="broken")
    rc_ok, good = run(setup, "--translated", str(setup["tmp"] / "translated_bag"), out="good")
    assert rc == 0 and rc_ok == 0
    assert bad["per_class"]["car"]["source"] == 0.0 and bad["mean"]["source"] < good["mean"]["source"]


def test_user_errors_exit_2_with_one_line(setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = yaml.safe_load(setup["yaml"].read_text())
    cases = {
        "unknown_sim_class": (spec | {"class_map": {"car": ["automobile"]}}, "simulator classes ['automobile']"),
        "missing_onnx": (spec | {"path": "nowhere.onnx"}, "needs 'path' to an existing .onnx file"),
        "bad_layout": (spec | {"input": {"layout": "CHWN"}}, "input.layout must be NCHW or NHWC"),
        "unknown_field": (spec | {"labels": []}, "unknown field(s) ['labels']"),
        "bad_entry": (spec | {"runtime": "python", "entry_point": "no_such_module:f"}, "cannot be imported"),
    }
    for name, (doc, message) in cases.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc | ({"path": str(setup["onnx"])} if name not in (
            "missing_onnx",) else {})))
        rc, _ = run(setup, "--translated", str(setup["tmp"] / "translated_bag"), perception=tmp_path / f"{name}.yaml",
                    out=f"err_{name}")
        err = capsys.readouterr().err
        assert rc == 2 and message in err and err.count("\n") == 1, (name, err)
    assert main(["--perception", str(setup["yaml"]), "--source", "procedural:2"]) == 2
    assert "give --translator" in capsys.readouterr().err


def test_one_prediction_matches_one_instance_and_small_gaps_give_no_share() -> None:
    from sim2real.evaluation.perception import DetectionOutput, PerceptionTally, camvid_to_train_ids

    instance = np.zeros((40, 80), np.int64)
    instance[10:30, 10:30] = 1  # two touching cars of equal size
    instance[10:30, 30:50] = 2
    target = np.where(instance > 0, 0, -1)
    one_box = DetectionOutput(np.array([[10.0, 10, 50, 30]]), np.array([0]), np.array([0.9]))  # covers both
    tally = PerceptionTally(1)
    tally.add_detection(one_box, target, instance, score_threshold=0.5, min_pixels=16)
    assert tally.instances[0] == 2 and tally.hits[0] == 1  # IoU 0.5 with each, but it stands for one car only
    two = DetectionOutput(np.array([[10.0, 10, 30, 30], [10.0, 10, 30, 30]]), np.array([0, 0]), np.array([0.9, 0.8]))
    tally = PerceptionTally(1)
    tally.add_detection(two, target, instance, score_threshold=0.5, min_pixels=16)
    assert tally.hits[0] == 1 and tally.unmatched == 1  # a duplicate box cannot find the second car
    assert gap_closed(0.50, 0.60, 0.51) is None and gap_closed(0.50, 0.60, 0.60) == pytest.approx(1.0)
    assert camvid_to_train_ids(np.array([[10]]))[0, 0] == 255  # CamVid bicyclist: rider + bike, not scored
