"""Tests of sim2real.core.labels on real Cityscapes label maps and on hand-made arrays."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sim2real.core.errors import LabelError
from sim2real.core.labels import (
    CITYSCAPES_LABELS,
    CLASS_NAMES,
    IGNORE_COLOR,
    IGNORE_ID,
    LABEL_ID_TO_TRAIN_ID,
    NUM_CLASSES,
    PALETTE,
    THING_CLASSES,
    TRAIN_ID,
    InstanceTable,
    cityscapes_instances_to_canonical,
    colorize_instance,
    colorize_semantic,
    instance_boundaries,
    instance_colors,
    instance_table,
    label_ids_to_train_ids,
    load_label_png,
    overlay,
    validate_instance,
    validate_semantic,
)

CITYSCAPES_FRAMES = (
    "frankfurt_000000_000576", "frankfurt_000000_001236", "frankfurt_000000_003357",
    "frankfurt_000000_011810", "frankfurt_000000_012868", "frankfurt_000001_013710",
    "frankfurt_000001_015328", "frankfurt_000001_023769", "frankfurt_000001_028335",
    "frankfurt_000001_032711", "frankfurt_000001_033655", "frankfurt_000001_042733",
    "frankfurt_000001_047552", "frankfurt_000001_054640", "frankfurt_000001_055387",
)
CAR, PERSON, BICYCLE, ROAD = TRAIN_ID["car"], TRAIN_ID["person"], TRAIN_ID["bicycle"], TRAIN_ID["road"]


# --------------------------------------------------------------------------------------------------
# reference implementations (loops, obviously correct) for cross-checking the vectorised code
# --------------------------------------------------------------------------------------------------


def reference_table(instance: np.ndarray, semantic: np.ndarray) -> dict[int, tuple]:
    """id -> (box, class, area) by brute force."""
    out = {}
    for i in np.unique(instance):
        if i == 0:
            continue
        mask = instance == i
        ys, xs = np.nonzero(mask)
        box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        votes = np.bincount(semantic[mask][semantic[mask] != IGNORE_ID], minlength=NUM_CLASSES)
        cls = int(votes.argmax()) if votes.sum() else IGNORE_ID
        out[int(i)] = (box, cls, int(mask.sum()))
    return out


def reference_boundaries(instance: np.ndarray) -> np.ndarray:
    h, w = instance.shape
    out = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and instance[yy, xx] != instance[y, x]:
                    out[y, x] = True
    return out


def distinct_pairs(instance: np.ndarray, other: np.ndarray) -> np.ndarray:
    """(K, 2) int64 distinct (instance id, other value) pairs over the pixels with instance > 0."""
    fg = instance > 0
    key = (instance[fg].astype(np.int64) << 32) | other[fg].astype(np.int64)
    key = np.unique(key)
    return np.stack([key >> 32, key & 0xFFFFFFFF], axis=1)


def assert_table_matches_reference(table: InstanceTable, instance: np.ndarray, semantic: np.ndarray) -> None:
    ref = reference_table(instance, semantic)
    assert table.ids.tolist() == sorted(ref)
    for row, i in enumerate(table.ids.tolist()):
        box, cls, area = ref[i]
        assert tuple(table.boxes[row].tolist()) == box, f"id {i}"
        assert int(table.classes[row]) == cls, f"id {i}"
        assert int(table.areas[row]) == area, f"id {i}"


# --------------------------------------------------------------------------------------------------
# real Cityscapes frames
# --------------------------------------------------------------------------------------------------


@functools.cache
def _cityscapes(root: Path, frame: str) -> tuple[np.ndarray, ...]:
    """(raw instanceIds, labelIds, semantic, instance, InstanceTable) of one frame, loaded once."""
    raw = load_label_png(root / "labels" / f"{frame}_gtFine_instanceIds.png")
    label_ids = load_label_png(root / "labels" / f"{frame}_gtFine_labelIds.png")
    semantic, instance = cityscapes_instances_to_canonical(raw)
    return raw, label_ids, semantic, instance, instance_table(instance, semantic)


@pytest.fixture(params=CITYSCAPES_FRAMES)
def cityscapes(request: pytest.FixtureRequest, shared_data: Path):
    return _cityscapes(shared_data, request.param)


def test_real_frames_exist(shared_data: Path) -> None:
    found = sorted(p.name for p in (shared_data / "labels").glob("*_gtFine_instanceIds.png"))
    assert found == sorted(f"{f}_gtFine_instanceIds.png" for f in CITYSCAPES_FRAMES)


def test_real_dtypes_and_shapes(cityscapes) -> None:
    raw, label_ids, semantic, instance, table = cityscapes
    assert raw.dtype == np.uint16 and raw.shape == (1024, 2048)
    assert label_ids.dtype == np.uint8 and label_ids.shape == raw.shape
    validate_semantic(semantic, shape=raw.shape)
    validate_instance(instance, shape=raw.shape)
    assert len(table) > 0


def test_real_instance_classes_are_things(cityscapes) -> None:
    raw, _, _, instance, table = cityscapes
    assert set(table.classes.tolist()) <= THING_CLASSES
    # the class must be the one encoded in the raw id (labelId * 1000 + k)
    first_pixel = np.unique(instance.ravel(), return_index=True)[1][1:]
    raw_of_id = raw.ravel()[first_pixel]
    assert np.array_equal(table.classes, LABEL_ID_TO_TRAIN_ID[raw_of_id // 1000])


def test_real_boxes_tight_and_areas_exact(cityscapes) -> None:
    _, _, _, instance, table = cityscapes
    for i, (x0, y0, x1, y1), area in zip(table.ids, table.boxes, table.areas, strict=True):
        mask = instance == i
        assert int(area) == int(mask.sum())
        crop = mask[y0:y1, x0:x1]
        assert int(crop.sum()) == int(area), f"box of id {i} does not contain its whole mask"
        # tight: every edge row / column of the box touches the mask
        assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()
    assert int(table.areas.sum()) == int((instance > 0).sum())


def test_real_canonical_ids_follow_raw_order(cityscapes) -> None:
    raw, _, _, instance, table = cityscapes
    n = len(table)
    assert table.ids.tolist() == list(range(1, n + 1))
    pairs = distinct_pairs(instance, raw)
    # each canonical id comes from exactly one raw id, and raw ids increase with canonical ids
    assert pairs.shape[0] == n
    assert pairs[:, 0].tolist() == list(range(1, n + 1))
    assert np.all(np.diff(pairs[:, 1]) > 0)
    raw_values = np.unique(raw)
    expected = raw_values[(raw_values >= 1000) & (LABEL_ID_TO_TRAIN_ID[raw_values // 1000] != IGNORE_ID)]
    assert pairs[:, 1].tolist() == expected.tolist()


def test_real_label_ids_agree_with_instance_ids(cityscapes) -> None:
    _, label_ids, semantic, _, _ = cityscapes
    from_label_ids = label_ids_to_train_ids(label_ids)
    both = (from_label_ids != IGNORE_ID) & (semantic != IGNORE_ID)
    assert both.mean() > 0.5
    assert np.array_equal(from_label_ids[both], semantic[both])


def test_real_group_regions_keep_class_without_instance(shared_data: Path) -> None:
    # frankfurt_000000_000576 has raw value 26 (car group region, no instance id) and stuff 17 (pole)
    raw, _, semantic, instance, _ = _cityscapes(shared_data, "frankfurt_000000_000576")
    group = raw == 26
    assert group.any()
    assert np.all(semantic[group] == CAR) and np.all(instance[group] == 0)
    assert np.all(instance[raw < 1000] == 0)


def test_real_boundaries_outline_every_instance(cityscapes) -> None:
    _, _, _, instance, table = cityscapes
    edges = instance_boundaries(instance)
    ids_on_edges = np.unique(instance[edges])
    assert set(table.ids.tolist()) <= set(ids_on_edges.tolist())
    assert edges.mean() < 0.2


# --------------------------------------------------------------------------------------------------
# Cityscapes table and label-id mapping
# --------------------------------------------------------------------------------------------------


def test_cityscapes_table_contents() -> None:
    assert len(CITYSCAPES_LABELS) == 35
    ids = [lab.label_id for lab in CITYSCAPES_LABELS]
    assert ids == [*range(34), -1]
    trained = sorted((lab.train_id, lab.name) for lab in CITYSCAPES_LABELS if lab.train_id != IGNORE_ID)
    assert [t for t, _ in trained] == list(range(NUM_CLASSES))
    assert tuple(name for _, name in trained) == CLASS_NAMES
    for lab in CITYSCAPES_LABELS:
        if lab.train_id != IGNORE_ID:
            assert lab.color == tuple(PALETTE[lab.train_id].tolist()), lab.name
            assert lab.ignore_in_eval is False
        if lab.has_instances and lab.train_id != IGNORE_ID:
            assert lab.train_id in THING_CLASSES
    things = {lab.train_id for lab in CITYSCAPES_LABELS if lab.has_instances and lab.train_id != IGNORE_ID}
    assert things == THING_CLASSES
    plate = CITYSCAPES_LABELS[-1]
    assert (plate.name, plate.train_id, plate.has_instances) == ("license plate", IGNORE_ID, False)
    assert {lab.name for lab in CITYSCAPES_LABELS if lab.has_instances and lab.train_id == IGNORE_ID} == {
        "caravan", "trailer"
    }


def test_cityscapes_label_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CITYSCAPES_LABELS[7].train_id = 3  # type: ignore[misc]


def test_label_id_lut() -> None:
    assert LABEL_ID_TO_TRAIN_ID.shape == (256,) and LABEL_ID_TO_TRAIN_ID.dtype == np.uint8
    assert LABEL_ID_TO_TRAIN_ID[7] == ROAD and LABEL_ID_TO_TRAIN_ID[26] == CAR
    assert LABEL_ID_TO_TRAIN_ID[33] == BICYCLE and LABEL_ID_TO_TRAIN_ID[24] == PERSON
    for unmapped in (0, 1, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 100, 255):
        assert LABEL_ID_TO_TRAIN_ID[unmapped] == IGNORE_ID
    assert int((LABEL_ID_TO_TRAIN_ID != IGNORE_ID).sum()) == NUM_CLASSES
    with pytest.raises(ValueError, match="read-only"):
        LABEL_ID_TO_TRAIN_ID[0] = 1


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_label_ids_to_train_ids_all_dtypes(dtype) -> None:
    ids = np.arange(256, dtype=dtype).reshape(16, 16)
    out = label_ids_to_train_ids(ids)
    assert out.dtype == np.uint8 and out.shape == (16, 16)
    assert np.array_equal(out.ravel(), LABEL_ID_TO_TRAIN_ID)


def test_label_ids_to_train_ids_errors() -> None:
    with pytest.raises(LabelError, match=r"integer dtype, got float32"):
        label_ids_to_train_ids(np.zeros((2, 2), np.float32))
    with pytest.raises(LabelError, match=r"integer dtype, got bool"):
        label_ids_to_train_ids(np.zeros((2, 2), bool))
    with pytest.raises(LabelError, match=r"2 pixels outside .* values \[-1, 300\]"):
        label_ids_to_train_ids(np.array([[7, -1], [300, 26]], np.int32))
    with pytest.raises(LabelError, match=r"numpy.ndarray, got list"):
        label_ids_to_train_ids([[7]])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# cityscapes_instances_to_canonical on hand-made maps
# --------------------------------------------------------------------------------------------------


def test_cityscapes_instances_small_known() -> None:
    raw = np.array(
        [
            [7, 26, 26001],
            [24000, 24002, 29001],  # 29001: caravan instance -> ignored class, no instance
            [0, 33000, 26001],
        ],
        dtype=np.uint16,
    )
    semantic, instance = cityscapes_instances_to_canonical(raw)
    assert semantic.dtype == np.uint8 and instance.dtype == np.uint16
    assert semantic.tolist() == [[ROAD, CAR, CAR], [PERSON, PERSON, 255], [255, BICYCLE, CAR]]
    # kept raw ids in ascending order: 24000 -> 1, 24002 -> 2, 26001 -> 3, 33000 -> 4
    assert instance.tolist() == [[0, 0, 3], [1, 2, 0], [0, 4, 3]]


def test_cityscapes_instances_int32_and_empty() -> None:
    semantic, instance = cityscapes_instances_to_canonical(np.array([[26005, 7]], np.int32))
    assert semantic.tolist() == [[CAR, ROAD]] and instance.tolist() == [[1, 0]]
    semantic, instance = cityscapes_instances_to_canonical(np.full((3, 4), 23, np.uint16))
    assert np.all(semantic == TRAIN_ID["sky"]) and not instance.any()


def test_cityscapes_instances_errors() -> None:
    with pytest.raises(LabelError, match=r"values \[500\]"):
        cityscapes_instances_to_canonical(np.array([[7, 500]], np.uint16))
    with pytest.raises(LabelError, match=r"values \[-3\]"):
        cityscapes_instances_to_canonical(np.array([[7, -3]], np.int32))
    with pytest.raises(LabelError, match=r"values \[300000\]"):
        cityscapes_instances_to_canonical(np.array([[300000]], np.int32))
    with pytest.raises(LabelError, match="2-D"):
        cityscapes_instances_to_canonical(np.zeros((2, 2, 1), np.uint16))
    with pytest.raises(LabelError, match="integer dtype, got float64"):
        cityscapes_instances_to_canonical(np.zeros((2, 2)))


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        np.uint16,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=10),
        elements=st.sampled_from([0, 7, 11, 24, 26, 29, 24000, 24001, 26000, 26007, 29000, 33002]),
    )
)
def test_cityscapes_instances_property(raw: np.ndarray) -> None:
    semantic, instance = cityscapes_instances_to_canonical(raw)
    label = np.where(raw < 1000, raw, raw // 1000)
    assert np.array_equal(semantic, LABEL_ID_TO_TRAIN_ID[label])
    kept = sorted({int(v) for v in raw.ravel() if v >= 1000 and LABEL_ID_TO_TRAIN_ID[v // 1000] != 255})
    expected = np.zeros_like(instance)
    for canonical, value in enumerate(kept, start=1):
        expected[raw == value] = canonical
    assert np.array_equal(instance, expected)


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------


def test_validate_semantic_accepts_canonical() -> None:
    sem = np.array([[0, 18], [255, 11]], np.uint8)
    assert validate_semantic(sem) is sem
    assert validate_semantic(np.zeros((0, 5), np.uint8)).shape == (0, 5)


def test_validate_semantic_errors() -> None:
    with pytest.raises(LabelError, match=r"3 pixels with values \[19, 33\]"):
        validate_semantic(np.array([[19, 33, 0], [33, 255, 1]], np.uint8))
    many = np.arange(19, 40, dtype=np.uint8).reshape(3, 7)
    with pytest.raises(LabelError, match=r"\[19, 20, 21, 22, 23, 24, 25, 26, \.\.\.\] \(21 distinct\)"):
        validate_semantic(many)
    with pytest.raises(LabelError, match=r"must be uint8 .* got dtype uint16"):
        validate_semantic(np.zeros((2, 2), np.uint16))
    with pytest.raises(LabelError, match=r"must be 2-D \(H, W\), got shape \(2, 2, 3\)"):
        validate_semantic(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(LabelError, match=r"seg has shape \(2, 3\), expected \(3, 2\)"):
        validate_semantic(np.zeros((2, 3), np.uint8), shape=(3, 2), name="seg")


def test_validate_instance() -> None:
    inst = np.array([[0, 65535]], np.uint16)
    assert validate_instance(inst) is inst
    with pytest.raises(LabelError, match=r"uint16 .* got dtype int32"):
        validate_instance(np.zeros((2, 2), np.int32))
    with pytest.raises(LabelError, match=r"uint16 .* got dtype uint8"):
        validate_instance(np.zeros((2, 2), np.uint8))
    with pytest.raises(LabelError, match=r"got shape \(4,\)"):
        validate_instance(np.zeros(4, np.uint16))
    with pytest.raises(LabelError, match=r"has shape \(2, 2\), expected \(2, 3\)"):
        validate_instance(np.zeros((2, 2), np.uint16), shape=(2, 3))


# --------------------------------------------------------------------------------------------------
# instance_table
# --------------------------------------------------------------------------------------------------


def test_instance_table_two_objects_6x6() -> None:
    instance = np.array(
        [
            [0, 0, 0, 0, 0, 0],
            [0, 5, 5, 0, 0, 0],
            [0, 5, 5, 5, 0, 0],
            [0, 0, 0, 0, 9, 0],
            [0, 0, 0, 0, 9, 0],
            [0, 0, 0, 0, 9, 9],
        ],
        dtype=np.uint16,
    )
    semantic = np.where(instance == 5, CAR, np.where(instance == 9, PERSON, ROAD)).astype(np.uint8)
    semantic[2, 3] = 255  # ignore inside object 5 does not change its class or area
    table = instance_table(instance, semantic)
    assert table.ids.tolist() == [5, 9]
    assert table.boxes.tolist() == [[1, 1, 4, 3], [4, 3, 6, 6]]
    assert table.classes.tolist() == [CAR, PERSON]
    assert table.areas.tolist() == [5, 4]
    assert (table.ids.dtype, table.boxes.dtype, table.classes.dtype, table.areas.dtype) == (
        np.uint16, np.int32, np.uint8, np.int64
    )
    assert len(table) == 2


def test_instance_table_majority_ties_and_all_ignore() -> None:
    instance = np.array([[1, 1, 1, 1, 2, 2], [3, 3, 3, 3, 3, 3]], np.uint16)
    semantic = np.array([[13, 13, 11, 255, 255, 255], [17, 14, 255, 14, 17, 255]], np.uint8)
    table = instance_table(instance, semantic)
    assert table.classes.tolist() == [13, 255, 14]  # majority; all ignore -> 255; tie -> lower id


def test_instance_table_empty_and_edge_ids() -> None:
    table = instance_table(np.zeros((4, 5), np.uint16), np.zeros((4, 5), np.uint8))
    assert len(table) == 0
    assert table.boxes.shape == (0, 4) and table.boxes.dtype == np.int32
    assert table.ids.dtype == np.uint16 and table.classes.dtype == np.uint8 and table.areas.dtype == np.int64
    inst = np.array([[65535, 0], [0, 1]], np.uint16)
    table = instance_table(inst, np.full((2, 2), CAR, np.uint8))
    assert table.ids.tolist() == [1, 65535]
    assert table.boxes.tolist() == [[1, 1, 2, 2], [0, 0, 1, 1]]


def test_instance_table_errors() -> None:
    with pytest.raises(LabelError, match=r"semantic has shape \(2, 2\), expected \(2, 3\)"):
        instance_table(np.zeros((2, 3), np.uint16), np.zeros((2, 2), np.uint8))
    with pytest.raises(LabelError, match="instance must be a uint16"):
        instance_table(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.uint8))
    with pytest.raises(LabelError, match=r"values \[40\]"):
        instance_table(np.zeros((2, 2), np.uint16), np.full((2, 2), 40, np.uint8))
    with pytest.raises(LabelError, match=r"InstanceTable.boxes must be int32 \(1, 4\)"):
        InstanceTable(
            ids=np.ones(1, np.uint16), boxes=np.zeros((1, 4), np.int64),
            classes=np.zeros(1, np.uint8), areas=np.ones(1, np.int64),
        )


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 9).flatmap(
        lambda h: st.integers(1, 9).flatmap(
            lambda w: st.tuples(
                hnp.arrays(np.uint16, (h, w), elements=st.sampled_from([0, 0, 1, 2, 7, 300, 65535])),
                hnp.arrays(np.uint8, (h, w), elements=st.sampled_from([0, 5, 11, 13, 18, 255])),
            )
        )
    )
)
def test_instance_table_matches_reference(maps: tuple[np.ndarray, np.ndarray]) -> None:
    instance, semantic = maps
    assert_table_matches_reference(instance_table(instance, semantic), instance, semantic)


# --------------------------------------------------------------------------------------------------
# boundaries
# --------------------------------------------------------------------------------------------------


def test_instance_boundaries_known() -> None:
    instance = np.zeros((5, 6), np.uint16)
    instance[1:3, 1:3] = 4
    instance[1:3, 3] = 8  # touches object 4 directly
    expected = np.array(
        [
            [0, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    assert np.array_equal(instance_boundaries(instance), expected)
    interior = np.zeros((5, 5), np.uint16)
    interior[:, :] = 3  # a single id everywhere: no boundary, the image border is not one
    assert not instance_boundaries(interior).any()


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        np.uint16,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
        elements=st.integers(0, 3),
    )
)
def test_instance_boundaries_matches_reference(instance: np.ndarray) -> None:
    out = instance_boundaries(instance)
    assert out.dtype == bool
    assert np.array_equal(out, reference_boundaries(instance))


def test_instance_boundaries_errors() -> None:
    with pytest.raises(LabelError, match="2-D"):
        instance_boundaries(np.zeros(5, np.uint16))
    with pytest.raises(LabelError, match="integer dtype, got float32"):
        instance_boundaries(np.zeros((2, 2), np.float32))


# --------------------------------------------------------------------------------------------------
# colours and overlay
# --------------------------------------------------------------------------------------------------


def test_colorize_semantic() -> None:
    sem = np.array([[0, 13, 255], [18, 5, 10]], np.uint8)
    out = colorize_semantic(sem)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [128, 64, 128] and out[0, 1].tolist() == [0, 0, 142]
    assert np.array_equal(out[0, 2], IGNORE_COLOR)
    assert np.array_equal(out[1], PALETTE[[18, 5, 10]])
    with pytest.raises(LabelError, match=r"values \[19\]"):
        colorize_semantic(np.array([[19]], np.uint8))


def test_colorize_instance() -> None:
    inst = np.array([[0, 1, 1], [2, 65535, 0]], np.uint16)
    out = colorize_instance(inst)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 0] and out[1, 2].tolist() == [0, 0, 0]
    assert np.array_equal(out[0, 1], out[0, 2])
    # pinned: colours must stay the same across releases (recorded bags / dashboards rely on them)
    assert out[0, 1].tolist() == [238, 49, 253]
    assert out[1, 0].tolist() == [228, 190, 82]
    assert out[1, 1].tolist() == [233, 224, 82]
    colours = instance_colors(np.arange(1, 1001, dtype=np.uint16))
    assert colours.min() >= 48  # never black or near-black
    assert len(np.unique(colours, axis=0)) >= 990  # neighbouring ids are told apart
    with pytest.raises(LabelError, match="uint16"):
        colorize_instance(inst.astype(np.int32))
    with pytest.raises(LabelError, match=r"0..65535, got \[-1, 70000\]"):
        instance_colors(np.array([-1, 5, 70000], np.int64))


def test_overlay() -> None:
    rgb = np.full((2, 2, 3), 100, np.uint8)
    sem = np.array([[0, 255], [13, 13]], np.uint8)
    assert np.array_equal(overlay(rgb, sem, alpha=0.0), rgb)
    full = overlay(rgb, sem, alpha=1.0)
    assert full[0, 0].tolist() == PALETTE[0].tolist() and full[1, 1].tolist() == PALETTE[13].tolist()
    assert full[0, 1].tolist() == [100, 100, 100]  # ignore keeps the image
    half = overlay(rgb, sem)
    assert half[0, 0].tolist() == [114, 82, 114]  # (100 + 128) / 2, (100 + 64) / 2, ...
    assert half[1, 0].tolist() == [50, 50, 121]
    assert half.dtype == np.uint8 and half.shape == rgb.shape
    with pytest.raises(LabelError, match=r"alpha must be in \[0, 1\], got 1.5"):
        overlay(rgb, sem, alpha=1.5)
    with pytest.raises(LabelError, match=r"expected \(2, 2\)"):
        overlay(rgb, np.zeros((3, 3), np.uint8))
    with pytest.raises(LabelError, match=r"rgb must be \(H, W, 3\) uint8"):
        overlay(rgb[..., 0], sem)


# --------------------------------------------------------------------------------------------------
# load_label_png
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_load_label_png_roundtrip(tmp_path: Path, dtype) -> None:
    data = (np.arange(12).reshape(3, 4) * (5000 if dtype == np.uint16 else 20)).astype(dtype)
    path = tmp_path / "map.png"
    assert cv2.imwrite(str(path), data)
    out = load_label_png(path)
    assert out.dtype == dtype and np.array_equal(out, data)


def test_load_label_png_colour_is_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 14
    rgb[..., 1] = 7
    path = tmp_path / "colour.png"
    assert cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV writes BGR
    assert np.array_equal(load_label_png(path), rgb)


def test_load_label_png_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(LabelError, match=r"cannot read label PNG .*nope\.png"):
        load_label_png(missing)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png at all")
    with pytest.raises(LabelError, match=r"cannot decode label PNG .*garbage\.png"):
        load_label_png(garbage)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(LabelError, match=r"empty\.png.*0 bytes"):
        load_label_png(empty)
    with pytest.raises(LabelError, match=r"lossless PNG .*map\.jpg"):
        load_label_png(tmp_path / "map.jpg")
