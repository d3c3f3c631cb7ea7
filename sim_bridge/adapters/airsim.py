"""AirSim (and Colosseum) adapter: segmentation by mesh object id, decoded through AirSim's palette.

AirSim's ``Segmentation`` image type paints every mesh with the colour of its *object id* (0..255);
the id -> colour palette is fixed and published as ``docs/seg_rgbs.txt``. Ids are assigned to meshes
by name with ``simSetSegmentationObjectID(mesh_name, id, is_name_regex=True)``; a mesh nobody assigned
keeps an id AirSim derives from its name. There is no instance image type.

So the adapter is a **configurable rule table**: mesh-name regex -> canonical class. The client applies
the rules once (:func:`apply_segmentation_ids`): every mesh first gets id 0 (void), then each rule
assigns ``train id + 1`` to the meshes it matches (later rules win, as with successive AirSim calls).
Decoding maps palette colour -> object id -> train id; colours of unassigned ids are unknown (counted).

Sources: https://microsoft.github.io/AirSim/image_apis/#segmentation (Image APIs: Segmentation),
https://github.com/microsoft/AirSim/blob/main/docs/seg_rgbs.txt (palette, MIT licence),
https://microsoft.github.io/AirSim/airsim_ros_pkgs/ (ROS topics
``/airsim_node/<vehicle>/<camera>/<image type>``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import numpy as np

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID

from .base import DecodeStats, KeyTable, SimulatorAdapter, TopicSet, map_colors

__all__ = [
    "AIRSIM",
    "AIRSIM_PALETTE",
    "DEFAULT_MESH_RULES",
    "AirSimAdapter",
    "airsim_topics",
    "apply_segmentation_ids",
    "classify_mesh",
    "ignore_case",
    "object_id_for",
    "segmentation_id_calls",
]

#: AirSim segmentation palette: object id (index) -> RGB colour (docs/seg_rgbs.txt, microsoft/AirSim, MIT).
AIRSIM_PALETTE: Final[tuple[tuple[int, int, int], ...]] = (
    (55, 181, 57), (153, 108, 6), (112, 105, 191), (89, 121, 72), (190, 225, 64), (206, 190, 59),
    (81, 13, 36), (115, 176, 195), (161, 171, 27), (135, 169, 180), (29, 26, 199), (102, 16, 239),
    (242, 107, 146), (156, 198, 23), (49, 89, 160), (68, 218, 116), (11, 236, 9), (196, 30, 8),
    (121, 67, 28), (0, 53, 65), (146, 52, 70), (226, 149, 143), (151, 126, 171), (194, 39, 7),
    (205, 120, 161), (212, 51, 60), (211, 80, 208), (189, 135, 188), (54, 72, 205), (103, 252, 157),
    (124, 21, 123), (19, 132, 69), (195, 237, 132), (94, 253, 175), (182, 251, 87), (90, 162, 242),
    (199, 29, 1), (254, 12, 229), (35, 196, 244), (220, 163, 49), (86, 254, 214), (152, 3, 129),
    (92, 31, 106), (207, 229, 90), (125, 75, 48), (98, 55, 74), (126, 129, 238), (222, 153, 109),
    (85, 152, 34), (173, 69, 31), (37, 128, 125), (58, 19, 33), (134, 57, 119), (218, 124, 115),
    (120, 0, 200), (225, 131, 92), (246, 90, 16), (51, 155, 241), (202, 97, 155), (184, 145, 182),
    (96, 232, 44), (133, 244, 133), (180, 191, 29), (1, 222, 192), (99, 242, 104), (91, 168, 219),
    (65, 54, 217), (148, 66, 130), (203, 102, 204), (216, 78, 75), (234, 20, 250), (109, 206, 24),
    (164, 194, 17), (157, 23, 236), (158, 114, 88), (245, 22, 110), (67, 17, 35), (181, 213, 93),
    (170, 179, 42), (52, 187, 148), (247, 200, 111), (25, 62, 174), (100, 25, 240), (191, 195, 144),
    (252, 36, 67), (241, 77, 149), (237, 33, 141), (119, 230, 85), (28, 34, 108), (78, 98, 254),
    (114, 161, 30), (75, 50, 243), (66, 226, 253), (46, 104, 76), (8, 234, 216), (15, 241, 102),
    (93, 14, 71), (192, 255, 193), (253, 41, 164), (24, 175, 120), (185, 243, 231), (169, 233, 97),
    (243, 215, 145), (72, 137, 21), (160, 113, 101), (214, 92, 13), (167, 140, 147), (101, 109, 181),
    (53, 118, 126), (3, 177, 32), (40, 63, 99), (186, 139, 153), (88, 207, 100), (71, 146, 227),
    (236, 38, 187), (215, 4, 215), (18, 211, 66), (113, 49, 134), (47, 42, 63), (219, 103, 127),
    (57, 240, 137), (227, 133, 211), (145, 71, 201), (217, 173, 183), (250, 40, 113), (208, 125, 68),
    (224, 186, 249), (69, 148, 46), (239, 85, 20), (108, 116, 224), (56, 214, 26), (179, 147, 43),
    (48, 188, 172), (221, 83, 47), (155, 166, 218), (62, 217, 189), (198, 180, 122), (201, 144, 169),
    (132, 2, 14), (128, 189, 114), (163, 227, 112), (45, 157, 177), (64, 86, 142), (118, 193, 163),
    (14, 32, 79), (200, 45, 170), (74, 81, 2), (59, 37, 212), (73, 35, 225), (95, 224, 39),
    (84, 170, 220), (159, 58, 173), (17, 91, 237), (31, 95, 84), (34, 201, 248), (63, 73, 209),
    (129, 235, 107), (231, 115, 40), (36, 74, 95), (238, 228, 154), (61, 212, 54), (13, 94, 165),
    (141, 174, 0), (140, 167, 255), (117, 93, 91), (183, 10, 186), (165, 28, 61), (144, 238, 194),
    (12, 158, 41), (76, 110, 234), (150, 9, 121), (142, 1, 246), (230, 136, 198), (5, 60, 233),
    (232, 250, 80), (143, 112, 56), (187, 70, 156), (2, 185, 62), (138, 223, 226), (122, 183, 222),
    (166, 245, 3), (175, 6, 140), (240, 59, 210), (248, 44, 10), (83, 82, 52), (223, 248, 167),
    (87, 15, 150), (111, 178, 117), (197, 84, 22), (235, 208, 124), (9, 76, 45), (176, 24, 50),
    (154, 159, 251), (149, 111, 207), (168, 231, 15), (209, 247, 202), (80, 205, 152), (178, 221, 213),
    (27, 8, 38), (244, 117, 51), (107, 68, 190), (23, 199, 139), (171, 88, 168), (136, 202, 58),
    (6, 46, 86), (105, 127, 176), (174, 249, 197), (172, 172, 138), (228, 142, 81), (7, 204, 185),
    (22, 61, 247), (233, 100, 78), (127, 65, 105), (33, 87, 158), (139, 156, 252), (42, 7, 136),
    (20, 99, 179), (79, 150, 223), (131, 182, 184), (110, 123, 37), (60, 138, 96), (210, 96, 94),
    (123, 48, 18), (137, 197, 162), (188, 18, 5), (39, 219, 151), (204, 143, 135), (249, 79, 73),
    (77, 64, 178), (41, 246, 77), (16, 154, 4), (116, 134, 19), (4, 122, 235), (177, 106, 230),
    (21, 119, 12), (104, 5, 98), (50, 130, 53), (30, 192, 25), (26, 165, 166), (10, 160, 82),
    (106, 43, 131), (44, 216, 103), (255, 101, 221), (32, 151, 196), (213, 220, 89), (70, 209, 228),
    (97, 184, 83), (82, 239, 232), (251, 164, 128), (193, 11, 245), (38, 27, 159), (229, 141, 203),
    (130, 56, 55), (147, 210, 11), (162, 203, 118), (43, 47, 206),
)

#: object id AirSim paints for "void" (every mesh before the rules run).
VOID_OBJECT_ID: Final = 0

#: default mesh-name rules, case-insensitive, for the Unreal city environments AirSim ships
#: (CityEnviron, Blocks ...). Order matters: later rules override earlier ones. Edit per environment.
DEFAULT_MESH_RULES: Final[tuple[tuple[str, str | None], ...]] = (
    (r".*(road|street|asphalt|crosswalk|lane).*", "road"),
    (r".*(sidewalk|pavement|curb|kerb).*", "sidewalk"),
    (r".*(building|house|skyscraper|apartment|roof).*", "building"),
    (r".*wall.*", "wall"),
    (r".*(fence|railing).*", "fence"),
    (r".*(pole|lamppost|streetlight|street_light).*", "pole"),
    (r".*(trafficlight|traffic_light|semaphore).*", "traffic light"),
    (r".*(sign|signboard).*", "traffic sign"),
    (r".*(tree|bush|hedge|foliage|plant).*", "vegetation"),
    (r".*(grass|terrain|landscape|ground).*", "terrain"),
    (r".*(sky|skysphere).*", "sky"),
    (r".*(person|pedestrian|human|character).*", "person"),
    (r".*(car|vehicle|sedan|suv|van).*", "car"),
    (r".*truck.*", "truck"),
    (r".*bus.*", "bus"),
    (r".*(motorcycle|motorbike).*", "motorcycle"),
    (r".*bicycle.*", "bicycle"),
)


def object_id_for(canonical: str | None) -> int:
    """The AirSim object id the rules assign to a canonical class: train id + 1 (void/None -> 0)."""
    if canonical is None:
        return VOID_OBJECT_ID
    if canonical not in TRAIN_ID:
        raise ConfigError(f"{canonical!r} is not a canonical class; valid: {', '.join(TRAIN_ID)} (or None)")
    return TRAIN_ID[canonical] + 1


def _check_rules(rules: Iterable[tuple[str, str | None]]) -> tuple[tuple[str, str | None], ...]:
    out = []
    for pattern, canonical in rules:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"AirSim mesh rule {pattern!r} is not a valid regex: {exc}") from exc
        object_id_for(canonical)
        out.append((pattern, canonical))
    return tuple(out)


def ignore_case(pattern: str) -> str:
    """Spell every ASCII letter outside ``[...]`` and escapes as ``[xX]``.

    AirSim matches mesh names with ``std::regex`` (ECMAScript), which has no inline ``(?i)`` flag, so
    case-insensitivity is written into the pattern itself; it means the same in Python's ``re``.
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        out.append(f"[{c.lower()}{c.upper()}]" if c.isascii() and c.isalpha() and not in_class else c)
        i += 1
    return "".join(out)


def segmentation_id_calls(rules: Iterable[tuple[str, str | None]]) -> list[tuple[str, int]]:
    """``(regex, object id)`` in the order to pass to ``simSetSegmentationObjectID(regex, id, True)``.

    The first call resets every mesh (``[\\w]*``) to void; rules follow in order (later ones win),
    made case-insensitive with :func:`ignore_case`.
    """
    calls = [(r"[\w]*", VOID_OBJECT_ID)]
    calls += [(ignore_case(pattern), object_id_for(canonical)) for pattern, canonical in _check_rules(rules)]
    return calls


def classify_mesh(mesh_name: str, rules: Iterable[tuple[str, str | None]]) -> int:
    """Train id (or 255) a mesh ends up with after :func:`segmentation_id_calls` (last match wins)."""
    object_id = VOID_OBJECT_ID
    for pattern, value in segmentation_id_calls(rules):
        if re.fullmatch(pattern, mesh_name):
            object_id = value
    return IGNORE_ID if object_id == VOID_OBJECT_ID else object_id - 1


def apply_segmentation_ids(client: Any, rules: Iterable[tuple[str, str | None]]) -> list[bool]:
    """Send the rule table to a connected ``airsim`` client; returns AirSim's per-call success flags.

    ``client`` is injected (``airsim.CarClient()`` / ``MultirotorClient()``) so this runs without AirSim.
    """
    return [bool(client.simSetSegmentationObjectID(p, i, True)) for p, i in segmentation_id_calls(rules)]


def airsim_topics(vehicle: str = "PhysXCar", camera: str = "front_center") -> TopicSet:
    """airsim_ros_pkgs topics ``/airsim_node/<vehicle>/<camera>/<image type>`` (+ ``/camera_info``)."""
    prefix = f"/airsim_node/{vehicle}/{camera}"
    return TopicSet(
        rgb=f"{prefix}/Scene",
        semantic=f"{prefix}/Segmentation",
        instance=None,
        camera_info=f"{prefix}/Scene/camera_info",
    )


@dataclass(frozen=True)
class AirSimAdapter(SimulatorAdapter):
    """AirSim: mesh rules (applied in the simulator) + palette decoding of the Segmentation image.

    Attributes:
        rules: ``(mesh-name regex, canonical class or None)``, later rules win.
        tolerance: max per-channel colour deviation snapped to a palette colour (0 = exact).
    """

    rules: tuple[tuple[str, str | None], ...] = DEFAULT_MESH_RULES
    tolerance: int = 0

    @cached_property
    def table(self) -> KeyTable:
        """Palette colour of every object id the rules can assign (void + the 19 classes) -> train id."""
        _check_rules(self.rules)
        pairs: dict[int, int] = {}
        for object_id in range(NUM_CLASSES + 1):
            r, g, b = AIRSIM_PALETTE[object_id]
            pairs[(r << 16) | (g << 8) | b] = IGNORE_ID if object_id == VOID_OBJECT_ID else object_id - 1
        return KeyTable.build(pairs, what="colour")

    def decode_semantic(
        self,
        array: np.ndarray,
        encoding: str,
        *,
        stats: DecodeStats | None = None,
        id_to_name: Mapping[int, str] | None = None,
    ) -> np.ndarray:
        """Segmentation image (palette colours) -> (H, W) uint8 train ids; other ids -> 255, counted."""
        return map_colors(array, encoding, self.table, tolerance=self.tolerance, stats=stats)

    def decode_instance(
        self,
        array: np.ndarray,
        encoding: str,
        *,
        stats: DecodeStats | None = None,
        id_to_name: Mapping[int, str] | None = None,
        semantic: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """AirSim has no instance image type: always LabelError (publish instance 0 instead)."""
        raise LabelError("AirSim has no instance segmentation image; canonical instance maps stay 0")


AIRSIM: Final = AirSimAdapter(
    name="airsim",
    title="Microsoft AirSim / Colosseum (Segmentation image type, mesh-id rules)",
    profiles=(("airsim_ros_pkgs", airsim_topics()),),
    rgb_encodings=("bgr8", "rgb8"),
    semantic_encodings=("bgr8", "rgb8"),
    instance_encodings=(),
    has_instances=False,
    sources=(
        "https://microsoft.github.io/AirSim/image_apis/#segmentation - Image APIs: Segmentation",
        "https://github.com/microsoft/AirSim/blob/main/docs/seg_rgbs.txt - segmentation palette",
        "https://microsoft.github.io/AirSim/airsim_ros_pkgs/ - airsim_ros_pkgs",
    ),
)
