"""Building blocks shared by every simulator adapter: topic tables, class tables, lookup kernels, stats.

An adapter turns one simulator's native camera streams into the canonical spaces of
:mod:`sim2real.core.labels` (RGB ``(H, W, 3)`` uint8; semantic ``(H, W)`` uint8 train ids 0..18 / 255;
instance ``(H, W)`` uint16, 0 = none). Adapters are frozen dataclasses holding *tables*; the decoding
is done by a handful of vectorised kernels here:

* :func:`map_small_ids` — ids 0..255 through a 256-entry LUT (one ``bincount`` + one gather);
* :func:`map_keys` — arbitrary integer keys (24-bit colours, uint32 Isaac ids) through a sorted key
  table with ``searchsorted`` (O(N log K), no per-pixel Python).

Values that a table does not know become 255 and are **counted** in a :class:`DecodeStats` (never an
exception): a node logs ``stats.summary()`` rate-limited so a mis-configured class table is visible.
Values the table knows but deliberately maps to "ignore" (CARLA ``static``, Isaac ``BACKGROUND``) also
become 255 but are not counted as unknown.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

import numpy as np

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import IGNORE_ID, THING_CLASSES, TRAIN_ID

__all__ = [
    "COLOR_ORDER",
    "THING_LUT",
    "ClassTable",
    "DecodeStats",
    "KeyTable",
    "SimulatorAdapter",
    "TopicSet",
    "canonical_class",
    "color_keys",
    "fold_instance_ids",
    "map_colors",
    "map_keys",
    "map_small_ids",
    "split_rgb",
]

#: channel order of the multi-channel encodings adapters accept (cv_bridge reads 8UC3/8UC4 as BGR(A)).
COLOR_ORDER: Final[Mapping[str, str]] = {
    "rgb8": "rgb", "rgba8": "rgb", "bgr8": "bgr", "bgra8": "bgr", "8UC3": "bgr", "8UC4": "bgr",
}
#: single-channel integer encodings adapters accept for id images.
ID_ENCODINGS: Final = frozenset({"mono8", "8UC1", "mono16", "16UC1", "32SC1", "32UC1"})

#: (256,) bool: train id -> is a thing class (carries instances).
THING_LUT: Final = np.zeros(256, dtype=bool)
THING_LUT[sorted(THING_CLASSES)] = True
THING_LUT.flags.writeable = False

_MAX_INSTANCE: Final = 65535


# --------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------


@dataclass
class DecodeStats:
    """Running counts a node logs rate-limited: pixels decoded, pixels with unknown values, bad messages.

    ``unknown`` counts pixels per human-readable native value (``"tag 29"``, ``"colour (1, 2, 3)"``,
    ``"class 'forklift'"``), so the log line says exactly what to add to the class table.
    """

    frames: int = 0
    pixels: int = 0
    unknown_pixels: int = 0
    bad_messages: int = 0
    unknown: Counter[str] = field(default_factory=Counter)

    def add_frame(self, pixels: int) -> None:
        """Count one decoded image of ``pixels`` pixels."""
        self.frames += 1
        self.pixels += int(pixels)

    def add_unknown(self, labels: Iterable[str], counts: Iterable[int]) -> None:
        """Count ``counts[i]`` pixels of the unknown native value described by ``labels[i]``."""
        for label, count in zip(labels, counts, strict=True):
            c = int(count)
            if c:
                self.unknown[label] += c
                self.unknown_pixels += c

    @property
    def unknown_fraction(self) -> float:
        """Fraction of decoded pixels whose native value was unknown (0.0 before any frame)."""
        return self.unknown_pixels / self.pixels if self.pixels else 0.0

    def summary(self, max_items: int = 6) -> str:
        """One log line: totals and the most frequent unknown values."""
        head = (
            f"{self.frames} frames, {self.unknown_pixels}/{self.pixels} pixels with unknown ids "
            f"({100.0 * self.unknown_fraction:.3f} %), {self.bad_messages} bad messages"
        )
        if not self.unknown:
            return head
        top = ", ".join(f"{label}: {n}" for label, n in self.unknown.most_common(max_items))
        more = len(self.unknown) - max_items
        return f"{head}; unknown: {top}" + (f", ... ({more} more)" if more > 0 else "")


# --------------------------------------------------------------------------------------------------
# class tables
# --------------------------------------------------------------------------------------------------

#: extra spellings accepted for the Cityscapes class names (after lower-casing, ``_``/``-`` -> space).
_ALIASES: Final[Mapping[str, str]] = {
    "pedestrian": "person", "pedestrians": "person", "people": "person", "human": "person",
    "persons": "person", "cyclist": "rider", "vehicle": "car", "cars": "car", "van": "car",
    "suv": "car", "motorbike": "motorcycle", "bike": "bicycle", "tree": "vegetation",
    "trees": "vegetation", "bush": "vegetation", "grass": "terrain", "traffic signal": "traffic light",
    "trafficlight": "traffic light", "trafficsign": "traffic sign", "sign": "traffic sign",
    "lane marking": "road", "road line": "road", "roadline": "road", "pavement": "sidewalk",
    "streetlight": "pole",
}


def canonical_class(name: str) -> int | None:
    """Cityscapes train id of a class name or a known alias (``"Pedestrian"`` -> 11), else None."""
    key = re.sub(r"[_\-]+", " ", name.strip().lower())
    key = _ALIASES.get(key, key)
    return TRAIN_ID.get(key)


def _train_id_of(canonical: str | None, where: str) -> int:
    if canonical is None:
        return IGNORE_ID
    if canonical not in TRAIN_ID:
        valid = ", ".join(TRAIN_ID)
        raise ConfigError(f"{where}: {canonical!r} is not a canonical class; valid: {valid} (or None)")
    return TRAIN_ID[canonical]


@dataclass(frozen=True)
class ClassTable:
    """Native class id -> native name -> canonical class, for ids 0..255, read as a table.

    Attributes:
        names: ``(native id, native name)`` rows, ids distinct in 0..255.
        mapping: ``(native name, canonical Cityscapes class name or None)`` rows; ``None`` = known
            but ignored (255, not counted as unknown). Every name in ``names`` needs a row.
        what: how an id is described in :class:`DecodeStats` (``"tag"`` -> ``"tag 29"``).
    """

    names: tuple[tuple[int, str], ...]
    mapping: tuple[tuple[str, str | None], ...]
    what: str = "id"

    @classmethod
    def build(
        cls, names: Mapping[int, str], mapping: Mapping[str, str | None], what: str = "id"
    ) -> ClassTable:
        """Build from two readable dicts (native id -> name, name -> canonical name or None)."""
        return cls(tuple(sorted(names.items())), tuple(mapping.items()), what)

    def __post_init__(self) -> None:
        ids = [i for i, _ in self.names]
        if len(set(ids)) != len(ids) or any(not 0 <= i <= 255 for i in ids):
            raise ConfigError(f"ClassTable ids must be distinct and within 0..255, got {ids}")
        mapped = dict(self.mapping)
        missing = [n for _, n in self.names if n not in mapped]
        if missing:
            raise ConfigError(f"ClassTable has no canonical mapping for native classes {missing}")
        for name, canonical in self.mapping:
            _train_id_of(canonical, f"ClassTable row {name!r}")

    @cached_property
    def lut(self) -> np.ndarray:
        """(256,) uint8 native id -> train id (255 for ignored and unknown ids); read-only."""
        mapped = dict(self.mapping)
        lut = np.full(256, IGNORE_ID, dtype=np.uint8)
        for i, name in self.names:
            lut[i] = _train_id_of(mapped[name], name)
        lut.flags.writeable = False
        return lut

    @cached_property
    def known(self) -> np.ndarray:
        """(256,) bool: the id has a row in :attr:`names`; read-only."""
        known = np.zeros(256, dtype=bool)
        known[[i for i, _ in self.names]] = True
        known.flags.writeable = False
        return known

    def train_id(self, native_name: str) -> int:
        """Train id (or 255) of one native class name; ConfigError listing the names if unknown."""
        mapped = dict(self.mapping)
        if native_name not in mapped:
            raise ConfigError(f"unknown native class {native_name!r}; known: {', '.join(mapped)}")
        return _train_id_of(mapped[native_name], native_name)


@dataclass(frozen=True, eq=False)
class KeyTable:
    """Sorted integer keys (colours, large ids) -> train ids, for :func:`map_keys`.

    Attributes:
        keys: (K,) int64 strictly increasing.
        values: (K,) uint8 train ids / 255.
        what: how an unknown key is described in :class:`DecodeStats` (``"colour"`` renders RGB).
    """

    keys: np.ndarray
    values: np.ndarray
    what: str = "id"

    @classmethod
    def build(cls, pairs: Mapping[int, int], what: str = "id") -> KeyTable:
        """From ``{key: train id}``; keys any non-negative integers."""
        keys = np.array(sorted(pairs), dtype=np.int64)
        values = np.array([pairs[int(k)] for k in keys], dtype=np.uint8)
        return cls(keys, values, what)

    def __post_init__(self) -> None:
        if self.keys.ndim != 1 or self.keys.shape != self.values.shape:
            raise ConfigError(f"KeyTable keys/values must be equal-length 1-D, got {self.keys.shape}")
        if self.keys.size > 1 and not np.all(np.diff(self.keys) > 0):
            raise ConfigError("KeyTable keys must be strictly increasing")

    def describe(self, key: int) -> str:
        """``"colour (r, g, b)"`` for colour tables, else ``"<what> <key>"``."""
        if self.what == "colour":
            return f"colour ({key >> 16 & 255}, {key >> 8 & 255}, {key & 255})"
        return f"{self.what} {key}"


# --------------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------------


def split_rgb(array: np.ndarray, encoding: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The R, G, B planes (views, no copy) of an (H, W, 3|4) uint8 image in ``encoding``'s order.

    Raises:
        LabelError: not (H, W, 3|4) uint8, or an encoding that is not a colour encoding.
    """
    order = COLOR_ORDER.get(encoding)
    if order is None:
        raise LabelError(f"expected a colour encoding ({', '.join(COLOR_ORDER)}), got {encoding!r}")
    if not isinstance(array, np.ndarray) or array.ndim != 3 or array.shape[2] not in (3, 4):
        shape = getattr(array, "shape", None)
        raise LabelError(f"{encoding} image must be (H, W, 3|4), got shape {shape}")
    if array.dtype != np.uint8:
        raise LabelError(f"{encoding} image must be uint8, got {array.dtype}")
    if order == "rgb":
        return array[..., 0], array[..., 1], array[..., 2]
    return array[..., 2], array[..., 1], array[..., 0]


def color_keys(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """24-bit keys ``r << 16 | g << 8 | b`` as int64, same shape as the planes."""
    return (r.astype(np.int64) << 16) | (g.astype(np.int64) << 8) | b.astype(np.int64)


def map_small_ids(ids: np.ndarray, table: ClassTable, stats: DecodeStats | None = None) -> np.ndarray:
    """Map native ids 0..255 to train ids with ``table.lut``; count pixels of ids not in the table.

    Args:
        ids: (H, W) uint8 native ids.
        table: the adapter's class table.
        stats: accumulates the frame and its unknown ids (optional).
    Returns:
        (H, W) uint8 train ids / 255.
    """
    if not isinstance(ids, np.ndarray) or ids.dtype != np.uint8:
        raise LabelError(f"native ids must be a uint8 array, got {getattr(ids, 'dtype', type(ids))}")
    if stats is not None:
        counts = np.bincount(ids.ravel(), minlength=256)
        unknown = np.flatnonzero((counts > 0) & ~table.known)
        stats.add_frame(ids.size)
        stats.add_unknown((f"{table.what} {int(u)}" for u in unknown), counts[unknown])
    return table.lut[ids]


def map_keys(keys: np.ndarray, table: KeyTable, stats: DecodeStats | None = None) -> np.ndarray:
    """Map integer keys through a sorted :class:`KeyTable`; unknown keys -> 255, counted in ``stats``.

    Args:
        keys: integer array, any shape (24-bit colour keys, uint32 ids ...).
        table: sorted keys and their train ids.
        stats: accumulates the frame and its unknown keys (optional).
    Returns:
        uint8 array of ``keys.shape``.
    """
    flat = keys.reshape(-1).astype(np.int64, copy=False)
    if table.keys.size == 0:
        hit = np.zeros(flat.shape, dtype=bool)
        out = np.full(flat.shape, IGNORE_ID, dtype=np.uint8)
    else:
        idx = np.searchsorted(table.keys, flat)
        np.minimum(idx, table.keys.size - 1, out=idx)
        hit = table.keys[idx] == flat
        out = np.where(hit, table.values[idx], np.uint8(IGNORE_ID)).astype(np.uint8, copy=False)
    if stats is not None:
        stats.add_frame(flat.size)
        if not hit.all():
            values, counts = np.unique(flat[~hit], return_counts=True)
            stats.add_unknown((table.describe(int(v)) for v in values), counts)
    return out.reshape(keys.shape)


def map_colors(
    array: np.ndarray,
    encoding: str,
    table: KeyTable,
    *,
    tolerance: int = 0,
    stats: DecodeStats | None = None,
) -> np.ndarray:
    """Map palette colours to train ids; optionally snap near-miss colours (lossy streams) first.

    Exact colours go through :func:`map_keys`. With ``tolerance > 0`` each distinct colour that is not
    in the table is replaced by the nearest table colour when every channel differs by at most
    ``tolerance`` (JPEG-compressed label streams blur colours at edges); the rest stay unknown.

    Args:
        array: (H, W, 3|4) uint8 colour image.
        encoding: its channel order (``rgb8``, ``bgr8``, ``bgra8`` ...).
        table: colour keys (``r << 16 | g << 8 | b``) -> train ids.
        tolerance: max per-channel difference for snapping, 0 = exact only.
        stats: accumulates the frame and its unknown colours.
    Returns:
        (H, W) uint8 train ids / 255.
    """
    keys = color_keys(*split_rgb(array, encoding))
    if tolerance > 0 and table.keys.size:
        idx = np.minimum(np.searchsorted(table.keys, keys), table.keys.size - 1)
        miss = table.keys[idx] != keys
        if miss.any():
            colors, inverse = np.unique(keys[miss], return_inverse=True)
            rgb = np.stack([colors >> 16 & 255, colors >> 8 & 255, colors & 255], axis=1)
            ref = np.stack([table.keys >> 16 & 255, table.keys >> 8 & 255, table.keys & 255], axis=1)
            dist = np.abs(rgb[:, None, :] - ref[None, :, :]).max(axis=2)  # (U, K) Chebyshev distance
            nearest = dist.argmin(axis=1)
            close = dist[np.arange(colors.size), nearest] <= tolerance
            snapped = np.where(close, table.keys[nearest], colors)
            keys = keys.copy()
            keys[miss] = snapped[inverse]
    return map_keys(keys, table, stats)


def fold_instance_ids(ids: np.ndarray, semantic: np.ndarray) -> np.ndarray:
    """Canonical uint16 instance map from stable native object ids, for thing-class pixels only.

    Ids 1..65535 are kept as they are (stable across frames: the same object keeps its id); larger ids
    are folded as ``(id - 1) % 65535 + 1`` (a collision is possible only between objects whose ids
    differ by a multiple of 65535). Id 0 and every stuff / ignored pixel -> 0.

    Args:
        ids: (H, W) non-negative integer native object ids.
        semantic: (H, W) uint8 canonical train ids (decides thing vs stuff).
    Returns:
        (H, W) uint16.
    """
    wide = ids.astype(np.int64, copy=False)
    folded = np.where(wide > _MAX_INSTANCE, (wide - 1) % _MAX_INSTANCE + 1, wide)
    return np.where(THING_LUT[semantic] & (wide > 0), folded, 0).astype(np.uint16)


# --------------------------------------------------------------------------------------------------
# adapter interface
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicSet:
    """Native ROS topic names of one simulator interface (None = that stream does not exist there).

    ``semantic_labels`` / ``instance_labels``: topics carrying the runtime id -> class JSON (Isaac Sim).
    ``rgb_compressed``: True when the RGB topic carries ``sensor_msgs/CompressedImage``.
    """

    rgb: str
    semantic: str | None
    instance: str | None
    camera_info: str | None
    semantic_labels: str | None = None
    instance_labels: str | None = None
    rgb_compressed: bool = False
    labels_compressed: bool = False


@dataclass(frozen=True)
class SimulatorAdapter(ABC):
    """One simulator: its native topics per interface ("profile"), encodings and decoding tables.

    Subclasses add their class tables and implement :meth:`decode_semantic` and :meth:`decode_instance`.
    All decode methods are pure functions of their inputs (``stats`` is only accumulated).

    Attributes:
        name: registry key (``"carla"``).
        title: human name.
        profiles: ``(profile name, TopicSet)`` rows; the first is the default.
        rgb_encodings / semantic_encodings / instance_encodings: what the native streams carry.
        has_instances: the simulator provides an instance stream this adapter decodes.
        sources: documentation the tables were taken from (URL - title).
    """

    name: str
    title: str
    profiles: tuple[tuple[str, TopicSet], ...]
    rgb_encodings: tuple[str, ...]
    semantic_encodings: tuple[str, ...]
    instance_encodings: tuple[str, ...]
    has_instances: bool
    sources: tuple[str, ...]

    def check_ready(self) -> None:
        """Raise ConfigError when the adapter cannot decode yet (overridden where configuration is needed)."""
        if not self.profiles:
            raise ConfigError(f"{self.name} declares no topic profiles")

    def topics(self, profile: str | None = None) -> TopicSet:
        """The TopicSet of ``profile`` (default: the first); ConfigError listing profiles if unknown."""
        table = dict(self.profiles)
        if profile is None:
            return self.profiles[0][1]
        if profile not in table:
            raise ConfigError(
                f"{self.name} has no topic profile {profile!r}; valid profiles: {', '.join(table)}"
            )
        return table[profile]

    def decode_rgb(self, array: np.ndarray, encoding: str) -> np.ndarray:
        """Native colour image -> (H, W, 3) uint8 RGB, contiguous (alpha dropped, BGR reordered)."""
        from sim2real.io.conversions import to_rgb8

        if encoding not in self.rgb_encodings and encoding not in COLOR_ORDER:
            raise LabelError(
                f"{self.name} RGB encoding {encoding!r} not supported; expected one of {self.rgb_encodings}"
            )
        return to_rgb8(array, encoding)

    @abstractmethod
    def decode_semantic(
        self,
        array: np.ndarray,
        encoding: str,
        *,
        stats: DecodeStats | None = None,
        id_to_name: Mapping[int, str] | None = None,
    ) -> np.ndarray:
        """Native semantic image -> (H, W) uint8 train ids / 255.

        ``id_to_name``: runtime id -> class name table, for simulators that publish one (Isaac Sim).
        """

    @abstractmethod
    def decode_instance(
        self,
        array: np.ndarray,
        encoding: str,
        *,
        stats: DecodeStats | None = None,
        id_to_name: Mapping[int, str] | None = None,
        semantic: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Native instance image -> ``(semantic (H, W) uint8, instance (H, W) uint16)``.

        ``semantic``: the already decoded semantic map of the same frame, for simulators whose instance
        image does not carry the class (MORAI, AirSim, Isaac with prim-path labels).
        """
