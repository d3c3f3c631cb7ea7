"""The inference fast paths compute the same function as the plain formulation, and the onnxruntime backend.

* every fast path (channels_last replicate padding, folded modulated conv, in-place affine colour head,
  the label stem's padded channels_last lookup input, the separable instance paste) against the plain
  formulation it replaces, to fp32 rounding;
* the whole translate path against outputs saved from the code BEFORE the refactor
  (``test/data/translate_reference_lite_64x96.npz``: seeded random weights, labelled / unlabelled, with and
  without instances), max abs diff <= 1e-4 in [-1, 1] space, eager NCHW and channels_last;
* ``Translator(backend=...)``: resolution rules, onnxruntime output vs eager, the on-disk ONNX cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sim2real.core.errors import ConfigError
from sim2real.translator.boxes import instance_boundaries
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.generator import DetailPath, LabelStem, TranslatorGenerator
from sim2real.translator.inference import Translator, resolve_backend
from sim2real.translator.instance_branch import paste_instances
from sim2real.translator.layers import (
    COLUMN_ORDER,
    ModulatedConv2d,
    PaddedConv2d,
    apply_affine_colour,
    box_mean,
    column_affine_colour,
    replicate_pad,
    upsampled_affine_colour,
)
from sim2real.translator.memory import downsample_labels
from sim2real.translator.onnx_export import synthetic_frame

REFERENCE = Path(__file__).resolve().parent / "data" / "translate_reference_lite_64x96.npz"
TOLERANCE = 1e-4


def _frame(n: int, seed: int, height: int = 64, width: int = 96) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rgb, sem, inst = synthetic_frame(height, width, num_instances=n, seed=seed)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    return x, torch.from_numpy(sem)[None].long(), torch.from_numpy(inst.astype(np.int64))[None]


def _reference_generator() -> TranslatorGenerator:
    """The seeded, perturbed generator the reference outputs were saved from: the ``lite`` preset as it was
    then (work_scale 2, replicate padding, labels at every pixel), which is the GeneratorConfig defaults."""
    torch.manual_seed(1234)
    gen = TranslatorGenerator(GeneratorConfig(name="lite")).eval()
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(0.05 * torch.randn_like(p))
        gen.style_mean.normal_()
    return gen


@pytest.mark.parametrize("channels_last", [False, True])
def test_translate_matches_outputs_saved_before_the_refactor(channels_last: bool) -> None:
    ref = np.load(REFERENCE)
    gen = _reference_generator()
    if channels_last:
        gen = gen.to(memory_format=torch.channels_last)
    for n, seed in ((0, 0), (5, 1)):
        x, s, i = _frame(n, seed)
        with torch.inference_mode():
            labelled = gen.translate(x, s, i).numpy()
            absent = gen.translate(x, None, None).numpy()
        assert np.abs(labelled - ref[f"labelled_{n}_{seed}"]).max() <= TOLERANCE
        assert np.abs(absent - ref[f"absent_{n}_{seed}"]).max() <= TOLERANCE
        # the training formulation (gradient recorded: no fast path) gives the same function
        assert np.abs(gen.translate(x, s, i).detach().numpy() - labelled).max() <= TOLERANCE


@pytest.mark.parametrize("pad", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_replicate_pad_equals_f_pad(pad: int, channels_last: bool) -> None:
    x = torch.randn(2, 5, 7, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fast = replicate_pad(x, pad)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(fast, F.pad(x, (pad,) * 4, mode="replicate"))


@pytest.mark.parametrize("padding_mode", ["replicate", "zeros"])
def test_asymmetric_padding_shifts_the_window(padding_mode: str) -> None:
    torch.manual_seed(0)
    conv = PaddedConv2d(2, 3, 7, 4, padding=(1, 5), padding_mode=padding_mode)
    x = torch.randn(1, 2, 16, 24)
    mode = "replicate" if padding_mode == "replicate" else "constant"
    expected = F.conv2d(F.pad(x, (1, 5, 1, 5), mode=mode), conv.weight, conv.bias, 4)
    assert conv(x).shape == (1, 3, 4, 6)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    # output (1, 1) sees input pixels 3..9 (centre 6 = 4 * 1 + 2) when nothing is padded there
    assert torch.allclose(conv(x)[0, :, 1, 1], F.conv2d(x[:, :, 3:10, 3:10], conv.weight, conv.bias)[0, :, 0, 0],
                          atol=1e-5)


@pytest.mark.parametrize("padding_mode", ["replicate", "zeros"])
def test_padded_conv_equals_conv2d(padding_mode: str) -> None:
    torch.manual_seed(0)
    conv = PaddedConv2d(6, 4, 3, 2, padding=1, padding_mode=padding_mode)
    ref = torch.nn.Conv2d(6, 4, 3, 2, padding=1, padding_mode=padding_mode)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(1, 6, 10, 14).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert torch.allclose(conv(x), ref(x), atol=1e-6)
    assert torch.allclose(conv(x), ref(x), atol=1e-6)


def test_a_batch_1_export_folds_the_modulation_into_a_constant_weight(tmp_path: Path) -> None:
    """With the style a constant (the model's mean style in an exported graph), the modulated conv exports as
    Pad + Conv with the modulation folded into the weight (ops on constants only, which onnxruntime folds at
    load): no multiply at activation size; the same numbers as the input-scaling form through onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    conv = ModulatedConv2d(8, 6, 3, 16)
    with torch.no_grad():
        conv.bias.normal_()
    latent = torch.randn(1, 16)

    class Styled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv
            self.register_buffer("latent", latent)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x, self.latent)

    x = torch.randn(1, 8, 11, 13)
    path = tmp_path / "modconv.onnx"
    torch.onnx.export(Styled(), (x,), str(path), input_names=["x"], dynamo=False)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    at_activation_size = {n.op_type for n in graph.node for o in n.output
                          if len(shapes.get(o, [])) == 4 and shapes[o][-1] >= 11}  # (1, C, h, w), padded
    assert at_activation_size <= {"Pad", "Conv"}, at_activation_size  # the weight's ops run once, on constants
    exported = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    assert np.abs(exported - conv(x, latent).detach().numpy()).max() < 1e-5  # gradient recorded: unfolded


def test_folded_modulated_conv_equals_input_scaling() -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(8, 6, 3, 16)
    with torch.no_grad():
        conv.bias.normal_()
    x, latent = torch.randn(1, 8, 11, 13), torch.randn(1, 16)
    plain = conv(x, latent)  # gradient recorded: the unfolded path
    with torch.inference_mode():
        folded = conv(x, latent)
        folded_cl = conv(x.contiguous(memory_format=torch.channels_last), latent)
    assert torch.allclose(folded, plain, atol=1e-5)
    assert torch.allclose(folded_cl, plain, atol=1e-5)


def test_affine_colour_equals_the_broadcast_formula() -> None:
    coeffs, image = torch.randn(2, 12, 5, 7), torch.randn(2, 3, 5, 7)
    A = coeffs[:, :9].reshape(2, 3, 3, 5, 7)
    expected = (A * image.unsqueeze(1)).sum(dim=2) + coeffs[:, 9:]
    with torch.inference_mode():
        fast = apply_affine_colour(coeffs, image.contiguous(memory_format=torch.channels_last))
    plain = apply_affine_colour(coeffs.requires_grad_(), image)
    assert torch.allclose(fast, expected, atol=1e-6)
    assert torch.allclose(plain, expected, atol=1e-6)
    plain.sum().backward()
    assert coeffs.grad is not None and coeffs.grad.abs().sum() > 0


def test_upsampled_affine_colour_exports_the_same_function_by_columns(tmp_path: Path) -> None:
    """The export form (the 12 planes ordered by column of [A | b], one upsampling, times the guide planes and a
    plane of ones, summed over columns) against upsampling all 12 planes and the broadcast formula, batch 2; run
    through onnxruntime, so a wrong column order fails. ``column_affine_colour`` of the upsampled columns, eager
    (its fused multiply-adds) and exported (the MatMul), gives the same."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    coeffs, image = torch.randn(2, 12, 6, 8), torch.randn(2, 3, 24, 32)
    up = F.interpolate(coeffs, size=(24, 32), mode="bilinear", align_corners=False)
    expected = (up[:, :9].reshape(2, 3, 3, 24, 32) * image.unsqueeze(1)).sum(dim=2) + up[:, 9:]
    columns = up[:, list(COLUMN_ORDER)]

    class Head(torch.nn.Module):
        def forward(self, c: torch.Tensor, g: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return upsampled_affine_colour(c, g), column_affine_colour(u, g)

    path = tmp_path / "head.onnx"
    torch.onnx.export(Head(), (coeffs, image, columns), str(path), input_names=["c", "g", "u"], dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    upsampled, by_columns = session.run(None, {"c": coeffs.numpy(), "g": image.numpy(), "u": columns.numpy()})
    assert np.abs(upsampled - expected.numpy()).max() < 1e-5
    assert np.abs(by_columns - expected.numpy()).max() < 1e-5
    assert torch.allclose(upsampled_affine_colour(coeffs, image), expected, atol=1e-5)
    assert torch.allclose(column_affine_colour(columns, image), expected, atol=1e-5)
    assert (column_affine_colour(up, image) - expected).abs().amax() > 0.5  # the standard order is not the columns'


def test_the_export_form_of_the_affine_head_keeps_float32_under_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The export form also runs compiled (``torch.compile``), where CPU autocast may be on: its MatMul over the
    columns must not drop float32 coefficients to bf16 (~1.5 levels), as the eager form does not."""
    from sim2real.translator import layers

    torch.manual_seed(1)
    coeffs, image = torch.randn(1, 12, 6, 8), torch.randn(1, 3, 24, 32)
    expected = upsampled_affine_colour(coeffs, image)
    monkeypatch.setattr(layers, "_exporting", lambda: True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        compiled_form = upsampled_affine_colour(coeffs, image)
    assert compiled_form.dtype == torch.float32
    assert torch.allclose(compiled_form, expected, atol=1e-5)


@pytest.mark.parametrize("padding_mode", ["replicate", "zeros"])
@pytest.mark.parametrize(("channels", "work"), [(4, (4, 6)), (1, (4, 6)), (4, (16, 24))])
def test_detail_path_without_noise_equals_a_zero_noise_plane(padding_mode: str, channels: int,
                                                             work: tuple[int, int]) -> None:
    """Without noise the zero plane and its weights are left out of the 3x3 convolution: the same output and the
    same weight gradients; also with one detail feature (the amplitude only) and features already at full size."""
    torch.manual_seed(1)
    detail = DetailPath(channels, 8, padding_mode=padding_mode)
    torch.nn.init.normal_(detail.out.weight, 0, 0.5)
    guide, features = torch.randn(2, 3, 16, 24), torch.randn(2, channels, *work)
    without = detail(guide, features, None)[0]
    (grad_without,) = torch.autograd.grad(without.square().sum(), detail.conv.weight)
    with_zeros = detail(guide, features, torch.zeros(2, 1, 16, 24))[0]
    (grad_zeros,) = torch.autograd.grad(with_zeros.square().sum(), detail.conv.weight)
    assert without.abs().max() > 0.1  # not a no-op
    assert torch.allclose(without, with_zeros, atol=1e-6)
    assert torch.allclose(grad_without, grad_zeros, atol=1e-5)
    with_noise = detail(guide, features, torch.randn(2, 1, 16, 24))[0]
    assert (with_noise - without).abs().max() > 1e-3  # the noise plane is read when given


@pytest.mark.parametrize("padding_mode", ["replicate", "zeros"])
@pytest.mark.parametrize("case", ["labelled", "absent", "dropped", "no_instance"])
def test_label_stem_equals_concat_then_padded_conv(case: str, padding_mode: str) -> None:
    torch.manual_seed(0)
    stem = LabelStem(19, 8, 16, 2, padding_mode=padding_mode)
    x, s, i = _frame(4, 3, 32, 48)
    x, s, i = torch.cat([x, x.flip(-1)]), torch.cat([s, s.flip(-1)]), torch.cat([i, i.flip(-1)])
    semantic = None if case == "absent" else s
    instance = None if case == "no_instance" else i
    drop = torch.tensor([True, False]) if case == "dropped" else None
    absent = torch.ones(2, dtype=torch.bool) if semantic is None else (
        drop if drop is not None else torch.zeros(2, dtype=torch.bool))
    index = torch.full_like(s, 20) if semantic is None else torch.where(s < 19, s, torch.full_like(s, 19))
    index = torch.where(absent.view(2, 1, 1), torch.full_like(index, 20), index)
    present = (~absent).float().view(2, 1, 1, 1)
    edges = torch.zeros(2, 1, 32, 48) if instance is None else instance_boundaries(instance)
    plain_in = torch.cat([x, stem.embed(index).permute(0, 3, 1, 2), edges * present,
                          (1 - present).expand(2, 1, 32, 48)], dim=1)
    expected = stem.act(F.conv2d(
        F.pad(plain_in, (1, 1, 1, 1), mode="replicate") if padding_mode == "replicate" else F.pad(plain_in, (1,) * 4),
        stem.conv.weight, stem.conv.bias, 2))
    with torch.inference_mode():
        out = stem(x, semantic, instance, drop)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(stem(x, semantic, instance, drop), expected, atol=1e-5)  # training formulation


@pytest.mark.parametrize("case", ["labelled", "absent", "no_instance"])
def test_label_stem_at_work_resolution_reads_the_cell_centre_labels(case: str) -> None:
    torch.manual_seed(0)
    stem = LabelStem(19, 8, 16, 4, padding_mode="zeros", label_resolution="work")
    assert stem.conv.in_channels == 3 and stem.label_proj is not None
    x, s, i = _frame(4, 3, 32, 48)
    semantic = None if case == "absent" else s
    instance = None if case == "no_instance" else i
    s_cell, i_cell = downsample_labels(s, (8, 12)), downsample_labels(i, (8, 12))
    assert torch.equal(s_cell, s[:, 2::4, 2::4])  # the pixel at each 4 x 4 cell's centre
    index = torch.full_like(s_cell, 20) if semantic is None else torch.where(s_cell < 19, s_cell, 19)
    edges = torch.zeros(1, 1, 8, 12) if instance is None or semantic is None else instance_boundaries(i_cell)
    absent = torch.full((1, 1, 8, 12), float(semantic is None))
    labels = torch.cat([stem.embed(index).permute(0, 3, 1, 2), edges, absent], dim=1)
    # the rgb window of cell i is centred on pixel 4 i + 2, the pixel whose labels the cell takes: pad (1, 5)
    expected = stem.act(F.conv2d(F.pad(x, (1, 5, 1, 5)), stem.conv.weight, stem.conv.bias, 4)
                        + torch.einsum("oc,bchw->bohw", stem.label_proj.weight, labels))
    with torch.inference_mode():
        assert torch.allclose(stem(x, semantic, instance), expected, atol=1e-5)


def test_separable_paste_equals_grid_sample() -> None:
    torch.manual_seed(0)
    B, N, C, R, h, w, stride = 2, 5, 4, 7, 9, 13, 8
    crops = torch.randn(B, N, C, R, R)
    x1 = torch.randint(-8, w * stride, (B, N)).float()
    y1 = torch.randint(-8, h * stride, (B, N)).float()
    boxes = torch.stack([x1, y1, x1 + torch.randint(0, 60, (B, N)), y1 + torch.randint(0, 40, (B, N))], -1)
    boxes[0, 0] = torch.tensor([0.0, 0.0, 8.0, 8.0])  # a box on cell boundaries, and a zero-size one
    boxes[0, 1] = torch.tensor([16.0, 16.0, 16.0, 16.0])
    masks = torch.rand(B, N, h, w)
    cx = (torch.arange(w) + 0.5) * stride
    cy = (torch.arange(h) + 0.5) * stride
    bx1, by1, bx2, by2 = boxes.unbind(-1)
    u = (cx.view(1, 1, w) - bx1.unsqueeze(-1)) / (bx2 - bx1).clamp(min=1.0).unsqueeze(-1)
    v = (cy.view(1, 1, h) - by1.unsqueeze(-1)) / (by2 - by1).clamp(min=1.0).unsqueeze(-1)
    grid = torch.stack([(2 * u - 1).unsqueeze(-2).expand(B, N, h, w), (2 * v - 1).unsqueeze(-1).expand(B, N, h, w)],
                       dim=-1).reshape(B * N, h, w, 2)
    sampled = F.grid_sample(crops.reshape(B * N, C, R, R), grid, mode="bilinear", padding_mode="border",
                            align_corners=False).reshape(B, N, C, h, w)
    expected = (sampled * masks.unsqueeze(2)).sum(dim=1)
    assert torch.allclose(paste_instances(crops, boxes, masks, stride), expected, atol=1e-5)


def test_backend_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu, "fp32") == "onnxruntime"
    assert resolve_backend("auto", cpu, "bf16") == "torch"
    assert resolve_backend("torch", cpu, "fp32") == "torch"
    assert resolve_backend("onnxruntime", cpu, "fp32") == "onnxruntime"
    with pytest.raises(ConfigError, match="fp32 only"):
        resolve_backend("onnxruntime", cpu, "bf16")
    with pytest.raises(ConfigError, match="auto, torch, onnxruntime"):
        resolve_backend("tensorrt", cpu, "fp32")


def test_onnxruntime_backend_matches_eager_and_caches_the_export(tmp_path: Path) -> None:
    gen = _reference_generator()
    cfg = gen.cfg
    eager = Translator.from_generator(gen, cfg, device="cpu", precision="fp32")
    ort_tr = Translator.from_generator(gen, cfg, device="cpu", precision="fp32", backend="auto", threads=1,
                                       onnx_cache_dir=tmp_path)
    assert ort_tr.backend == "onnxruntime"
    rgb, sem, inst = synthetic_frame(60, 90, num_instances=4, seed=7)  # not a multiple of the stride
    x, s, i = _frame(4, 7, 60, 90)
    diff = (ort_tr.translate_normalized(x, s, i) - eager.translate_normalized(x, s, i)).abs().max().item()
    assert diff <= TOLERANCE
    out_ort, out_eager = ort_tr.translate(rgb, sem, inst), eager.translate(rgb, sem, inst)
    assert out_ort.shape == rgb.shape and out_ort.dtype == np.uint8
    assert np.abs(out_ort.astype(int) - out_eager.astype(int)).max() <= 1
    batch = ort_tr.translate(np.stack([rgb, rgb[::-1].copy()]), np.stack([sem, sem[::-1].copy()]),
                             np.stack([inst, inst[::-1].copy()]))
    assert np.array_equal(batch[0], out_ort)
    torch_out = ort_tr.translate(torch.from_numpy(rgb), torch.from_numpy(sem), torch.from_numpy(inst.astype(np.int64)))
    assert isinstance(torch_out, torch.Tensor) and np.array_equal(torch_out.numpy(), out_ort)
    files = sorted(tmp_path.glob("*.onnx"))
    assert len(files) == 1 and ort_tr.model_digest[:20] in files[0].name and "60x90" in files[0].name
    mtime = files[0].stat().st_mtime_ns
    again = Translator.from_generator(gen, cfg, device="cpu", precision="fp32", backend="onnxruntime", threads=1,
                                      onnx_cache_dir=tmp_path)
    assert np.array_equal(again.translate(rgb, sem, inst), out_ort)
    assert files[0].stat().st_mtime_ns == mtime  # read from the cache, not exported again
    files[0].write_bytes(b"not onnx")  # a damaged cache entry is replaced
    third = Translator.from_generator(gen, cfg, device="cpu", precision="fp32", backend="onnxruntime", threads=1,
                                      onnx_cache_dir=tmp_path)
    assert np.array_equal(third.translate(rgb, sem, inst), out_ort)


@pytest.mark.parametrize("size", [1, 3, 9])
def test_box_mean_is_the_mean_over_the_clamped_window(size: int) -> None:
    """One Pad on every side, then the two poolings: every pixel the mean of the size x size window with
    coordinates clamped to the frame (replicate border), against a loop; a frame smaller than the box too."""
    torch.manual_seed(4)
    x = torch.randn(2, 3, 7, 11)
    r = size // 2
    expected = torch.empty_like(x)
    for i in range(7):
        for j in range(11):
            rows = [min(max(i + d, 0), 6) for d in range(-r, r + 1)]
            cols = [min(max(j + d, 0), 10) for d in range(-r, r + 1)]
            expected[..., i, j] = x[..., rows, :][..., cols].mean(dim=(-2, -1))
    assert torch.allclose(box_mean(x, size), expected, atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        box_mean(x, 4)
