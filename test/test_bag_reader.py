"""The bag reader against every real rosbag2 fixture in ../shared/data/bags and crafted broken bags."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sim2real.core.errors import BagError
from sim2real.io.bag_reader import BagReader, decode_image


def bag_candidates(root: Path) -> list[Path]:
    """Every bag-like path: directories with metadata.yaml, lone storage files, and dirs of storage files."""
    found = set()
    for p in root.rglob("*"):
        is_bag_dir = p.is_dir() and (p / "metadata.yaml").is_file()
        is_lone_file = p.suffix in (".db3", ".mcap") and not (p.parent / "metadata.yaml").is_file()
        if is_bag_dir or is_lone_file:
            found.add(p)
        elif p.is_dir() and not any(c.is_dir() for c in p.iterdir()) and not (p / "metadata.yaml").exists():
            found.add(p)  # e.g. empty_dir, reindex_test_bags/multiple_files
    return sorted(found)


# Bags the reader is expected to refuse, with a word the error must contain.
REFUSED = {
    "wrong_rmw_test": "wrong_format",
    "empty_dir": "no metadata.yaml",
    "multiple_files": "reindex",
    "bags": "open one directly",  # rosbag2_cpp_resources/bags: a folder of lone storage files
}


def test_every_shared_bag_opens_or_is_refused_clearly(shared_data: Path) -> None:
    bags = bag_candidates(shared_data / "bags")
    assert len(bags) >= 20
    opened = 0
    for path in bags:
        expect_refusal = REFUSED.get(path.name)
        if expect_refusal:
            with pytest.raises(BagError, match=expect_refusal) as info:
                BagReader(path).open()
            assert str(path) in str(info.value), "the error must name the bag"
            continue
        with BagReader(path) as bag:
            topics = bag.topics
            assert topics, f"{path}: no topics"
            for info in topics.values():
                assert info.msgtype.count("/") == 2
            assert bag.message_count == sum(t.count for t in topics.values())
            opened += 1
    print(f"\nopened {opened} bags, refused {len(bags) - opened} with clear errors")


def test_image_bag_decodes(shared_data: Path) -> None:
    with BagReader(shared_data / "bags/ros2bag_tools_test/images.bag") as bag:
        assert bag.topics["/image"].msgtype == "sensor_msgs/msg/Image"
        msgs = list(bag.messages(["/image"]))
    assert len(msgs) == 3
    for m in msgs:
        img = decode_image("sensor_msgs/msg/Image", m.msg)
        assert img.shape == (2, 2) and img.dtype == np.uint8
        assert m.msg.encoding == "mono8"
        assert m.stamp_ns >= 0


def test_nonstandard_types_deserialise_from_definitions_in_the_bag(shared_data: Path) -> None:
    with BagReader(shared_data / "bags/rosbag2_tests_resources/mcap/cdr_test") as bag:
        msgs = list(bag.messages(["/test_topic"]))
    assert len(msgs) == 3
    assert all(hasattr(m.msg, "int32_value") for m in msgs)


def test_split_bag_reads_all_files(shared_data: Path) -> None:
    with BagReader(shared_data / "bags/rosbag2_py_resources/mcap/wbag") as bag:
        stated = bag.topics["HHH"].count
        read = sum(1 for _ in bag.messages(["HHH"]))
    assert read == stated == 726


def test_missing_topic_lists_the_topics_that_exist(shared_data: Path) -> None:
    with BagReader(shared_data / "bags/ros2bag_tools_test/images.bag") as bag:
        with pytest.raises(BagError, match=r"'/camera/image'.*topics there: /image \[sensor_msgs/msg/Image\]"):
            list(bag.messages(["/camera/image"]))
        with pytest.raises(BagError, match="has type sensor_msgs/msg/Image, expected"):
            bag.require_topics(["/image"], ["sensor_msgs/msg/CompressedImage"])


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(BagError, match=r"bag not found: .*nowhere"):
        BagReader(tmp_path / "nowhere").open()


def test_corrupt_storage_file_is_named(shared_data: Path, tmp_path: Path) -> None:
    bag = tmp_path / "broken"
    shutil.copytree(shared_data / "bags/rosbag2_py_resources/mcap/talker", bag)
    storage = bag / "talker.mcap"
    storage.chmod(0o644)
    storage.write_bytes(storage.read_bytes()[:200] + b"\x00garbage" * 50)
    with pytest.raises(BagError, match="broken"):
        with BagReader(bag) as reader:
            list(reader.raw_messages())


def test_truncated_sqlite_is_named(shared_data: Path, tmp_path: Path) -> None:
    bag = tmp_path / "cut"
    shutil.copytree(shared_data / "bags/ros2bag_tools_test/images.bag", bag)
    storage = bag / "images.bag_0.db3"
    storage.chmod(0o644)
    storage.write_bytes(storage.read_bytes()[:1000])
    with pytest.raises(BagError, match="cut"):
        with BagReader(bag) as reader:
            list(reader.messages(["/image"]))


def test_reader_requires_open(shared_data: Path) -> None:
    with pytest.raises(BagError, match="not open"):
        _ = BagReader(shared_data / "bags/ros2bag_tools_test/images.bag").topics
