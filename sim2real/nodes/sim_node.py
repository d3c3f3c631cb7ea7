"""ROS 2 node publishing the built-in procedural simulator: RGB, semantic and instance images + camera info.

    python -m sim2real.nodes.sim_node --ros-args -p width:=640 -p height:=360 -p rate_hz:=30.0 \\
        -p seed:=0 -p time_of_day:=18.5 -p use_sim_stamps:=true -p max_frames:=0

Topics (sensor-data QoS), under ``output_prefix`` (default ``sim/camera``: relative, so ``/sim/camera`` in the
root namespace and ``/car1/sim/camera`` for a node started in ``/car1``):
``image`` (rgb8), ``semantic`` (mono8, Cityscapes train ids), ``instance`` (16UC1, 0 = none) and
``camera_info``. The four messages of a frame carry ONE header: the same stamp (node clock, or the
simulator's frame time ``index / rate_hz`` with ``use_sim_stamps``) and ``frame_id``.

Parameters are declared once with descriptors. Image size, rate, seed, namespace and the stamp source
are read-only (a change is rejected with the reason); ``time_of_day``, the traffic and pedestrian
densities, ``frame_id`` and ``max_frames`` change live (validated by :class:`SimConfig`).
A failed publish is counted and logged (rate-limited); the node keeps going. With ``max_frames`` > 0
the node logs and exits 0 after that many frames.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from builtin_interfaces.msg import Time
from rcl_interfaces.msg import (
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from sim2real.core.errors import ConfigError
from sim2real.io.conversions import array_to_image
from sim2real.nodes.common import descriptor as _descriptor
from sim2real.nodes.common import exit_node, run_node
from sim2real.runtime.launch_description import check_topic_prefix
from sim2real.runtime.node_stats import LogRateLimiter
from sim_bridge.procedural import ProceduralSimulator, SimConfig, SimFrame
from sim_bridge.procedural.config import MAX_SIZE, MIN_SIZE

__all__ = ["NODE_NAME", "SimNode", "camera_info_message", "main"]

NODE_NAME = "sim_node"
_STR, _DBL, _INT, _BOOL = (ParameterType.PARAMETER_STRING, ParameterType.PARAMETER_DOUBLE,
                           ParameterType.PARAMETER_INTEGER, ParameterType.PARAMETER_BOOL)
#: parameters that map 1:1 onto SimConfig fields (parameter name -> field name)
_CONFIG_PARAMS = {"width": "width", "height": "height", "rate_hz": "rate_hz", "seed": "seed",
                  "traffic_density": "traffic_density", "pedestrian_density": "pedestrian_density",
                  "time_of_day": "time_of_day", "ego_speed": "ego_speed", "fov_deg": "fov_deg"}


def _parameter_table() -> list[tuple[str, Any, ParameterDescriptor]]:
    """Every parameter of the node: (name, default, descriptor)."""
    d = SimConfig()
    return [
        ("output_prefix", "sim/camera", _descriptor(
            "topic prefix of image, semantic, instance, camera_info (relative: under the node's namespace)", _STR,
            read_only=True, constraints="a topic prefix, e.g. sim/camera or /sim/camera")),
        ("frame_id", "sim_camera", _descriptor("header frame_id of all four topics", _STR,
                                               constraints="non-empty")),
        ("width", d.width, _descriptor("image width in pixels", _INT, read_only=True,
                                       int_range=(MIN_SIZE, MAX_SIZE))),
        ("height", d.height, _descriptor("image height in pixels", _INT, read_only=True,
                                         int_range=(MIN_SIZE, MAX_SIZE))),
        ("rate_hz", d.rate_hz, _descriptor("frame rate (timer period and simulated time step)", _DBL,
                                           read_only=True, float_range=(0.1, 1000.0))),
        ("seed", d.seed, _descriptor("world seed: same seed, same frames", _INT, read_only=True,
                                     int_range=(0, 2**31 - 1))),
        ("traffic_density", d.traffic_density, _descriptor(
            "share of occupied vehicle slots (cyclists: half)", _DBL, float_range=(0.0, 1.0))),
        ("pedestrian_density", d.pedestrian_density, _descriptor(
            "share of occupied pedestrian slots", _DBL, float_range=(0.0, 1.0))),
        ("time_of_day", d.time_of_day, _descriptor(
            "local solar time in hours: sun, sky, ambient light, lit windows; changes live", _DBL,
            float_range=(0.0, 23.999))),
        ("ego_speed", d.ego_speed, _descriptor("ego camera speed in m/s", _DBL, read_only=True,
                                               float_range=(0.0, 40.0))),
        ("fov_deg", d.fov_deg, _descriptor("horizontal field of view in degrees", _DBL, read_only=True,
                                           float_range=(20.0, 150.0))),
        ("use_sim_stamps", False, _descriptor(
            "stamp = frame index / rate_hz (simulated time) instead of the node clock", _BOOL, read_only=True)),
        ("max_frames", 0, _descriptor("exit cleanly after this many frames; 0 = unlimited", _INT,
                                      int_range=(0, 2**31 - 1))),
    ]


def camera_info_message(frame: SimFrame, header: Header) -> CameraInfo:
    """The pinhole CameraInfo of a procedural frame (no distortion; P = [K | 0])."""
    k = frame.K.ravel().tolist()
    height, width = frame.rgb.shape[:2]
    return CameraInfo(
        header=header, height=height, width=width, distortion_model="plumb_bob",
        d=[0.0] * 5, k=k, r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=[k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0])


class SimNode(Node):
    """Timer-driven publisher of :class:`ProceduralSimulator` frames."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for name, default, desc in _parameter_table():
            self.declare_parameter(name, default, desc)
        p = {name: self.get_parameter(name).value for name, _, _ in _parameter_table()}
        self._config = SimConfig(**{field: p[name] for name, field in _CONFIG_PARAMS.items()})
        if not p["frame_id"]:
            raise ConfigError("frame_id must not be empty")
        prefix = check_topic_prefix("output_prefix", p["output_prefix"])
        self._topics = {name: f"{prefix}/{name}" for name in ("image", "semantic", "instance", "camera_info")}
        self._frame_id: str = p["frame_id"]
        self._max_frames: int = p["max_frames"]
        self._use_sim_stamps: bool = p["use_sim_stamps"]
        self._sim = ProceduralSimulator(self._config)
        self._staged: SimConfig | None = None
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        qos = qos_profile_sensor_data
        self._pubs = {
            "image": self.create_publisher(Image, self._topics["image"], qos),
            "semantic": self.create_publisher(Image, self._topics["semantic"], qos),
            "instance": self.create_publisher(Image, self._topics["instance"], qos),
            "camera_info": self.create_publisher(CameraInfo, self._topics["camera_info"], qos),
        }
        self.index = 0
        self.frames_published = 0
        self.publish_errors = 0
        #: set after max_frames frames: the entry point then stops the node and exits 0
        self.done = threading.Event()
        self._log_limit = LogRateLimiter(period=5.0)
        self._timer = self.create_timer(1.0 / self._config.rate_hz, self._tick)
        c = self._config
        self.get_logger().info(
            f"publishing {c.width}x{c.height} at {c.rate_hz} Hz on {self._pubs['image'].topic_name.rsplit('/', 1)[0]}/"
            f"{{image,semantic,instance,camera_info}} (seed {c.seed}, time_of_day {c.time_of_day} h, "
            f"{'sim' if self._use_sim_stamps else 'node clock'} stamps, max_frames {self._max_frames or 'inf'})")

    # -------------------------------------------------------------------------------------- parameters
    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate a change with SimConfig (it names the field); stage the new config for _apply."""
        changes: dict[str, Any] = {}
        for param in params:
            if param.name in _CONFIG_PARAMS:
                changes[_CONFIG_PARAMS[param.name]] = param.value
            elif param.name == "frame_id" and not param.value:
                return SetParametersResult(successful=False, reason="frame_id must not be empty")
        try:
            self._staged = dataclasses.replace(self._config, **changes) if changes else None
        except (ConfigError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        for param in params:
            if param.name == "frame_id":
                self._frame_id = param.value
            elif param.name == "max_frames":
                self._max_frames = param.value
        if self._staged is not None and self._staged != self._config:
            self._config = self._staged
            self._sim = ProceduralSimulator(self._config)
            self.get_logger().info(f"simulator reconfigured: time_of_day {self._config.time_of_day} h, "
                                   f"traffic {self._config.traffic_density}, "
                                   f"pedestrians {self._config.pedestrian_density}")
        self._staged = None

    # -------------------------------------------------------------------------------------- publishing
    def _header(self, frame: SimFrame) -> Header:
        stamp_ns = frame.stamp_ns if self._use_sim_stamps else self.get_clock().now().nanoseconds
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=self._frame_id)

    def _publish(self, name: str, msg: Any) -> bool:
        try:
            self._pubs[name].publish(msg)
        except Exception as exc:  # e.g. RCLError "cannot publish data": count, log rate-limited, go on
            self.publish_errors += 1
            allowed, suppressed = self._log_limit.allow(name)
            if allowed:
                more = f" ({suppressed} more since last report)" if suppressed else ""
                self.get_logger().warning(f"publish on {self._topics[name]} failed: {exc}{more}")
            return False
        return True

    def _tick(self) -> None:
        if self.done.is_set():
            return
        try:
            frame = self._sim.frame(self.index)
        except Exception as exc:  # a rendering bug must not kill the stream: skip the frame, say so
            allowed, suppressed = self._log_limit.allow("render")
            if allowed:
                self.get_logger().error(f"frame {self.index} failed to render: {exc!r} (+{suppressed})")
            self.index += 1
            return
        header = self._header(frame)
        ok = self._publish("image", array_to_image(frame.rgb, "rgb8", header))
        ok &= self._publish("semantic", array_to_image(frame.semantic, "mono8", header))
        ok &= self._publish("instance", array_to_image(frame.instance, "16UC1", header))
        ok &= self._publish("camera_info", camera_info_message(frame, header))
        self.index += 1
        self.frames_published += int(ok)
        if self._max_frames and self.index >= self._max_frames:
            self._timer.cancel()
            self.get_logger().info(f"max_frames={self._max_frames} reached: {self.frames_published} frames "
                                   f"published, {self.publish_errors} publish errors; exiting")
            self.done.set()

    def stop(self) -> None:
        """The last log line (called by the entry point after spinning, the context still valid)."""
        self.get_logger().info(f"stopping: {self.frames_published} frames published, "
                               f"{self.publish_errors} publish errors")


def main(args: list[str] | None = None) -> int:
    """Entry point: spin until max_frames is reached or SIGINT/SIGTERM; 1 when the parameters are invalid."""
    return run_node(SimNode, NODE_NAME, SingleThreadedExecutor, args)


if __name__ == "__main__":
    exit_node(main())
