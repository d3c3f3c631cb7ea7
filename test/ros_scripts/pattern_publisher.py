"""Test publisher: sends frames of a known, index-dependent pattern as sensor_msgs/Image.

Frame i is ``pattern_frame(seed, i, height, width, encoding)``; its header stamp encodes i
(sec = 1000 + i, nanosec = 7 * i) and frame_id is ``--frame-id``. It waits for a subscriber before the first
frame so that discovery does not eat frames, publishes ``--count`` frames on a timer at ``--rate`` Hz with
sensor-data (best-effort) or reliable QoS, then exits 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim2real.io.conversions import array_to_image

from patterns import pattern_frame


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", default="pattern")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--encoding", default="rgb8")
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frame-id", default="pattern_camera")
    parser.add_argument("--reliable", action="store_true")
    args = parser.parse_args()

    rclpy.init()
    node = Node("pattern_publisher")
    qos = qos_profile_sensor_data
    if args.reliable:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, args.topic, qos)

    deadline = node.get_clock().now().nanoseconds + 20_000_000_000
    while pub.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
        if node.get_clock().now().nanoseconds > deadline:
            node.get_logger().error("no subscriber within 20 s")
            return 2
    # Matched: give the shared-memory locators a moment to be exchanged both ways.
    settle_until = node.get_clock().now().nanoseconds + 500_000_000
    while node.get_clock().now().nanoseconds < settle_until:
        rclpy.spin_once(node, timeout_sec=0.05)

    frames = [pattern_frame(args.seed, i, args.height, args.width, args.encoding) for i in range(args.count)]
    sent = 0

    def tick() -> None:
        nonlocal sent
        msg = array_to_image(frames[sent], args.encoding)
        msg.header.stamp.sec = 1000 + sent
        msg.header.stamp.nanosec = 7 * sent
        msg.header.frame_id = args.frame_id
        pub.publish(msg)
        sent += 1
        if sent == args.count:
            timer.cancel()

    timer = node.create_timer(1.0 / args.rate, tick)
    while sent < args.count:
        rclpy.spin_once(node, timeout_sec=1.0)
    # Let the last samples leave before the participant goes away.
    linger_until = node.get_clock().now().nanoseconds + 300_000_000
    while node.get_clock().now().nanoseconds < linger_until:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.get_logger().info(f"published {sent} frames")
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
