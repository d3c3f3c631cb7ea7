"""PatchNCE (sim2real.translator.patch_nce): known answers and where the gradient goes."""

from __future__ import annotations

import math

import pytest
import torch

from sim2real.translator.patch_nce import PatchProjector, patch_nce_loss


def test_matching_patches_score_lower_than_shuffled_and_chance_is_log_p() -> None:
    torch.manual_seed(0)
    proj = PatchProjector([16])
    k = torch.randn(2, 16, 8, 8)
    same = patch_nce_loss([k.clone()], [k], proj, num_patches=32, generator=torch.Generator().manual_seed(1))
    shuffled = patch_nce_loss([k.flip(-1).flip(-2)], [k], proj, num_patches=32,
                              generator=torch.Generator().manual_seed(1))
    assert same < shuffled
    # a projector whose output is constant makes every patch alike: the loss is exactly log P
    flat = PatchProjector([16])
    with torch.no_grad():
        for p in flat.heads[0][2].parameters():
            p.zero_()
        flat.heads[0][2].bias[0] = 1.0
    chance = patch_nce_loss([torch.randn(2, 16, 8, 8)], [k], flat, num_patches=32)
    assert chance.item() == pytest.approx(math.log(32), rel=1e-5)


def test_gradient_reaches_queries_and_projector_not_keys() -> None:
    torch.manual_seed(0)
    proj = PatchProjector([8, 4])
    q = [torch.randn(1, 8, 6, 6, requires_grad=True), torch.randn(1, 4, 3, 3, requires_grad=True)]
    k = [torch.randn(1, 8, 6, 6, requires_grad=True), torch.randn(1, 4, 3, 3, requires_grad=True)]
    patch_nce_loss(q, k, proj, num_patches=64).backward()  # 64 > 36 / 9 positions: all of them are used
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in q)
    assert all(t.grad is None for t in k)
    assert all(p.grad is not None for p in proj.parameters())
    with pytest.raises(ValueError, match="differ"):
        patch_nce_loss([q[0]], [k[1]], proj)
