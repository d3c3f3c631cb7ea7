"""Device and precision: the one place that turns ``"auto"`` / ``"cuda:1"`` / ``"bf16"`` into checked choices.

Inference (:class:`~sim2real.translator.inference.Translator`), training (the Trainer) and the nodes all resolve
their ``device`` setting with :func:`resolve_device`, so the same string means the same device everywhere and
fails with the same message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final, Literal

import torch

from sim2real.core.errors import ConfigError

__all__ = ["AUTOCAST_DTYPES", "PRECISIONS", "Precision", "autocast", "resolve_device", "resolve_precision"]

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: Final[tuple[str, ...]] = ("auto", "fp32", "fp16", "bf16")
#: autocast dtype of each reduced precision (fp32 runs without autocast).
AUTOCAST_DTYPES: Final[dict[str, torch.dtype]] = {"fp16": torch.float16, "bf16": torch.bfloat16}
_VALID = "expected 'auto', 'cpu', 'cuda' or 'cuda:N'"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available else ``cpu``; ``"cpu"``; ``"cuda"`` / ``"cuda:N"`` checked.

    CUDA devices come back with their index (``cuda:0``, not ``cuda``), so two spellings of one device compare
    equal.

    Raises:
        ConfigError: unknown device string, CUDA requested but unavailable, or N out of range.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device {device!r} is not valid; {_VALID}") from e
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ConfigError(f"device {device!r} is not supported; {_VALID}")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} requested but CUDA is not available "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); use 'cpu' or 'auto'"
        )
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if not 0 <= index < count:
        raise ConfigError(f"device {device!r}: CUDA device index {index} out of range, {count} device(s) visible")
    return torch.device("cuda", index)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Map ``"auto"`` to a concrete precision for ``device`` and check the combination is usable.

    ``auto``: bf16 on CUDA devices that support it, else fp16 on CUDA, fp32 on CPU. fp16 needs CUDA;
    bf16 runs on CUDA (when supported) and on CPU (CPU autocast).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not valid; expected one of {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    if precision == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and not cuda:
        raise ConfigError(f"precision 'fp16' needs a CUDA device, got device {str(device)!r}; use 'fp32' or 'bf16'")
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision 'bf16' is not supported on {torch.cuda.get_device_name(device)}; use 'fp16'")
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast to ``precision``'s dtype on ``device`` (fp16 / bf16), or nothing for fp32."""
    dtype = AUTOCAST_DTYPES.get(precision)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        yield
