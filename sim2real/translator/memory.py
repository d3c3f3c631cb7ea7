"""Class-wise style memory (MGUIT, Jeong et al., CVPR 2021), vectorised over pixels, classes and slots.

The memory holds M slots for each of K classes. A slot has one key (shared by all domains, it lives in
content space) and one value per domain (a local style feature of that domain)::

    keys    (K, M, Dk)             buffer, unit length
    values  (D, K, M, Dv)          buffer, D = num_domains (0 = source, 1 = target in the generator)

* :meth:`ClassStyleMemory.read` -- every labelled pixel attends over the M slots of *its own class*
  (softmax of q . k / temperature) and returns the attention-weighted values of the requested domain;
  ignore pixels (label outside 0..K-1, e.g. 255) read zeros.
* :meth:`ClassStyleMemory.update` -- no-grad moving average of keys / values toward the mean of the
  pixels assigned (argmax) to each slot of each class.
* :meth:`ClassStyleMemory.contrastive_loss` -- InfoNCE pulling a pixel's query toward its best slot of its
  own class and away from all other K*M slots.

Labels are aligned to a feature map by nearest downsampling of the *whole* map
(:func:`downsample_labels`, ``nearest-exact``: the label at each cell centre), never by cropping.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim2real.core.errors import ConfigError, LabelError

__all__ = ["ClassStyleMemory", "at_cell_centres", "cell_centres", "downsample_labels"]


def downsample_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest downsampling of a whole label map: (B, H, W) -> (B, h, w), same dtype.

    Row i takes source row ``floor((i + 0.5) * H / h)`` (PyTorch's ``nearest-exact``; the cell centre), so a
    stride-s feature cell takes the label of the pixel at its centre. Implemented with two ``index_select``
    calls (exact for any integer dtype, exportable to ONNX as Gather).
    """
    if labels.dim() != 3:
        raise LabelError(f"labels must be (B, H, W), got shape {tuple(labels.shape)}")
    H, W = labels.shape[-2:]
    h, w = size
    if (h, w) == (H, W):
        return labels
    return at_cell_centres(labels.unsqueeze(1), size).squeeze(1)


def at_cell_centres(x: Tensor, cells: tuple[int, int]) -> Tensor:
    """(B, C, H, W) -> (B, C, h, w): the centre pixel of each of ``cells`` = (h, w) equal cells
    (:func:`cell_centres` along each axis). A strided slice when the cells divide the frame (one ONNX Slice), two
    ``index_select`` otherwise (Gather); the same values either way."""
    (H, W), (h, w) = x.shape[-2:], cells
    if H % h == 0 and W % w == 0:
        sh, sw = H // h, W // w
        return x[:, :, sh // 2 :: sh, sw // 2 :: sw]
    return x.index_select(2, cell_centres(H, h, x.device)).index_select(3, cell_centres(W, w, x.device))


def cell_centres(length: int, cells: int, device: torch.device) -> Tensor:
    """Indices of the centre pixels of ``cells`` equal cells along an axis of ``length`` pixels: (cells,) int64,
    ``floor((i + 0.5) * length / cells)``."""
    return ((torch.arange(cells, device=device) * 2 + 1) * length) // (2 * cells)


class ClassStyleMemory(nn.Module):
    """MGUIT class-wise memory: keys (K, M, Dk), values (D, K, M, Dv) as buffers.

    Args:
        num_classes: K.
        slots_per_class: M.
        key_dim: Dk (queries must have this many channels; the generator L2-normalises them).
        value_dim: Dv.
        num_domains: D (value sets).
        momentum: update rule ``new = momentum * old + (1 - momentum) * mean_of_assigned``.
        temperature: t in softmax(q . k / t) (read) and the InfoNCE loss.
        normalize_keys: re-normalise keys to unit length after each update (MGUIT / MNAD convention).
    """

    keys: Tensor
    values: Tensor

    def __init__(
        self,
        num_classes: int,
        slots_per_class: int,
        key_dim: int,
        value_dim: int,
        num_domains: int = 2,
        *,
        momentum: float = 0.99,
        temperature: float = 0.1,
        normalize_keys: bool = True,
    ) -> None:
        super().__init__()
        if min(num_classes, slots_per_class, key_dim, value_dim, num_domains) < 1:
            raise ConfigError("ClassStyleMemory dimensions must all be >= 1")
        if not 0.0 <= momentum <= 1.0 or temperature <= 0.0:
            raise ConfigError(f"need 0 <= momentum <= 1 and temperature > 0, got {momentum}, {temperature}")
        self.num_classes = num_classes
        self.slots_per_class = slots_per_class
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.num_domains = num_domains
        self.momentum = float(momentum)
        self.temperature = float(temperature)
        self.normalize_keys = normalize_keys
        self.register_buffer("keys", F.normalize(torch.randn(num_classes, slots_per_class, key_dim), dim=-1))
        self.register_buffer("values", torch.randn(num_domains, num_classes, slots_per_class, value_dim))

    # ---------------------------------------------------------------------------------------------
    def _flatten(self, query: Tensor, semantic: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """query (B, Dk, h, w), semantic (B, H, W) -> q (P, Dk), class (P,) in 0..K-1, valid (P,) float."""
        if query.dim() != 4 or query.shape[1] != self.key_dim:
            raise ValueError(f"query must be (B, {self.key_dim}, h, w), got shape {tuple(query.shape)}")
        if semantic.dim() != 3 or semantic.shape[0] != query.shape[0]:
            raise LabelError(
                f"semantic must be (B, H, W) with B = {query.shape[0]}, got shape {tuple(semantic.shape)}"
            )
        B, Dk, h, w = query.shape
        sem = downsample_labels(semantic, (h, w)).reshape(B * h * w).long()
        valid = (sem >= 0) & (sem < self.num_classes)
        cls = torch.where(valid, sem, torch.zeros_like(sem))
        q = query.permute(0, 2, 3, 1).reshape(B * h * w, Dk)
        return q, cls, valid.to(query.dtype)

    def _all_logits(self, q: Tensor) -> Tensor:
        """(P, Dk) -> (P, K*M) raw dot products q . k_j with every slot of every class."""
        return q @ self.keys.reshape(-1, self.key_dim).to(q.dtype).t()

    def _class_logits(self, all_logits: Tensor, cls: Tensor) -> Tensor:
        """(P, K*M), (P,) -> (P, M): the dot products with the M slots of each pixel's own class."""
        P = all_logits.shape[0]
        per_class = all_logits.reshape(P, self.num_classes, self.slots_per_class)
        index = cls.reshape(P, 1, 1).expand(P, 1, self.slots_per_class)
        return per_class.gather(1, index).squeeze(1)

    def _check_domain(self, domain: int) -> None:
        if not 0 <= domain < self.num_domains:
            raise ConfigError(f"memory domain index must be in 0..{self.num_domains - 1}, got {domain}")

    # ---------------------------------------------------------------------------------------------
    def read(self, query: Tensor, semantic: Tensor, domain: int) -> Tensor:
        """Class-restricted attention read: query (B, Dk, h, w), semantic (B, H, W) -> (B, Dv, h, w).

        out[p] = sum_m softmax_m(q_p . keys[c_p, m] / t) * values[domain, c_p, m] for a pixel p of class
        c_p; zeros where the (downsampled) label is not a class. The attention over the pixel's own class
        is scattered into a (P, K*M) matrix (one-hot over classes x softmax over slots), so the read is a
        single matmul with the (K*M, Dv) value table: no loop over classes or pixels.
        """
        self._check_domain(domain)
        B, _, h, w = query.shape
        q, cls, valid = self._flatten(query, semantic)
        attn = torch.softmax(self._class_logits(self._all_logits(q), cls) / self.temperature, dim=-1)
        one_hot = F.one_hot(cls, self.num_classes).to(q.dtype) * valid.unsqueeze(-1)  # (P, K)
        full = (one_hot.unsqueeze(-1) * attn.unsqueeze(1)).reshape(q.shape[0], -1)  # (P, K*M)
        out = full @ self.values[domain].reshape(-1, self.value_dim).to(q.dtype)  # (P, Dv)
        return out.reshape(B, h, w, self.value_dim).permute(0, 3, 1, 2)

    @torch.no_grad()
    def update(
        self, query: Tensor, value: Tensor, semantic: Tensor, domain: int,
        *, reduce: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        """Moving-average update from one batch (no gradient).

        query (B, Dk, h, w), value (B, Dv, h, w), semantic (B, H, W). Each labelled pixel is assigned to
        the slot of its class with the largest q . k; for every (class, slot) with >= 1 assigned pixel::

            keys[c, m]           <- momentum * keys[c, m] + (1 - momentum) * mean(q of assigned)
            values[d, c, m]      <- momentum * values[d, c, m] + (1 - momentum) * mean(value of assigned)

        then keys are re-normalised (``normalize_keys``). Slots with no pixel are unchanged.

        The per-slot sums and counts are one matrix product, (K*M, P) one-hot assignment @ (P, 1 + Dk + Dv)
        [1, q, value], in float32: it adds in a fixed order, so the buffers are bit-identical run to run on
        CUDA too (an ``index_add_`` adds with atomics, in whatever order the threads arrive). ``reduce``
        (data parallel) sums that (K*M, 1 + Dk + Dv) table over the replicas before the means are taken, so
        every replica applies the same update, computed from all replicas' pixels.
        """
        self._check_domain(domain)
        if value.shape[0] != query.shape[0] or value.shape[2:] != query.shape[2:] or (
            value.shape[1] != self.value_dim
        ):
            raise ValueError(
                f"value must be (B, {self.value_dim}, h, w) matching query {tuple(query.shape)}, "
                f"got {tuple(value.shape)}"
            )
        q, cls, valid = self._flatten(query.detach().float(), semantic)
        v = value.detach().float().permute(0, 2, 3, 1).reshape(-1, self.value_dim)
        KM = self.num_classes * self.slots_per_class
        slot = self._class_logits(self._all_logits(q), cls).argmax(dim=-1)
        assign = F.one_hot(cls * self.slots_per_class + slot, KM).float() * valid.unsqueeze(-1)  # (P, K*M)
        table = assign.t() @ torch.cat([valid.unsqueeze(-1), q, v], dim=1)  # (K*M, 1 + Dk + Dv)
        if reduce is not None:
            table = reduce(table)
        counts, sum_q, sum_v = table.split([1, self.key_dim, self.value_dim], dim=1)
        has = counts > 0
        denom = counts.clamp(min=1.0)
        m = self.momentum
        old_k = self.keys.reshape(KM, self.key_dim).float()
        new_k = torch.where(has, m * old_k + (1.0 - m) * sum_q / denom, old_k)
        if self.normalize_keys:
            new_k = F.normalize(new_k, dim=-1)
        old_v = self.values[domain].reshape(KM, self.value_dim).float()
        new_v = torch.where(has, m * old_v + (1.0 - m) * sum_v / denom, old_v)
        self.keys.copy_(new_k.reshape(self.keys.shape))
        self.values[domain].copy_(new_v.reshape(self.values.shape[1:]))

    def contrastive_loss(self, query: Tensor, semantic: Tensor) -> Tensor:
        """InfoNCE between pixel queries and memory keys (MGUIT's feature-contrastive loss).

        query (B, Dk, h, w), semantic (B, H, W) -> scalar. For each labelled pixel p of class c_p, the
        positive is its best slot of its own class, k+ = keys[c_p, argmax_m q_p . keys[c_p, m]], and every
        one of the K*M slots is in the denominator::

            L = -mean_p log( exp(q_p . k+ / t) / sum_j exp(q_p . k_j / t) )

        computed as ``nll_loss(log_softmax(logits), positive)`` averaged over labelled pixels (0 when
        there are none, still attached to the graph). Note: MGUIT's released code applies ``nll_loss`` to
        softmax *probabilities* (not log-probabilities); this is the InfoNCE the paper states. Keys are
        buffers, so the gradient flows into the query only.
        """
        q, cls, valid = self._flatten(query, semantic)
        logits = self._all_logits(q) / self.temperature  # (P, K*M)
        with torch.no_grad():
            positive = cls * self.slots_per_class + self._class_logits(logits, cls).argmax(dim=-1)
        per_pixel = F.nll_loss(F.log_softmax(logits, dim=-1), positive, reduction="none")
        return (per_pixel * valid).sum() / valid.sum().clamp(min=1.0)
