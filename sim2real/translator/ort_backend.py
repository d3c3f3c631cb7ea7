"""The ONNX Runtime inference backend: one exported graph per frame size, CPU, fp32 (int8 encoders when calibrated).

A graph has a fixed frame size, so each size gets its own onnxruntime session, exported on first use (or read
from the verified on-disk cache, :mod:`sim2real.translator.onnx_cache`). Sessions are kept in a least recently
used table of at most ``max_sessions`` (default 4): a stream whose frame size keeps changing costs an export or
a cache read per change once the table is full, but memory stays bounded (each session holds the weights and
its arenas, tens to hundreds of MB). Outputs agree with the torch backend to ~1e-6 in [-1, 1] space
(``test/test_fast_paths.py``).

A checkpoint that carries an int8 calibration (``sim2real-calibrate-int8``; :mod:`~sim2real.translator.int8`)
gets graphs whose encoder convolutions run in int8 (``onnx_int8``, default on): 6.6-8.8 ms less per 640x360
frame on 2 cores, ~0.2-0.3 levels of 255 from the fp32 graph on average. Those graphs are cached under their own
key (the model digest with the calibration's and :data:`~sim2real.translator.int8.INT8_VERSION`).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from sim2real.core.errors import CheckpointError, ConfigError, InferenceError
from sim2real.translator.backend import BackendSettings, InferenceBackend
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.int8 import (
    INT8_VERSION,
    Int8Calibration,
    calibration_of,
    check_calibration_fits,
    quantize_int8,
)
from sim2real.translator.onnx_cache import DIGEST_FIELD, OnnxGraphCache, export_mismatch, model_digest

if TYPE_CHECKING:
    from sim2real.translator.onnx_export import OnnxTranslator

__all__ = ["OnnxRuntimeBackend"]

_log = logging.getLogger(__name__)


def _onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


class OnnxRuntimeBackend(InferenceBackend):
    """Exported graphs under onnxruntime (see the module docstring). The generator is kept (on the CPU) to
    export new frame sizes; ``stats`` counts ``exports``, ``cache_reads`` and ``evictions``."""

    name = "onnxruntime"

    def __init__(self, generator: nn.Module, cfg: GeneratorConfig, settings: BackendSettings) -> None:
        super().__init__(generator, cfg, settings)
        if settings.max_sessions < 1:
            raise ConfigError(f"max_sessions must be >= 1, got {settings.max_sessions}")
        self.generator = generator.to("cpu").eval()
        for p in self.generator.parameters():
            p.requires_grad_(False)
        self._threads = settings.threads or torch.get_num_threads()
        self._sessions: OrderedDict[tuple[int, int], OnnxTranslator] = OrderedDict()
        self._cache: OnnxGraphCache | None = None
        self.int8: Int8Calibration | None = calibration_of(settings.metadata) if settings.onnx_int8 else None
        if self.int8 is not None:
            check_calibration_fits(self.int8, self.generator)  # now, not on the first frame of each size
        self.stats = {"exports": 0, "cache_reads": 0, "evictions": 0}

    @classmethod
    def unusable(cls, device: torch.device, precision: str) -> str | None:
        if device.type != "cpu":
            return f"runs on the CPU only, got device {str(device)!r}; use 'torch'"
        if precision != "fp32":
            return f"runs fp32 only, got precision {precision!r}"
        if not _onnxruntime_available():
            return "needs the onnxruntime and onnx packages, which are not importable"
        return None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def quantization(self) -> str:
        return "none" if self.int8 is None else f"int8 encoders (calibrated on {self.int8.source})"

    @property
    def cache(self) -> OnnxGraphCache:
        """The graph cache of this model (its digest is computed on first use)."""
        if self._cache is None:
            digest, name = model_digest(self.generator, self.cfg.to_dict()), self.settings.model_name
            if self.int8 is not None:  # the int8 graphs of a model: their own key
                key = f"{digest}:int8 v{INT8_VERSION}:{self.int8.digest()}"
                digest = hashlib.sha256(key.encode()).hexdigest()
                name = f"{name}-int8"
            self._cache = OnnxGraphCache(self.settings.onnx_cache_dir, name, digest)
        return self._cache

    def stage(self, t: Tensor) -> Tensor:
        return t.cpu()

    def translate_normalized(self, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor:
        session = self.session(int(rgb.shape[-2]), int(rgb.shape[-1]))
        frames = [
            torch.from_numpy(session.translate_normalized(
                rgb[b : b + 1].float().cpu().numpy(), semantic[b : b + 1].long().cpu().numpy(),
                instance[b : b + 1].long().cpu().numpy()))
            for b in range(rgb.shape[0])
        ]
        return torch.cat(frames) if len(frames) > 1 else frames[0]

    def translate_uint8(self, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor:
        session = self.session(int(rgb.shape[1]), int(rgb.shape[2]))
        out = session.translate_checked(rgb.cpu().numpy(), semantic.cpu().numpy(), instance.cpu().numpy())
        return torch.from_numpy(out)

    def session(self, height: int, width: int) -> OnnxTranslator:
        """The runner of ``height x width`` frames: from the table (marked most recently used), else opened from
        the cache or exported; the least recently used one is closed when the table is over ``max_sessions``."""
        key = (height, width)
        session = self._sessions.get(key)
        if session is not None:
            self._sessions.move_to_end(key)
            return session
        session = self._open(height, width)
        self._sessions[key] = session
        while len(self._sessions) > self.settings.max_sessions:
            self._sessions.popitem(last=False)
            self.stats["evictions"] += 1
            _return_freed_memory()
        return session

    @property
    def open_sizes(self) -> list[tuple[int, int]]:
        """Frame sizes with an open session, least recently used first."""
        return list(self._sessions)

    def _open(self, height: int, width: int) -> OnnxTranslator:
        from sim2real.translator.onnx_export import OnnxTranslator, export_onnx_bytes

        cache = self.cache
        path = cache.path(height, width)
        data = cache.read(height, width)
        if data is not None:
            try:
                session = OnnxTranslator(data, intra_op_threads=self._threads, spin_us=self.settings.onnx_spin_us,
                                        name=str(path))
                problem = _misfit(session, cache.digest, height, width)
            except CheckpointError as e:
                problem = str(e)
            if problem is None:
                self.stats["cache_reads"] += 1
                return session
            _log.warning("ONNX cache entry %s is not this model's graph: %s; exporting it again", path, problem)
        data = export_onnx_bytes(self.generator, height, width, cfg=self.cfg, metadata=self.settings.metadata,
                                 export_info={DIGEST_FIELD: cache.digest})
        if self.int8 is not None:
            data = quantize_int8(data, self.int8)
        self.stats["exports"] += 1
        session = OnnxTranslator(data, intra_op_threads=self._threads, spin_us=self.settings.onnx_spin_us,
                                 name=str(path))
        if (problem := _misfit(session, cache.digest, height, width)) is not None:
            raise InferenceError(f"the graph just exported for {path.name} does not fit: {problem}")
        cache.write(height, width, data)
        return session


def _return_freed_memory() -> None:
    """Hand the heap pages a closed session freed back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    onnxruntime frees a session's arena and initialisers with ``free``; glibc keeps most of those pages in its
    heaps, so without a trim every eviction would leave the process a little bigger.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _misfit(session: OnnxTranslator, digest: str, height: int, width: int) -> str | None:
    """Why an opened graph cannot serve ``height x width`` frames of the model ``digest`` (None when it can)."""
    if (session.height, session.width) != (height, width):
        return f"its input is {session.height}x{session.width} frames, not {height}x{width}"
    return export_mismatch(session.export_info, digest, height, width)
