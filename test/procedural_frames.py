"""Small labelled frames of the procedural simulator for the colour-prior tests."""

from __future__ import annotations

import numpy as np
import torch


def procedural_frames(count: int, seed: int, size: tuple[int, int] = (64, 96)) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` frames of world ``seed`` at ``size`` (H, W): rgb (N, 3, H, W) in [-1, 1], semantic (N, H, W)."""
    from sim_bridge.procedural import ProceduralSimulator, SimConfig

    sim = ProceduralSimulator(SimConfig(width=size[1], height=size[0], seed=seed))
    frames = [sim.frame(7 * i) for i in range(count)]
    rgb = torch.stack([torch.from_numpy(f.rgb).permute(2, 0, 1).float() / 127.5 - 1 for f in frames])
    return rgb, torch.stack([torch.from_numpy(f.semantic.astype(np.int64)) for f in frames])
