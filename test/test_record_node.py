"""record_node as a real process: what it writes to the bag is exactly what was published."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ros_testing import isolated_env, python_cmd, running

sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_scripts"))
from frame_driver import TYPES, FrameDriver, stamp_ns

from sim2real.core.errors import ConfigError

H, W = 48, 64


def record_cmd(output: Path, *extra: str) -> list[str]:
    topics = "['/translated/image', '/translated/semantic', '/translated/camera_info:sensor_msgs/msg/CameraInfo']"
    return python_cmd("-m", "sim2real.nodes.record_node", "--ros-args", "-p", f"output:={output}",
                      "-p", f"topics:={topics}", "-p", "discovery_period_s:=0.1", *extra)


def test_parse_topic_spec() -> None:
    from sim2real.nodes.record_node import import_message_type, parse_topic_spec

    assert parse_topic_spec("/a/b") == ("/a/b", None)
    assert parse_topic_spec(" /a:sensor_msgs/msg/Image ") == ("/a", "sensor_msgs/msg/Image")
    with pytest.raises(ConfigError, match="pkg/msg/Type"):
        parse_topic_spec("/a:Image")
    with pytest.raises(ConfigError, match="no topic name"):
        parse_topic_spec(":sensor_msgs/msg/Image")
    assert import_message_type("sensor_msgs/msg/CameraInfo").__name__ == "CameraInfo"
    with pytest.raises(ConfigError, match="not available"):
        import_message_type("nope_msgs/msg/Nothing")


@pytest.mark.ros
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_recorded_bag_holds_the_published_bytes_at_receive_time(tmp_path: Path, ros_context, storage: str) -> None:
    from rclpy.serialization import deserialize_message

    from sim2real.io.bag_reader import BagReader

    env = isolated_env(tmp_path / "ros_home", domain_id=ros_context.get_domain_id())
    bag, stats = tmp_path / "bag", tmp_path / "stats.json"
    driver = FrameDriver(ros_context, in_prefix="/translated", out_prefix="/unused")
    log = tmp_path / "record.log"
    try:
        with running(record_cmd(bag, "-p", f"storage:={storage}", "-p", f"stats_file:={stats}"), env, log) as proc:
            driver.wait_for_node(labels=("semantic", "camera_info"), outputs=False, proc=proc)
            before = time.time_ns()
            for i in range(5):
                driver.send(i, H, W, only=("image", "semantic", "camera_info", "instance"))
                driver.spin_for(0.05)
            driver.spin_for(0.5)
            after = time.time_ns()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        driver.close()
    text = log.read_text()
    assert "closed" in text and "/translated/image=5" in text, text
    summary = json.loads(stats.read_text())
    assert summary["counts"] == {"/translated/image": 5, "/translated/semantic": 5, "/translated/camera_info": 5}

    with BagReader(bag) as reader:
        topics = reader.topics
        assert {t: (i.msgtype, i.count) for t, i in topics.items()} == {
            "/translated/image": ("sensor_msgs/msg/Image", 5),
            "/translated/semantic": ("sensor_msgs/msg/Image", 5),
            "/translated/camera_info": ("sensor_msgs/msg/CameraInfo", 5),
        }
        assert "/translated/instance" not in topics  # not asked for
        seen = 0
        for conn, timestamp, raw in reader.raw_messages():
            name = conn.topic.rsplit("/", 1)[1]
            msg = deserialize_message(bytes(raw), TYPES[name])
            # the published message, field for field (the CDR bytes themselves may differ in alignment padding,
            # which the serializer leaves uninitialised); image payloads byte for byte
            sent = driver.sent[msg.header.stamp.sec - 100][name]
            assert msg == sent
            if name != "camera_info":
                assert bytes(msg.data) == bytes(sent.data)
            assert before <= timestamp <= after, "bag time must be the receive time, not the header stamp"
            seen += 1
        assert seen == 15
        stamps = sorted(m.stamp_ns for m in reader.messages(["/translated/image"]))
        assert stamps == [stamp_ns(i) for i in range(5)]


def _wait_for_log(log: Path, text: str, proc: subprocess.Popen, timeout: float = 30.0, count: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text().count(text) < count:
        assert proc.poll() is None and time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text()}"
        time.sleep(0.05)


def _tiny_image(k: int) -> object:
    from sensor_msgs.msg import Image

    return Image(encoding="mono8", height=1, width=1, step=1, data=bytes([k % 256]))


@pytest.mark.ros
def test_typed_topics_are_subscribed_before_their_publishers_exist(tmp_path: Path, ros_context) -> None:
    """With discovery polling every 30 s, only a subscription made at start can match a publisher that
    appears later within seconds: its first message is recorded."""
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    env = isolated_env(tmp_path / "ros_home", domain_id=ros_context.get_domain_id())
    bag, stats, log = tmp_path / "bag", tmp_path / "stats.json", tmp_path / "record.log"
    cmd = python_cmd("-m", "sim2real.nodes.record_node", "--ros-args", "-p", f"output:={bag}",
                     "-p", "topics:=['/early:sensor_msgs/msg/Image']", "-p", "discovery_period_s:=30.0",
                     "-p", f"stats_file:={stats}")
    node = Node("early_publisher", context=ros_context)
    try:
        with running(cmd, env, log) as proc:
            _wait_for_log(log, "waiting for a publisher", proc)
            publisher = node.create_publisher(Image, "/early", QoSProfile(depth=5))
            deadline = time.monotonic() + 20
            while publisher.get_subscription_count() < 1:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            publisher.publish(_tiny_image(7))
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        node.destroy_node()
    assert json.loads(stats.read_text())["counts"] == {"/early": 1}, log.read_text()


@pytest.mark.ros
def test_typed_topics_adapt_to_best_effort_and_report_wrong_types(tmp_path: Path, ros_context) -> None:
    """reliability auto: the early (reliable) subscription is re-made best effort for a best-effort publisher;
    a publisher of another type is reported and not recorded; a topic nobody publishes is never_seen."""
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    env = isolated_env(tmp_path / "ros_home", domain_id=ros_context.get_domain_id())
    bag, stats, log = tmp_path / "bag", tmp_path / "stats.json", tmp_path / "record.log"
    topics = "['/late_be:sensor_msgs/msg/Image', '/wrong:sensor_msgs/msg/Image', '/never:sensor_msgs/msg/Image']"
    cmd = python_cmd("-m", "sim2real.nodes.record_node", "--ros-args", "-p", f"output:={bag}",
                     "-p", f"topics:={topics}", "-p", "discovery_period_s:=0.1", "-p", f"stats_file:={stats}")
    node = Node("typed_topics_publisher", context=ros_context)
    try:
        with running(cmd, env, log) as proc:
            _wait_for_log(log, "waiting for a publisher", proc, count=3)
            best_effort = node.create_publisher(
                Image, "/late_be", QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
            wrong = node.create_publisher(String, "/wrong", QoSProfile(depth=5))
            _wait_for_log(log, "/late_be has a best-effort publisher", proc)
            _wait_for_log(log, "/wrong is published as ['std_msgs/msg/String']", proc)
            for k in range(30):  # best effort: keep publishing while the re-made subscription gets matched
                best_effort.publish(_tiny_image(k))
                wrong.publish(String(data="x"))
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        node.destroy_node()
    summary = json.loads(stats.read_text())
    assert 1 <= summary["counts"]["/late_be"] <= 30, log.read_text()
    assert summary["counts"]["/wrong"] == 0 and summary["counts"]["/never"] == 0
    assert summary["never_seen"] == ["/wrong", "/never"]


@pytest.mark.ros
def test_existing_output_is_never_overwritten(tmp_path: Path) -> None:
    env = isolated_env(tmp_path / "ros_home")
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "keep.txt").write_text("precious")
    result = subprocess.run(record_cmd(bag), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "refusing to overwrite" in result.stdout + result.stderr
    assert (bag / "keep.txt").read_text() == "precious"


@pytest.mark.ros
def test_offered_qos_profiles_and_compressed_topics_in_the_bag(tmp_path: Path, ros_context) -> None:
    """metadata.yaml carries the QoS the publishers offered (not ``[]``); a compress_topics image is stored as
    ``<topic>/compressed`` (png: the very pixels, the header kept) and nothing under its raw name."""
    import numpy as np
    from rosbags.interfaces import QosDurability, QosHistory, QosReliability
    from rosbags.rosbag2 import Reader

    from sim2real.io.conversions import compressed_to_array, image_to_array

    env = isolated_env(tmp_path / "ros_home", domain_id=ros_context.get_domain_id())
    bag, log = tmp_path / "bag", tmp_path / "record.log"
    driver = FrameDriver(ros_context, in_prefix="/translated", out_prefix="/unused")  # reliable, keep last 100
    cmd = python_cmd("-m", "sim2real.nodes.record_node", "--ros-args", "-p", f"output:={bag}",
                     "-p", "topics:=['/translated/image:sensor_msgs/msg/Image', '/translated/semantic']",
                     "-p", "compress_topics:=[/translated/image]", "-p", "compressed_format:=png")
    try:
        with running(cmd, env, log) as proc:
            driver.wait_for_node(labels=("semantic",), outputs=False, proc=proc)
            _wait_for_log(log, "recording /translated/semantic (sensor_msgs/msg/Image)", proc)
            for i in range(3):
                driver.send(i, H, W, only=("image", "semantic"))
                driver.spin_for(0.05)
            driver.spin_for(0.5)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        driver.close()
    with Reader(bag) as reader:
        conns = {c.topic: c for c in reader.connections}
        assert set(conns) == {"/translated/image/compressed", "/translated/semantic"}, set(conns)
        assert conns["/translated/image/compressed"].msgtype == "sensor_msgs/msg/CompressedImage"
        for conn in conns.values():
            # one publisher, the driver's (reliable, volatile); discovery does not carry history / depth, so the
            # graph reports them unknown / 0, as ros2 bag record stores them too
            (qos,) = conn.ext.offered_qos_profiles
            assert (qos.reliability, qos.durability, qos.history, qos.depth) == (
                QosReliability.RELIABLE, QosDurability.VOLATILE, QosHistory.UNKNOWN, 0), qos
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import CompressedImage

        seen = 0
        for _conn, _t, raw in reader.messages([conns["/translated/image/compressed"]]):
            msg = deserialize_message(bytes(raw), CompressedImage)
            sent = driver.sent[msg.header.stamp.sec - 100]["image"]
            assert msg.header == sent.header and msg.format == "rgb8; png compressed bgr8"
            np.testing.assert_array_equal(compressed_to_array(msg), image_to_array(sent))
            seen += 1
        assert seen == 3
    assert "offered_qos_profiles: []" not in (bag / "metadata.yaml").read_text()
