"""The simulator node in its own process: four topics, one header per frame, pixels equal to the library."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim2real.io.conversions import image_to_array
from sim_bridge.procedural import ProceduralSimulator, SimConfig

from ros_testing import isolated_env, python_cmd, running

pytestmark = [pytest.mark.ros, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PROFILE = Path(__file__).resolve().parents[1] / "config" / "fastdds.xml"
NS = "/t/cam"
TOPICS = ("image", "semantic", "instance", "camera_info")
CONFIG = SimConfig(width=160, height=90, seed=5, rate_hz=20.0, time_of_day=9.0)


def node_env(tmp_path: Path) -> dict[str, str]:
    env = isolated_env(tmp_path / "ros_home")
    if PROFILE.exists():
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
        env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    return env


def node_cmd(**params: object) -> list[str]:
    args = []
    for name, value in params.items():
        args += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
    return python_cmd("-m", "sim2real.nodes.sim_node", "--ros-args", *args)


class Listener:
    """Subscribes to the four topics in its own rclpy Context on the node's domain; groups by stamp."""

    def __init__(self, domain_id: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("sim_node_listener", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.sets: dict[int, dict[str, Any]] = defaultdict(dict)
        for topic in TOPICS:
            msgtype = CameraInfo if topic == "camera_info" else Image
            self.node.create_subscription(msgtype, f"{NS}/{topic}", lambda m, t=topic: self._on(t, m),
                                          qos_profile_sensor_data)

    def _on(self, topic: str, msg: Any) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        value = msg if topic == "camera_info" else (msg.encoding, image_to_array(msg).copy())
        self.sets[stamp][topic] = (msg.header.frame_id, value)

    def complete(self, after: int = -1) -> dict[int, dict[str, Any]]:
        return {s: v for s, v in self.sets.items() if len(v) == len(TOPICS) and s > after}

    def spin_until(self, done: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            self.executor.spin_once(timeout_sec=0.1)
        return bool(done())

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def check_sets(sets: dict[int, dict[str, Any]], config: SimConfig, frame_id: str) -> None:
    sim = ProceduralSimulator(config)
    for stamp, msgs in sets.items():
        frame = sim.frame(config.index_of(stamp))
        assert frame.stamp_ns == stamp, "use_sim_stamps: the stamp is index / rate_hz"
        assert {fid for fid, _ in msgs.values()} == {frame_id}
        for topic, expected, encoding in (("image", frame.rgb, "rgb8"), ("semantic", frame.semantic, "mono8"),
                                          ("instance", frame.instance, "16UC1")):
            got_encoding, array = msgs[topic][1]
            assert got_encoding == encoding
            assert np.array_equal(array, expected), f"{topic} of frame {frame.index} differs from the library"
        info = msgs["camera_info"][1]
        assert (info.width, info.height, info.distortion_model) == (config.width, config.height, "plumb_bob")
        np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), frame.K)
        np.testing.assert_allclose(np.asarray(info.p).reshape(3, 4)[:, :3], frame.K)


def test_node_publishes_library_frames_with_one_header(tmp_path: Path) -> None:
    env = node_env(tmp_path)
    cmd = node_cmd(width=CONFIG.width, height=CONFIG.height, seed=CONFIG.seed, rate_hz=CONFIG.rate_hz,
                   time_of_day=CONFIG.time_of_day, use_sim_stamps=True, output_prefix=NS, frame_id="cam_t")
    listener = Listener(int(env["ROS_DOMAIN_ID"]))
    try:
        with running(cmd, env, tmp_path / "node.log") as proc:
            got = listener.spin_until(lambda: len(listener.complete()) >= 4 or proc.poll() is not None, 40.0)
            assert got and proc.poll() is None, (tmp_path / "node.log").read_text()
            check_sets(listener.complete(), CONFIG, "cam_t")

            # width is read-only: rejected with a reason; time_of_day changes live
            from rclpy.parameter import Parameter
            from rclpy.parameter_client import AsyncParameterClient

            client = AsyncParameterClient(listener.node, "sim_node")
            assert client.wait_for_services(timeout_sec=10.0)
            future = client.set_parameters([Parameter("width", value=320)])
            assert listener.spin_until(future.done, 10.0)
            result = future.result().results[0]
            assert not result.successful and "read-only" in result.reason.replace("read only", "read-only")
            future = client.set_parameters([Parameter("time_of_day", value=99.0)])
            assert listener.spin_until(future.done, 10.0)
            assert not future.result().results[0].successful
            future = client.set_parameters([Parameter("time_of_day", value=21.0)])
            assert listener.spin_until(future.done, 10.0)
            assert future.result().results[0].successful
            # frames rendered after the change: skip a few that may have been in flight
            last_old = max(listener.sets) + 3 * CONFIG.period_ns
            assert listener.spin_until(lambda: len(listener.complete(after=last_old)) >= 2, 20.0)
            night = SimConfig(**{**CONFIG.__dict__, "time_of_day": 21.0})
            check_sets(listener.complete(after=last_old), night, "cam_t")
    finally:
        listener.close()
    log = (tmp_path / "node.log").read_text()
    assert "Traceback" not in log, log


def test_node_exits_cleanly_after_max_frames(tmp_path: Path) -> None:
    cmd = node_cmd(width=64, height=36, max_frames=5, rate_hz=50.0)
    with running(cmd, node_env(tmp_path), tmp_path / "node.log") as proc:
        assert proc.wait(timeout=40) == 0, (tmp_path / "node.log").read_text()
    assert "max_frames=5 reached" in (tmp_path / "node.log").read_text()


def test_node_rejects_invalid_parameters_at_start(tmp_path: Path) -> None:
    with running(node_cmd(width=8), node_env(tmp_path), tmp_path / "node.log") as proc:
        assert proc.wait(timeout=40) == 1
    assert "cannot start" in (tmp_path / "node.log").read_text()
