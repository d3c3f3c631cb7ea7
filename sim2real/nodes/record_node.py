"""record_node: write chosen topics to a rosbag2 (mcap or sqlite3) with rosbags; no rosbag2_py needed.

    python -m sim2real.nodes.record_node --ros-args -p output:=out/run1 -p storage:=mcap \\
        -p "topics:=['/translated/image', '/translated/semantic', '/translated/camera_info:sensor_msgs/msg/CameraInfo']"

On a full ROS 2 install the equivalent is::

    ros2 bag record -s mcap -o out/run1 /translated/image /translated/semantic /translated/camera_info

Parameters (declared once, read-only; validated at start):

``topics`` (string array, required)
    Topic names, each optionally followed by ``:<type>`` (``pkg/msg/Type``). A topic without a type is
    subscribed as soon as a publisher of it appears (checked every ``discovery_period_s``), with the publisher's
    type. A topic with a type is subscribed at start, before any publisher exists, so a publisher that starts
    later loses no first message to discovery (with ``reliability:=auto`` the early subscription is reliable and
    is re-made best effort if a best-effort publisher appears); when publishers exist the given type is checked
    against theirs, and it settles topics published with several types. Relative names resolve in the node's
    namespace. On the command line quote the entries that carry a type (YAML reads ``a:b`` in a flow list as a
    mapping): ``"['/a', '/b:pkg/msg/T']"``.
``output`` (string, required)
    The bag directory. It must not exist: an existing recording is never overwritten (the node exits 1).
``storage``
    ``mcap`` (default) or ``sqlite3``.
``reliability``
    ``auto`` (default: reliable when every publisher of the topic offers reliable, else best effort, like
    ``ros2 bag record``'s QoS adaptation), ``reliable`` or ``best_effort``; history depth ``depth``.
``split_seconds``
    Length of a bag split (default 10 s): the most a SIGKILL or power cut can lose (see Durability).
``stats_file``
    Where to write the per-topic message counts as JSON at shutdown (empty = off).
``compress_topics`` (string array, default none), ``compressed_format`` (``jpeg`` | ``png``), ``jpeg_quality``
(95), ``png_level`` (3)
    Image topics (among ``topics``) stored compressed, as ``<topic>/compressed`` of type
    ``sensor_msgs/msg/CompressedImage`` with image_transport's format string and the image's header (a 1080p
    rgb8 stream is 6.2 MB a frame raw; docs/BENCHMARKS.md has the sizes and encode times). Use png, which is
    lossless, for label maps.

Each topic's connection in the bag carries the QoS profiles its publishers offered (``offered_qos_profiles`` in
metadata.yaml, read when its first message arrives), so ``ros2 bag play`` can offer the same.

Messages are subscribed with ``raw=True`` and the serialized bytes are written as they are
(:meth:`sim2real.io.split_bag.SplitBagWriter.write_raw`): no deserialize / serialize round trip, so the message
(and its header) is stored untouched. The bag timestamp of a message is its *receive* time on the node's clock
(``use_sim_time`` applies), as with ``ros2 bag record``. SIGINT / SIGTERM stop the node and close the bag.

Durability: the bag is written as splits of ``split_seconds`` (:mod:`sim2real.io.split_bag`); each is read back
and fsynced before metadata.yaml lists it, so the bag is readable at every moment and a SIGKILL loses at most
the messages received in the last ``split_seconds`` plus the time one split takes to close (and those still
queued for the writer). ``sim2real-bag-repair BAG`` recovers what it can of the unfinished split. A storage
failure (disk full, file too large, I/O error) is fatal: the node logs it, stops, and exits with status 1; the
closed splits stay readable and metadata.yaml lists only them. A message that cannot be written for a reason of
its own is logged (rate-limited), counted and the recording goes on. The summary (log line, ``stats_file``)
gives per topic the messages in the bag (``counts``: in closed, verified splits), ``received``, ``errors`` and
``lost`` (received but not in the bag because the recording failed).
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import re
import signal
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from sim2real.core.errors import BagWriteError, ConfigError
from sim2real.io.bag_writer import STORAGES
from sim2real.io.split_bag import DEFAULT_SPLIT_SECONDS, SplitBagWriter
from sim2real.nodes.common import check_writable_file, exit_node, run_node
from sim2real.nodes.common import read_only_descriptor as _descriptor
from sim2real.nodes.record_extras import COMPRESSED_FORMATS, COMPRESSED_TYPE, ImageCompressor, offered_qos
from sim2real.runtime.node_stats import LogRateLimiter

__all__ = ["NODE_NAME", "BagThread", "RecordNode", "import_message_type", "main", "parse_topic_spec"]

NODE_NAME: Final = "record_node"
RELIABILITIES: Final = ("auto", "reliable", "best_effort")
_TYPE_RE: Final = re.compile(r"^[A-Za-z_]\w*/msg/[A-Za-z_]\w*$")


def parse_topic_spec(entry: str) -> tuple[str, str | None]:
    """``"/a/b"`` -> ``("/a/b", None)``; ``"/a/b:sensor_msgs/msg/Image"`` -> ``("/a/b", "sensor_msgs/msg/Image")``.

    Raises ConfigError for an empty name or a type not of the form ``pkg/msg/Type``.
    """
    name, sep, msgtype = entry.strip().partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"topic entry {entry!r} has no topic name")
    if not sep:
        return name, None
    msgtype = msgtype.strip()
    if not _TYPE_RE.match(msgtype):
        raise ConfigError(f"topic entry {entry!r}: type must look like 'pkg/msg/Type', got {msgtype!r}")
    return name, msgtype


def import_message_type(msgtype: str) -> Any:
    """``"sensor_msgs/msg/Image"`` -> the rclpy message class; ConfigError when it is not installed."""
    package, _, name = msgtype.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"message type {msgtype!r} is not available in this Python environment: {exc}") from exc


class BagThread:
    """Owns a :class:`SplitBagWriter` on one thread (open, every write, close: sqlite3 objects are bound to the
    thread that made them) and takes ``(topic, msgtype, data, timestamp, offered QoS)`` from a bounded queue, so
    callbacks never wait for the disk. A full queue refuses the message (the caller counts it). The thread wakes when a
    split is due, so a split closes on time without traffic too.

    ``on_error(topic, exc)``: one message could not be written (the recording goes on). ``on_fatal(exc)``: the
    storage failed (BagWriteError) or the thread crashed (``failure`` is set either way); no later message is
    written.
    """

    def __init__(self, path: str, storage: str, *, on_error: Callable[[str, Exception], None],
                 on_fatal: Callable[[BaseException], None] | None = None,
                 split_seconds: float = DEFAULT_SPLIT_SECONDS,
                 max_pending: int = 1000) -> None:
        """Open the bag on the writer thread; raise what opening raised (e.g. BagError: output exists)."""
        self.path, self.storage = Path(path), storage
        self.bag = SplitBagWriter(path, storage, split_seconds=split_seconds)
        self.rejected: Counter[str] = Counter()  # per-message write errors (not in the bag, logged)
        self.failure: BaseException | None = None
        self._on_error, self._on_fatal = on_error, on_fatal
        self._queue: queue.Queue[tuple[str, str, bytes, int, tuple[Any, ...]] | None] = queue.Queue(
            maxsize=max_pending)
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bag_writer", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error

    @property
    def written(self) -> Counter[str]:
        """Messages per topic in the bag's closed, verified splits (what metadata.yaml lists)."""
        return self.bag.durable

    def _run(self) -> None:
        try:
            self.bag.open()
        except BaseException as exc:  # reported to the constructor
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            self._loop()
        except BaseException as exc:  # BagWriteError, or a bug: the recording cannot go on
            self._fail(exc)
            while self._queue.get() is not None:  # drain until close(); counted as received - written - rejected
                pass
        try:
            if self.failure is None:
                self.bag.close()
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.bag.abort()  # releases the lock; a no-op after a successful close

    def _loop(self) -> None:
        """Write queued messages until the ``None`` sentinel; close splits when due."""
        while True:
            try:
                item = self._queue.get(timeout=self.bag.poll())
            except queue.Empty:
                continue
            if item is None:
                return
            topic, msgtype, data, timestamp, qos = item
            try:
                self.bag.write_raw(topic, msgtype, data, timestamp, offered_qos=qos)
            except BagWriteError:
                raise
            except Exception as exc:  # one bad message does not end the recording
                self.rejected[topic] += 1
                self._on_error(topic, exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            if self._on_fatal is not None:
                self._on_fatal(exc)

    def put(self, topic: str, msgtype: str, data: bytes, timestamp: int, offered_qos: tuple[Any, ...] = ()) -> bool:
        """Queue one message (``offered_qos``: the topic's, used with its first message); False when the writer
        is ``max_pending`` messages behind."""
        try:
            self._queue.put_nowait((topic, msgtype, data, timestamp, offered_qos))
        except queue.Full:
            return False
        return True

    def close(self) -> None:
        """Write what is queued, close the bag (last split verified and listed) and end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def _parameter_table() -> list[tuple[str, Any, ParameterDescriptor]]:
    return [
        ("topics", [""], _descriptor(
            "topics to record: 'name' or 'name:pkg/msg/Type'", ParameterType.PARAMETER_STRING_ARRAY,
            constraints="non-empty list")),
        ("output", "", _descriptor("bag directory (must not exist)", ParameterType.PARAMETER_STRING)),
        ("storage", "mcap", _descriptor(
            "rosbag2 storage plugin", ParameterType.PARAMETER_STRING, constraints=" | ".join(STORAGES))),
        ("reliability", "auto", _descriptor(
            "subscription reliability", ParameterType.PARAMETER_STRING, constraints=" | ".join(RELIABILITIES))),
        ("depth", 100, _descriptor("subscription history depth", ParameterType.PARAMETER_INTEGER,
                                   int_range=(1, 10000))),
        ("discovery_period_s", 0.5, _descriptor(
            "how often to look for the types of topics given without one", ParameterType.PARAMETER_DOUBLE,
            float_range=(0.05, 60.0))),
        ("split_seconds", DEFAULT_SPLIT_SECONDS, _descriptor(
            "bag split length in seconds: the most a kill can lose", ParameterType.PARAMETER_DOUBLE,
            float_range=(0.1, 3600.0))),
        ("stats_file", "", _descriptor("per-topic counts as JSON at shutdown; empty = off",
                                       ParameterType.PARAMETER_STRING)),
        ("compress_topics", [""], _descriptor(
            "image topics (of 'topics') stored as <topic>/compressed (sensor_msgs/msg/CompressedImage)",
            ParameterType.PARAMETER_STRING_ARRAY)),
        ("compressed_format", "jpeg", _descriptor(
            "codec for compress_topics (png is lossless)", ParameterType.PARAMETER_STRING,
            constraints=" | ".join(COMPRESSED_FORMATS))),
        ("jpeg_quality", 95, _descriptor("JPEG quality for compress_topics", ParameterType.PARAMETER_INTEGER,
                                         int_range=(1, 100))),
        ("png_level", 3, _descriptor("PNG compression level for compress_topics", ParameterType.PARAMETER_INTEGER,
                                     int_range=(0, 9))),
    ]


class RecordNode(Node):
    """Subscribes (raw) to the configured topics and writes every message to one bag."""

    def __init__(self, *, request_stop: Callable[[], None] | None = None, **node_kwargs: Any) -> None:
        """Validate parameters, open the bag (refusing to overwrite), subscribe. Raises ConfigError/BagError.

        ``request_stop``: called (from the writer thread) when the recording fails, to end the process's spin
        (``main`` sends the process SIGTERM, the same path as an operator's stop); ``failure`` is then set.
        """
        super().__init__(NODE_NAME, **node_kwargs)
        self._request_stop = request_stop
        self.failure: BaseException | None = None
        for name, default, desc in _parameter_table():
            self.declare_parameter(name, default, desc)
        p = {name: self.get_parameter(name).value for name, _, _ in _parameter_table()}
        entries = [e for e in p["topics"] if e.strip()]
        if not entries:
            raise ConfigError("parameter 'topics' is empty: give the topics to record, e.g. -p 'topics:=[/a, /b]'")
        if not p["output"]:
            raise ConfigError("parameter 'output' is empty: give the bag directory to create")
        if p["storage"] not in STORAGES:
            raise ConfigError(f"storage must be one of {', '.join(STORAGES)}; got {p['storage']!r}")
        if p["reliability"] not in RELIABILITIES:
            raise ConfigError(f"reliability must be one of {', '.join(RELIABILITIES)}; got {p['reliability']!r}")
        self._reliability: str = p["reliability"]
        self._depth: int = p["depth"]
        self._stats_file: str = p["stats_file"]
        if self._stats_file:
            check_writable_file("stats_file", self._stats_file)
        self._wanted: dict[str, str | None] = {}
        for entry in entries:
            name, msgtype = parse_topic_spec(entry)
            resolved = self.resolve_topic_name(name)
            self._wanted[resolved] = msgtype
            if msgtype is not None:
                import_message_type(msgtype)  # fail at start, not at the first message
        self._compress = ImageCompressor(p["compressed_format"], p["jpeg_quality"], p["png_level"])
        self._compressed: set[str] = set()
        for entry in (e.strip() for e in p["compress_topics"] if e.strip()):
            resolved = self.resolve_topic_name(entry)
            if resolved not in self._wanted or self._wanted[resolved] not in (None, "sensor_msgs/msg/Image"):
                raise ConfigError(f"compress_topics entry {entry!r} is not a sensor_msgs/msg/Image topic of 'topics'")
            self._compressed.add(resolved)
        self._qos: dict[str, tuple[Any, ...]] = {}
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._errors_lock = threading.Lock()
        self._limiter = LogRateLimiter(period=2.0)
        self._subs: dict[str, Any] = {}
        self._types: dict[str, str] = {}
        self.bag = BagThread(p["output"], p["storage"], on_error=self._write_error, on_fatal=self._fatal,
                             split_seconds=p["split_seconds"])
        self.get_logger().info(
            f"recording {', '.join(self._wanted)} to {self.bag.path} ({p['storage']});"
            f" equivalent: ros2 bag record -s {p['storage']} -o {self.bag.path} {' '.join(self._wanted)}"
        )
        self._timer: Any = None
        self._waiting: set[str] = set()  # typed topics subscribed before a publisher of their type was seen
        self._provisional: set[str] = set()  # those of them subscribed reliable under reliability auto
        self._discover()
        if any(t not in self._subs for t in self._wanted) or self._waiting:
            self._timer = self.create_timer(p["discovery_period_s"], self._discover)

    def _publishers_reliable(self, topic: str, msgtype: str) -> bool | None:
        """True / False when every / not every ``msgtype`` publisher of ``topic`` is reliable; None: none."""
        infos = [i for i in self.get_publishers_info_by_topic(topic) if i.topic_type == msgtype]
        if not infos:
            return None
        return all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)

    def _reliability_for(self, topic: str, msgtype: str) -> str:
        """``reliability``, or under ``auto`` what the topic's publishers offer (reliable when there are none)."""
        if self._reliability != "auto":
            return self._reliability
        return "best_effort" if self._publishers_reliable(topic, msgtype) is False else "reliable"

    def _discover(self) -> None:
        """Subscribe to every typed topic (at once) and every untyped topic that has a publisher."""
        graph = dict(self.get_topic_names_and_types())
        self._settle_waiting()
        for topic, given in self._wanted.items():
            types = graph.get(topic, [])
            if topic in self._subs:
                continue
            if not types:
                if given is not None:  # subscribe before the publisher exists: its first message is kept
                    self._waiting.add(topic)
                    if self._reliability == "auto":
                        self._provisional.add(topic)
                    self._subscribe(topic, given, "reliable" if self._reliability == "auto" else self._reliability)
                    self.get_logger().info(f"recording {topic} ({given}; waiting for a publisher)")
                continue
            if given is None and len(types) > 1:
                self._log_once(topic, "types", f"{topic} is published with several types {types}:"
                                               f" give one as '{topic}:<type>'")
                continue
            if given is not None and given not in types:
                self._log_once(topic, "type", f"{topic} is published as {types}, not {given}: not recorded")
                continue
            msgtype = given or types[0]
            try:
                cls = import_message_type(msgtype)
            except ConfigError as exc:
                self._log_once(topic, "import", f"cannot record {topic}: {exc}")
                continue
            self._subscribe(topic, msgtype, self._reliability_for(topic, msgtype), cls)
            self.get_logger().info(f"recording {topic} ({msgtype})")
        if all(t in self._subs for t in self._wanted) and not self._waiting and self._timer is not None:
            self._timer.cancel()

    def _settle_waiting(self) -> None:
        """Check early-subscribed typed topics against the publishers that appeared (not the graph's topic
        types, which include this node's own subscription); re-make an ``auto`` one best effort when its
        publishers are best effort."""
        for topic in sorted(self._waiting):
            given = self._wanted[topic]
            types = sorted({i.topic_type for i in self.get_publishers_info_by_topic(topic)})
            if not types:
                continue
            if given not in types:
                self._log_once(topic, "type", f"{topic} is published as {types}, not {given}: nothing recorded"
                                              f" until a {given} publisher appears")
                continue
            self._waiting.discard(topic)
            if topic in self._provisional:
                self._provisional.discard(topic)
                if self._publishers_reliable(topic, given) is False:
                    self.destroy_subscription(self._subs.pop(topic))
                    self._subscribe(topic, given, "best_effort")
                    self.get_logger().info(f"{topic} has a best-effort publisher: recording it best effort")

    def _subscribe(self, topic: str, msgtype: str, reliability: str, cls: Any = None) -> None:
        """A raw subscription of ``topic`` as ``msgtype`` (keep last ``depth``, volatile, ``reliability``)."""
        self._types[topic] = msgtype
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self._depth, durability=DurabilityPolicy.VOLATILE,
            reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
        )
        self._subs[topic] = self.create_subscription(
            cls or import_message_type(msgtype), topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True)

    def _log_once(self, topic: str, reason: str, message: str) -> None:
        allowed, _ = self._limiter.allow((topic, reason))
        if allowed:
            self.get_logger().error(message)

    def stored_as(self, topic: str) -> str:
        """The bag topic a recorded topic is written to (``<topic>/compressed`` for ``compress_topics``)."""
        return f"{topic}/compressed" if topic in self._compressed else topic

    def _on_message(self, topic: str, data: bytes) -> None:
        stamp = self.get_clock().now().nanoseconds
        msgtype = self._types[topic]
        if topic not in self._qos:  # the publishers' offered QoS, once per topic (its bag connection's metadata)
            self._qos[topic] = offered_qos(self.get_publishers_info_by_topic(topic), msgtype)
        if topic in self._compressed:
            try:
                data, msgtype = self._compress(data), COMPRESSED_TYPE
            except Exception as exc:  # an encoding the codec cannot take: counted and logged, never fatal
                self._write_error(topic, exc)
                return
        if self.bag.put(self.stored_as(topic), msgtype, data, stamp, self._qos[topic]):
            self.counts[topic] += 1
        else:
            self._write_error(topic, RuntimeError("writer queue full: the disk is slower than the topics"))

    def _write_error(self, topic: str, exc: Exception) -> None:
        """Count and log (rate-limited) a message that could not be written; called from both threads."""
        with self._errors_lock:
            self.errors[topic] += 1
        allowed, suppressed = self._limiter.allow((topic, "write"))
        if allowed:
            more = f" [{suppressed} similar suppressed]" if suppressed else ""
            self.get_logger().error(f"cannot write a message of {topic}: {exc!r}{more}")

    def _fatal(self, exc: BaseException) -> None:
        """The storage failed (disk full, ...) or the writer crashed: log it once, stop the process."""
        self.failure = exc
        self.get_logger().fatal(
            f"recording to {self.bag.path} failed: {exc}; stopping. The bag keeps the messages of its closed "
            f"splits ({', '.join(f'{t}={n}' for t, n in sorted(self.bag.written.items())) or 'none'}) and "
            "metadata.yaml lists only them")
        if self._request_stop is not None:
            self._request_stop()

    def stop(self) -> dict[str, Any]:
        """Close the bag; log and (optionally) write the counts; return them."""
        self.bag.close()
        written, rejected = self.bag.written, self.bag.rejected
        summary = {
            "output": str(self.bag.path), "storage": self.bag.storage,
            "counts": {t: written[self.stored_as(t)] for t in self._wanted}, "received": dict(self.counts),
            "errors": dict(self.errors),
            "lost": {t: lost for t, n in self.counts.items()
                     if (lost := n - written[self.stored_as(t)] - rejected[self.stored_as(t)])},
            "splits": len(self.bag.bag.splits),
            "failure": None if self.failure is None else str(self.failure),
            "never_seen": [t for t in self._wanted if t not in self._subs or t in self._waiting],
        }
        log = self.get_logger().error if self.failure is not None else self.get_logger().info
        log(
            f"closed {self.bag.path}: " + ", ".join(f"{t}={n}" for t, n in summary["counts"].items())
            + (f"; lost: {summary['lost']}" if summary["lost"] else "")
            + (f"; never published: {', '.join(summary['never_seen'])}" if summary["never_seen"] else "")
        )
        if self._stats_file:
            Path(self._stats_file).write_text(json.dumps(summary, indent=1))
        return summary


def main(args: list[str] | None = None) -> int:
    """Entry point (``record_node``): record until SIGINT/SIGTERM; 1 on a bad configuration or when the recording
    failed (disk full, I/O error)."""
    made: list[RecordNode] = []

    def make() -> RecordNode:
        node = RecordNode(request_stop=lambda: os.kill(os.getpid(), signal.SIGTERM))
        made.append(node)
        return node

    status = run_node(make, NODE_NAME, SingleThreadedExecutor, args)
    return status or int(bool(made and made[0].failure is not None))


if __name__ == "__main__":
    exit_node(main())
