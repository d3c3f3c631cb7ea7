"""Test subscriber: receives sensor_msgs/Image and writes what arrived to a JSON file.

Per message it records the frame index encoded in the stamp (sec - 1000), the raw stamp, frame_id, encoding,
decoded shape/dtype, the SHA-256 of the decoded pixels and the receive latency. It stops after ``--count``
messages, or ``--idle`` seconds without a message once one has arrived, or ``--timeout`` seconds in all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from sim2real.io.conversions import image_to_array


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", default="pattern")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=40.0)
    parser.add_argument("--idle", type=float, default=3.0)
    parser.add_argument("--reliable", action="store_true")
    args = parser.parse_args()

    rclpy.init()
    node = Node("pattern_subscriber")
    qos = qos_profile_sensor_data
    if args.reliable:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    records: list[dict] = []
    last_rx = [0.0]

    def on_image(msg: Image) -> None:
        received = time.time()
        pixels = image_to_array(msg)
        records.append({
            "index": msg.header.stamp.sec - 1000,
            "sec": msg.header.stamp.sec,
            "nanosec": msg.header.stamp.nanosec,
            "frame_id": msg.header.frame_id,
            "encoding": msg.encoding,
            "shape": list(pixels.shape),
            "dtype": str(pixels.dtype),
            "sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
        })
        last_rx[0] = received

    node.create_subscription(Image, args.topic, on_image, qos)
    start = time.monotonic()
    while len(records) < args.count and time.monotonic() - start < args.timeout:
        rclpy.spin_once(node, timeout_sec=0.1)
        if records and time.time() - last_rx[0] > args.idle:
            break
    with open(args.out, "w") as f:
        json.dump({"records": records}, f)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
