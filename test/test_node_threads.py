"""No zombie nodes (#17, finding 8): a node thread that dies takes the process down with exit status 1 and one
clear FATAL line, after the node's own stop step; and the Isaac labels topic no longer kills sim_adapter_node's
executor with a deeply nested JSON."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros_testing import isolated_env, python_cmd

SCRIPTS = Path(__file__).resolve().parent / "ros_scripts"


@pytest.mark.ros
@pytest.mark.parametrize(("mode", "thread", "error"), [
    ("callback", "thread 'executor'", "RuntimeError('boom in a callback')"),
    ("worker", "thread 'dying_worker'", "ValueError('boom in a worker')"),
])
def test_a_dying_thread_takes_the_node_down_with_one_fatal_line(tmp_path: Path, mode: str, thread: str,
                                                                 error: str) -> None:
    result = subprocess.run(python_cmd(str(SCRIPTS / "dying_node.py"), mode),
                            env=isolated_env(tmp_path / "ros_home"), capture_output=True, text=True, timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    fatal = [line for line in out.splitlines() if "FATAL" in line]
    assert len(fatal) == 1, out
    assert f"{thread} died: {error} at " in fatal[0] and "dying_node.py:" in fatal[0] and "stopping" in fatal[0]
    assert "stop() ran" in out  # the node's stop step still ran (final statistics)
    assert "Traceback" not in out


@pytest.mark.ros
def test_isaac_labels_nested_too_deeply_are_a_bad_message_and_conversion_goes_on(tmp_path: Path,
                                                                                  ros_context: Any) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from sim2real.io.conversions import array_to_image, image_to_array

    env = isolated_env(tmp_path / "ros_home", domain_id=ros_context.get_domain_id())
    cmd = python_cmd("-m", "sim2real.nodes.sim_adapter_node", "--ros-args", "-p", "simulator:=isaac",
                     "-p", "instance_topic:=none", "-p", "camera_info_topic:=none")
    log = tmp_path / "node.log"
    node = rclpy.create_node("isaac_driver", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {"rgb": node.create_publisher(Image, "/rgb", reliable),
            "semantic": node.create_publisher(Image, "/semantic_segmentation", reliable),
            "labels": node.create_publisher(String, "/semantic_labels", 10)}
    out: list[Any] = []
    node.create_subscription(Image, "/sim/camera/semantic", out.append, qos_profile_sensor_data)

    def spin_until(cond: Any, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        return bool(cond())

    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    try:
        assert spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 60), log.read_text()
        pubs["labels"].publish(String(data="[" * 100_000 + "]" * 100_000))
        assert spin_until(lambda: "nested too deeply" in log.read_text(), 20), log.read_text()[-2000:]
        pubs["labels"].publish(String(data='{"0": {"class": "BACKGROUND"}, "7": {"class": "car"}}'))
        spin_until(lambda: False, 0.5)
        ids = np.zeros((4, 6), np.int32)
        ids[1:3, 2:4] = 7
        for k in range(20):  # until the node (alive, converting) answers
            rgb = array_to_image(np.full((4, 6, 3), 9, np.uint8), "rgb8")
            sem = array_to_image(ids, "32SC1")
            for msg in (rgb, sem):
                msg.header.stamp.sec, msg.header.frame_id = 10 + k, "isaac_cam"
            pubs["rgb"].publish(rgb)
            pubs["semantic"].publish(sem)
            if spin_until(lambda: bool(out), 1.0):
                break
        assert out, "no canonical frame after the nested JSON: the node stopped converting\n" + log.read_text()[-3000:]
        assert proc.poll() is None
        semantic = image_to_array(out[0])
        assert (semantic[1:3, 2:4] == 13).all() and (semantic[0] == 255).all()  # car = train id 13
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
            proc.wait(timeout=20)
        executor.shutdown()
        node.destroy_node()
    assert proc.returncode == 0, log.read_text()[-3000:]


def _stop_a_busy_executor(executor_class: type) -> None:
    """Queue slow callbacks on a 2-thread pool, shut the executor down mid-way, destroy the node, collect."""
    import gc
    import threading

    import rclpy
    from rclpy.callback_groups import ReentrantCallbackGroup
    from std_msgs.msg import String

    from ros_testing import allocate_domain_id

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=allocate_domain_id())
    node = rclpy.create_node("busy", context=context)
    pub = node.create_publisher(String, "/busy", 100)
    group = ReentrantCallbackGroup()
    for _ in range(4):
        node.create_subscription(String, "/busy", lambda _m: time.sleep(0.3), 100, callback_group=group)
    executor = executor_class(num_threads=2, context=context)
    executor.add_node(node)
    errors: list[str] = []  # reprs, not exceptions: a kept traceback would keep the executor and its failed
    # tasks alive past this function, and they would print "never retrieved" at some later collection

    def spin(spinning: Any) -> None:
        try:
            spinning.spin()
        except BaseException as exc:
            errors.append(repr(exc))

    thread = threading.Thread(target=spin, args=(executor,), daemon=True)
    thread.start()
    time.sleep(1.0)  # discovery
    for k in range(20):
        pub.publish(String(data=str(k)))
    time.sleep(0.5)  # callbacks queued on the pool
    executor.shutdown(timeout_sec=5.0)
    thread.join(5.0)
    node.destroy_node()
    del executor
    gc.collect()
    context.try_shutdown()
    assert not errors or executor_class.__name__ == "MultiThreadedExecutor", errors


def test_an_orderly_executor_stops_a_busy_node_without_never_retrieved_exceptions(capfd: pytest.CaptureFixture) -> None:
    import gc

    from rclpy.executors import MultiThreadedExecutor

    from sim2real.nodes.common import OrderlyMultiThreadedExecutor

    # the upstream race this guards against (rclpy 9.1) is timing-dependent: it shows in most attempts, not all
    # (a fresh-clone CI run on a loaded machine missed it once), so it gets three chances to show
    shown = 0
    for _ in range(3):
        _stop_a_busy_executor(MultiThreadedExecutor)
        gc.collect()  # every task of this attempt prints now, not during a later attempt
        shown += "never retrieved: cannot use Destroyable" in capfd.readouterr().err
        if shown:
            break
    assert shown, "rclpy no longer shows the race in 3 attempts: OrderlyMultiThreadedExecutor may be dropped"
    for _ in range(3):  # and the orderly executor never shows it, however many times
        _stop_a_busy_executor(OrderlyMultiThreadedExecutor)
        gc.collect()
        assert "never retrieved" not in capfd.readouterr().err
