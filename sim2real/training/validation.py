"""Validation of a run: the EMA generator on held-out source frames.

``val/judge_miou`` — the validation judge (a segmenter trained on real frames, never a loss; the shipped
CamVid judge by default) on the translated frames against their labels — is the one number that selects the best
checkpoint. ``val/semantic``, ``val/bbox`` and ``val/flip_rate`` come from the run's own critics, which the
generator is trained against: logged to watch training, never used to select.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sim2real.evaluation.judging import JudgeTally
from sim2real.evaluation.metrics import flip_tally
from sim2real.training.networks import Networks
from sim2real.translator.objective import LossWeights, SourceBatch, TargetBatch, generator_losses, translate_batches

__all__ = ["load_validation_judge", "validate"]


def load_validation_judge(path: str | None, device: torch.device) -> Any | None:
    """The declared validation judge (``TrainConfig.validation_judge``), or None when none is declared.

    Raises:
        CheckpointError: the file cannot be found (relative paths: the working directory, then the package's
            share directory) or is not a judge.
    """
    if not path:
        return None
    from sim2real.core.errors import CheckpointError
    from sim2real.evaluation.judge import load_judge
    from sim2real.runtime.paths import share_dir

    candidates = [Path(path)] if Path(path).is_absolute() else [Path(path), share_dir() / path]
    for candidate in candidates:
        if candidate.is_file():
            return load_judge(candidate, device)[0]
    raise CheckpointError(f"validation_judge {path!r} not found (looked in {[str(c) for c in candidates]}); "
                          "set validation_judge to a judge .safetensors or null")


@torch.no_grad()
def validate(nets: Networks, frames: Sequence[dict[str, torch.Tensor]] | Any, count: int, weights: LossWeights,
             device: torch.device, *, judge: Any | None = None) -> dict[str, float]:
    """Over the first ``count`` frames:

    ``val/judge_miou`` (higher is better; only with a ``judge``): the judge's mIoU on the EMA generator's
    translations (mean output, no noise) against the frames' labels, pooled over the frames. Critic diagnostics,
    means, lower is better: ``val/semantic`` (semantic consistency CE), ``val/bbox`` (box regression on jittered
    proposals), ``val/flip_rate`` (share of labelled pixels whose critic-segmenter class differs from the label;
    :func:`~sim2real.evaluation.metrics.flip_tally`, 0 for a frame with no labelled pixel).
    """
    nets.aux.eval()
    totals: dict[str, float] = {}
    done = 0
    tally = JudgeTally() if judge is not None else None
    for i in range(min(count, len(frames))):
        s = {k: v.to(device, non_blocking=True) for k, v in frames[i].items()}
        src = SourceBatch(s["rgb"][None], s["semantic"][None], s["instance"][None])
        tgt = TargetBatch(s["rgb"][None])
        out = translate_batches(nets.gen_ema, nets.aux, src, tgt)
        g = generator_losses(nets.gen_ema, nets.disc_target, nets.disc_source, nets.aux, src, tgt, weights,
                             content_disc=nets.content_disc, outputs=out)
        if tally is not None:
            tally.add(judge, nets.gen_ema.translate(src.rgb, src.semantic, src.instance).float(), src.semantic,
                      src.instance)
        flips = flip_tally(nets.aux.segmenter(out.fake_target).argmax(1), src.semantic).overall()
        values = (("semantic", g.get("semantic")), ("bbox", g.get("bbox")),
                  ("flip_rate", 0.0 if math.isnan(flips) else flips))
        for key, value in values:
            if value is not None:
                totals[f"val/{key}"] = totals.get(f"val/{key}", 0.0) + float(value)
        done += 1
    result = {k: v / max(done, 1) for k, v in totals.items()}
    if tally is not None and tally.frames:
        miou = tally.miou()
        result["val/judge_miou"] = 0.0 if math.isnan(miou) else miou
    return result
