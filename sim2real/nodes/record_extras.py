"""What record_node adds to the bytes it records: the QoS profiles the publishers offered (stored in the bag's
metadata as ``offered_qos_profiles``, as ``ros2 bag record`` does), and image compression for the topics it is
asked to store compressed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from rclpy.duration import Duration
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from sensor_msgs.msg import Image

from sim2real.core.errors import ConfigError
from sim2real.io.conversions import array_to_compressed, image_to_array

__all__ = ["COMPRESSED_FORMATS", "COMPRESSED_TYPE", "ImageCompressor", "offered_qos", "to_bag_qos"]

COMPRESSED_FORMATS: Final = ("jpeg", "png")
COMPRESSED_TYPE: Final = "sensor_msgs/msg/CompressedImage"
_NS: Final = 1_000_000_000


def _time(duration: Duration) -> QosTime:
    sec, nsec = divmod(int(duration.nanoseconds), _NS)
    return QosTime(sec=sec, nsec=nsec)


def to_bag_qos(profile: Any) -> Qos:
    """An rclpy ``QoSProfile`` as rosbags' ``Qos`` (the policy numbers are rmw's in both)."""
    return Qos(
        history=QosHistory(int(profile.history)), depth=int(profile.depth),
        reliability=QosReliability(int(profile.reliability)), durability=QosDurability(int(profile.durability)),
        deadline=_time(profile.deadline), lifespan=_time(profile.lifespan),
        liveliness=QosLiveliness(int(profile.liveliness)),
        liveliness_lease_duration=_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


def offered_qos(publishers: Iterable[Any], msgtype: str) -> tuple[Qos, ...]:
    """The QoS profiles offered by the ``msgtype`` publishers among ``publishers`` (``TopicEndpointInfo``)."""
    return tuple(to_bag_qos(info.qos_profile) for info in publishers if info.topic_type == msgtype)


class ImageCompressor:
    """Serialized ``sensor_msgs/Image`` -> serialized ``sensor_msgs/CompressedImage`` (jpeg or png, header and
    image_transport format string kept), for topics stored as ``<topic>/compressed``."""

    def __init__(self, fmt: str, jpeg_quality: int, png_level: int) -> None:
        """Validated codec settings (ConfigError names the bad one)."""
        if fmt not in COMPRESSED_FORMATS:
            raise ConfigError(f"compressed_format must be one of {', '.join(COMPRESSED_FORMATS)}; got {fmt!r}")
        self.fmt, self.jpeg_quality, self.png_level = fmt, jpeg_quality, png_level

    def __call__(self, data: bytes) -> bytes:
        """Compress one serialized Image (ImageConversionError for an encoding the codec cannot take)."""
        msg = deserialize_message(data, Image)
        compressed = array_to_compressed(image_to_array(msg), msg.encoding, self.fmt, self.jpeg_quality,  # type: ignore[arg-type]
                                         msg.header, png_level=self.png_level)
        return serialize_message(compressed)
