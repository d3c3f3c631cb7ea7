"""Int8 encoder convolutions (sim2real.translator.int8): calibration ranges, the quantized graph against the fp32
one (with a miscalibrated control), what ONNX Runtime makes of it, the calibration's checks, the backend and
the ``sim2real-calibrate-int8`` CLI. The shipped weights at 96x160 on procedural frames."""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from sim2real.apps.calibrate_int8 import main as calibrate_main
from sim2real.core.errors import CheckpointError
from sim2real.runtime.paths import share_dir
from sim2real.translator.checkpoint import build_generator, load_checkpoint, read_checkpoint_document
from sim2real.translator.inference import Translator
from sim2real.translator.int8 import (
    DOCUMENT_KEY,
    Int8Calibration,
    calibrate_int8,
    calibration_of,
    int8_modules,
    quantize_int8,
)
from sim2real.translator.onnx_export import OnnxTranslator, export_onnx_bytes
from sim_bridge.procedural import ProceduralSimulator, SimConfig

HEIGHT, WIDTH = 96, 160
SHIPPED = share_dir() / "models" / "default.safetensors"


def _frames(indices: range, seed: int = 7) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    sim = ProceduralSimulator(SimConfig(width=WIDTH, height=HEIGHT, seed=seed))
    out = []
    for i in indices:
        f = sim.frame(i)
        out.append((torch.from_numpy(f.rgb).permute(2, 0, 1)[None].float() / 127.5 - 1,
                    torch.from_numpy(f.semantic)[None].long(), torch.from_numpy(f.instance.astype(np.int64))[None]))
    return out


@pytest.fixture(scope="module")
def shipped() -> tuple[torch.nn.Module, dict]:
    loaded = load_checkpoint(SHIPPED, map_location="cpu")
    return build_generator(loaded).eval(), loaded.metadata


@pytest.fixture(scope="module")
def calibration(shipped: tuple[torch.nn.Module, dict]) -> Int8Calibration:
    return calibrate_int8(shipped[0], _frames(range(0, 48, 6)), source="procedural test frames",
                          tensor_sha256=shipped[1]["tensor_sha256"])


@pytest.fixture(scope="module")
def fp32_graph(shipped: tuple[torch.nn.Module, dict]) -> bytes:
    return export_onnx_bytes(shipped[0], HEIGHT, WIDTH)


def _levels(a: bytes, b: bytes, frames: list) -> np.ndarray:
    """|graph a - graph b| in 8-bit levels over frames."""
    ra, rb = OnnxTranslator(a, intra_op_threads=1), OnnxTranslator(b, intra_op_threads=1)
    return np.stack([np.abs(ra.translate_normalized(*(t.numpy() for t in f))
                            - rb.translate_normalized(*(t.numpy() for t in f))) * 127.5 for f in frames])


def test_the_ranges_are_those_of_each_convolutions_input_and_output(shipped, calibration) -> None:
    generator = shipped[0]
    modules = int8_modules(generator)
    assert set(calibration.ranges) == set(modules)
    assert len(modules) == 13  # the content body's 9 convolutions, the instance encoder's 3 and its projection
    assert calibration.frames == 8 and calibration.tensor_sha256 == read_checkpoint_document(SHIPPED)["tensor_sha256"]
    # known answer: the first body convolution applied to its input captured here (one frame)
    path = "content_body.res.0.body.0.0"
    conv, captured = modules[path], []
    hook = conv.register_forward_hook(lambda _m, i, _o: captured.append(i[0]))
    one = calibrate_int8(generator, _frames(range(6, 7)), source="one frame", tensor_sha256="")
    hook.remove()
    x = captured[0]
    y = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding)
    assert one.ranges[path] == pytest.approx((x.min().item(), x.max().item(), y.min().item(), y.max().item()))
    # the ranges over several frames enclose those of each frame
    lo_in, hi_in, lo_out, hi_out = calibration.ranges[path]
    assert lo_in <= one.ranges[path][0] and hi_in >= one.ranges[path][1]
    assert lo_out <= one.ranges[path][2] and hi_out >= one.ranges[path][3]


def test_the_int8_graph_stays_within_a_few_levels_of_the_fp32_graph(calibration, fp32_graph) -> None:
    quantized = quantize_int8(fp32_graph, calibration)
    held_out = _frames(range(100, 130, 10), seed=11)  # another world than the calibration's
    diff = _levels(fp32_graph, quantized, held_out)
    print(f"int8 vs fp32: mean {diff.mean():.3f}, max {diff.max():.2f} levels")
    assert 0.01 < diff.mean() < 0.5 and diff.max() < 5.0  # quantized (not the fp32 graph), and close to it
    # control: ranges a tenth as wide clip the activations and move the output by far more
    narrow = dataclasses.replace(calibration, ranges={k: tuple(v / 10 for v in r)
                                                      for k, r in calibration.ranges.items()})
    clipped = _levels(fp32_graph, quantize_int8(fp32_graph, narrow), held_out)
    assert clipped.mean() > 3 * diff.mean() and clipped.max() > 5.0


def test_onnx_runtime_runs_each_calibrated_convolution_as_qlinearconv(calibration, fp32_graph, tmp_path) -> None:
    quantized = quantize_int8(fp32_graph, calibration)
    ops = collections.Counter(n.op_type for n in onnx.load_from_string(quantized).graph.node)
    assert ops["QuantizeLinear"] == ops["DequantizeLinear"] - 13 == 2 * 13  # x and y per conv, w dequantized once
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(quantized, options, providers=["CPUExecutionProvider"])
    optimized = collections.Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)
    assert optimized["QLinearConv"] == 13
    model, before = onnx.load_from_string(quantized), onnx.load_from_string(fp32_graph)
    weights = [onnx.numpy_helper.to_array(i) for i in model.graph.initializer if i.name.endswith("/int8/w")]
    assert len(weights) == 13 and max(int(np.abs(w).max()) for w in weights) == 63  # 7-bit: no int16 saturation
    kept = {i.name for i in model.graph.initializer}
    dropped = {i.name for i in before.graph.initializer} - kept
    assert len(dropped) == 13 and all(n.endswith(".weight") and ("content_body" in n or "instance_branch" in n)
                                      for n in dropped)  # the replaced fp32 weights only
    info = json.loads({p.key: p.value for p in onnx.load_from_string(quantized).metadata_props}["sim2real.export"])
    assert info["int8"] == {"calibration_sha256": calibration.digest(), "frames": 8,
                            "source": "procedural test frames", "convolutions": 13}


def test_a_foreign_or_repeated_quantization_is_refused(calibration, fp32_graph) -> None:
    foreign = dataclasses.replace(calibration, ranges={**calibration.ranges, "content_body.res.9.conv": (0, 1, 0, 1)})
    with pytest.raises(CheckpointError, match=r"content_body\.res\.9\.conv"):
        quantize_int8(fp32_graph, foreign)
    with pytest.raises(CheckpointError, match="quantized already"):
        quantize_int8(quantize_int8(fp32_graph, calibration), calibration)
    twice = onnx.load_from_string(fp32_graph)  # one calibrated convolution's weight read by a second Conv
    conv = next(n for n in twice.graph.node if n.op_type == "Conv" and "content_body/res/res.0" in n.name)
    copy = onnx.helper.make_node("Conv", list(conv.input), ["unused_copy"], name="copy", **{
        a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute})
    twice.graph.node.append(copy)
    with pytest.raises(CheckpointError, match="twice"):
        quantize_int8(twice.SerializeToString(), calibration)


def test_calibration_documents_round_trip_and_bad_ones_are_named(calibration) -> None:
    doc = {"tensor_sha256": calibration.tensor_sha256, "extra": {DOCUMENT_KEY: calibration.to_dict()}}
    assert calibration_of(doc) == calibration
    assert calibration_of({"extra": {}}) is None
    with pytest.raises(CheckpointError, match="other weights"):
        calibration_of({**doc, "tensor_sha256": "0" * 64})
    bad = calibration.to_dict()
    bad["ranges"] = {**bad["ranges"], "content_body.down.0.0": [1.0, 0.0, 0.0, 1.0]}  # min > max
    with pytest.raises(CheckpointError, match="content_body.down.0.0"):
        calibration_of({**doc, "extra": {DOCUMENT_KEY: bad}})
    with pytest.raises(CheckpointError, match="keys"):
        calibration_of({**doc, "extra": {DOCUMENT_KEY: {"frames": 1}}})
    with pytest.raises(ValueError, match="frames"):
        dataclasses.replace(calibration, frames=0)
    with pytest.raises(CheckpointError, match="other weights"):  # a document without a digest of its weights
        calibration_of({"extra": doc["extra"]})
    with pytest.raises(CheckpointError, match="'extra' must be an object"):
        calibration_of({"extra": [1]})


def test_a_calibration_of_other_convolutions_is_refused_at_load_naming_the_file(shipped, calibration,
                                                                                tmp_path: Path) -> None:
    from sim2real.translator.checkpoint import save_checkpoint, tensor_digest

    loaded = load_checkpoint(SHIPPED, map_location="cpu")
    ranges = dict(calibration.ranges)
    ranges["content_body.res.9.body.0.0"] = ranges.pop("content_body.res.0.body.0.0")
    foreign = dataclasses.replace(calibration, ranges=ranges, tensor_sha256=tensor_digest(loaded.state_dict))
    path = save_checkpoint(tmp_path / "foreign.safetensors", loaded.state_dict, loaded.config,
                           extra={DOCUMENT_KEY: foreign.to_dict()})
    with pytest.raises(CheckpointError, match=r"foreign\.safetensors: .*does not fit.*content_body\.res\.9"):
        Translator.from_checkpoint(path, device="cpu", backend="onnxruntime", onnx_cache_dir=tmp_path)
    assert Translator.from_checkpoint(path, device="cpu", backend="onnxruntime", onnx_cache_dir=tmp_path,
                                      onnx_int8=False).quantization == "none"  # not read when turned off


def test_calibrate_cli_writes_a_checkpoint_the_backend_runs_in_int8(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "calibrated.safetensors"
    args = [str(SHIPPED), "--out", str(out), "--frames", "4", "--check-frames", "2", "--height", str(HEIGHT),
            "--width", str(WIDTH)]
    assert calibrate_main(args) == 0
    printed = capsys.readouterr().out
    assert "int8 encoders (13 convolutions) vs fp32" in printed and f"wrote {out}" in printed
    doc = read_checkpoint_document(out)
    calibration = calibration_of(doc)
    assert calibration is not None and calibration.frames == 4 and "seed 7" in calibration.source
    assert doc["tensor_sha256"] == read_checkpoint_document(SHIPPED)["tensor_sha256"]  # the weights unchanged
    assert json.loads(out.with_suffix(".json").read_text())["extra"][DOCUMENT_KEY] == calibration.to_dict()

    frame = _frames(range(200, 201), seed=3)[0]
    rgb = ((frame[0][0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
    sem, inst = frame[1][0].numpy().astype(np.uint8), frame[2][0].numpy()
    runs = {}
    for int8 in (True, False):
        tr = Translator.from_checkpoint(out, device="cpu", backend="onnxruntime", onnx_cache_dir=tmp_path / "cache",
                                        onnx_int8=int8, threads=1)
        runs[int8] = (tr.quantization, tr.translate(rgb, sem, inst))
    assert runs[True][0].startswith("int8 encoders (calibrated on procedural")
    assert runs[False][0] == "none"
    assert sorted(p.name.split("_")[0] for p in (tmp_path / "cache").glob("*.onnx")) == ["lite", "lite-int8"]
    int8_cache = Translator.from_checkpoint(out, device="cpu", backend="onnxruntime", onnx_cache_dir=tmp_path).runner
    key = int8_cache.cache.digest
    monkeypatch.setattr("sim2real.translator.ort_backend.INT8_VERSION", 2)  # another quantizer: another key
    int8_cache._cache = None
    assert int8_cache.cache.digest != key
    diff = np.abs(runs[True][1].astype(int) - runs[False][1])
    assert 0 < diff.mean() < 0.5 and diff.max() <= 5


def test_calibrate_cli_refuses_user_errors_and_a_graph_over_its_bounds(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        calibrate_main([str(tmp_path / "missing.safetensors")])
    assert e.value.code == 2 and "no such checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        calibrate_main([str(SHIPPED), "--frames", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        calibrate_main([str(SHIPPED), "--out", str(tmp_path / "x.onnx")])
    assert e.value.code == 2 and "--out must end in .safetensors" in capsys.readouterr().err
    out = tmp_path / "never.safetensors"
    assert calibrate_main([str(SHIPPED), "--out", str(out), "--frames", "2", "--check-frames", "1", "--height",
                           str(HEIGHT), "--width", str(WIDTH), "--max-levels", "0.01"]) == 1
    assert "nothing written" in capsys.readouterr().err and not out.exists()


def test_export_cli_writes_the_int8_graph_and_refuses_an_uncalibrated_checkpoint(tmp_path: Path, capsys) -> None:
    from sim2real.translator.checkpoint import save_checkpoint
    from sim2real.translator.onnx_export import main as export_main

    out = tmp_path / "int8.onnx"
    assert export_main([str(SHIPPED), str(out), "--height", str(HEIGHT), "--width", str(WIDTH), "--int8"]) == 0
    printed = capsys.readouterr().out
    assert "int8 encoders" in printed and "tolerance 0.0627" in printed
    assert "int8" in OnnxTranslator(out).export_info
    loaded = load_checkpoint(SHIPPED, map_location="cpu")
    plain = save_checkpoint(tmp_path / "plain.safetensors", loaded.state_dict, loaded.config)
    assert export_main([str(plain), str(tmp_path / "x.onnx"), "--height", "64", "--width", "96", "--int8"]) == 2
    assert "no int8 calibration: run sim2real-calibrate-int8" in capsys.readouterr().err


def test_calibrating_an_fp16_checkpoint_ties_the_ranges_to_the_files_tensors(tmp_path: Path) -> None:
    """The network runs fp32 (build_generator converts), but the calibration names the file's fp16 tensors."""
    from sim2real.translator.checkpoint import save_checkpoint

    loaded = load_checkpoint(SHIPPED, map_location="cpu")
    half = {k: v.half() if v.is_floating_point() else v for k, v in loaded.state_dict.items()}
    fp16 = save_checkpoint(tmp_path / "fp16.safetensors", half, loaded.config)
    assert calibrate_main([str(fp16), "--frames", "2", "--check-frames", "1", "--height", str(HEIGHT), "--width",
                           str(WIDTH)]) == 0
    doc = read_checkpoint_document(fp16)
    assert calibration_of(doc).tensor_sha256 == doc["tensor_sha256"]  # loads: no "other weights"
