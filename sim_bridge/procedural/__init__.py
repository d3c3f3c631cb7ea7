"""The built-in procedural driving simulator: RGB + pixel-exact semantic and instance labels.

>>> sim = ProceduralSimulator(SimConfig(width=320, height=180, seed=3))
>>> frame = sim.frame(10)          # random access; frame(i) depends only on (config, i)
>>> frame.rgb.shape, frame.semantic.dtype, frame.instance.dtype
((180, 320, 3), dtype('uint8'), dtype('uint16'))

No rclpy here: the ROS node (:mod:`sim2real.nodes.sim_node`) and the bag recorder
(:mod:`sim_bridge.record_cli`) wrap this library.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .config import SimConfig
from .render import Renderer, camera_matrix, lighting_for
from .scene import Scene, World

__all__ = ["ProceduralSimulator", "SimConfig", "SimFrame", "camera_matrix", "lighting_for"]


@dataclass(frozen=True)
class SimFrame:
    """One rendered frame.

    rgb: (H, W, 3) uint8 RGB; semantic: (H, W) uint8 Cityscapes train ids; instance: (H, W) uint16,
    0 = none; K: (3, 3) float64 camera intrinsics; objects: instance id -> class name of every object
    in the scene snapshot (a superset of the ids visible in ``instance``).
    """

    index: int
    stamp_ns: int
    rgb: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    K: np.ndarray
    objects: dict[int, str] = field(default_factory=dict)


class ProceduralSimulator:
    """Deterministic procedural driving scenes; iterate for frames 0, 1, 2, ... or call :meth:`frame`."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config if config is not None else SimConfig()
        self.world = World(self.config)
        self.renderer = Renderer(self.config, self.world.road)
        self.K = self.renderer.K

    def scene(self, index: int) -> Scene:
        """The world model of frame ``index`` (ego pose, primitives, objects) without rendering it."""
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        return self.world.snapshot(index)

    def frame(self, index: int) -> SimFrame:
        """Render frame ``index`` (stamp ``index * config.period_ns``)."""
        scene = self.scene(index)
        rgb, semantic, instance = self.renderer.render(scene)
        return SimFrame(index, self.config.stamp_ns(index), rgb, semantic, instance, self.K.copy(),
                        scene.objects)

    def __iter__(self) -> Iterator[SimFrame]:
        index = 0
        while True:
            yield self.frame(index)
            index += 1
