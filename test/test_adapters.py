"""Simulator adapters (sim_bridge.adapters) and the CARLA camera plugin, without any simulator.

Synthetic inputs are built in each simulator's documented wire encoding (CARLA bgra8 with the tag in R
and the object id in G/B; Isaac 32SC1 ids + idToLabels JSON; MORAI JPEG-compressed colours; AirSim bgr8
palette colours) and pushed through the same message -> array path the node uses. The real CARLA frames
in shared data check the instance decoding end to end.
"""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import IGNORE_ID, THING_CLASSES, TRAIN_ID, instance_table
from sim2real.io.conversions import decode_compressed, image_fields, image_to_array
from sim_bridge.adapters import ADAPTERS, DecodeStats, get_adapter, load_color_table, parse_isaac_labels
from sim_bridge.adapters.airsim import (
    AIRSIM,
    AIRSIM_PALETTE,
    apply_segmentation_ids,
    classify_mesh,
    ignore_case,
    segmentation_id_calls,
)
from sim_bridge.adapters.base import canonical_class
from sim_bridge.adapters.carla import CARLA, CARLA_PALETTE, CARLA_ROS_BRIDGE, CARLA_TAGS
from sim_bridge.adapters.isaac import ISAAC
from sim_bridge.adapters.morai import MORAI
from sim_bridge.carla_plugin import spawn_cameras as sc

CARLA_FRAMES = ("Town10HD_000033_5026200", "Town10HD_000063_5026800")
T = TRAIN_ID


def as_message(array: np.ndarray, encoding: str) -> SimpleNamespace:
    """A duck-typed sensor_msgs/Image carrying ``array`` in ``encoding`` (what rclpy would deliver)."""
    return SimpleNamespace(**image_fields(array, encoding))


def bgra(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 in CARLA's BGRA byte order from R, G, B planes (alpha 255)."""
    return np.stack([b, g, r, np.full_like(r, 255)], axis=-1).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# registry and shared pieces
# ------------------------------------------------------------------------------------------------


def test_registry_lists_every_simulator_and_rejects_unknown_names() -> None:
    assert set(ADAPTERS) == {"carla", "carla_ros_bridge", "isaac", "morai", "airsim"}
    for name, adapter in ADAPTERS.items():
        assert get_adapter(name) is adapter
        assert adapter.name == name
        assert adapter.sources, f"{name} cites no source"
        assert adapter.topics().rgb.startswith("/")
    with pytest.raises(ConfigError, match=r"unknown simulator 'gazebo'.*airsim, carla, carla_ros_bridge, isaac, morai"):
        get_adapter("gazebo")
    with pytest.raises(ConfigError, match="no topic profile 'nope'"):
        CARLA.topics("nope")


def test_canonical_class_names_and_aliases() -> None:
    assert canonical_class("Pedestrian") == T["person"]
    assert canonical_class("traffic_light") == T["traffic light"]
    assert canonical_class("MotorBike") == T["motorcycle"]
    assert canonical_class("forklift") is None


def test_decode_stats_summary_names_the_unknown_values() -> None:
    stats = DecodeStats()
    stats.add_frame(100)
    stats.add_unknown(["tag 29", "tag 40"], [3, 0])
    assert stats.unknown_pixels == 3
    assert stats.unknown == {"tag 29": 3}
    assert stats.unknown_fraction == pytest.approx(0.03)
    assert "tag 29: 3" in stats.summary()
    assert "3/100 pixels" in stats.summary()


# ------------------------------------------------------------------------------------------------
# CARLA
# ------------------------------------------------------------------------------------------------


def test_carla_table_covers_every_tag_and_follows_cityscapes_conventions() -> None:
    lut = CARLA.tags.lut
    assert sorted(CARLA_TAGS) == list(range(29))
    assert lut[1] == T["road"] and lut[24] == T["road"]  # road line is road
    assert lut[12] == T["person"] and lut[14] == T["car"] and lut[11] == T["sky"]
    for ignored in ("unlabeled", "static", "dynamic", "other", "water", "ground", "bridge", "rail track",
                    "guard rail"):
        assert lut[CARLA.tags.names[[n for _, n in CARLA.tags.names].index(ignored)][0]] == IGNORE_ID
    # 0.9.14+ tags 1..19 are the Cityscapes train classes in train-id order, shifted by one
    expected = np.full(256, IGNORE_ID, np.uint8)
    expected[1:20] = np.arange(19)
    expected[24] = T["road"]
    np.testing.assert_array_equal(lut, expected)
    assert not CARLA.tags.known[29] and CARLA.tags.known[28]


def test_carla_raw_semantic_bgra8_and_unknown_tags_are_counted() -> None:
    tags = np.array([[1, 11, 14, 24], [12, 20, 29, 200]], dtype=np.uint8)
    zeros = np.zeros_like(tags)
    msg = as_message(bgra(tags, zeros, zeros), "bgra8")
    stats = DecodeStats()
    sem = CARLA.decode_semantic(image_to_array(msg), msg.encoding, stats=stats)
    expected = np.array([[T["road"], T["sky"], T["car"], T["road"]], [T["person"], 255, 255, 255]], np.uint8)
    np.testing.assert_array_equal(sem, expected)
    assert stats.unknown == {"tag 29": 1, "tag 200": 1}  # static (20) is known-and-ignored: not counted
    assert stats.frames == 1 and stats.pixels == 8
    # a one-channel tag image (the *_labelIds.png form) decodes the same way
    np.testing.assert_array_equal(CARLA.decode_semantic(tags, "mono8"), expected)


def test_carla_ros_bridge_palette_semantic() -> None:
    colours = [CARLA_PALETTE[t] for t in (1, 11, 14, 28)] + [(1, 2, 3)]
    rgb = np.array([colours], dtype=np.uint8)
    msg = as_message(bgra(rgb[..., 0], rgb[..., 1], rgb[..., 2]), "bgra8")
    stats = DecodeStats()
    sem = CARLA_ROS_BRIDGE.decode_semantic(image_to_array(msg), "bgra8", stats=stats)
    np.testing.assert_array_equal(sem, [[T["road"], T["sky"], T["car"], 255, 255]])
    assert stats.unknown == {"colour (1, 2, 3)": 1}
    assert len(set(CARLA_PALETTE.values())) == len(CARLA_PALETTE)  # colours are unambiguous
    assert CARLA_ROS_BRIDGE.topics().instance is None and not CARLA_ROS_BRIDGE.has_instances
    with pytest.raises(LabelError, match="no instance stream"):
        CARLA_ROS_BRIDGE.decode_instance(image_to_array(msg), "bgra8")


def test_carla_topics_cover_both_interfaces() -> None:
    t = CARLA.topics("native_ros2")
    assert t.rgb == "/carla/ego_vehicle/rgb_front/image"
    assert t.semantic == "/carla/ego_vehicle/semantic_segmentation_front/image"
    assert t.instance == "/carla/ego_vehicle/instance_segmentation_front/image"
    assert t.camera_info == "/carla/ego_vehicle/rgb_front/camera_info"
    assert CARLA_ROS_BRIDGE.topics().semantic == t.semantic


def test_carla_instance_ids_are_object_ids_and_stable_across_frames() -> None:
    # frame 1: a car (object 300) at columns 0-1, a pedestrian (object 7) at column 2, road (object 5) and
    # sky elsewhere; frame 2: the same objects moved. R = tag, G = id low byte, B = id high byte.
    def frame(car_cols: slice, ped_col: int) -> np.ndarray:
        tag = np.full((2, 6), 11, np.uint8)
        oid = np.zeros((2, 6), np.int64)
        tag[1, :] = 1
        oid[1, :] = 5
        tag[:, car_cols] = 14
        oid[:, car_cols] = 300
        tag[0, ped_col] = 12
        oid[0, ped_col] = 7
        return bgra(tag, (oid & 255).astype(np.uint8), (oid >> 8).astype(np.uint8))

    sem1, inst1 = CARLA.decode_instance(frame(slice(0, 2), 2), "bgra8")
    sem2, inst2 = CARLA.decode_instance(frame(slice(3, 5), 5), "bgra8")
    assert inst1.dtype == np.uint16 and sem1.dtype == np.uint8
    assert set(np.unique(inst1[sem1 == T["car"]])) == {300}
    assert set(np.unique(inst2[sem2 == T["car"]])) == {300}  # same car, same id in the next frame
    assert inst1[0, 2] == 7 and inst2[0, 5] == 7
    assert not inst1[sem1 == T["road"]].any() and not inst1[sem1 == T["sky"]].any()  # stuff -> 0


@pytest.mark.parametrize("name", CARLA_FRAMES)
def test_real_carla_frames_decode_to_consistent_canonical_labels(shared_data: Path, name: str) -> None:
    folder = shared_data / "carla"
    raw = cv2.imread(str(folder / f"{name}_instance.png"), cv2.IMREAD_UNCHANGED)  # BGR: R is channel 2
    tags = np.array(Image.open(folder / f"{name}_labelIds.png"))
    assert raw.shape == (1024, 2048, 3) and tags.shape == (1024, 2048)
    start = time.perf_counter()
    stats = DecodeStats()
    semantic, instance = CARLA.decode_instance(raw, "bgr8", stats=stats)
    elapsed = time.perf_counter() - start
    reference = CARLA.decode_semantic(tags, "mono8")
    agreement = float((semantic == reference).mean())
    print(f"\n{name}: decoded instance-camera semantic agrees with mapped labelIds on "
          f"{100 * agreement:.2f} % of pixels (decode {1000 * elapsed:.0f} ms; {stats.summary()})")
    assert agreement >= 0.95
    # the instance decoding read R as the tag (not B): identical to decoding the R plane as tags
    np.testing.assert_array_equal(semantic, CARLA.decode_semantic(raw[..., 2], "mono8"))

    table = instance_table(instance, semantic)
    assert len(table) >= 5
    assert set(table.classes.tolist()) <= THING_CLASSES  # every instance's majority class is a thing
    object_ids = raw[..., 1].astype(np.int64) + 256 * raw[..., 0].astype(np.int64)
    thing = np.isin(semantic, sorted(THING_CLASSES))
    np.testing.assert_array_equal(instance[thing], object_ids[thing])  # canonical id = CARLA object id
    # cars are car instances, pedestrians person instances; sky never carries an instance
    for tag, cls in ((14, "car"), (12, "person")):
        ids = np.unique(instance[raw[..., 2] == tag])
        assert ids.size and (ids > 0).all()
        rows = np.isin(table.ids, ids)
        assert (table.classes[rows] == T[cls]).all()
    assert not instance[semantic == T["sky"]].any()
    assert not instance[~thing].any()
    x0, y0, x1, y1 = table.boxes.T
    assert ((x0 < x1) & (y0 < y1) & (x1 <= 2048) & (y1 <= 1024)).all()


# ------------------------------------------------------------------------------------------------
# Isaac Sim
# ------------------------------------------------------------------------------------------------

ISAAC_LABELS = json.dumps({
    "0": {"class": "BACKGROUND"},
    "1": {"class": "UNLABELLED"},
    "2": {"class": "road"},
    "3": {"class": "car,vehicle"},
    "4": {"class": "forklift"},
    "70001": {"class": "pedestrian"},
    "time_stamp": {"sec": 12, "nanosec": 5},
})


def test_parse_isaac_labels_accepts_the_documented_forms() -> None:
    labels = parse_isaac_labels(ISAAC_LABELS)
    assert labels == {0: "BACKGROUND", 1: "UNLABELLED", 2: "road", 3: "car", 4: "forklift", 70001: "pedestrian"}
    assert parse_isaac_labels({"5": "/World/car_01"}) == {5: "/World/car_01"}
    with pytest.raises(LabelError, match="not valid JSON"):
        parse_isaac_labels("{nope")
    with pytest.raises(LabelError, match="must be a string"):
        parse_isaac_labels({"1": 3})


def test_isaac_semantic_32sc1_with_runtime_labels() -> None:
    ids = np.array([[0, 1, 2, 3], [4, 70001, 9, 2]], dtype=np.uint32)
    msg = as_message(ids.view(np.int32), "32SC1")  # Isaac publishes the uint32 ids as 32SC1
    stats = DecodeStats()
    sem = ISAAC.decode_semantic(image_to_array(msg), "32SC1", stats=stats,
                                id_to_name=parse_isaac_labels(ISAAC_LABELS))
    np.testing.assert_array_equal(sem, [[255, 255, T["road"], T["car"]], [255, T["person"], 255, T["road"]]])
    assert stats.unknown == {"id 4": 1, "id 9": 1}  # forklift and an id missing from the JSON
    with pytest.raises(LabelError, match="id -> label mapping"):
        ISAAC.decode_semantic(ids, "32SC1")


def test_isaac_instance_ids_pair_with_semantic_and_fold_into_uint16() -> None:
    semantic = np.array([[T["car"], T["car"], T["road"]]], np.uint8)
    ids = np.array([[17, 65535 + 17, 17]], np.uint32)
    sem, inst = ISAAC.decode_instance(ids.view(np.int32), "32SC1", semantic=semantic)
    assert sem is semantic
    np.testing.assert_array_equal(inst, [[17, 17, 0]])  # folded id collides only modulo 65535; road -> 0
    sem2, inst2 = ISAAC.decode_instance(np.array([[3, 2]], np.uint32), "32SC1",
                                        id_to_name=parse_isaac_labels(ISAAC_LABELS))
    np.testing.assert_array_equal(sem2, [[T["car"], T["road"]]])
    np.testing.assert_array_equal(inst2, [[3, 0]])


# ------------------------------------------------------------------------------------------------
# MORAI
# ------------------------------------------------------------------------------------------------

MORAI_TABLE = {
    "colors": {"Vehicle": [250, 0, 0], "Pedestrian": [0, 250, 0], "Road": [120, 120, 120], "Etc": [0, 0, 0]},
    "class_map": {"Etc": None},
    "tolerance": 12,
}


def test_morai_needs_a_colour_table_and_validates_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no class colour table"):
        MORAI.check_ready()
    with pytest.raises(ConfigError, match="no class colour table"):
        MORAI.decode_semantic(np.zeros((2, 2, 3), np.uint8), "bgr8")
    with pytest.raises(ConfigError, match="'Forklift' has no canonical class"):
        load_color_table({"colors": {"Forklift": [1, 2, 3]}})
    with pytest.raises(ConfigError, match="colour must be"):
        load_color_table({"colors": {"Vehicle": [1, 2]}})
    path = tmp_path / "morai.json"
    path.write_text(json.dumps(MORAI_TABLE))
    adapter = load_color_table(path)
    adapter.check_ready()
    assert adapter.tolerance == 12 and adapter.name == "morai"


def test_morai_jpeg_semantic_snaps_colours_and_counts_the_rest() -> None:
    adapter = load_color_table(MORAI_TABLE)
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :16] = (250, 0, 0)
    rgb[:, 16:32] = (120, 120, 120)
    rgb[8:24, 36:44] = (0, 250, 0)
    ok, jpeg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    array, encoding = decode_compressed(SimpleNamespace(format="jpeg", data=jpeg.tobytes()))
    assert encoding == "bgr8"
    exact = MORAI_TABLE | {"tolerance": 0}
    strict_stats, snap_stats = DecodeStats(), DecodeStats()
    strict = load_color_table(exact).decode_semantic(array, encoding, stats=strict_stats)
    snapped = adapter.decode_semantic(array, encoding, stats=snap_stats)
    assert strict_stats.unknown_pixels > 0  # JPEG moved some colours off the table
    assert snap_stats.unknown_pixels < strict_stats.unknown_pixels
    assert (strict[4:28, 2:14] == T["car"]).mean() < 0.5  # exact matching loses the chroma-blurred red
    assert (snapped[4:28, 2:14] == T["car"]).all()
    assert (snapped[4:28, 18:30] == T["road"]).all()
    assert (snapped[12:20, 38:42] == T["person"]).all()
    assert (snapped[:, 46:] == 255).all()  # black = Etc -> ignore


def test_morai_instance_colours_need_the_semantic_pairing() -> None:
    adapter = load_color_table(MORAI_TABLE)
    inst_rgb = np.array([[[10, 20, 30], [10, 20, 30], [0, 0, 0], [5, 5, 5]]], np.uint8)
    semantic = np.array([[T["car"], T["car"], T["car"], T["road"]]], np.uint8)
    with pytest.raises(LabelError, match="paired semantic"):
        adapter.decode_instance(inst_rgb, "rgb8")
    _, inst = adapter.decode_instance(inst_rgb, "rgb8", semantic=semantic)
    key = (10 << 16) | (20 << 8) | 30
    np.testing.assert_array_equal(inst, [[(key - 1) % 65535 + 1] * 2 + [0, 0]])


# ------------------------------------------------------------------------------------------------
# AirSim
# ------------------------------------------------------------------------------------------------


def test_airsim_palette_and_rules() -> None:
    assert len(AIRSIM_PALETTE) == 256 and len(set(AIRSIM_PALETTE)) == 256
    assert AIRSIM_PALETTE[0] == (55, 181, 57) and AIRSIM_PALETTE[255] == (43, 47, 206)
    rules = (("road.*", "road"), (".*car.*", "car"), ("roadcar_sign", None))
    calls = segmentation_id_calls(rules)
    assert calls[0] == (r"[\w]*", 0)
    assert calls[1] == ("[rR][oO][aA][dD].*", T["road"] + 1)
    assert calls[3][1] == 0
    assert classify_mesh("Road_12", rules) == T["road"]
    assert classify_mesh("SM_Car_3", rules) == T["car"]
    assert classify_mesh("roadcar_sign", rules) == 255  # last rule wins
    assert classify_mesh("Tree", rules) == 255
    assert ignore_case(r"a[b-c]\d") == r"[aA][b-c]\d"

    class FakeClient:
        def __init__(self) -> None:
            self.calls: list[tuple[str, int, bool]] = []

        def simSetSegmentationObjectID(self, name: str, object_id: int, is_regex: bool) -> bool:
            self.calls.append((name, object_id, is_regex))
            return object_id != 0 or name == r"[\w]*"

    client = FakeClient()
    assert apply_segmentation_ids(client, rules) == [True, True, True, False]
    assert [c[:2] for c in client.calls] == calls and all(c[2] for c in client.calls)
    with pytest.raises(ConfigError, match="not a valid regex"):
        segmentation_id_calls((("(", "car"),))


def test_airsim_segmentation_bgr8_decodes_through_the_palette() -> None:
    object_ids = np.array([[0, T["car"] + 1, T["road"] + 1, 200]])
    rgb = np.array([[AIRSIM_PALETTE[i] for i in row] for row in object_ids], np.uint8)
    msg = as_message(np.ascontiguousarray(rgb[..., ::-1]), "bgr8")
    stats = DecodeStats()
    sem = AIRSIM.decode_semantic(image_to_array(msg), "bgr8", stats=stats)
    np.testing.assert_array_equal(sem, [[255, T["car"], T["road"], 255]])
    r, g, b = AIRSIM_PALETTE[200]
    assert stats.unknown == {f"colour ({r}, {g}, {b})": 1}  # a mesh left with an unassigned id
    assert AIRSIM.topics().semantic == "/airsim_node/PhysXCar/front_center/Segmentation"
    with pytest.raises(LabelError, match="no instance"):
        AIRSIM.decode_instance(rgb, "rgb8")


def test_decode_rgb_handles_each_native_encoding() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    bgra8 = np.concatenate([rgb[..., ::-1], np.full((2, 3, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(CARLA.decode_rgb(bgra8, "bgra8"), rgb)
    np.testing.assert_array_equal(AIRSIM.decode_rgb(np.ascontiguousarray(rgb[..., ::-1]), "bgr8"), rgb)
    np.testing.assert_array_equal(ISAAC.decode_rgb(rgb, "rgb8"), rgb)
    with pytest.raises(LabelError, match="RGB encoding"):
        CARLA.decode_rgb(rgb[..., 0], "mono8")


# ------------------------------------------------------------------------------------------------
# CARLA plugin (no CARLA: injected fakes)
# ------------------------------------------------------------------------------------------------


class FakeBlueprint:
    def __init__(self, bp_id: str, attributes: set[str]) -> None:
        self.id = bp_id
        self.allowed = attributes
        self.attrs: dict[str, str] = {}

    def has_attribute(self, key: str) -> bool:
        return key in self.allowed

    def set_attribute(self, key: str, value: str) -> None:
        assert isinstance(value, str)
        self.attrs[key] = value


CAMERA_ATTRS = {"image_size_x", "image_size_y", "fov", "sensor_tick", "role_name"}


class FakeLibrary:
    def __init__(self, missing: str | None = None) -> None:
        self.missing = missing

    def find(self, bp_id: str) -> FakeBlueprint:
        drop = {self.missing} if bp_id.endswith("instance_segmentation") else set()
        return FakeBlueprint(bp_id, CAMERA_ATTRS - drop)


def test_blueprints_get_identical_attributes() -> None:
    config = sc.CameraConfig(width=640, height=360, fov=70.0)
    bps = sc.configure_blueprints(FakeLibrary(), config)
    assert [bps[k].id for k in sc.CAMERA_KINDS] == [sc.BLUEPRINTS[k] for k in sc.CAMERA_KINDS]
    common = [{k: v for k, v in bp.attrs.items() if k != "role_name"} for bp in bps.values()]
    assert common[0] == common[1] == common[2] == {
        "image_size_x": "640", "image_size_y": "360", "fov": "70.0", "sensor_tick": "0.0"}
    assert bps["instance"].attrs["role_name"] == "sim2real_instance"
    with pytest.raises(ConfigError, match="has no attribute 'fov'"):
        sc.configure_blueprints(FakeLibrary(missing="fov"), config)
    with pytest.raises(ConfigError, match="fov"):
        sc.CameraConfig(fov=180.0)


def test_spawn_cameras_uses_one_transform_and_cleans_up_on_failure() -> None:
    destroyed: list[str] = []

    class Actor:
        def __init__(self, kind: str) -> None:
            self.kind = kind

        def destroy(self) -> None:
            destroyed.append(self.kind)

    class World:
        def __init__(self, fail_on: str | None = None) -> None:
            self.fail_on = fail_on
            self.spawned: list[tuple[object, object, object]] = []

        def spawn_actor(self, bp: FakeBlueprint, transform: object, attach_to: object) -> Actor:
            if bp.id == self.fail_on:
                raise RuntimeError("spawn failed")
            self.spawned.append((bp, transform, attach_to))
            return Actor(bp.id)

    carla = SimpleNamespace(Transform=lambda loc, rot: (loc, rot), Location=lambda **k: k, Rotation=lambda **k: k)
    transform = sc.mount_transform(carla, sc.CameraConfig(x=2.0, z=1.4, pitch=-5.0))
    assert transform == ({"x": 2.0, "y": 0.0, "z": 1.4}, {"pitch": -5.0, "yaw": 0.0, "roll": 0.0})
    world, ego = World(), object()
    bps = sc.configure_blueprints(FakeLibrary(), sc.CameraConfig())
    sensors = sc.spawn_cameras(world, ego, bps, transform)
    assert set(sensors) == set(sc.CAMERA_KINDS)
    assert all(t is transform and parent is ego for _, t, parent in world.spawned)
    with pytest.raises(RuntimeError):
        sc.spawn_cameras(World(fail_on=sc.BLUEPRINTS["instance"]), ego, bps, transform)
    assert destroyed == [sc.BLUEPRINTS["rgb"], sc.BLUEPRINTS["semantic"]]


def test_apply_sync_settings() -> None:
    class World:
        def __init__(self) -> None:
            self.applied: list[SimpleNamespace] = []

        def get_settings(self) -> SimpleNamespace:
            return SimpleNamespace(synchronous_mode=False, fixed_delta_seconds=None)

        def apply_settings(self, s: SimpleNamespace) -> None:
            self.applied.append(s)

    world = World()
    original = sc.apply_sync_settings(world, 0.05)
    assert original.synchronous_mode is False
    assert world.applied[-1].synchronous_mode is True and world.applied[-1].fixed_delta_seconds == 0.05
    with pytest.raises(ConfigError, match="fixed delta"):
        sc.apply_sync_settings(world, 0.5)


def test_frame_assembler_pairs_by_frame_number_and_drops_stale_frames() -> None:
    asm = sc.FrameAssembler(max_pending=2)
    assert asm.add("rgb", 10, "r10") is None
    assert asm.add("instance", 11, "i11") is None
    assert asm.add("semantic", 10, "s10") is None
    assert asm.add("instance", 10, "i10") == {"rgb": "r10", "semantic": "s10", "instance": "i10"}
    assert asm.add("rgb", 12, "r12") is None
    assert asm.add("rgb", 13, "r13") is None  # 3 pending frames > 2: frame 11 dropped
    assert asm.dropped == 1
    assert asm.add("semantic", 11, "s11") is None  # frame 11 starts again from scratch
    with pytest.raises(ConfigError, match="unknown camera kind"):
        asm.add("depth", 1, None)


def fake_carla_images(frame: int, timestamp: float, h: int = 4, w: int = 5) -> dict[str, SimpleNamespace]:
    """Three camera images of one CARLA frame, raw BGRA bytes as carla.Image.raw_data."""
    tags = np.full((h, w), 11, np.uint8)
    tags[2:, :] = 1
    tags[1:3, 1:3] = 14
    oid = np.where(tags == 14, 4242, 9).astype(np.int64)
    zeros = np.zeros_like(tags)
    rgb = np.full((h, w, 4), (30, 20, 10, 255), np.uint8)  # B, G, R, A
    images = {
        "rgb": rgb,
        "semantic": bgra(tags, zeros, zeros),
        "instance": bgra(tags, (oid & 255).astype(np.uint8), (oid >> 8).astype(np.uint8)),
    }
    return {k: SimpleNamespace(frame=frame, timestamp=timestamp, width=w, height=h, raw_data=v.tobytes())
            for k, v in images.items()}


def test_decode_frame_and_run_ticks_pair_the_three_cameras_per_tick() -> None:
    frame = sc.decode_frame(fake_carla_images(7, 3.25))
    assert frame.frame == 7 and frame.stamp == (3, 250_000_000)
    assert (frame.rgb == (10, 20, 30)).all()
    assert frame.semantic[1, 1] == T["car"] and frame.semantic[0, 0] == T["sky"]
    assert frame.instance[1, 1] == 4242 and frame.instance[0, 0] == 0 and frame.instance.dtype == np.uint16
    mixed = fake_carla_images(7, 3.25) | {"instance": fake_carla_images(8, 3.3)["instance"]}
    with pytest.raises(ConfigError, match="different frames"):
        sc.decode_frame(mixed)

    asm = sc.FrameAssembler()
    complete: queue.Queue = queue.Queue()

    class World:
        frame = 100

        def tick(self) -> int:
            self.frame += 1
            stale = fake_carla_images(self.frame - 50, 0.0)  # a late triple of an old frame
            for kind in ("instance", "rgb", "semantic"):
                done = asm.add(kind, stale[kind].frame, stale[kind])
                if done:
                    complete.put(done)
            images = fake_carla_images(self.frame, self.frame * 0.05)
            for kind in ("semantic", "instance", "rgb"):  # callbacks in any order
                done = asm.add(kind, self.frame, images[kind])
                if done:
                    complete.put(done)
            return self.frame

    got: list[sc.CanonicalFrame] = []
    assert sc.run_ticks(World(), complete, got.append, ticks=3, timeout=1.0) == 3
    assert [f.frame for f in got] == [101, 102, 103]
    assert got[0].stamp == (5, 50_000_000)

    class Silent:
        def tick(self) -> int:
            return 1

    with pytest.raises(TimeoutError, match="frame 1"):
        sc.run_ticks(Silent(), queue.Queue(), got.append, ticks=1, timeout=0.05)


def test_camera_info_fields_match_carla_intrinsics() -> None:
    info = sc.camera_info_fields(800, 600, 90.0)
    assert info["k"][0] == pytest.approx(400.0) and info["k"][4] == pytest.approx(400.0)
    assert info["k"][2] == 400.0 and info["k"][5] == 300.0
    assert len(info["p"]) == 12 and info["d"] == [0.0] * 5
