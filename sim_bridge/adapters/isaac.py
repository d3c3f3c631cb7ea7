"""Isaac Sim adapter: Replicator segmentation ids plus their runtime id -> label JSON.

Isaac Sim numbers semantic classes per stage at run time, so there is no fixed native id table: the
``semantic_segmentation`` annotator returns ``uint32`` ids with ``info["idToLabels"]`` such as
``{"0": {"class": "BACKGROUND"}, "1": {"class": "UNLABELLED"}, "2": {"class": "car"}}``, and the ROS 2
Camera Helper (``type = semantic_segmentation``, ``enableSemanticLabels = True``) publishes the image
(``32SC1``) plus the same mapping as a JSON ``std_msgs/String`` on ``semanticLabelsTopicName``
(default ``semantic_labels``). The ``instance_segmentation`` / ``instance_id_segmentation``
annotators do the same with instance ids (values are prim paths, or ``{"class": ...}`` dicts via
``idToSemantics``).

The adapter's table is therefore **by class name**: Isaac label -> canonical class, with the Cityscapes
names and common aliases accepted by default (:func:`sim_bridge.adapters.base.canonical_class`).

Sources: https://docs.isaacsim.omniverse.nvidia.com/latest/py/source/extensions/isaacsim.ros2.nodes/docs/ogn/OgnROS2CameraHelper.html
(ROS2 Camera Helper), https://docs.omniverse.nvidia.com/extensions/latest/ext_omnigraph/node-library/nodes/omni-replicator-core/semanticsegmentation-1.html
(SemanticSegmentation node), .../instanceidsegmentation-1.html (InstanceIdSegmentation node).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from sim2real.core.errors import LabelError
from sim2real.core.labels import IGNORE_ID

from .base import (
    DecodeStats,
    KeyTable,
    SimulatorAdapter,
    TopicSet,
    canonical_class,
    fold_instance_ids,
    map_keys,
)

__all__ = ["ISAAC", "ISAAC_IGNORED", "IsaacAdapter", "parse_isaac_labels"]

#: Isaac's own labels for pixels without semantics: known, mapped to ignore, not counted as unknown.
ISAAC_IGNORED: Final = frozenset({"background", "unlabelled", "unlabeled"})

_STAMP_KEYS: Final = frozenset({"time_stamp", "timestamp", "header"})


def parse_isaac_labels(text: str | Mapping[str, object]) -> dict[int, str]:
    """Parse an Isaac ``idToLabels`` JSON (string or already-parsed mapping) into ``{id: label}``.

    Accepted value forms: ``{"class": "car"}`` (first comma-separated class wins), ``"car"`` or a prim
    path ``"/World/car_01"``. Non-integer keys (``time_stamp``) are skipped.

    Raises:
        LabelError: not JSON (or nested too deeply), not an object, or a value that is neither a string nor a
            class dict.
    """
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LabelError(f"Isaac labels are not valid JSON: {exc}") from exc
        except RecursionError:  # e.g. thousands of nested arrays: refused, never a crash of the caller
            raise LabelError(f"Isaac labels are nested too deeply to parse ({len(text)} characters)") from None
    else:
        data = text
    if not isinstance(data, Mapping):
        raise LabelError(f"Isaac labels must be a JSON object id -> label, got {type(data).__name__}")
    out: dict[int, str] = {}
    for key, value in data.items():
        if key in _STAMP_KEYS:
            continue
        try:
            native_id = int(key)
        except ValueError:
            continue
        if isinstance(value, Mapping) and "class" in value:
            label = str(value["class"]).split(",")[0].strip()
        elif isinstance(value, str):
            label = value
        else:
            raise LabelError(f"Isaac label for id {key} must be a string or {{'class': ...}}, got {value!r}")
        out[native_id] = label
    return out


@dataclass(frozen=True)
class IsaacAdapter(SimulatorAdapter):
    """Isaac Sim: class-name table applied to the runtime id -> label mapping.

    Attributes:
        class_map: ``(Isaac label (lower case), canonical class or None)`` rows that override or extend
            the default name matching (Cityscapes names and aliases); None = ignore.
    """

    class_map: tuple[tuple[str, str | None], ...] = ()

    def train_id(self, label: str) -> int | None:
        """Train id of an Isaac class label; 255 for ignored labels; None if unknown."""
        key = label.strip().lower()
        overrides = dict(self.class_map)
        if key in overrides:
            value = overrides[key]
            return IGNORE_ID if value is None else canonical_class(value)
        if key in ISAAC_IGNORED:
            return IGNORE_ID
        return canonical_class(key)

    def key_table(self, id_to_name: Mapping[int, str]) -> KeyTable:
        """Runtime ids -> train ids; ids whose label is unknown are left out (so they count as unknown)."""
        pairs: dict[int, int] = {}
        for native_id, label in id_to_name.items():
            tid = self.train_id(label)
            if tid is not None:
                pairs[int(native_id)] = tid
        return KeyTable.build(pairs, what="id")

    @staticmethod
    def _ids(array: np.ndarray) -> np.ndarray:
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
            raise LabelError(
                "Isaac id image must be (H, W) integer (32SC1 / 32UC1 / 16UC1), got "
                f"{array.dtype} {array.shape} (colorize=True output is not supported: publish raw ids)"
            )
        if array.dtype == np.int32:
            return array.view(np.uint32)  # 32SC1 carries the annotator's uint32 ids bit for bit
        return array

    def _labelled(
        self, array: np.ndarray, id_to_name: Mapping[int, str], stats: DecodeStats | None
    ) -> np.ndarray:
        return map_keys(self._ids(array), self.key_table(id_to_name), stats)

    def decode_semantic(
        self,
        array: np.ndarray,
        encoding: str,
        *,
        stats: DecodeStats | None = None,
        id_to_name: Mapping[int, str] | None = None,
    ) -> np.ndarray:
        """``semantic_segmentation`` ids + their labels -> (H, W) uint8 train ids (unknown -> 255)."""
        if id_to_name is None:
            raise LabelError("Isaac semantic ids need the id -> label mapping (semantic_labels topic)")
        return self._labelled(array, id_to_name, stats)

    def decode_instance(
        self,
        array: np.ndarray,
        encoding: str,
        *,
        stats: DecodeStats | None = None,
        id_to_name: Mapping[int, str] | None = None,
        semantic: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Instance ids -> canonical (semantic, instance).

        The class of each pixel comes from ``semantic`` (the paired semantic frame) when given, else from
        ``id_to_name`` (``idToSemantics`` style ``{"class": ...}`` labels). Instance ids are Isaac's own
        (stable while the stage is loaded), folded into uint16 for thing-class pixels.
        """
        ids = self._ids(array)
        if semantic is None:
            if id_to_name is None:
                raise LabelError("Isaac instance ids need a paired semantic map or an id -> class mapping")
            semantic = self._labelled(ids, id_to_name, stats)
        elif semantic.shape != ids.shape or semantic.dtype != np.uint8:
            raise LabelError(
                f"semantic must be uint8 {ids.shape} to match the instance image, "
                f"got {semantic.dtype} {semantic.shape}"
            )
        return semantic, fold_instance_ids(ids, semantic)


ISAAC: Final = IsaacAdapter(
    name="isaac",
    title="NVIDIA Isaac Sim (Replicator annotators / ROS 2 Camera Helper)",
    profiles=(
        (
            "ros2_camera_helper",
            TopicSet(
                rgb="/rgb",
                semantic="/semantic_segmentation",
                instance="/instance_segmentation",
                camera_info="/camera_info",
                semantic_labels="/semantic_labels",
                instance_labels="/instance_segmentation_labels",
            ),
        ),
    ),
    rgb_encodings=("rgb8", "rgba8"),
    semantic_encodings=("32SC1",),
    instance_encodings=("32SC1",),
    has_instances=True,
    sources=(
        "https://docs.isaacsim.omniverse.nvidia.com/latest/py/source/extensions/isaacsim.ros2.nodes/docs/ogn/"
        "OgnROS2CameraHelper.html - ROS2 Camera Helper",
        "https://docs.omniverse.nvidia.com/extensions/latest/ext_omnigraph/node-library/nodes/"
        "omni-replicator-core/semanticsegmentation-1.html - SemanticSegmentation",
        "https://docs.omniverse.nvidia.com/extensions/latest/ext_omnigraph/node-library/nodes/"
        "omni-replicator-core/instanceidsegmentation-1.html - InstanceIdSegmentation",
    ),
)
