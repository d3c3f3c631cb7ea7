"""Write rosbag2 recordings (mcap or sqlite3) with rosbags: images, camera info, and raw copies.

No rclpy: messages are built from the ``Stores.ROS2_KILTED`` typestore and serialized to CDR.

>>> with BagWriter("out/run1", storage="mcap") as bag:
...     bag.write_image("/cam/image", rgb, "rgb8", stamp_ns, "camera")
...     bag.write_camera_info("/cam/camera_info", K, stamp_ns, "camera", width=640, height=360)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
from rosbags.interfaces import Qos
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore

from sim2real.core.errors import BagError
from sim2real.io.conversions import image_fields

__all__ = ["STORAGES", "BagWriter"]

#: storage name -> rosbags plugin
STORAGES: Final[dict[str, StoragePlugin]] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
IMAGE: Final = "sensor_msgs/msg/Image"
CAMERA_INFO: Final = "sensor_msgs/msg/CameraInfo"


class BagWriter:
    """A rosbag2 (format version 9) being written; a context manager. Connections are made on first use.

    ``path`` must not exist yet: an existing recording is never overwritten (:class:`BagError`).
    """

    def __init__(self, path: str | os.PathLike[str], storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}; valid: {', '.join(STORAGES)}")
        self.path = Path(path)
        self.storage = storage
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        self._writer: Writer | None = None
        self._connections: dict[str, Any] = {}
        self._msgtypes: dict[str, str] = {}
        self.count = 0

    # ------------------------------------------------------------------ life cycle
    def open(self) -> BagWriter:
        """Create the bag directory and open it for writing."""
        if self.path.exists():
            raise BagError(f"refusing to overwrite {self.path}: it exists already (choose another --out)")
        writer = Writer(self.path, version=9, storage_plugin=STORAGES[self.storage])
        try:
            writer.open()
        except WriterError as exc:  # e.g. a race with another writer, or an unwritable parent
            raise BagError(f"cannot open bag {self.path} for writing: {exc}") from exc
        self._writer = writer
        return self

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml). Idempotent."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def _connection(self, topic: str, msgtype: str, msgdef: str | None = None, rihs01: str | None = None,
                    offered_qos: Sequence[Qos] = ()) -> Any:
        if self._writer is None:
            raise BagError(f"bag {self.path} is not open for writing")
        conn = self._connections.get(topic)
        if conn is None:
            if msgdef is None and msgtype not in self.typestore.types:
                raise BagError(f"message type {msgtype!r} of {topic} is unknown to the ROS2_KILTED typestore; "
                               "pass its msgdef")
            conn = self._writer.add_connection(
                topic, msgtype, typestore=None if msgdef is not None else self.typestore,
                msgdef=msgdef, rihs01=rihs01, offered_qos_profiles=tuple(offered_qos))
            self._connections[topic] = conn
            self._msgtypes[topic] = msgtype
        elif self._msgtypes[topic] != msgtype:
            raise BagError(f"topic {topic} was written as {self._msgtypes[topic]}, not {msgtype}")
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
                  msgdef: str | None = None, rihs01: str | None = None, offered_qos: Sequence[Qos] = ()) -> None:
        """Copy already-serialized CDR bytes (e.g. from another bag); ``msgdef`` for types not in the store.

        ``offered_qos``: the QoS profiles the topic's publishers offered (metadata.yaml's
        ``offered_qos_profiles``, what ``ros2 bag play`` republishes with), taken when the topic's first
        message makes its connection."""
        conn = self._connection(topic, msgtype, msgdef, rihs01, offered_qos)
        assert self._writer is not None
        self._writer.write(conn, int(timestamp), rawdata)
        self.count += 1

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
