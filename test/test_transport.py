"""Two real processes exchanging sensor_msgs/Image through rclpy and the project's Fast DDS profile."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from ros_testing import isolated_env, python_cmd, running

sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_scripts"))
from patterns import PATTERN_ENCODINGS, pattern_frame

pytestmark = pytest.mark.ros

SCRIPTS = Path(__file__).resolve().parent / "ros_scripts"
PROFILE = Path(__file__).resolve().parents[1] / "config" / "fastdds.xml"


def transport_env(tmp_path: Path, profile: Path | None) -> dict[str, str]:
    env = isolated_env(tmp_path / "ros_home")
    for var in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(var, None)
    if profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    return env


def exchange(tmp_path: Path, env: dict[str, str], *, count: int, width: int, height: int, encoding: str,
             rate: float, reliable: bool = False, tag: str = "run") -> list[dict]:
    """Run subscriber + publisher processes; return the subscriber's records (publisher must exit 0)."""
    out = tmp_path / f"{tag}.json"
    qos = ["--reliable"] if reliable else []
    sub_cmd = python_cmd(str(SCRIPTS / "pattern_subscriber.py"), "--count", str(count), "--out", str(out), *qos)
    pub_cmd = python_cmd(
        str(SCRIPTS / "pattern_publisher.py"), "--count", str(count), "--width", str(width), "--height",
        str(height), "--encoding", encoding, "--rate", str(rate), "--frame-id", f"cam_{encoding}", *qos,
    )
    with running(sub_cmd, env, tmp_path / f"{tag}_sub.log") as sub:
        with running(pub_cmd, env, tmp_path / f"{tag}_pub.log") as pub:
            assert pub.wait(timeout=60) == 0, (tmp_path / f"{tag}_pub.log").read_text()
        assert sub.wait(timeout=60) == 0, (tmp_path / f"{tag}_sub.log").read_text()
    return json.loads(out.read_text())["records"]


def expected_sha(i: int, height: int, width: int, encoding: str) -> str:
    return hashlib.sha256(pattern_frame(0, i, height, width, encoding).tobytes()).hexdigest()


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "32FC1"])
def test_image_pixels_encoding_frame_id_and_stamp_survive_two_processes(tmp_path: Path, encoding: str) -> None:
    height, width, count = 37, 53, 5
    records = exchange(tmp_path, transport_env(tmp_path, PROFILE), count=count, width=width, height=height,
                       encoding=encoding, rate=20.0, reliable=True)
    assert [r["index"] for r in records] == list(range(count)), "reliable QoS must deliver every frame in order"
    dtype, channels = PATTERN_ENCODINGS[encoding]
    for r in records:
        i = r["index"]
        assert (r["sec"], r["nanosec"]) == (1000 + i, 7 * i)
        assert r["frame_id"] == f"cam_{encoding}"
        assert r["encoding"] == encoding
        assert r["shape"] == ([height, width] if channels == 1 else [height, width, channels])
        assert r["dtype"] == str(dtype(0).dtype)
        assert r["sha256"] == expected_sha(i, height, width, encoding), f"pixels of frame {i} differ"


def delivery(records: list[dict], count: int, height: int, width: int) -> float:
    """Share of the ``count`` sent frames that arrived with identical pixels."""
    good = {r["index"] for r in records if r["sha256"] == expected_sha(r["index"], height, width, "rgb8")}
    return len(good) / count


def test_720p_best_effort_delivery_with_project_profile(tmp_path: Path) -> None:
    """1280x720 rgb8 at 30 Hz for 2 s, sensor-data QoS: >= 90 % of frames arrive bit-exact."""
    count, height, width = 60, 720, 1280
    records = exchange(tmp_path, transport_env(tmp_path, PROFILE), count=count, width=width, height=height,
                       encoding="rgb8", rate=30.0, tag="profile")
    ratio = delivery(records, count, height, width)
    print(f"\n720p rgb8 30 Hz best-effort with config/fastdds.xml: {ratio:.0%} of {count} frames bit-exact")
    assert ratio >= 0.9


@pytest.mark.skipif(os.environ.get("ROS_DISTRO") is not None, reason="a sourced ROS distro may configure DDS")
def test_720p_best_effort_delivery_without_profile_is_lossy(tmp_path: Path) -> None:
    """The reason config/fastdds.xml exists: Fast DDS defaults (512 KB SHM segment) drop 720p frames."""
    count, height, width = 60, 720, 1280
    records = exchange(tmp_path, transport_env(tmp_path, None), count=count, width=width, height=height,
                       encoding="rgb8", rate=30.0, tag="default")
    ratio = delivery(records, count, height, width)
    print(f"\n720p rgb8 30 Hz best-effort with Fast DDS defaults: {ratio:.0%} of {count} frames bit-exact")
    # how much the defaults lose depends on the machine's load (measured 0-50 %); what must hold is that they
    # miss the bar config/fastdds.xml clears (>= 90 %, test above)
    assert ratio < 0.8
