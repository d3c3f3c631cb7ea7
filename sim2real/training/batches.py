"""The data of a training run: source and target batch streams (or layout-matched targets), bad-frame accounting,
and the batches moved to the training device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sim2real.data.layout import LayoutConfig, LayoutMatchedTargets
from sim2real.training.config import TrainConfig
from sim2real.training.stream import BadFrameTally, BatchStream
from sim2real.translator.objective import SourceBatch, TargetBatch

__all__ = ["TrainingBatches"]

_LAYOUT_KEYS = ("target_index", "layout_changed", "layout_similarity")


class TrainingBatches:
    """Where a run's batches come from.

    Args:
        cfg: the run's config (batch size, workers, seed, ``layout_candidates``, ``max_bad_frames``).
        source, target: the source (labelled) and target datasets.
        device: where batches go.
        rank: this replica's index (layout draws are per rank).
        consumed: {"source", "target"} samples already consumed (a resumed run continues exactly).
        bad_frames: distinct bad frames seen so far (saved in checkpoints).
        log: where skipped frames are reported.
    """

    def __init__(self, cfg: TrainConfig, source: Any, target: Any, device: torch.device, *, rank: int,
                 consumed: dict[str, int], bad_frames: BadFrameTally, log: Callable[[str], None]) -> None:
        data_seed = cfg.seed + 1
        self.device, self.rank, self.bad_frames, self.log = device, rank, bad_frames, log
        self.source = BatchStream(source, cfg.batch_size, data_seed, cfg.num_workers, consumed["source"])
        self.target = BatchStream(target, cfg.batch_size, data_seed + 1, cfg.num_workers, consumed["target"])
        self.layout = (LayoutMatchedTargets(target, LayoutConfig(candidates=cfg.layout_candidates),
                                            seed=data_seed + 1) if cfg.layout_candidates > 1 else None)

    @property
    def consumed(self) -> dict[str, int]:
        return {"source": self.source.consumed, "target": self.target.consumed}

    def layout_stats(self) -> dict[str, float]:
        """``layout/*`` figures of the matching so far (empty without matching)."""
        if self.layout is None:
            return {}
        return {f"layout/{k}": v for k, v in self.layout.counter.summary().items()}

    def next(self) -> tuple[SourceBatch, TargetBatch]:
        """The next source and target batches, on the device. Bad frames the bag datasets skipped on the way are
        logged (bag, stamp, reason) and counted: past ``cfg.max_bad_frames``, BagError."""
        s = next(self.source)
        t = self._matched_targets(s) if self.layout is not None else next(self.target)
        for problem in self.bad_frames.add(self.source.take_skipped() + self.target.take_skipped()):
            self.log(f"skipped bad frame in {problem}")
        s = {k: v.to(self.device, non_blocking=True) for k, v in s.items()}
        t = {k: v.to(self.device, non_blocking=True) for k, v in t.items()}
        return (SourceBatch(s["rgb"], s["semantic"], s["instance"], s.get("frame_box")),
                TargetBatch(t["rgb"], frame_box=t.get("frame_box"), dataset=t.get("dataset")))

    def _matched_targets(self, source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Target crops matched to the source batch's layouts; draws numbered by the source stream's position (a
        resumed run draws the same), the target frames' augmentation epoch advancing with them."""
        first = self.source.consumed - len(source["rgb"])
        targets = self.layout.targets
        if hasattr(targets, "set_epoch"):
            targets.set_epoch(first // max(len(targets), 1))
        batch = self.layout.match_batch(source, first, stream=self.rank)
        for key in _LAYOUT_KEYS:
            batch.pop(key, None)
        return batch
