"""record_node as a real process against SIGKILL and a full disk, and the repair of what it leaves.

Guarantees (docs/RELIABILITY.md, "Recordings and bag tools"):

* a recording killed with SIGKILL is a readable bag, without any repair, holding every message received more
  than ``split_seconds`` + 1 s before the kill, and its metadata.yaml claims exactly what its files hold;
  ``sim2real-bag-repair`` then keeps all of that (and salvages what it can of the unfinished split);
* a storage failure (a file past RLIMIT_FSIZE: EFBIG; a full tmpfs: ENOSPC) stops the node by itself with exit
  status 1 and a FATAL line naming the bag and the cause; metadata.yaml lists only closed splits whose messages
  all read back; the stats file reports what is in the bag and what was lost.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from disk_faults import file_size_limit, full_disk_available, full_disk_command

from ros_testing import isolated_env, python_cmd

sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_scripts"))
from frame_driver import FrameDriver, stamp_ns

from sim2real.io.bag_reader import BagReader

TOPICS = ("image", "semantic", "camera_info")
SPLIT_S = 1.0
#: a split is closed split_seconds after its first message; closing takes milliseconds, allow 1 s under load
BOUND_S = SPLIT_S + 1.0


def record_cmd(bag: Path, storage: str, *extra: str) -> list[str]:
    topics = ("['/translated/image:sensor_msgs/msg/Image', '/translated/semantic:sensor_msgs/msg/Image', "
              "'/translated/camera_info:sensor_msgs/msg/CameraInfo']")
    return python_cmd("-m", "sim2real.nodes.record_node", "--ros-args", "-p", f"output:={bag}",
                      "-p", f"topics:={topics}", "-p", f"storage:={storage}", *extra)


def readable(bag: Path) -> tuple[Counter[str], int, list[int]]:
    """(messages read per topic, message count metadata.yaml claims, image header stamps read)."""
    counts: Counter[str] = Counter()
    with BagReader(bag) as reader:
        claimed = reader.message_count
        for conn, _, _ in reader.raw_messages():
            counts[conn.topic] += 1
        stamps = [m.stamp_ns for m in reader.messages(["/translated/image"])]
    return counts, claimed, stamps


def publish(driver: FrameDriver, seconds: float, h: int, w: int, proc: subprocess.Popen) -> dict[int, float]:
    """Publish frames at ~20 Hz for ``seconds`` (or until ``proc`` exits); frame index -> monotonic publish time."""
    sent: dict[int, float] = {}
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds and proc.poll() is None:
        driver.send(i, h, w, only=TOPICS)
        sent[i] = time.monotonic()
        i += 1
        driver.spin_for(0.05)
    return sent


def start(cmd: list[str], env: dict[str, str], log: Path, **popen: object) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, **popen)  # type: ignore[call-overload]


@pytest.mark.ros
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_sigkill_leaves_a_readable_bag_with_every_frame_older_than_the_bound(
        tmp_path: Path, ros_context, storage: str) -> None:
    env = isolated_env(tmp_path / "ros_home", domain_id=ros_context.get_domain_id())
    bag, log = tmp_path / "bag", tmp_path / "record.log"
    driver = FrameDriver(ros_context, in_prefix="/translated", out_prefix="/unused")
    proc = start(record_cmd(bag, storage, "-p", f"split_seconds:={SPLIT_S}"), env, log)
    try:
        driver.wait_for_node(labels=("semantic", "camera_info"), outputs=False, proc=proc)
        sent = publish(driver, 6.0, 48, 64, proc)
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        driver.close()
    assert len(sent) > 60, log.read_text()
    counts, claimed, stamps = readable(bag)  # no repair: the killed recording reads as it is
    assert claimed == sum(counts.values()), "metadata.yaml claims messages its files do not hold"
    must_have = {stamp_ns(i) for i, t in sent.items() if t < killed_at - BOUND_S}
    assert len(must_have) >= len(sent) - 3 * 20 and must_have, (len(must_have), len(sent))
    missing = must_have - set(stamps)
    assert not missing, f"{len(missing)} frames older than {BOUND_S} s lost: {sorted(missing)[:5]}..."
    assert len(set(stamps)) == len(stamps), "a frame was recorded twice"

    repair = subprocess.run(python_cmd("-m", "sim2real.apps.bag_repair", str(bag)), capture_output=True, text=True,
                            timeout=120)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    after, claimed_after, stamps_after = readable(bag)
    assert claimed_after == sum(after.values()) and set(stamps) <= set(stamps_after)
    assert not [p for p in bag.iterdir() if p.is_dir()], "the unfinished split is still there after the repair"


def _fatal_exit(proc: subprocess.Popen, log: Path, driver: FrameDriver, h: int, w: int) -> int:
    """Publish until the node stops by itself; its exit status."""
    publish(driver, 60.0, h, w, proc)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"record_node did not stop after the write failure:\n{log.read_text()[-3000:]}")


@pytest.mark.ros
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_file_past_its_size_limit_stops_the_node_with_status_1_and_claims_nothing(
        tmp_path: Path, ros_context, storage: str) -> None:
    """RLIMIT_FSIZE = 3 MiB, one long split: the write that grows the split past 3 MiB fails with EFBIG."""
    env = isolated_env(tmp_path / "ros_home", domain_id=ros_context.get_domain_id())
    bag, log, stats = tmp_path / "bag", tmp_path / "record.log", tmp_path / "stats.json"
    driver = FrameDriver(ros_context, in_prefix="/translated", out_prefix="/unused")
    proc = start(record_cmd(bag, storage, "-p", "split_seconds:=3600.0", "-p", f"stats_file:={stats}"), env, log,
                 preexec_fn=file_size_limit(3 << 20))
    try:
        driver.wait_for_node(labels=("semantic", "camera_info"), outputs=False, proc=proc)
        status = _fatal_exit(proc, log, driver, 240, 320)
    finally:
        if proc.poll() is None:
            proc.kill()
        driver.close()
    text = log.read_text()
    assert status == 1, text[-3000:]
    fatal = [line for line in text.splitlines() if "FATAL" in line]
    assert fatal and str(bag) in fatal[0] and "failed" in fatal[0], text[-3000:]
    assert "File too large" in fatal[0] or "disk I/O error" in fatal[0] or "full" in fatal[0], fatal[0]
    assert "Traceback" not in text
    assert not (bag / "metadata.yaml").exists(), "no split was closed: nothing may be claimed"
    summary = json.loads(stats.read_text())
    assert summary["failure"] and summary["counts"] == {f"/translated/{t}": 0 for t in TOPICS}
    assert sum(summary["lost"].values()) == sum(summary["received"].values()) > 0


@pytest.mark.ros
@pytest.mark.skipif(not full_disk_available(), reason="no unprivileged user namespaces: cannot mount a tmpfs")
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_full_disk_stops_the_node_and_keeps_the_closed_splits(tmp_path: Path, ros_context, storage: str) -> None:
    """A 4 MiB tmpfs fills up after a few 1 s splits: ENOSPC; the closed splits stay listed and readable."""
    env = isolated_env(tmp_path / "ros_home", domain_id=ros_context.get_domain_id())
    disk, keep, log, stats = tmp_path / "disk", tmp_path / "kept", tmp_path / "record.log", tmp_path / "stats.json"
    disk.mkdir()
    cmd = full_disk_command(record_cmd(disk / "bag", storage, "-p", f"split_seconds:={SPLIT_S}",
                                       "-p", f"stats_file:={stats}"), disk, keep)
    driver = FrameDriver(ros_context, in_prefix="/translated", out_prefix="/unused")
    proc = start(cmd, env, log)
    try:
        driver.wait_for_node(labels=("semantic", "camera_info"), outputs=False, proc=proc)
        status = _fatal_exit(proc, log, driver, 120, 160)
    finally:
        if proc.poll() is None:
            proc.kill()
        driver.close()
    text = log.read_text()
    assert status == 1, text[-3000:]
    fatal = [line for line in text.splitlines() if "FATAL" in line]
    assert fatal and ("No space left on device" in fatal[0] or "full" in fatal[0]), text[-3000:]
    assert "Traceback" not in text
    summary = json.loads(stats.read_text())
    counts, claimed, _ = readable(keep / "bag")
    assert claimed == sum(counts.values()) > 0, "the closed splits must stay listed and readable"
    assert dict(counts) == {t: n for t, n in summary["counts"].items() if n}
    assert sum(summary["lost"].values()) > 0
