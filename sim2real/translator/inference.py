"""Inference API: ``Translator`` turns simulator frames into photorealistic frames.

    tr = Translator.from_checkpoint("models/gen.safetensors")          # device/precision "auto"
    real = tr.translate(rgb, semantic, instance)                         # numpy uint8 in, numpy uint8 out

Inputs (numpy arrays or torch tensors, all three of the same kind, same leading dims):

* ``rgb``       uint8 ``(H, W, 3)`` or ``(B, H, W, 3)``, RGB order
* ``semantic``  integer (uint8 canonical) ``(H, W)`` / ``(B, H, W)``: train ids 0..18 or 255 (ignore)
* ``instance``  integer (uint16 canonical) ``(H, W)`` / ``(B, H, W)``: 0 = no instance, ids >= 0

The output has the kind, shape and device of ``rgb`` and dtype uint8. Any H, W work: frames are padded
on the bottom/right to the network stride (rgb replicated, semantic with 255, instance with 0; at least
two content cells per side) and the result cropped back (:mod:`sim2real.translator.frames`). Normalisation
is the checkpoint's: ``x / 127.5 - 1`` in, ``(y + 1) * 127.5`` out. The network has no sampling at inference
(``style=None``), so the same input gives the same output.

The Translator validates frames and hands them to a backend (:mod:`sim2real.translator.backend`):
``"torch"`` (eager or compiled, CPU or CUDA, fp32 / fp16 / bf16 autocast; the default of the constructors,
:mod:`~sim2real.translator.torch_backend`), ``"onnxruntime"`` (CPU, fp32, one exported graph per frame size,
cached on disk under :func:`default_onnx_cache_dir` keyed by the model's content and verified on load, at most
``max_sessions`` sizes open at once; :mod:`~sim2real.translator.ort_backend`) and ``"auto"`` (onnxruntime on
CPU in fp32 when ``onnxruntime`` is importable, torch otherwise, e.g. on CUDA). Outputs of the two backends
agree to ~1e-6 in [-1, 1] space (checked by ``test/test_fast_paths.py``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sim2real.core.errors import CheckpointError, ConfigError
from sim2real.core.labels import TRAIN_ID
from sim2real.translator.backend import BACKENDS, BackendSettings, InferenceBackend, backend_class, resolve_backend
from sim2real.translator.checkpoint import build_generator, load_checkpoint
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.device import PRECISIONS, Precision, resolve_device, resolve_precision
from sim2real.translator.frames import (
    ArrayOrTensor,
    check_frames,
    check_label_values,
    denormalize_rgb,
    normalize_rgb,
    pad_to_stride,
    padded_size,
)
from sim2real.translator.onnx_cache import default_onnx_cache_dir, model_digest, state_digest
from sim2real.translator.styles import use_target_style

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Precision",
    "Translator",
    "check_frames",
    "check_label_values",
    "default_onnx_cache_dir",
    "denormalize_rgb",
    "normalize_rgb",
    "pad_to_stride",
    "padded_size",
    "resolve_backend",
    "resolve_device",
    "resolve_precision",
    "state_digest",
]


class Translator:
    """Frame-in, frame-out inference around a ``TranslatorGenerator`` (see the module docstring).

    Build with :meth:`from_checkpoint` or :meth:`from_generator`; not thread-safe (one caller at a time).
    """

    def __init__(
        self,
        generator: nn.Module,
        cfg: GeneratorConfig,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        channels_last: bool = True,
        compile: bool = False,
        metadata: Mapping[str, Any] | None = None,
        backend: str = "torch",
        threads: int | None = None,
        onnx_cache_dir: str | os.PathLike[str] | None = None,
        max_sessions: int = 4,
        onnx_spin_us: int = 0,
        onnx_int8: bool = True,
    ) -> None:
        """Wrap ``generator`` (the backend takes it over: moved, eval mode, frozen). Prefer the constructors.

        ``backend``: :data:`BACKENDS`. ``threads``: onnxruntime intra-op threads (default:
        ``torch.get_num_threads()``). ``onnx_cache_dir``: where exported graphs are kept (default
        :func:`default_onnx_cache_dir`). ``max_sessions``: onnxruntime sessions (frame sizes) kept open.
        ``onnx_spin_us``: how long onnxruntime's idle threads spin before sleeping (0 = not at all: right on a
        CPU shared with a simulator; see :class:`~sim2real.translator.onnx_export.OnnxTranslator`).
        ``onnx_int8``: onnxruntime runs the encoder convolutions in int8 when the checkpoint carries an int8
        calibration (:mod:`~sim2real.translator.int8`); False = fp32 graphs throughout.
        """
        if not isinstance(onnx_spin_us, int) or isinstance(onnx_spin_us, bool) or onnx_spin_us < 0:
            raise ConfigError(f"onnx_spin_us must be an int >= 0 (microseconds), got {onnx_spin_us!r}")
        stride = int(getattr(cfg, "stride", 1))
        if stride < 1:
            raise ConfigError(f"cfg.stride must be >= 1, got {stride}")
        device_ = resolve_device(device)
        precision_ = resolve_precision(precision, device_)
        self._cfg = cfg
        self._metadata = dict(metadata or {})
        settings = BackendSettings(
            device=device_, precision=precision_, channels_last=bool(channels_last), compile=bool(compile),
            threads=int(threads) if threads else None, max_sessions=int(max_sessions), onnx_spin_us=onnx_spin_us,
            onnx_cache_dir=Path(onnx_cache_dir) if onnx_cache_dir is not None else None, onnx_int8=bool(onnx_int8),
            metadata=self._metadata, model_name=self.model_name,
        )
        cls = backend_class(resolve_backend(backend, device_, precision_))
        self._backend: InferenceBackend = cls(generator, cfg, settings)
        self._generator = generator
        self._device, self._precision = device_, precision_

    # ---------------------------------------------------------------------------------- constructors
    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        precision: str = "auto",
        channels_last: bool = True,
        compile: bool = False,
        *,
        style: str | None = None,
        **options: Any,
    ) -> Translator:
        """Load a ``.safetensors`` checkpoint (see ``checkpoint.py``) and wrap its generator.

        Device, precision and backend are validated before the file is read, so a bad argument fails fast.
        ``style``: render in this named target dataset's mean style (a model trained with ``target.styles``;
        ConfigError lists the model's styles); None = the overall mean target style.
        ``options``: the keyword-only arguments of the constructor (backend, threads, onnx_cache_dir, ...).
        """
        dev = resolve_device(device)
        resolve_backend(options.get("backend", "torch"), dev, resolve_precision(precision, dev))
        loaded = load_checkpoint(path, map_location="cpu")
        generator = build_generator(loaded)
        if style is not None:
            use_target_style(generator, style)  # changes the weights' digest: its own ONNX cache entry
        try:
            return cls(generator, loaded.config, device=dev, precision=precision,
                       channels_last=channels_last, compile=compile, metadata=loaded.metadata, **options)
        except CheckpointError as e:  # e.g. its int8 calibration: name the file
            raise CheckpointError(f"{path}: {e}") from e

    @classmethod
    def from_generator(
        cls, generator: nn.Module, cfg: GeneratorConfig, *, copy_module: bool = True, **options: Any
    ) -> Translator:
        """Wrap an in-memory generator (tests, the trainer's validation); ``options`` as the constructor's.

        ``copy_module=True`` (default) deep-copies it first, so the caller's module keeps its device,
        mode, memory format and ``requires_grad`` flags.
        """
        return cls(copy.deepcopy(generator) if copy_module else generator, cfg, **options)

    # ------------------------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        """The device the network runs on (the CPU for onnxruntime)."""
        return self._backend.device

    @property
    def backend(self) -> str:
        """Concrete backend: ``"torch"`` or ``"onnxruntime"``."""
        return self._backend.name

    @property
    def quantization(self) -> str:
        """What runs in int8: ``"int8 encoders (calibrated on <source>)"`` or ``"none"`` (the backend's)."""
        return self._backend.quantization

    @property
    def runner(self) -> InferenceBackend:
        """The backend object itself (its own counters and settings)."""
        return self._backend

    @property
    def precision(self) -> str:
        """Concrete precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (autocast)."""
        return self._precision

    @property
    def config(self) -> GeneratorConfig:
        """The GeneratorConfig of the wrapped network."""
        return self._cfg

    @property
    def model_name(self) -> str:
        """``config.name`` (e.g. ``"lite"``) if set, else the checkpoint's ``model_name``, else "custom"."""
        name = getattr(self._cfg, "name", None) or self._metadata.get("model_name")
        return name if isinstance(name, str) and name else "custom"

    @property
    def model_digest(self) -> str:
        """SHA-256 of the network's tensors and config (what the ONNX cache is keyed by)."""
        return model_digest(self._generator, self._cfg.to_dict())

    @property
    def stride(self) -> int:
        """Frames are padded to multiples of this."""
        return int(self._cfg.stride)

    @property
    def metadata(self) -> dict[str, Any]:
        """The checkpoint's JSON document (empty for :meth:`from_generator` without metadata)."""
        return dict(self._metadata)

    @property
    def generator(self) -> nn.Module:
        """The wrapped network (eval mode, on the backend's device)."""
        return self._generator

    # ------------------------------------------------------------------------------------- inference
    def translate_normalized(self, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor:
        """Network-space call: float ``(B, 3, H, W)`` in [-1, 1], int64 ``(B, H, W)`` x2 -> float32
        ``(B, 3, H, W)`` in [-1, 1], on :attr:`device`. Pads to the stride and crops back; no validation.
        """
        return self._backend.translate_normalized(rgb, semantic, instance)

    @torch.inference_mode()
    def translate(self, rgb: ArrayOrTensor, semantic: ArrayOrTensor, instance: ArrayOrTensor) -> ArrayOrTensor:
        """Translate one frame or a batch; output has rgb's kind (numpy/torch), shape and device, uint8.

        Raises:
            TypeError: the arguments are not all numpy arrays or all torch tensors.
            ValueError: a shape or dtype does not match (the message names the argument).
            LabelError: semantic ids outside 0..18 and 255, or instance ids outside 0..65535.
            InferenceError: the backend cannot run the model (e.g. an exported graph that does not fit).
        """
        rgb_t, sem_t, inst_t, batched = check_frames(rgb, semantic, instance)
        stage = self._backend.stage
        sem_t, inst_t = stage(sem_t).long(), stage(inst_t).long()
        check_label_values(sem_t, inst_t)
        out = self._backend.translate_uint8(stage(rgb_t), sem_t, inst_t)
        if not batched:
            out = out[0]
        if isinstance(rgb, np.ndarray):
            return out.contiguous().cpu().numpy()
        return out.contiguous().to(rgb.device)

    __call__ = translate

    def warmup(self, height: int, width: int, batch: int = 1) -> None:
        """Run one synthetic batch of ``(batch, height, width)`` frames (one car instance) to trigger
        lazy initialisation, cuDNN autotuning, compilation or export; waits for the device to finish."""
        if min(height, width, batch) < 1:
            raise ValueError(f"warmup needs height, width, batch >= 1, got {height}, {width}, {batch}")
        device = self.device
        rgb = torch.full((batch, height, width, 3), 128, dtype=torch.uint8, device=device)
        sem = torch.full((batch, height, width), TRAIN_ID["road"], dtype=torch.uint8, device=device)
        inst = torch.zeros((batch, height, width), dtype=torch.int64, device=device)
        h0, w0 = height // 4, width // 4
        sem[:, h0 : h0 + max(1, height // 2), w0 : w0 + max(1, width // 2)] = TRAIN_ID["car"]
        inst[:, h0 : h0 + max(1, height // 2), w0 : w0 + max(1, width // 2)] = 1
        self.translate(rgb, sem, inst)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
