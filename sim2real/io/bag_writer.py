"""Write rosbag2 recordings (mcap or sqlite3) with rosbags: images, camera info, and raw copies.

No rclpy: messages are built from the ``Stores.ROS2_KILTED`` typestore and serialized to CDR.

>>> with BagWriter("out/run1", storage="mcap") as bag:
...     bag.write_image("/cam/image", rgb, "rgb8", stamp_ns, "camera")
...     bag.write_camera_info("/cam/camera_info", K, stamp_ns, "camera", width=640, height=360)

Failures: a write or close that fails in the storage (disk full, file too large, I/O error) raises
:class:`BagWriteError` naming the bag and the cause. From then on the bag is broken: every later write and the
close raise it again, and the close *aborts* (no metadata.yaml), so a failed bag is never presented as a
complete one. (The rosbags sqlite3 writer keeps every message in one transaction until the close: after a
failed write, or a kill, none of them is in the .db3.) For a recording that survives kills and full disks
see :mod:`sim2real.io.split_bag`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
from rosbags.interfaces import Qos
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore

from sim2real.core.errors import BagError, BagWriteError
from sim2real.io.conversions import image_fields

__all__ = ["STORAGES", "BagWriter", "storage_failure"]

#: storage name -> rosbags plugin
STORAGES: Final[dict[str, StoragePlugin]] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
IMAGE: Final = "sensor_msgs/msg/Image"
CAMERA_INFO: Final = "sensor_msgs/msg/CameraInfo"
#: what the storage layers raise when the disk fails them (OSError: ENOSPC, EFBIG, EIO; sqlite3.Error: "database
#: or disk is full", "disk I/O error")
STORAGE_ERRORS: Final = (OSError, sqlite3.Error)


def storage_failure(path: Path, action: str, exc: BaseException) -> BagWriteError:
    """A BagWriteError naming the bag, what was being done and the cause (errno text when there is one)."""
    cause = f"{exc.strerror} (errno {exc.errno})" if isinstance(exc, OSError) and exc.strerror else repr(exc)
    return BagWriteError(f"cannot {action} bag {path}: {cause}")


class BagWriter:
    """A rosbag2 (format version 9) being written; a context manager. Connections are made on first use.

    ``path`` must not exist yet: an existing recording is never overwritten (:class:`BagError`). ``counts``: messages
    written per topic (handed to the storage; durable only once :meth:`close` returned).
    """

    def __init__(self, path: str | os.PathLike[str], storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}; valid: {', '.join(STORAGES)}")
        self.path = Path(path)
        self.storage = storage
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        self._writer: Writer | None = None
        self._connections: dict[tuple[str, str], Any] = {}
        self._msgtypes: dict[str, str] = {}
        self.count = 0
        self.counts: Counter[str] = Counter()
        #: the storage failure that broke this bag (every later write / close raises it)
        self.failure: BagWriteError | None = None

    # ------------------------------------------------------------------ life cycle
    def open(self) -> BagWriter:
        """Create the bag directory and open it for writing."""
        if self.path.exists():
            raise BagError(f"refusing to overwrite {self.path}: it exists already (choose another --out)")
        try:
            writer = Writer(self.path, version=9, storage_plugin=STORAGES[self.storage])
            writer.open()
        except (WriterError, *STORAGE_ERRORS) as exc:  # a race with another writer, an unwritable parent, /proc
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise BagError(f"cannot create bag {self.path}: {reason}") from exc
        self._writer = writer
        return self

    def set_custom_data(self, key: str, value: str) -> None:
        """Record ``key: value`` in metadata.yaml's ``custom_data`` (e.g. what produced the bag); after open()."""
        if self._writer is None:
            raise BagError(f"bag {self.path} is not open")
        self._writer.set_custom_data(key, value)

    def close(self) -> None:
        """Finish the bag (storage index, then metadata.yaml). Idempotent.

        Raises BagWriteError, after aborting, when the bag is broken or the close itself fails: no metadata.yaml
        is then left claiming messages the storage does not hold.
        """
        if self._writer is None:
            return
        if self.failure is not None:
            self.abort()
            raise self.failure
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except STORAGE_ERRORS as exc:
            self.failure = storage_failure(self.path, "close", exc)
            self._writer = writer
            self.abort()
            raise self.failure from exc

    def abort(self) -> None:
        """Stop writing without finishing: close the storage file as it is and write no metadata.yaml (and remove
        one a failed close may have left). Never raises. Idempotent."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # the storage is broken already; nothing more to save
                writer.abort()
        for name in ("metadata.yaml", "metadata.yaml.tmp"):
            (self.path / name).unlink(missing_ok=True)

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
            return
        with contextlib.suppress(BagError):  # keep what was written before the error; the first error is raised
            self.close()

    # ------------------------------------------------------------------ writing
    def _connection(self, topic: str, msgtype: str, msgdef: str | None = None, rihs01: str | None = None,
                    *, another_type_ok: bool = False, offered_qos: Sequence[Qos] = ()) -> Any:
        if self.failure is not None:
            raise self.failure
        if self._writer is None:
            raise BagError(f"bag {self.path} is not open for writing")
        if topic in self._msgtypes and self._msgtypes[topic] != msgtype and not another_type_ok:
            raise BagError(f"topic {topic} was written as {self._msgtypes[topic]}, not {msgtype}")
        conn = self._connections.get((topic, msgtype))
        if conn is None:
            if msgdef is None and msgtype not in self.typestore.types:
                raise BagError(f"message type {msgtype!r} of {topic} is unknown to the ROS2_KILTED typestore; "
                               "pass its msgdef")
            try:
                conn = self._writer.add_connection(
                    topic, msgtype, typestore=None if msgdef is not None else self.typestore,
                    msgdef=msgdef, rihs01=rihs01, offered_qos_profiles=tuple(offered_qos))
            except STORAGE_ERRORS as exc:
                self.failure = storage_failure(self.path, "write to", exc)
                raise self.failure from exc
            self._connections[(topic, msgtype)] = conn
            self._msgtypes.setdefault(topic, msgtype)
        return conn

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        """A typestore ``std_msgs/msg/Header``."""
        types = self.typestore.types
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                            frame_id=frame_id)

    def write(self, topic: str, msg: Any, timestamp: int) -> None:
        """Serialize a typestore message (its ``__msgtype__`` names the type) at bag time ``timestamp`` (ns)."""
        raw = self.typestore.serialize_cdr(msg, msg.__msgtype__)
        self.write_raw(topic, msg.__msgtype__, raw, timestamp)

    def write_raw(self, topic: str, msgtype: str, rawdata: bytes | memoryview, timestamp: int, *,
                  msgdef: str | None = None, rihs01: str | None = None, another_type_ok: bool = False,
                  offered_qos: Sequence[Qos] = ()) -> None:
        """Copy already-serialized CDR bytes (e.g. from another bag); ``msgdef`` for types not in the store.

        A topic keeps the type it was first written with (BagError otherwise) unless ``another_type_ok``: a copy
        of a bag whose topic has connections of several types (rosbag2 allows it) keeps them all.
        ``offered_qos``: the QoS profiles the topic's publishers offered (metadata.yaml's
        ``offered_qos_profiles``, what ``ros2 bag play`` republishes with), taken when the topic's first
        message makes its connection. Raises BagWriteError when the storage fails (the bag is broken from then on).
        """
        conn = self._connection(topic, msgtype, msgdef, rihs01, another_type_ok=another_type_ok,
                                offered_qos=offered_qos)
        assert self._writer is not None
        try:
            self._writer.write(conn, int(timestamp), rawdata)
        except STORAGE_ERRORS as exc:
            self.failure = storage_failure(self.path, "write to", exc)
            raise self.failure from exc
        self.count += 1
        self.counts[topic] += 1

    def write_image(self, topic: str, array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str, *,
                    timestamp: int | None = None) -> None:
        """A ``sensor_msgs/msg/Image`` of ``array``; bag time = ``timestamp`` or the header stamp."""
        msg = self.typestore.types[IMAGE](header=self.header(stamp_ns, frame_id),
                                          **image_fields(array, encoding, data_type="numpy"))
        self.write(topic, msg, stamp_ns if timestamp is None else timestamp)

    def write_camera_info(self, topic: str, k: np.ndarray, stamp_ns: int, frame_id: str, *, width: int,
                          height: int, d: np.ndarray | None = None, distortion_model: str = "plumb_bob",
                          timestamp: int | None = None) -> None:
        """A ``sensor_msgs/msg/CameraInfo``: K = ``k`` (3x3), R = I, P = [K | 0], D = ``d`` (default 5 zeros)."""
        types = self.typestore.types
        K = np.asarray(k, dtype=np.float64).reshape(3, 3)
        P = np.zeros((3, 4))
        P[:, :3] = K
        msg = types[CAMERA_INFO](
            header=self.header(stamp_ns, frame_id), height=int(height), width=int(width),
            distortion_model=distortion_model,
            d=np.zeros(5) if d is None else np.asarray(d, dtype=np.float64).ravel(),
            k=K.ravel().copy(), r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0,
            roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                          do_rectify=False),
        )
        self.write(topic, msg, stamp_ns if timestamp is None else timestamp)
