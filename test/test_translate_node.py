"""translate_node as a real process on an isolated ROS domain, driven from this process.

The tests of this module share one node process (started once: importing torch and loading a model is the
slow part) and run in file order; the last one stops the node with SIGINT and checks the final accounting.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros_testing import allocate_domain_id, isolated_env, python_cmd

sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_scripts"))
from frame_driver import FrameDriver, make_checkpoint, sim_frame, stamp_ns

from sim2real.io.conversions import array_to_image
from sim2real.nodes.translate.frames import (
    Frame,
    FrameError,
    camera_topics,
    check_image_message,
    compose_preview,
    decode_frame,
    encode_output,
)

H, W = 64, 96
NODE = "translate_node"


@dataclass
class Session:
    driver: FrameDriver
    proc: Any
    log: Path
    stats_file: Path
    model_a: Path
    model_b: Path
    expect_a: Any
    expect_b: Any


def node_cmd(model: Path, stats_file: Path, *extra: str) -> list[str]:
    """translate_node on /sim/camera/* with small warm-up, stats file, 1 s summaries and a 5 Hz preview."""
    remaps = [a for name in ("image", "semantic", "instance", "camera_info")
              for a in ("-r", f"{name}:=/sim/camera/{name}")]
    params = {
        "model": str(model), "device": "cpu", "precision": "fp32", "warmup_width": 96, "warmup_height": 64,
        "stats_file": str(stats_file), "summary_period_s": 1.0, "preview_rate_hz": 5.0,
    }
    return python_cmd("-m", "sim2real.nodes.translate_node", "--ros-args", *remaps,
                      *[a for k, v in params.items() for a in ("-p", f"{k}:={v}")], *extra)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    import subprocess

    import rclpy

    from sim2real.translator.inference import Translator

    tmp = tmp_path_factory.mktemp("translate_node")
    model_a = make_checkpoint(tmp / "a.safetensors", seed=1)
    model_b = make_checkpoint(tmp / "b.safetensors", seed=2)
    domain = allocate_domain_id()
    env = isolated_env(tmp / "ros_home", domain_id=domain)
    env["OMP_NUM_THREADS"] = "1"
    log, stats_file = tmp / "node.log", tmp / "stats.json"
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    with open(log, "wb") as out:
        proc = subprocess.Popen(node_cmd(model_a, stats_file), env=env, stdout=out, stderr=subprocess.STDOUT)
    driver = FrameDriver(context)
    try:
        driver.wait_for_node(proc=proc)
        yield Session(
            driver, proc, log, stats_file, model_a, model_b,
            Translator.from_checkpoint(model_a, device="cpu", precision="fp32"),
            Translator.from_checkpoint(model_b, device="cpu", precision="fp32"),
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        driver.close()
        context.try_shutdown()


def node_log(s: Session) -> str:
    return s.log.read_text(errors="replace")


def output_for(s: Session, i: int, timeout: float = 30.0) -> Any:
    """The translated image with frame i's stamp (waits for it)."""
    want = stamp_ns(i)
    ok = s.driver.spin_until(lambda: want in s.driver.received_stamps(), timeout)
    assert ok, f"no translated image for frame {i}; node log:\n{node_log(s)[-3000:]}"
    return next(m for m in s.driver.received("image") if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == want)


def pixels(msg: Any) -> np.ndarray:
    from sim2real.io.conversions import image_to_array

    return np.asarray(image_to_array(msg))


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 2 and diff.mean() < 0.05, f"max diff {diff.max()}, mean {diff.mean():.3f}"


@pytest.mark.ros
def test_translated_image_carries_the_input_header_and_the_model_output(session: Session) -> None:
    s = session
    for i in range(3):
        sent = s.driver.send(i, H, W)
        out = output_for(s, i)
        assert out.header.stamp.sec == sent["image"].header.stamp.sec
        assert out.header.stamp.nanosec == sent["image"].header.stamp.nanosec
        assert out.header.frame_id == "sim_cam"
        assert (out.encoding, out.height, out.width) == ("rgb8", H, W)
        assert_close(pixels(out), s.expect_a.translate(*sim_frame(i, H, W)))
        assert not np.array_equal(pixels(out), sim_frame(i, H, W)[0]), "output must not be the input"


@pytest.mark.ros
def test_labels_and_camera_info_are_republished_byte_identical(session: Session) -> None:
    from rclpy.serialization import deserialize_message

    s = session
    assert s.driver.spin_until(lambda: all(len(s.driver.raw[n]) >= 3 for n in ("semantic", "instance", "camera_info")),
                               10.0)
    for name in ("semantic", "instance", "camera_info"):
        for i, raw in zip(range(3), s.driver.raw[name], strict=False):
            # the published message, field for field (CDR bytes may differ in alignment padding, which the
            # serializer leaves uninitialised); label payloads byte for byte
            sent = s.driver.sent[i][name]
            received = deserialize_message(raw, type(sent))
            assert received == sent, f"{name} of frame {i} differs"
            if name != "camera_info":
                assert bytes(received.data) == bytes(sent.data)
    # the preview (rate-limited) shows sim | translated | overlay side by side
    assert s.driver.spin_until(lambda: len(s.driver.raw["preview"]) >= 1, 10.0)
    preview = s.driver.received("preview")[0]
    assert (preview.height, preview.width) == (H, 3 * W)
    k = next(i for i in range(3) if preview.header.stamp.sec == 100 + i)
    np.testing.assert_array_equal(pixels(preview)[:, :W], sim_frame(k, H, W)[0])


@pytest.mark.ros
def test_malformed_message_is_logged_counted_and_the_next_frame_translated(session: Session) -> None:
    from sensor_msgs.msg import Image

    s = session
    bad = Image(height=H, width=W, encoding="rgb8", step=3 * W)
    bad.data = bytes(100)  # far too short for 96x64 rgb8
    bad.header.stamp.sec, bad.header.stamp.nanosec = 103, 3000
    bad.header.frame_id = "sim_cam"
    s.driver.send(3, H, W, override={"image": bad})
    s.driver.send(4, H, W)
    out = output_for(s, 4)
    assert_close(pixels(out), s.expect_a.translate(*sim_frame(4, H, W)))
    assert stamp_ns(3) not in s.driver.received_stamps()

    def counted() -> bool:
        return any(kv.key == "bad_message.image:conversion" and kv.value == "1"
                   for d in s.driver.diagnostics for st in d.status for kv in st.values)

    assert s.driver.spin_until(counted, 5.0), "diagnostics did not count the bad image"
    assert "bad message on /sim/camera/image" in node_log(s)
    assert s.proc.poll() is None


@pytest.mark.ros
def test_invalid_parameter_values_are_rejected_with_a_reason(session: Session) -> None:
    s = session
    (res,) = s.driver.set_parameters(NODE, label_policy="sometimes")
    assert not res.successful and "label_policy must be one of" in res.reason
    (res,) = s.driver.set_parameters(NODE, output_encoding="yuv422")
    assert not res.successful and "output_encoding" in res.reason
    (res,) = s.driver.set_parameters(NODE, label_timeout_s=0.0)  # below the FloatingPointRange
    assert not res.successful and res.reason
    (res,) = s.driver.set_parameters(NODE, device="cuda:0")  # read-only
    assert not res.successful and res.reason
    (res,) = s.driver.set_parameters(NODE, model=str(s.model_a.parent / "missing.safetensors"))
    assert not res.successful and "missing.safetensors" in res.reason and "does not exist" in res.reason


@pytest.mark.ros
def test_model_switch_at_run_time_takes_effect(session: Session) -> None:
    s = session
    (res,) = s.driver.set_parameters(NODE, model=str(s.model_b))
    assert res.successful, res.reason
    s.driver.send(5, H, W)
    out = pixels(output_for(s, 5))
    frame = sim_frame(5, H, W)
    assert_close(out, s.expect_b.translate(*frame))
    assert np.abs(out.astype(int) - s.expect_a.translate(*frame).astype(int)).mean() > 5, "models A and B agree?"
    (res,) = s.driver.set_parameters(NODE, model=str(s.model_a.parent / "nope.safetensors"))
    assert not res.successful
    s.driver.send(6, H, W)
    assert_close(pixels(output_for(s, 6)), s.expect_b.translate(*sim_frame(6, H, W)))


@pytest.mark.ros
def test_frames_faster_than_inference_never_go_backwards(session: Session) -> None:
    s = session
    for i in range(10, 50):  # as fast as we can publish, frames large enough that inference is slower
        s.driver.send(i, 6 * H, 6 * W)
    s.driver.spin_until(lambda: stamp_ns(49) in s.driver.received_stamps(), 20.0)
    stamps = s.driver.received_stamps()
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "an older frame followed a newer one"
    burst = [t for t in stamps if t >= stamp_ns(10)]
    assert stamp_ns(49) in burst and len(burst) < 40, "expected drops (superseded) during the burst"


@pytest.mark.ros
def test_label_policies_when_labels_stop(session: Session) -> None:
    s = session
    results = s.driver.set_parameters(NODE, label_policy="translate_without_instances", label_timeout_s=0.5)
    assert all(r.successful for r in results), [r.reason for r in results]
    s.driver.spin_for(0.8)
    s.driver.send(60, H, W, only=("image",))
    out = output_for(s, 60)
    rgb, semantic, instance = sim_frame(60, H, W)
    assert_close(pixels(out), s.expect_b.translate(rgb, np.full_like(semantic, 255), np.zeros_like(instance)))
    assert "no message on /sim/camera/semantic" in node_log(s)
    assert "label_policy=translate_without_instances" in node_log(s)

    results = s.driver.set_parameters(NODE, label_policy="passthrough", output_encoding="bgr8")
    assert all(r.successful for r in results), [r.reason for r in results]
    sent = s.driver.send(61, H, W, only=("image",))
    out = output_for(s, 61)
    assert out.encoding == "rgb8" and bytes(out.data) == bytes(sent["image"].data)  # unchanged input
    assert out.header.frame_id == "sim_cam"


@pytest.mark.ros
def test_shutdown_accounts_for_every_frame(session: Session) -> None:
    s = session
    s.driver.spin_for(0.3)
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(timeout=20) == 0, node_log(s)[-3000:]
    s.driver.spin_for(0.2)
    stats = json.loads(s.stats_file.read_text())
    assert stats["accounted"] is True
    assert stats["frames_in"] == stats["frames_out"] + sum(stats["drops"].values())
    assert stats["frames_out"] == len(s.driver.raw["image"])
    assert stats["drops"]["bad_message"] == 1
    assert stats["drops"].get("superseded", 0) >= 1
    assert stats["bad_messages"] == {"image:conversion": 1}
    assert stats["model_path"] == str(s.model_b)
    assert stats["inference_ms"]["p50"] > 0 and stats["end_to_end_ms"]["p95"] >= stats["end_to_end_ms"]["p50"]
    assert "final: in=" in node_log(s) and "accounted=True" in node_log(s)


# ------------------------------------------------------------------------------------- pure frame logic


def frame_of(i: int, **override: object) -> Frame:
    rgb, semantic, instance = sim_frame(i, H, W)
    msgs = {"image": array_to_image(rgb, "rgb8"), "semantic": array_to_image(semantic, "mono8"),
            "instance": array_to_image(instance, "16UC1"), "camera_info": None}
    msgs.update(override)
    return Frame(msgs["image"], msgs["semantic"], msgs["instance"], msgs["camera_info"], stamp_ns(i), 0.0)


def test_decode_frame_gives_the_arrays_and_defaults_for_missing_labels() -> None:
    rgb, semantic, instance = decode_frame(frame_of(1))
    exp = sim_frame(1, H, W)
    np.testing.assert_array_equal(rgb, exp[0])
    np.testing.assert_array_equal(semantic, exp[1])
    assert instance.dtype == np.uint16 and np.array_equal(instance, exp[2])
    _, semantic, instance = decode_frame(frame_of(1, semantic=None, instance=None))
    assert (semantic == 255).all() and (instance == 0).all() and semantic.shape == (H, W)
    bgr = array_to_image(np.ascontiguousarray(exp[0][:, :, ::-1]), "bgr8")
    np.testing.assert_array_equal(decode_frame(frame_of(1, image=bgr))[0], exp[0])


@pytest.mark.parametrize(("override", "topic", "reason"), [
    ({"semantic": array_to_image(np.zeros((H, W), np.uint16), "16UC1")}, "semantic", "label_encoding"),
    ({"instance": array_to_image(np.zeros((H, W, 3), np.uint8), "rgb8")}, "instance", "label_encoding"),
    ({"semantic": array_to_image(np.zeros((H, W + 1), np.uint8), "mono8")}, "semantic", "size_mismatch"),
    ({"image": array_to_image(np.zeros((H, W), np.float32), "32FC1")}, "image", "conversion"),
])
def test_decode_frame_names_the_bad_topic_and_reason(override: dict, topic: str, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_frame(frame_of(2, **override))
    assert (info.value.topic, info.value.reason) == (topic, reason)


def _raw_rgb8(**fields: object) -> object:
    from sensor_msgs.msg import Image

    msg = Image(height=H, width=W, encoding="rgb8", step=3 * W)
    msg.data = bytes(3 * W * H)
    for k, v in fields.items():
        setattr(msg, k, v)
    return msg


@pytest.mark.parametrize(("fields", "reason", "detail"), [
    ({"encoding": "RGB8"}, "conversion", "unknown image encoding 'RGB8'"),
    ({"width": 0, "step": 0, "data": b""}, "conversion", "width=0"),
    ({"step": 3 * W - 1}, "conversion", f"step={3 * W - 1} is smaller"),
    ({"data": bytes(3 * W * H - 1)}, "conversion", f"len(data)={3 * W * H - 1}"),
    ({"height": 10_000, "width": 10_000, "step": 30_000}, "too_large", "above max_image_pixels=100000"),
])
def test_check_image_message_rejects_a_broken_layout_without_reading_pixels(
        fields: dict, reason: str, detail: str) -> None:
    with pytest.raises(FrameError) as info:
        check_image_message(_raw_rgb8(**fields), max_pixels=100_000)
    assert (info.value.topic, info.value.reason) == ("image", reason)
    assert detail in info.value.detail


def test_check_image_message_accepts_row_padding_and_any_size_without_a_limit() -> None:
    check_image_message(_raw_rgb8(step=3 * W + 5, data=bytes((3 * W + 5) * H)), max_pixels=H * W)
    check_image_message(_raw_rgb8(), max_pixels=None)
    with pytest.raises(FrameError):
        check_image_message(_raw_rgb8(), max_pixels=H * W - 1)


def test_encode_output() -> None:
    rgb = sim_frame(3, H, W)[0]
    assert encode_output(rgb, "rgb8", "bgr8")[1:] == ("rgb8", True)
    arr, enc, exact = encode_output(rgb, "bgr8", "rgb8")
    assert enc == "bgr8" and exact and np.array_equal(arr, rgb[:, :, ::-1])
    arr, enc, exact = encode_output(rgb, "input", "bgra8")
    assert enc == "bgra8" and arr.shape == (H, W, 4) and (arr[:, :, 3] == 255).all()
    assert np.array_equal(arr[:, :, :3], rgb[:, :, ::-1])
    arr, enc, _ = encode_output(rgb, "input", "mono8")
    assert enc == "mono8" and arr.shape == (H, W)
    assert encode_output(rgb, "input", "rgb16")[1:] == ("rgb8", False)
    with pytest.raises(ValueError, match="output_encoding"):
        encode_output(rgb, "yuv", "rgb8")


def test_compose_preview_and_camera_topics() -> None:
    rgb, semantic, _ = sim_frame(4, H, W)
    translated = 255 - rgb
    preview = compose_preview(rgb, translated, semantic)
    assert preview.shape == (H, 3 * W, 3)
    assert np.array_equal(preview[:, :W], rgb) and np.array_equal(preview[:, W : 2 * W], translated)
    assert not np.array_equal(preview[:, 2 * W :], translated)  # the palette is blended in
    inputs, outputs = camera_topics("")
    assert inputs["image"] == "image" and outputs["image"] == "translated/image"
    inputs, outputs = camera_topics("/rig/front/")
    assert inputs["camera_info"] == "/rig/front/camera_info"
    assert outputs["preview"] == "translated/rig/front/preview"


# ----------------------------------------------------------------------------------- several cameras


@pytest.mark.ros
def test_one_node_serves_two_cameras_with_batched_inference(tmp_path: Path) -> None:
    import subprocess

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from sim2real.translator.inference import Translator

    model = make_checkpoint(tmp_path / "m.safetensors", seed=5)
    expect = Translator.from_checkpoint(model, device="cpu", precision="fp32")
    domain = allocate_domain_id()
    env = isolated_env(tmp_path / "ros_home", domain_id=domain)
    env["OMP_NUM_THREADS"] = "1"
    stats_file, log = tmp_path / "stats.json", tmp_path / "node.log"
    cmd = python_cmd("-m", "sim2real.nodes.translate_node", "--ros-args", "-p", f"model:={model}",
                     "-p", "device:=cpu", "-p", "precision:=fp32", "-p", "warmup_width:=96", "-p", "warmup_height:=64",
                     "-p", "cameras:=[/cam_a, /cam_b]", "-p", "max_batch:=2", "-p", f"stats_file:={stats_file}")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    executor = SingleThreadedExecutor(context=context)
    cams = {c: FrameDriver(context, in_prefix=f"/{c}", out_prefix=f"/translated/{c}", name=f"driver_{c}",
                           executor=executor) for c in ("cam_a", "cam_b")}
    offset = {"cam_a": 0, "cam_b": 100}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        for d in cams.values():
            d.wait_for_node(proc=proc)
        for i in range(2):  # one frame per camera at a time (a second one could supersede the first)
            for c, d in cams.items():
                d.send(offset[c] + i, H, W)
            for c, d in cams.items():
                k = offset[c] + i
                assert d.spin_until(lambda d=d, k=k: stamp_ns(k) in d.received_stamps(), 30), log.read_text()[-2000:]
                msg = next(m for m in d.received("image") if m.header.stamp.sec == 100 + k)
                assert msg.header.frame_id == "sim_cam"
                assert_close(pixels(msg), expect.translate(*sim_frame(k, H, W)))
        for i in range(10, 30):  # both cameras at once, larger frames so inference is slower: batches of 2
            for c, d in cams.items():
                d.send(offset[c] + i, 6 * H, 6 * W)
        for c, d in cams.items():
            d.spin_until(lambda d=d, c=c: stamp_ns(offset[c] + 29) in d.received_stamps(), 20)
            stamps = d.received_stamps()
            assert stamps == sorted(stamps), f"{c}: an older frame followed a newer one"
            assert all(stamp_ns(offset[c]) <= t <= stamp_ns(offset[c] + 29) for t in stamps), "frames crossed cameras"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for d in cams.values():
            d.close()
        executor.shutdown()
        context.try_shutdown()
    stats = json.loads(stats_file.read_text())
    assert stats["accounted"] and stats["frames_out"] == sum(len(d.raw["image"]) for d in cams.values())
    assert stats["counters"].get("batch_size_2", 0) >= 1, stats["counters"]
    assert "/cam_a/image" in stats["cameras"] and "/cam_b/image" in stats["cameras"]


def test_check_camera_info_against_the_image_size() -> None:
    from sensor_msgs.msg import CameraInfo

    from sim2real.nodes.translate.frames import check_camera_info

    assert check_camera_info(CameraInfo(width=W, height=H), H, W) is None
    assert check_camera_info(CameraInfo(), H, W) is None  # uncalibrated (0 x 0): any size
    reason = check_camera_info(CameraInfo(width=2 * W, height=H), H, W)
    assert reason is not None and f"describes a {2 * W}x{H} image" in reason and f"image is {W}x{H}" in reason
    binned = CameraInfo(width=4 * W, height=4 * H, binning_x=4, binning_y=4)
    assert check_camera_info(binned, H, W) is None
    binned.binning_y = 2
    assert check_camera_info(binned, H, W) is not None
    with pytest.raises(FrameError) as info:
        decode_frame(frame_of(5, camera_info=CameraInfo(width=W + 1, height=H)))
    assert (info.value.topic, info.value.reason) == ("camera_info", "size_mismatch")


def _png(array: np.ndarray, encoding: str = "rgb8") -> object:
    from sim2real.io.conversions import array_to_compressed

    return array_to_compressed(array, encoding, "png")


def _png_header(width: int, height: int) -> bytes:
    """A grey 8-bit PNG header of ``width`` x ``height`` with almost no pixel data (a few dozen bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def check_message_detail(side: int) -> str:
    from sensor_msgs.msg import CompressedImage

    with pytest.raises(FrameError) as info:
        check_image_message(CompressedImage(format="png", data=_png_header(side, side)), max_pixels=3840 * 2160)
    return info.value.detail


def test_compressed_image_is_checked_from_its_header_without_decoding() -> None:
    from sensor_msgs.msg import CompressedImage

    from sim2real.nodes.translate.frames import compressed_size, input_encoding

    rgb = sim_frame(6, H, W)[0]
    msg = _png(rgb)
    assert compressed_size(msg) == (W, H) and input_encoding(msg) == "rgb8"
    check_image_message(msg, max_pixels=H * W)
    # decompression bombs: PNG headers claiming 9000x9000 and 20000x20000 pixels in a few dozen bytes are
    # refused from the header (the second by Pillow's own limit too), never decoded
    for side in (9_000, 20_000):
        bomb = CompressedImage(format="mono8; png compressed ", data=_png_header(side, side))
        with pytest.raises(FrameError) as info:
            check_image_message(bomb, max_pixels=3840 * 2160)
        assert (info.value.topic, info.value.reason) == ("image", "too_large"), info.value.detail
    assert "9000x9000 = 81000000 pixels" in check_message_detail(9_000)
    for data in (b"", b"not an image at all"):
        with pytest.raises(FrameError) as info:
            check_image_message(CompressedImage(format="jpeg", data=data), max_pixels=None)
        assert info.value.reason == "conversion"
    decoded = decode_frame(frame_of(6, image=msg))
    np.testing.assert_array_equal(decoded[0], rgb)  # png: the very pixels
