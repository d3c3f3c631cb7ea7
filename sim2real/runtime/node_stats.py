"""Counters, latency windows, log rate limiting and diagnostics content for the nodes (pure, no rclpy).

Frame accounting (what the translate node guarantees, and what :meth:`NodeStats.snapshot` reports):
every image received on the reference topic is counted once in ``frames_in`` and ends in exactly one of
``frames_out`` (a translated image was published) or ``drops[reason]`` (``sync_overflow``, ``unmatched``,
``duplicate_stamp``, ``superseded``, ``stale``, ``bad_message``, ``publish_error``, ``pending_at_shutdown``
...), so after a clean shutdown ``frames_in == frames_out + sum(drops.values())``. Messages of the other
topics (labels, camera_info) that are dropped are counted apart in ``other_drops[(topic, reason)]``.

Latencies (seconds, kept over a sliding window of the last ``window`` samples):

* ``inference``: wall time of the translator call (decode and encode excluded);
* ``end_to_end``: from the *receive* time of the image message in this process to the return of the
  translated image's ``publish()``. Receive time, not the header stamp, because simulators stamp with
  simulation time (or replay old stamps) and the clocks of two machines need not agree; the stamp-based
  age is a property of the whole pipeline, not of this node.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "DIAG_ERROR",
    "DIAG_OK",
    "DIAG_STALE",
    "DIAG_WARN",
    "DiagnosticContent",
    "LatencyWindow",
    "LogRateLimiter",
    "NodeStats",
    "build_diagnostic_status",
    "percentile",
    "summary_line",
]

# diagnostic_msgs/DiagnosticStatus levels (bytes in the message; plain ints here).
DIAG_OK: Final = 0
DIAG_WARN: Final = 1
DIAG_ERROR: Final = 2
DIAG_STALE: Final = 3


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values`` with linear interpolation (numpy's default method).

    None for an empty sequence. ``percentile([1, 2, 3, 4], 50) == 2.5``.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in 0..100, got {q}")
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


class LatencyWindow:
    """The last ``size`` samples of a latency (seconds) with their p50 / p95 / max. Thread-safe."""

    def __init__(self, size: int = 200) -> None:
        """A window of at most ``size`` (>= 1) samples."""
        if size < 1:
            raise ValueError(f"LatencyWindow size must be >= 1, got {size}")
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._total = 0

    def add(self, seconds: float) -> None:
        """Record one sample."""
        with self._lock:
            self._samples.append(float(seconds))
            self._total += 1

    @property
    def count(self) -> int:
        """Samples recorded since creation (not only those in the window)."""
        return self._total

    def percentiles(self, *qs: float) -> tuple[float | None, ...]:
        """Percentiles of the samples in the window (None while empty)."""
        with self._lock:
            data = list(self._samples)
        return tuple(percentile(data, q) for q in qs)

    def summary(self) -> dict[str, float | None]:
        """``{"p50": s, "p95": s, "max": s}`` over the window (None while empty)."""
        with self._lock:
            data = list(self._samples)
        return {"p50": percentile(data, 50), "p95": percentile(data, 95), "max": max(data) if data else None}


class LogRateLimiter:
    """Decides whether a message with a given key may be logged now: at most once per ``period`` seconds
    per key; the calls it suppressed in between are counted and returned with the next allowed one."""

    def __init__(self, period: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        """``period`` seconds between two messages of the same key; ``clock`` returns seconds."""
        self._period = float(period)
        self._clock = clock
        self._last: dict[Any, float] = {}
        self._suppressed: Counter[Any] = Counter()
        self._lock = threading.Lock()

    def allow(self, key: Any) -> tuple[bool, int]:
        """``(True, n_suppressed_since_last)`` when a message for ``key`` may be logged, else ``(False, 0)``."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._period:
                self._suppressed[key] += 1
                return False, 0
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)


@dataclass
class NodeStats:
    """Thread-safe counters of a frame-processing node (see the module docstring for the accounting)."""

    reference_topic: str = "image"
    window: int = 200
    frames_in: int = 0
    frames_out: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    other_drops: Counter[tuple[str, str]] = field(default_factory=Counter)
    bad_messages: Counter[tuple[str, str]] = field(default_factory=Counter)
    publish_errors: Counter[str] = field(default_factory=Counter)
    messages_in: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        """Create the latency windows and the lock."""
        self.inference = LatencyWindow(self.window)
        self.end_to_end = LatencyWindow(self.window)
        self._lock = threading.Lock()

    def message_in(self, topic: str) -> None:
        """A message arrived on ``topic``; on the reference topic it is also a frame in."""
        with self._lock:
            self.messages_in[topic] += 1
            if topic == self.reference_topic:
                self.frames_in += 1

    def frame_out(self) -> None:
        """One translated image was published."""
        with self._lock:
            self.frames_out += 1

    def drop(self, reason: str, topic: str | None = None, n: int = 1) -> None:
        """``n`` messages of ``topic`` (default: the reference topic, i.e. frames) dropped for ``reason``."""
        with self._lock:
            if topic is None or topic == self.reference_topic:
                self.drops[reason] += n
            else:
                self.other_drops[(topic, reason)] += n

    def bad_message(self, topic: str, reason: str) -> None:
        """A malformed message on ``topic`` (short ``reason`` such as ``"encoding"``, ``"size_mismatch"``)."""
        with self._lock:
            self.bad_messages[(topic, reason)] += 1

    def publish_error(self, topic: str) -> None:
        """``publish()`` on ``topic`` raised."""
        with self._lock:
            self.publish_errors[topic] += 1

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a free-form counter (e.g. ``"batches"``), reported under ``counters``."""
        with self._lock:
            self.counters[name] += n

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable copy of every counter and latency summary (milliseconds)."""
        with self._lock:
            snap: dict[str, Any] = {
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "drops": dict(sorted(self.drops.items())),
                "dropped_total": sum(self.drops.values()),
                "other_drops": {f"{t}:{r}": n for (t, r), n in sorted(self.other_drops.items())},
                "bad_messages": {f"{t}:{r}": n for (t, r), n in sorted(self.bad_messages.items())},
                "publish_errors": dict(sorted(self.publish_errors.items())),
                "messages_in": dict(sorted(self.messages_in.items())),
                "counters": dict(sorted(self.counters.items())),
            }
        for name, win in (("inference", self.inference), ("end_to_end", self.end_to_end)):
            summ = win.summary()
            snap[f"{name}_ms"] = {k: None if v is None else round(v * 1000.0, 3) for k, v in summ.items()}
            snap[f"{name}_count"] = win.count
        return snap


def _fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def summary_line(snap: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """One log line from a :meth:`NodeStats.snapshot`: counts, drops by reason and latency percentiles."""
    drops = ", ".join(f"{k}={v}" for k, v in snap["drops"].items()) or "none"
    inf, e2e = snap["inference_ms"], snap["end_to_end_ms"]
    parts = [
        f"in={snap['frames_in']} out={snap['frames_out']} dropped={snap['dropped_total']} ({drops})",
        f"inference p50/p95={_fmt_ms(inf['p50'])}/{_fmt_ms(inf['p95'])} ms",
        f"end-to-end p50/p95={_fmt_ms(e2e['p50'])}/{_fmt_ms(e2e['p95'])} ms",
    ]
    bad = sum(snap["bad_messages"].values())
    errors = sum(snap["publish_errors"].values())
    if bad:
        parts.append(f"bad_messages={bad}")
    if errors:
        parts.append(f"publish_errors={errors}")
    for key, value in (extra or {}).items():
        parts.append(f"{key}={value}")
    return "; ".join(parts)


@dataclass(frozen=True)
class DiagnosticContent:
    """The content of one ``diagnostic_msgs/DiagnosticStatus`` as plain values (the node wraps it)."""

    level: int
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]


def _value(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def build_diagnostic_status(
    name: str,
    snap: Mapping[str, Any],
    *,
    hardware_id: str = "",
    info: Mapping[str, Any] | None = None,
    warnings: Iterable[str] = (),
) -> DiagnosticContent:
    """Diagnostics for one node from a :meth:`NodeStats.snapshot`.

    Keys: ``frames_in``, ``frames_out``, ``dropped_total``, ``drop.<reason>``, ``other_drop.<topic:reason>``,
    ``bad_message.<topic:reason>``, ``publish_error.<topic>``, ``inference_ms.p50|p95|max``,
    ``end_to_end_ms.p50|p95|max``, ``count.<name>``, then ``info`` (e.g. device, model). Level: ERROR when
    frames came in but none went out and some were dropped, WARN when ``warnings`` is non-empty or there are
    bad messages or publish errors, else OK. The message joins the warnings (or says "ok").
    """
    values: list[tuple[str, str]] = [
        ("frames_in", _value(snap["frames_in"])),
        ("frames_out", _value(snap["frames_out"])),
        ("dropped_total", _value(snap["dropped_total"])),
    ]
    values += [(f"drop.{k}", _value(v)) for k, v in snap["drops"].items()]
    values += [(f"other_drop.{k}", _value(v)) for k, v in snap["other_drops"].items()]
    values += [(f"bad_message.{k}", _value(v)) for k, v in snap["bad_messages"].items()]
    values += [(f"publish_error.{k}", _value(v)) for k, v in snap["publish_errors"].items()]
    values += [(f"count.{k}", _value(v)) for k, v in snap.get("counters", {}).items()]
    for lat in ("inference_ms", "end_to_end_ms"):
        values += [(f"{lat}.{k}", _value(v)) for k, v in snap[lat].items()]
    values += [(str(k), _value(v)) for k, v in (info or {}).items()]
    warn = list(warnings)
    if snap["bad_messages"]:
        warn.append(f"{sum(snap['bad_messages'].values())} bad messages")
    if snap["publish_errors"]:
        warn.append(f"{sum(snap['publish_errors'].values())} publish errors")
    if snap["frames_in"] > 0 and snap["frames_out"] == 0 and snap["dropped_total"] > 0:
        level = DIAG_ERROR
        warn.insert(0, "no frame translated yet")
    elif warn:
        level = DIAG_WARN
    else:
        level = DIAG_OK
    return DiagnosticContent(
        level=level, name=name, message="; ".join(warn) or "ok", hardware_id=hardware_id, values=tuple(values)
    )
