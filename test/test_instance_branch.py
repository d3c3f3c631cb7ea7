"""Instance boxes / masks / boundaries, RoIAlign, paste, and the instance branch's locality in the generator."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from sim2real.core import labels
from sim2real.core.errors import LabelError
from sim2real.translator.boxes import instance_boundaries, instance_boxes, instance_masks
from sim2real.translator.config import get_generator_config
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.instance_branch import InstanceBranch, paste_instances
from sim2real.translator.roi_align import roi_align, roi_align_grid, roi_align_separable

HAND_MAP = torch.tensor(
    [
        [0, 0, 3, 3, 0, 0],
        [7, 0, 3, 3, 0, 0],
        [7, 0, 0, 0, 9, 0],
        [7, 0, 0, 0, 9, 9],
    ]
)


# ----------------------------------------------------------------------------------------------- boxes
def test_instance_boxes_exact_on_hand_map() -> None:
    inst = torch.stack([HAND_MAP, torch.zeros_like(HAND_MAP)])  # second frame: no instances
    out = instance_boxes(inst, max_instances=4)
    assert out.boxes.shape == (2, 4, 4) and out.boxes.dtype == torch.float32
    # area order 3 (4 px), then the 3-px tie 7 before 9 (smaller id first), then padding
    assert out.ids.tolist() == [[3, 7, 9, 0], [0, 0, 0, 0]]
    assert out.valid.tolist() == [[True, True, True, False], [False] * 4]
    expected = [[2, 0, 4, 2], [0, 1, 1, 4], [4, 2, 6, 4], [0, 0, 0, 0]]  # x1, y1, x2 (excl.), y2 (excl.)
    assert out.boxes[0].tolist() == expected
    assert torch.equal(out.boxes[1], torch.zeros(4, 4))


def test_instance_boxes_cap_keeps_largest() -> None:
    out = instance_boxes(HAND_MAP.unsqueeze(0), max_instances=2)
    assert out.ids.tolist() == [[3, 7]] and out.valid.all()
    # many instances (> cap): 40 squares of distinct sizes, the 16 largest survive
    inst = torch.zeros(1, 16, 520, dtype=torch.long)
    for i in range(40):
        side = 1 + i % 8 + (i // 8)  # sizes 1..12, repeated
        inst[0, :side, i * 13 : i * 13 + side] = 1000 + i
    out = instance_boxes(inst, max_instances=16)
    areas = {1000 + i: (1 + i % 8 + i // 8) ** 2 for i in range(40)}
    kept = sorted(areas, key=lambda k: (-areas[k], k))[:16]
    assert out.ids[0].tolist() == kept and out.valid.all()


def test_instance_boxes_rejects_bad_input() -> None:
    with pytest.raises(LabelError):
        instance_boxes(HAND_MAP.float().unsqueeze(0), 4)
    with pytest.raises(LabelError):
        instance_boxes(HAND_MAP, 4)


def test_instance_masks_exact_on_hand_map() -> None:
    inst = HAND_MAP.unsqueeze(0)
    boxes = instance_boxes(inst, max_instances=4)
    masks = instance_masks(inst, boxes.ids, boxes.valid, stride=2)
    assert masks.shape == (1, 4, 2, 3)
    expected = torch.zeros(4, 2, 3)
    expected[0, 0, 1] = 1.0  # id 3 fills cell (0, 1)
    expected[1, 0, 0], expected[1, 1, 0] = 0.25, 0.5  # id 7
    expected[2, 1, 2] = 0.75  # id 9
    assert torch.equal(masks[0], expected)
    with pytest.raises(LabelError, match="multiple"):
        instance_masks(inst, boxes.ids, boxes.valid, stride=4)


def test_instance_boundaries_match_numpy_labels() -> None:
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 3, size=(2, 9, 11))
    out = instance_boundaries(torch.from_numpy(maps))
    assert out.shape == (2, 1, 9, 11)
    for b in range(2):
        assert np.array_equal(out[b, 0].numpy().astype(bool), labels.instance_boundaries(maps[b]))


# ------------------------------------------------------------------------------------------- RoIAlign
def ref_roi_align(
    feat: np.ndarray, box: list[float], size: tuple[int, int], scale: float, sr: int, *, aligned: bool
) -> np.ndarray:
    """Scalar transcription of torchvision's CPU roi_align kernel (fixed sampling_ratio)."""
    C, H, W = feat.shape
    ph, pw = size

    def bilinear(y: float, x: float) -> np.ndarray:
        if y < -1.0 or y > H or x < -1.0 or x > W:
            return np.zeros(C)
        y, x = max(y, 0.0), max(x, 0.0)
        yl, xl = int(y), int(x)
        if yl >= H - 1:
            yh = yl = H - 1
            y = float(yl)
        else:
            yh = yl + 1
        if xl >= W - 1:
            xh = xl = W - 1
            x = float(xl)
        else:
            xh = xl + 1
        ly, lx = y - yl, x - xl
        hy, hx = 1 - ly, 1 - lx
        return hy * hx * feat[:, yl, xl] + hy * lx * feat[:, yl, xh] + ly * hx * feat[:, yh, xl] + ly * lx * feat[
            :, yh, xh
        ]

    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v * scale - off for v in box)
    rw, rh = x2 - x1, y2 - y1
    if not aligned:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    bh, bw = rh / ph, rw / pw
    out = np.zeros((C, ph, pw))
    for i in range(ph):
        for j in range(pw):
            acc = np.zeros(C)
            for iy in range(sr):
                y = y1 + i * bh + (iy + 0.5) * bh / sr
                for ix in range(sr):
                    acc += bilinear(y, x1 + j * bw + (ix + 0.5) * bw / sr)
            out[:, i, j] = acc / (sr * sr)
    return out


def ramp(h: int = 4, w: int = 4) -> torch.Tensor:
    """f[y, x] = x + 10 y as (1, 1, h, w)."""
    return (torch.arange(w).view(1, w) + 10 * torch.arange(h).view(h, 1)).float().view(1, 1, h, w)


ROI_ALIGNS = {"grid": roi_align_grid, "separable": roi_align_separable}


@pytest.mark.parametrize("impl", sorted(ROI_ALIGNS))
def test_roi_align_hand_computed(impl: str) -> None:
    align = ROI_ALIGNS[impl]
    feat = ramp()
    boxes = torch.tensor([[[0.0, 0.0, 4.0, 4.0], [-1.0, 0.0, 1.0, 1.0], [-4.0, 0.0, 0.0, 4.0]]])
    out = align(feat, boxes, (2, 2), 1.0, 2, aligned=True)
    assert out.shape == (1, 3, 1, 2, 2)
    # whole map, 2x2 bins of 2 samples: bilinear is exact on a ramp -> value at the bins' mean sample
    assert torch.allclose(out[0, 0, 0], torch.tensor([[5.5, 7.5], [25.5, 27.5]]))
    one = align(feat, boxes, 1, 1.0, 2, aligned=True)[0, :, 0, 0, 0]
    # box (-1, 0, 1, 1): samples x in {-1, 0} (x = -1 is clamped to 0), y in {-0.25 -> 0, 0.25}: (0 + 2.5) / 2
    assert one[1].item() == pytest.approx(1.25)
    # box left of the map: every sample has x < -1 -> 0
    assert one[2].item() == 0.0


@pytest.mark.parametrize("impl", sorted(ROI_ALIGNS))
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [1, 2, 3])
def test_roi_align_matches_reference(aligned: bool, sampling_ratio: int, impl: str) -> None:
    gen = torch.Generator().manual_seed(1)
    feat = torch.randn(2, 3, 6, 7, generator=gen, dtype=torch.float64)
    boxes = torch.tensor(
        [
            [[0.0, 0.0, 14.0, 12.0], [3.3, 2.1, 9.7, 5.5], [-5.0, -3.0, 4.0, 20.0]],
            [[10.0, 8.0, 13.0, 11.5], [1.0, 1.0, 1.5, 1.2], [12.5, 0.0, 30.0, 4.0]],
        ],
        dtype=torch.float64,
    )
    out = ROI_ALIGNS[impl](feat, boxes, (3, 4), 0.5, sampling_ratio, aligned=aligned)
    for b in range(2):
        for n in range(3):
            ref = ref_roi_align(feat[b].numpy(), boxes[b, n].tolist(), (3, 4), 0.5, sampling_ratio, aligned=aligned)
            assert np.allclose(out[b, n].numpy(), ref, atol=1e-9), (b, n)


def test_separable_roi_align_has_the_gradient_of_the_grid_one() -> None:
    feat = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    boxes = torch.tensor([[[0.5, 0.2, 9.0, 7.5], [-3.0, 2.0, 4.0, 12.0]]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_align_separable(f, boxes, (2, 3), 0.5, 2), (feat,))
    weights = torch.randn(1, 2, 2, 2, 3, dtype=torch.float64)
    (g_sep,) = torch.autograd.grad((roi_align_separable(feat, boxes, (2, 3), 0.5, 2) * weights).sum(), feat)
    (g_grid,) = torch.autograd.grad((roi_align_grid(feat, boxes, (2, 3), 0.5, 2) * weights).sum(), feat)
    assert torch.allclose(g_sep, g_grid, atol=1e-12)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="torchvision not importable")
def test_roi_align_matches_torchvision() -> None:
    feat = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    boxes = torch.tensor([[[0.0, 0.0, 14.0, 12.0], [3.3, 2.1, 9.7, 5.5]], [[-5.0, -3.0, 4.0, 20.0], [1, 1, 2, 2]]])
    for aligned in (True, False):
        ours = roi_align(feat, boxes.double(), (3, 4), 0.5, 2, aligned=aligned, prefer_torchvision=False)
        theirs = roi_align(feat, boxes.double(), (3, 4), 0.5, 2, aligned=aligned, prefer_torchvision=True)
        assert torch.allclose(ours, theirs, atol=1e-9)


# ---------------------------------------------------------------------------------------------- paste
def test_paste_constant_crop_is_mask_weighted() -> None:
    inst = HAND_MAP.unsqueeze(0)
    boxes = instance_boxes(inst, max_instances=4)
    masks = instance_masks(inst, boxes.ids, boxes.valid, stride=2)
    crops = torch.arange(1.0, 5.0).view(1, 4, 1, 1, 1).expand(1, 4, 2, 3, 3).contiguous()  # crop n == n + 1
    out = paste_instances(crops, boxes.boxes, masks, stride=2)
    expected = (masks[0] * torch.arange(1.0, 5.0).view(4, 1, 1)).sum(0)
    assert out.shape == (1, 2, 2, 3)
    assert torch.allclose(out[0, 0], expected) and torch.allclose(out[0, 1], expected)


def test_paste_resamples_crop_into_its_box() -> None:
    # one instance filling an 8x8 box at (8..16, 0..8) of a 16x16 map, stride 4: the 2x2 cells it covers
    # must receive the crop's 4 quadrants in order (crop = RoIAlign-style 2x2 grid, identity resampling).
    inst = torch.zeros(1, 16, 16, dtype=torch.long)
    inst[0, 0:8, 8:16] = 5
    boxes = instance_boxes(inst, 1)
    masks = instance_masks(inst, boxes.ids, boxes.valid, stride=4)
    crop = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 1, 2, 2)
    out = paste_instances(crop, boxes.boxes, masks, stride=4)[0, 0]
    expected = torch.zeros(4, 4)
    expected[0:2, 2:4] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.allclose(out, expected)


def test_branch_zero_instances_is_noop_and_delta_local() -> None:
    torch.manual_seed(0)
    branch = InstanceBranch(8, 6, 4, 2, stride=4, max_instances=3)
    feats = torch.randn(2, 8, 6, 5)
    empty = branch(feats, torch.zeros(2, 24, 20, dtype=torch.long))
    assert torch.equal(empty.delta, torch.zeros_like(feats)) and not empty.instances.valid.any()
    inst = torch.zeros(2, 24, 20, dtype=torch.long)
    inst[0, 3:10, 2:9] = 4
    inst[1, 13:24, 10:19] = 2
    out = branch(feats, inst)
    covered = out.masks.sum(1, keepdim=True) > 0
    assert out.delta.abs().sum() > 0
    assert torch.equal(out.delta * ~covered, torch.zeros_like(feats))


# --------------------------------------------------------------------- locality inside the generator
@pytest.mark.parametrize("preset", ["lite", "full"])
def test_instance_branch_changes_output_only_near_the_object(preset: str) -> None:
    """Ablation: translate with the fused instance features vs the same code with them zeroed; >= 90% of the
    absolute change mass lies inside the object's box dilated by 16 px (the decoder's short reach)."""
    torch.manual_seed(0)
    gen = TranslatorGenerator(get_generator_config(preset)).eval()
    H, W = 128, 192
    rgb = torch.rand(1, 3, H, W) * 2 - 1
    semantic = torch.randint(0, 19, (1, H, W))
    instance = torch.zeros(1, H, W, dtype=torch.long)
    y1, y2, x1, x2 = 40, 88, 64, 120
    instance[:, y1:y2, x1:x2] = 7
    style = torch.randn(1, gen.cfg.style_dim)
    with torch.no_grad():
        content = gen.encode_content(rgb, "source", semantic, instance)
        assert content.instance_delta is not None
        ablated = dataclasses.replace(content, instance_delta=torch.zeros_like(content.instance_delta))
        change = (gen.decode(content, style, "target") - gen.decode(ablated, style, "target")).abs().sum(1)[0]
    assert change.sum() > 1e-2
    d = 16
    inside = torch.zeros(H, W, dtype=torch.bool)
    inside[y1 - d : y2 + d, x1 - d : x2 + d] = True
    assert change[inside].sum() / change.sum() >= 0.9
