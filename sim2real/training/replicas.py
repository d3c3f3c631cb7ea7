"""Data-parallel replicas (``torchrun``): every rank holds full copies of the networks; this keeps them equal.

Done by hand rather than with ``DistributedDataParallel`` because the objective calls several generator
methods per step, which DDP's forward-bound reducer does not support. Per optimizer step, gradients are
averaged with one all-reduce. Buffers are kept equal by design, two ways:

* the generator's state (class-wise memory keys / values, mean styles) is *pooled*: the update's sums and
  counts are all-reduced before they are applied (:meth:`Replicas.reduce_sum`), so every rank applies the
  same update, computed from every rank's pixels, to the same old buffers (an update of the batch of all ranks);
* every other buffer (the discriminators' spectral-norm vectors) is broadcast from rank 0 after the step,
  as DDP does.

:meth:`Replicas.check` compares a digest of all weights and buffers across ranks (run at the end of training).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Replicas", "weights_digest"]


def weights_digest(modules: Mapping[str, nn.Module]) -> str:
    """SHA-256 of every parameter and buffer of ``modules`` (replica comparison)."""
    h = hashlib.sha256()
    for name, module in modules.items():
        for key, tensor in module.state_dict().items():
            h.update(f"{name}.{key}".encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Replicas:
    """This process's place among the ranks, and the collective operations the trainer needs."""

    def __init__(self) -> None:
        dist = torch.distributed
        active = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if active else 0
        self.world = dist.get_world_size() if active else 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs and writes checkpoints."""
        return self.rank == 0

    def broadcast_parameters(self, modules: Iterable[nn.Module]) -> None:
        """Rank 0's parameters and buffers to every rank (at start-up)."""
        if self.world == 1:
            return
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                torch.distributed.broadcast(tensor.data, 0)

    def average_gradients(self, params: list[nn.Parameter]) -> None:
        """Mean of every rank's gradients, in place, with one all-reduce of the flattened gradients."""
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()

    def reduce_sum(self) -> Callable[[Tensor], Tensor] | None:
        """A function that sums a tensor over the ranks (None with one rank): the generator state's pooling."""
        if self.world == 1:
            return None

        def all_reduce_sum(t: Tensor) -> Tensor:
            t = t.contiguous()
            torch.distributed.all_reduce(t)
            return t

        return all_reduce_sum

    def broadcast_buffers(self, modules: Iterable[nn.Module]) -> None:
        """Rank 0's buffers of ``modules`` to every rank (after a step)."""
        if self.world == 1:
            return
        for module in modules:
            for buf in module.buffers():
                torch.distributed.broadcast(buf.data, 0)

    def check(self, digest: str, log: Callable[[str], Any]) -> str:
        """All ranks compare ``digest``; RuntimeError if any replica diverged. Returns the digest."""
        if self.world == 1:
            return digest
        gathered: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(gathered, digest)
        if len(set(gathered)) != 1:
            raise RuntimeError(f"DDP replicas diverged: weight digests per rank {gathered}")
        log(f"replicas identical on {self.world} ranks: weights sha256 {digest[:16]}")
        return digest
