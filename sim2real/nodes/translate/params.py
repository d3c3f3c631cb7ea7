"""translate_node's parameters: each declared once with its descriptor (:func:`parameter_table`), the checks
of the start-up values (:func:`check_start`) and of run-time changes (:func:`check_change`), and the settings
that may change while the node runs (:class:`LiveSettings`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rcl_interfaces.msg import ParameterDescriptor, ParameterType

from sim2real.core.errors import Sim2RealError
from sim2real.nodes.common import descriptor as _descriptor
from sim2real.nodes.translate.frames import OUTPUT_ENCODINGS
from sim2real.nodes.translate.model import default_model_path

__all__ = [
    "BACKENDS",
    "COMPRESSED_FORMATS",
    "LABEL_POLICIES",
    "MAX_IMAGE_PIXELS",
    "PRECISIONS",
    "TRANSPORTS",
    "LiveSettings",
    "check_change",
    "check_choice",
    "check_device",
    "check_start",
    "parameter_table",
]

LABEL_POLICIES: Final = ("wait", "translate_without_instances", "passthrough")
PRECISIONS: Final = ("auto", "fp32", "fp16", "bf16")
BACKENDS: Final = ("auto", "torch", "onnxruntime")
TRANSPORTS: Final = ("raw", "compressed")
COMPRESSED_FORMATS: Final = ("jpeg", "png")
#: the default memory guard: 4K UHD (see the max_image_pixels descriptor for its memory cost)
MAX_IMAGE_PIXELS: Final = 3840 * 2160

_STR, _DBL, _INT, _BOOL, _STR_ARRAY = (
    ParameterType.PARAMETER_STRING, ParameterType.PARAMETER_DOUBLE,
    ParameterType.PARAMETER_INTEGER, ParameterType.PARAMETER_BOOL, ParameterType.PARAMETER_STRING_ARRAY,
)


def parameter_table() -> list[tuple[str, Any, ParameterDescriptor]]:
    """Every parameter of the node: (name, default, descriptor)."""
    return [*_model_parameters(), *_io_parameters()]


def _model_parameters() -> list[tuple[str, Any, ParameterDescriptor]]:
    """The model, where and how it runs, and what it does with the frames."""
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
        ("style", "", _descriptor(
            "target style to render in, for a model trained with several target datasets (target.styles,"
            " e.g. camvid | cityscapes); empty = the model's mean target style. A name the model does not have"
            " fails the start (or a model change) with the model's list", _STR, read_only=True)),
        ("threads", 0, _descriptor(
            "CPU threads for inference (torch intra-op and onnxruntime); 0 = auto: OMP_NUM_THREADS when set,"
            " else one less than the CPU cores this process may use (at least 1), leaving a core to the ROS"
            " callbacks, DDS and often the simulator (on 2 cores: same throughput as 2 threads, a third of the"
            " p95 latency; docs/BENCHMARKS.md)", _INT, read_only=True, int_range=(0, 1024))),
        ("onnx_spin_us", 0, _descriptor(
            "onnxruntime backend with threads >= 2: how long idle inference threads spin before sleeping, in"
            " microseconds; 0 = they sleep at once (right when the CPU is shared with the simulator: with two busy"
            " processes on 2 cores, 1000 cost +38 % per frame). On a CPU of their own, 1000 saved 5.4 of 54.8 ms per"
            " 640x360 frame with the shipped model (2 threads; docs/BENCHMARKS.md); large values keep the threads"
            " busy between frames", _INT, read_only=True, int_range=(0, 100000))),
        ("onnx_int8", True, _descriptor(
            "onnxruntime: int8 encoder convolutions when the model is calibrated (sim2real-calibrate-int8; the"
            " shipped model is): 7-9 ms less per 640x360 frame on 2 cores, ~0.3 levels of 255 from fp32 on"
            " average; false = fp32 graphs", _BOOL, read_only=True)),
        ("output_encoding", "rgb8", _descriptor(
            "encoding of translated/image; 'input' copies the input's (rgb8, bgr8, rgba8, bgra8, mono8)", _STR,
            constraints=" | ".join(OUTPUT_ENCODINGS))),
        ("input_transport", "raw", _descriptor(
            "how the image arrives: raw (sensor_msgs/Image on image) or compressed (sensor_msgs/CompressedImage,"
            " jpeg / png, on image/compressed, as image_transport names it)", _STR, read_only=True,
            constraints=" | ".join(TRANSPORTS))),
        ("compressed_output", True, _descriptor(
            "also offer translated/image/compressed (sensor_msgs/CompressedImage); a frame is encoded only while"
            " that topic has a subscriber, so it costs nothing otherwise (image_transport's behaviour)", _BOOL,
            read_only=True)),
        ("compressed_format", "jpeg", _descriptor(
            "codec of translated/image/compressed", _STR, constraints=" | ".join(COMPRESSED_FORMATS))),
        ("jpeg_quality", 95, _descriptor(
            "JPEG quality of translated/image/compressed (image_transport's default 95)", _INT,
            int_range=(1, 100))),
        ("png_level", 3, _descriptor(
            "PNG compression level of translated/image/compressed (image_transport's default 3)", _INT,
            int_range=(0, 9))),
        ("label_policy", "wait", _descriptor(
            "what to do when a label topic is silent for label_timeout_s", _STR,
            constraints=" | ".join(LABEL_POLICIES))),
        ("label_timeout_s", 2.0, _descriptor(
            "seconds without a label message before label_policy applies (and a warning)", _DBL,
            float_range=(0.1, 3600.0))),
    ]


def _io_parameters() -> list[tuple[str, Any, ParameterDescriptor]]:
    """Synchronisation, outputs, cameras and guards."""
    return [
        ("sync_slop_s", 0.0, _descriptor(
            "largest header stamp difference inside one set; 0 = exact match", _DBL, read_only=True,
            float_range=(0.0, 1.0))),
        ("sync_queue_size", 10, _descriptor(
            "messages kept per topic while waiting for partners", _INT, read_only=True, int_range=(1, 1000))),
        ("time_jump_s", 1.0, _descriptor(
            "a camera's stamps that go back by more than this many seconds for 3 image messages in a row (a"
            " simulator reset, a bag replayed in a loop, or normal stamps after one absurd future stamp) reset its"
            " synchroniser instead of being dropped as unmatched until restart; logged and counted; 0 = off",
            _DBL, read_only=True, float_range=(0.0, 3600.0))),
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
        ("max_image_pixels", MAX_IMAGE_PIXELS, _descriptor(
            "largest width*height accepted on any image topic (memory guard, checked before anything is"
            " allocated); larger frames are dropped as bad_message too_large. Default 3840x2160 (4K UHD): peak"
            " ~3.2 GB with the onnxruntime backend, ~1.5 GB with torch on the CPU (about 350 / 130 bytes per"
            " pixel, docs/RELIABILITY.md); the former 7680x4320 needed ~9 GB", _INT, read_only=True,
            int_range=(1, 2**31 - 1))),
    ]


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str | None:
    """None when ``value`` is one of ``choices``, else the reason (naming the parameter and the choices)."""
    if value not in choices:
        return f"{name} must be one of {', '.join(choices)}; got {value!r}"
    return None


def check_device(value: str) -> str | None:
    """None for auto | cpu | cuda | cuda:N, else the reason."""
    if value in ("auto", "cpu", "cuda"):
        return None
    if value.startswith("cuda:") and value[5:].isdigit():
        return None
    return f"device must be auto, cpu, cuda or cuda:N; got {value!r}"


def check_start(p: Mapping[str, Any]) -> None:
    """Raise :class:`Sim2RealError` with the reason for the first invalid start-up value in ``p``."""
    for reason in (
        check_device(p["device"]),
        check_choice("precision", p["precision"], PRECISIONS),
        check_choice("backend", p["backend"], BACKENDS),
        check_choice("output_encoding", p["output_encoding"], OUTPUT_ENCODINGS),
        check_choice("label_policy", p["label_policy"], LABEL_POLICIES),
        check_choice("input_transport", p["input_transport"], TRANSPORTS),
        check_choice("compressed_format", p["compressed_format"], COMPRESSED_FORMATS),
    ):
        if reason:
            raise Sim2RealError(reason)


def check_change(name: str, value: Any) -> str | None:
    """The reason a run-time change of ``name`` to ``value`` is refused, or None (ranges and read-only flags
    are checked by rclpy from the descriptors; ``model`` is checked by loading it)."""
    if name == "output_encoding":
        return check_choice(name, value, OUTPUT_ENCODINGS)
    if name == "label_policy":
        return check_choice(name, value, LABEL_POLICIES)
    if name == "compressed_format":
        return check_choice(name, value, COMPRESSED_FORMATS)
    return None


@dataclass
class LiveSettings:
    """The parameters that may change while the node runs, read by the callbacks and the worker."""

    output_encoding: str
    label_policy: str
    label_timeout_s: float
    preview_rate_hz: float
    compressed_format: str = "jpeg"
    jpeg_quality: int = 95
    png_level: int = 3

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> LiveSettings:
        """The start-up values."""
        return cls(**{name: p[name] for name in cls.__dataclass_fields__})

    def apply(self, name: str, value: Any) -> bool:
        """Take a new value (already validated); False when ``name`` is not a live setting."""
        if name not in self.__dataclass_fields__:
            return False
        setattr(self, name, float(value) if name.endswith(("_s", "_hz")) else value)
        return True
