"""Header-stamp synchronisation of N topics and a keep-latest hand-off slot (pure Python, no rclpy).

:class:`StampSynchronizer` is the in-package replacement for ``message_filters`` (not available as a wheel):

* every topic has a bounded queue of ``(stamp_ns, item)``; when it is full the oldest item is dropped and
  counted with reason ``"sync_overflow"``;
* a new item completes a set when every other topic holds an item whose stamp is within ``slop`` of it
  (``slop = 0``: exact match, the default; otherwise the closest such item per topic is taken);
* sets are emitted in stamp order (the set's stamp is the stamp of its item on the *first* topic): once a
  set is emitted, every queued item that is older than the item its topic contributed can never complete
  a set and is dropped with reason ``"unmatched"``; an item arriving with a stamp not newer than the last
  emitted one on its topic is dropped ``"unmatched"`` at once;
* a second item with a stamp already queued on the same topic replaces the first (``"duplicate_stamp"``);
* time jumps (opt-in, ``jump_threshold``): a clock that goes back (a simulator reset, a bag replayed in a loop,
  or the normal stamps after one set stamped far in the future) would otherwise make every later item
  "not newer than the last emitted" and stall the synchroniser for good. When ``jump_confirm`` items in a row
  on the reference topic are each more than ``jump_threshold`` seconds older than the last emitted set, the
  synchroniser resets (queued items dropped as ``"time_jump"``, no last emitted stamp) and the item that
  confirmed the jump is queued as the first of the new time line; ``on_jump("backward", last, new)`` is
  called. A single old item is still ``"unmatched"``. A set more than ``jump_threshold`` newer than the last
  one is emitted as usual and reported as ``on_jump("forward", last, new)``.

Every dropped item is reported to the optional ``on_drop(topic, reason, item)`` callback and counted in
:attr:`StampSynchronizer.drops` as ``{(topic, reason): n}``, so the caller can account for every message.

:class:`LatestSlot` is the keep-latest hand-off between thin ROS callbacks and an inference worker: a
``deque(maxlen=1)`` under a condition variable. :meth:`LatestSlot.put` returns the item it superseded (the
caller counts it as dropped ``"superseded"``); :meth:`LatestSlot.take` blocks on the condition (no polling)
until an item arrives or the slot is closed. :class:`KeyedLatestSlots` is the same with one slot per key (one
per camera) and a worker that takes every pending item at once (to batch them).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "DROP_DUPLICATE",
    "DROP_OVERFLOW",
    "DROP_TIME_JUMP",
    "DROP_UNMATCHED",
    "KeyedLatestSlots",
    "LatestSlot",
    "MatchedSet",
    "StampSynchronizer",
    "stamp_to_ns",
]

T = TypeVar("T")
K = TypeVar("K")

DROP_OVERFLOW = "sync_overflow"
DROP_UNMATCHED = "unmatched"
DROP_DUPLICATE = "duplicate_stamp"
DROP_TIME_JUMP = "time_jump"

_NS = 1_000_000_000


def stamp_to_ns(stamp: object) -> int:
    """``builtin_interfaces/Time``-like (``sec``, ``nanosec``) -> integer nanoseconds."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class MatchedSet(Generic[T]):
    """One complete set: ``items[topic]`` for every topic, ``stamps[topic]`` their stamps (ns).

    ``stamp_ns`` is the stamp of the first topic's item (the reference topic, typically the image).
    """

    stamp_ns: int
    items: Mapping[str, T]
    stamps: Mapping[str, int]


class StampSynchronizer(Generic[T]):
    """Match items of several topics by header stamp; see the module docstring for the rules.

    Not thread-safe: call :meth:`add` from one thread (or under the caller's lock).
    """

    def __init__(
        self,
        topics: Sequence[str],
        *,
        slop: float = 0.0,
        queue_size: int = 10,
        on_drop: Callable[[str, str, T], None] | None = None,
        jump_threshold: float | None = None,
        jump_confirm: int = 3,
        on_jump: Callable[[str, int, int], None] | None = None,
    ) -> None:
        """Args:
        topics: the topic keys, at least one, distinct; the first is the reference topic.
        slop: largest stamp difference (seconds) between items of one set; 0 = exact match.
        queue_size: items kept per topic before the oldest is dropped (``"sync_overflow"``), >= 1.
        on_drop: called as ``on_drop(topic, reason, item)`` for every dropped item.
        jump_threshold: seconds; None = no time-jump handling (see the module docstring).
        jump_confirm: reference items in a row, each older than the last set by more than ``jump_threshold``,
            that make a backward jump (>= 1).
        on_jump: called as ``on_jump("backward" | "forward", last_stamp_ns, new_stamp_ns)``.
        """
        topics = list(topics)
        if not topics:
            raise ValueError("StampSynchronizer needs at least one topic")
        if len(set(topics)) != len(topics):
            raise ValueError(f"StampSynchronizer topics must be distinct, got {topics}")
        if slop < 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if jump_threshold is not None and jump_threshold <= 0:
            raise ValueError(f"jump_threshold must be > 0 seconds (or None), got {jump_threshold}")
        if jump_confirm < 1:
            raise ValueError(f"jump_confirm must be >= 1, got {jump_confirm}")
        self._topics = topics
        self._jump_ns = None if jump_threshold is None else round(jump_threshold * _NS)
        self._jump_confirm = int(jump_confirm)
        self._on_jump = on_jump
        self._behind = 0  # reference items in a row older than the last set by more than the jump threshold
        self._slop_ns = round(slop * _NS)
        self._queue_size = int(queue_size)
        self._on_drop = on_drop
        self._queues: dict[str, list[tuple[int, T]]] = {t: [] for t in topics}  # sorted by stamp
        self._last_emitted: dict[str, int | None] = dict.fromkeys(topics)
        #: ``{(topic, reason): count}`` of every item dropped so far.
        self.drops: Counter[tuple[str, str]] = Counter()
        #: number of sets emitted so far.
        self.emitted = 0
        #: time jumps seen so far: ``{"backward": n, "forward": n}``.
        self.jumps: Counter[str] = Counter()

    @property
    def topics(self) -> list[str]:
        """The topic keys, reference topic first."""
        return list(self._topics)

    @property
    def slop(self) -> float:
        """The matching tolerance in seconds (0 = exact)."""
        return self._slop_ns / _NS

    def pending(self, topic: str | None = None) -> int:
        """Items queued (waiting for partners) on ``topic``, or on all topics."""
        if topic is not None:
            return len(self._queues[topic])
        return sum(len(q) for q in self._queues.values())

    def _drop(self, topic: str, reason: str, item: T) -> None:
        self.drops[(topic, reason)] += 1
        if self._on_drop is not None:
            self._on_drop(topic, reason, item)

    def add(self, topic: str, stamp_ns: int, item: T) -> list[MatchedSet[T]]:
        """Queue ``item`` (stamp ``stamp_ns``) on ``topic``; return the sets it completed (0 or 1), oldest first."""
        if topic not in self._queues:
            raise KeyError(f"unknown topic {topic!r}; synchronised topics: {self._topics}")
        stamp_ns = int(stamp_ns)
        last = self._last_emitted[topic]
        if last is not None and stamp_ns <= last:
            if not self._backward_jump(topic, stamp_ns, last):
                self._drop(topic, DROP_UNMATCHED, item)
                return []
        elif topic == self._topics[0]:
            self._behind = 0
        queue = self._queues[topic]
        for k, (s, old) in enumerate(queue):
            if s == stamp_ns:
                queue[k] = (stamp_ns, item)
                self._drop(topic, DROP_DUPLICATE, old)
                break
        else:
            queue.append((stamp_ns, item))
            queue.sort(key=lambda pair: pair[0])
            while len(queue) > self._queue_size:
                _, oldest = queue.pop(0)
                self._drop(topic, DROP_OVERFLOW, oldest)
        matched = self._match(topic, stamp_ns)
        return [] if matched is None else [matched]

    def _backward_jump(self, topic: str, stamp_ns: int, last: int) -> bool:
        """Whether this old reference item confirms a backward time jump; if so, reset (and report it)."""
        if self._jump_ns is None or topic != self._topics[0] or last - stamp_ns <= self._jump_ns:
            return False
        self._behind += 1
        if self._behind < self._jump_confirm:
            return False
        self.reset(DROP_TIME_JUMP)
        self.jumps["backward"] += 1
        if self._on_jump is not None:
            self._on_jump("backward", last, stamp_ns)
        return True

    def reset(self, reason: str = DROP_TIME_JUMP) -> int:
        """Drop every queued item with ``reason`` and forget the last emitted stamps: the next items start a
        new time line. Returns how many items were dropped."""
        n = self.clear(reason)
        self._last_emitted = dict.fromkeys(self._topics)
        self._behind = 0
        return n

    def _closest(self, topic: str, stamp_ns: int) -> int | None:
        """Index of the queued item on ``topic`` closest to ``stamp_ns`` within the slop, or None."""
        best, best_diff = None, self._slop_ns + 1
        for k, (s, _) in enumerate(self._queues[topic]):
            diff = abs(s - stamp_ns)
            if diff < best_diff:
                best, best_diff = k, diff
        return best

    def _match(self, topic: str, stamp_ns: int) -> MatchedSet[T] | None:
        chosen: dict[str, int] = {}
        for t in self._topics:
            k = self._closest(t, stamp_ns)
            if k is None:
                return None
            chosen[t] = k
        reference_last = self._last_emitted[self._topics[0]]
        items: dict[str, T] = {}
        stamps: dict[str, int] = {}
        for t, k in chosen.items():
            queue = self._queues[t]
            s, item = queue[k]
            items[t], stamps[t] = item, s
            for _, older in queue[:k]:  # can never complete a set any more
                self._drop(t, DROP_UNMATCHED, older)
            del queue[: k + 1]
            self._last_emitted[t] = s
        self.emitted += 1
        set_stamp = stamps[self._topics[0]]
        if self._jump_ns is not None and reference_last is not None and set_stamp - reference_last > self._jump_ns:
            self.jumps["forward"] += 1
            if self._on_jump is not None:
                self._on_jump("forward", reference_last, set_stamp)
        return MatchedSet(stamp_ns=set_stamp, items=items, stamps=stamps)

    def clear(self, reason: str = DROP_UNMATCHED) -> int:
        """Drop every queued item with ``reason`` (e.g. at shutdown); return how many were dropped."""
        n = 0
        for t, queue in self._queues.items():
            for _, item in queue:
                self._drop(t, reason, item)
                n += 1
            queue.clear()
        return n


class LatestSlot(Generic[T]):
    """A single pending item, newest wins: producers :meth:`put`, one worker :meth:`take` s.

    Thread-safe. The worker blocks on a condition variable, so an idle worker uses no CPU.
    """

    def __init__(self) -> None:
        """An empty, open slot."""
        self._items: deque[T] = deque(maxlen=1)
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T) -> T | None:
        """Store ``item``; return the item it superseded (not yet taken), else None.

        After :meth:`close` the item is not stored and is returned itself (the caller counts it dropped).
        """
        with self._cond:
            if self._closed:
                return item
            superseded = self._items[0] if self._items else None
            self._items.append(item)
            self._cond.notify()
            return superseded

    def take(self, timeout: float | None = None) -> T | None:
        """Wait for and remove the pending item; None when the slot is closed and empty, or on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._closed, timeout=timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> T | None:
        """Refuse further items and wake the worker; return the item still pending (removed), if any."""
        with self._cond:
            self._closed = True
            pending = self._items.popleft() if self._items else None
            self._cond.notify_all()
            return pending

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __len__(self) -> int:
        """1 when an item is pending, else 0."""
        with self._cond:
            return len(self._items)


class KeyedLatestSlots(Generic[K, T]):
    """One keep-latest slot per key (e.g. per camera) and one worker that takes all pending items at once.

    Thread-safe; the worker blocks on a condition variable until at least one slot holds an item.
    """

    def __init__(self) -> None:
        """No pending items, open."""
        self._items: dict[K, T] = {}
        self._cond = threading.Condition()
        self._closed = False

    def put(self, key: K, item: T) -> T | None:
        """Store ``item`` in ``key``'s slot; return the item it superseded there, else None.

        After :meth:`close` the item is not stored and is returned itself.
        """
        with self._cond:
            if self._closed:
                return item
            superseded = self._items.get(key)
            self._items[key] = item
            self._cond.notify()
            return superseded

    def take_all(self, timeout: float | None = None) -> dict[K, T]:
        """Wait until some slot holds an item (or close / timeout); remove and return every pending item.

        An empty dict means closed (or timed out) with nothing pending. Keys come in first-put order.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._closed, timeout=timeout)
            items, self._items = self._items, {}
            return items

    def close(self) -> dict[K, T]:
        """Refuse further items, wake the worker, return (and remove) what was pending."""
        with self._cond:
            self._closed = True
            items, self._items = self._items, {}
            self._cond.notify_all()
            return items

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __len__(self) -> int:
        """Number of keys with a pending item."""
        with self._cond:
            return len(self._items)
