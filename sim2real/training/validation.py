"""Validation of a run: label preservation of the EMA generator on held-out source frames."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from sim2real.evaluation.metrics import flip_tally
from sim2real.training.networks import Networks
from sim2real.translator.objective import LossWeights, SourceBatch, TargetBatch, generator_losses, translate_batches

__all__ = ["validate"]


@torch.no_grad()
def validate(nets: Networks, frames: Sequence[dict[str, torch.Tensor]] | Any, count: int, weights: LossWeights,
             device: torch.device) -> dict[str, float]:
    """Mean over the first ``count`` frames (lower is better for all three):

    ``val/semantic``: the critics' semantic consistency CE on translated frames; ``val/bbox``: box consistency
    (L1 + GIoU + class); ``val/flip_rate``: share of labelled pixels whose segmenter class on the translated
    frame differs from the ground truth (:func:`~sim2real.evaluation.metrics.flip_tally`; 0 for a frame with no
    labelled pixel).
    """
    nets.aux.eval()
    totals: dict[str, float] = {}
    done = 0
    for i in range(min(count, len(frames))):
        s = {k: v.to(device, non_blocking=True) for k, v in frames[i].items()}
        src = SourceBatch(s["rgb"][None], s["semantic"][None], s["instance"][None])
        tgt = TargetBatch(s["rgb"][None])
        out = translate_batches(nets.gen_ema, nets.aux, src, tgt)
        g = generator_losses(nets.gen_ema, nets.disc_target, nets.disc_source, nets.aux, src, tgt, weights,
                             content_disc=nets.content_disc, outputs=out)
        flips = flip_tally(nets.aux.segmenter(out.fake_target).argmax(1), src.semantic).overall()
        values = (("semantic", g.get("semantic")), ("bbox", g.get("bbox")),
                  ("flip_rate", 0.0 if math.isnan(flips) else flips))
        for key, value in values:
            if value is not None:
                totals[f"val/{key}"] = totals.get(f"val/{key}", 0.0) + float(value)
        done += 1
    return {k: v / max(done, 1) for k, v in totals.items()}
