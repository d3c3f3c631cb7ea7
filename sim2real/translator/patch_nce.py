"""PatchNCE (CUT, Park et al. 2020): a translated patch must be recognisable as the source patch it came from.

For a feature map of the source image k (B, C, h, w) and of its translation q (same shape), P locations are drawn
(the same for both); each location's vector goes through a small projection MLP and is L2-normalised. For every
query patch i, the positive is the key at the same location and the negatives are the keys at the other P - 1
locations of the same image:

    L_NCE = - 1/(B P) sum_b sum_i log( exp(q_i . k_i / tau) / sum_j exp(q_i . k_j / tau) )      (CUT Eq. 2, 5)

Keys are detached (CUT's ``PatchNCELoss``): the loss shapes the translation, not the source encoding. One-sided,
it preserves structure without a cycle back to the source domain (which a blurring, noisy camera makes
unreachable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PatchProjector", "patch_nce_loss"]


class PatchProjector(nn.Module):
    """Per-layer projection heads: feature vectors (N, C_l) -> (N, dim), L2-normalised (CUT's ``PatchSampleF``)."""

    def __init__(self, channels: list[int], dim: int = 128) -> None:
        super().__init__()
        self.heads = nn.ModuleList([nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim)) for c in channels])

    def forward(self, vectors: Tensor, layer: int) -> Tensor:
        return F.normalize(self.heads[layer](vectors), dim=-1)


def _sample(features: Tensor, index: Tensor) -> Tensor:
    """(B, C, h, w), (P,) flat indices -> (B, P, C)."""
    return features.flatten(2)[:, :, index].transpose(1, 2)


def patch_nce_loss(queries: list[Tensor], keys: list[Tensor], projector: PatchProjector, *, num_patches: int = 128,
                   tau: float = 0.07, generator: torch.Generator | None = None) -> Tensor:
    """Mean PatchNCE over layers: per layer l, queries[l] (translation) and keys[l] (source), both (B, C_l, h_l, w_l).

    Returns a scalar; gradients reach the queries and the projector, not the keys.
    """
    if len(queries) != len(keys) or not queries:
        raise ValueError(f"need the same number (>= 1) of query and key layers, got {len(queries)} and {len(keys)}")
    losses = []
    for layer, (q, k) in enumerate(zip(queries, keys, strict=True)):
        if q.shape != k.shape:
            raise ValueError(f"layer {layer}: query {tuple(q.shape)} and key {tuple(k.shape)} differ")
        positions = q.shape[2] * q.shape[3]
        count = min(num_patches, positions)
        index = torch.randperm(positions, generator=generator)[:count].to(q.device)
        fq = projector(_sample(q, index).float(), layer)  # (B, P, D)
        fk = projector(_sample(k.detach(), index).float(), layer)
        logits = torch.bmm(fq, fk.transpose(1, 2)) / tau  # (B, P, P): row i, positive at column i
        target = torch.arange(count, device=q.device).expand(q.shape[0], count)
        losses.append(F.cross_entropy(logits.flatten(0, 1), target.flatten()))
    return torch.stack(losses).mean()
