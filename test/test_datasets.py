"""Training datasets: stamp matching, streaming bag sources, folders, paired transforms, worker sharding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from torch.utils.data import DataLoader

from sim2real.core.errors import BagError, ConfigError, LabelError
from sim2real.data.datasets import (
    BagSourceDataset,
    BagTargetDataset,
    CityscapesSourceDataset,
    ImageFolderDataset,
    MatchStats,
    ProceduralSourceDataset,
    SourceTopics,
    match_triplets,
)
from sim2real.data.transforms import PairedTransform
from sim2real.io.bag_reader import BagMessage
from sim2real.io.conversions import image_fields
from sim2real.training.config import SourceDataConfig

TS = get_typestore(Stores.ROS2_KILTED)
Image, Header, Time = TS.types["sensor_msgs/msg/Image"], TS.types["std_msgs/msg/Header"], TS.types[
    "builtin_interfaces/msg/Time"]
TOPICS = SourceTopics()


def frame(i: int, h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A source frame whose pixel values encode its index (so matching errors are visible)."""
    rgb = np.full((h, w, 3), i, np.uint8)
    semantic = np.full((h, w), i % 19, np.uint8)
    instance = np.full((h, w), i, np.uint16)
    return rgb, semantic, instance


def write_bag(path: Path, stamps: dict[str, list[int]], storage: StoragePlugin = StoragePlugin.MCAP) -> None:
    """Write /sim/camera/{image,semantic,instance} with the given header stamps (ns) per topic."""
    enc = {TOPICS.image: "rgb8", TOPICS.semantic: "mono8", TOPICS.instance: "16UC1"}
    msgs = []
    for topic, values in stamps.items():
        for stamp in values:
            array = frame(stamp // 1_000_000)[[TOPICS.image, TOPICS.semantic, TOPICS.instance].index(topic)]
            header = Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam")
            msgs.append((stamp, topic, Image(header=header, **image_fields(array, enc[topic], data_type="numpy"))))
    with Writer(path, version=9, storage_plugin=storage) as writer:
        conns = {t: writer.add_connection(t, "sensor_msgs/msg/Image", typestore=TS) for t in stamps}
        for stamp, topic, msg in sorted(msgs, key=lambda m: (m[0], m[1])):
            writer.write(conns[topic], stamp, TS.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def fake(topic: str, stamp: int) -> BagMessage:
    class Msg:
        class header:  # noqa: N801 - mimics a message field
            class stamp:  # noqa: N801
                sec, nanosec = divmod(stamp, 10**9)
    return BagMessage(topic, stamp, Msg())


def test_match_triplets_exact_and_unmatched_counts() -> None:
    topics = ["a", "b", "c"]
    stream = [fake("a", 1), fake("b", 1), fake("c", 1), fake("a", 2), fake("b", 2),  # c@2 lost
              fake("a", 3), fake("c", 3), fake("b", 3), fake("c", 4)]
    stats = MatchStats()
    sets = list(match_triplets(stream, topics, 0, stats))
    assert [[m.stamp_ns for m in s] for s in sets] == [[1, 1, 1], [3, 3, 3]]
    assert stats.matched == 2
    assert stats.unmatched == {"a": 1, "b": 1, "c": 1}
    assert stats.read == {"a": 3, "b": 3, "c": 3}


def test_match_triplets_with_tolerance() -> None:
    stream = [fake("a", 100), fake("b", 104), fake("a", 200), fake("b", 260)]
    assert len(list(match_triplets(stream, ["a", "b"], 5))) == 1
    assert len(list(match_triplets(stream, ["a", "b"], 60))) == 2


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_bag_source_matches_by_stamp_and_reports_unmatched(tmp_path: Path, storage: StoragePlugin) -> None:
    ms = 1_000_000
    stamps = {TOPICS.image: [i * ms for i in range(1, 9)],
              TOPICS.semantic: [i * ms for i in range(1, 9) if i != 4],
              TOPICS.instance: [i * ms for i in range(1, 9)]}
    write_bag(tmp_path / "bag", stamps, storage)
    ds = BagSourceDataset([tmp_path / "bag"])
    samples = list(ds)
    assert len(samples) == 7
    for sample, i in zip(samples, [1, 2, 3, 5, 6, 7, 8], strict=True):
        assert sample["rgb"].shape == (3, 24, 32) and sample["rgb"].dtype == torch.float32
        assert torch.allclose(sample["rgb"], torch.full((3, 24, 32), i / 127.5 - 1.0))
        assert (sample["semantic"] == i % 19).all() and (sample["instance"] == i).all()
    assert ds.stats.unmatched == {TOPICS.image: 1, TOPICS.semantic: 0, TOPICS.instance: 1}


def test_bag_source_shards_across_workers_without_overlap(tmp_path: Path) -> None:
    ms = 1_000_000
    write_bag(tmp_path / "bag", {t: [i * ms for i in range(1, 11)] for t in TOPICS.as_list()})
    loader = DataLoader(BagSourceDataset([tmp_path / "bag"]), batch_size=None, num_workers=2)
    seen = sorted(int(s["instance"][0, 0]) for s in loader)
    assert seen == list(range(1, 11))


def test_bag_source_errors_name_the_problem(tmp_path: Path, shared_data: Path) -> None:
    with pytest.raises(BagError, match="'/sim/camera/image' not in bag .*topics there: /image"):
        BagSourceDataset([shared_data / "bags/ros2bag_tools_test/images.bag"])
    with pytest.raises(BagError, match="bag not found"):
        BagSourceDataset([tmp_path / "missing"])
    write_bag(tmp_path / "empty", {TOPICS.image: [1], TOPICS.semantic: [], TOPICS.instance: [1]})
    with pytest.raises(BagError, match=r"no messages on \['/sim/camera/semantic'\]"):
        BagSourceDataset([tmp_path / "empty"])


def test_bag_source_rejects_non_canonical_labels(tmp_path: Path) -> None:
    ms = 1_000_000
    write_bag(tmp_path / "bag", {t: [40 * ms] for t in TOPICS.as_list()})  # semantic 40 % 19 = 2: fine
    assert len(list(BagSourceDataset([tmp_path / "bag"]))) == 1

    def bad_decoder(sem: np.ndarray, se: str, inst: np.ndarray, ie: str) -> tuple[np.ndarray, np.ndarray]:
        from sim2real.data.datasets import canonical_labels
        return canonical_labels(sem + 30, se, inst, ie)

    with pytest.raises(LabelError, match="outside train ids"):
        list(BagSourceDataset([tmp_path / "bag"], label_decoder=bad_decoder))


def test_bag_target_reads_image_topics(tmp_path: Path) -> None:
    write_bag(tmp_path / "bag", {TOPICS.image: [1, 2, 3]})
    samples = list(BagTargetDataset([tmp_path / "bag"], [TOPICS.image]))
    assert len(samples) == 3 and set(samples[0]) == {"rgb"}
    with pytest.raises(BagError, match="not in bag"):
        BagTargetDataset([tmp_path / "bag"], ["/front/image_raw"])


def test_image_folder_reads_shared_real_frames(shared_data: Path) -> None:
    ds = ImageFolderDataset([shared_data / "real" / "seq0000"], PairedTransform(crop=(64, 96), resize_short=128))
    assert len(ds) == 30
    sample = ds[0]
    assert sample["rgb"].shape == (3, 64, 96)
    assert sample["rgb"].min() >= -1.0 and sample["rgb"].max() <= 1.0
    with pytest.raises(ConfigError, match="no image files"):
        ImageFolderDataset([shared_data / "labels" / "nowhere"])


def test_cityscapes_folder_source(shared_data: Path, tmp_path: Path) -> None:
    import shutil

    import cv2
    label = sorted((shared_data / "labels").glob("*_gtFine_labelIds.png"))[0]
    key = label.name.removesuffix("_gtFine_labelIds.png")
    shutil.copy(label, tmp_path / label.name)
    shutil.copy(label.with_name(f"{key}_gtFine_instanceIds.png"), tmp_path)
    h, w = cv2.imread(str(label), cv2.IMREAD_UNCHANGED).shape
    cv2.imwrite(str(tmp_path / f"{key}_leftImg8bit.png"), np.zeros((h, w, 3), np.uint8))
    sample = CityscapesSourceDataset(tmp_path)[0]
    assert sample["semantic"].shape == (h, w)
    assert set(torch.unique(sample["semantic"]).tolist()) <= set(range(19)) | {255}
    assert sample["instance"].max() > 0
    (tmp_path / label.name).unlink()
    (tmp_path / f"{key}_gtFine_instanceIds.png").unlink()
    with pytest.raises(ConfigError, match="no .*_gtFine_labelIds.png"):
        CityscapesSourceDataset(tmp_path)


def test_procedural_source_spreads_frames_over_extra_worlds() -> None:
    """Frames 0-3 (one per hour) come from world 5, frames 4-7 from world 9, then world 5 again: each the frame the
    one-world dataset of that world gives at the same index; and the worlds differ (the negative control)."""
    many = ProceduralSourceDataset(12, 96, 64, 5, extra_seeds=(9,))
    world5, world9 = ProceduralSourceDataset(12, 96, 64, 5), ProceduralSourceDataset(12, 96, 64, 9)
    for index, alone in ((0, world5), (3, world5), (4, world9), (7, world9), (8, world5), (11, world5)):
        for key in ("rgb", "semantic", "instance"):
            assert torch.equal(many[index][key], alone[index][key]), (index, key)
    assert not torch.equal(world5[4]["rgb"], world9[4]["rgb"])
    with pytest.raises(ConfigError, match="extra_sim_seeds"):
        SourceDataConfig(sim_seed=5, extra_sim_seeds=(9, 5))
    with pytest.raises(ConfigError, match="validation world 1005"):
        SourceDataConfig(sim_seed=5, extra_sim_seeds=(1005,))


def test_paired_transform_keeps_labels_aligned_and_exact() -> None:
    rng = np.random.default_rng(0)
    h, w = 40, 60
    ids = np.arange(h * w, dtype=np.int64).reshape(h, w)
    rgb = np.stack([ids % 256, ids // 256, np.zeros_like(ids)], -1).astype(np.uint8)
    semantic = (ids % 19).astype(np.uint8)
    instance = ids.astype(np.uint16)
    t = PairedTransform(crop=(16, 24), hflip=1.0)
    out_rgb, (out_sem, out_inst) = t(rgb, [semantic, instance], rng, [255, 0])
    assert out_rgb.shape == (16, 24, 3) and out_sem.shape == out_inst.shape == (16, 24)
    # every output pixel's RGB still encodes the same source pixel as its instance label
    decoded = out_rgb[..., 0].astype(np.int64) + 256 * out_rgb[..., 1].astype(np.int64)
    assert (decoded == out_inst).all() and (out_sem == out_inst % 19).all()
    # resizing never invents label values
    t2 = PairedTransform(resize_short=17, scale_range=(0.8, 1.3), hflip=0.0)
    _, (sem2, inst2) = t2(rgb, [semantic, instance], rng)
    assert set(np.unique(sem2)) <= set(np.unique(semantic))
    assert set(np.unique(inst2)) <= set(np.unique(instance))
    with pytest.raises(ConfigError, match="hflip"):
        PairedTransform(hflip=2.0)


def test_carla_bag_trains_directly_through_the_adapter(tmp_path: Path, shared_data: Path) -> None:
    """A bag in CARLA's native encodings (bgra8 RGB, tag semantic, bgra8 instance camera) decodes canonically."""
    import cv2

    from sim2real.data.datasets import adapter_label_decoder

    stem = sorted((shared_data / "carla").glob("*_img.png"))[0].name.removesuffix("_img.png")
    rgb = cv2.imread(str(shared_data / "carla" / f"{stem}_img.png"), cv2.IMREAD_COLOR)[::8, ::8]
    tags = cv2.imread(str(shared_data / "carla" / f"{stem}_labelIds.png"), cv2.IMREAD_UNCHANGED)[::8, ::8]
    inst = cv2.imread(str(shared_data / "carla" / f"{stem}_instance.png"), cv2.IMREAD_COLOR)[::8, ::8]
    bgra = lambda a: cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_BGR2BGRA)  # noqa: E731
    topics = SourceTopics("/carla/hero/rgb/image", "/carla/hero/semantic/image", "/carla/hero/instance/image")
    header = Header(stamp=Time(sec=5, nanosec=0), frame_id="hero")
    with Writer(tmp_path / "carla", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic, array, enc in ((topics.image, bgra(rgb), "bgra8"), (topics.semantic, tags, "mono8"),
                                  (topics.instance, bgra(inst), "bgra8")):
            conn = writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=TS)
            msg = Image(header=header, **image_fields(np.ascontiguousarray(array), enc, data_type="numpy"))
            writer.write(conn, 5 * 10**9, TS.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    [sample] = list(BagSourceDataset([tmp_path / "carla"], topics, label_decoder=adapter_label_decoder("carla")))
    semantic, instance = sample["semantic"], sample["instance"]
    assert set(torch.unique(semantic).tolist()) <= set(range(19)) | {255}
    car = semantic == 13
    assert car.any() and (instance[car] > 0).float().mean() > 0.9, "car pixels must carry instance ids"
    assert (instance[semantic == 10] == 0).all(), "sky has no instance id"
    expected_rgb = torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(sample["rgb"], expected_rgb)
