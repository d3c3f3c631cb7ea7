"""translate_node: simulator RGB + semantic + instance in, photorealistic RGB + the unchanged labels out.

Topics (generic names, remapped by the launch file / ``sim2real-launch``; e.g. ``-r image:=/sim/camera/image``):

=========================== ============================= ===================================================
subscribed                  type                          notes
=========================== ============================= ===================================================
``image``                   sensor_msgs/Image             any colour or mono encoding ``to_rgb8`` reads
``semantic``                sensor_msgs/Image             mono8 / 8UC1, canonical train ids (0..18, 255)
``instance``                sensor_msgs/Image             16UC1 / mono16 (8-bit accepted), 0 = no instance
``camera_info``             sensor_msgs/CameraInfo        part of the synchronised set (``sync_camera_info``)
=========================== ============================= ===================================================

Published: ``translated/image`` (header = the input image's header, exactly; encoding ``output_encoding``),
``translated/semantic``, ``translated/instance``, ``translated/camera_info`` (the *same* message objects that
were received, republished: every field and payload byte identical, same header), ``translated/preview``
(sim | translated | label overlay, at most ``preview_rate_hz``; 0 = off) and ``/diagnostics``
(``diagnostics_period_s``).

Inputs use sensor-data QoS (best effort, depth 5) and outputs reliable depth 5; both are overridable per topic
from a params file (``qos_overrides./<resolved topic>.subscription|publisher.reliability|depth|history``).

Data flow: the four subscriptions (one mutually exclusive callback group) read the header stamp (the image
callback also checks the image's layout without reading pixels, :func:`check_image_message`, so a malformed
image is counted on arrival) and feed :class:`~sim2real.io.sync.StampSynchronizer`; a complete set goes into the
camera's keep-latest slot (:class:`~sim2real.io.sync.KeyedLatestSlots`; a set not yet taken is dropped as
``superseded``), and one worker thread, woken by the slots' condition variable, decodes, translates and
publishes. Subscriptions are never blocked by inference; a frame older than one already published is never
published (dropped as ``stale``).

Missing labels: when a required label topic has been silent for ``label_timeout_s`` a warning names it
(repeated every ``label_timeout_s``), and ``label_policy`` decides: ``wait`` keeps waiting (images drop as
``sync_overflow`` / ``unmatched``), ``translate_without_instances`` translates images alone with semantic = 255
and instance = 0 (labels are not republished then), ``passthrough`` republishes the input image unchanged as
``translated/image``.

Accounting: see :mod:`sim2real.runtime.node_stats`. ``stats_file`` (when set) receives the final counters as JSON at
shutdown, where ``frames_in == frames_out + dropped_total`` holds; the last log line says the same.

Inference backend (``backend``, read-only): ``auto`` (default) runs onnxruntime on the CPU in fp32 (the graph
is exported for the warm-up size at start-up, and for any new frame size on its first frame, then cached
under ``~/.cache/sim2real/onnx`` keyed by the checkpoint's tensor digest and the size) and eager torch on CUDA;
``torch`` / ``onnxruntime`` force one (onnxruntime: CPU and fp32 only, else the node does not start).

Parameters are declared once with descriptors (ranges, read-only) and validated in a set-parameters
callback; ``model`` may be changed at run time: the new checkpoint is loaded (and warmed up) inside the
parameter request and the change is rejected, with the reason, if it does not load, keeping the old model.
Several cameras: ``cameras:=['/front', '/left']`` makes one node serve each namespace (inputs ``<ns>/image``
..., outputs ``translated/<ns>/image`` ..., each with its own synchroniser, label watch and keep-latest slot);
the worker takes the newest pending set of every camera at once and translates frames of one size in batches
of up to ``max_batch``. Empty ``cameras`` (default) = one camera on the generic names above.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image

from sim2real.core.errors import ImageConversionError, LabelError, Sim2RealError
from sim2real.core.labels import IGNORE_ID, SMALL_CLASSES, THING_CLASSES, overlay
from sim2real.io.conversions import RGB8_ENCODINGS, array_to_image, check_image_layout, image_to_array, to_rgb8
from sim2real.io.sync import KeyedLatestSlots, StampSynchronizer, stamp_to_ns
from sim2real.nodes.common import descriptor as _descriptor
from sim2real.nodes.common import run_node
from sim2real.runtime.node_stats import LogRateLimiter, NodeStats, build_diagnostic_status, summary_line
from sim2real.runtime.paths import share_dir

__all__ = [
    "LABEL_POLICIES",
    "OUTPUT_ENCODINGS",
    "PRECISIONS",
    "Camera",
    "Frame",
    "FrameError",
    "TranslateNode",
    "camera_topics",
    "check_image_message",
    "compose_preview",
    "decode_frame",
    "default_model_path",
    "encode_output",
    "inference_threads",
    "load_translator",
    "main",
]

NODE_NAME: Final = "translate_node"
IMAGE, SEMANTIC, INSTANCE, CAMERA_INFO = "image", "semantic", "instance", "camera_info"
OUT_PREFIX: Final = "translated"
OUTPUT_ENCODINGS: Final = ("rgb8", "bgr8", "input")
LABEL_POLICIES: Final = ("wait", "translate_without_instances", "passthrough")
PRECISIONS: Final = ("auto", "fp32", "fp16", "bf16")
BACKENDS: Final = ("auto", "torch", "onnxruntime")
_INPUT_OUTPUTS: Final = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
#: classes whose pixels may carry instance ids: things, plus the small objects (pole, light, sign) that the
#: procedural simulator gives ids so the instance branch can protect them
_OBJECT_LUT: Final = np.isin(np.arange(256), sorted(THING_CLASSES | SMALL_CLASSES))
#: synchroniser drop reasons that are logged (rate-limited) as well as counted, with what they mean
_SYNC_DROP_DETAILS: Final = {
    "unmatched": "no complete set with this stamp: its partners never came, or its stamp is not newer than"
                 " the last synchronised set's",
    "duplicate_stamp": "replaced by a later message with the same stamp",
    "sync_overflow": "sync queue full (sync_queue_size) while waiting for its partners",
}


class TranslatorLike(Protocol):
    """What the node needs from :class:`sim2real.translator.inference.Translator`."""

    @property
    def model_name(self) -> str: ...

    @property
    def device(self) -> Any: ...

    def translate(self, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray) -> np.ndarray: ...

    def warmup(self, height: int, width: int, batch: int = 1) -> None: ...


#: (model path, device, precision, backend) -> translator.
TranslatorFactory = Callable[[str, str, str, str], TranslatorLike]


def default_model_path() -> Path:
    """share/sim2real/models/default.safetensors (the ``model`` parameter's default)."""
    return share_dir() / "models" / "default.safetensors"


def inference_threads(requested: int) -> int:
    """CPU threads for inference: ``requested`` when > 0; else ``OMP_NUM_THREADS`` when set, else the CPU
    cores this process may use minus one (at least 1), so the ROS callbacks, DDS and a simulator on the same
    machine keep a core and do not stall the inference threads' parallel sections."""
    if requested > 0:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, len(os.sched_getaffinity(0)) - 1)


def load_translator(path: str, device: str, precision: str, backend: str = "auto") -> TranslatorLike:
    """Load a ``.safetensors`` checkpoint; raise :class:`Sim2RealError` naming the path when it cannot.

    ``backend`` (:data:`BACKENDS`): ``auto`` runs onnxruntime on the CPU (the graph is exported for the frame
    size at warm-up or on the first frame of a new size, and cached on disk) and torch on CUDA.
    """
    p = Path(path)
    if p.suffix != ".safetensors":
        raise Sim2RealError(f"model must be a .safetensors checkpoint, got {path!r}")
    if not p.is_file():
        raise Sim2RealError(
            f"model checkpoint {str(p)!r} does not exist; set the 'model' parameter to a .safetensors file"
            " (e.g. -p model:=/path/to/gen.safetensors)"
        )
    from sim2real.translator.inference import Translator

    return Translator.from_checkpoint(p, device=device, precision=precision, backend=backend)


# ------------------------------------------------------------------------------------------ pure frame logic


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


def check_image_message(msg: Image, max_pixels: int | None = None) -> None:
    """FrameError (topic ``image``) for an image above ``max_pixels``, with a broken layout (encoding,
    height / width / step, ``len(data)``) or an encoding that cannot become rgb8, checked without reading
    pixels: cheap enough for the callback, so such an image is counted as it arrives and never takes a good
    frame's place in the queue (value problems such as NaN in a float image are still found in the worker)."""
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
    or label maps whose size differs from the image's.
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
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
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


# ------------------------------------------------------------------------------------------------ parameters




_STR, _DBL, _INT, _BOOL, _STR_ARRAY = (
    ParameterType.PARAMETER_STRING, ParameterType.PARAMETER_DOUBLE,
    ParameterType.PARAMETER_INTEGER, ParameterType.PARAMETER_BOOL, ParameterType.PARAMETER_STRING_ARRAY,
)


def _parameter_table() -> list[tuple[str, Any, ParameterDescriptor]]:
    """Every parameter of the node: (name, default, descriptor)."""
    return [
        ("model", str(default_model_path()), _descriptor(
            "generator checkpoint (.safetensors); changing it at run time loads the new model or rejects the"
            " change with the reason, keeping the old one", _STR, constraints="path to an existing *.safetensors")),
        ("device", "auto", _descriptor(
            "inference device", _STR, read_only=True, constraints="auto | cpu | cuda | cuda:N")),
        ("precision", "auto", _descriptor(
            "inference precision (fp16/bf16 via autocast)", _STR, read_only=True,
            constraints=" | ".join(PRECISIONS))),
        ("backend", "auto", _descriptor(
            "inference backend: auto = onnxruntime on the CPU (fp32; graph exported per frame size at warm-up /"
            " first frame and cached under ~/.cache/sim2real/onnx), torch on CUDA; torch = eager PyTorch;"
            " onnxruntime = always (CPU, fp32 only)", _STR, read_only=True, constraints=" | ".join(BACKENDS))),
        ("threads", 0, _descriptor(
            "CPU threads for inference (torch intra-op and onnxruntime); 0 = auto: OMP_NUM_THREADS when set,"
            " else one less than the CPU cores this process may use (at least 1), leaving a core to the ROS"
            " callbacks, DDS and often the simulator (on 2 cores: same throughput as 2 threads, a third of the"
            " p95 latency; docs/BENCHMARKS.md)", _INT, read_only=True, int_range=(0, 1024))),
        ("output_encoding", "rgb8", _descriptor(
            "encoding of translated/image; 'input' copies the input's (rgb8, bgr8, rgba8, bgra8, mono8)", _STR,
            constraints=" | ".join(OUTPUT_ENCODINGS))),
        ("label_policy", "wait", _descriptor(
            "what to do when a label topic is silent for label_timeout_s", _STR,
            constraints=" | ".join(LABEL_POLICIES))),
        ("label_timeout_s", 2.0, _descriptor(
            "seconds without a label message before label_policy applies (and a warning)", _DBL,
            float_range=(0.1, 3600.0))),
        ("sync_slop_s", 0.0, _descriptor(
            "largest header stamp difference inside one set; 0 = exact match", _DBL, read_only=True,
            float_range=(0.0, 1.0))),
        ("sync_queue_size", 10, _descriptor(
            "messages kept per topic while waiting for partners", _INT, read_only=True, int_range=(1, 1000))),
        ("sync_camera_info", True, _descriptor(
            "camera_info is part of the synchronised set (and republished); false: not subscribed", _BOOL,
            read_only=True)),
        ("preview_rate_hz", 0.0, _descriptor(
            "rate of translated/preview (sim | translated | overlay); 0 = off", _DBL, float_range=(0.0, 60.0))),
        ("summary_period_s", 10.0, _descriptor(
            "period of the one-line log summary; 0 = off", _DBL, read_only=True, float_range=(0.0, 3600.0))),
        ("diagnostics_period_s", 1.0, _descriptor(
            "period of /diagnostics", _DBL, read_only=True, float_range=(0.1, 60.0))),
        ("warmup_width", 640, _descriptor(
            "width of the warm-up frame run before subscribing; 0 = no warm-up", _INT, read_only=True,
            int_range=(0, 8192))),
        ("warmup_height", 360, _descriptor(
            "height of the warm-up frame; 0 = no warm-up", _INT, read_only=True, int_range=(0, 8192))),
        ("cameras", [""], _descriptor(
            "camera namespaces served by this node with batched inference (e.g. ['/front', '/left']): inputs"
            " <ns>/image ..., outputs translated/<ns>/image ...; empty: one camera on the generic names", _STR_ARRAY,
            read_only=True)),
        ("max_batch", 8, _descriptor(
            "largest inference batch (frames of one size from different cameras)", _INT, read_only=True,
            int_range=(1, 64))),
        ("stats_file", "", _descriptor(
            "write the final counters as JSON to this file at shutdown; empty = off", _STR, read_only=True)),
        ("max_image_pixels", 7680 * 4320, _descriptor(
            "largest width*height accepted on any image topic (memory guard); larger frames are dropped as"
            " bad_message too_large", _INT, read_only=True, int_range=(1, 2**31 - 1))),
    ]


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str | None:
    if value not in choices:
        return f"{name} must be one of {', '.join(choices)}; got {value!r}"
    return None


def _check_device(value: str) -> str | None:
    if value in ("auto", "cpu", "cuda"):
        return None
    if value.startswith("cuda:") and value[5:].isdigit():
        return None
    return f"device must be auto, cpu, cuda or cuda:N; got {value!r}"


# ------------------------------------------------------------------------------------------------------ node


@dataclass
class Camera:
    """Per-camera state: topic names, synchroniser, label watch, publishers and subscriptions."""

    key: str  # "" for the single generic camera, else the namespace given in ``cameras``
    inputs: dict[str, str]  # generic name -> topic to subscribe
    outputs: dict[str, str]  # image, semantic, instance, camera_info, preview -> topic to publish
    sync: StampSynchronizer[tuple[Any, float]]
    last_seen: dict[str, float]
    missing: list[str] = field(default_factory=list)
    last_published_ns: int | None = None
    last_preview: float = -float("inf")
    subs: dict[str, Any] = field(default_factory=dict)
    pubs: dict[str, Any] = field(default_factory=dict)

    def topic(self, name: str) -> str:
        """The resolved name of input ``name`` once subscribed, else its configured name."""
        sub = self.subs.get(name)
        return sub.topic_name if sub is not None else self.inputs.get(name, name)


def camera_topics(namespace: str) -> tuple[dict[str, str], dict[str, str]]:
    """Input and output topic names of one camera.

    ``""`` (single camera): the generic names ``image`` ... and ``translated/image`` ... (remapped by launch).
    ``"/front"`` or ``"front"``: ``/front/image`` ... (``front/image`` ...) and ``translated/front/image`` ...
    """
    ns = namespace.strip().rstrip("/")
    inputs = {name: f"{ns}/{name}" if ns else name for name in (IMAGE, SEMANTIC, INSTANCE, CAMERA_INFO)}
    sub = ns.lstrip("/")
    out = f"{OUT_PREFIX}/{sub}" if sub else OUT_PREFIX
    outputs = {name: f"{out}/{name}" for name in (IMAGE, SEMANTIC, INSTANCE, CAMERA_INFO, "preview")}
    return inputs, outputs


class TranslateNode(Node):
    """The ROS layer: parameters, subscriptions, worker thread, publishers, diagnostics (see module doc)."""

    def __init__(self, *, translator_factory: TranslatorFactory = load_translator, **node_kwargs: Any) -> None:
        """Declare parameters, load + warm up the model, then subscribe. Raises Sim2RealError on bad config."""
        super().__init__(NODE_NAME, **node_kwargs)
        self._factory = translator_factory
        for name, default, desc in _parameter_table():
            self.declare_parameter(name, default, desc)
        p = {name: self.get_parameter(name).value for name, _, _ in _parameter_table()}
        for reason in (
            _check_device(p["device"]),
            _check_choice("precision", p["precision"], PRECISIONS),
            _check_choice("backend", p["backend"], BACKENDS),
            _check_choice("output_encoding", p["output_encoding"], OUTPUT_ENCODINGS),
            _check_choice("label_policy", p["label_policy"], LABEL_POLICIES),
        ):
            if reason:
                raise Sim2RealError(reason)
        self._device_param, self._precision_param = p["device"], p["precision"]
        self._backend_param: str = p["backend"]
        self._output_encoding: str = p["output_encoding"]
        self._label_policy: str = p["label_policy"]
        self._label_timeout: float = p["label_timeout_s"]
        self._preview_rate: float = p["preview_rate_hz"]
        self._stats_file: str = p["stats_file"]
        self._model_path: str = p["model"]
        self._max_batch: int = p["max_batch"]
        self._max_pixels: int = p["max_image_pixels"]
        keys = [c.strip() for c in p["cameras"] if c.strip()] or [""]
        if len(set(keys)) != len(keys):
            raise Sim2RealError(f"cameras must be distinct, got {keys}")

        import torch  # here, not at import: main() sets OMP_WAIT_POLICY before torch loads OpenMP

        self._threads = inference_threads(p["threads"])
        torch.set_num_threads(self._threads)  # the Translator's onnxruntime sessions take the same count
        self.get_logger().info(
            f"loading model {self._model_path} (device={p['device']}, precision={p['precision']},"
            f" backend={p['backend']}, {self._threads} CPU thread(s))")
        self._translator: TranslatorLike = self._factory(self._model_path, p["device"], p["precision"], p["backend"])
        if p["warmup_width"] > 0 and p["warmup_height"] > 0:
            t0 = time.perf_counter()
            self._translator.warmup(p["warmup_height"], p["warmup_width"], min(len(keys), self._max_batch))
            self.get_logger().info(
                f"warm-up {p['warmup_width']}x{p['warmup_height']} x{min(len(keys), self._max_batch)}"
                f" on {self._translator.device} ({getattr(self._translator, 'backend', 'torch')}):"
                f" {1000 * (time.perf_counter() - t0):.0f} ms"
            )
        self._staged: dict[str, TranslatorLike] = {}
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self.stats = NodeStats(reference_topic=IMAGE)
        self._limiter = LogRateLimiter(period=2.0)
        self._label_topics = [SEMANTIC, INSTANCE] + ([CAMERA_INFO] if p["sync_camera_info"] else [])
        self._slots: KeyedLatestSlots[str, Frame] = KeyedLatestSlots()
        self._last_size: tuple[int, int] | None = None
        started = time.monotonic()
        self._cameras: dict[str, Camera] = {}
        for key in keys:
            inputs, outputs = camera_topics(key)
            self._cameras[key] = Camera(
                key=key, inputs=inputs, outputs=outputs,
                sync=StampSynchronizer(
                    [IMAGE, *self._label_topics], slop=p["sync_slop_s"], queue_size=p["sync_queue_size"],
                    on_drop=lambda topic, reason, item, k=key: self._on_sync_drop(k, topic, reason, item),
                ),
                last_seen=dict.fromkeys(self._label_topics, started),
            )
        self._create_io(p)

    def _create_io(self, p: dict[str, Any]) -> None:
        """Publishers, worker, timers and (last) the subscriptions."""
        out_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        overrides = QoSOverridingOptions.with_default_policies()
        for cam in self._cameras.values():
            for name in (IMAGE, *self._label_topics):
                cam.pubs[name] = self.create_publisher(
                    CameraInfo if name == CAMERA_INFO else Image, cam.outputs[name], out_qos,
                    qos_overriding_options=overrides)
            cam.pubs["preview"] = self.create_publisher(Image, cam.outputs["preview"], out_qos)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        self._worker = threading.Thread(target=self._work, name="translate_worker", daemon=True)
        self._worker.start()

        timers = MutuallyExclusiveCallbackGroup()
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics, callback_group=timers)
        if p["summary_period_s"] > 0:
            self.create_timer(p["summary_period_s"], self._log_summary, callback_group=timers)

        subs = MutuallyExclusiveCallbackGroup()
        for cam in self._cameras.values():
            cam.subs[IMAGE] = self.create_subscription(
                Image, cam.inputs[IMAGE], lambda msg, c=cam: self._on_image(c, msg), qos_profile_sensor_data,
                callback_group=subs, qos_overriding_options=overrides)
            for topic in self._label_topics:
                cam.subs[topic] = self.create_subscription(
                    CameraInfo if topic == CAMERA_INFO else Image, cam.inputs[topic],
                    lambda msg, c=cam, t=topic: self._on_label(c, t, msg), qos_profile_sensor_data,
                    callback_group=subs, qos_overriding_options=overrides,
                )
            self.get_logger().info(
                f"camera {cam.key or '(generic names)'}: {cam.topic(IMAGE)} + "
                f"{', '.join(cam.topic(t) for t in self._label_topics)} -> {cam.pubs[IMAGE].topic_name}"
            )
        self.get_logger().info(
            f"ready: model {self._translator.model_name} on {self._translator.device}; {len(self._cameras)}"
            f" camera(s), batches of up to {self._max_batch}; label_policy={self._label_policy}"
        )

    # ------------------------------------------------------------------------------------------- parameters
    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Reject invalid values with a reason; load (and warm up) a new model before accepting it."""
        model: str | None = None
        for param in params:
            reason = None
            if param.name == "output_encoding":
                reason = _check_choice(param.name, param.value, OUTPUT_ENCODINGS)
            elif param.name == "label_policy":
                reason = _check_choice(param.name, param.value, LABEL_POLICIES)
            elif param.name == "model":
                model = str(param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        if model is not None and model != self._model_path:
            try:
                translator = self._factory(model, self._device_param, self._precision_param, self._backend_param)
                if self._last_size is not None:
                    translator.warmup(*self._last_size)
            except Exception as exc:  # any load failure: keep the old model, tell the caller why
                reason = f"model {model!r} not loaded, keeping {self._model_path!r}: {exc}"
                self.get_logger().error(reason)
                return SetParametersResult(successful=False, reason=reason)
            self._staged = {model: translator}
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        for param in params:
            if param.name.startswith("qos_overrides."):
                continue  # declared (read-only) by the QoS overriding options: nothing to apply
            if param.name == "output_encoding":
                self._output_encoding = param.value
            elif param.name == "label_policy":
                self._label_policy = param.value
            elif param.name == "label_timeout_s":
                self._label_timeout = float(param.value)
            elif param.name == "preview_rate_hz":
                self._preview_rate = float(param.value)
            elif param.name == "model" and param.value in self._staged:
                self._translator = self._staged.pop(param.value)
                self._model_path = param.value
                self.get_logger().info(f"switched model to {param.value} ({self._translator.model_name})")
            self.get_logger().info(f"parameter {param.name} = {param.value!r}")

    # -------------------------------------------------------------------------------------------- callbacks
    def _log_bad(self, topic: str, reason: str, detail: str, stamp_ns: int | None = None) -> None:
        """Rate-limited (per topic and reason) warning about a bad message; ``topic`` is a resolved name."""
        allowed, suppressed = self._limiter.allow((topic, reason))
        if allowed:
            where = f" (stamp {stamp_ns / 1e9:.9f})" if stamp_ns is not None else ""
            more = f" [{suppressed} similar suppressed]" if suppressed else ""
            self.get_logger().warning(f"bad message on {topic}{where}: {reason}: {detail}{more}")

    def _on_sync_drop(self, key: str, topic: str, reason: str, item: tuple[Any, float]) -> None:
        """Count a message the synchroniser dropped; log it (rate-limited) unless the node is shutting down."""
        self.stats.drop(reason, topic)
        detail = _SYNC_DROP_DETAILS.get(reason)
        if detail is not None:
            stamp = stamp_to_ns(item[0].header.stamp)
            self._log_bad(self._cameras[key].topic(topic), reason, detail, stamp)

    def _on_image(self, cam: Camera, msg: Image) -> None:
        received = time.monotonic()
        self.stats.message_in(IMAGE)
        try:
            stamp = stamp_to_ns(msg.header.stamp)
            try:
                check_image_message(msg, self._max_pixels)
            except FrameError as err:
                self.stats.bad_message(IMAGE, err.reason)
                self.stats.drop("bad_message")
                self._log_bad(cam.topic(IMAGE), err.reason, err.detail, stamp)
                return
            self._check_labels(cam, received)
            if cam.missing and self._label_policy != "wait":
                self._enqueue(Frame(msg, None, None, None, stamp, received, mode=self._label_policy, camera=cam.key))
                return
            for matched in cam.sync.add(IMAGE, stamp, (msg, received)):
                self._enqueue_set(cam, matched.items, matched.stamp_ns)
        except Exception as exc:  # never let one message kill the node
            self.stats.bad_message(IMAGE, "callback_error")
            self.stats.drop("bad_message")
            self._log_bad(cam.topic(IMAGE), "callback_error", repr(exc))

    def _on_label(self, cam: Camera, topic: str, msg: Any) -> None:
        received = time.monotonic()
        self.stats.message_in(topic)
        cam.last_seen[topic] = received
        try:
            for matched in cam.sync.add(topic, stamp_to_ns(msg.header.stamp), (msg, received)):
                self._enqueue_set(cam, matched.items, matched.stamp_ns)
        except Exception as exc:
            self.stats.bad_message(topic, "callback_error")
            self.stats.drop("bad_message", topic)
            self._log_bad(cam.topic(topic), "callback_error", repr(exc))

    def _enqueue_set(self, cam: Camera, items: Any, stamp_ns: int) -> None:
        image, received = items[IMAGE]
        frame = Frame(
            image=image, semantic=items[SEMANTIC][0], instance=items[INSTANCE][0],
            camera_info=items[CAMERA_INFO][0] if CAMERA_INFO in items else None,
            stamp_ns=stamp_ns, received=received, camera=cam.key,
        )
        self._enqueue(frame)

    def _enqueue(self, frame: Frame) -> None:
        superseded = self._slots.put(frame.camera, frame)
        if superseded is frame:  # the slots are closed: shutting down
            self.stats.drop("pending_at_shutdown")
        elif superseded is not None:
            self.stats.drop("superseded")

    def _check_labels(self, cam: Camera, now: float) -> None:
        """Update the camera's silent label topics; warn (every label_timeout_s) while any is silent."""
        missing = [t for t in self._label_topics if now - cam.last_seen[t] > self._label_timeout]
        if missing:
            allowed, _ = self._limiter.allow((cam.key, "labels missing"))
            if allowed or missing != cam.missing:
                names = ", ".join(cam.topic(t) for t in missing)
                action = {
                    "wait": "waiting for them: images are not translated (dropped as sync_overflow/unmatched)",
                    "translate_without_instances": "translating images alone with semantic=255, instance=0",
                    "passthrough": "republishing the input image unchanged as translated/image",
                }[self._label_policy]
                self.get_logger().warning(
                    f"no message on {names} for more than {self._label_timeout:g} s;"
                    f" label_policy={self._label_policy}: {action}"
                )
        elif cam.missing:
            self.get_logger().info(f"label topics of {cam.topic(IMAGE)} are back: translating synchronised sets")
        cam.missing = missing

    # ----------------------------------------------------------------------------------------------- worker
    def _work(self) -> None:
        while batch := self._slots.take_all():
            try:
                self._process_batch(list(batch.values()))
            except Exception as exc:  # the worker never dies on one batch
                self.stats.drop("internal_error", n=len(batch))
                self._log_bad("(worker)", "internal_error", repr(exc))

    def _decode(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Decoded arrays of a frame, or None (counted, logged) when it is stale or malformed."""
        cam = self._cameras[frame.camera]
        if cam.last_published_ns is not None and frame.stamp_ns <= cam.last_published_ns:
            self.stats.drop("stale")
            return None
        try:
            rgb, semantic, instance = decode_frame(frame, self._max_pixels)
        except FrameError as err:
            self.stats.bad_message(err.topic, err.reason)
            self.stats.drop("bad_message")
            self._log_bad(cam.topic(err.topic), err.reason, err.detail, frame.stamp_ns)
            return None
        stray = instances_without_class(semantic, instance)
        if stray.any():  # translated anyway, without those instances: counted and logged, not dropped
            self.stats.bad_message(INSTANCE, "instance_without_class")
            self._log_bad(cam.topic(INSTANCE), "instance_without_class",
                          f"{int(stray.sum())} instance pixels lie on stuff / ignore classes; treated as no instance",
                          frame.stamp_ns)
            instance = np.where(stray, 0, instance).astype(np.uint16)
        return rgb, semantic, instance

    def _process_batch(self, frames: list[Frame]) -> None:
        """Decode, translate (frames of one size in batches of up to max_batch), publish each."""
        groups: dict[tuple[int, int], list[tuple[Frame, tuple[np.ndarray, np.ndarray, np.ndarray]]]] = {}
        for frame in frames:
            arrays = self._decode(frame)
            if arrays is None:
                continue
            self._last_size = arrays[0].shape[:2]
            if frame.mode == "passthrough":
                self._publish_frame(frame, arrays[0], arrays[1], None)
                continue
            groups.setdefault(arrays[0].shape[:2], []).append((frame, arrays))
        for group in groups.values():
            for start in range(0, len(group), self._max_batch):
                self._translate_batch(group[start : start + self._max_batch])

    def _translate_batch(self, batch: list[tuple[Frame, tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> None:
        translator = self._translator
        t0 = time.perf_counter()
        try:
            if len(batch) == 1:
                outputs = [np.asarray(translator.translate(*batch[0][1]))]
            else:
                stacked = [np.stack([arrays[k] for _, arrays in batch]) for k in range(3)]
                outputs = list(np.asarray(translator.translate(*stacked)))
        except (LabelError, ValueError) as exc:
            if len(batch) > 1:  # find the culprit: translate one by one
                for item in batch:
                    self._translate_batch([item])
                return
            frame = batch[0][0]
            topic = INSTANCE if "instance" in str(exc) else SEMANTIC
            self.stats.bad_message(topic, "label_values")
            self.stats.drop("bad_message")
            self._log_bad(self._cameras[frame.camera].topic(topic), "label_values", str(exc), frame.stamp_ns)
            return
        except Exception as exc:
            self.stats.drop("inference_error", n=len(batch))
            self._log_bad("(inference)", "inference_error", repr(exc), batch[0][0].stamp_ns)
            return
        self.stats.inference.add(time.perf_counter() - t0)
        self.stats.count("batches")
        self.stats.count(f"batch_size_{len(batch)}")
        for (frame, (rgb, semantic, _instance)), translated in zip(batch, outputs, strict=True):
            self._publish_frame(frame, rgb, semantic, translated)

    def _publish_frame(self, frame: Frame, rgb: np.ndarray, semantic: np.ndarray,
                       translated: np.ndarray | None) -> None:
        """Publish the translated image (``None``: passthrough, the input message), labels and preview."""
        cam = self._cameras[frame.camera]
        if translated is None:
            out_msg, translated = frame.image, rgb
        else:
            array, encoding, exact = encode_output(translated, self._output_encoding, frame.image.encoding)
            if not exact:
                self._log_bad(cam.topic(IMAGE), "output_encoding",
                              f"output_encoding=input cannot write {frame.image.encoding!r}; publishing rgb8")
            out_msg = array_to_image(array, encoding)
            out_msg.header = frame.image.header
        if not self._publish(cam.pubs[IMAGE], out_msg):
            self.stats.drop("publish_error")
            return
        self.stats.end_to_end.add(time.monotonic() - frame.received)
        self.stats.frame_out()
        cam.last_published_ns = frame.stamp_ns
        for topic, msg in ((SEMANTIC, frame.semantic), (INSTANCE, frame.instance), (CAMERA_INFO, frame.camera_info)):
            if msg is not None and topic in cam.pubs:
                self._publish(cam.pubs[topic], msg)
        if self._preview_rate > 0 and time.monotonic() - cam.last_preview >= 1.0 / self._preview_rate:
            cam.last_preview = time.monotonic()
            preview = array_to_image(compose_preview(rgb, translated, semantic), "rgb8")
            preview.header = frame.image.header
            self._publish(cam.pubs["preview"], preview)

    def _publish(self, publisher: Any, msg: Any) -> bool:
        try:
            publisher.publish(msg)
        except Exception as exc:  # RCLError under load, or the context going away
            self.stats.publish_error(publisher.topic_name)
            allowed, suppressed = self._limiter.allow((publisher.topic_name, "publish"))
            if allowed:
                more = f" [{suppressed} similar suppressed]" if suppressed else ""
                self.get_logger().error(f"publish on {publisher.topic_name} failed: {exc!r}{more}")
            return False
        return True

    # ---------------------------------------------------------------------------------- diagnostics, stop
    def info(self) -> dict[str, Any]:
        """Device, precision, model and policies (for diagnostics and the summary)."""
        tr = self._translator
        return {
            "device": str(tr.device),
            "precision": getattr(tr, "precision", self._precision_param),
            "backend": getattr(tr, "backend", self._backend_param),
            "threads": self._threads,
            "model": tr.model_name,
            "model_path": self._model_path,
            "label_policy": self._label_policy,
            "output_encoding": self._output_encoding,
            "cameras": ", ".join(cam.topic(IMAGE) for cam in self._cameras.values()),
        }

    def _warnings(self) -> list[str]:
        return [
            f"no message on {', '.join(cam.topic(t) for t in cam.missing)} for > {self._label_timeout:g} s"
            f" (label_policy={self._label_policy})"
            for cam in self._cameras.values() if cam.missing
        ]

    def _publish_diagnostics(self) -> None:
        content = build_diagnostic_status(
            f"{self.get_fully_qualified_name()}: translation", self.stats.snapshot(),
            hardware_id=str(self._translator.device), info=self.info(), warnings=self._warnings(),
        )
        status = DiagnosticStatus(
            level=bytes([content.level]), name=content.name, message=content.message,
            hardware_id=content.hardware_id, values=[KeyValue(key=k, value=v) for k, v in content.values],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._publish(self._pub_diag, array)

    def _log_summary(self) -> None:
        self.get_logger().info(summary_line(self.stats.snapshot(), {"model": self._translator.model_name}))

    def stop(self) -> dict[str, Any]:
        """Finish the frame in progress, count what is still queued as ``pending_at_shutdown``, write
        ``stats_file``; return the final snapshot. Call after the executor stopped spinning."""
        pending = self._slots.close()
        if pending:
            self.stats.drop("pending_at_shutdown", n=len(pending))
        self._worker.join(timeout=30.0)
        for cam in self._cameras.values():
            cam.sync.clear("pending_at_shutdown")
        snap = self.stats.snapshot()
        snap.update(self.info())
        snap["accounted"] = snap["frames_in"] == snap["frames_out"] + snap["dropped_total"]
        self.get_logger().info(f"final: {summary_line(snap)}; accounted={snap['accounted']}")
        if self._stats_file:
            path = Path(self._stats_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(json.dumps(snap, indent=1))
            tmp.replace(path)
        return snap


def main(args: list[str] | None = None) -> int:
    """Entry point (``translate_node``): run until SIGINT/SIGTERM; 1 when the configuration is invalid.

    Sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it (before torch loads OpenMP): the node
    shares the CPU with the simulator and DDS, and OpenMP threads that busy-wait between the network's many
    small operators then take the cores the working thread needs (measured, lite 640x360 on 2 shared
    cores, 2 intra-op threads: ~1.5-1.9 s/frame busy-waiting vs ~0.15 s/frame passive).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return run_node(TranslateNode, NODE_NAME, lambda: MultiThreadedExecutor(num_threads=3), args)


if __name__ == "__main__":
    sys.exit(main())
