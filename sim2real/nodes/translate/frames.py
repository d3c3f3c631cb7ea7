"""Pure frame logic of translate_node (no rclpy): the unit of work, checks on arrival, decoding, output
encoding, the preview, and the topic names of one camera. Message arguments are duck-typed ``sensor_msgs``
messages (``Image``, ``CompressedImage``, ``CameraInfo``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from sim2real.core.colour import LUMA_WEIGHTS
from sim2real.core.errors import ImageConversionError, LabelError
from sim2real.core.labels import IGNORE_ID, SMALL_CLASSES, THING_CLASSES, overlay
from sim2real.io.conversions import RGB8_ENCODINGS, check_image_layout, image_to_array, to_rgb8

__all__ = [
    "CAMERA_INFO",
    "COMPRESSED",
    "IMAGE",
    "INSTANCE",
    "OUTPUT_ENCODINGS",
    "OUT_PREFIX",
    "SEMANTIC",
    "Frame",
    "FrameError",
    "camera_topics",
    "check_camera_info",
    "check_image_message",
    "compose_preview",
    "compressed_size",
    "decode_frame",
    "encode_output",
    "input_encoding",
    "instances_without_class",
]

IMAGE, SEMANTIC, INSTANCE, CAMERA_INFO = "image", "semantic", "instance", "camera_info"
COMPRESSED: Final = "compressed"  # the output translated/image/compressed
OUT_PREFIX: Final = "translated"
OUTPUT_ENCODINGS: Final = ("rgb8", "bgr8", "input")
_INPUT_OUTPUTS: Final = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
#: classes whose pixels may carry instance ids: things, plus the small objects (pole, light, sign) that the
#: procedural simulator gives ids so the instance branch can protect them
_OBJECT_LUT: Final = np.isin(np.arange(256), sorted(THING_CLASSES | SMALL_CLASSES))


@dataclass
class Frame:
    """One unit of work: the received messages (labels None when translating without them)."""

    image: Any
    semantic: Any | None
    instance: Any | None
    camera_info: Any | None
    stamp_ns: int
    received: float  # time.monotonic() when the image message reached the callback
    mode: str = "synced"  # "synced" | "translate_without_instances" | "passthrough"
    camera: str = ""  # the camera key ("" = the single generic camera)
    epoch: int = 0  # the camera's time line (a new one after each backward time jump of its stamps)

    @classmethod
    def from_set(cls, items: Any, stamp_ns: int, camera: str, epoch: int = 0) -> Frame:
        """The frame of a synchronised set: ``items[topic] = (message, receive time)`` for image, semantic,
        instance and (when synchronised) camera_info; the receive time is the image's."""
        image, received = items[IMAGE]
        camera_info = items[CAMERA_INFO][0] if CAMERA_INFO in items else None
        return cls(image, items[SEMANTIC][0], items[INSTANCE][0], camera_info, stamp_ns, received,
                   camera=camera, epoch=epoch)


class FrameError(Exception):
    """A malformed frame: ``topic`` (generic name) and a short ``reason`` key, plus the detail message."""

    def __init__(self, topic: str, reason: str, detail: str) -> None:
        """Store topic, reason and detail."""
        super().__init__(detail)
        self.topic, self.reason, self.detail = topic, reason, detail


def _label_array(msg: Any, topic: str, allowed: Sequence[np.dtype]) -> np.ndarray:
    try:
        arr = image_to_array(msg)
    except ImageConversionError as exc:
        raise FrameError(topic, "conversion", str(exc)) from exc
    if arr.ndim != 2 or arr.dtype not in allowed:
        names = "/".join(str(np.dtype(d)) for d in allowed)
        raise FrameError(
            topic, "label_encoding",
            f"{topic} must be a one-channel {names} image, got encoding {msg.encoding!r} ({arr.dtype}, {arr.shape})",
        )
    return arr


def _check_pixels(topic: str, msg: Any, max_pixels: int | None) -> None:
    """FrameError ``too_large`` for a message of more than ``max_pixels`` (None: no limit)."""
    w, h = int(getattr(msg, "width", 0)), int(getattr(msg, "height", 0))
    if max_pixels is not None and w * h > max_pixels:
        raise FrameError(topic, "too_large",
                         f"{topic} is {w}x{h} = {w * h} pixels, above max_image_pixels={max_pixels}")


def _check_guards(frame: Frame, max_pixels: int | None) -> None:
    """FrameError for a message above ``max_pixels`` (before anything is allocated) or a label / camera_info
    whose ``header.frame_id`` differs from the image's."""
    msgs = ((IMAGE, frame.image), (SEMANTIC, frame.semantic), (INSTANCE, frame.instance),
            (CAMERA_INFO, frame.camera_info))
    for topic, msg in msgs[:3]:
        if msg is not None:
            _check_pixels(topic, msg, max_pixels)
    image_frame = frame.image.header.frame_id
    for topic, msg in msgs[1:]:
        if msg is not None and msg.header.frame_id != image_frame:
            raise FrameError(topic, "frame_id_mismatch",
                             f"{topic} has frame_id {msg.header.frame_id!r} but image has {image_frame!r}")


def check_camera_info(info: Any, height: int, width: int) -> str | None:
    """Why a ``sensor_msgs/CameraInfo`` does not describe a ``height`` x ``width`` image, or None when it does.

    The image a camera_info describes is its ``roi`` (when set) or its full ``width`` x ``height``, divided by
    ``binning_x`` / ``binning_y`` (0 and 1: no binning), as REP 104 defines them. A camera_info with width and
    height 0 (an uncalibrated camera) describes any size.
    """
    full_w, full_h = int(info.width), int(info.height)
    if full_w == 0 and full_h == 0:
        return None
    roi = info.roi
    w, h = (int(roi.width), int(roi.height)) if roi.width and roi.height else (full_w, full_h)
    w, h = w // max(1, int(info.binning_x)), h // max(1, int(info.binning_y))
    if (w, h) == (width, height):
        return None
    return (f"camera_info describes a {w}x{h} image (width {full_w}, height {full_h}, roi {roi.width}x{roi.height},"
            f" binning {info.binning_x}x{info.binning_y}) but image is {width}x{height}")


def compressed_size(msg: Any) -> tuple[int, int]:
    """``(width, height)`` a ``sensor_msgs/CompressedImage`` decodes to, read from the JPEG / PNG header only
    (Pillow opens lazily: nothing is decoded), so a decompression bomb is refused before it is decoded.
    Raises :class:`FrameError` (``image``, ``conversion``) for data that is not a readable image."""
    import io
    import warnings

    from PIL import Image as PilImage
    from PIL import UnidentifiedImageError

    data = bytes(msg.data)
    if not data:
        raise FrameError(IMAGE, "conversion", f"CompressedImage.data is empty (format {msg.format!r})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PilImage.DecompressionBombWarning)  # the caller checks the size
            with PilImage.open(io.BytesIO(data)) as img:
                return int(img.size[0]), int(img.size[1])
    except PilImage.DecompressionBombError as exc:  # above twice Pillow's own limit (179 megapixels)
        raise FrameError(IMAGE, "too_large", f"CompressedImage ({len(data)} bytes) {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FrameError(IMAGE, "conversion", f"CompressedImage ({len(data)} bytes, format {msg.format!r}) is"
                                              f" not a readable image: {exc}") from None


def input_encoding(msg: Any) -> str:
    """An Image's encoding; for a CompressedImage the original encoding its image_transport format names
    (``"rgb8; jpeg compressed bgr8"`` -> ``rgb8``), else ``rgb8`` (what the node decodes it to)."""
    if hasattr(msg, "encoding"):
        return str(msg.encoding)
    original = str(msg.format).split(";", 1)[0].strip() if ";" in str(msg.format) else ""
    return original or "rgb8"


def check_image_message(msg: Any, max_pixels: int | None = None) -> None:
    """FrameError (topic ``image``) for an image above ``max_pixels``, with a broken layout (encoding,
    height / width / step, ``len(data)``) or an encoding that cannot become rgb8, checked without reading
    pixels: cheap enough for the callback, so such an image is counted as it arrives and never takes a good
    frame's place in the queue (value problems such as NaN in a float image are still found in the worker).
    A CompressedImage is checked from its header: readable, and its decoded size within ``max_pixels``."""
    if hasattr(msg, "format"):
        w, h = compressed_size(msg)
        if max_pixels is not None and w * h > max_pixels:
            raise FrameError(IMAGE, "too_large", f"{IMAGE} decodes to {w}x{h} = {w * h} pixels, above"
                                                 f" max_image_pixels={max_pixels}")
        return
    _check_pixels(IMAGE, msg, max_pixels)
    try:
        check_image_layout(msg)
    except ImageConversionError as exc:
        raise FrameError(IMAGE, "conversion", str(exc)) from exc
    if msg.encoding not in RGB8_ENCODINGS:
        raise FrameError(IMAGE, "conversion", f"cannot translate encoding {msg.encoding!r}; supported encodings:"
                                              f" {', '.join(sorted(RGB8_ENCODINGS))}")


def instances_without_class(semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """(H, W) bool: instance pixels (id != 0) on stuff (road, sky, ...) or ignore: ids with no object class."""
    return (instance != 0) & ~_OBJECT_LUT[semantic]


def decode_frame(frame: Frame, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rgb (H, W, 3) uint8, semantic (H, W) uint8, instance (H, W) uint16)`` of a frame.

    Missing labels become semantic = 255 (ignore) and instance = 0. Raises :class:`FrameError` for a message
    above ``max_pixels``, label / camera_info frame_ids that differ from the image's, a bad encoding / size,
    label maps whose size differs from the image's, or a camera_info that describes another image size
    (:func:`check_camera_info`).
    """
    _check_guards(frame, max_pixels)
    try:
        rgb = to_rgb8(frame.image)
    except ImageConversionError as exc:
        raise FrameError(IMAGE, "conversion", str(exc)) from exc
    hw = rgb.shape[:2]
    if frame.semantic is None:
        semantic = np.full(hw, IGNORE_ID, dtype=np.uint8)
    else:
        semantic = _label_array(frame.semantic, SEMANTIC, (np.dtype(np.uint8),))
    if frame.instance is None:
        instance = np.zeros(hw, dtype=np.uint16)
    else:
        instance = _label_array(frame.instance, INSTANCE, (np.dtype(np.uint16), np.dtype(np.uint8)))
        instance = instance.astype(np.uint16, copy=False)
    for topic, arr in ((SEMANTIC, semantic), (INSTANCE, instance)):
        if arr.shape != hw:
            raise FrameError(
                topic, "size_mismatch", f"{topic} is {arr.shape[1]}x{arr.shape[0]} but image is {hw[1]}x{hw[0]}"
            )
    if frame.camera_info is not None and (reason := check_camera_info(frame.camera_info, *hw)):
        raise FrameError(CAMERA_INFO, "size_mismatch", reason)
    return rgb, semantic, instance


def encode_output(rgb: np.ndarray, output_encoding: str, input_encoding: str) -> tuple[np.ndarray, str, bool]:
    """The translated ``rgb`` (H, W, 3) uint8 in the requested encoding: ``(array, encoding, exact)``.

    ``output_encoding`` ``"input"`` reproduces the input's encoding for rgb8 / bgr8 / rgba8 / bgra8 / mono8
    (alpha 255, mono = ITU-R BT.601 luma); for any other input encoding it gives rgb8 and ``exact=False``.
    """
    target = input_encoding if output_encoding == "input" else output_encoding
    if target not in _INPUT_OUTPUTS:
        if output_encoding != "input":
            raise ValueError(f"output_encoding must be one of {OUTPUT_ENCODINGS}, got {output_encoding!r}")
        return rgb, "rgb8", False
    if target == "rgb8":
        return rgb, "rgb8", True
    if target == "mono8":
        luma = rgb.astype(np.float32) @ np.array(LUMA_WEIGHTS, dtype=np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8), "mono8", True
    color = rgb[:, :, ::-1] if target.startswith("bgr") else rgb
    if target.endswith("a8"):
        alpha = np.full((*rgb.shape[:2], 1), 255, dtype=np.uint8)
        return np.concatenate([color, alpha], axis=2), target, True
    return np.ascontiguousarray(color), target, True


def compose_preview(sim_rgb: np.ndarray, translated: np.ndarray, semantic: np.ndarray) -> np.ndarray:
    """``sim | translated | translated with the semantic palette blended in``: (H, 3W, 3) uint8."""
    try:
        labelled = overlay(translated, semantic, alpha=0.5)
    except LabelError:  # ids outside the canonical space: show the translated image instead
        labelled = translated
    return np.concatenate([sim_rgb, translated, labelled], axis=1)


def camera_topics(namespace: str, input_transport: str = "raw") -> tuple[dict[str, str], dict[str, str]]:
    """Input and output topic names of one camera.

    ``""`` (single camera): the generic names ``image`` ... and ``translated/image`` ... (remapped by launch).
    ``"/front"`` or ``"front"``: ``/front/image`` ... (``front/image`` ...) and ``translated/front/image`` ...
    ``input_transport`` ``compressed``: the image comes from ``<image>/compressed`` (image_transport's name).
    The outputs include ``compressed``: ``translated/image/compressed``.
    """
    ns = namespace.strip().rstrip("/")
    inputs = {name: f"{ns}/{name}" if ns else name for name in (IMAGE, SEMANTIC, INSTANCE, CAMERA_INFO)}
    if input_transport == "compressed":
        inputs[IMAGE] += "/compressed"
    sub = ns.lstrip("/")
    out = f"{OUT_PREFIX}/{sub}" if sub else OUT_PREFIX
    outputs = {name: f"{out}/{name}" for name in (IMAGE, SEMANTIC, INSTANCE, CAMERA_INFO, "preview")}
    outputs[COMPRESSED] = f"{out}/image/compressed"
    return inputs, outputs
