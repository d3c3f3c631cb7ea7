"""translate_node (a real process) with compressed transport (#15): a CompressedImage input on
``image/compressed`` (``input_transport:=compressed``), and ``translated/image/compressed`` next to the raw output,
encoded only while someone subscribes, with the codec settings changeable at run time."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros_testing import node_env, python_cmd, running

sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_scripts"))
from frame_driver import driver_on, make_checkpoint, sim_frame, stamp_ns, stamp_of

H, W = 48, 64


@pytest.mark.ros
def test_compressed_input_and_lazy_compressed_output(tmp_path: Path) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    from sim2real.io.conversions import array_to_compressed, compressed_to_array, image_to_array
    from sim2real.translator.inference import Translator

    model = make_checkpoint(tmp_path / "m.safetensors", seed=9)
    expect = Translator.from_checkpoint(model, device="cpu", precision="fp32")
    domain, env = node_env(tmp_path / "ros_home")
    remaps = [a for n in ("image/compressed", "semantic", "instance", "camera_info")
              for a in ("-r", f"{n}:=/sim/camera/{n}")]
    cmd = python_cmd("-m", "sim2real.nodes.translate_node", "--ros-args", *remaps, "-p", f"model:={model}",
                     "-p", "device:=cpu", "-p", "precision:=fp32", "-p", f"warmup_width:={W}",
                     "-p", f"warmup_height:={H}", "-p", "input_transport:=compressed",
                     "-p", "diagnostics_period_s:=0.2")
    log = tmp_path / "node.log"
    received: list[Any] = []
    with driver_on(domain) as driver, running(cmd, env, log) as proc:
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        compressed_in = driver.node.create_publisher(CompressedImage, "/sim/camera/image/compressed", qos)

        def counter(key: str) -> int:
            return int(driver.diagnostic_values().get(key, "-1"))

        def send(i: int) -> Any:
            """Frame i: the image as a png CompressedImage, the labels raw; the translated raw image back."""
            msg = array_to_compressed(sim_frame(i, H, W)[0], "rgb8", "png")
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_of(i)
            msg.header.frame_id = "sim_cam"
            compressed_in.publish(msg)
            driver.send(i, H, W, only=("semantic", "instance", "camera_info"))
            assert driver.spin_until(lambda: stamp_ns(i) in driver.received_stamps(), 30), log.read_text()[-3000:]
            return next(m for m in driver.received("image") if m.header.stamp.sec == stamp_of(i)[0])

        up = driver.spin_until(lambda: proc.poll() is not None or (
            compressed_in.get_subscription_count() > 0 and driver.subs["image"].get_publisher_count() > 0
            and all(driver.pubs[n].get_subscription_count() > 0 for n in ("semantic", "instance", "camera_info"))),
            90)
        assert up and proc.poll() is None, log.read_text()[-3000:]
        driver.spin_for(0.5)
        raw = send(0)  # nobody subscribes to translated/image/compressed yet: nothing encoded
        np.testing.assert_allclose(image_to_array(raw), expect.translate(*sim_frame(0, H, W)), atol=2)
        assert driver.spin_until(lambda: counter("frames_out") >= 1, 5)
        assert counter("count.compressed_out") == -1  # never counted
        driver.node.create_subscription(CompressedImage, "/translated/image/compressed", received.append, qos)
        driver.spin_for(1.0)  # discovery of the new subscription
        for i, codec in ((1, "jpeg"), (2, "png")):
            if codec == "png":
                (res,) = driver.set_parameters("translate_node", compressed_format="png")
                assert res.successful, res.reason
            raw = send(i)
            assert driver.spin_until(lambda i=i: any(m.header.stamp.sec == stamp_of(i)[0] for m in received), 10)
            msg = next(m for m in received if m.header.stamp.sec == stamp_of(i)[0])
            assert msg.header.frame_id == "sim_cam" and msg.format == f"rgb8; {codec} compressed bgr8"
            pixels = image_to_array(raw)
            want = pixels if codec == "png" else compressed_to_array(array_to_compressed(pixels, "rgb8", "jpeg", 95))
            np.testing.assert_array_equal(compressed_to_array(msg), want)  # the raw output, as the codec makes it
        assert driver.spin_until(lambda: counter("count.compressed_out") == 2, 5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
