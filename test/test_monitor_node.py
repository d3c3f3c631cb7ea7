"""monitor_node as a real process on an isolated ROS domain, fed translated streams from this process.

The node scores with the shipped judge (models/judges/camvid_segmenter, a segmenter trained on real CamVid frames).
It sees a "clean" stream (translated image = a procedural frame) and a "garbage" stream (uniform noise with the
same kind of labels). The published window numbers are compared with the same computation done here
(sim2real.evaluation.monitor.score_frame over the same frames with the same judge), and the judge-mIoU threshold
is set between the two measured values, so WARN must appear for the garbage window only.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros_testing import allocate_domain_id, isolated_env, python_cmd

sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_scripts"))
from frame_driver import FrameDriver, stamp_ns, stamp_of

from sim2real.io.conversions import array_to_image

H, W = 180, 320
WINDOW = 3
NODE = "monitor_node"
FRAMES = 6  # procedural frames 0..5: 0-2 are sent clean, 3-5 as noise with their labels


@dataclass
class Stream:
    """Frames as (rgb, semantic, instance) uint8 / uint8 / uint16 arrays."""

    clean: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    noise: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    expected_clean: Any  # WindowSummary over clean frames 0-2
    expected_noise: Any  # WindowSummary over noise frames 3-5


@dataclass
class Session:
    driver: FrameDriver
    proc: subprocess.Popen
    log: Path
    stream: Stream
    metrics: list[dict[str, Any]]
    min_miou: float


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    import torch

    from sim2real.evaluation.frames import load_source_frames
    from sim2real.evaluation.monitor import MonitorWindow, score_frame
    from sim2real.nodes.monitor_node import load_monitor_judge

    torch.set_num_threads(1)
    source = load_source_frames(f"procedural:{FRAMES}", size=(H, W), hours=(12.0,))
    judge, _ = load_monitor_judge("", torch.device("cpu"))  # exactly what the node loads by default
    rgb = ((source.rgb + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    semantic = source.semantic.numpy().astype(np.uint8)
    instance = source.instance.numpy().astype(np.uint16)
    rng = np.random.default_rng(123)
    frames = [(rgb[i], semantic[i], instance[i]) for i in range(FRAMES)]
    clean = frames[:3]
    noise = [(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), s, n) for _, s, n in frames[3:]]
    summaries = []
    for offset, group in ((0, clean), (3, noise)):
        window = MonitorWindow(WINDOW)
        for k, arrays in enumerate(group):
            window.add(score_frame(judge, *arrays, stamp_ns=stamp_ns(offset + k)))
        summaries.append(window.summary())
    return Stream(clean, noise, summaries[0], summaries[1])


def node_cmd(*params: str) -> list[str]:
    return python_cmd("-m", "sim2real.nodes.monitor_node", "--ros-args",
                      *[a for p in params for a in ("-p", p)])


@pytest.fixture(scope="module")
def session(stream: Stream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    clean_miou, noise_miou = stream.expected_clean.judge_miou, stream.expected_noise.judge_miou
    # the judge must separate the two streams, else this test cannot say anything
    assert clean_miou > noise_miou + 0.05, (clean_miou, noise_miou)
    min_miou = (clean_miou + noise_miou) / 2  # threshold relative to the measured clean value
    tmp = tmp_path_factory.mktemp("monitor_node")
    domain = allocate_domain_id()
    env = isolated_env(tmp / "ros_home", domain_id=domain)
    env["OMP_NUM_THREADS"] = "1"
    log = tmp / "node.log"
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    cmd = node_cmd("device:=cpu", "rate_hz:=5.0", f"window:={WINDOW}",
                   f"min_frames:={WINDOW}", "min_instance_recall:=0.0", f"min_judge_miou:={min_miou:.6f}",
                   "diagnostics_period_s:=0.5", "warn_period_s:=0.0")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    driver = FrameDriver(context, in_prefix="/translated", out_prefix="/monitor_test_unused", name="monitor_driver")
    metrics: list[dict[str, Any]] = []
    driver.node.create_subscription(String, f"/{NODE}/metrics", lambda m: metrics.append(json.loads(m.data)),
                                    QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    try:
        driver.wait_for_node(labels=("semantic", "instance"), outputs=False, proc=proc)
        yield Session(driver, proc, log, stream, metrics, min_miou)
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


def send(s: Session, i: int, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray) -> None:
    """Publish one translated set with frame i's stamp on /translated/{image,semantic,instance}."""
    msgs = {"image": array_to_image(rgb, "rgb8"), "semantic": array_to_image(semantic, "mono8"),
            "instance": array_to_image(instance, "16UC1")}
    for name, msg in msgs.items():
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_of(i)
        msg.header.frame_id = "sim_cam"
        s.driver.pubs[name].publish(msg)


def wait_metrics(s: Session, predicate: Any, what: str, timeout: float = 20.0) -> dict[str, Any]:
    ok = s.driver.spin_until(lambda: any(predicate(m) for m in s.metrics), timeout)
    assert ok, f"no metrics with {what}; got {s.metrics[-1:] or 'none'}; node log:\n{node_log(s)[-3000:]}"
    return next(m for m in s.metrics if predicate(m))


def monitor_statuses(s: Session) -> list[Any]:
    return [st for arr in s.driver.diagnostics for st in arr.status if st.name == "sim2real monitor"]


def send_and_wait(s: Session, i: int, arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Send frame i and wait for the window that ends with it (sent one at a time: none is skipped)."""
    send(s, i, *arrays)
    return wait_metrics(s, lambda m: m["last_stamp_ns"] == stamp_ns(i), f"last_stamp_ns of frame {i}")


@pytest.mark.ros
def test_clean_stream_is_ok_with_the_expected_numbers(session: Session) -> None:
    s, exp = session, session.stream.expected_clean
    for i, arrays in enumerate(s.stream.clean):
        m = send_and_wait(s, i, arrays)
        assert m["frames_in_window"] == i + 1 and m["evaluated"] == i + 1 and m["skipped"] == 0
    assert m["first_stamp_ns"] == stamp_ns(0)
    assert m["judge_miou"] == pytest.approx(exp.judge_miou, abs=2e-3)
    if math.isnan(exp.instance_recall):
        assert m["instance_recall"] is None and exp.instances == 0
    else:
        assert m["instance_recall"] == pytest.approx(exp.instance_recall)
    assert m["labelled_pixels"] == exp.labelled_pixels and m["instances"] == exp.instances
    for name, entry in exp.reported_classes().items():
        assert m["classes"][name]["pixels"] == entry["pixels"]
    assert m["level"] == "OK" and m["message"] == "ok", m
    # /diagnostics carried the same window, OK all along
    assert s.driver.spin_until(lambda: any(st.message == "ok" for st in monitor_statuses(s)), 5.0)
    statuses = monitor_statuses(s)
    assert statuses and all(st.level == b"\x00" for st in statuses), [(st.level, st.message) for st in statuses]
    last = next(dict((kv.key, kv.value) for kv in st.values) for st in reversed(statuses) if st.message == "ok")
    assert float(last["judge_miou"]) == pytest.approx(m["judge_miou"], abs=1e-4)
    assert last["frames_in_window"] == "3" and last["window"] == "3"
    assert {"iou.car", "iou.pedestrian", "iou.bicyclist", "iou.pole", "iou.sign/symbol", "instance_recall",
            "skipped"} <= set(last)
    assert "below threshold" not in node_log(s)


@pytest.mark.ros
def test_garbage_stream_warns_with_a_low_judge_miou(session: Session) -> None:
    s, exp = session, session.stream.expected_noise
    n_ok = len(monitor_statuses(s))
    for k, arrays in enumerate(s.stream.noise):
        m = send_and_wait(s, 3 + k, arrays)
    assert m["first_stamp_ns"] == stamp_ns(3) and m["frames_in_window"] == 3  # the window slid past the clean ones
    assert m["judge_miou"] == pytest.approx(exp.judge_miou, abs=2e-3)
    assert m["judge_miou"] < s.min_miou < session.stream.expected_clean.judge_miou
    assert m["level"] == "WARN"
    assert f"judge mIoU {m['judge_miou']:.3f} < min_judge_miou {s.min_miou:.3f}" in m["message"]
    assert f"(by {s.min_miou - m['judge_miou']:.3f})" in m["message"]
    assert s.driver.spin_until(lambda: any(st.level == b"\x01" for st in monitor_statuses(s)), 5.0)
    warn = next(st for st in monitor_statuses(s) if st.level == b"\x01")
    assert "judge mIoU" in warn.message and "min_judge_miou" in warn.message
    assert all(st.level == b"\x00" for st in monitor_statuses(s)[:n_ok])  # WARN only once the garbage came
    assert s.driver.spin_until(lambda: "label preservation below threshold" in node_log(s), 5.0), node_log(s)[-2000:]


@pytest.mark.ros
def test_bad_messages_are_counted_and_bursts_are_skipped_not_queued(session: Session) -> None:
    s = session
    rgb, semantic, instance = s.stream.clean[0]
    send(s, 10, rgb, semantic[: H // 2], instance)  # semantic of the wrong size
    m = wait_metrics(s, lambda m: m["bad_messages"] >= 1, "a bad message counted", timeout=10.0)
    assert m["evaluated"] == 6
    # a burst faster than rate_hz: only the newest pending set is evaluated, the others are skipped
    for i in range(20, 30):
        send(s, i, *s.stream.clean[i % 3])
    m = wait_metrics(s, lambda m: m["last_stamp_ns"] == stamp_ns(29), "the burst's last frame", timeout=15.0)
    s.driver.spin_for(1.0)
    last = s.metrics[-1]
    # 6 + 1 bad + up to 10 burst sets (sensor-data QoS keeps the last 5 per topic: a burst may lose some)
    assert 8 <= last["sets_received"] <= 17
    assert last["skipped"] >= 1
    assert last["sets_received"] == last["evaluated"] + last["skipped"] + last["bad_messages"]
    assert s.proc.poll() is None, "the node must survive bad messages"
    assert "bad message on /translated/semantic: size_mismatch" in node_log(s)
    # an image whose label partners never come is dropped by the synchroniser, counted as unmatched
    send(s, 40, rgb, semantic, instance)
    img = array_to_image(rgb, "rgb8")
    img.header.stamp.sec, img.header.stamp.nanosec = stamp_of(41)
    s.driver.pubs["image"].publish(img)
    send(s, 42, rgb, semantic, instance)
    m = wait_metrics(s, lambda m: m["last_stamp_ns"] == stamp_ns(42), "frame 42 evaluated")
    assert m["unmatched_messages"] >= 1


@pytest.mark.ros
def test_thresholds_change_at_run_time_and_are_validated(session: Session) -> None:
    s = session
    (bad,) = s.driver.set_parameters(NODE, min_frames=WINDOW + 1)
    assert not bad.successful and "min_frames must be <= window" in bad.reason
    (ok,) = s.driver.set_parameters(NODE, min_judge_miou=1.0)
    assert ok.successful
    n = len(monitor_statuses(s))
    assert s.driver.spin_until(lambda: len(monitor_statuses(s)) > n, 5.0)
    latest = monitor_statuses(s)[-1]  # the window is clean now, but no judge is perfect on these frames
    assert latest.level == b"\x01" and "min_judge_miou 1.000" in latest.message


@pytest.mark.ros
def test_missing_judge_fails_at_start_naming_the_path(tmp_path: Path) -> None:
    env = isolated_env(tmp_path / "ros_home", domain_id=allocate_domain_id())
    env["OMP_NUM_THREADS"] = "1"
    missing = tmp_path / "nowhere" / "judge.safetensors"
    t0 = time.monotonic()
    out = subprocess.run(node_cmd(f"judge:={missing}"), env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert str(missing) in out.stdout + out.stderr and "does not exist" in out.stdout + out.stderr
    not_a_judge = tmp_path / "model.safetensors"
    not_a_judge.write_bytes((Path(__file__).resolve().parents[1] / "models" / "default.safetensors").read_bytes())
    out = subprocess.run(node_cmd(f"judge:={not_a_judge}"), env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "is not a sim2real judge" in out.stdout + out.stderr
    assert time.monotonic() - t0 < 60
