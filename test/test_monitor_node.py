"""monitor_node as a real process on an isolated ROS domain, fed translated streams from this process.

Tiny critics are trained in the fixture (sim2real.evaluation.evaluate.train_critics, 40 steps at 64x128 on six
procedural frames) and saved as a critics.safetensors. The node then sees a "clean" stream (translated image = the
procedural frame the critics were trained on) and a "garbage" stream (uniform noise with the same kind of
labels). The published window numbers are compared with the same computation done here
(sim2real.evaluation.monitor.score_frame over the same frames), and the flip-rate threshold is set between the two
measured values, so WARN must appear for the garbage window only.
"""

from __future__ import annotations

import json
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

H, W = 64, 128
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
    critics: Path


@dataclass
class Session:
    driver: FrameDriver
    proc: subprocess.Popen
    log: Path
    stream: Stream
    metrics: list[dict[str, Any]]
    max_flip_rate: float


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    import torch

    from sim2real.evaluation.evaluate import load_critics, load_source_frames, save_critics, train_critics
    from sim2real.evaluation.monitor import MonitorWindow, score_frame

    torch.set_num_threads(1)
    source = load_source_frames(f"procedural:{FRAMES}", size=(H, W))
    aux, losses = train_critics(source, 40, batch=4, channels=8, lr=3e-3, crop=None, seed=0)
    path = save_critics(aux, tmp_path_factory.mktemp("critics") / "critics.safetensors", {"losses": losses})
    aux, _ = load_critics(path)  # exactly what the node loads
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
            window.add(score_frame(aux, *arrays, jitter=aux.cfg.box_jitter, seed=stamp_ns(offset + k),
                                   stamp_ns=stamp_ns(offset + k)))
        summaries.append(window.summary())
    return Stream(clean, noise, summaries[0], summaries[1], path)


def node_cmd(*params: str) -> list[str]:
    return python_cmd("-m", "sim2real.nodes.monitor_node", "--ros-args",
                      *[a for p in params for a in ("-p", p)])


@pytest.fixture(scope="module")
def session(stream: Stream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    clean_flip, noise_flip = stream.expected_clean.flip_rate, stream.expected_noise.flip_rate
    # the critics must separate the two streams, else this test cannot say anything
    assert noise_flip > clean_flip + 0.15, (clean_flip, noise_flip)
    max_flip = (clean_flip + noise_flip) / 2  # threshold relative to the measured clean value
    tmp = tmp_path_factory.mktemp("monitor_node")
    domain = allocate_domain_id()
    env = isolated_env(tmp / "ros_home", domain_id=domain)
    env["OMP_NUM_THREADS"] = "1"
    log = tmp / "node.log"
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    cmd = node_cmd(f"critics:={stream.critics}", "device:=cpu", "rate_hz:=5.0", f"window:={WINDOW}",
                   f"min_frames:={WINDOW}", "min_box_recall:=0.05", f"max_flip_rate:={max_flip:.6f}",
                   "diagnostics_period_s:=0.5", "warn_period_s:=0.0")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    driver = FrameDriver(context, in_prefix="/translated", out_prefix="/monitor_test_unused", name="monitor_driver")
    metrics: list[dict[str, Any]] = []
    driver.node.create_subscription(String, f"/{NODE}/metrics", lambda m: metrics.append(json.loads(m.data)),
                                    QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    try:
        driver.wait_for_node(labels=("semantic", "instance"), outputs=False, proc=proc)
        yield Session(driver, proc, log, stream, metrics, max_flip)
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
    assert m["flip_rate"] == pytest.approx(exp.flip_rate, abs=2e-3)
    assert m["box_recall50"] == pytest.approx(exp.box_recall, abs=2e-2)
    assert m["labelled_pixels"] == exp.labelled_pixels and m["boxes"] == exp.boxes
    for name, entry in exp.small_classes().items():
        assert m["small_classes"][name]["pixels"] == entry["pixels"]
    assert m["level"] == "OK" and m["message"] == "ok", m
    # /diagnostics carried the same window, OK all along
    assert s.driver.spin_until(lambda: any(st.message == "ok" for st in monitor_statuses(s)), 5.0)
    statuses = monitor_statuses(s)
    assert statuses and all(st.level == b"\x00" for st in statuses), [(st.level, st.message) for st in statuses]
    last = next(dict((kv.key, kv.value) for kv in st.values) for st in reversed(statuses) if st.message == "ok")
    assert float(last["flip_rate"]) == pytest.approx(m["flip_rate"], abs=1e-4)
    assert last["frames_in_window"] == "3" and last["window"] == "3"
    assert {"flip_rate.traffic light", "flip_rate.traffic sign", "flip_rate.pole", "flip_rate.person",
            "box_recall50", "skipped"} <= set(last)
    assert "below threshold" not in node_log(s)


@pytest.mark.ros
def test_garbage_stream_warns_with_a_high_flip_rate(session: Session) -> None:
    s, exp = session, session.stream.expected_noise
    n_ok = len(monitor_statuses(s))
    for k, arrays in enumerate(s.stream.noise):
        m = send_and_wait(s, 3 + k, arrays)
    assert m["first_stamp_ns"] == stamp_ns(3) and m["frames_in_window"] == 3  # the window slid past the clean ones
    assert m["flip_rate"] == pytest.approx(exp.flip_rate, abs=2e-3)
    assert m["flip_rate"] > s.max_flip_rate > session.stream.expected_clean.flip_rate
    assert m["level"] == "WARN"
    assert f"flip rate {m['flip_rate']:.3f} > max_flip_rate {s.max_flip_rate:.3f}" in m["message"]
    assert f"(by {m['flip_rate'] - s.max_flip_rate:.3f})" in m["message"]
    assert s.driver.spin_until(lambda: any(st.level == b"\x01" for st in monitor_statuses(s)), 5.0)
    warn = next(st for st in monitor_statuses(s) if st.level == b"\x01")
    assert "flip rate" in warn.message and "max_flip_rate" in warn.message
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
    (ok,) = s.driver.set_parameters(NODE, max_flip_rate=0.0)
    assert ok.successful
    n = len(monitor_statuses(s))
    assert s.driver.spin_until(lambda: len(monitor_statuses(s)) > n, 5.0)
    latest = monitor_statuses(s)[-1]  # the window is clean now, but nothing flips 0 % of pixels
    assert latest.level == b"\x01" and "max_flip_rate 0.000" in latest.message


@pytest.mark.ros
def test_missing_critics_fail_at_start_naming_the_path(tmp_path: Path) -> None:
    env = isolated_env(tmp_path / "ros_home", domain_id=allocate_domain_id())
    env["OMP_NUM_THREADS"] = "1"
    missing = tmp_path / "nowhere" / "critics.safetensors"
    t0 = time.monotonic()
    out = subprocess.run(node_cmd(f"critics:={missing}"), env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert str(missing) in out.stdout + out.stderr and "does not exist" in out.stdout + out.stderr
    out = subprocess.run(node_cmd(), env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "parameter 'critics' is required" in out.stdout + out.stderr
    assert time.monotonic() - t0 < 60
