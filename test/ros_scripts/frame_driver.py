"""In-test ROS driver for the translate / record node tests: publishes known simulator frames on
``/sim/camera/{image,semantic,instance,camera_info}`` and records what comes back on ``/translated/*``.

Frame ``i`` has stamp ``sec = 100 + i, nanosec = 1000 * i`` and frame_id ``"sim_cam"``; its pixels are
``sim_frame(i, h, w)``. Everything received is kept raw (serialized bytes) so tests can compare messages
byte for byte, and deserialised where the content is checked.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image

from sim2real.io.conversions import array_to_image

LABELS = ("semantic", "instance", "camera_info")
TYPES = {"image": Image, "semantic": Image, "instance": Image, "camera_info": CameraInfo, "preview": Image}


def stamp_of(i: int) -> tuple[int, int]:
    """(sec, nanosec) of frame ``i``."""
    return 100 + i, 1000 * i


def stamp_ns(i: int) -> int:
    """Header stamp of frame ``i`` in nanoseconds."""
    sec, nsec = stamp_of(i)
    return sec * 1_000_000_000 + nsec


def sim_frame(i: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb uint8 (H, W, 3), semantic uint8 (H, W), instance uint16 (H, W)) of frame ``i``."""
    rng = np.random.default_rng(i)
    rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    semantic = np.full((height, width), 10, dtype=np.uint8)  # sky
    semantic[height // 2 :] = 0  # road
    instance = np.zeros((height, width), dtype=np.uint16)
    x0 = (3 * i) % (width // 2)
    semantic[height // 2 : height // 2 + height // 4, x0 : x0 + width // 4] = 13  # car
    instance[height // 2 : height // 2 + height // 4, x0 : x0 + width // 4] = 7
    return rgb, semantic, instance


def make_checkpoint(path: Path, seed: int) -> Path:
    """A random-init ``lite`` generator checkpoint (different ``seed`` -> different outputs)."""
    import torch

    from sim2real.translator.checkpoint import save_checkpoint
    from sim2real.translator.config import get_generator_config
    from sim2real.translator.generator import TranslatorGenerator

    cfg = get_generator_config("lite")
    torch.manual_seed(seed)
    generator = TranslatorGenerator(cfg)
    return save_checkpoint(path, generator, cfg, sidecar=False)


class FrameDriver:
    """Publishes frames and collects ``/translated/*`` (raw) and ``/diagnostics`` on one rclpy context."""

    def __init__(self, context: Any, *, out_prefix: str = "/translated", in_prefix: str = "/sim/camera",
                 name: str = "frame_driver", executor: Any = None) -> None:
        import rclpy

        self.node = rclpy.create_node(name, context=context)
        self.executor = executor or SingleThreadedExecutor(context=context)
        self._own_executor = executor is None
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {name: self.node.create_publisher(TYPES[name], f"{in_prefix}/{name}", qos)
                     for name in ("image", *LABELS)}
        self.raw: dict[str, list[bytes]] = {name: [] for name in ("image", *LABELS, "preview")}
        self.subs = {
            name: self.node.create_subscription(
                TYPES[name], f"{out_prefix}/{name}", lambda data, n=name: self.raw[n].append(data), qos, raw=True)
            for name in self.raw
        }
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.sent: dict[int, dict[str, Any]] = {}

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``predicate()`` or ``timeout`` seconds; return the predicate's last value."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def spin_for(self, seconds: float) -> None:
        """Spin (delivering messages) for ``seconds``."""
        self.spin_until(lambda: False, seconds)

    def wait_for_node(self, timeout: float = 90.0, labels: tuple[str, ...] = LABELS, outputs: bool = True,
                      proc: Any = None) -> None:
        """Wait until the node under test subscribes to our topics (and publishes translated/image);
        fail at once if ``proc`` (its Popen) exits first."""
        ok = self.spin_until(
            lambda: (proc is not None and proc.poll() is not None)
            or (all(self.pubs[n].get_subscription_count() > 0 for n in ("image", *labels))
                and (not outputs or self.subs["image"].get_publisher_count() > 0)),
            timeout,
        )
        assert proc is None or proc.poll() is None, f"node under test exited with {proc.returncode}"
        assert ok, "node under test did not come up (subscriptions/publishers not matched)"
        self.spin_for(0.5)  # let the shared-memory locators settle both ways

    def messages(self, i: int, height: int, width: int, stamp: tuple[int, int] | None = None) -> dict[str, Any]:
        """The four messages of frame ``i`` (one shared header; ``stamp`` (sec, nanosec) replaces frame i's)."""
        rgb, semantic, instance = sim_frame(i, height, width)
        msgs = {
            "image": array_to_image(rgb, "rgb8"),
            "semantic": array_to_image(semantic, "mono8"),
            "instance": array_to_image(instance, "16UC1"),
            "camera_info": CameraInfo(height=height, width=width, distortion_model="plumb_bob",
                                      k=[50.0, 0.0, width / 2, 0.0, 50.0, height / 2, 0.0, 0.0, 1.0]),
        }
        sec, nsec = stamp or stamp_of(i)
        for msg in msgs.values():
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nsec
            msg.header.frame_id = "sim_cam"
        return msgs

    def send(self, i: int, height: int, width: int, *, only: tuple[str, ...] | None = None,
             override: dict[str, Any] | None = None, stamp: tuple[int, int] | None = None) -> dict[str, Any]:
        """Publish frame ``i`` (``only`` some topics; ``override`` replaces messages; ``stamp`` (sec, nanosec)
        replaces its stamp); return what was sent."""
        msgs = self.messages(i, height, width, stamp)
        msgs.update(override or {})
        for name in only or ("image", *LABELS):
            self.pubs[name].publish(msgs[name])
        self.sent[i] = msgs
        return msgs

    def received(self, name: str) -> list[Any]:
        """Deserialised messages received on ``/translated/<name>``, in arrival order."""
        return [deserialize_message(data, TYPES[name]) for data in self.raw[name]]

    def received_stamps(self, name: str = "image") -> list[int]:
        """Header stamps (ns) of everything received on ``/translated/<name>``."""
        return [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in self.received(name)]

    def set_parameters(self, node_name: str, **values: Any) -> list[Any]:
        """Call ``/<node_name>/set_parameters``; return the SetParametersResult list."""
        client = self.node.create_client(SetParameters, f"/{node_name}/set_parameters")
        assert self.spin_until(client.service_is_ready, 30.0), "set_parameters service not available"
        request = SetParameters.Request()
        for name, value in values.items():
            pv = ParameterValue()
            if isinstance(value, bool):
                pv.type, pv.bool_value = ParameterType.PARAMETER_BOOL, value
            elif isinstance(value, int):
                pv.type, pv.integer_value = ParameterType.PARAMETER_INTEGER, value
            elif isinstance(value, float):
                pv.type, pv.double_value = ParameterType.PARAMETER_DOUBLE, value
            else:
                pv.type, pv.string_value = ParameterType.PARAMETER_STRING, str(value)
            request.parameters.append(ParameterMsg(name=name, value=pv))
        future = client.call_async(request)
        assert self.spin_until(future.done, 60.0), "set_parameters call timed out"
        self.node.destroy_client(client)
        return list(future.result().results)

    def diagnostic_values(self, node: str = "translate_node") -> dict[str, str]:
        """The key / values of the newest ``/diagnostics`` status whose name contains ``node`` ({} before one)."""
        for arr in reversed(self.diagnostics):
            for st in arr.status:
                if node in st.name:
                    return {kv.key: kv.value for kv in st.values}
        return {}

    def close(self) -> None:
        """Destroy the driver node (and its executor when it made it)."""
        if self._own_executor:
            self.executor.shutdown()
        else:
            self.executor.remove_node(self.node)
        self.node.destroy_node()


@contextlib.contextmanager
def driver_on(domain: int, **kwargs: Any) -> Iterator[FrameDriver]:
    """A :class:`FrameDriver` on its own rclpy context on ``domain``; both shut down on exit."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    driver = FrameDriver(context, **kwargs)
    try:
        yield driver
    finally:
        driver.close()
        context.try_shutdown()
