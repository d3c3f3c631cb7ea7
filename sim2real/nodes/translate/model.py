"""The translator of translate_node: loading a checkpoint (:func:`load_translator`), the CPU thread count,
warm-up, and the run-time model switch (:class:`ModelSlot`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sim2real.core.errors import Sim2RealError
from sim2real.runtime.paths import share_dir

__all__ = [
    "ModelSlot",
    "TranslatorFactory",
    "TranslatorLike",
    "default_model_path",
    "inference_threads",
    "load_translator",
]


class TranslatorLike(Protocol):
    """What the node needs from :class:`sim2real.translator.inference.Translator`."""

    @property
    def model_name(self) -> str: ...

    @property
    def device(self) -> Any: ...

    def translate(self, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray) -> np.ndarray: ...

    def warmup(self, height: int, width: int, batch: int = 1) -> None: ...


#: (model path, device, precision, backend) -> translator; with the node's ``style`` / ``onnx_spin_us`` parameters
#: set, or ``onnx_int8`` off, it is also called with ``style=NAME`` / ``onnx_spin_us=N`` / ``onnx_int8=False`` (as
#: :func:`load_translator` accepts), so a custom factory must take those keywords.
TranslatorFactory = Callable[..., TranslatorLike]


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


def load_translator(path: str, device: str, precision: str, backend: str = "auto", *, style: str = "",
                    onnx_spin_us: int = 0, onnx_int8: bool = True) -> TranslatorLike:
    """Load a ``.safetensors`` checkpoint; raise :class:`Sim2RealError` naming the path when it cannot.

    ``backend`` (:data:`BACKENDS`): ``auto`` runs onnxruntime on the CPU (the graph is exported for the frame
    size at warm-up or on the first frame of a new size, and cached on disk) and torch on CUDA. ``style``: the
    model's named target style to render in ("" = its mean style; an unknown name raises ConfigError).
    ``onnx_spin_us``: how long onnxruntime's idle threads spin before sleeping (0 = not at all). ``onnx_int8``:
    onnxruntime runs the encoder convolutions in int8 when the checkpoint carries an int8 calibration.
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

    return Translator.from_checkpoint(p, device=device, precision=precision, backend=backend, style=style or None,
                                      onnx_spin_us=onnx_spin_us, onnx_int8=onnx_int8)


class ModelSlot:
    """The translator in use and the run-time switch: :meth:`stage` loads (and warms up) a new checkpoint inside
    the parameter request, so a model that does not load is refused with the reason and the old one kept;
    :meth:`commit` swaps it in once the change is accepted."""

    def __init__(self, factory: TranslatorFactory, path: str, *, device: str, precision: str, backend: str,
                 logger: Any) -> None:
        """Load ``path`` (raises :class:`Sim2RealError` naming it when it cannot be loaded)."""
        self._factory, self._logger = factory, logger
        self._device, self._precision, self._backend = device, precision, backend
        self.path = path
        self.translator: TranslatorLike = factory(path, device, precision, backend)
        self._staged: dict[str, TranslatorLike] = {}

    def warmup(self, height: int, width: int, batch: int) -> None:
        """Run one (batch, height, width) frame through the model and log how long it took."""
        t0 = time.perf_counter()
        self.translator.warmup(height, width, batch)
        self._logger.info(
            f"warm-up {width}x{height} x{batch} on {self.translator.device}"
            f" ({getattr(self.translator, 'backend', 'torch')}, quantization"
            f" {getattr(self.translator, 'quantization', 'none')}): {1000 * (time.perf_counter() - t0):.0f} ms")

    def stage(self, path: str, size: tuple[int, int] | None) -> str | None:
        """Load ``path`` and warm it up at ``size`` (the last frame's); the reason when it fails, else None."""
        if path == self.path:
            return None
        try:
            translator = self._factory(path, self._device, self._precision, self._backend)
            if size is not None:
                translator.warmup(*size)
        except Exception as exc:  # any load failure: keep the old model, tell the caller why
            reason = f"model {path!r} not loaded, keeping {self.path!r}: {exc}"
            self._logger.error(reason)
            return reason
        self._staged = {path: translator}
        return None

    def commit(self, path: str) -> bool:
        """Use the model staged for ``path``; False when none is staged (e.g. it was the current one)."""
        if path not in self._staged:
            return False
        self.translator = self._staged.pop(path)
        self.path = path
        self._logger.info(f"switched model to {path} ({self.translator.model_name})")
        return True

    def info(self) -> dict[str, Any]:
        """Device, precision, backend, quantization, model name and path."""
        tr = self.translator
        return {
            "device": str(tr.device),
            "precision": getattr(tr, "precision", self._precision),
            "backend": getattr(tr, "backend", self._backend),
            "quantization": getattr(tr, "quantization", "none"),
            "model": tr.model_name,
            "model_path": self.path,
        }
