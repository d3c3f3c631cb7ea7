"""How sure the judge's figures are: a block bootstrap over the evaluated frames.

Consecutive frames of one sequence are near duplicates, so frames are not resampled one by one: each sequence is
cut into blocks of ``block`` consecutive frames (default round(sqrt(N))), and a resample draws as many blocks, with
replacement, as there are. Frames that are not independent at all (the overlapping windows of one CARLA frame)
form one cluster, resampled whole; with fewer than MIN_BLOCKS blocks there is no estimate. Every method is scored
on the same resamples, so the spread of a *difference* between two methods (paired) is much smaller than the
spread of either figure: that paired standard deviation decides whether the model beats a baseline or ties with
it within noise (report.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim2real.evaluation.judge_training import iou_from_confusion

__all__ = ["MIN_BLOCKS", "block_bootstrap", "bootstrap_ious"]


#: fewer independent blocks than this and there is no noise estimate (the verdicts then say "undecided")
MIN_BLOCKS = 8


def block_bootstrap(sequence: Sequence[int | str], resamples: int = 200, seed: int = 0, block: int | None = None
                    ) -> list[np.ndarray]:
    """Resamples of frame indices: ``sequence`` (N,) the sequence (or cluster) id of each frame, in order.

    Returns ``resamples`` int arrays of frame indices (each about N long) drawn as blocks of consecutive frames
    of one sequence, with replacement; ``block`` = N or more makes every sequence one block (clusters). Returns
    [] when there are fewer than :data:`MIN_BLOCKS` blocks: too few independent samples to estimate a spread.
    """
    n = len(sequence)
    if n == 0:
        return []
    size = block or max(1, round(n**0.5))
    blocks: list[np.ndarray] = []
    start = 0
    for i in range(1, n + 1):  # runs of one sequence id, cut into blocks of ``size``
        if i == n or sequence[i] != sequence[start]:
            blocks += [np.arange(b, min(b + size, i)) for b in range(start, i, size)]
            start = i
    if len(blocks) < MIN_BLOCKS:
        return []
    rng = np.random.default_rng(seed)
    return [np.concatenate([blocks[j] for j in rng.integers(0, len(blocks), len(blocks))]) for _ in range(resamples)]


def bootstrap_ious(frame_confusions: np.ndarray, resamples: list[np.ndarray]) -> np.ndarray:
    """Per-class IoU of each resample: frame_confusions (N, K, K) per-frame confusion matrices -> (R, K)
    (NaN for classes absent from a resample's labels)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([iou_from_confusion(frame_confusions[idx].sum(0)) for idx in resamples])
