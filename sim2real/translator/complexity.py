"""Parameter and MAC counts of the translator on the translate (inference) path.

MACs are ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2 of one :meth:`TranslatorGenerator.
translate` call (convolutions and matmuls; memory-bound ops such as ``grid_sample``, interpolation and
element-wise arithmetic are not counted). The instance branch always runs on N = ``max_instances``
slots (static shapes), so the count does not depend on the scene.

``python -m sim2real.translator.complexity`` prints params + GMACs of the lite and full presets at
640x360, 1280x720 and 1920x1080.
"""

from __future__ import annotations

from typing import Final

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sim2real.core.errors import ConfigError
from sim2real.translator.config import GENERATOR_PRESETS, get_generator_config
from sim2real.translator.generator import TranslatorGenerator

__all__ = ["REPORT_SIZES", "complexity_report", "count_macs", "count_params", "main"]

#: (width, height) pairs of the report.
REPORT_SIZES: Final = ((640, 360), (1280, 720), (1920, 1080))


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers excluded); only ``requires_grad`` ones when ``trainable_only``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_macs(generator: TranslatorGenerator, height: int, width: int) -> int:
    """MACs of one ``generator.translate`` call on a (1, 3, height, width) frame (FLOPs / 2).

    Runs in eval mode under ``torch.no_grad`` on the generator's device with synthetic labels (one
    instance); the previous train/eval mode is restored.

    Raises:
        ConfigError: height / width not multiples of ``generator.cfg.stride``.
    """
    param = next(generator.parameters())
    device, dtype = param.device, param.dtype
    rgb = torch.zeros(1, 3, height, width, device=device, dtype=dtype)
    generator.check_inputs(rgb)
    semantic = torch.zeros(1, height, width, dtype=torch.long, device=device)
    instance = torch.zeros(1, height, width, dtype=torch.long, device=device)
    instance[:, height // 4 : height // 2, width // 4 : width // 2] = 1
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            generator.translate(rgb, semantic, instance)
    finally:
        generator.train(was_training)
    return int(counter.get_total_flops()) // 2


def complexity_report(cfg_name: str, height: int, width: int) -> str:
    """One line: preset, size, parameters (all / translate path) and GMACs of the translate path."""
    cfg = get_generator_config(cfg_name)
    if height % cfg.stride or width % cfg.stride:
        raise ConfigError(f"{width}x{height} is not a multiple of preset {cfg_name!r}'s stride {cfg.stride}")
    torch.manual_seed(0)
    gen = TranslatorGenerator(cfg)
    unused = [gen.stems["target"], gen.style_encoders, gen.decoders["source"]]
    translate_params = count_params(gen) - sum(count_params(m) for m in unused)
    macs = count_macs(gen, height, width)
    return (
        f"{cfg_name:5s} {width:4d}x{height:<4d} params {count_params(gen) / 1e6:6.2f} M "
        f"(translate path {translate_params / 1e6:5.2f} M)  {macs / 1e9:7.2f} GMACs"
    )


def main() -> None:
    """Print :func:`complexity_report` for every preset at every :data:`REPORT_SIZES` entry."""
    for name in GENERATOR_PRESETS:
        for width, height in REPORT_SIZES:
            print(complexity_report(name, height, width))


if __name__ == "__main__":
    main()
