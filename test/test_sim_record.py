"""``sim2real-sim record`` writes rosbag2 recordings that read back exactly (rosbags AnyReader)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from sim2real.core.errors import BagError
from sim2real.io.bag_writer import BagWriter
from sim2real.io.conversions import image_to_array
from sim_bridge.procedural import ProceduralSimulator, SimConfig
from sim_bridge.record_cli import main

N = 5


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_reads_back(tmp_path: Path, storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bag"
    rc = main(["record", "--frames", str(N), "--out", str(out), "--storage", storage, "--width", "161",
               "--height", "91", "--seed", "4", "--rate", "20", "--namespace", "/test/cam", "--start", "7"])
    assert rc == 0
    assert "wrote 5 frames" in capsys.readouterr().out
    from sim2real.io.bag_reader import WORLD_SEED_KEY, bag_custom_data
    assert bag_custom_data(out) == {WORLD_SEED_KEY: "4"}  # which world it shows, for evaluation's disjointness check
    sim = ProceduralSimulator(SimConfig(width=161, height=91, seed=4, rate_hz=20.0))
    topics = {"/test/cam/image": "sensor_msgs/msg/Image", "/test/cam/semantic": "sensor_msgs/msg/Image",
              "/test/cam/instance": "sensor_msgs/msg/Image", "/test/cam/camera_info": "sensor_msgs/msg/CameraInfo"}
    by_stamp: dict[int, dict[str, object]] = {}
    with AnyReader([out], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == topics
        assert all(c.msgcount == N for c in reader.connections)
        for conn, timestamp, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            assert stamp == timestamp, "bag time must equal the header stamp"
            assert msg.header.frame_id == "sim_camera"
            by_stamp.setdefault(stamp, {})[conn.topic] = msg
    assert sorted(by_stamp) == [i * 50_000_000 for i in range(7, 7 + N)]
    for stamp, msgs in by_stamp.items():
        assert set(msgs) == set(topics)
        frame = sim.frame(sim.config.index_of(stamp))
        image, semantic, instance, info = (msgs[t] for t in topics)
        assert image.encoding == "rgb8" and semantic.encoding == "mono8" and instance.encoding == "16UC1"
        assert np.array_equal(image_to_array(image), frame.rgb)
        assert np.array_equal(image_to_array(semantic), frame.semantic)
        assert np.array_equal(image_to_array(instance), frame.instance)
        assert (info.width, info.height, info.distortion_model) == (161, 91, "plumb_bob")
        np.testing.assert_array_equal(info.k.reshape(3, 3), frame.K)
        np.testing.assert_array_equal(info.p.reshape(3, 4)[:, :3], frame.K)
        np.testing.assert_array_equal(info.d, np.zeros(5))


def test_record_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exists"
    out.mkdir()
    assert main(["record", "--frames", "1", "--out", str(out), "--width", "32", "--height", "18"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert list(out.iterdir()) == []
    with pytest.raises(BagError, match="overwrite"):
        BagWriter(out).open()


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "--frames", "1", "--out", str(tmp_path / "a"), "--width", "3"]) == 2
    assert "width" in capsys.readouterr().err
    assert main(["record", "--frames", "1", "--out", str(tmp_path / "b"), "--namespace", "bad ns"]) == 2
    assert "namespace" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["record", "--frames", "1", "--out", str(tmp_path / "c"), "--storage", "rosbag1"])
    with pytest.raises(BagError, match="storage"):
        BagWriter(tmp_path / "d", storage="bag")


def test_no_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "record" in capsys.readouterr().out


def test_write_raw_copies_messages(tmp_path: Path) -> None:
    store = get_typestore(Stores.ROS2_KILTED)
    string = store.types["std_msgs/msg/String"](data="hello")
    raw = store.serialize_cdr(string, "std_msgs/msg/String")
    with BagWriter(tmp_path / "raw", storage="sqlite3") as bag:
        bag.write_raw("/chatter", "std_msgs/msg/String", raw, 123)
        with pytest.raises(BagError, match="was written as"):
            bag.write_raw("/chatter", "std_msgs/msg/Int32", raw, 124)
    with AnyReader([tmp_path / "raw"], default_typestore=store) as reader:
        (conn, timestamp, data), = list(reader.messages())
        assert timestamp == 123 and reader.deserialize(data, conn.msgtype).data == "hello"
