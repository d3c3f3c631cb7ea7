"""ClassStyleMemory: read / update / contrastive loss against hand-computed numbers and a numpy loop reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sim2real.core.errors import ConfigError
from sim2real.translator.memory import ClassStyleMemory, downsample_labels

IGNORE = 255


# ------------------------------------------------------------------------------------ numpy reference
def ref_read(keys, values, q, sem, *, domain, t):
    """Per-pixel loops. keys (K, M, Dk), values (D, K, M, Dv), q (P, Dk), sem (P,) -> (P, Dv)."""
    K = keys.shape[0]
    out = np.zeros((q.shape[0], values.shape[-1]))
    for p in range(q.shape[0]):
        c = sem[p]
        if not 0 <= c < K:
            continue
        logits = np.array([q[p] @ k for k in keys[c]]) / t
        a = np.exp(logits - logits.max())
        a /= a.sum()
        out[p] = sum(a[m] * values[domain, c, m] for m in range(len(a)))
    return out


def ref_update(keys, values, q, v, sem, *, domain, momentum):
    keys, values = keys.copy(), values.copy()
    K = keys.shape[0]
    assigned: dict[tuple[int, int], list[int]] = {}
    for p in range(q.shape[0]):
        c = sem[p]
        if not 0 <= c < K:
            continue
        m = int(np.argmax([q[p] @ k for k in keys[c]]))
        assigned.setdefault((c, m), []).append(p)
    new_keys, new_values = keys.copy(), values.copy()
    for (c, m), ps in assigned.items():
        k = momentum * keys[c, m] + (1 - momentum) * q[ps].mean(0)
        new_keys[c, m] = k / np.linalg.norm(k)
        new_values[domain, c, m] = momentum * values[domain, c, m] + (1 - momentum) * v[ps].mean(0)
    return new_keys, new_values


def ref_loss(keys, q, sem, t):
    K, M, Dk = keys.shape
    flat = keys.reshape(K * M, Dk)
    terms = []
    for p in range(q.shape[0]):
        c = sem[p]
        if not 0 <= c < K:
            continue
        best = int(np.argmax([q[p] @ k for k in keys[c]]))
        logits = flat @ q[p] / t
        terms.append(-(logits[c * M + best] - np.log(np.exp(logits).sum())))
    return float(np.mean(terms)) if terms else 0.0


def to_pixels(query: torch.Tensor) -> np.ndarray:
    """(B, D, h, w) -> (P, D) in (b, y, x) order."""
    return query.permute(0, 2, 3, 1).reshape(-1, query.shape[1]).double().numpy()


# ------------------------------------------------------------------------------------- tiny example
def tiny_memory() -> ClassStyleMemory:
    """2 classes x 2 slots, 2-dim keys, 2-dim values, 2 domains, t = 1, momentum 0.5."""
    mem = ClassStyleMemory(2, 2, 2, 2, num_domains=2, momentum=0.5, temperature=1.0)
    with torch.no_grad():
        mem.keys.copy_(torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [0.0, -1.0]]]))
        mem.values.zero_()
        mem.values[1].copy_(torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 2.0], [4.0, 0.0]]]))
    return mem


# pixels (1, 2, 2): (0,0) class 0 q=(1,0); (0,1) class 1 q=(0,-1); (1,0) ignore; (1,1) class 0 q=(0,1)
TINY_QUERY = torch.tensor([[[[1.0, 0.0], [0.5, 0.0]], [[0.0, -1.0], [0.5, 1.0]]]])
TINY_SEM = torch.tensor([[[0, 1], [IGNORE, 0]]])


def test_read_hand_computed() -> None:
    mem = tiny_memory()
    out = mem.read(TINY_QUERY, TINY_SEM, domain=1)
    assert out.shape == (1, 2, 2, 2)
    e = math.e
    a, b = e / (e + 1), 1 / (e + 1)  # softmax of logits (1, 0)
    # (0,0): class 0, logits (1, 0) -> a * (1,0) + b * (0,1)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([a, b]), atol=1e-6)
    # (0,1): class 1, q=(0,-1): logits vs (-1,0),(0,-1) = (0, 1) -> b * (2,2) + a * (4,0)
    assert torch.allclose(out[0, :, 0, 1], torch.tensor([2 * b + 4 * a, 2 * b]), atol=1e-6)
    # (1,0): ignore -> zeros
    assert torch.equal(out[0, :, 1, 0], torch.zeros(2))
    # (1,1): class 0, q=(0,1): logits (0, 1) -> b * (1,0) + a * (0,1)
    assert torch.allclose(out[0, :, 1, 1], torch.tensor([b, a]), atol=1e-6)
    # domain 0 values are zero
    assert torch.equal(mem.read(TINY_QUERY, TINY_SEM, domain=0), torch.zeros(1, 2, 2, 2))


def test_update_hand_computed() -> None:
    mem = tiny_memory()
    value = torch.tensor([[[[10.0, 0.0], [0.0, 6.0]], [[0.0, 8.0], [0.0, 2.0]]]])  # (1, 2, 2, 2)
    mem.update(TINY_QUERY, value, TINY_SEM, domain=1)
    # class 0 slot 0 <- pixel (0,0) q=(1,0): 0.5*(1,0) + 0.5*(1,0) = (1,0)
    # class 0 slot 1 <- pixel (1,1) q=(0,1): (0,1)
    # class 1 slot 1 <- pixel (0,1) q=(0,-1) (logit 1 > 0): 0.5*(0,-1) + 0.5*(0,-1)
    # class 1 slot 0: no pixel -> unchanged
    assert torch.allclose(mem.keys, torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [0.0, -1.0]]]))
    # values: (0,0): 0.5*(1,0)+0.5*(10,0) = (5.5, 0); (0,1): 0.5*(0,1)+0.5*(6,2) = (3, 1.5)
    #         (1,1): 0.5*(4,0)+0.5*(0,8) = (2, 4);    (1,0): unchanged (2,2)
    expected = torch.tensor([[[5.5, 0.0], [3.0, 1.5]], [[2.0, 2.0], [2.0, 4.0]]])
    assert torch.allclose(mem.values[1], expected)
    assert torch.equal(mem.values[0], torch.zeros(2, 2, 2))


def test_update_moves_keys_and_renormalises() -> None:
    mem = tiny_memory()
    query = torch.tensor([[[[0.6]], [[0.8]]]])  # one pixel of class 0, nearer slot 1 (0.8 > 0.6)
    mem.update(query, torch.zeros(1, 2, 1, 1), torch.tensor([[[0]]]), domain=0)
    k = np.array([0.5 * 0.0 + 0.5 * 0.6, 0.5 * 1.0 + 0.5 * 0.8])
    k /= np.linalg.norm(k)
    assert torch.allclose(mem.keys[0, 1], torch.tensor(k, dtype=torch.float32), atol=1e-6)
    assert torch.equal(mem.keys[0, 0], torch.tensor([1.0, 0.0]))


def test_contrastive_loss_hand_computed() -> None:
    mem = tiny_memory()
    loss = mem.contrastive_loss(TINY_QUERY, TINY_SEM)
    # pixel (0,0): q=(1,0), logits over [k00,k01,k10,k11] = (1, 0, -1, 0), positive k00
    l1 = -(1 - math.log(e1 := math.e + 1 + math.exp(-1) + 1))
    # pixel (0,1): q=(0,-1): logits (0, -1, 0, 1), positive k11 (class 1 best)
    l2 = -(1 - math.log(e1))
    # pixel (1,1): q=(0,1): logits (0, 1, 0, -1), positive k01
    l3 = -(1 - math.log(e1))
    assert loss.item() == pytest.approx((l1 + l2 + l3) / 3, abs=1e-6)


def test_matches_numpy_reference_on_random_data() -> None:
    gen = torch.Generator().manual_seed(3)
    K, M, Dk, Dv, t = 3, 4, 5, 6, 0.2
    mem = ClassStyleMemory(K, M, Dk, Dv, num_domains=2, momentum=0.7, temperature=t)
    query = torch.nn.functional.normalize(torch.randn(2, Dk, 3, 4, generator=gen), dim=1)
    value = torch.randn(2, Dv, 3, 4, generator=gen)
    sem = torch.randint(0, K + 1, (2, 3, 4), generator=gen)
    sem[sem == K] = IGNORE
    q, s = to_pixels(query), sem.reshape(-1).numpy()
    keys, values = mem.keys.double().numpy(), mem.values.double().numpy()

    out = mem.read(query, sem, domain=1)
    assert np.allclose(to_pixels(out), ref_read(keys, values, q, s, domain=1, t=t), atol=1e-5)
    loss = mem.contrastive_loss(query, sem)
    assert loss.item() == pytest.approx(ref_loss(keys, q, s, t), abs=1e-4)

    mem.update(query, value, sem, domain=0)
    new_keys, new_values = ref_update(keys, values, q, to_pixels(value), s, domain=0, momentum=0.7)
    assert np.allclose(mem.keys.numpy(), new_keys, atol=1e-5)
    assert np.allclose(mem.values.numpy(), new_values, atol=1e-5)


def test_labels_are_nearest_downsampled_whole_map() -> None:
    sem = torch.arange(16).reshape(1, 4, 4)
    # nearest-exact 4 -> 2 samples the cell centres' pixels: rows/cols 1 and 3 (not a crop at an offset)
    assert torch.equal(downsample_labels(sem, (2, 2)), torch.tensor([[[5, 7], [13, 15]]]))
    assert torch.equal(downsample_labels(sem, (4, 4)), sem)
    mem = tiny_memory()
    full_res = TINY_SEM.repeat_interleave(4, 1).repeat_interleave(4, 2)  # (1, 8, 8) blocks of the tiny map
    assert torch.equal(mem.read(TINY_QUERY, full_res, 1), mem.read(TINY_QUERY, TINY_SEM, 1))


def test_loss_gradient_and_empty_labels() -> None:
    mem = tiny_memory()
    query = TINY_QUERY.clone().requires_grad_(True)
    mem.contrastive_loss(query, TINY_SEM).backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert query.grad[0, :, 1, 0].abs().sum() == 0  # the ignore pixel carries no loss
    empty = mem.contrastive_loss(query, torch.full_like(TINY_SEM, IGNORE))
    assert empty.item() == 0.0 and empty.requires_grad


def test_invalid_arguments() -> None:
    mem = tiny_memory()
    with pytest.raises(ConfigError, match="domain"):
        mem.read(TINY_QUERY, TINY_SEM, domain=2)
    with pytest.raises(ValueError, match="query"):
        mem.read(TINY_QUERY[:, :1], TINY_SEM, domain=0)
    with pytest.raises(ConfigError):
        ClassStyleMemory(2, 2, 2, 2, temperature=0.0)
