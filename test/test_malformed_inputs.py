"""translate_node against a matrix of malformed inputs: one node process, every case its own test id.

A module-scoped fixture starts ONE translate_node (isolated ROS domain, tiny 64x48 frames, /diagnostics at
10 Hz) and plays every case of :data:`CASES` into it in sequence: the bad message(s), then the next good
frame. It records, per case, the /diagnostics counters before and after, whether the good frame came out
with its header stamp, and whether the node was still alive; the node log is read after the node stopped.
The parametrised tests then assert, per case:

* ``test_bad_input_is_counted_and_the_next_frame_translated``: the expected counter grew by one (or, for a
  valid corner case, the frame itself was translated correctly and nothing was counted), the next good frame
  was published with its own stamp, and the node is alive;
* ``test_bad_input_is_logged_once_naming_topic_and_reason``: exactly one log line names the resolved topic,
  the reason and the bad frame's stamp (the node rate-limits per topic and reason: cases with the same
  (topic, reason) are spaced by more than the 2 s limiter period).

A case whose expected behaviour the node does not implement would be ``xfail(strict=True)`` with the reason;
docs/RELIABILITY.md lists every case and where the node checks it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros_testing import allocate_domain_id, isolated_env, python_cmd

sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_scripts"))
from frame_driver import FrameDriver, make_checkpoint, sim_frame, stamp_ns

from sim2real.io.conversions import array_to_compressed, array_to_image
from sim2real.nodes.translate.frames import Frame, FrameError, decode_frame

H, W = 48, 64
NS = "/sim/camera"
LIMITER_PERIOD_S = 2.0  # LogRateLimiter(period=2.0) in translate_node
MAX_PIXELS = 10_000  # the memory guard, passed as -p max_image_pixels:=10000
BURST = 1000
SPIN = "(spin)"  # a pseudo topic in Case.make's list: spin the driver for <message> seconds

# ------------------------------------------------------------------------------------------ message helpers


def _header(msg: Any, i: int | None, frame_id: str = "sim_cam", extra_ns: int = 0) -> Any:
    """Give ``msg`` frame ``i``'s stamp (+ ``extra_ns``) and ``frame_id``; ``i`` None keeps the zero stamp."""
    if i is not None:
        total = stamp_ns(i) + extra_ns
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(total, 1_000_000_000)
    msg.header.frame_id = frame_id
    return msg


def raw_image(i: int | None, *, encoding: str, height: int, width: int, step: int, data: bytes,
              bigendian: int = 0) -> Any:
    """An Image with exactly these fields (no validation) and frame ``i``'s header."""
    from sensor_msgs.msg import Image

    msg = Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=bigendian)
    msg.data = data
    return _header(msg, i)


def good(d: FrameDriver, i: int, h: int = H, w: int = W) -> dict[str, Any]:
    """The four messages of frame ``i``."""
    return d.messages(i, h, w)


def with_(d: FrameDriver, i: int, **override: Any) -> list[tuple[str, Any]]:
    """Frame ``i`` with some messages replaced, in publish order image, semantic, instance, camera_info."""
    msgs = good(d, i)
    msgs.update(override)
    return [(name, msgs[name]) for name in ("image", "semantic", "instance", "camera_info")]


def labelled(i: int, array: np.ndarray, encoding: str) -> Any:
    """``array`` as an Image with frame ``i``'s header."""
    return _header(array_to_image(array, encoding), i)


# ------------------------------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One malformed (or legal corner-case) input.

    ``make(driver, i)`` returns the (topic, message) pairs to publish for bad frame ``i`` (``(SPIN, s)``:
    pause). ``topic`` / ``reason`` are what the log line must name, ``counter`` the /diagnostics key that
    must grow by one. ``accepted``: a legal input that must be translated correctly and counted as nothing
    bad. ``stamp_index``: a fixed frame index (e.g. an old stamp) instead of the next one.
    """

    name: str
    make: Callable[[FrameDriver, int], list[tuple[str, Any]]]
    topic: str = "image"
    reason: str = "conversion"
    counter: str = ""
    accepted: bool = False
    stamp_index: int | None = None
    count_bug: str = ""
    log_bug: str = ""
    logged: bool = True
    published: bool = False  # the bad frame itself is (still) translated, e.g. after a duplicate was replaced
    also: tuple[str, ...] = ()  # other acceptable reasons (e.g. too_large once the memory guard exists)

    @property
    def keys(self) -> list[tuple[str, str]]:
        """The node's rate-limiter keys (topic, reason) this case may use."""
        return [(self.topic, r) for r in (self.reason, *self.also)]

    @property
    def expected_counters(self) -> list[str]:
        """The diagnostics keys of which exactly one must grow."""
        if self.counter:
            return [self.counter]
        return [f"bad_message.{self.topic}:{r}" for r in (self.reason, *self.also)]


def _rgb(i: int) -> np.ndarray:
    return sim_frame(i, H, W)[0]


def _img(i: int, **fields: Any) -> Any:
    base = {"encoding": "rgb8", "height": H, "width": W, "step": 3 * W, "data": _rgb(i).tobytes()}
    base.update(fields)
    return raw_image(i, **base)


def _nan_rgb(i: int) -> Any:
    arr = _rgb(i).astype(np.float32) / 255.0
    arr[0, 0, 0], arr[1, 1, 1], arr[2, 2, 2] = np.nan, np.inf, -np.inf
    return labelled(i, arr, "32FC3")


def _nan_semantic(i: int) -> Any:
    arr = sim_frame(i, H, W)[1].astype(np.float32)
    arr[0, :4] = np.nan
    arr[1, :4] = np.inf
    return labelled(i, arr, "32FC1")


def _semantic_out_of_table(i: int) -> Any:
    sem = sim_frame(i, H, W)[1].copy()
    sem[0, :5] = 19  # one past the last train id
    sem[1, :5] = 200
    return labelled(i, sem, "mono8")


def _instance_on_stuff(i: int) -> dict[str, Any]:
    _, sem, inst = sim_frame(i, H, W)
    sem, inst = sem.copy(), inst.copy()
    inst[:4, :8] = 21  # instance pixels on sky (stuff)
    sem[4:6, :8] = 255
    inst[4:6, :8] = 22  # and on ignore
    return {"semantic": labelled(i, sem, "mono8"), "instance": labelled(i, inst, "16UC1")}


def _odd_step_instance(i: int) -> Any:
    inst = sim_frame(i, H, W)[2]
    step = 2 * W + 1
    buf = bytearray(step * H)
    np.ndarray((H, W), dtype="<u2", buffer=buf, strides=(step, 2))[:] = inst
    return raw_image(i, encoding="16UC1", height=H, width=W, step=step, data=bytes(buf))


def _big_endian_instance(i: int) -> Any:
    inst = sim_frame(i, H, W)[2]
    return raw_image(i, encoding="16UC1", height=H, width=W, step=2 * W, data=inst.astype(">u2").tobytes(),
                     bigendian=1)


def _padded_rgb(i: int) -> Any:
    step = 3 * W + 5
    buf = bytearray(step * H)
    rows = np.ndarray((H, W, 3), dtype=np.uint8, buffer=buf, strides=(step, 3, 1))
    rows[:] = _rgb(i)
    return raw_image(i, encoding="rgb8", height=H, width=W, step=step, data=bytes(buf))


def _camera_info(d: FrameDriver, i: int, height: int, width: int) -> Any:
    """Frame ``i``'s camera_info, calibrated for a ``width`` x ``height`` image."""
    info = good(d, i)["camera_info"]
    info.height, info.width = height, width
    return info


def _binned_roi_info(d: FrameDriver, i: int) -> Any:
    """A camera_info of a 4x bigger sensor whose 2x-binned ROI is exactly the W x H image (REP 104)."""
    info = _camera_info(d, i, 4 * H, 4 * W)
    info.binning_x = info.binning_y = 2
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 8, 4, 2 * W, 2 * H
    return info


def _too_large(d: FrameDriver, i: int) -> list[tuple[str, Any]]:
    msgs = good(d, i, 120, 160)  # 19 200 pixels > MAX_PIXELS, a perfectly valid frame otherwise
    return [(name, msgs[name]) for name in ("image", "semantic", "instance", "camera_info")]


def _never_matching(d: FrameDriver, i: int) -> list[tuple[str, Any]]:
    msgs = good(d, i)
    for name in ("semantic", "instance", "camera_info"):
        _header(msgs[name], i, extra_ns=1000)  # 1 µs off: never an exact match
    return [(name, msgs[name]) for name in ("image", "semantic", "instance", "camera_info")]


def _duplicate_image(d: FrameDriver, i: int) -> list[tuple[str, Any]]:
    msgs = good(d, i)
    # both images reach the node before the labels (SPIN), so the second replaces the first in the queue
    return [("image", msgs["image"]), ("image", good(d, i)["image"]), (SPIN, 0.5),
            *[(n, msgs[n]) for n in ("semantic", "instance", "camera_info")]]


def _empty_default(_d: FrameDriver, _i: int) -> list[tuple[str, Any]]:
    from sensor_msgs.msg import Image

    return [("image", Image())]  # every field default: stamp 0, no encoding, no data


def _empty_with_stamp(d: FrameDriver, i: int) -> list[tuple[str, Any]]:
    from sensor_msgs.msg import Image

    return with_(d, i, image=_header(Image(), i))


CASES: list[Case] = [
    Case("image_unknown_encoding", lambda d, i: with_(d, i, image=_img(i, encoding="rgb9"))),
    Case("image_encoding_wrong_case", lambda d, i: with_(d, i, image=_img(i, encoding="RGB8"))),
    Case("semantic_rgb8_encoding", lambda d, i: with_(d, i, semantic=labelled(
        i, np.repeat(sim_frame(i, H, W)[1][:, :, None], 3, axis=2), "rgb8")), "semantic", "label_encoding"),
    Case("image_step_smaller_than_row", lambda d, i: with_(d, i, image=_img(
        i, step=3 * W - 1, data=_rgb(i).tobytes()[: (3 * W - 1) * H]))),
    Case("instance_rgb8_encoding", lambda d, i: with_(d, i, instance=labelled(
        i, np.zeros((H, W, 3), np.uint8), "rgb8")), "instance", "label_encoding"),
    Case("semantic_size_differs", lambda d, i: with_(d, i, semantic=labelled(
        i, np.zeros((H, W + 8), np.uint8), "mono8")), "semantic", "size_mismatch"),
    Case("image_data_shorter_than_step_x_height", lambda d, i: with_(d, i, image=_img(
        i, data=_rgb(i).tobytes()[:-7]))),
    Case("semantic_ids_outside_class_table", lambda d, i: with_(d, i, semantic=_semantic_out_of_table(i)),
         "semantic", "label_values"),
    Case("instance_size_differs", lambda d, i: with_(d, i, instance=labelled(
        i, np.zeros((H - 4, W), np.uint16), "16UC1")), "instance", "size_mismatch"),
    Case("image_data_longer_than_step_x_height", lambda d, i: with_(d, i, image=_img(
        i, data=_rgb(i).tobytes() + bytes(13)))),
    Case("semantic_32FC1_with_nan_inf", lambda d, i: with_(d, i, semantic=_nan_semantic(i)),
         "semantic", "label_encoding"),
    Case("stamps_never_match", _never_matching, counter="drop.unmatched", reason="unmatched"),
    Case("image_zero_width", lambda d, i: with_(d, i, image=_img(i, width=0, step=0, data=b""))),
    Case("semantic_data_shorter", lambda d, i: with_(d, i, semantic=raw_image(
        i, encoding="mono8", height=H, width=W, step=W, data=bytes(W * H - 1))), "semantic", "conversion"),
    Case("semantic_mono16_encoding", lambda d, i: with_(d, i, semantic=labelled(
        i, sim_frame(i, H, W)[1].astype(np.uint16), "mono16")), "semantic", "label_encoding"),
    Case("instance_16UC1_odd_step_is_accepted", lambda d, i: with_(d, i, instance=_odd_step_instance(i)),
         "instance", "accepted", accepted=True, logged=False),
    Case("image_zero_height", lambda d, i: with_(d, i, image=_img(i, height=0, data=b""))),
    Case("stamps_going_backwards", with_, reason="unmatched", counter="drop.unmatched",
         stamp_index=5),
    Case("instance_16UC1_big_endian_is_accepted", lambda d, i: with_(d, i, instance=_big_endian_instance(i)),
         "instance", "accepted", accepted=True, logged=False),
    Case("image_absurd_dimensions_tiny_payload", lambda d, i: with_(d, i, image=_img(
        i, height=100_000, width=100_000, step=300_000, data=bytes(64))), also=("too_large",)),
    Case("frame_id_mismatch_between_topics", lambda d, i: with_(d, i, semantic=_header(
        good(d, i)["semantic"], i, frame_id="other_cam")), "semantic", "frame_id_mismatch"),
    Case("image_32FC3_with_nan_inf", lambda d, i: with_(d, i, image=_nan_rgb(i))),
    Case("instance_ids_without_a_class", lambda d, i: with_(d, i, **_instance_on_stuff(i)),
         "instance", "instance_without_class",
         published=True),
    Case("duplicate_image_stamp", _duplicate_image, reason="duplicate_stamp", counter="drop.duplicate_stamp",
         published=True),
    Case("image_empty_message_with_stamp", _empty_with_stamp),
    Case("image_rgb8_row_padding_is_accepted", lambda d, i: with_(d, i, image=_padded_rgb(i)),
         "image", "accepted", accepted=True, logged=False),
    Case("image_absurd_dimensions_memory_guard", _too_large, reason="too_large"),
    Case("image_empty_default_message", _empty_default),  # no encoding: rejected on arrival
    Case("camera_info_size_differs", lambda d, i: with_(d, i, camera_info=_camera_info(d, i, H, W + 16)),
         "camera_info", "size_mismatch"),
    Case("camera_info_binned_roi_is_accepted", lambda d, i: with_(d, i, camera_info=_binned_roi_info(d, i)),
         "camera_info", "accepted", accepted=True, logged=False),
    Case("instance_8UC1_is_accepted", lambda d, i: with_(d, i, instance=labelled(
        i, sim_frame(i, H, W)[2].astype(np.uint8), "8UC1")), "instance", "accepted", accepted=True, logged=False),
    Case("burst_1000_frames_in_one_second", lambda d, i: [], reason="burst", counter="drop.superseded",
         logged=False),
]
CASE_BY_NAME = {c.name: c for c in CASES}


# --------------------------------------------------------------------------------------------- the node run


@dataclass
class Outcome:
    """What one case produced."""

    index: int
    before: dict[str, str]
    after: dict[str, str] = field(default_factory=dict)
    bad_out: Any = None  # the bad frame's translation (accepted cases)
    good_out: Any = None  # the next good frame's translation
    alive: bool = False
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def delta(self, key: str) -> int:
        """Growth of a numeric diagnostics value over the case."""
        return int(self.after.get(key, "0")) - int(self.before.get(key, "0"))


@dataclass
class Run:
    """The whole node run: outcomes by case name, the node log and the final stats."""

    outcomes: dict[str, Outcome]
    log: str
    stats: dict[str, Any]
    exit_code: int | None
    expect: Any  # Translator of the node's model, to compute expected outputs


def diag_values(driver: FrameDriver) -> dict[str, str]:
    """The key/values of the newest translate_node diagnostics status."""
    return driver.diagnostic_values("translate_node")


def fresh_diag(driver: FrameDriver, n: int = 3, timeout: float = 5.0) -> dict[str, str]:
    """Diagnostics published after now (waits for ``n`` more messages at 10 Hz)."""
    start = len(driver.diagnostics)
    driver.spin_until(lambda: len(driver.diagnostics) >= start + n, timeout)
    return diag_values(driver)


def output(driver: FrameDriver, i: int, timeout: float) -> Any:
    """The translated image with frame ``i``'s stamp, or None after ``timeout``."""
    want = stamp_ns(i)
    if not driver.spin_until(lambda: want in driver.received_stamps(), timeout):
        return None
    return next(m for m in driver.received("image")
                if m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec == want)


def _changed(driver: FrameDriver, before: dict[str, str]) -> bool:
    now = diag_values(driver)
    return any(now.get(k) != before.get(k) for k in now
               if k.startswith(("bad_message.", "drop.", "other_drop.")))


def _run_burst(driver: FrameDriver, first: int) -> dict[str, Any]:
    """Publish BURST complete frames within one second (messages built beforehand)."""
    frames = [[(n, m) for n, m in good(driver, first + k).items()] for k in range(BURST)]
    t0 = time.monotonic()
    for k, msgs in enumerate(frames):  # paced over one second: 1000 frames/s, 4000 messages/s
        while time.monotonic() < t0 + k / BURST:
            pass
        for name, msg in msgs:
            driver.pubs[name].publish(msg)
    return {"publish_s": time.monotonic() - t0}


def play(driver: FrameDriver, proc: subprocess.Popen, expect: Any) -> dict[str, Outcome]:
    """Play every case (greedy order: a case waits only for its own rate-limiter key to be free)."""
    outcomes: dict[str, Outcome] = {}
    next_index = 20
    pending = list(CASES)
    key_free: dict[tuple[str, str], float] = {}
    while pending:
        now = time.monotonic()
        # the burst goes last: the drops it causes must not rate-limit the log lines of other cases
        ready = [c for c in pending if not c.name.startswith("burst")] or pending
        def free_at(c: Case) -> float:
            return max(key_free.get(k, 0.0) for k in c.keys)

        case = next((c for c in ready if free_at(c) <= now), None)
        if case is None:
            case = min(ready, key=free_at)
            driver.spin_for(max(0.0, free_at(case) - now))
        pending.remove(case)
        bad = case.stamp_index if case.stamp_index is not None else next_index
        out = Outcome(index=bad, before=fresh_diag(driver, n=2))
        try:
            if case.name.startswith("burst"):
                out.extra = _run_burst(driver, next_index)
                next_index += BURST
                driver.spin_for(1.5)
            else:
                for name, msg in case.make(driver, bad):
                    if name == SPIN:
                        driver.spin_for(msg)
                    else:
                        driver.pubs[name].publish(msg)
                if case.accepted or case.published:  # wait for the frame itself, or the good one may supersede it
                    out.bad_out = output(driver, bad, 20.0)
                else:  # let the worker see the bad set before the good one can supersede it
                    driver.spin_until(lambda b=out.before: _changed(driver, b), 1.5)
            for k in case.keys:
                key_free[k] = time.monotonic() + LIMITER_PERIOD_S + 0.3
            nxt = max(next_index, bad) + 1
            driver.send(nxt, H, W)
            out.good_out = output(driver, nxt, 20.0)
            out.extra["good_index"] = nxt
            next_index = nxt + 10
            out.after = fresh_diag(driver)
            out.extra["bad_published"] = stamp_ns(bad) in driver.received_stamps()
        except Exception as exc:  # recorded, reported by the case's tests
            out.error = repr(exc)
        out.alive = proc.poll() is None
        outcomes[case.name] = out
        if not out.alive:
            break
    return outcomes


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    import rclpy

    from sim2real.translator.inference import Translator

    tmp = tmp_path_factory.mktemp("malformed")
    model = make_checkpoint(tmp / "m.safetensors", seed=3)
    domain = allocate_domain_id()
    env = isolated_env(tmp / "ros_home", domain_id=domain)
    env["OMP_NUM_THREADS"] = "1"
    log_path, stats_file = tmp / "node.log", tmp / "stats.json"
    remaps = [a for n in ("image", "semantic", "instance", "camera_info") for a in ("-r", f"{n}:={NS}/{n}")]
    params = {
        "model": str(model), "device": "cpu", "precision": "fp32", "warmup_width": W, "warmup_height": H,
        "stats_file": str(stats_file), "summary_period_s": 0.0, "preview_rate_hz": 0.0,
        "diagnostics_period_s": 0.1, "label_timeout_s": 3600.0, "max_image_pixels": MAX_PIXELS,
    }
    cmd = python_cmd("-m", "sim2real.nodes.translate_node", "--ros-args", *remaps,
                     *[a for k, v in params.items() for a in ("-p", f"{k}:={v}")])
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    driver = FrameDriver(context)
    expect = Translator.from_checkpoint(model, device="cpu", precision="fp32")
    try:
        driver.wait_for_node(proc=proc)
        driver.send(10, H, W)
        assert output(driver, 10, 30.0) is not None, log_path.read_text()[-3000:]
        outcomes = play(driver, proc, expect)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        exit_code = proc.wait(timeout=30)
        stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
        yield Run(outcomes, log_path.read_text(errors="replace"), stats, exit_code, expect)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        driver.close()
        context.try_shutdown()


# ------------------------------------------------------------------------------------------------ the tests


def _params(kind: str) -> list[Any]:
    params = []
    for c in CASES:
        if kind == "log" and not c.logged:
            continue
        bug = c.count_bug if kind == "count" else c.log_bug
        marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
        params.append(pytest.param(c.name, marks=marks, id=c.name))
    return params


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 2 and diff.mean() < 0.05, f"max diff {diff.max()}, mean {diff.mean():.3f}"


@pytest.mark.ros
@pytest.mark.parametrize("name", _params("count"))
def test_bad_input_is_counted_and_the_next_frame_translated(run: Run, name: str) -> None:
    from sim2real.io.conversions import image_to_array

    case, out = CASE_BY_NAME[name], run.outcomes.get(name)
    assert out is not None, "the node died before this case ran"
    assert not out.error, out.error
    assert out.alive, f"translate_node died on {name}:\n{run.log[-3000:]}"
    good_out = out.good_out
    assert good_out is not None, f"the good frame after {name} was not translated:\n{run.log[-2000:]}"
    want = stamp_ns(out.extra["good_index"])
    assert good_out.header.stamp.sec * 1_000_000_000 + good_out.header.stamp.nanosec == want
    assert good_out.header.frame_id == "sim_cam" and (good_out.height, good_out.width) == (H, W)
    grown = {k: out.delta(k) for k in out.after
             if k.startswith(("bad_message.", "drop.")) and out.delta(k)}
    if case.accepted:
        assert out.bad_out is not None, f"the legal input {name} was not translated; counters grown: {grown}"
        rgb, semantic, instance = sim_frame(out.index, H, W)
        _assert_close(np.asarray(image_to_array(out.bad_out)), run.expect.translate(rgb, semantic, instance))
        assert not grown, f"a legal input was counted as bad / dropped: {grown}"
    elif name.startswith("burst"):
        assert out.extra["publish_s"] < 5.0, out.extra
        assert out.delta("drop.superseded") > 0, (grown, out.after)
        assert int(out.after["frames_in"]) == int(out.after["frames_out"]) + int(out.after["dropped_total"]), \
            f"accounting does not balance after the burst: {out.after}"
        # How many of the 1000 frames the node sees depends on the machine's load (its subscriptions keep the
        # latest messages only; 77 arrived on a 2-core machine busy with a training and an evaluation), so this
        # only checks that the burst reached it; the superseded drops above show frames queued behind each other.
        assert out.delta("frames_in") >= 10, f"the burst did not reach the node: {out.before} -> {out.after}"
        drops = {k.removeprefix("drop."): int(v) for k, v in out.after.items() if k.startswith("drop.")}
        assert sum(drops.values()) == int(out.after["dropped_total"])
    else:
        grew = [k for k in case.expected_counters if out.delta(k) == 1]
        assert len(grew) == 1, f"one of {case.expected_counters} must grow by 1; grown: {grown}"
        assert out.extra["bad_published"] == case.published, (
            f"the bad frame was {'not ' if case.published else ''}published")


@pytest.mark.ros
@pytest.mark.parametrize("name", _params("log"))
def test_bad_input_is_logged_once_naming_topic_and_reason(run: Run, name: str) -> None:
    case, out = CASE_BY_NAME[name], run.outcomes.get(name)
    assert out is not None, "the node died before this case ran"
    stamp = "0.000000000" if name == "image_empty_default_message" else f"{stamp_ns(out.index) / 1e9:.9f}"
    topic = f"{NS}/{case.topic}"
    lines = [line for line in run.log.splitlines() if f"stamp {stamp}" in line]
    matching = [line for line in lines if topic in line and any(f": {r}: " in line for r in (case.reason, *case.also))]
    assert len(matching) == 1, f"expected one line naming {topic}, {case.reason!r} and stamp {stamp}; got {lines}"
    assert "WARN" in matching[0] or "ERROR" in matching[0]


@pytest.mark.ros
def test_node_shuts_down_cleanly_with_balanced_accounting(run: Run) -> None:
    assert run.exit_code == 0, run.log[-3000:]
    stats = run.stats
    assert stats["accounted"] is True
    assert stats["frames_in"] == stats["frames_out"] + sum(stats["drops"].values())
    assert stats["drops"].get("bad_message", 0) >= 15, stats["drops"]
    assert "accounted=True" in run.log


# ------------------------------------------------------------------------------ pure decode (no node needed)


def _frame(i: int, **override: Any) -> Frame:
    rgb, semantic, instance = sim_frame(i, H, W)
    msgs = {"image": labelled(i, rgb, "rgb8"), "semantic": labelled(i, semantic, "mono8"),
            "instance": labelled(i, instance, "16UC1")}
    msgs.update(override)
    return Frame(msgs["image"], msgs["semantic"], msgs["instance"], None, stamp_ns(i), 0.0)


def test_big_endian_16bit_labels_decode_to_the_same_ids() -> None:
    inst = sim_frame(4, H, W)[2].copy()
    inst[0, :4] = [1, 256, 258, 65535]  # ids whose two bytes differ
    big = _big_endian_instance(4)
    big.data = inst.astype(">u2").tobytes()
    _, _, decoded = decode_frame(_frame(4, instance=big))
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, inst)
    _, _, decoded = decode_frame(_frame(4, instance=_odd_step_instance(4)))
    assert np.array_equal(decoded, sim_frame(4, H, W)[2])


def test_corrupt_compressed_image_is_a_frame_error_naming_the_topic() -> None:
    """translate_node subscribes sensor_msgs/Image only (a CompressedImage publisher never matches its
    subscription); decode_frame, which it uses, still turns a corrupt CompressedImage into a FrameError."""
    msg = _header(array_to_compressed(sim_frame(5, H, W)[0], "rgb8", "jpeg"), 5)
    msg.data = bytes(msg.data)[: len(msg.data) // 3] + bytes(50)
    with pytest.raises(FrameError) as info:
        decode_frame(_frame(5, image=msg))
    assert (info.value.topic, info.value.reason) == ("image", "conversion")
    assert "corrupt" in info.value.detail
