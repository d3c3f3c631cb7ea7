"""Typed configuration of the built-in procedural simulator."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from sim2real.core.errors import ConfigError

__all__ = ["MAX_SIZE", "MIN_SIZE", "SimConfig"]

#: smallest and largest accepted image side in pixels.
MIN_SIZE = 16
MAX_SIZE = 4096


def _check_range(name: str, value: float, low: float, high: float, *, high_open: bool = False) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"SimConfig.{name} must be a finite number, got {value!r}")
    bad_high = value >= high if high_open else value > high
    if value < low or bad_high:
        bracket = ")" if high_open else "]"
        raise ConfigError(f"SimConfig.{name} must be in [{low}, {high}{bracket}, got {value!r}")


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines the procedural simulator's output: frame(i) depends only on (config, i).

    Distances in metres, speeds in m/s, angles in degrees, ``time_of_day`` in hours [0, 24).
    """

    width: int = 640
    height: int = 360
    rate_hz: float = 30.0
    seed: int = 0
    #: probability that a vehicle slot in a lane is occupied (cyclists use half of it).
    traffic_density: float = 0.5
    #: probability that a pedestrian slot on a sidewalk is occupied.
    pedestrian_density: float = 0.5
    #: local solar time in hours: drives sun direction and colour, sky tint, ambient light, lit windows.
    time_of_day: float = 12.0
    ego_speed: float = 10.0
    #: horizontal field of view of the pinhole camera.
    fov_deg: float = 90.0
    camera_height: float = 1.5
    #: downward tilt of the camera.
    pitch_deg: float = 2.0
    #: objects and ground farther than this are not drawn (a far terrain plane fills the gap to the horizon).
    view_distance: float = 160.0

    def __post_init__(self) -> None:
        for name in ("width", "height", "seed"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise ConfigError(f"SimConfig.{name} must be an int, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy integers -> int
        for name in ("rate_hz", "traffic_density", "pedestrian_density", "time_of_day", "ego_speed", "fov_deg",
                     "camera_height", "pitch_deg", "view_distance"):
            value = getattr(self, name)
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        _check_range("width", self.width, MIN_SIZE, MAX_SIZE)
        _check_range("height", self.height, MIN_SIZE, MAX_SIZE)
        _check_range("seed", self.seed, 0, 2**31 - 1)
        _check_range("rate_hz", self.rate_hz, 0.1, 1000.0)
        _check_range("traffic_density", self.traffic_density, 0.0, 1.0)
        _check_range("pedestrian_density", self.pedestrian_density, 0.0, 1.0)
        _check_range("time_of_day", self.time_of_day, 0.0, 24.0, high_open=True)
        _check_range("ego_speed", self.ego_speed, 0.0, 40.0)
        _check_range("fov_deg", self.fov_deg, 20.0, 150.0)
        _check_range("camera_height", self.camera_height, 0.5, 5.0)
        _check_range("pitch_deg", self.pitch_deg, -20.0, 30.0)
        _check_range("view_distance", self.view_distance, 30.0, 1000.0)

    @property
    def period_ns(self) -> int:
        """Frame period in integer nanoseconds; frame i is stamped ``i * period_ns``."""
        return round(1e9 / self.rate_hz)

    def stamp_ns(self, index: int) -> int:
        """Stamp of frame ``index`` in nanoseconds (exactly invertible with :meth:`index_of`)."""
        return index * self.period_ns

    def index_of(self, stamp_ns: int) -> int:
        """Frame index whose stamp is ``stamp_ns`` (inverse of :meth:`stamp_ns`)."""
        return round(stamp_ns / self.period_ns)

    def time_s(self, index: int) -> float:
        """Simulated time of frame ``index`` in seconds."""
        return self.stamp_ns(index) * 1e-9

    def intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) of the pinhole camera: square pixels, principal point at the image centre."""
        fx = (self.width / 2.0) / math.tan(math.radians(self.fov_deg) / 2.0)
        return fx, fx, self.width / 2.0, self.height / 2.0
