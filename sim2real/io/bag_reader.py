"""Streaming rosbag2 reading (sqlite3 and mcap, split bags, metadata versions 4-9) through ``rosbags``.

No rclpy needed. Messages are deserialised lazily, one at a time, so a bag is never loaded into memory.
Image topics decode to numpy through :mod:`sim2real.io.conversions`, the same code the live nodes use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import yaml
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from sim2real.core.errors import BagError
from sim2real.io.conversions import compressed_to_array, image_to_array

__all__ = ["IMAGE_TYPES", "WORLD_SEED_KEY", "BagMessage", "BagReader", "TopicInfo", "bag_custom_data", "decode_image"]

IMAGE_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"})


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: its name, message type and the message count its metadata states."""

    name: str
    msgtype: str
    count: int


@dataclass(frozen=True)
class BagMessage:
    """A deserialised message with its topic and bag (receive) timestamp in nanoseconds."""

    topic: str
    timestamp_ns: int
    msg: Any

    @property
    def stamp_ns(self) -> int:
        """The message's own ``header.stamp`` in nanoseconds (error if it has no header)."""
        stamp = self.msg.header.stamp
        return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def decode_image(msgtype: str, msg: Any) -> np.ndarray:
    """Decode an Image or CompressedImage message (rosbags or rclpy) to a numpy array."""
    if msgtype == "sensor_msgs/msg/Image":
        return image_to_array(msg)
    if msgtype == "sensor_msgs/msg/CompressedImage":
        return compressed_to_array(msg)
    raise BagError(f"not an image type: {msgtype!r} (expected one of {sorted(IMAGE_TYPES)})")


#: metadata.yaml ``custom_data`` key under which ``sim2real-sim record`` stores the procedural world seed
WORLD_SEED_KEY = "sim2real.procedural_world_seed"


def bag_custom_data(path: str | Path) -> dict[str, str]:
    """The ``custom_data`` map of a bag directory's metadata.yaml ({} when absent, unreadable or not a bag)."""
    meta = Path(path) / "metadata.yaml"
    try:
        doc = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    info = doc.get("rosbag2_bagfile_information") if isinstance(doc, dict) else None
    data = info.get("custom_data") if isinstance(info, dict) else None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


class BagReader:
    """Context manager over one rosbag2 recording (a directory with metadata.yaml, or a lone .db3/.mcap).

    Example::

        with BagReader("run1") as bag:
            bag.require_topics(["/sim/camera/image"])
            for m in bag.messages(["/sim/camera/image"]):
                rgb = decode_image("sensor_msgs/msg/Image", m.msg)
    """

    def __init__(self, path: str | Path, typestore: Any | None = None) -> None:
        self.path = Path(path)
        self.typestore = typestore if typestore is not None else get_typestore(Stores.ROS2_KILTED)
        self._reader: Reader | None = None
        self._registered: set[str] = set()

    # -- opening ------------------------------------------------------------------------------------------
    def open(self) -> BagReader:
        """Open the bag; every failure becomes a BagError that names the path and the reason."""
        if not self.path.exists():
            raise BagError(f"bag not found: {self.path}")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            storage = sorted(str(p.relative_to(self.path)) for p in (*self.path.glob("*"), *self.path.glob("*/*"))
                             if p.suffix in (".db3", ".mcap"))
            hint = (f"; it holds storage files {storage}: open one directly, or run `sim2real-bag-repair "
                    f"{self.path}` (a recording that was killed or ran out of disk; like `ros2 bag reindex`) to "
                    "recreate metadata.yaml from them") if storage else ""
            raise BagError(f"{self.path} is not a rosbag2 recording: no metadata.yaml{hint}")
        try:
            reader = Reader(self.path)
            reader.open()
        except ReaderError as exc:
            raise BagError(f"cannot read bag {self.path}: {exc}") from exc
        except Exception as exc:  # corrupt sqlite / mcap / yaml surface as many exception types
            raise BagError(f"corrupt or unreadable bag {self.path}: {type(exc).__name__}: {exc}") from exc
        self._reader = reader
        return self

    def close(self) -> None:
        """Close the underlying storage (idempotent)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            raise BagError(f"bag {self.path} is not open: use it as a context manager")
        return self._reader

    # -- metadata -----------------------------------------------------------------------------------------
    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Topic name -> TopicInfo, counts summed over connections (split bags, several publishers). A topic
        recorded with several types (rosbag2 allows it) shows its first connection's type; see
        :attr:`mixed_type_topics`, which :meth:`require_topics` refuses."""
        out: dict[str, TopicInfo] = {}
        for conn in self.reader.connections:
            prev = out.get(conn.topic)
            count = conn.msgcount + (prev.count if prev else 0)
            out[conn.topic] = TopicInfo(conn.topic, prev.msgtype if prev else conn.msgtype, count)
        return out

    @property
    def mixed_type_topics(self) -> dict[str, list[str]]:
        """Topics whose connections have different message types -> their types (sorted)."""
        types: dict[str, set[str]] = {}
        for conn in self.reader.connections:
            types.setdefault(conn.topic, set()).add(conn.msgtype)
        return {topic: sorted(found) for topic, found in types.items() if len(found) > 1}

    @property
    def message_count(self) -> int:
        """Total message count as the bag's metadata states it."""
        return int(self.reader.message_count)

    def require_topics(self, names: Iterable[str], msgtypes: Iterable[str] | None = None) -> None:
        """Raise BagError if a topic is missing (listing those that exist), has several types or an unexpected
        type."""
        names = list(names)
        topics = self.topics
        for name in names:
            if name not in topics:
                listing = ", ".join(f"{t.name} [{t.msgtype}]" for t in topics.values()) or "none"
                raise BagError(f"topic {name!r} not in bag {self.path}; topics there: {listing}")
        mixed = self.mixed_type_topics
        for name in names:
            if name in mixed:
                raise BagError(f"topic {name!r} in {self.path} was recorded with several types {mixed[name]}: it "
                               "cannot be read as one stream (record or remap each type to its own topic)")
        if msgtypes is not None:
            allowed = set(msgtypes)
            for name in names:
                if topics[name].msgtype not in allowed:
                    raise BagError(f"topic {name!r} in {self.path} has type {topics[name].msgtype}, "
                                   f"expected one of {sorted(allowed)}")

    # -- reading ------------------------------------------------------------------------------------------
    def _register(self, conn: Any) -> None:
        """Make the typestore know ``conn.msgtype``, from the definition stored in the bag if needed."""
        if conn.msgtype in self._registered or conn.msgtype in self.typestore.fielddefs:
            return
        msgdef = conn.msgdef
        try:
            if msgdef.format == MessageDefinitionFormat.MSG and msgdef.data:
                types = get_types_from_msg(msgdef.data, conn.msgtype)
            elif msgdef.format == MessageDefinitionFormat.IDL and msgdef.data:
                types = get_types_from_idl(msgdef.data)
            else:
                raise BagError(f"bag {self.path} does not carry a definition of {conn.msgtype} "
                               f"(topic {conn.topic}) and the ROS 2 Kilted typestore does not know it")
            self.typestore.register(types)
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"cannot parse the definition of {conn.msgtype} (topic {conn.topic}) "
                           f"stored in {self.path}: {exc}") from exc
        self._registered.add(conn.msgtype)

    def raw_messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[Any, int, bytes]]:
        """Yield ``(connection, timestamp_ns, serialized bytes)`` in bag time order, without decoding."""
        wanted = None if topics is None else set(topics)
        conns = [c for c in self.reader.connections if wanted is None or c.topic in wanted]
        try:
            yield from self.reader.messages(connections=conns)
        except ReaderError as exc:
            raise BagError(f"error reading {self.path}: {exc}") from exc
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"corrupt data in bag {self.path}: {type(exc).__name__}: {exc}") from exc

    def messages(self, topics: Iterable[str]) -> Iterator[BagMessage]:
        """Yield deserialised messages of ``topics`` in bag time order (streaming)."""
        topics = list(topics)
        self.require_topics(topics)
        for conn, timestamp, raw in self.raw_messages(topics):
            self._register(conn)
            try:
                msg = self.typestore.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:
                raise BagError(f"cannot deserialise a {conn.msgtype} message on {conn.topic} at "
                               f"t={timestamp} ns in {self.path}: {exc}") from exc
            yield BagMessage(conn.topic, int(timestamp), msg)
