"""sim_adapter_node in-process on an isolated ROS domain: CARLA-encoded messages in, canonical topics out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sim2real.core.errors import ConfigError
from sim2real.core.labels import TRAIN_ID

pytestmark = pytest.mark.ros

H, W = 6, 8
T = TRAIN_ID


def carla_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb bgra8, semantic bgra8 with tags in R, instance bgra8 R=tag G/B=object id) of one tick."""
    tags = np.full((H, W), 11, np.uint8)  # sky
    tags[3:, :] = 1  # road
    tags[2:5, 2:5] = 14  # a car, object 513
    tags[0, 7] = 40  # an unknown tag
    oid = np.where(tags == 14, 513, 3)
    zeros = np.zeros_like(tags)
    alpha = np.full_like(tags, 255)
    rgb = np.stack([np.full_like(tags, 30), np.full_like(tags, 20), np.full_like(tags, 10), alpha], axis=-1)
    semantic = np.stack([zeros, zeros, tags, alpha], axis=-1)
    instance = np.stack([(oid >> 8).astype(np.uint8), (oid & 255).astype(np.uint8), tags, alpha], axis=-1)
    return rgb, semantic, instance


def spin_until(executor: Any, cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
        if cond():
            return True
    return cond()


def test_unknown_simulator_is_a_config_error(ros_context: Any) -> None:
    from rclpy.parameter import Parameter

    from sim2real.nodes.sim_adapter_node import SimAdapterNode

    with pytest.raises(ConfigError, match="valid simulators: airsim, carla"):
        SimAdapterNode(context=ros_context, parameter_overrides=[Parameter("simulator", value="gazebo")])
    with pytest.raises(ConfigError, match="no class colour table"):
        SimAdapterNode(context=ros_context, parameter_overrides=[Parameter("simulator", value="morai")])


def test_carla_messages_become_canonical_topics(ros_context: Any) -> None:
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from sim2real.io.conversions import array_to_image, image_to_array
    from sim2real.nodes.sim_adapter_node import SimAdapterNode

    node = SimAdapterNode(context=ros_context)
    topics = node.topics
    assert topics.rgb == "/carla/ego_vehicle/rgb_front/image"
    helper = rclpy.create_node("sim_adapter_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(helper)
    pubs = {
        "rgb": helper.create_publisher(Image, topics.rgb, qos_profile_sensor_data),
        "semantic": helper.create_publisher(Image, topics.semantic, qos_profile_sensor_data),
        "instance": helper.create_publisher(Image, topics.instance, qos_profile_sensor_data),
        "camera_info": helper.create_publisher(CameraInfo, topics.camera_info, qos_profile_sensor_data),
    }
    received: dict[str, list[Any]] = {k: [] for k in ("image", "semantic", "instance", "camera_info")}
    for name, sink in received.items():
        msg_type = CameraInfo if name == "camera_info" else Image
        helper.create_subscription(msg_type, f"/sim/camera/{name}", sink.append, 10)
    try:
        assert spin_until(executor, lambda: all(p.get_subscription_count() > 0 for p in pubs.values())
                          and helper.count_publishers("/sim/camera/instance") > 0)
        rgb, semantic, instance = carla_frame()

        def send(stamp: int, *, skip: str | None = None, bad_semantic: bool = False, info_width: int = W) -> None:
            header = Header(stamp=Time(sec=stamp, nanosec=500), frame_id="ego_vehicle/rgb_front")
            msgs = {
                "rgb": array_to_image(rgb, "bgra8", header),
                "semantic": (array_to_image(np.zeros((H, W), np.float32), "32FC1", header) if bad_semantic
                             else array_to_image(semantic, "bgra8", header)),
                "instance": array_to_image(instance, "bgra8", header),
                "camera_info": CameraInfo(header=header, width=info_width, height=H),
            }
            for key, msg in msgs.items():
                if key != skip:
                    pubs[key].publish(msg)

        send(1, skip="instance")  # incomplete set: never published
        send(2, bad_semantic=True)  # undecodable: counted, node keeps running
        assert spin_until(executor, lambda: node.stats.bad_messages >= 1)
        send(3)
        assert spin_until(executor, lambda: all(received.values()))

        image, sem, inst, info = (received[k][-1] for k in ("image", "semantic", "instance", "camera_info"))
        for msg in (image, sem, inst, info):
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (3, 500)
            assert msg.header.frame_id == "ego_vehicle/rgb_front"
        assert (image.encoding, sem.encoding, inst.encoding) == ("rgb8", "mono8", "16UC1")
        assert (image_to_array(image) == (10, 20, 30)).all()
        sem_arr, inst_arr = image_to_array(sem), image_to_array(inst)
        assert sem_arr[0, 0] == T["sky"] and sem_arr[5, 0] == T["road"] and sem_arr[3, 3] == T["car"]
        assert sem_arr[0, 7] == 255
        assert inst_arr[3, 3] == 513 and inst_arr[0, 0] == 0 and inst_arr[5, 0] == 0
        assert info.width == W
        assert node.published == 1
        assert node.stats.unknown.get("tag 40", 0) >= 1
        assert node.bad["frame"] == 1
        assert all(len(v) == 1 for v in received.values())  # stamps 1 and 2 produced nothing

        send(4, info_width=W + 2)  # camera_info of another image size: a bad frame (#17 finding 11)
        assert spin_until(executor, lambda: node.bad["frame"] == 2)
        for stamp in (150, 151, 152):
            send(stamp)
        assert spin_until(executor, lambda: node.published == 4)
        for stamp in (10, 11, 12, 13):  # the simulator restarted: the 3rd older frame in a row resets the pairing
            send(stamp)
        assert spin_until(executor, lambda: [m.header.stamp.sec for m in received["image"][-2:]] == [12, 13]), \
            (node.published, node.time_jumps)
        assert node.time_jumps == 1 and node.published == 6
    finally:
        executor.shutdown()
        helper.destroy_node()
        node.destroy_node()


def test_process_exit_codes(tmp_path: Any) -> None:
    """As a process: 1 with a message for an unusable configuration; 0 and a final line after SIGINT."""
    import signal
    import subprocess

    from ros_testing import isolated_env, python_cmd

    env = isolated_env(tmp_path / "ros_home")
    cmd = python_cmd("-m", "sim2real.nodes.sim_adapter_node", "--ros-args", "-p")
    bad = subprocess.run([*cmd, "simulator:=morai"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "no class colour table" in bad.stdout + bad.stderr
    proc = subprocess.Popen([*cmd, "simulator:=airsim"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the startup line: subscriptions are up
        assert "/airsim_node/PhysXCar/front_center/Segmentation" in first
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "final: 0 frames published" in out
