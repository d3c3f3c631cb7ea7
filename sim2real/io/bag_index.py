"""metadata.yaml of a rosbag2 directory built from the storage files themselves (what they hold, not what a writer
meant to write), written atomically; used by the split recorder (:mod:`sim2real.io.split_bag`) and the repair
tool (:mod:`sim2real.io.bag_repair`).

>>> files = [index_storage_file(p) for p in sorted(bag.glob("*.mcap"))]
>>> write_metadata(bag, "mcap", files)
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.metadata import dump_qos_v9
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from sim2real.core.errors import BagError

__all__ = ["STORAGE_SUFFIXES", "FileIndex", "TopicKey", "count_messages", "fsync_path", "index_storage_file",
           "metadata_document", "write_metadata"]

#: storage name -> suffix of its files
STORAGE_SUFFIXES: Final[dict[str, str]] = {"mcap": ".mcap", "sqlite3": ".db3"}

#: a connection as metadata.yaml lists it: (topic, type, serialization format, type hash, offered QoS as YAML)
TopicKey = tuple[str, str, str, str, str]


@dataclass
class FileIndex:
    """One storage file: its name, time range (ns) and message counts per connection key."""

    name: str
    start_ns: int
    end_ns: int
    counts: Counter[TopicKey] = field(default_factory=Counter)
    qos: dict[TopicKey, list[Any]] = field(default_factory=dict)

    @property
    def message_count(self) -> int:
        """Messages in the file."""
        return sum(self.counts.values())


def _rihs01(conn: Any, typestore: Any) -> str:
    """The connection's type hash: stored (sqlite3), else computed from the typestore / the stored definition."""
    if conn.digest:
        return str(conn.digest)
    try:
        if conn.msgtype not in typestore.fielddefs:
            data = conn.msgdef.data
            if conn.msgdef.format == MessageDefinitionFormat.MSG and data:
                typestore.register(get_types_from_msg(data, conn.msgtype))
            elif conn.msgdef.format == MessageDefinitionFormat.IDL and data:
                typestore.register(get_types_from_idl(data))
        return str(typestore.hash_rihs01(conn.msgtype))
    except Exception:  # an unparsable definition: metadata.yaml allows an empty hash
        return ""


def index_storage_file(path: str | Path) -> FileIndex:
    """Counts, time range and connections of one complete storage file (.db3 / .mcap), read by rosbags as a lone
    file: an sqlite3 file's counts are its rows; an mcap file's come from its summary (or a scan without one).

    Raises BagError naming the file when rosbags cannot open it.
    """
    path = Path(path)
    typestore = get_typestore(Stores.ROS2_KILTED)
    try:
        with Reader(path) as reader:
            index = FileIndex(path.name, reader.start_time, reader.end_time)
            for conn in reader.connections:
                qos = list(conn.ext.offered_qos_profiles)
                key = (conn.topic, conn.msgtype, conn.ext.serialization_format, _rihs01(conn, typestore),
                       yaml.safe_dump(dump_qos_v9(qos)))
                index.counts[key] += conn.msgcount
                index.qos[key] = qos
    except Exception as exc:
        raise BagError(f"cannot read storage file {path}: {type(exc).__name__}: {exc}") from exc
    # rosbags reports end_time as the last message's time + 1; metadata.yaml wants last - first
    index.start_ns, index.end_ns = (index.start_ns, index.end_ns - 1) if index.message_count else (0, 0)
    return index


def count_messages(path: str | Path) -> Counter[str]:
    """Messages per topic that can actually be read from ``path`` (a bag directory or a storage file): every
    message is read (no deserialisation). BagError naming the path when a message cannot be read."""
    counts: Counter[str] = Counter()
    try:
        with Reader(Path(path)) as reader:
            for conn, _, _ in reader.messages():
                counts[conn.topic] += 1
    except Exception as exc:
        raise BagError(f"cannot read back {path}: {type(exc).__name__}: {exc}") from exc
    return counts


def metadata_document(storage: str, files: list[FileIndex]) -> dict[str, Any]:
    """The rosbag2 (version 9) metadata.yaml document of a bag made of ``files``, in order."""
    topics: Counter[TopicKey] = Counter()
    qos: dict[TopicKey, list[Any]] = {}
    for f in files:
        topics.update(f.counts)
        for key, profiles in f.qos.items():
            qos.setdefault(key, profiles)
    for f in files:  # connections without messages (a split opened but the first write failed) are listed too
        for key in f.counts:
            topics.setdefault(key, 0)
    used = [f for f in files if f.message_count]
    start = min((f.start_ns for f in used), default=0)
    end = max((f.end_ns for f in used), default=0)
    return {"rosbag2_bagfile_information": {
        "version": 9,
        "storage_identifier": storage,
        "relative_file_paths": [f.name for f in files],
        "duration": {"nanoseconds": max(0, end - start)},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(f.message_count for f in files),
        "topics_with_message_count": [
            {"topic_metadata": {"name": key[0], "type": key[1], "serialization_format": key[2],
                                "offered_qos_profiles": dump_qos_v9(qos[key]), "type_description_hash": key[3]},
             "message_count": count}
            for key, count in topics.items()],
        "compression_format": "",
        "compression_mode": "",
        "files": [{"path": f.name, "starting_time": {"nanoseconds_since_epoch": f.start_ns},
                   "duration": {"nanoseconds": max(0, f.end_ns - f.start_ns)}, "message_count": f.message_count}
                  for f in files],
        "custom_data": None,
        "ros_distro": "rosbags",
    }}


def fsync_path(path: str | Path) -> None:
    """fsync a file or a directory (its entries), so it survives a power cut, not only a killed process."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_metadata(bag: str | Path, storage: str, files: list[FileIndex]) -> Path:
    """Write ``bag/metadata.yaml`` for ``files`` atomically (temporary file, fsync, rename, fsync of the
    directory): a reader sees the old or the new document, never half of one. OSError when the disk fails."""
    bag = Path(bag)
    target, tmp = bag / "metadata.yaml", bag / "metadata.yaml.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        yaml.safe_dump(metadata_document(storage, files), out, sort_keys=False)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    fsync_path(bag)
    return target
