"""FID Inception-v3 (sim2real.evaluation.inception): reference layout, safe loading, preprocessing, Fréchet distance.

No real Inception weights here (none are shipped or downloaded): the layout is checked against data written
from the references (pytorch-fid ``fid_inception_v3`` / torch-fidelity ``FeatureExtractorInceptionV3`` and its
``util_convert_inception_weights.py`` key map), the code path with random weights.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from sim2real.core.errors import CheckpointError
from sim2real.evaluation.inception import (
    FIDInceptionA,
    FIDInceptionE,
    FIDInceptionV3,
    fid_from_features,
    frechet_distance,
    inception_features,
    load_inception,
    to_inception_input,
)
from sim2real.evaluation.metrics import kid


# ------------------------------------------------------------------------------------------------
# Reference layout, written from the reference definitions: conv weight shapes (out, in, kh, kw) of every
# BasicConv2d; each also has bn.weight / bn.bias / bn.running_mean / bn.running_var of shape (out,).
# ------------------------------------------------------------------------------------------------
def _reference_convs() -> dict[str, tuple[int, int, int, int]]:
    convs = {
        "Conv2d_1a_3x3": (32, 3, 3, 3), "Conv2d_2a_3x3": (32, 32, 3, 3), "Conv2d_2b_3x3": (64, 32, 3, 3),
        "Conv2d_3b_1x1": (80, 64, 1, 1), "Conv2d_4a_3x3": (192, 80, 3, 3),
        "Mixed_6a.branch3x3": (384, 288, 3, 3), "Mixed_6a.branch3x3dbl_1": (64, 288, 1, 1),
        "Mixed_6a.branch3x3dbl_2": (96, 64, 3, 3), "Mixed_6a.branch3x3dbl_3": (96, 96, 3, 3),
        "Mixed_7a.branch3x3_1": (192, 768, 1, 1), "Mixed_7a.branch3x3_2": (320, 192, 3, 3),
        "Mixed_7a.branch7x7x3_1": (192, 768, 1, 1), "Mixed_7a.branch7x7x3_2": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_3": (192, 192, 7, 1), "Mixed_7a.branch7x7x3_4": (192, 192, 3, 3),
    }
    for name, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
        convs |= {f"{name}.branch1x1": (64, cin, 1, 1), f"{name}.branch5x5_1": (48, cin, 1, 1),
                  f"{name}.branch5x5_2": (64, 48, 5, 5), f"{name}.branch3x3dbl_1": (64, cin, 1, 1),
                  f"{name}.branch3x3dbl_2": (96, 64, 3, 3), f"{name}.branch3x3dbl_3": (96, 96, 3, 3),
                  f"{name}.branch_pool": (pool, cin, 1, 1)}
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        convs |= {f"{name}.branch1x1": (192, 768, 1, 1), f"{name}.branch7x7_1": (c7, 768, 1, 1),
                  f"{name}.branch7x7_2": (c7, c7, 1, 7), f"{name}.branch7x7_3": (192, c7, 7, 1),
                  f"{name}.branch7x7dbl_1": (c7, 768, 1, 1), f"{name}.branch7x7dbl_2": (c7, c7, 7, 1),
                  f"{name}.branch7x7dbl_3": (c7, c7, 1, 7), f"{name}.branch7x7dbl_4": (c7, c7, 7, 1),
                  f"{name}.branch7x7dbl_5": (192, c7, 1, 7), f"{name}.branch_pool": (192, 768, 1, 1)}
    for name, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        convs |= {f"{name}.branch1x1": (320, cin, 1, 1), f"{name}.branch3x3_1": (384, cin, 1, 1),
                  f"{name}.branch3x3_2a": (384, 384, 1, 3), f"{name}.branch3x3_2b": (384, 384, 3, 1),
                  f"{name}.branch3x3dbl_1": (448, cin, 1, 1), f"{name}.branch3x3dbl_2": (384, 448, 3, 3),
                  f"{name}.branch3x3dbl_3a": (384, 384, 1, 3), f"{name}.branch3x3dbl_3b": (384, 384, 3, 1),
                  f"{name}.branch_pool": (192, cin, 1, 1)}
    return convs


def _reference_layout() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of pt_inception-2015-12-05-6726825d.pth, num_batches_tracked left out."""
    layout: dict[str, tuple[int, ...]] = {"fc.weight": (1008, 2048), "fc.bias": (1008,)}
    for prefix, shape in _reference_convs().items():
        layout[f"{prefix}.conv.weight"] = shape
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{prefix}.bn.{leaf}"] = (shape[0],)
    return layout


# A few keys exactly as the torch-fidelity converter's TF -> PT map spells them (TF graph name -> PT prefix).
SPOT_CHECKS = {
    "conv/conv2d_params": ("Conv2d_1a_3x3.conv.weight", (32, 3, 3, 3)),
    "mixed/tower/conv_1/conv2d_params": ("Mixed_5b.branch5x5_2.conv.weight", (64, 48, 5, 5)),
    "mixed_4/tower_1/conv_4/conv2d_params": ("Mixed_6b.branch7x7dbl_5.conv.weight", (192, 128, 1, 7)),
    "mixed_8/tower_1/conv_3/conv2d_params": ("Mixed_7a.branch7x7x3_4.conv.weight", (192, 192, 3, 3)),
    "mixed_9/tower/mixed/conv_1/batchnorm/moving_variance": ("Mixed_7b.branch3x3_2b.bn.running_var", (384,)),
    "mixed_10/tower_1/mixed/conv/conv2d_params": ("Mixed_7c.branch3x3dbl_3a.conv.weight", (384, 384, 1, 3)),
    "mixed_10/tower_2/conv/conv2d_params": ("Mixed_7c.branch_pool.conv.weight", (192, 2048, 1, 1)),
    "softmax/weights": ("fc.weight", (1008, 2048)),
}


def _random_model(seed: int = 0) -> FIDInceptionV3:
    """Random weights that keep activations alive through 94 layers (He-normal convs, random BN statistics)."""
    gen = torch.Generator().manual_seed(seed)
    model = FIDInceptionV3()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1.0 + 0.1 * torch.randn(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(1.0 + torch.rand(n, generator=gen))
    return model.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Random weights as the torch-fidelity converter writes them (.pth, no num_batches_tracked) and as
    safetensors (every buffer), plus the in-memory model and its features on two small frames."""
    torch.manual_seed(0)
    model = _random_model()
    state = model.state_dict()
    d = tmp_path_factory.mktemp("inception")
    pth, st = d / "pt_inception.pth", d / "pt_inception.safetensors"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, pth)
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    images = torch.rand(2, 3, 40, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return {"model": model, "state": state, "pth": pth, "st": st, "images": images,
            "features": inception_features(model, images, batch=2)}


# ------------------------------------------------------------------------------------------------
# Layout
# ------------------------------------------------------------------------------------------------
def test_state_dict_matches_reference_layout():
    model = FIDInceptionV3()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    ref = _reference_layout()
    assert len(_reference_convs()) == 94
    assert set(got) - set(ref) == set() and set(ref) - set(got) == set()
    assert got == ref
    for tf_name, (key, shape) in SPOT_CHECKS.items():
        assert got[key] == shape, tf_name
    # parameters: torchvision inception_v3 27,161,264 - AuxLogits 3,326,696 - fc(1000) 2,049,000 + fc(1008)
    assert sum(p.numel() for p in model.parameters()) == 23_850_960
    # every float in the reference file (parameters + BatchNorm running mean / var)
    assert sum(int(np.prod(s)) for s in ref.values()) == 23_885_392
    assert sum(p.numel() for n, p in model.named_parameters() if not n.startswith("fc.")) == 21_785_568


def test_fid_blocks_pool_like_tensorflow():
    """A / C / first E: 3x3 average pool that ignores the padding; last E (Mixed_7c): 3x3 max pool."""
    ones = torch.ones(1, 4, 5, 5)
    for block in (FIDInceptionA(4, pool_features=4), FIDInceptionE(4, pool="avg")):
        block.branch_pool = nn.Identity()
        out = block.eval()(ones)
        assert torch.equal(out[:, -4:], ones)  # count_include_pad=True would give 4/9 in the corners
    block = FIDInceptionE(4, pool="max")
    block.branch_pool = nn.Identity()
    x = torch.randn(1, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(block.eval()(x)[:, -4:], F.max_pool2d(x, 3, 1, 1))
    model = FIDInceptionV3()
    assert (model.Mixed_7b.pool, model.Mixed_7c.pool) == ("avg", "max")


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------
def test_pth_and_safetensors_give_identical_features(weights):
    feats = weights["features"]
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all() and feats.abs().sum() > 0
    assert not torch.equal(feats[0], feats[1])
    for path in (weights["pth"], weights["st"]):
        model = load_inception(path)
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        assert torch.equal(inception_features(model, weights["images"], batch=1), feats)
    # an iterable of batches is the same as one tensor
    chunks = [weights["images"][:1], weights["images"][1:]]
    assert torch.equal(inception_features(weights["model"], chunks), feats)


def _save_modified(path, state, drop=(), add=None, replace=None):
    out = {k: v for k, v in state.items() if k not in drop}
    out.update(add or {})
    out.update(replace or {})
    torch.save(out, path)
    return path


def test_missing_and_unexpected_keys_are_named(weights, tmp_path):
    path = _save_modified(tmp_path / "w.pth", weights["state"], drop=("Mixed_6c.branch7x7dbl_3.bn.running_var",),
                          add={"AuxLogits.fc.weight": torch.zeros(1000, 768)})
    with pytest.raises(CheckpointError, match=r"Mixed_6c\.branch7x7dbl_3\.bn\.running_var") as info:
        load_inception(path)
    assert "AuxLogits.fc.weight" in str(info.value)


def test_wrong_shape_and_non_finite_are_refused(weights, tmp_path):
    path = _save_modified(tmp_path / "shape.pth", weights["state"], replace={"fc.bias": torch.zeros(1000)})
    with pytest.raises(CheckpointError, match=r"fc\.bias has shape \(1000,\), expected \(1008,\)"):
        load_inception(path)
    bad = weights["state"]["Mixed_5b.branch1x1.conv.weight"].clone()
    bad[0, 0, 0, 0] = float("nan")
    path = _save_modified(tmp_path / "nan.pth", weights["state"], replace={"Mixed_5b.branch1x1.conv.weight": bad})
    with pytest.raises(CheckpointError, match=r"non-finite values in Mixed_5b\.branch1x1\.conv\.weight"):
        load_inception(path)


class _Payload:
    """Any object: a pickle that holds one must never be unpickled."""

    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_pickles_with_objects_torchscript_and_junk_are_refused(tmp_path):
    obj = tmp_path / "obj.pth"
    torch.save({"fc.weight": torch.zeros(2), "x": _Payload()}, obj)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_inception(obj)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(CheckpointError, match="weights_only"):
        load_inception(raw)
    scripted = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(scripted))
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_inception(scripted)
    not_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_dict)
    with pytest.raises(CheckpointError, match="state dict"):
        load_inception(not_dict)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_inception(junk)
    with pytest.raises(CheckpointError, match="do not exist"):
        load_inception(tmp_path / "absent.pth")


# ------------------------------------------------------------------------------------------------
# Preprocessing
# ------------------------------------------------------------------------------------------------
def test_pytorch_fid_preprocessing():
    """8-bit quantisation as sim2real writes frames, u / 255, bilinear (half-pixel) to 299, 2x - 1."""
    gen = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (1, 3, 299, 299), generator=gen).float()
    x = u8 / 127.5 - 1.0 + 0.001  # off-grid by less than half a level: quantisation restores u8
    assert torch.allclose(to_inception_input(x), 2.0 * (u8 / 255.0) - 1.0, atol=1e-6)
    small = torch.rand(2, 3, 20, 30, generator=gen) * 2 - 1
    q = ((small + 1) * 127.5).clamp(0, 255).round() / 255.0
    ref = 2.0 * F.interpolate(q, size=(299, 299), mode="bilinear", align_corners=False) - 1.0
    out = to_inception_input(small)
    assert out.shape == (2, 3, 299, 299) and torch.equal(out, ref)
    assert torch.equal(to_inception_input(small * 5), to_inception_input((small * 5).clamp(-1, 1)))


def test_tensorflow_resize_known_answers():
    """TF1 bilinear, align_corners=False: src = dst * in / out (no half-pixel offset), clamped at the edge."""
    from sim2real.evaluation.inception import _resize_tf1_bilinear

    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4).contiguous()
    up = _resize_tf1_bilinear(ramp[..., :2, :2], 4)  # 2 -> 4: positions 0, .5, 1, 1.5
    assert torch.equal(up[0, 0, 0], torch.tensor([0.0, 0.5, 1.0, 1.0]))
    down = _resize_tf1_bilinear(ramp, 2)  # 4 -> 2: positions 0, 2 (no averaging)
    assert torch.equal(down[0, 0, 0], torch.tensor([0.0, 2.0]))
    # (u - 128) / 128 normalisation; differs from pytorch-fid's 2u / 255 - 1
    grey = torch.zeros(1, 3, 8, 8)  # u = 127.5 -> 128 after rounding
    assert torch.equal(to_inception_input(grey, resize="tensorflow"), torch.zeros(1, 3, 299, 299))
    assert torch.allclose(to_inception_input(grey), torch.full((1, 3, 299, 299), 1.0 / 255.0), atol=1e-6)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="resize"):
        to_inception_input(torch.zeros(1, 3, 8, 8), resize="bicubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        to_inception_input(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        to_inception_input(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------------
# Fréchet distance
# ------------------------------------------------------------------------------------------------
def _spd(d: int, rng: np.random.Generator, rank: int | None = None) -> np.ndarray:
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / (rank or d) + (0.0 if rank else 0.1) * np.eye(d)


def test_frechet_known_answers():
    rng = np.random.default_rng(0)
    mu, s = rng.standard_normal(6), _spd(6, rng)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-9
    # 1-D: (mu1 - mu2)^2 + s1 + s2 - 2 sqrt(s1 s2)
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == \
        pytest.approx((1 - 3) ** 2 + 4 + 9 - 2 * 6.0)
    # diagonal: |dmu|^2 + sum (sqrt a - sqrt b)^2; the same after a common rotation
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + (1 - 3) ** 2 + (2 - 1) ** 2 + 0.0
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    assert frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T) == pytest.approx(expected)


def test_frechet_general_case_matches_eigenvalues_of_s1_s2():
    rng = np.random.default_rng(1)
    s1, s2 = _spd(8, rng), _spd(8, rng)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    tr = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()  # independent route: spectrum of the product
    ref = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * tr)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(ref, rel=1e-9)  # symmetric


def test_frechet_negative_controls_and_singular_covariances():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 50))  # N < D: singular covariance, as with few frames and 2048-d features
    assert abs(fid_from_features(x, x)) < 1e-9
    y = rng.standard_normal((12, 50))
    base = fid_from_features(x, y)
    assert np.isfinite(base) and base > 0
    assert fid_from_features(x, y + 0.5) > base  # shifted mean
    assert fid_from_features(x, y * 2.0) > base  # wider spread
    mu1, s1, mu2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    assert fid_from_features(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(
        frechet_distance(mu1, s1, mu2, s2))
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(mu1, s1, mu2[:3], s2)
    with pytest.raises(ValueError, match="N >= 2"):
        fid_from_features(x[:1], y)


def test_kid_on_inception_features_reuses_metrics_kid(weights):
    feats = weights["features"]
    value, std = kid(feats, feats + 1.0)
    assert value > kid(feats, feats)[0] and std == 0.0
