"""The inference backend interface and its registry: what :class:`~sim2real.translator.inference.Translator` runs.

A backend takes frames that are already validated (:mod:`sim2real.translator.frames`) and returns translated
ones; it owns where the network runs and how. Two are registered: ``"torch"`` (eager or ``torch.compile``,
CPU or CUDA, fp32 / fp16 / bf16 autocast) and ``"onnxruntime"`` (an exported graph per frame size, CPU,
fp32, with int8 encoder convolutions when the checkpoint is calibrated). A new one (TensorRT, say) is a
subclass of :class:`InferenceBackend` plus one line in :data:`_REGISTRY`; :func:`resolve_backend` and the
Translator pick it up from there.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import torch
from torch import Tensor

from sim2real.core.errors import ConfigError
from sim2real.translator.frames import denormalize_rgb, normalize_rgb

if TYPE_CHECKING:
    from sim2real.translator.config import GeneratorConfig

__all__ = ["BACKENDS", "BackendSettings", "InferenceBackend", "backend_class", "resolve_backend"]


@dataclass(frozen=True)
class BackendSettings:
    """What a Translator hands a backend besides the network (each backend reads the fields it uses).

    Attributes:
        device: where the torch backend runs (the ONNX Runtime one runs on the CPU).
        precision: "fp32", "fp16" or "bf16" (autocast), already resolved.
        channels_last: torch: convert the network to channels_last.
        compile: torch: ``torch.compile`` the network (see TorchBackend).
        threads: onnxruntime intra-op threads (None: ``torch.get_num_threads()``).
        onnx_spin_us: onnxruntime: how long idle intra-op threads spin before sleeping, in microseconds (0 = they
            sleep at once; :class:`~sim2real.translator.onnx_export.OnnxTranslator`'s ``spin_us``).
        onnx_cache_dir: where exported graphs are cached (None: ``default_onnx_cache_dir()``).
        onnx_int8: onnxruntime: run the encoder convolutions in int8 when the checkpoint carries an int8
            calibration (:mod:`~sim2real.translator.int8`); False = fp32 graphs throughout.
        max_sessions: onnxruntime: sessions (frame sizes) kept at once, least recently used evicted first.
        metadata: the checkpoint's JSON document (stored in exported graphs).
        model_name: for file names and messages.
    """

    device: torch.device
    precision: str
    channels_last: bool = True
    compile: bool = False
    threads: int | None = None
    onnx_spin_us: int = 0
    onnx_cache_dir: Path | None = None
    onnx_int8: bool = True
    max_sessions: int = 4
    metadata: Mapping[str, Any] = field(default_factory=dict)
    model_name: str = "custom"


class InferenceBackend(abc.ABC):
    """Runs a generator on validated frames. Subclasses set :attr:`name` and implement
    :meth:`translate_normalized`; the rest has defaults in terms of it.

    Shapes: network space is float ``(B, 3, H, W)`` in [-1, 1] with int64 ``(B, H, W)`` label maps (any H, W:
    the backend pads to the stride and crops back); frame space is uint8 ``(B, H, W, 3)``.
    """

    #: the registry name (``"torch"``, ``"onnxruntime"``).
    name: ClassVar[str]

    def __init__(self, generator: torch.nn.Module, cfg: GeneratorConfig, settings: BackendSettings) -> None:
        self.cfg = cfg
        self.settings = settings

    @classmethod
    def unusable(cls, device: torch.device, precision: str) -> str | None:
        """Why this backend cannot run on ``device`` at ``precision`` (None when it can)."""
        return None

    @property
    def device(self) -> torch.device:
        """Where inputs should be for :meth:`translate_normalized` and where outputs come back."""
        return self.settings.device

    @property
    def quantization(self) -> str:
        """What runs in reduced precision beyond ``precision``: ``"none"`` here (a backend that quantizes says what)."""
        return "none"

    def stage(self, t: Tensor) -> Tensor:
        """``t`` on :attr:`device` (the uint8 / label tensors of one call, before validation)."""
        return t.to(self.device, non_blocking=True)

    @abc.abstractmethod
    def translate_normalized(self, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor:
        """float (B, 3, H, W) in [-1, 1], int64 (B, H, W) x2 -> float32 (B, 3, H, W) in [-1, 1]."""

    def translate_uint8(self, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor:
        """uint8 (B, H, W, 3), int64 (B, H, W) x2 (staged, validated) -> uint8 (B, H, W, 3) on :attr:`device`."""
        return denormalize_rgb(self.translate_normalized(normalize_rgb(rgb), semantic, instance))


#: name -> "module:class" of every backend (imported on use: onnxruntime is heavy and optional).
_REGISTRY: Final[dict[str, str]] = {
    "torch": "sim2real.translator.torch_backend:TorchBackend",
    "onnxruntime": "sim2real.translator.ort_backend:OnnxRuntimeBackend",
}
#: the order ``"auto"`` tries them in: the first that is usable wins.
_AUTO_ORDER: Final = ("onnxruntime", "torch")
#: inference backends: "auto" = onnxruntime on CPU (fp32) when importable, else torch.
BACKENDS: Final[tuple[str, ...]] = ("auto", *_REGISTRY)


def backend_class(name: str) -> type[InferenceBackend]:
    """The class registered as ``name``; ConfigError listing the valid names otherwise."""
    if name not in _REGISTRY:
        raise ConfigError(f"backend {name!r} is not valid; expected one of {', '.join(BACKENDS)}")
    module, _, cls = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def resolve_backend(backend: str, device: torch.device, precision: str) -> str:
    """Concrete backend name for ``backend`` on ``device`` at ``precision``.

    ``auto``: the first of :data:`_AUTO_ORDER` that can run there (onnxruntime on a CPU device in fp32 when
    ``onnxruntime`` and ``onnx`` are importable; torch otherwise, e.g. on CUDA or in fp16 / bf16).

    Raises:
        ConfigError: unknown backend, or a named backend that cannot run there (the message says why).
    """
    if backend == "auto":
        return next(name for name in _AUTO_ORDER if backend_class(name).unusable(device, precision) is None)
    reason = backend_class(backend).unusable(device, precision)
    if reason is not None:
        raise ConfigError(f"backend {backend!r} {reason}")
    return backend
