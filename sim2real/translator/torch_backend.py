"""The PyTorch inference backend: the generator itself, eager or ``torch.compile``, on CPU or CUDA.

Eval mode under ``torch.inference_mode``; fp32 weights with autocast for ``fp16`` / ``bf16``; optional
channels_last. ``compile=True`` wraps ``generator.translate`` in ``torch.compile`` with automatic dynamic
shapes (``dynamic=None``): the first frame size compiles a static graph, and the first change of batch or
frame size recompiles once with that dimension symbolic, so a node that sees several cameras, resolutions and
batch sizes compiles a handful of graphs, never one per (B, H, W) (``dynamic=False`` did; dynamo then gives
up and runs eager after its recompile limit, 8, without saying so). Batch 1 stays a graph of its own (dynamo
specialises sizes 0 and 1). The in-place inference fast paths of the layers are skipped while compiling
(``layers.inference_fast_path``): inductor fuses the plain formulation itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from sim2real.translator.backend import BackendSettings, InferenceBackend
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.device import autocast
from sim2real.translator.frames import pad_to_stride

__all__ = ["TorchBackend"]


class TorchBackend(InferenceBackend):
    """The generator on ``settings.device`` at ``settings.precision`` (see the module docstring).

    The module is moved to the device, put in eval mode, frozen, and (``channels_last``) converted; pass a
    copy when the caller's module must keep its state.
    """

    name = "torch"

    def __init__(self, generator: nn.Module, cfg: GeneratorConfig, settings: BackendSettings) -> None:
        super().__init__(generator, cfg, settings)
        gen = generator.to(settings.device).eval()
        for p in gen.parameters():
            p.requires_grad_(False)
        if settings.channels_last:
            gen = gen.to(memory_format=torch.channels_last)
        self.generator = gen
        self._forward: Callable[[Tensor, Tensor, Tensor], Tensor] = gen.translate
        if settings.compile:
            self._forward = torch.compile(gen.translate, dynamic=None)

    def stage(self, t: Tensor) -> Tensor:
        """``t`` on the device; a host tensor bound for CUDA is staged in page-locked memory first.

        A pageable source makes ``non_blocking`` a synchronous copy; ``pin_memory()`` takes the buffer from
        torch's caching host allocator, which records the asynchronous copy and does not hand the block out
        again before it has finished (so back-to-back inputs cannot overwrite each other's staging buffer).
        """
        if self.device.type != "cuda" or t.device.type != "cpu":
            return t.to(self.device, non_blocking=True)
        return t.pin_memory().to(self.device, non_blocking=True)

    @torch.inference_mode()
    def translate_normalized(self, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor:
        """Network space in and out (see :class:`InferenceBackend`); pads to the stride and crops back."""
        H, W = rgb.shape[-2:]
        rgb = rgb.to(self.device, non_blocking=True).float()
        semantic = semantic.to(self.device, non_blocking=True).long()
        instance = instance.to(self.device, non_blocking=True).long()
        # rgb stays NCHW: the stems convolve it as it is and the affine colour head reads NCHW planes of the
        # guide (a channels_last copy here would be undone there).
        x, s, i = pad_to_stride(rgb, semantic, instance, self.cfg.stride)
        with autocast(self.device, self.settings.precision):
            y = self._forward(x, s, i)
        return y[:, :, :H, :W].float()

    @torch.inference_mode()
    def translate_uint8(self, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor:
        """uint8 frames in and out, on the device (normalisation there too)."""
        return super().translate_uint8(rgb, semantic, instance)
