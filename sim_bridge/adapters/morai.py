"""MORAI SIM (Drive) adapter: colour-coded semantic and instance camera images.

MORAI cameras have the ground-truth types *Intensity* (RGB), *Semantic* (one colour per object class,
the "labeling color map" of the user manual's *Sensor Detection Data* page) and *Instance* (one colour
per object). Over ROS the camera publishes ``sensor_msgs/CompressedImage`` (default topic
``/image_jpeg/compressed``; every sensor's topic is set in MORAI's sensor network settings).

The class colour map is **version dependent and not reproduced here**: MORAI documents it per release
and we could not verify one here. The registered adapter therefore has an empty colour table and
:meth:`MoraiAdapter.check_ready` refuses to run until one is loaded with :func:`load_color_table`
(a JSON file written from the manual of the MORAI version in use; see docs/simulators/morai.md).

JPEG is lossy: label colours bleed at edges. Use a PNG-compressed label stream where possible; else set
``tolerance`` (max per-channel deviation) so near-miss colours snap to the nearest table colour.

Sources: https://morai-sim-drive-user-manual-en-24-r2.scrollhelp.site/morai-sim-drive-user-manual-en-24.r2/Working-version/sensor-detection-data
(Sensor Detection Data), https://morai-sim--drive-user-manual--en-22-r2.scrollhelp.site/msdume2/sensor-list
(Sensor List: camera output types Intensity / Semantic / Instance).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Final

import numpy as np

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import IGNORE_ID

from .base import (
    DecodeStats,
    KeyTable,
    SimulatorAdapter,
    TopicSet,
    canonical_class,
    color_keys,
    fold_instance_ids,
    map_colors,
    split_rgb,
)

__all__ = ["MORAI", "MoraiAdapter", "load_color_table"]


def _rgb(value: object, where: str) -> tuple[int, int, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(c, int) and 0 <= c <= 255 for c in value)
    ):
        raise ConfigError(f"{where}: colour must be [r, g, b] with ints 0..255, got {value!r}")
    return (int(value[0]), int(value[1]), int(value[2]))


@dataclass(frozen=True)
class MoraiAdapter(SimulatorAdapter):
    """MORAI: class colour table + class-name mapping (+ snapping tolerance for JPEG streams).

    Attributes:
        colors: ``(MORAI class name, (r, g, b))`` rows from the MORAI manual's labeling colour map.
        class_map: ``(MORAI class name, canonical class or None)`` overrides; names not listed are
            matched by Cityscapes name / alias (``Vehicle`` -> car, ``Pedestrian`` -> person).
        tolerance: max per-channel colour deviation snapped to a table colour (0 = exact).
    """

    colors: tuple[tuple[str, tuple[int, int, int]], ...] = ()
    class_map: tuple[tuple[str, str | None], ...] = ()
    tolerance: int = 0

    def check_ready(self) -> None:
        """ConfigError until a colour table is loaded (the map is MORAI-version specific)."""
        super().check_ready()
        if not self.colors:
            raise ConfigError(
                "MORAI adapter has no class colour table: write the labeling colour map of your MORAI "
                "version to JSON and load it (load_color_table / node parameter class_table_file)"
            )

    def class_train_id(self, name: str) -> int:
        """Train id of a MORAI class name (255 for ignored); ConfigError if it matches nothing."""
        overrides = dict(self.class_map)
        if name in overrides:
            value = overrides[name]
            if value is None:
                return IGNORE_ID
            tid = canonical_class(value)
        else:
            tid = canonical_class(name)
        if tid is None:
            raise ConfigError(
                f"MORAI class {name!r} has no canonical class: add it to class_map "
                "(a Cityscapes class name or null)"
            )
        return tid

    @cached_property
    def table(self) -> KeyTable:
        """Colour key -> train id for every class in :attr:`colors`."""
        pairs: dict[int, int] = {}
        for name, (r, g, b) in self.colors:
            key = (r << 16) | (g << 8) | b
            if key in pairs:
                raise ConfigError(f"MORAI colour {(r, g, b)} is listed twice (second time for {name!r})")
            pairs[key] = self.class_train_id(name)
        return KeyTable.build(pairs, what="colour")

    def decode_semantic(
        self,
        array: np.ndarray,
        encoding: str,
        *,
        stats: DecodeStats | None = None,
        id_to_name: Mapping[int, str] | None = None,
    ) -> np.ndarray:
        """Semantic camera colours -> (H, W) uint8 train ids (unknown colours -> 255, counted)."""
        self.check_ready()
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
        """Instance camera colours + the paired semantic map -> canonical (semantic, instance).

        Each object's colour key ``r << 16 | g << 8 | b`` is its stable id (folded into uint16); black
        (0, 0, 0) is no object. Only thing-class pixels (from ``semantic``) keep an id.
        """
        if semantic is None:
            raise LabelError("MORAI instance colours carry no class: pass the paired semantic map")
        keys = color_keys(*split_rgb(array, encoding))
        if semantic.shape != keys.shape or semantic.dtype != np.uint8:
            raise LabelError(
                f"semantic must be uint8 {keys.shape} to match the instance image, "
                f"got {semantic.dtype} {semantic.shape}"
            )
        return semantic, fold_instance_ids(keys, semantic)


def load_color_table(
    source: str | Path | Mapping[str, object], base: MoraiAdapter | None = None
) -> MoraiAdapter:
    """A MORAI adapter with the colour table from a JSON file (or an already-parsed mapping).

    Format::

        {"colors": {"Vehicle": [r, g, b], "Pedestrian": [r, g, b], ...},
         "class_map": {"Lane": "road", "Etc": null},      # optional overrides
         "tolerance": 6}                                   # optional

    Raises:
        ConfigError: unreadable file, bad JSON shape, bad colours, or classes without a canonical class.
    """
    if isinstance(source, Mapping):
        data: object = source
    else:
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read MORAI colour table {source}: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("colors"), Mapping):
        raise ConfigError('MORAI colour table must be a JSON object with a "colors" object')
    colors = tuple((str(k), _rgb(v, f"colors[{k!r}]")) for k, v in data["colors"].items())
    class_map_raw = data.get("class_map", {})
    if not isinstance(class_map_raw, Mapping):
        raise ConfigError('"class_map" must be an object name -> class or null')
    class_map = tuple((str(k), None if v is None else str(v)) for k, v in class_map_raw.items())
    tolerance = data.get("tolerance", 0)
    if not isinstance(tolerance, int) or not 0 <= tolerance <= 64:
        raise ConfigError(f'"tolerance" must be an int 0..64, got {tolerance!r}')
    adapter = replace(base or MORAI, colors=colors, class_map=class_map, tolerance=tolerance)
    _ = adapter.table  # validate every class now, not on the first frame
    return adapter


MORAI: Final = MoraiAdapter(
    name="morai",
    title="MORAI SIM Drive (colour-coded Semantic / Instance cameras)",
    profiles=(
        (
            "ros",
            TopicSet(
                rgb="/image_jpeg/compressed",
                semantic="/semantic_image/compressed",
                instance="/instance_image/compressed",
                camera_info=None,
                rgb_compressed=True,
                labels_compressed=True,
            ),
        ),
    ),
    rgb_encodings=("bgr8", "rgb8"),
    semantic_encodings=("bgr8", "rgb8"),
    instance_encodings=("bgr8", "rgb8"),
    has_instances=True,
    sources=(
        "https://morai-sim-drive-user-manual-en-24-r2.scrollhelp.site/morai-sim-drive-user-manual-en-24.r2/"
        "Working-version/sensor-detection-data - Sensor Detection Data",
        "https://morai-sim--drive-user-manual--en-22-r2.scrollhelp.site/msdume2/sensor-list - Sensor list",
    ),
)
