"""Known-answer tests of sim2real.evaluation.metrics (pure functions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sim2real.core.labels import IGNORE_ID, TRAIN_ID
from sim2real.evaluation.metrics import (
    REPORTED_SMALL_CLASSES,
    ClassTally,
    box_iou,
    box_tally,
    edge_agreement_map,
    flip_tally,
    handcrafted_features,
    kid,
    masked_class_tally,
    mmd2_unbiased,
    pairwise_box_iou,
    ssim_map,
    static_mask,
    temporal_flicker,
)

CAR, PERSON, POLE = TRAIN_ID["car"], TRAIN_ID["person"], TRAIN_ID["pole"]


def _image(seed: int, b: int = 2, h: int = 48, w: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


def test_box_iou_known_values() -> None:
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert box_iou(a, a).item() == pytest.approx(1.0)
    # shifted by half its width: intersection 50, union 150
    assert box_iou(a, torch.tensor([[5.0, 0.0, 15.0, 10.0]])).item() == pytest.approx(1 / 3)
    assert box_iou(a, torch.tensor([[20.0, 20.0, 30.0, 30.0]])).item() == 0.0
    assert box_iou(torch.zeros(1, 4), torch.zeros(1, 4)).item() == 0.0  # empty union, no NaN
    pair = pairwise_box_iou(a[None], torch.tensor([[[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 10.0, 10.0]]]))
    assert pair.shape == (1, 1, 2) and pair[0, 0].tolist() == pytest.approx([1 / 3, 1.0])


def test_shifted_boxes_lower_recall_and_iou() -> None:
    gt = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 60.0], [0.0, 0.0, 0.0, 0.0]]])
    valid = torch.tensor([[True, True, False]])
    classes = torch.tensor([[CAR, PERSON, IGNORE_ID]])
    exact = box_tally(box_iou(gt, gt), valid, classes)
    shifted = gt + torch.tensor([6.0, 0.0, 6.0, 0.0])  # 60 % of the first box's width, 30 % of the second's
    moved = box_tally(box_iou(shifted, gt), valid, classes)
    assert exact.recall.overall() == 1.0 and exact.iou.overall() == pytest.approx(1.0)
    assert exact.recall.count[CAR] == 1 and exact.recall.count.sum() == 2  # the invalid slot is not counted
    assert moved.iou.per_class()[CAR] == pytest.approx(4 / 16)  # inter 40, union 160
    assert moved.iou.per_class()[PERSON] == pytest.approx(14 / 26)  # inter 560, union 1040
    assert moved.recall.per_class()[CAR] == 0.0 and moved.recall.per_class()[PERSON] == 1.0
    assert moved.recall.overall() == 0.5 < exact.recall.overall()
    assert math.isnan(moved.iou.per_class()[POLE])
    both = exact + moved
    assert both.recall.count[CAR] == 2 and both.recall.overall() == 0.75


def test_flip_rate_zero_for_identical_and_known_for_flips() -> None:
    gt = torch.full((1, 4, 5), TRAIN_ID["road"])
    gt[0, 0, :] = POLE  # 5 pole pixels
    gt[0, 3, :] = IGNORE_ID  # 5 ignored pixels
    assert flip_tally(gt.clone(), gt).overall() == 0.0
    pred = gt.clone()
    pred[0, 0, :2] = TRAIN_ID["building"]  # 2 of 5 pole pixels flip
    pred[0, 3, :] = CAR  # ignored pixels never count
    t = flip_tally(pred, gt)
    assert t.per_class()[POLE] == pytest.approx(0.4)
    assert t.per_class()[TRAIN_ID["road"]] == 0.0
    assert t.overall() == pytest.approx(2 / 15)
    assert POLE in REPORTED_SMALL_CLASSES and PERSON in REPORTED_SMALL_CLASSES


def test_class_tally_empty_is_nan() -> None:
    t = ClassTally.zeros(3)
    assert math.isnan(t.overall()) and np.isnan(t.per_class()).all()


def test_mmd_and_kid_known_answers() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 16, generator=g)
    b = torch.randn(200, 16, generator=g)
    far = torch.randn(200, 16, generator=g) + 2.0
    same, _ = kid(a, a, num_subsets=1, subset_size=200)
    twin, _ = kid(a, b, num_subsets=1, subset_size=200)
    diff, _ = kid(a, far, num_subsets=1, subset_size=200)
    # a set against itself: the unbiased estimator is 2 / m * (mean off-diagonal k - mean diagonal k), O(1/m)
    assert abs(same) < 0.1 and abs(twin) < 0.05
    assert diff > 100.0 > 1000 * max(abs(same), abs(twin))
    # hand computation for 2 points per set, kernel (x.y / 1 + 1)^3 in 1-D
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    kxx, kyy = 1.0, 27.0  # off-diagonal terms: (0*1+1)^3, (1*2+1)^3
    kxy = (1 + 1 + 8 + 27) / 4  # (0*1+1)^3, (0*2+1)^3, (1*1+1)^3, (1*2+1)^3
    assert float(mmd2_unbiased(x, y)) == pytest.approx(kxx + kyy - 2 * kxy)
    # subsets: mean over subsets with a spread
    m, s = kid(a, far, num_subsets=5, subset_size=50, seed=1)
    assert m > 1.0 and s > 0.0
    with pytest.raises(ValueError, match="at least 2"):
        mmd2_unbiased(a[:1], b)


def test_handcrafted_features_separate_domains() -> None:
    g = torch.Generator().manual_seed(3)
    noisy = torch.rand(6, 3, 64, 96, generator=g) * 2 - 1
    flat = torch.linspace(-0.8, 0.8, 6).view(6, 1, 1, 1).expand(6, 3, 64, 96).clone()
    f_noisy, f_flat = handcrafted_features(noisy), handcrafted_features(flat)
    assert f_noisy.shape == (6, 126) and torch.isfinite(f_noisy).all()
    assert torch.equal(handcrafted_features(noisy), f_noisy)  # deterministic
    k_self, _ = kid(f_noisy[:3], f_noisy[3:])
    k_cross, _ = kid(f_noisy, f_flat)
    assert k_cross > 10 * abs(k_self)


def test_flicker_zero_for_identical_output_and_static_input() -> None:
    x = _image(0)
    sem = torch.zeros(2, 48, 64, dtype=torch.long)
    static = static_mask(x, x, semantic_prev=sem, semantic=sem, instance_prev=sem, instance=sem)
    assert bool(static.all())
    t = temporal_flicker(x, x, x, x, static)
    assert t.static_flicker == 0.0 and t.change_ratio == 0.0
    # an output that changes by 10 levels everywhere while the input is static
    y = x + 10 / 127.5
    assert temporal_flicker(x, y, x, x, static).static_flicker == pytest.approx(10.0, rel=1e-4)


def test_flicker_only_counts_static_pixels() -> None:
    x0 = _image(1, b=1)
    x1 = x0.clone()
    x1[..., :, :32] = -x1[..., :, :32]  # left half of the input changes
    static = static_mask(x0, x1)
    assert static[..., :32].sum() < 10 and bool(static[..., 32:].all())
    t = temporal_flicker(x0, x1, x0, x1, static)  # identity translator: output follows the input
    assert t.static_flicker == 0.0 and t.change_ratio == pytest.approx(1.0)
    sem0 = torch.zeros(1, 48, 64, dtype=torch.long)
    sem1 = sem0.clone()
    sem1[..., 40:] = 1  # a label change makes a pixel non-static even when the rgb is equal
    assert not bool(static_mask(x0, x0, semantic_prev=sem0, semantic=sem1)[..., 40:].any())
    t_mean = t + t
    assert t_mean.pixels == 2 * t.pixels and t_mean.change_ratio == pytest.approx(1.0)


def test_ssim_and_edges_identical_is_one_and_drop_when_destroyed() -> None:
    x = _image(2)
    assert torch.allclose(ssim_map(x, x), torch.ones(2, 48, 64), atol=1e-5)
    assert torch.allclose(edge_agreement_map(x, x), torch.ones(2, 48, 64), atol=1e-6)
    # halving the contrast: structure term 1, contrast term 2 * 0.5 / (1 + 0.25) = 0.8; noise destroys it
    assert float(ssim_map(x, 0.5 * x + 0.1).mean()) == pytest.approx(0.8, abs=0.01)
    noise = _image(9)
    assert ssim_map(x, noise).mean() < 0.1
    flat = torch.zeros_like(x)
    assert edge_agreement_map(x, flat).mean() < 0.2


def test_masked_class_tally_per_class_means() -> None:
    values = torch.tensor([[[1.0, 0.0], [0.5, 0.25]]])
    mask = torch.tensor([[[True, True], [True, False]]])
    sem = torch.tensor([[[CAR, CAR], [PERSON, PERSON]]])
    t = masked_class_tally(values, mask, sem)
    assert t.per_class()[CAR] == 0.5 and t.per_class()[PERSON] == 0.5 and t.count.sum() == 3
