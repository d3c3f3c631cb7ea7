"""translate_node (a real process) when the input stamps jump (#17, finding 2): a simulator clock reset
(152 s -> 1 s) or one frame set stamped near 2^31 s used to make every later set unmatched / stale until the
node was restarted. Now the jump is logged once, counted in /diagnostics, the synchroniser resets and the node
keeps translating. Before that, the messages left without partners at start-up are counted as
``unmatched_at_start`` and reported at INFO once (then DEBUG), not warned about as bad messages (#15)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from ros_testing import node_env, python_cmd, running

sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_scripts"))
from frame_driver import driver_on, make_checkpoint

H, W = 48, 64
S = 1_000_000_000


@pytest.mark.ros
def test_clock_reset_and_absurd_future_stamp_do_not_stall_the_node(tmp_path: Path) -> None:
    model = make_checkpoint(tmp_path / "m.safetensors", seed=7)
    domain, env = node_env(tmp_path / "ros_home")
    log, stats_file = tmp_path / "node.log", tmp_path / "stats.json"
    remaps = [a for n in ("image", "semantic", "instance", "camera_info") for a in ("-r", f"{n}:=/sim/camera/{n}")]
    cmd = python_cmd("-m", "sim2real.nodes.translate_node", "--ros-args", *remaps, "-p", f"model:={model}",
                     "-p", "device:=cpu", "-p", "precision:=fp32", "-p", f"warmup_width:={W}",
                     "-p", f"warmup_height:={H}", "-p", f"stats_file:={stats_file}", "-p", "diagnostics_period_s:=0.2")
    published: list[int] = []
    with driver_on(domain) as driver, running(cmd, env, log) as proc:

        def translated(k: int, stamp: tuple[int, int], timeout: float = 30.0) -> bool:
            """Send frame k with ``stamp``; whether its translation came back within ``timeout``."""
            want = stamp[0] * S + stamp[1]
            driver.send(k, H, W, stamp=stamp)
            ok = driver.spin_until(lambda: want in driver.received_stamps(), timeout)
            if ok:
                published.append(want)
            return ok

        driver.wait_for_node(proc=proc)
        # start-up: two images whose partners never come, then complete sets: counted unmatched_at_start, no WARN
        for k, sec in enumerate((140, 141)):
            driver.send(40 + k, H, W, stamp=(sec, 0), only=("image",))
        driver.spin_for(0.3)
        for k, sec in enumerate((150, 151, 152)):
            assert translated(k, (sec, 0)), log.read_text()[-3000:]
        # the simulator restarts: stamps from 1 s again; the 3rd older image in a row confirms the jump
        new_line = [(1, k * 33_000_000) for k in range(8)]
        for k, stamp in enumerate(new_line[:3]):
            translated(10 + k, stamp, timeout=1.0)
        for k, stamp in enumerate(new_line[3:], start=3):
            assert translated(10 + k, stamp), f"frame at {stamp} not translated after the clock reset\n" + \
                log.read_text()[-3000:]
        # one frame set stamped near 2^31 s (the largest builtin_interfaces/Time sec): translated as stamped
        assert translated(30, (2**31 - 1, 0)), log.read_text()[-3000:]
        for k in range(3):
            translated(31 + k, (2, k * 33_000_000), timeout=1.0)
        assert translated(34, (2, 4 * 33_000_000)), "normal stamps after the absurd one are not translated"
        counts = driver.diagnostic_values
        assert driver.spin_until(lambda: counts().get("count.time_jump_backward") == "2", 10.0), counts()
        assert counts().get("count.time_jump_forward") == "1"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    text = log.read_text()
    jumps = [line for line in text.splitlines() if "time jump on /sim/camera/image" in line]
    assert len(jumps) == 3, jumps  # backward (reset), forward (2^31 s), backward: one line each
    assert "stamps went backward from 152.000000000 s to 1.066000000 s" in jumps[0]
    stats = json.loads(stats_file.read_text())
    assert stats["accounted"] and stats["counters"]["time_jump_backward"] == 2
    assert stats["drops"]["unmatched_at_start"] == 2, stats["drops"]
    start_up = [line for line in text.splitlines() if "unmatched_at_start:" in line]
    assert len(start_up) == 1 and "[INFO]" in start_up[0], start_up  # the second one at DEBUG
    lines = text.splitlines()
    before_jump = lines[: next(k for k, line in enumerate(lines) if "(stamp 1.000000000)" in line)]
    assert not [line for line in before_jump if "[WARN]" in line or "[ERROR]" in line], before_jump  # start-up
    assert (2**31 - 1) * S in published and published[-1] == 2 * S + 4 * 33_000_000
