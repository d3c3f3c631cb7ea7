"""CARLA client: synchronous RGB + semantic + instance cameras on the ego vehicle -> canonical ROS topics.

Run next to a CARLA 0.9.14+ server (``import carla`` must work)::

    python -m sim_bridge.carla_plugin.spawn_cameras --host localhost --port 2000 --fps 20 \
        --width 1280 --height 720 --fov 90 --ego-role hero

What it does, per tick of a **synchronous** world (fixed ``delta``):

1. three cameras (``sensor.camera.rgb``, ``.semantic_segmentation``, ``.instance_segmentation``) are
   spawned with the *same* ``carla.Transform`` object and the *same* attribute values, attached to the
   ego vehicle (found by ``role_name`` or spawned with autopilot);
2. their callbacks (CARLA sensor threads) are paired by ``image.frame`` in a :class:`FrameAssembler`;
3. the main loop calls ``world.tick()`` and waits for the complete triple of *that* frame, decodes it
   with the CARLA adapter (:mod:`sim_bridge.adapters.carla`) and publishes ``/sim/camera/image``
   (rgb8), ``/sim/camera/semantic`` (mono8), ``/sim/camera/instance`` (16UC1) and
   ``/sim/camera/camera_info`` with **one** header stamp (the frame's simulation time).

``carla`` and ``rclpy`` are imported only inside :func:`main` / :class:`RosPublisher`; everything else
takes injected objects, so it is unit-tested without CARLA (test/test_adapters.py).
"""

from __future__ import annotations

import argparse
import math
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from sim2real.core.errors import ConfigError
from sim_bridge.adapters.carla import CARLA, CarlaAdapter

__all__ = [
    "BLUEPRINTS",
    "CAMERA_KINDS",
    "CameraConfig",
    "CanonicalFrame",
    "FrameAssembler",
    "apply_sync_settings",
    "camera_info_fields",
    "configure_blueprints",
    "decode_frame",
    "image_array",
    "main",
    "run_ticks",
    "spawn_cameras",
]

CAMERA_KINDS: Final = ("rgb", "semantic", "instance")
BLUEPRINTS: Final[Mapping[str, str]] = {
    "rgb": "sensor.camera.rgb",
    "semantic": "sensor.camera.semantic_segmentation",
    "instance": "sensor.camera.instance_segmentation",
}
#: canonical output topics (what sim2real's translator subscribes to).
TOPICS: Final[Mapping[str, str]] = {
    "rgb": "/sim/camera/image",
    "semantic": "/sim/camera/semantic",
    "instance": "/sim/camera/instance",
    "camera_info": "/sim/camera/camera_info",
}


@dataclass(frozen=True)
class CameraConfig:
    """Geometry and timing shared by all three cameras (so their pixels correspond one to one).

    Attributes:
        width, height: image size in pixels.
        fov: horizontal field of view, degrees.
        sensor_tick: seconds between captures; 0 = every world tick.
        x, y, z: mount position relative to the vehicle, metres (CARLA: x forward, z up).
        roll, pitch, yaw: mount rotation, degrees.
    """

    width: int = 1280
    height: int = 720
    fov: float = 90.0
    sensor_tick: float = 0.0
    x: float = 1.5
    y: float = 0.0
    z: float = 1.6
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"camera size must be positive, got {self.width}x{self.height}")
        if not 0.0 < self.fov < 180.0:
            raise ConfigError(f"fov must be in (0, 180) degrees, got {self.fov}")
        if self.sensor_tick < 0.0:
            raise ConfigError(f"sensor_tick must be >= 0, got {self.sensor_tick}")

    def attributes(self) -> dict[str, str]:
        """Blueprint attributes set identically on the three cameras (CARLA wants strings)."""
        return {
            "image_size_x": str(self.width),
            "image_size_y": str(self.height),
            "fov": repr(float(self.fov)),
            "sensor_tick": repr(float(self.sensor_tick)),
        }


def configure_blueprints(library: Any, config: CameraConfig, role_prefix: str = "sim2real") -> dict[str, Any]:
    """Find the three camera blueprints and set the same attributes on each.

    Args:
        library: ``world.get_blueprint_library()`` (anything with ``find(id)``).
        config: shared camera geometry.
        role_prefix: cameras get ``role_name = <prefix>_<kind>`` (also their ROS name in CARLA's native
            ROS 2 interface).
    Returns:
        ``{kind: blueprint}`` for ``rgb``, ``semantic``, ``instance``.
    Raises:
        ConfigError: a blueprint lacks one of the attributes (e.g. a CARLA older than 0.9.14 has no
            instance camera).
    """
    blueprints: dict[str, Any] = {}
    for kind in CAMERA_KINDS:
        bp = library.find(BLUEPRINTS[kind])
        for key, value in {**config.attributes(), "role_name": f"{role_prefix}_{kind}"}.items():
            if not bp.has_attribute(key):
                raise ConfigError(f"blueprint {BLUEPRINTS[kind]} has no attribute {key!r}")
            bp.set_attribute(key, value)
        blueprints[kind] = bp
    return blueprints


def mount_transform(carla: Any, config: CameraConfig) -> Any:
    """The one ``carla.Transform`` every camera is spawned with (``carla`` module injected)."""
    return carla.Transform(
        carla.Location(x=config.x, y=config.y, z=config.z),
        carla.Rotation(pitch=config.pitch, yaw=config.yaw, roll=config.roll),
    )


def spawn_cameras(world: Any, vehicle: Any, blueprints: Mapping[str, Any], transform: Any) -> dict[str, Any]:
    """Spawn the cameras with the *same* transform, attached to ``vehicle``; ``{kind: sensor actor}``.

    On failure the cameras already spawned are destroyed before the error propagates.
    """
    sensors: dict[str, Any] = {}
    try:
        for kind in CAMERA_KINDS:
            sensors[kind] = world.spawn_actor(blueprints[kind], transform, attach_to=vehicle)
    except Exception:
        for sensor in sensors.values():
            sensor.destroy()
        raise
    return sensors


def apply_sync_settings(world: Any, delta: float) -> Any:
    """Switch ``world`` to synchronous mode with a fixed ``delta`` (seconds); return the old settings."""
    if not 0.0 < delta <= 0.1:
        raise ConfigError(f"fixed delta must be in (0, 0.1] s for stable physics, got {delta}")
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode = True
    settings.fixed_delta_seconds = delta
    world.apply_settings(settings)
    return original


class FrameAssembler:
    """Pairs the three camera callbacks by CARLA frame number (thread-safe).

    :meth:`add` is called from CARLA's sensor threads; it returns the complete ``{kind: data}`` dict
    exactly once per frame, when the last of the three arrives. Incomplete frames older than the
    ``max_pending`` most recent ones are dropped and counted in :attr:`dropped`.
    """

    def __init__(self, kinds: Sequence[str] = CAMERA_KINDS, max_pending: int = 8) -> None:
        if max_pending < 1:
            raise ConfigError(f"max_pending must be >= 1, got {max_pending}")
        self.kinds = tuple(kinds)
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, kind: str, frame: int, data: Any) -> dict[str, Any] | None:
        """Record ``data`` of camera ``kind`` for ``frame``; the complete set when this completes it."""
        if kind not in self.kinds:
            raise ConfigError(f"unknown camera kind {kind!r}; expected one of {self.kinds}")
        with self._lock:
            parts = self._pending.setdefault(int(frame), {})
            parts[kind] = data
            if len(parts) == len(self.kinds):
                del self._pending[int(frame)]
                return parts
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
                self.dropped += 1
            return None


def image_array(image: Any) -> np.ndarray:
    """A ``carla.Image``'s ``raw_data`` as an (H, W, 4) uint8 BGRA view (no copy)."""
    return np.frombuffer(image.raw_data, dtype=np.uint8).reshape(int(image.height), int(image.width), 4)


@dataclass(frozen=True)
class CanonicalFrame:
    """One tick in the canonical spaces, with its simulation time and frame number."""

    frame: int
    stamp: tuple[int, int]
    rgb: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray


def _stamp(seconds: float) -> tuple[int, int]:
    sec = math.floor(seconds)
    nanosec = round((seconds - sec) * 1e9)
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return int(sec), int(nanosec)


def decode_frame(images: Mapping[str, Any], adapter: CarlaAdapter = CARLA) -> CanonicalFrame:
    """Decode one complete ``{kind: carla.Image}`` triple into the canonical spaces.

    The semantic map comes from the semantic camera; the instance ids from the instance camera (its
    thing/stuff decision uses its own R-channel tags, so an edge pixel the two cameras disagree on
    never carries an instance id on a stuff class of the instance camera). The stamp is the RGB
    image's simulation timestamp (identical for the three in synchronous mode).
    """
    frames = {kind: int(images[kind].frame) for kind in CAMERA_KINDS}
    if len(set(frames.values())) != 1:
        raise ConfigError(f"decode_frame got images of different frames: {frames}")
    rgb = adapter.decode_rgb(image_array(images["rgb"]), "bgra8")
    semantic = adapter.decode_semantic(image_array(images["semantic"]), "bgra8")
    _, instance = adapter.decode_instance(image_array(images["instance"]), "bgra8")
    return CanonicalFrame(
        frame=frames["rgb"],
        stamp=_stamp(float(images["rgb"].timestamp)),
        rgb=rgb,
        semantic=semantic,
        instance=instance,
    )


def run_ticks(
    world: Any,
    complete: queue.Queue[dict[str, Any]],
    handle: Callable[[CanonicalFrame], None],
    *,
    ticks: int,
    timeout: float = 5.0,
    adapter: CarlaAdapter = CARLA,
) -> int:
    """Tick ``ticks`` times; after each, wait for that frame's triple, decode and hand it to ``handle``.

    Triples of older frames still in the queue (late callbacks) are discarded. Returns the number of
    frames handled; raises ``TimeoutError`` when a tick's images do not arrive within ``timeout`` s.
    """
    handled = 0
    for _ in range(ticks):
        frame = int(world.tick())
        while True:
            try:
                images = complete.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"camera images of frame {frame} did not arrive within {timeout} s") from None
            got = int(images["rgb"].frame)
            if got == frame:
                break
            if got > frame:
                raise TimeoutError(f"received frame {got} while waiting for {frame}: a tick was missed")
        handle(decode_frame(images, adapter))
        handled += 1
    return handled


def camera_info_fields(width: int, height: int, fov: float) -> dict[str, Any]:
    """Pinhole intrinsics of a CARLA camera (no distortion): fx = fy = w / (2 tan(fov/2)), centre w/2, h/2."""
    fx = width / (2.0 * math.tan(math.radians(fov) / 2.0))
    cx, cy = width / 2.0, height / 2.0
    return {
        "width": int(width),
        "height": int(height),
        "distortion_model": "plumb_bob",
        "d": [0.0] * 5,
        "k": [fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0],
        "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "p": [fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    }


class RosPublisher:
    """Publishes canonical frames on the ``/sim/camera/*`` topics from one rclpy node (one stamp each)."""

    def __init__(self, config: CameraConfig, frame_id: str = "sim_camera", node_name: str = "carla_cameras"):
        import rclpy
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        self._rclpy = rclpy
        self.node = rclpy.create_node(node_name)
        self.frame_id = frame_id
        self._info = CameraInfo(**camera_info_fields(config.width, config.height, config.fov))
        self._pubs = {
            kind: self.node.create_publisher(Image, TOPICS[kind], qos_profile_sensor_data)
            for kind in CAMERA_KINDS
        }
        self._info_pub = self.node.create_publisher(CameraInfo, TOPICS["camera_info"], qos_profile_sensor_data)

    def __call__(self, frame: CanonicalFrame) -> None:
        """Publish the three images and camera_info with the frame's simulation-time stamp."""
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        from sim2real.io.conversions import array_to_image

        header = Header(stamp=Time(sec=frame.stamp[0], nanosec=frame.stamp[1]), frame_id=self.frame_id)
        self._pubs["rgb"].publish(array_to_image(frame.rgb, "rgb8", header))
        self._pubs["semantic"].publish(array_to_image(frame.semantic, "mono8", header))
        self._pubs["instance"].publish(array_to_image(frame.instance, "16UC1", header))
        self._info.header = header
        self._info_pub.publish(self._info)

    def close(self) -> None:
        """Destroy the node."""
        self.node.destroy_node()


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (see module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=2000)
    p.add_argument("--fps", type=float, default=20.0, help="world ticks per simulated second (delta = 1/fps)")
    p.add_argument("--ticks", type=int, default=0, help="stop after N ticks (0 = until Ctrl-C)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fov", type=float, default=90.0)
    p.add_argument("--mount", type=float, nargs=6, metavar=("X", "Y", "Z", "ROLL", "PITCH", "YAW"),
                   default=(1.5, 0.0, 1.6, 0.0, 0.0, 0.0), help="camera pose on the vehicle (m, deg)")
    p.add_argument("--ego-role", default="hero", help="role_name of the ego vehicle to attach to")
    p.add_argument("--spawn-ego", action="store_true", help="spawn an autopilot ego if none is found")
    p.add_argument("--frame-id", default="sim_camera")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server / images")
    return p


def _find_or_spawn_ego(carla: Any, client: Any, world: Any, role: str, spawn: bool) -> tuple[Any, bool]:
    for actor in world.get_actors().filter("vehicle.*"):
        if actor.attributes.get("role_name") == role:
            return actor, False
    if not spawn:
        raise ConfigError(f"no vehicle with role_name={role!r} in the world (use --spawn-ego)")
    bp = world.get_blueprint_library().filter("vehicle.*")[0]
    bp.set_attribute("role_name", role)
    vehicle = world.spawn_actor(bp, world.get_map().get_spawn_points()[0])
    vehicle.set_autopilot(True, client.get_trafficmanager().get_port())
    return vehicle, True


def main(argv: Sequence[str] | None = None) -> int:
    """Connect, go synchronous, spawn the cameras, tick and publish until done or interrupted."""
    args = build_parser().parse_args(argv)
    x, y, z, roll, pitch, yaw = args.mount
    config = CameraConfig(width=args.width, height=args.height, fov=args.fov,
                          x=x, y=y, z=z, roll=roll, pitch=pitch, yaw=yaw)
    import carla
    import rclpy

    client = carla.Client(args.host, args.port)
    client.set_timeout(args.timeout)
    world = client.get_world()
    original = apply_sync_settings(world, 1.0 / args.fps)
    client.get_trafficmanager().set_synchronous_mode(True)
    rclpy.init()
    sensors: dict[str, Any] = {}
    spawned_ego = None
    publisher = None
    try:
        ego, own = _find_or_spawn_ego(carla, client, world, args.ego_role, args.spawn_ego)
        spawned_ego = ego if own else None
        blueprints = configure_blueprints(world.get_blueprint_library(), config)
        sensors = spawn_cameras(world, ego, blueprints, mount_transform(carla, config))
        assembler = FrameAssembler()
        complete: queue.Queue[dict[str, Any]] = queue.Queue()

        def listener(kind: str) -> Callable[[Any], None]:
            def on_image(image: Any) -> None:
                done = assembler.add(kind, image.frame, image)
                if done is not None:
                    complete.put(done)

            return on_image

        for kind, sensor in sensors.items():
            sensor.listen(listener(kind))
        publisher = RosPublisher(config, frame_id=args.frame_id)
        ticks = args.ticks if args.ticks > 0 else 2**62
        run_ticks(world, complete, publisher, ticks=ticks, timeout=args.timeout)
    except KeyboardInterrupt:
        pass
    finally:
        for sensor in sensors.values():
            sensor.stop()
            sensor.destroy()
        if spawned_ego is not None:
            spawned_ego.destroy()
        world.apply_settings(original)
        client.get_trafficmanager().set_synchronous_mode(False)
        if publisher is not None:
            publisher.close()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
