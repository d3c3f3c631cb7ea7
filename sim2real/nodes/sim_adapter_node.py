"""sim_adapter_node: a simulator's native camera topics in, the canonical ``/sim/camera/*`` topics out.

Run: ``python -m sim2real.nodes.sim_adapter_node --ros-args -p simulator:=carla``
(simulators: see :data:`sim_bridge.adapters.ADAPTERS`; docs/simulators/<name>.md per simulator).

=================================== ====================== =================================================
topic                               type                   notes
=================================== ====================== =================================================
native RGB (adapter default)        Image / CompressedImage  sensor-data QoS
native semantic                     Image / CompressedImage  paired with RGB by **exact** header stamp
native instance (if the simulator   Image                  paired by exact stamp
has one)
native camera_info (if any)         CameraInfo             paired by exact stamp, republished unchanged
native label JSON (Isaac Sim)       std_msgs/String        not paired: the latest mapping is used
``<output_prefix>/image``           Image ``rgb8``         header = the native RGB header
``<output_prefix>/semantic``        Image ``mono8``        train ids 0..18, 255
``<output_prefix>/instance``        Image ``16UC1``        0 = none (all 0 when the simulator has none)
``<output_prefix>/camera_info``     CameraInfo             the native message
=================================== ====================== =================================================

Native topic names come from the adapter's topic profile (parameter ``profile``) and can be overridden one by
one (``rgb_topic`` ...). Unknown native class ids never stop the node: they become 255 and are counted; the
counts are logged every ``stats_period_s`` as a warning while new unknown pixels appear. A message that cannot
be decoded (wrong encoding, corrupt data, a label JSON nested too deeply, a camera_info whose size is not the
image's) is logged (rate-limited), counted, and skipped; so is a publish failure: no message stops the node, and
if its executor thread dies anyway the process exits 1 with a FATAL line (:mod:`sim2real.nodes.common`).
Decoding runs in the subscription callback (the adapters are vectorised: ~80 ms for 2048x1024).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from sim2real.core.errors import ConfigError, Sim2RealError
from sim2real.io.conversions import array_to_image, decode_compressed, image_to_array
from sim2real.io.sync import MatchedSet, StampSynchronizer, stamp_to_ns
from sim2real.nodes.common import exit_node, run_node
from sim2real.nodes.common import read_only_descriptor as _descriptor
from sim2real.nodes.translate.frames import check_camera_info
from sim2real.runtime.launch_description import check_topic_prefix
from sim2real.runtime.node_stats import LogRateLimiter
from sim_bridge.adapters import ADAPTERS, DecodeStats, SimulatorAdapter, get_adapter, parse_isaac_labels
from sim_bridge.adapters.base import TopicSet
from sim_bridge.adapters.morai import MoraiAdapter, load_color_table

__all__ = ["NODE_NAME", "SimAdapterNode", "main", "resolve_topics"]

NODE_NAME: Final = "sim_adapter_node"
RGB, SEMANTIC, INSTANCE, CAMERA_INFO = "rgb", "semantic", "instance", "camera_info"
_STR, _DBL, _INT = ParameterType.PARAMETER_STRING, ParameterType.PARAMETER_DOUBLE, ParameterType.PARAMETER_INTEGER


def _parameter_table() -> list[tuple[str, Any, ParameterDescriptor]]:
    """Every parameter: (name, default, descriptor)."""
    override = "native topic override; empty = the adapter profile's default"
    return [
        ("simulator", "carla", _descriptor("simulator adapter", _STR, constraints=" | ".join(sorted(ADAPTERS)))),
        ("profile", "", _descriptor("adapter topic profile; empty = the adapter's first", _STR)),
        ("rgb_topic", "", _descriptor(f"RGB {override}", _STR)),
        ("semantic_topic", "", _descriptor(f"semantic {override}", _STR)),
        ("instance_topic", "", _descriptor(f"instance {override}; 'none' = do not subscribe", _STR)),
        ("camera_info_topic", "", _descriptor(f"camera_info {override}; 'none' = do not subscribe", _STR)),
        ("semantic_labels_topic", "", _descriptor(f"semantic id->label JSON {override}", _STR)),
        ("instance_labels_topic", "", _descriptor(f"instance id->label JSON {override}", _STR)),
        ("output_prefix", "sim/camera", _descriptor(
            "topic prefix of the canonical outputs (relative: under the node's namespace)", _STR)),
        ("class_table_file", "", _descriptor(
            "class colour table JSON (required for morai; see docs/simulators/morai.md)", _STR)),
        ("sync_queue_size", 10, _descriptor(
            "messages kept per topic while waiting for partners with the same stamp", _INT, int_range=(1, 1000))),
        ("time_jump_s", 1.0, _descriptor(
            "native stamps that go back by more than this for 3 RGB messages in a row (a simulator reset) reset the"
            " pairing instead of leaving every later frame unpaired; logged; 0 = off", _DBL,
            float_range=(0.0, 3600.0))),
        ("stats_period_s", 10.0, _descriptor(
            "period of the decode statistics log (warning while unknown ids appear)", _DBL,
            float_range=(0.1, 3600.0))),
    ]


def resolve_topics(adapter: SimulatorAdapter, profile: str, overrides: dict[str, str]) -> TopicSet:
    """The adapter's TopicSet for ``profile`` with non-empty overrides applied ('none' disables a stream).

    Raises:
        ConfigError: unknown profile, or an RGB / semantic topic set to 'none'.
    """
    base = adapter.topics(profile or None)
    fields = {
        "rgb": base.rgb, "semantic": base.semantic, "instance": base.instance, "camera_info": base.camera_info,
        "semantic_labels": base.semantic_labels, "instance_labels": base.instance_labels,
    }
    for key, value in overrides.items():
        if value:
            fields[key] = None if value == "none" else value
    if not fields["rgb"] or not fields["semantic"]:
        raise ConfigError(f"{adapter.name}: the RGB and semantic topics are required, got {fields}")
    if not adapter.has_instances:
        fields["instance"] = None
    return TopicSet(**fields, rgb_compressed=base.rgb_compressed, labels_compressed=base.labels_compressed)


def _array(msg: Any) -> tuple[np.ndarray, str]:
    """(array, encoding) of an Image or CompressedImage message."""
    if hasattr(msg, "format"):
        return decode_compressed(msg)
    return image_to_array(msg), msg.encoding


class SimAdapterNode(Node):
    """Subscribes to one simulator's native topics, decodes with its adapter, publishes canonical topics."""

    def __init__(self, **node_kwargs: Any) -> None:
        """Declare parameters, resolve the adapter and topics, create publishers then subscriptions.

        Raises:
            ConfigError: unknown simulator / profile, unusable topics, an adapter that is not ready.
        """
        super().__init__(NODE_NAME, **node_kwargs)
        for name, default, desc in _parameter_table():
            self.declare_parameter(name, default, desc)
        p = {name: self.get_parameter(name).value for name, _, _ in _parameter_table()}
        adapter = get_adapter(p["simulator"])
        if p["class_table_file"]:
            if not isinstance(adapter, MoraiAdapter):
                raise ConfigError(f"class_table_file applies to simulator morai, not {adapter.name}")
            adapter = load_color_table(p["class_table_file"], base=adapter)
        adapter.check_ready()
        self.adapter: SimulatorAdapter = adapter
        self.topics = resolve_topics(adapter, p["profile"], {
            key: p[f"{key}_topic"]
            for key in ("rgb", "semantic", "instance", "camera_info", "semantic_labels", "instance_labels")
        })
        self.stats = DecodeStats()
        self.published = 0
        self.publish_errors = 0
        self.bad: Counter[str] = Counter()
        self._labels: dict[str, dict[int, str] | None] = {SEMANTIC: None, INSTANCE: None}
        self._limiter = LogRateLimiter(period=5.0)
        self._reported_unknown = 0

        keys = [RGB, SEMANTIC] + [k for k in (INSTANCE, CAMERA_INFO) if getattr(self.topics, k)]
        self.time_jumps = 0
        self._sync: StampSynchronizer[Any] = StampSynchronizer(
            keys, queue_size=p["sync_queue_size"], jump_threshold=p["time_jump_s"] or None, on_jump=self._on_jump)
        prefix = check_topic_prefix("output_prefix", p["output_prefix"])
        out_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {
            RGB: self.create_publisher(Image, f"{prefix}/image", out_qos),
            SEMANTIC: self.create_publisher(Image, f"{prefix}/semantic", out_qos),
            INSTANCE: self.create_publisher(Image, f"{prefix}/instance", out_qos),
            CAMERA_INFO: self.create_publisher(CameraInfo, f"{prefix}/camera_info", out_qos),
        }
        self.create_timer(p["stats_period_s"], self._log_stats)
        self._subscribe()
        self.get_logger().info(
            f"{adapter.title}: {', '.join(f'{k}={getattr(self.topics, k)}' for k in keys)}"
            f" -> {self._pubs[RGB].topic_name.rsplit('/', 1)[0]}/*"
        )

    def _subscribe(self) -> None:
        t = self.topics
        image_type = {RGB: CompressedImage if t.rgb_compressed else Image,
                      SEMANTIC: CompressedImage if t.labels_compressed else Image,
                      INSTANCE: CompressedImage if t.labels_compressed else Image,
                      CAMERA_INFO: CameraInfo}
        self._subs = []
        for key in self._sync.topics:
            self._subs.append(self.create_subscription(
                image_type[key], getattr(t, key), lambda msg, k=key: self._on_message(k, msg),
                qos_profile_sensor_data))
        for key, topic in ((SEMANTIC, t.semantic_labels), (INSTANCE, t.instance_labels)):
            if topic:
                self._subs.append(self.create_subscription(
                    String, topic, lambda msg, k=key: self._on_labels(k, msg), 10))

    # ------------------------------------------------------------------------------------------ callbacks

    def _warn(self, key: str, text: str) -> None:
        allowed, suppressed = self._limiter.allow(key)
        if allowed:
            more = f" ({suppressed} similar suppressed)" if suppressed else ""
            self.get_logger().warning(text + more)

    def _bad(self, key: str, exc: Exception) -> None:
        self.bad[key] += 1
        self.stats.bad_messages += 1
        self._warn(f"bad:{key}", f"bad {key} message skipped: {exc}")

    def _on_jump(self, direction: str, last_ns: int, new_ns: int) -> None:
        if direction == "backward":
            self.time_jumps += 1
            self.get_logger().warning(f"time jump: native stamps went back from {last_ns / 1e9:.9f} s to"
                                      f" {new_ns / 1e9:.9f} s: pairing reset")

    def _on_labels(self, key: str, msg: String) -> None:
        try:
            self._labels[key] = parse_isaac_labels(msg.data)
        except Exception as exc:  # LabelError, or anything unforeseen: one bad message never stops the node
            self._bad(f"{key}_labels", exc)

    def _on_message(self, key: str, msg: Any) -> None:
        try:
            stamp = stamp_to_ns(msg.header.stamp)
        except (AttributeError, TypeError, ValueError) as exc:
            self._bad(key, exc)
            return
        try:
            for matched in self._sync.add(key, stamp, msg):
                self._process(matched)
        except Exception as exc:  # never let one message kill the node
            self._bad(f"{key} (unexpected)", exc)

    def _decode(self, items: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb_array, rgb_encoding = _array(items[RGB])
        rgb = self.adapter.decode_rgb(rgb_array, rgb_encoding)
        sem_array, sem_encoding = _array(items[SEMANTIC])
        semantic = self.adapter.decode_semantic(
            sem_array, sem_encoding, stats=self.stats, id_to_name=self._labels[SEMANTIC])
        if INSTANCE in items:
            inst_array, inst_encoding = _array(items[INSTANCE])
            _, instance = self.adapter.decode_instance(
                inst_array, inst_encoding, id_to_name=self._labels[INSTANCE], semantic=semantic)
        else:
            instance = np.zeros(semantic.shape, np.uint16)
        if not rgb.shape[:2] == semantic.shape == instance.shape:
            raise ConfigError(
                f"image sizes differ: rgb {rgb.shape[:2]}, semantic {semantic.shape}, instance {instance.shape}")
        if CAMERA_INFO in items and (reason := check_camera_info(items[CAMERA_INFO], *rgb.shape[:2])):
            raise ConfigError(reason)
        return rgb, semantic, instance

    def _process(self, matched: MatchedSet[Any]) -> None:
        items = dict(matched.items)
        try:
            rgb, semantic, instance = self._decode(items)
        except (Sim2RealError, ValueError) as exc:
            self._bad("frame", exc)
            return
        header = items[RGB].header
        try:
            self._pubs[RGB].publish(array_to_image(rgb, "rgb8", header))
            self._pubs[SEMANTIC].publish(array_to_image(semantic, "mono8", header))
            self._pubs[INSTANCE].publish(array_to_image(instance, "16UC1", header))
            if CAMERA_INFO in items:
                self._pubs[CAMERA_INFO].publish(items[CAMERA_INFO])
        except Exception as exc:  # rclpy raises RCLError under load: count it, never die
            self.publish_errors += 1
            self._warn("publish", f"publish failed: {exc}")
            return
        self.published += 1

    def _log_stats(self) -> None:
        line = f"{self.published} frames published, {self.publish_errors} publish errors; {self.stats.summary()}"
        if self.stats.unknown_pixels > self._reported_unknown:
            self._reported_unknown = self.stats.unknown_pixels
            self.get_logger().warning(f"unknown native class ids mapped to 255: {line}")
        else:
            self.get_logger().info(line)


    def stop(self) -> None:
        """The final statistics line (called after spinning, the context still valid)."""
        self.get_logger().info(f"final: {self.published} frames published; {self.stats.summary()}")


def main(args: list[str] | None = None) -> int:
    """Entry point: spin until SIGINT / SIGTERM; 1 when the configuration is invalid or a thread died."""
    return run_node(SimAdapterNode, NODE_NAME, SingleThreadedExecutor, args)


if __name__ == "__main__":
    exit_node(main())
