"""How a training run computes: mixed precision (autocast + loss scaling) and, on request, determinism.

Mixed precision (``TrainConfig.amp``, ``amp_dtype``):

==========  ==================================  ===================================
amp_dtype   CUDA                                CPU
==========  ==================================  ===================================
auto        fp16 autocast + GradScaler          off (fp32): CPU fp16 is slow
fp16        fp16 autocast + GradScaler          refused (ConfigError)
bf16        bf16 autocast (no scaling needed)   bf16 autocast (CPU autocast)
==========  ==================================  ===================================

The forward and the losses run under autocast; the non-gradient state update after the generator step
(memory, mean styles) runs in float32 whatever the forward's dtype (``TranslatorGenerator.update_memory``).

Determinism (``TrainConfig.deterministic``): ``torch.use_deterministic_algorithms(True, warn_only=True)``
(process-wide: every op with a deterministic CUDA kernel uses it, e.g. the backward of gather, index_select
and repeat_interleave, scatter_add_, index_add_), cuDNN autotuning off and deterministic convolutions, and
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` when unset (cuBLAS reads it at its first call). Three ops of the training
step have no deterministic CUDA kernel and stay as they are, each named once by a torch warning: the backward
of bilinear ``F.interpolate`` (the decoder's colour coefficients), of ``AdaptiveAvgPool2d`` (the style
encoders' global pooling) and ``nll_loss`` / ``cross_entropy`` on CUDA (critics, memory contrastive loss).
So a resumed CUDA run matches the uninterrupted one to rounding (what ``test_cuda_amp_training_resumes``
checks), not bit for bit; making it bitwise would mean replacing those three ops. The state update (memory,
mean styles) adds in a fixed order either way (a matrix product, not ``index_add_``). On the CPU,
bit-identical runs need one intra-op thread (``OMP_NUM_THREADS=1``): oneDNN's multithreaded convolution
backward sums partial weight gradients in a varying order, which these flags do not change.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from sim2real.core.errors import ConfigError

__all__ = ["MixedPrecision", "enable_determinism"]


@dataclass(frozen=True)
class MixedPrecision:
    """The autocast policy of a run: ``dtype`` None = float32 (no autocast)."""

    device: torch.device
    dtype: torch.dtype | None

    @classmethod
    def for_run(cls, amp: bool, amp_dtype: str, device: torch.device) -> MixedPrecision:
        """The policy of ``TrainConfig.amp`` / ``amp_dtype`` on ``device`` (see the module docstring)."""
        if not amp:
            return cls(device, None)
        cuda = device.type == "cuda"
        if amp_dtype == "auto":
            return cls(device, torch.float16 if cuda else None)
        if amp_dtype == "fp16":
            if not cuda:
                raise ConfigError(f"amp_dtype 'fp16' needs a CUDA device, got {str(device)!r}; use 'bf16' or 'auto'")
            return cls(device, torch.float16)
        if amp_dtype == "bf16":
            if cuda and not torch.cuda.is_bf16_supported():
                raise ConfigError(f"amp_dtype 'bf16' is not supported on {torch.cuda.get_device_name(device)}")
            return cls(device, torch.bfloat16)
        raise ConfigError(f"amp_dtype {amp_dtype!r} is not valid; expected auto, fp16 or bf16")

    @property
    def enabled(self) -> bool:
        """True when the forward runs under autocast."""
        return self.dtype is not None

    @property
    def scaled(self) -> bool:
        """True when losses need scaling (fp16: small gradients would underflow)."""
        return self.dtype == torch.float16

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast to :attr:`dtype` on the run's device (nothing when float32)."""
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.enabled):
            yield

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, enabled only when :attr:`scaled`."""
        return torch.amp.GradScaler(self.device.type, enabled=self.scaled)


def enable_determinism() -> None:
    """Deterministic algorithms for the rest of the process (see the module docstring)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
