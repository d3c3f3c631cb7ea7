"""translate_node's ``backend`` parameter: declared read-only with its choices, validated at start-up; the
``threads`` rule; ``onnx_spin_us`` from the parameter to onnxruntime's session options; ``onnx_int8`` to the
backend (the shipped model is calibrated)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ros_testing import isolated_env, python_cmd, translate_node_recording_loads


def test_backend_parameter_is_declared_read_only_with_its_choices() -> None:
    from sim2real.nodes.translate.params import BACKENDS, check_choice, parameter_table

    table = {name: (default, desc) for name, default, desc in parameter_table()}
    default, desc = table["backend"]
    assert default == "auto" and desc.read_only
    assert desc.additional_constraints == "auto | torch | onnxruntime"
    assert BACKENDS == ("auto", "torch", "onnxruntime")
    assert check_choice("backend", "onnxruntime", BACKENDS) is None
    assert "backend must be one of auto, torch, onnxruntime" in (check_choice("backend", "trt", BACKENDS) or "")


def test_threads_parameter_and_its_auto_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from sim2real.nodes.translate.model import inference_threads
    from sim2real.nodes.translate.params import parameter_table

    default, desc = {name: (d, x) for name, d, x in parameter_table()}["threads"]
    assert default == 0 and desc.read_only and desc.integer_range[0].from_value == 0
    assert inference_threads(3) == 3  # explicit wins over everything
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert inference_threads(0) == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert inference_threads(0) == 1  # 2 cores: one for inference, one for ROS / DDS / the simulator
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert inference_threads(0) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert inference_threads(0) == 15


def test_load_translator_passes_the_backend(tmp_path: Path) -> None:
    from sim2real.nodes.translate_node import load_translator

    repo = Path(__file__).resolve().parent.parent
    model = repo / "models" / "default.safetensors"
    assert load_translator(str(model), "cpu", "fp32", "torch").backend == "torch"  # type: ignore[attr-defined]
    assert load_translator(str(model), "cpu", "fp32", "auto").backend == "onnxruntime"  # type: ignore[attr-defined]
    assert load_translator(str(model), "cpu", "bf16", "auto").backend == "torch"  # type: ignore[attr-defined]


def test_onnx_spin_us_reaches_onnxruntimes_session_options() -> None:
    """0 (the default): idle threads sleep at once; N > 0: they spin up to N microseconds. Refused below 0."""
    from sim2real.core.errors import ConfigError
    from sim2real.nodes.translate.model import load_translator
    from sim2real.nodes.translate.params import parameter_table

    default, desc = {name: (d, x) for name, d, x in parameter_table()}["onnx_spin_us"]
    assert default == 0 and desc.read_only and desc.integer_range[0].from_value == 0
    model = str(Path(__file__).resolve().parent.parent / "models" / "default.safetensors")
    for spin_us, allow, duration in ((0, "0", ""), (700, "1", "700")):
        translator = load_translator(model, "cpu", "fp32", "onnxruntime", onnx_spin_us=spin_us)
        translator.warmup(64, 96)
        (session,) = translator._backend._sessions.values()  # type: ignore[attr-defined]
        options = session._session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == allow
        if duration:
            assert options.get_session_config_entry("session.intra_op.spin_duration_us") == duration
    with pytest.raises(ConfigError, match="onnx_spin_us"):
        load_translator(model, "cpu", "fp32", "onnxruntime", onnx_spin_us=-1)


@pytest.mark.ros
def test_the_node_passes_onnx_spin_us_to_every_model_it_loads(ros_context: Any, tmp_path: Path) -> None:
    from rclpy.parameter import Parameter

    with translate_node_recording_loads(ros_context, onnx_spin_us=800) as (node, calls):
        assert calls == [{"onnx_spin_us": 800}]
        assert not node.set_parameters([Parameter("onnx_spin_us", value=0)])[0].successful  # read-only
        model = str(Path(__file__).resolve().parent.parent / "models" / "default.json")  # a model change ...
        assert not node.set_parameters([Parameter("model", value=model)])[0].successful  # ... refused: not a model
        other = tmp_path / "other.safetensors"
        other.write_bytes((Path(__file__).resolve().parent.parent / "models" / "default.safetensors").read_bytes())
        assert node.set_parameters([Parameter("model", value=str(other))])[0].successful
        assert calls[-1] == {"onnx_spin_us": 800}  # the new model got it too


def test_onnx_int8_runs_the_calibrated_shipped_model_in_int8_unless_turned_off() -> None:
    from sim2real.nodes.translate.model import ModelSlot, load_translator
    from sim2real.nodes.translate.params import parameter_table

    default, desc = {name: (d, x) for name, d, x in parameter_table()}["onnx_int8"]
    assert default is True and desc.read_only
    model = str(Path(__file__).resolve().parent.parent / "models" / "default.safetensors")
    for int8 in (True, False):
        translator = load_translator(model, "cpu", "fp32", "onnxruntime", onnx_int8=int8)
        translator.warmup(64, 96)
        (session,) = translator._backend._sessions.values()  # type: ignore[attr-defined]
        assert ("int8" in session.export_info) == int8  # the graph's record of its quantization
        assert translator.quantization.startswith("int8 encoders") == int8  # type: ignore[attr-defined]
    assert load_translator(model, "cpu", "fp32", "torch").quantization == "none"  # type: ignore[attr-defined]
    slot = ModelSlot(load_translator, model, device="cpu", precision="fp32", backend="onnxruntime",
                     logger=logging.getLogger("test"))
    assert slot.info()["quantization"].startswith("int8 encoders (calibrated on procedural")  # diagnostics, stats


@pytest.mark.ros
def test_the_node_passes_onnx_int8_off_to_every_model_it_loads(ros_context: Any, tmp_path: Path) -> None:
    from rclpy.parameter import Parameter

    with translate_node_recording_loads(ros_context, onnx_int8=False) as (node, calls):
        assert calls == [{"onnx_int8": False}]
        assert not node.set_parameters([Parameter("onnx_int8", value=True)])[0].successful  # read-only
        other = tmp_path / "other.safetensors"
        other.write_bytes((Path(__file__).resolve().parent.parent / "models" / "default.safetensors").read_bytes())
        assert node.set_parameters([Parameter("model", value=str(other))])[0].successful
        assert calls[-1] == {"onnx_int8": False}
        assert node.info()["quantization"] == "none"
    with translate_node_recording_loads(ros_context) as (node, calls):
        assert calls == [{}]  # on by default: nothing passed, the Translator's default


@pytest.mark.ros
def test_invalid_backend_stops_the_node_with_the_reason(tmp_path: Path) -> None:
    cmd = python_cmd("-m", "sim2real.nodes.translate_node", "--ros-args", "-p", "backend:=tensorrt",
                     "-p", "device:=cpu", "-p", "warmup_width:=0")
    proc = subprocess.run(cmd, env=isolated_env(tmp_path / "ros_home"), capture_output=True, timeout=120)
    assert proc.returncode == 1
    assert b"backend must be one of auto, torch, onnxruntime; got 'tensorrt'" in proc.stdout + proc.stderr


def test_default_memory_guard_admits_4k_and_refuses_8k() -> None:
    """#17 finding 3: the old default admitted a 7680x4320 frame (~9 GB, 108 s); the default is now 4K UHD."""
    from sensor_msgs.msg import Image

    from sim2real.nodes.translate.frames import FrameError, check_image_message
    from sim2real.nodes.translate.params import MAX_IMAGE_PIXELS, parameter_table

    default, desc = {name: (d, x) for name, d, x in parameter_table()}["max_image_pixels"]
    assert default == MAX_IMAGE_PIXELS == 3840 * 2160 and desc.read_only and "GB" in desc.description
    uhd = Image(height=2160, width=3840, encoding="rgb8", step=3 * 3840)
    uhd.data = bytes(3 * 3840 * 2160)
    check_image_message(uhd, default)
    with pytest.raises(FrameError, match="above max_image_pixels") as info:
        check_image_message(Image(height=4320, width=7680, encoding="rgb8", step=3 * 7680), default)
    assert info.value.reason == "too_large"
