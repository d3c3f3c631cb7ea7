"""Label conventions: the canonical semantic and instance spaces every part of sim2real speaks.

Canonical semantic map: the 19 Cityscapes *train ids* (0..18) plus ``IGNORE_ID`` (255), uint8, (H, W).
Canonical instance map: uint16 (H, W), 0 = no instance; published as ``16UC1`` (``mono16`` accepted).

This module is numpy only (OpenCV is imported lazily by :func:`load_label_png`); it never imports
rclpy or torch. Everything here is vectorised: no Python loops over pixels.

Conversions into the canonical spaces:

- Cityscapes ``*_labelIds.png`` (label ids 0..33) -> :func:`label_ids_to_train_ids`.
- Cityscapes ``*_instanceIds.png`` (uint16; ``< 1000`` stuff label id, else ``labelId * 1000 + k``)
  -> :func:`cityscapes_instances_to_canonical`.

Simulator-specific decoders (CARLA tags, ...) live in ``sim_bridge.adapters`` and build on these constants.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from sim2real.core.errors import LabelError

__all__ = [
    "CAMVID_CLASS_NAMES",
    "CAMVID_NUM_CLASSES",
    "CAMVID_TO_TRAIN_ID",
    "CAMVID_UNLABELLED",
    "CITYSCAPES_LABELS",
    "CLASS_NAMES",
    "IGNORE_COLOR",
    "IGNORE_ID",
    "LABEL_ID_TO_TRAIN_ID",
    "MAX_INSTANCES",
    "NUM_CLASSES",
    "PALETTE",
    "SMALL_CLASSES",
    "THING_CLASSES",
    "TRAIN_ID",
    "TRAIN_ID_TO_CAMVID",
    "CityscapesLabel",
    "InstanceTable",
    "camvid_to_train_ids",
    "cityscapes_instances_to_canonical",
    "colorize_instance",
    "colorize_semantic",
    "instance_boundaries",
    "instance_colors",
    "instance_table",
    "label_ids_to_train_ids",
    "load_label_png",
    "overlay",
    "train_ids_to_camvid",
    "validate_instance",
    "validate_semantic",
]

IGNORE_ID: Final = 255
NUM_CLASSES: Final = 19
#: the largest canonical instance id (uint16); 0 means "no instance".
MAX_INSTANCES: Final = 65535

#: train id -> class name (Cityscapes order).
CLASS_NAMES: Final[tuple[str, ...]] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
TRAIN_ID: Final[dict[str, int]] = {name: i for i, name in enumerate(CLASS_NAMES)}

#: "thing" classes: countable objects that carry instance ids (Cityscapes hasInstances).
THING_CLASSES: Final[frozenset[int]] = frozenset(
    TRAIN_ID[n] for n in ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
)
#: small, safety-critical classes that get extra weight in the anti-flip loss and separate reporting.
SMALL_CLASSES: Final[frozenset[int]] = frozenset(
    TRAIN_ID[n] for n in ("pole", "traffic light", "traffic sign")
)

#: CamVid's 11 classes as SegNet's copy labels them (``../shared/data/camvid``); 11 = unlabelled (ignore).
CAMVID_CLASS_NAMES: Final[tuple[str, ...]] = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign/symbol", "fence", "car", "pedestrian",
    "bicyclist",
)
CAMVID_NUM_CLASSES: Final = len(CAMVID_CLASS_NAMES)
#: the value CamVid label maps use for unlabelled pixels.
CAMVID_UNLABELLED: Final = 11
#: Cityscapes train id -> CamVid class, following SegNet's grouping of CamVid's 32 classes into 11 (wall into
#: building, traffic light into sign/symbol, every vehicle into car, rider and two-wheelers into bicyclist).
#: Terrain has no CamVid class (grass and soil are split between tree and pavement there): ignore.
TRAIN_ID_TO_CAMVID: Final[dict[int, int]] = {
    0: 3, 1: 4, 2: 1, 3: 1, 4: 7, 5: 2, 6: 6, 7: 6, 8: 5, 10: 0,
    11: 9, 12: 10, 13: 8, 14: 8, 15: 8, 16: 8, 17: 10, 18: 10,
}


#: CamVid class -> its representative Cityscapes train id (the inverse direction of :data:`TRAIN_ID_TO_CAMVID`,
#: one id per class: building for building/wall, traffic sign for sign/symbol, car for every vehicle, rider for
#: bicyclist), so CamVid labels can be read in the canonical space; ``train_ids_to_camvid`` maps them back exactly.
CAMVID_TO_TRAIN_ID: Final[dict[int, int]] = {
    0: 10, 1: 2, 2: 5, 3: 0, 4: 1, 5: 8, 6: 7, 7: 4, 8: 13, 9: 11, 10: 12,
}


_CAMVID_TO_TRAIN_LUT: Final = np.full(256, IGNORE_ID, dtype=np.uint8)
_CAMVID_TO_TRAIN_LUT[list(CAMVID_TO_TRAIN_ID)] = list(CAMVID_TO_TRAIN_ID.values())
_CAMVID_TO_TRAIN_LUT.flags.writeable = False


def camvid_to_train_ids(camvid: np.ndarray) -> np.ndarray:
    """Map CamVid's 11 classes to their representative Cityscapes train ids (:data:`CAMVID_TO_TRAIN_ID`).

    Args:
        camvid: integer array of any shape; 0..10 are classes, :data:`CAMVID_UNLABELLED` (11) and every other
            value (including an already-mapped 255) mean unlabelled.
    Returns:
        uint8 array of the same shape: train ids, :data:`IGNORE_ID` where unlabelled.
    """
    values = np.asarray(camvid)
    if values.dtype == np.uint8:
        return _CAMVID_TO_TRAIN_LUT[values]
    inside = (values >= 0) & (values < 256)
    return np.where(inside, _CAMVID_TO_TRAIN_LUT[np.clip(values, 0, 255)], IGNORE_ID).astype(np.uint8)


def train_ids_to_camvid(semantic: np.ndarray) -> np.ndarray:
    """Map Cityscapes train ids to CamVid's 11 classes: any integer array -> uint8, :data:`IGNORE_ID` elsewhere.

    Terrain, 255 and every other value become :data:`IGNORE_ID`.
    """
    lut = np.full(256, IGNORE_ID, dtype=np.uint8)
    for train_id, camvid in TRAIN_ID_TO_CAMVID.items():
        lut[train_id] = camvid
    values = np.asarray(semantic)
    inside = (values >= 0) & (values < 256)
    return np.where(inside, lut[np.clip(values, 0, 255)], IGNORE_ID).astype(np.uint8)


#: standard Cityscapes palette, RGB, indexed by train id.
PALETTE: Final = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
        (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)
IGNORE_COLOR: Final = np.array((0, 0, 0), dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# Cityscapes label table
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CityscapesLabel:
    """One row of the official Cityscapes label table (cityscapesScripts ``helpers/labels.py``).

    ``train_id`` is in the canonical space: upstream ``255`` and ``-1`` (license plate) are both
    :data:`IGNORE_ID` here. ``label_id`` is -1 only for the license plate (it never occurs in maps).
    """

    name: str
    label_id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


_Lab = CityscapesLabel

#: the full Cityscapes table: label ids 0..33 plus license plate (id -1); order as upstream.
#: License plate's upstream train id -1 is written here as 255 (ignore).
CITYSCAPES_LABELS: Final[tuple[CityscapesLabel, ...]] = (
    #    name                    id  train category     cat  things ignore color
    _Lab("unlabeled",             0, 255, "void",         0, False, True,  (0, 0, 0)),
    _Lab("ego vehicle",           1, 255, "void",         0, False, True,  (0, 0, 0)),
    _Lab("rectification border",  2, 255, "void",         0, False, True,  (0, 0, 0)),
    _Lab("out of roi",            3, 255, "void",         0, False, True,  (0, 0, 0)),
    _Lab("static",                4, 255, "void",         0, False, True,  (0, 0, 0)),
    _Lab("dynamic",               5, 255, "void",         0, False, True,  (111, 74, 0)),
    _Lab("ground",                6, 255, "void",         0, False, True,  (81, 0, 81)),
    _Lab("road",                  7,   0, "flat",         1, False, False, (128, 64, 128)),
    _Lab("sidewalk",              8,   1, "flat",         1, False, False, (244, 35, 232)),
    _Lab("parking",               9, 255, "flat",         1, False, True,  (250, 170, 160)),
    _Lab("rail track",           10, 255, "flat",         1, False, True,  (230, 150, 140)),
    _Lab("building",             11,   2, "construction", 2, False, False, (70, 70, 70)),
    _Lab("wall",                 12,   3, "construction", 2, False, False, (102, 102, 156)),
    _Lab("fence",                13,   4, "construction", 2, False, False, (190, 153, 153)),
    _Lab("guard rail",           14, 255, "construction", 2, False, True,  (180, 165, 180)),
    _Lab("bridge",               15, 255, "construction", 2, False, True,  (150, 100, 100)),
    _Lab("tunnel",               16, 255, "construction", 2, False, True,  (150, 120, 90)),
    _Lab("pole",                 17,   5, "object",       3, False, False, (153, 153, 153)),
    _Lab("polegroup",            18, 255, "object",       3, False, True,  (153, 153, 153)),
    _Lab("traffic light",        19,   6, "object",       3, False, False, (250, 170, 30)),
    _Lab("traffic sign",         20,   7, "object",       3, False, False, (220, 220, 0)),
    _Lab("vegetation",           21,   8, "nature",       4, False, False, (107, 142, 35)),
    _Lab("terrain",              22,   9, "nature",       4, False, False, (152, 251, 152)),
    _Lab("sky",                  23,  10, "sky",          5, False, False, (70, 130, 180)),
    _Lab("person",               24,  11, "human",        6, True,  False, (220, 20, 60)),
    _Lab("rider",                25,  12, "human",        6, True,  False, (255, 0, 0)),
    _Lab("car",                  26,  13, "vehicle",      7, True,  False, (0, 0, 142)),
    _Lab("truck",                27,  14, "vehicle",      7, True,  False, (0, 0, 70)),
    _Lab("bus",                  28,  15, "vehicle",      7, True,  False, (0, 60, 100)),
    _Lab("caravan",              29, 255, "vehicle",      7, True,  True,  (0, 0, 90)),
    _Lab("trailer",              30, 255, "vehicle",      7, True,  True,  (0, 0, 110)),
    _Lab("train",                31,  16, "vehicle",      7, True,  False, (0, 80, 100)),
    _Lab("motorcycle",           32,  17, "vehicle",      7, True,  False, (0, 0, 230)),
    _Lab("bicycle",              33,  18, "vehicle",      7, True,  False, (119, 11, 32)),
    _Lab("license plate",        -1, 255, "vehicle",      7, False, True,  (0, 0, 142)),
)


def _make_lut(pairs: dict[int, int]) -> np.ndarray:
    lut = np.full(256, IGNORE_ID, dtype=np.uint8)
    for src, dst in pairs.items():
        lut[src] = dst
    lut.flags.writeable = False
    return lut


#: (256,) uint8: Cityscapes label id -> canonical train id; every unmapped id -> 255.
LABEL_ID_TO_TRAIN_ID: Final = _make_lut(
    {lab.label_id: lab.train_id for lab in CITYSCAPES_LABELS if lab.label_id >= 0}
)

_THING_LUT: Final = np.zeros(256, dtype=bool)
_THING_LUT[sorted(THING_CLASSES)] = True
_THING_LUT.flags.writeable = False

_VALID_SEMANTIC: Final = np.zeros(256, dtype=bool)
_VALID_SEMANTIC[:NUM_CLASSES] = True
_VALID_SEMANTIC[IGNORE_ID] = True
_VALID_SEMANTIC.flags.writeable = False

_MAX_LISTED: Final = 8


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _list_values(values: np.ndarray) -> str:
    """``[3, 19, 200]`` or ``[3, 19, ..., 250] (12 distinct)`` for a sorted 1-D array of values."""
    shown = ", ".join(str(int(v)) for v in values[:_MAX_LISTED])
    if values.size > _MAX_LISTED:
        return f"[{shown}, ...] ({values.size} distinct)"
    return f"[{shown}]"


def _require_array(x: object, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise LabelError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    return x


def _require_integer(x: np.ndarray, name: str) -> None:
    if not np.issubdtype(x.dtype, np.integer):
        raise LabelError(f"{name} must have an integer dtype, got {x.dtype}")


def _require_2d(x: np.ndarray, name: str) -> None:
    if x.ndim != 2:
        raise LabelError(f"{name} must be 2-D (H, W), got shape {x.shape} (ndim={x.ndim})")


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of an integer array and the index of each element among them.

    Args:
        values: integer array, any shape.
    Returns:
        ``(uniques (K,) values.dtype, inverse values.shape intp)`` with ``uniques[inverse] == values``.
        uint8 / uint16 inputs use a bincount + lookup table (O(n), no sort).
    """
    if values.dtype in (np.uint8, np.uint16):
        size = 1 << (8 * values.dtype.itemsize)
        present = np.bincount(values.ravel(), minlength=size) > 0
        uniques = np.flatnonzero(present).astype(values.dtype)
        position = np.zeros(size, dtype=np.intp)
        position[uniques] = np.arange(uniques.size)
        return uniques, position[values]
    uniques, inverse = np.unique(values, return_inverse=True)
    return uniques, inverse.reshape(values.shape)


def _lookup(lut: np.ndarray, ids: np.ndarray, name: str, what: str) -> np.ndarray:
    """``lut[ids]`` for a (256,) table, after checking ``ids`` is an integer array within 0..255."""
    ids = _require_array(ids, name)
    _require_integer(ids, name)
    if ids.dtype != np.uint8 and ids.size:
        out_of_range = (ids < 0) | (ids > 255)
        if out_of_range.any():
            bad = np.unique(ids[out_of_range])
            raise LabelError(
                f"{name} must hold {what} in 0..255, found {out_of_range.sum()} pixels outside that "
                f"range with values {_list_values(bad)}"
            )
    return lut[ids]


def _assign_instance_ids(keep: np.ndarray, source: str) -> np.ndarray:
    """Canonical ids 1..N for the ``True`` entries of ``keep`` (in order), 0 elsewhere; (K,) uint16."""
    n = int(keep.sum())
    if n > MAX_INSTANCES:
        raise LabelError(
            f"{source} has {n} instances, more than the {MAX_INSTANCES} a uint16 instance map can hold"
        )
    canonical = np.zeros(keep.shape, dtype=np.uint16)
    canonical[keep] = np.arange(1, n + 1, dtype=np.uint16)
    return canonical


# --------------------------------------------------------------------------------------------------
# conversions into the canonical spaces
# --------------------------------------------------------------------------------------------------


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map Cityscapes label ids to canonical train ids with :data:`LABEL_ID_TO_TRAIN_ID`.

    Args:
        label_ids: integer array of any shape (typically (H, W) uint8 from ``*_labelIds.png``),
            values 0..255; ids without a train class (void, parking, caravan, ..., 34..255) -> 255.
    Returns:
        uint8 array of the same shape with values in 0..18 or 255.
    Raises:
        LabelError: non-integer dtype, or values negative / above 255 (listed in the message).
    """
    return _lookup(LABEL_ID_TO_TRAIN_ID, label_ids, "label_ids", "Cityscapes label ids")


def cityscapes_instances_to_canonical(instance_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a Cityscapes ``*_instanceIds.png`` map into canonical semantic and instance maps.

    Raw values below 1000 are label ids (stuff, or a "thing" group region without an instance id);
    values ``>= 1000`` are ``labelId * 1000 + k``. Every raw value whose label maps to a thing train
    class (:data:`THING_CLASSES`) and is ``>= 1000`` becomes one canonical instance; ids 1..N are
    given in ascending order of the raw value. Stuff, ignored classes (caravan, trailer, ...) and
    group regions get instance 0; group regions keep their semantic class.

    Args:
        instance_ids: (H, W) integer array (uint16 as read from the PNG; int32 also accepted).
    Returns:
        ``(semantic (H, W) uint8 train ids, instance (H, W) uint16 canonical ids)``.
    Raises:
        LabelError: not 2-D, non-integer dtype, negative values, values in 256..999 (neither a label
            id nor an instance code), label part above 255, or more than 65535 instances.
    """
    name = "instance_ids"
    instance_ids = _require_array(instance_ids, name)
    _require_2d(instance_ids, name)
    _require_integer(instance_ids, name)
    raw, inverse = _distinct(instance_ids)
    raw = raw.astype(np.int64)
    label = np.where(raw < 1000, raw, raw // 1000)
    bad = (raw < 0) | ((raw > 255) & (raw < 1000)) | (label > 255)
    if bad.any():
        raise LabelError(
            f"{name} must hold label ids 0..255 or labelId*1000+k codes with labelId <= 255, "
            f"found values {_list_values(raw[bad])}"
        )
    train = LABEL_ID_TO_TRAIN_ID[label]
    canonical = _assign_instance_ids((raw >= 1000) & _THING_LUT[train], name)
    return train[inverse], canonical[inverse]


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------


def _check_shape(x: np.ndarray, shape: tuple[int, ...] | None, name: str) -> None:
    if shape is not None and x.shape != tuple(shape):
        raise LabelError(f"{name} has shape {x.shape}, expected {tuple(shape)}")


def validate_semantic(
    sem: np.ndarray, *, shape: tuple[int, int] | None = None, name: str = "semantic"
) -> np.ndarray:
    """Check that ``sem`` is a canonical semantic map; return it unchanged (no copy).

    Args:
        sem: expected (H, W) uint8 with values in 0..18 or 255.
        shape: if given, the required (H, W).
        name: what to call the array in error messages.
    Returns:
        ``sem`` itself.
    Raises:
        LabelError: not an ndarray, not 2-D, dtype not uint8, wrong shape, or values outside the train
            ids (the message lists the offending values and their pixel count).
    """
    sem = _require_array(sem, name)
    _require_2d(sem, name)
    if sem.dtype != np.uint8:
        raise LabelError(f"{name} must be uint8 train ids (0..18, 255 = ignore), got dtype {sem.dtype}")
    _check_shape(sem, shape, name)
    counts = np.bincount(sem.ravel(), minlength=256)
    bad = np.flatnonzero((counts > 0) & ~_VALID_SEMANTIC)
    if bad.size:
        raise LabelError(
            f"{name} must hold train ids 0..{NUM_CLASSES - 1} or {IGNORE_ID} (ignore), found "
            f"{int(counts[bad].sum())} pixels with values {_list_values(bad)}; convert Cityscapes label "
            "ids with label_ids_to_train_ids() and simulator ids with a sim_bridge adapter first"
        )
    return sem


def validate_instance(
    inst: np.ndarray, *, shape: tuple[int, int] | None = None, name: str = "instance"
) -> np.ndarray:
    """Check that ``inst`` is a canonical instance map; return it unchanged (no copy).

    Every uint16 value is a valid id (0 = no instance), so only the type, rank and shape are checked.

    Args:
        inst: expected (H, W) uint16.
        shape: if given, the required (H, W).
        name: what to call the array in error messages.
    Returns:
        ``inst`` itself.
    Raises:
        LabelError: not an ndarray, not 2-D, dtype not uint16, or wrong shape.
    """
    inst = _require_array(inst, name)
    _require_2d(inst, name)
    if inst.dtype != np.uint16:
        raise LabelError(f"{name} must be a uint16 instance map (0 = no instance), got dtype {inst.dtype}")
    _check_shape(inst, shape, name)
    return inst


# --------------------------------------------------------------------------------------------------
# instance statistics
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class InstanceTable:
    """Per-instance statistics of a canonical instance map, one row per non-zero id, ids ascending.

    Attributes:
        ids: (N,) uint16 instance ids (never 0), strictly increasing.
        boxes: (N, 4) int32 ``x0, y0, x1, y1`` with ``x1``, ``y1`` exclusive, so
            ``instance[y0:y1, x0:x1]`` holds the whole mask and the box is tight.
        classes: (N,) uint8 majority train id inside each mask ignoring 255 (ties -> the lower id);
            255 when every pixel of the mask is ignore.
        areas: (N,) int64 mask pixel counts.
    """

    ids: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    areas: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.ids, np.ndarray) or self.ids.ndim != 1:
            raise LabelError(f"InstanceTable.ids must be a 1-D uint16 array, got {self.ids!r:.80}")
        n = self.ids.shape[0]
        expected = {
            "ids": (self.ids, (n,), np.uint16),
            "boxes": (self.boxes, (n, 4), np.int32),
            "classes": (self.classes, (n,), np.uint8),
            "areas": (self.areas, (n,), np.int64),
        }
        for field, (arr, shape, dtype) in expected.items():
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
                got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
                raise LabelError(f"InstanceTable.{field} must be {np.dtype(dtype)} {shape}, got {got}")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def empty(cls) -> InstanceTable:
        """A table with N = 0 rows (correct dtypes and shapes)."""
        return cls(
            ids=np.zeros(0, np.uint16),
            boxes=np.zeros((0, 4), np.int32),
            classes=np.zeros(0, np.uint8),
            areas=np.zeros(0, np.int64),
        )


def instance_table(instance: np.ndarray, semantic: np.ndarray) -> InstanceTable:
    """Boxes, majority classes and areas of every instance in a canonical instance map.

    Args:
        instance: (H, W) uint16 canonical instance map.
        semantic: (H, W) uint8 canonical semantic map (train ids / 255).
    Returns:
        :class:`InstanceTable` with one row per distinct non-zero id (N = 0 for an empty map).
    Raises:
        LabelError: either map fails :func:`validate_instance` / :func:`validate_semantic`, or their
            shapes differ.
    """
    validate_instance(instance)
    validate_semantic(semantic, shape=instance.shape)
    width = instance.shape[1]
    flat = instance.ravel()
    counts = np.bincount(flat, minlength=MAX_INSTANCES + 1)
    ids = (np.flatnonzero(counts[1:]) + 1).astype(np.uint16)
    n = ids.size
    if n == 0:
        return InstanceTable.empty()
    row_of_id = np.zeros(MAX_INSTANCES + 1, dtype=np.intp)
    row_of_id[ids] = np.arange(n)
    fg = np.flatnonzero(flat)  # linear indices of instance pixels
    row = row_of_id[flat[fg]]
    ys, xs = np.divmod(fg, width)

    x0 = np.full(n, np.iinfo(np.intp).max, dtype=np.intp)
    y0 = np.full(n, np.iinfo(np.intp).max, dtype=np.intp)
    x1 = np.full(n, -1, dtype=np.intp)
    y1 = np.full(n, -1, dtype=np.intp)
    np.minimum.at(x0, row, xs)
    np.minimum.at(y0, row, ys)
    np.maximum.at(x1, row, xs)
    np.maximum.at(y1, row, ys)
    boxes = np.stack([x0, y0, x1 + 1, y1 + 1], axis=1).astype(np.int32)

    # class histogram per instance: columns 0..18 train ids, column 19 = ignore (255 -> 19).
    sem_col = np.minimum(semantic.ravel()[fg], NUM_CLASSES).astype(np.intp)
    hist = np.bincount(row * (NUM_CLASSES + 1) + sem_col, minlength=n * (NUM_CLASSES + 1))
    hist = hist.reshape(n, NUM_CLASSES + 1)[:, :NUM_CLASSES]
    classes = np.where(hist.sum(axis=1) > 0, hist.argmax(axis=1), IGNORE_ID).astype(np.uint8)

    return InstanceTable(ids=ids, boxes=boxes, classes=classes, areas=counts[ids].astype(np.int64))


def instance_boundaries(instance: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of a different instance id (0 counts as an id).

    Both sides of every change are marked, so an object's outline against the background (0) marks
    the object's edge pixels and the background pixels touching them. The image border is not a
    boundary by itself.

    Args:
        instance: (H, W) integer instance map (canonical uint16; any integer dtype works).
    Returns:
        (H, W) bool.
    Raises:
        LabelError: not 2-D or not an integer dtype.
    """
    instance = _require_array(instance, "instance")
    _require_2d(instance, "instance")
    _require_integer(instance, "instance")
    edges = np.zeros(instance.shape, dtype=bool)
    horizontal = instance[:, 1:] != instance[:, :-1]
    vertical = instance[1:, :] != instance[:-1, :]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    edges[1:, :] |= vertical
    edges[:-1, :] |= vertical
    return edges


# --------------------------------------------------------------------------------------------------
# visualisation
# --------------------------------------------------------------------------------------------------

_SEMANTIC_COLORS: Final = np.tile(IGNORE_COLOR, (256, 1))
_SEMANTIC_COLORS[:NUM_CLASSES] = PALETTE
_SEMANTIC_COLORS.flags.writeable = False


def colorize_semantic(sem: np.ndarray) -> np.ndarray:
    """Paint a canonical semantic map with :data:`PALETTE` (ignore -> :data:`IGNORE_COLOR`).

    Args:
        sem: (H, W) uint8 train ids / 255.
    Returns:
        (H, W, 3) uint8 RGB.
    Raises:
        LabelError: ``sem`` fails :func:`validate_semantic`.
    """
    validate_semantic(sem)
    return _SEMANTIC_COLORS[sem]


@functools.cache
def _instance_color_lut() -> np.ndarray:
    ids = np.arange(MAX_INSTANCES + 1, dtype=np.uint32)
    # murmur3 finaliser: a fixed integer hash, so an id keeps its colour across frames and runs.
    h = ids * np.uint32(0x9E3779B1)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    channels = np.stack([(h >> np.uint32(s)) & np.uint32(0xFF) for s in (0, 8, 16)], axis=1)
    lut = (48 + channels * 207 // 255).astype(np.uint8)  # 48..255 per channel: never black
    lut[0] = 0
    lut.flags.writeable = False
    return lut


def instance_colors(ids: np.ndarray) -> np.ndarray:
    """The stable colour of each instance id (0 -> black, any other id -> channels in 48..255).

    Args:
        ids: integer array of any shape with values in 0..65535.
    Returns:
        ``ids.shape + (3,)`` uint8 RGB.
    Raises:
        LabelError: non-integer dtype or values outside 0..65535.
    """
    ids = _require_array(ids, "ids")
    _require_integer(ids, "ids")
    if ids.dtype not in (np.uint8, np.uint16) and ids.size:
        bad = (ids < 0) | (ids > MAX_INSTANCES)
        if bad.any():
            values = _list_values(np.unique(ids[bad]))
            raise LabelError(f"instance ids must be in 0..{MAX_INSTANCES}, got {values}")
    return _instance_color_lut()[ids]


def colorize_instance(inst: np.ndarray) -> np.ndarray:
    """Paint a canonical instance map, one stable hash colour per id, 0 (no instance) black.

    Args:
        inst: (H, W) uint16 canonical instance map.
    Returns:
        (H, W, 3) uint8 RGB.
    Raises:
        LabelError: ``inst`` fails :func:`validate_instance`.
    """
    validate_instance(inst)
    return _instance_color_lut()[inst]


def overlay(rgb: np.ndarray, semantic: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the semantic palette over an image: ``round((1 - alpha) * rgb + alpha * colour)``.

    Ignored pixels (255) are left as they are in ``rgb``.

    Args:
        rgb: (H, W, 3) uint8 image.
        semantic: (H, W) uint8 canonical semantic map.
        alpha: palette weight in [0, 1].
    Returns:
        (H, W, 3) uint8, a new array.
    Raises:
        LabelError: bad ``rgb`` shape / dtype, ``semantic`` invalid or of another size, or ``alpha``
            outside [0, 1].
    """
    rgb = _require_array(rgb, "rgb")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise LabelError(f"rgb must be (H, W, 3) uint8, got shape {rgb.shape} dtype {rgb.dtype}")
    validate_semantic(semantic, shape=rgb.shape[:2])
    if not 0.0 <= alpha <= 1.0:
        raise LabelError(f"alpha must be in [0, 1], got {alpha}")
    colors = _SEMANTIC_COLORS[semantic].astype(np.float32)
    blended = np.rint((1.0 - alpha) * rgb.astype(np.float32) + alpha * colors).astype(np.uint8)
    ignore = semantic == IGNORE_ID
    blended[ignore] = rgb[ignore]
    return blended


# --------------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------------


def load_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an 8- or 16-bit label PNG without any conversion of its values.

    Args:
        path: a ``.png`` file.
    Returns:
        (H, W) uint8 / uint16 for single-channel PNGs; (H, W, 3) / (H, W, 4) in **RGB(A)** channel
        order for colour PNGs (OpenCV's BGR is undone), e.g. a saved CARLA instance-camera frame.
    Raises:
        LabelError: the file is missing, not a ``.png``, unreadable or not decodable (the message
            names the file).
    """
    import cv2  # lazy: keeps this module importable without OpenCV's start-up cost

    p = Path(path)
    if p.suffix.lower() != ".png":
        raise LabelError(f"label maps must be lossless PNG files, got {str(p)!r}")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise LabelError(f"cannot read label PNG {str(p)!r}: {exc.strerror or exc}") from exc
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise LabelError(f"cannot decode label PNG {str(p)!r} ({data.size} bytes): not a valid PNG image")
    if image.dtype not in (np.uint8, np.uint16):
        raise LabelError(f"label PNG {str(p)!r} decoded to dtype {image.dtype}, expected uint8 or uint16")
    if image.ndim == 3:
        order = [2, 1, 0, 3][: image.shape[2]] if image.shape[2] in (3, 4) else None
        if order is None:
            raise LabelError(f"label PNG {str(p)!r} has {image.shape[2]} channels, expected 1, 3 or 4")
        image = np.ascontiguousarray(image[..., order])
    return image
