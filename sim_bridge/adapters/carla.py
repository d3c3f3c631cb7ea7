"""CARLA 0.9.14+ adapter: semantic tags, CityScapes-palette images and the instance camera.

Sources (see docs/simulators/carla.md for the full discussion):

* Semantic tag numbering (0.9.14+) and the colours of ``carla.ColorConverter.CityScapesPalette``:
  LibCarla ``image/CityScapesPalette.h`` — https://carla.org/Doxygen/html/d3/d5f/CityScapesPalette_8h_source.html
* Instance camera: R = semantic tag, G + 256 * B = object (actor) id —
  https://carla.readthedocs.io/en/0.9.16/tuto_G_instance_segmentation_sensor/ and the
  ``SceneCaptureCamera_RayTracedLensInstance.h`` comment ("R = semantic label, G = actor id low byte,
  B = actor id high byte").
* carla-ros-bridge camera topics ``/carla/<parent role>/<sensor role>/image`` and ``camera_info``,
  RGB as ``bgra8``, semantic converted to the CityScapes palette (``bgra8``), no instance camera:
  https://carla.readthedocs.io/projects/ros-bridge/en/latest/ros_sensors/ and
  ``carla_ros_bridge/src/carla_ros_bridge/camera.py``.
* Native ROS 2 interface (0.9.15+, server started with ``--ros2``, sensor ``enable_for_ros()``):
  ``LibCarla/source/carla/ros2/publishers/Carla{RGB,SS,IS}CameraPublisher.cpp`` publish
  ``carla/<parent ros_name>/<ros_name>/image`` and ``.../camera_info``, every camera as ``bgra8``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from sim2real.core.errors import LabelError

from .base import (
    ClassTable,
    DecodeStats,
    KeyTable,
    SimulatorAdapter,
    TopicSet,
    color_keys,
    fold_instance_ids,
    map_keys,
    map_small_ids,
    split_rgb,
)

__all__ = [
    "CARLA",
    "CARLA_CLASSES",
    "CARLA_PALETTE",
    "CARLA_ROS_BRIDGE",
    "CARLA_TAGS",
    "CarlaAdapter",
    "carla_topics",
    "decode_instance_rgb",
]

#: CARLA 0.9.14+ semantic tag -> tag name (the order of LibCarla's CityScapesPalette.h / ObjectLabel.h).
CARLA_TAGS: Final[Mapping[int, str]] = {
    0: "unlabeled", 1: "road", 2: "sidewalk", 3: "building", 4: "wall", 5: "fence", 6: "pole",
    7: "traffic light", 8: "traffic sign", 9: "vegetation", 10: "terrain", 11: "sky",
    12: "pedestrian", 13: "rider", 14: "car", 15: "truck", 16: "bus", 17: "train", 18: "motorcycle",
    19: "bicycle", 20: "static", 21: "dynamic", 22: "other", 23: "water", 24: "road line",
    25: "ground", 26: "bridge", 27: "rail track", 28: "guard rail",
}

#: tag name -> canonical class (None = ignore, 255). Cityscapes conventions (cityscapesScripts labels.py):
#: lane markings are part of ``road``; Cityscapes' own ``static``, ``dynamic``, ``ground``, ``bridge``,
#: ``rail track`` and ``guard rail`` labels exist but have train id 255, so CARLA's are ignored too;
#: ``other`` and ``water`` have no Cityscapes class at all.
CARLA_CLASSES: Final[Mapping[str, str | None]] = {
    "unlabeled": None,
    "road": "road",
    "sidewalk": "sidewalk",
    "building": "building",
    "wall": "wall",
    "fence": "fence",
    "pole": "pole",
    "traffic light": "traffic light",
    "traffic sign": "traffic sign",
    "vegetation": "vegetation",
    "terrain": "terrain",
    "sky": "sky",
    "pedestrian": "person",
    "rider": "rider",
    "car": "car",
    "truck": "truck",
    "bus": "bus",
    "train": "train",
    "motorcycle": "motorcycle",
    "bicycle": "bicycle",
    "static": None,       # street furniture; Cityscapes "static" (id 4) is void
    "dynamic": None,      # movable props; Cityscapes "dynamic" (id 5) is void
    "other": None,        # no Cityscapes counterpart
    "water": None,        # no Cityscapes counterpart
    "road line": "road",  # Cityscapes annotates lane markings as road
    "ground": None,       # Cityscapes "ground" (id 6) is void
    "bridge": None,       # Cityscapes "bridge" (id 15) has train id 255
    "rail track": None,   # Cityscapes "rail track" (id 10) has train id 255
    "guard rail": None,   # Cityscapes "guard rail" (id 14) has train id 255 (not fence)
}

#: tag -> RGB colour written by ``carla.ColorConverter.CityScapesPalette`` (0.9.14+).
CARLA_PALETTE: Final[Mapping[int, tuple[int, int, int]]] = {
    0: (0, 0, 0), 1: (128, 64, 128), 2: (244, 35, 232), 3: (70, 70, 70), 4: (102, 102, 156),
    5: (190, 153, 153), 6: (153, 153, 153), 7: (250, 170, 30), 8: (220, 220, 0),
    9: (107, 142, 35), 10: (152, 251, 152), 11: (70, 130, 180), 12: (220, 20, 60),
    13: (255, 0, 0), 14: (0, 0, 142), 15: (0, 0, 70), 16: (0, 60, 100), 17: (0, 80, 100),
    18: (0, 0, 230), 19: (119, 11, 32), 20: (110, 190, 160), 21: (170, 120, 50), 22: (55, 90, 80),
    23: (45, 60, 150), 24: (157, 234, 50), 25: (81, 0, 81), 26: (150, 100, 100),
    27: (230, 150, 140), 28: (180, 165, 180),
}

_TAG_TABLE: Final = ClassTable.build(CARLA_TAGS, CARLA_CLASSES, what="tag")
_PALETTE_TABLE: Final = KeyTable.build(
    {(r << 16) | (g << 8) | b: int(_TAG_TABLE.lut[tag]) for tag, (r, g, b) in CARLA_PALETTE.items()},
    what="colour",
)


def carla_topics(
    parent: str = "ego_vehicle",
    rgb: str = "rgb_front",
    semantic: str | None = "semantic_segmentation_front",
    instance: str | None = "instance_segmentation_front",
) -> TopicSet:
    """``/carla/<parent>/<sensor>/image`` topics (same pattern for the ros-bridge and native ROS 2).

    ``parent`` is the ego vehicle's ``role_name`` (ros-bridge) or ``ros_name`` (native interface);
    the sensor names are the cameras' ``role_name`` / ``ros_name`` attributes.
    """

    def image(sensor: str | None) -> str | None:
        return None if sensor is None else f"/carla/{parent}/{sensor}/image"

    return TopicSet(
        rgb=f"/carla/{parent}/{rgb}/image",
        semantic=image(semantic),
        instance=image(instance),
        camera_info=f"/carla/{parent}/{rgb}/camera_info",
    )


def _require_tags(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise LabelError(f"CARLA tag image must be uint8, got {array.dtype}")
    return array


@dataclass(frozen=True)
class CarlaAdapter(SimulatorAdapter):
    """CARLA: tag table (256-entry LUT), palette table, and the semantic stream's format.

    Attributes:
        tags: native tag -> canonical class table.
        palette: CityScapesPalette colour -> train id table (for palette-converted semantic images).
        semantic_format: ``"tag"`` (raw camera: tag in R, or a one-channel tag image) or ``"palette"``
            (carla-ros-bridge converts the semantic camera with ``CityScapesPalette``).
    """

    tags: ClassTable
    palette: KeyTable
    semantic_format: Literal["tag", "palette"]

    def decode_semantic(
        self,
        array: np.ndarray,
        encoding: str,
        *,
        stats: DecodeStats | None = None,
        id_to_name: Mapping[int, str] | None = None,
    ) -> np.ndarray:
        """Semantic camera image -> (H, W) uint8 train ids.

        One-channel input (``mono8`` / ``8UC1``, or a ``*_labelIds.png``) is read as tags. Colour input
        (``bgra8`` from ROS, ``bgr8`` from ``cv2.imread``, ``rgb8`` from PIL) is read according to
        :attr:`semantic_format`: the R channel holds the tag, or the pixel is a palette colour.
        """
        if array.ndim == 2:
            return map_small_ids(_require_tags(array), self.tags, stats)
        r, g, b = split_rgb(array, encoding)
        if self.semantic_format == "tag":
            return map_small_ids(r, self.tags, stats)
        return map_keys(color_keys(r, g, b), self.palette, stats)

    def decode_instance(
        self,
        array: np.ndarray,
        encoding: str,
        *,
        stats: DecodeStats | None = None,
        id_to_name: Mapping[int, str] | None = None,
        semantic: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Instance camera image (R = tag, object id = G + 256 * B) -> canonical (semantic, instance).

        The canonical instance id **is** CARLA's object id (actor ids are unique for the life of the
        actor, so an object keeps its id across frames) on thing-class pixels; stuff, ignored tags
        and object id 0 get 0. The semantic map comes from the R channel of this image.
        """
        if not self.has_instances:
            raise LabelError(f"{self.name} publishes no instance stream (carla-ros-bridge has none)")
        r, g, b = split_rgb(array, encoding)
        semantic_out = map_small_ids(r, self.tags, stats)
        object_ids = g.astype(np.uint16) | (b.astype(np.uint16) << 8)
        return semantic_out, fold_instance_ids(object_ids, semantic_out)


def decode_instance_rgb(rgb: np.ndarray, stats: DecodeStats | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Convenience: a raw instance image in RGB order (PIL) -> canonical (semantic, instance)."""
    return CARLA.decode_instance(rgb, "rgb8", stats=stats)


_SOURCES: Final = (
    "https://carla.org/Doxygen/html/d3/d5f/CityScapesPalette_8h_source.html - CityScapesPalette.h",
    "https://carla.readthedocs.io/en/0.9.16/tuto_G_instance_segmentation_sensor/"
    " - Instance segmentation sensor",
    "https://carla.readthedocs.io/projects/ros-bridge/en/latest/ros_sensors/ - ROS Bridge Sensors",
    "https://carla.readthedocs.io/en/latest/ecosys_ros/ - ROS (native interface vs ROS bridge)",
)

#: raw tags: CARLA's native ROS 2 interface, the instance camera, or sim_bridge/carla_plugin.
CARLA: Final = CarlaAdapter(
    name="carla",
    title="CARLA 0.9.14+ (native ROS 2 interface / raw cameras)",
    profiles=(("native_ros2", carla_topics()),),
    rgb_encodings=("bgra8",),
    semantic_encodings=("bgra8", "mono8"),
    instance_encodings=("bgra8",),
    has_instances=True,
    sources=_SOURCES,
    tags=_TAG_TABLE,
    palette=_PALETTE_TABLE,
    semantic_format="tag",
)

#: carla-ros-bridge: semantic images arrive CityScapes-palette coloured; no instance camera.
CARLA_ROS_BRIDGE: Final = CarlaAdapter(
    name="carla_ros_bridge",
    title="CARLA 0.9.14+ via carla-ros-bridge (palette semantic, no instances)",
    profiles=(("ros_bridge", carla_topics(instance=None)),),
    rgb_encodings=("bgra8",),
    semantic_encodings=("bgra8",),
    instance_encodings=(),
    has_instances=False,
    sources=_SOURCES,
    tags=_TAG_TABLE,
    palette=_PALETTE_TABLE,
    semantic_format="palette",
)
