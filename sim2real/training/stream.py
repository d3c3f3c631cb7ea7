"""Endless, resumable batch streams over map-style or iterable datasets, sharded for DDP.

Map-style datasets are read in the order of a ``DistributedSampler`` (shuffled per epoch from the run's
seed, one shard per rank); iterable datasets (bags) shard themselves across ranks and workers. Either way a
stream knows how many samples it has consumed, and a stream rebuilt with that count continues with exactly
the batches the interrupted one would have produced (exact resume).

Bad frames: a bag dataset built with ``skip_bad_frames`` skips a frame it cannot decode and reports it with
the next sample (``data.datasets.SKIPPED_KEY``); the stream takes those reports off each batch
(:meth:`BatchStream.take_skipped`) and :class:`BadFrameTally` counts the distinct ones of a run against a
limit, so one bad frame costs one frame, not the run, and a bag full of them stops it with a clear error.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from sim2real.core.errors import BagError, ConfigError
from sim2real.data.datasets import SKIPPED_KEY

__all__ = ["BadFrameTally", "BatchStream"]


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class BatchStream:
    """``next(stream)`` -> a collated batch (dict of stacked tensors), forever.

    Args:
        dataset: map-style or iterable dataset of dicts of tensors (equal sizes within a batch).
        batch_size: samples per batch on this rank.
        seed: shuffling seed (same on every rank; the sampler shards).
        num_workers: DataLoader workers.
        consumed: samples already consumed on this rank (from a checkpoint) to resume after.
    """

    def __init__(self, dataset: Dataset | IterableDataset, batch_size: int, seed: int, num_workers: int = 0,
                 consumed: int = 0) -> None:
        self.dataset, self.batch_size, self.seed, self.num_workers = dataset, batch_size, seed, num_workers
        self.consumed = consumed
        self.rank, self.world = _world()
        self._iter: Iterator[dict[str, torch.Tensor]] | None = None
        self._skipped: list[str] = []
        if not isinstance(dataset, IterableDataset):
            per_rank = len(dataset) // self.world
            if per_rank < batch_size:
                raise ConfigError(f"dataset of {len(dataset)} samples is too small for batch_size {batch_size} "
                                  f"on {self.world} rank(s)")

    def _loader(self, indices: Any = None) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)  # workers' seeds: never from the global RNG
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=indices, num_workers=self.num_workers,
                          drop_last=True, generator=generator, persistent_workers=False)

    def _map_style_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        sampler = DistributedSampler(self.dataset, num_replicas=self.world, rank=self.rank, shuffle=True,
                                     seed=self.seed, drop_last=True)
        per_epoch = (len(sampler) // self.batch_size) * self.batch_size
        first_epoch, offset = divmod(self.consumed, per_epoch)
        for epoch in itertools.count(first_epoch):
            sampler.set_epoch(epoch)
            if hasattr(self.dataset, "set_epoch"):  # new random crops / flips each epoch (a function of it)
                self.dataset.set_epoch(epoch)
            indices = list(sampler)[offset:per_epoch]
            offset = 0
            yield from self._loader(indices)

    def _iterable_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        skip = self.consumed // self.batch_size
        for epoch in itertools.count():
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            produced = 0
            for batch in self._loader():
                produced += 1
                if skip:
                    skip -= 1
                    continue
                yield batch
            if produced == 0:
                raise ConfigError(f"{type(self.dataset).__name__} yielded fewer than batch_size="
                                  f"{self.batch_size} samples on rank {self.rank}: nothing to train on")

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self._iter is None:
            is_iterable = isinstance(self.dataset, IterableDataset)
            self._iter = self._iterable_batches() if is_iterable else self._map_style_batches()
        batch = next(self._iter)
        self.consumed += self.batch_size
        for text in batch.pop(SKIPPED_KEY, ()):
            self._skipped.extend(line for line in text.split("\n") if line)
        return batch

    def take_skipped(self) -> list[str]:
        """Descriptions of the bad frames skipped since the last call (bag, stamp, reason)."""
        taken, self._skipped = self._skipped, []
        return taken


class BadFrameTally:
    """The distinct bad frames a run skipped (each described by bag, stamp and reason), at most ``limit``.

    A frame met again (the next epoch, or the steps redone after a resume) is not counted twice; the
    descriptions are saved in checkpoints, so the limit holds across resumes.
    """

    def __init__(self, limit: int, seen: Iterable[str] = ()) -> None:
        self.limit = limit
        self.seen: list[str] = list(seen)
        self._known = set(self.seen)

    def add(self, descriptions: Iterable[str]) -> list[str]:
        """Record ``descriptions``; returns the ones not seen before. Raises BagError past the limit."""
        new = [d for d in dict.fromkeys(descriptions) if d not in self._known]
        self.seen.extend(new)
        self._known.update(new)
        if len(self.seen) > self.limit:
            raise BagError(f"{len(self.seen)} bad frames skipped, more than max_bad_frames={self.limit} (the latest: "
                           f"{self.seen[-1]}); repair or leave out those bags, or raise max_bad_frames")
        return new
