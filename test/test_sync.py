"""Unit tests of sim2real.io.sync (stamp synchroniser, keep-latest slot) and sim2real.runtime.node_stats.
(known answers)
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from sim2real.io.sync import KeyedLatestSlots, LatestSlot, StampSynchronizer, stamp_to_ns
from sim2real.runtime.node_stats import (
    DIAG_ERROR,
    DIAG_OK,
    DIAG_WARN,
    LatencyWindow,
    LogRateLimiter,
    NodeStats,
    build_diagnostic_status,
    percentile,
    summary_line,
)

TOPICS = ["image", "semantic", "instance"]


def make_sync(**kw):
    dropped: list[tuple[str, str, object]] = []
    sync = StampSynchronizer(TOPICS, on_drop=lambda t, r, i: dropped.append((t, r, i)), **kw)
    return sync, dropped


def test_exact_match_emits_complete_set_in_any_arrival_order() -> None:
    sync, dropped = make_sync()
    assert sync.add("semantic", 100, "s100") == []
    assert sync.add("image", 100, "i100") == []
    sets = sync.add("instance", 100, "n100")
    assert len(sets) == 1
    assert sets[0].stamp_ns == 100
    assert dict(sets[0].items) == {"image": "i100", "semantic": "s100", "instance": "n100"}
    assert sync.pending() == 0 and dropped == []


def test_exact_match_does_not_pair_different_stamps() -> None:
    sync, _ = make_sync()
    sync.add("image", 100, "i100")
    sync.add("semantic", 101, "s101")
    assert sync.add("instance", 100, "n100") == []
    assert sync.pending() == 3


def test_older_incomplete_sets_are_dropped_unmatched_when_a_newer_set_completes() -> None:
    sync, dropped = make_sync()
    sync.add("image", 1, "i1")
    sync.add("semantic", 1, "s1")  # instance 1 never arrives
    sync.add("image", 2, "i2")
    sync.add("semantic", 2, "s2")
    sets = sync.add("instance", 2, "n2")
    assert [s.stamp_ns for s in sets] == [2]
    assert sorted(dropped) == [("image", "unmatched", "i1"), ("semantic", "unmatched", "s1")]
    assert sync.drops == {("image", "unmatched"): 1, ("semantic", "unmatched"): 1}
    # a late label for stamp 1 can never complete a set either
    assert sync.add("instance", 1, "n1") == []
    assert dropped[-1] == ("instance", "unmatched", "n1")
    assert sync.pending() == 0


def test_sets_come_out_in_stamp_order() -> None:
    sync, _ = make_sync()
    out = []
    for stamp in (1, 2, 3, 4):
        out += sync.add("image", stamp, f"i{stamp}")
        out += sync.add("semantic", stamp, f"s{stamp}")
    for stamp in (1, 3, 2, 4):  # instance 2 arrives after 3 completed: 2 is unmatched
        out += sync.add("instance", stamp, f"n{stamp}")
    assert [s.stamp_ns for s in out] == [1, 3, 4]
    assert sync.drops[("image", "unmatched")] == 1
    assert sync.drops[("instance", "unmatched")] == 1


def test_bounded_queue_drops_oldest_with_reason_sync_overflow() -> None:
    sync, dropped = make_sync(queue_size=2)
    for stamp in (10, 20, 30):
        sync.add("image", stamp, f"i{stamp}")
    assert dropped == [("image", "sync_overflow", "i10")]
    assert sync.pending("image") == 2


def test_duplicate_stamp_replaces_queued_item() -> None:
    sync, dropped = make_sync()
    sync.add("image", 5, "first")
    sync.add("image", 5, "second")
    sync.add("semantic", 5, "s")
    (matched,) = sync.add("instance", 5, "n")
    assert matched.items["image"] == "second"
    assert dropped == [("image", "duplicate_stamp", "first")]


def test_approximate_match_within_slop_takes_closest() -> None:
    sync, dropped = make_sync(slop=0.010)  # 10 ms
    sync.add("semantic", 1_000_000_000 - 8_000_000, "s_early")
    sync.add("semantic", 1_000_000_000 + 3_000_000, "s_close")
    sync.add("instance", 1_000_000_000 + 20_000_000, "n_far")  # outside slop
    assert sync.add("image", 1_000_000_000, "img") == []
    (matched,) = sync.add("instance", 1_000_000_000 + 9_000_000, "n_in")
    assert matched.stamp_ns == 1_000_000_000
    assert dict(matched.items) == {"image": "img", "semantic": "s_close", "instance": "n_in"}
    assert ("semantic", "unmatched", "s_early") in dropped
    assert sync.pending("instance") == 1  # n_far is newer: it stays


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="at least one"):
        StampSynchronizer([])
    with pytest.raises(ValueError, match="distinct"):
        StampSynchronizer(["a", "a"])
    with pytest.raises(ValueError, match="slop"):
        StampSynchronizer(["a"], slop=-1)
    with pytest.raises(KeyError, match="unknown topic"):
        StampSynchronizer(["a"]).add("b", 1, None)


def test_stamp_to_ns() -> None:
    assert stamp_to_ns(SimpleNamespace(sec=12, nanosec=34)) == 12_000_000_034


def test_latest_slot_put_returns_superseded_and_take_gets_newest() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1
    assert slot.put(3) == 2
    assert len(slot) == 1
    assert slot.take(timeout=0) == 3
    assert slot.take(timeout=0.01) is None


def test_latest_slot_wakes_a_blocked_worker_and_close_ends_it() -> None:
    slot: LatestSlot[str] = LatestSlot()
    got: list[str | None] = []

    def worker() -> None:
        while (item := slot.take()) is not None:
            got.append(item)

    thread = threading.Thread(target=worker)
    thread.start()
    slot.put("a")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.005)
    assert slot.close() is None
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert got == ["a"]
    assert slot.put("late") == "late"  # refused after close


def test_keyed_latest_slots_keep_the_newest_per_key_and_hand_over_all() -> None:
    slots: KeyedLatestSlots[str, int] = KeyedLatestSlots()
    assert slots.put("front", 1) is None
    assert slots.put("left", 10) is None
    assert slots.put("front", 2) == 1
    assert len(slots) == 2
    assert slots.take_all(timeout=0) == {"front": 2, "left": 10}
    assert slots.take_all(timeout=0.01) == {}
    slots.put("left", 11)
    assert slots.close() == {"left": 11}
    assert slots.put("front", 3) == 3 and slots.take_all() == {}


def test_keyed_latest_slots_wake_a_blocked_worker() -> None:
    slots: KeyedLatestSlots[str, str] = KeyedLatestSlots()
    got: list[dict[str, str]] = []

    def worker() -> None:
        while batch := slots.take_all():
            got.append(batch)

    thread = threading.Thread(target=worker)
    thread.start()
    slots.put("a", "x")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.005)
    slots.close()
    thread.join(timeout=5)
    assert not thread.is_alive() and got == [{"a": "x"}]


def test_percentile_known_answers() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0], 95) == 4.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert percentile([3, 1, 2], 0) == 1 and percentile([3, 1, 2], 100) == 3
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_latency_window_keeps_last_samples() -> None:
    win = LatencyWindow(size=3)
    for v in (100.0, 1.0, 2.0, 3.0):
        win.add(v)
    assert win.count == 4
    assert win.summary() == {"p50": 2.0, "p95": pytest.approx(2.9), "max": 3.0}


def test_log_rate_limiter_counts_suppressed_messages() -> None:
    now = [0.0]
    limiter = LogRateLimiter(period=2.0, clock=lambda: now[0])
    assert limiter.allow(("image", "encoding")) == (True, 0)
    assert limiter.allow(("image", "encoding")) == (False, 0)
    assert limiter.allow(("semantic", "encoding")) == (True, 0)  # other key: independent
    now[0] = 1.0
    assert limiter.allow(("image", "encoding")) == (False, 0)
    now[0] = 2.5
    assert limiter.allow(("image", "encoding")) == (True, 2)


def test_node_stats_accounting_snapshot_and_diagnostics() -> None:
    stats = NodeStats(reference_topic="image")
    for _ in range(5):
        stats.message_in("image")
    stats.message_in("semantic")
    stats.frame_out()
    stats.frame_out()
    stats.drop("superseded", n=2)
    stats.drop("bad_message", topic="image")
    stats.drop("sync_overflow", topic="semantic")
    stats.bad_message("image", "encoding")
    stats.publish_error("translated/image")
    stats.count("batches", 2)
    stats.inference.add(0.010)
    stats.inference.add(0.030)
    stats.end_to_end.add(0.020)
    snap = stats.snapshot()
    assert snap["frames_in"] == 5 and snap["frames_out"] == 2
    assert snap["drops"] == {"bad_message": 1, "superseded": 2}
    assert snap["frames_in"] == snap["frames_out"] + snap["dropped_total"]
    assert snap["other_drops"] == {"semantic:sync_overflow": 1}
    assert snap["bad_messages"] == {"image:encoding": 1}
    assert snap["inference_ms"] == {"p50": 20.0, "p95": 29.0, "max": 30.0}
    assert snap["end_to_end_ms"]["p50"] == 20.0
    line = summary_line(snap, {"model": "lite"})
    assert "in=5 out=2 dropped=3 (bad_message=1, superseded=2)" in line
    assert "inference p50/p95=20.0/29.0 ms" in line and "model=lite" in line

    diag = build_diagnostic_status("translate_node", snap, hardware_id="cpu", info={"device": "cpu"})
    values = dict(diag.values)
    assert diag.level == DIAG_WARN and "1 bad messages" in diag.message
    assert values["frames_in"] == "5" and values["drop.superseded"] == "2"
    assert values["inference_ms.p95"] == "29.000" and values["device"] == "cpu"
    assert values["publish_error.translated/image"] == "1"
    assert values["count.batches"] == "2" and snap["counters"] == {"batches": 2}


def test_diagnostic_levels() -> None:
    stats = NodeStats()
    assert build_diagnostic_status("n", stats.snapshot()).level == DIAG_OK
    assert build_diagnostic_status("n", stats.snapshot(), warnings=["labels missing"]).message == "labels missing"
    stats.message_in("image")
    stats.drop("unmatched")
    diag = build_diagnostic_status("n", stats.snapshot())
    assert diag.level == DIAG_ERROR and diag.message.startswith("no frame translated yet")


# ------------------------------------------------------------------------------------------ time jumps (#17)

S = 1_000_000_000


def feed(sync: StampSynchronizer, stamp: int, tag: str = "") -> list:
    """One complete frame set (image first, as a camera driver publishes); the sets it completed."""
    out = []
    for topic in TOPICS:
        out += sync.add(topic, stamp, f"{topic}{tag}@{stamp}")
    return out


def test_without_jump_handling_a_clock_reset_stalls_for_good() -> None:
    sync, dropped = make_sync()
    for k in range(3):
        assert len(feed(sync, 150 * S + k * S)) == 1
    assert all(feed(sync, 1 * S + k * S // 30) == [] for k in range(30))  # the simulator restarted at 1 s
    assert {reason for _, reason, _ in dropped} == {"unmatched"}


def test_a_clock_reset_resets_the_synchroniser_after_jump_confirm_frames() -> None:
    jumps: list[tuple[str, int, int]] = []
    sync, dropped = make_sync(jump_threshold=1.0, jump_confirm=3, on_jump=lambda *a: jumps.append(a))
    for k in range(3):
        assert len(feed(sync, 150 * S + k * S)) == 1
    sync.add("semantic", 153 * S, "pending")  # queued when the clock jumps: dropped as time_jump
    emitted = [m.stamp_ns for k in range(10) for m in feed(sync, 1 * S + k * S // 30)]
    # frames 0 and 1 of the new time line are unmatched, frame 2 confirms the jump and is the first set
    assert emitted == [1 * S + k * S // 30 for k in range(2, 10)]
    assert jumps == [("backward", 152 * S, 1 * S + 2 * S // 30)]
    assert sync.jumps == {"backward": 1}
    assert ("semantic", "time_jump", "pending") in dropped
    assert sum(1 for _, r, _ in dropped if r == "unmatched") == 6  # frames 0, 1 on each of the three topics


def test_one_old_set_is_unmatched_not_a_time_jump() -> None:
    sync, dropped = make_sync(jump_threshold=1.0, jump_confirm=3)
    for k in (0, 1, 2):
        feed(sync, 150 * S + k * S)
    assert feed(sync, 130 * S) == []  # a stray old set (20 s late)
    assert [m.stamp_ns for m in feed(sync, 153 * S)] == [153 * S]
    assert feed(sync, 131 * S) == [] and feed(sync, 132 * S) == []  # not in a row: a new set came between
    assert sync.jumps == {} and {r for _, r, _ in dropped} == {"unmatched"}
    assert feed(sync, 153 * S - S // 2) == []  # within the threshold: late, never a jump
    assert sync.jumps == {}


def test_a_stamp_near_2_pow_31_s_is_reported_and_does_not_stall() -> None:
    jumps: list[tuple[str, int, int]] = []
    sync, _ = make_sync(jump_threshold=1.0, jump_confirm=3, on_jump=lambda *a: jumps.append(a))
    feed(sync, 150 * S)
    absurd = (2**31 - 1) * S
    assert [m.stamp_ns for m in feed(sync, absurd)] == [absurd]  # emitted, as stamped
    assert jumps == [("forward", 150 * S, absurd)]
    emitted = [m.stamp_ns for k in range(1, 6) for m in feed(sync, 150 * S + k * S // 30)]
    assert emitted == [150 * S + k * S // 30 for k in range(3, 6)]
    assert jumps[1] == ("backward", absurd, 150 * S + 3 * S // 30)


def test_jump_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="jump_threshold"):
        StampSynchronizer(TOPICS, jump_threshold=0.0)
    with pytest.raises(ValueError, match="jump_confirm"):
        StampSynchronizer(TOPICS, jump_threshold=1.0, jump_confirm=0)
