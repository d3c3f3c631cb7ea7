"""The learned camera model (sim2real.translator.camera) and the discriminator's coordinate planes: known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sim2real.translator.camera import BLUR_TAPS, CameraModel, frame_coordinates
from sim2real.translator.discriminator import DiscriminatorConfig, MultiScaleDiscriminator, coordinate_planes


def camera(**params: float) -> CameraModel:
    """A 1-domain camera with chosen physical parameters (inverse of the parameterisation)."""
    cam = CameraModel(domains=1, knots=8)
    with torch.no_grad():
        cam.ca[0] = math.atanh(params.get("ca", 0.0) / 0.02)
        cam.blur[0] = math.log(math.expm1(params.get("blur", 1e-3)))
        cam.vignette[0] = torch.tensor([math.atanh(2 * params.get("a", 0.0)), math.atanh(2 * params.get("b", 0.0))])
    return cam


def test_a_new_camera_is_close_to_the_identity() -> None:
    x = torch.rand(2, 3, 24, 40) * 2 - 1
    out = CameraModel()(x, 1)
    assert (out - x).abs().max() < 0.03  # only the initial 0.3 px blur, no noise, identity tone curve
    d = CameraModel().describe(1)
    assert d["chromatic_aberration"] == 0.0 and d["vignette"] == [0.0, 0.0]
    assert d["tone"] == pytest.approx([k / 8 for k in range(9)], abs=1e-6)


def test_chromatic_aberration_magnifies_red_and_shrinks_blue_about_the_centre() -> None:
    H, W, c = 8, 101, 0.01
    ramp = torch.linspace(-1, 1, W).expand(1, 3, H, W).clone() * 0.5  # u = 0.25 + 0.25 * (x - cx) / cx
    out = camera(ca=c)(ramp, 0)
    u_in, u_out = (ramp + 1) / 2, (out + 1) / 2
    cx = (W - 1) / 2
    x = torch.arange(W, dtype=torch.float32)
    for channel, m in ((0, 1 + c), (2, 1 - c)):  # a linear ramp magnified by m about the centre: slope / m
        expected = 0.5 + 0.25 * (x - cx) / cx / m
        inner = slice(10, W - 10)
        assert torch.allclose(u_out[0, channel, 4, inner], expected[inner], atol=1e-4), channel
    assert torch.allclose(u_out[0, 1], u_in[0, 1], atol=1e-5)  # green is the reference


def test_blur_spreads_an_impulse_into_the_gaussian_and_keeps_energy() -> None:
    x = torch.full((1, 3, 15, 15), -1.0)
    x[..., 7, 7] = 1.0
    out = ((camera(blur=1.0)(x, 0) + 1) / 2).detach()
    t = torch.arange(BLUR_TAPS) - BLUR_TAPS // 2
    k = torch.exp(-0.5 * t.float() ** 2)
    k = k / k.sum()
    assert torch.allclose(out[0, 0, 7, 4:11], k * k[3], atol=1e-6)
    assert out[0, 0].sum() == pytest.approx(1.0, abs=1e-5)


def test_blur_equals_replicate_padded_separable_sums_at_the_border() -> None:
    """The depthwise convolutions against the plain formula (sums of shifted replicate-padded planes), borders
    included, per channel, batch of 2."""
    torch.manual_seed(3)
    x = torch.rand(2, 3, 9, 13)
    cam = camera(blur=0.8)
    t = torch.arange(BLUR_TAPS, dtype=torch.float32) - BLUR_TAPS // 2
    k = torch.exp(-0.5 * (t / 0.8) ** 2)
    k = k / k.sum()
    p = BLUR_TAPS // 2
    padded = torch.nn.functional.pad(x, (p, p, p, p), mode="replicate")
    rows = sum(k[i] * padded[..., i : i + 13] for i in range(BLUR_TAPS))
    expected = sum(k[i] * rows[..., i : i + 9, :] for i in range(BLUR_TAPS))
    assert torch.allclose(cam._blur(x, 0), expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (9,)])
def test_tone_curve_equals_its_segments(shape: tuple[int, ...]) -> None:
    """The hinge form against y = sum_k s_k clamp(u - k / K, 0, 1 / K), on [0, 1] ends included, any shape; and
    its gradients w.r.t. the slopes."""
    torch.manual_seed(4)
    cam = CameraModel(domains=1, knots=8)
    with torch.no_grad():
        cam.tone.normal_(0.3, 0.8)
    u = torch.rand(shape)
    u.view(-1)[:2] = torch.tensor([0.0, 1.0])
    slopes = torch.nn.functional.softplus(cam.tone[0])
    expected = sum(slopes[k] * (u - k / 8).clamp(0, 1 / 8) for k in range(8))
    got = cam.tone_curve(u, 0)
    assert got.shape == u.shape
    assert torch.allclose(got, expected, atol=1e-6)
    (grad_got,) = torch.autograd.grad(got.sum(), cam.tone)
    (grad_expected,) = torch.autograd.grad(expected.sum(), cam.tone)
    assert torch.allclose(grad_got, grad_expected, atol=1e-5)


def test_the_camera_stays_float32_under_cpu_autocast() -> None:
    """Under bf16 autocast the camera's convolutions (blur, tone curve) run in the input's dtype, as its
    element-wise parts do: float32 in, the float32 result out (bf16 hinge weights would cost ~1 level)."""
    torch.manual_seed(5)
    cam = camera(ca=0.004, blur=0.9, a=0.1)
    with torch.no_grad():
        cam.tone.normal_(0.3, 0.8)
    x = torch.rand(2, 3, 20, 30) * 2 - 1
    reference = cam(x, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cam(x, 0)
    assert out.dtype == torch.float32
    assert torch.allclose(out, reference, atol=1e-6)


def test_vignetting_is_one_at_the_centre_and_one_minus_a_minus_b_at_the_corners() -> None:
    x = torch.ones(1, 3, 41, 61) * 0.0  # u = 0.5 everywhere
    out = ((camera(a=0.2, b=0.1)(x, 0) + 1) / 2).detach()
    assert out[0, 0, 20, 30] == pytest.approx(0.5, abs=1e-3)
    corner = out[0, 0, 0, 0]  # the corner pixel centre is slightly inside the frame corner (r slightly < 1)
    r2 = ((30.0 / 30.5) ** 2 * 30.5**2 + (20.0 / 20.5) ** 2 * 20.5**2) / (30.5**2 + 20.5**2)
    assert corner == pytest.approx(0.5 * (1 - 0.2 * r2 - 0.1 * r2 * r2), abs=1e-4)


def test_a_batch_of_crops_is_aberrated_as_each_crop_alone() -> None:
    """The one-frame path gathers whole rows along H (the exported graph's batch); a batch gathers per frame, each
    frame with its own box: the same numbers."""
    cam = camera(ca=0.015)
    x = torch.rand(3, 3, 40, 56) * 2 - 1
    boxes = torch.tensor([[0.1, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0], [0.3, 0.1, 0.5, 0.4]])
    batch = cam._aberration(x, 0, boxes)
    alone = torch.cat([cam._aberration(x[i : i + 1], 0, boxes[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch, alone, atol=1e-6)
    assert (batch - x).abs().amax(dim=(1, 2, 3)).min() > 1e-2  # every frame is resampled


def test_a_crop_sees_the_camera_of_its_full_frame() -> None:
    cam = camera(ca=0.008, a=0.3)
    x = torch.rand(1, 3, 48, 96) * 2 - 1
    full = cam(x, 0)
    box = torch.tensor([[32 / 96, 8 / 48, 80 / 96, 40 / 48]])
    crop = cam(x[..., 8:40, 32:80], 0, frame_box=box)
    assert torch.allclose(full[..., 8:40, 32:80][..., 2:-2, 2:-2], crop[..., 2:-2, 2:-2], atol=1e-4)
    uncorrected = cam(x[..., 8:40, 32:80], 0)  # without its box: treated as a whole frame -> different
    assert (uncorrected - crop).abs().max() > 0.05


def test_noise_follows_the_noise_level_function_and_the_tone_curve_is_monotone() -> None:
    cam = CameraModel(domains=1)
    with torch.no_grad():
        cam.noise[0] = torch.tensor([-20.0, math.log(math.expm1(0.4))])  # shot ~0, read = 0.4 * 0.05 = 0.02
        cam.blur[0] = -20.0
    x = torch.zeros(1, 3, 64, 64)
    noisy = (cam(x, 0, noise=torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))) + 1) / 2
    assert noisy.std().item() == pytest.approx(0.02, rel=0.05)
    with torch.no_grad():
        cam.tone[0] = torch.randn(8)
    u = torch.linspace(0, 1, 101)
    y = cam.tone_curve(u, 0)
    assert (y[1:] >= y[:-1]).all() and y[0] == 0


def test_gradients_reach_every_camera_parameter() -> None:
    cam = camera(ca=0.005, a=0.1, blur=0.8)
    x = torch.rand(2, 3, 20, 30) * 2 - 1
    box = torch.tensor([[0.1, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0]])
    (cam(x, 0, frame_box=box, noise=torch.randn_like(x)) * torch.randn_like(x)).sum().backward()
    for name, p in cam.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_coordinate_planes_and_a_coordinate_discriminator() -> None:
    x = torch.zeros(2, 3, 4, 8)
    planes = coordinate_planes(x, torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0]]))
    assert planes.shape == (2, 2, 4, 8)
    # a 2:1 frame: x runs over [-2, 2] in half frame heights, y over [-1, 1]
    assert planes[0, 0, 0, 0] == pytest.approx(-2 + 1 / 4) and planes[0, 1, 3, 0] == pytest.approx(1 - 1 / 4)
    assert planes[1, 0, 0, 0] == pytest.approx(1 / 8) and planes[1, 1, 0, 0] == pytest.approx(1 / 8)
    # 64x64 crops of a 640x360 and of a 480x360 frame: the same step per pixel on both axes
    crops = coordinate_planes(torch.zeros(2, 3, 64, 64), torch.tensor([[0.1, 0.2, 0.1 + 64 / 640, 0.2 + 64 / 360],
                                                                        [0.1, 0.2, 0.1 + 64 / 480, 0.2 + 64 / 360]]))
    steps = crops.diff(dim=3)[:, 0, 0, 0], crops.diff(dim=2)[:, 1, 0, 0]
    assert torch.allclose(steps[0], torch.full((2,), 2 / 360)) and torch.allclose(steps[1], torch.full((2,), 2 / 360))
    assert torch.allclose(frame_coordinates(4, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), 0),
                          torch.tensor([[0.125, 0.375, 0.625, 0.875]]))
    d = MultiScaleDiscriminator(DiscriminatorConfig(base_channels=8, num_classes=0, coordinates=True))
    a, b = d(torch.zeros(1, 3, 32, 32)), d(torch.zeros(1, 3, 32, 32), frame_box=torch.tensor([[0.5, 0.5, 1, 1]]))
    assert not torch.allclose(a[0], b[0])  # the same pixels at another place in the frame look different to it


def test_a_brightening_tone_curve_saturates_at_white_instead_of_leaving_the_range() -> None:
    cam = CameraModel(domains=1)
    with torch.no_grad():
        cam.tone[0] = math.log(math.expm1(2.0))  # every slope 2: the curve reaches 2 at u = 1
        cam.blur[0] = -20.0
    assert cam.tone_curve(torch.ones(1), 0).item() == pytest.approx(2.0)
    x = torch.linspace(-1, 1, 64).expand(1, 3, 8, 64)
    out = cam(x, 0)
    assert out.max().item() == 1.0 and out.min().item() == -1.0
    assert (out[..., 40:] == 1).all() and (out[..., :16] < 0.5).all()  # highlights clip, shadows are brightened


def test_set_optics_is_the_inverse_of_describe_and_leaves_the_rest() -> None:
    cam = CameraModel(domains=2)
    with torch.no_grad():
        cam.tone[1] = torch.linspace(-1, 1, cam.knots)  # a learned-looking tone curve, kept
    before = cam.describe(1)
    cam.set_optics(1, chromatic_aberration=0.004, blur_sigma=1.1, vignette=(0.4, -0.05))
    after = cam.describe(1)
    assert after["chromatic_aberration"] == pytest.approx(0.004, abs=1e-6)
    assert after["blur_sigma"] == pytest.approx(1.1, abs=1e-5)
    assert after["vignette"] == pytest.approx([0.4, -0.05], abs=1e-6)
    assert after["tone"] == before["tone"] and after["noise_shot"] == before["noise_shot"]
    assert cam.describe(0)["blur_sigma"] == pytest.approx(0.3, abs=1e-5)  # the other domain untouched
    for bad in ({"chromatic_aberration": 0.02}, {"blur_sigma": 0.0}, {"vignette": (0.5, 0.0)}):
        kwargs = {"chromatic_aberration": 0.0, "blur_sigma": 1.0, "vignette": (0.0, 0.0), **bad}
        with pytest.raises(ValueError, match="optics out of range"):
            cam.set_optics(1, **kwargs)


def test_with_gamma_the_optics_act_on_linear_light() -> None:
    """gamma 2.2: vignetting scales display values by g^(1/2.2), blur averages u^2.2 (a step between 0 and 1
    blurred by a known kernel reads (sum of the kernel over the bright side)^(1/2.2) at the edge), and a camera
    without optics stays the identity down to black; gamma 1 (the default) is the display-value camera."""
    x = torch.rand(1, 3, 24, 40) * 2 - 1
    x[..., 0, 0] = -1.0
    linear = CameraModel(domains=1, gamma=2.2)
    linear.set_optics(0, chromatic_aberration=0.0, blur_sigma=1e-3, vignette=(0.0, 0.0))
    out = (linear(x, 0).detach() + 1) / 2
    floor = 1e-6 ** (1 / 2.2)  # the root's floor: display values below 0.0019 (half a level) read as it
    # near black the root magnifies the aberration resampling's float error (weights 1e-7 off): < 0.1 level
    assert torch.allclose(out, ((x + 1) / 2).clamp(min=floor), atol=3e-4)
    assert out[0, :, 0, 0].max() < 1 / 255
    flat = torch.full((1, 3, 9, 16), 0.2)
    for gamma in (1.0, 2.2):
        cam = CameraModel(domains=1, gamma=gamma)
        cam.set_optics(0, chromatic_aberration=0.0, blur_sigma=1e-3, vignette=(0.3, 0.0))
        gain = cam._vignetting(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), 9, 16, 0)[0, 0].detach()
        expected = (flat + 1) / 2 * gain ** (1 / gamma)
        assert torch.allclose((cam(flat, 0) + 1) / 2, expected, atol=1e-5), gamma
    step = torch.full((1, 3, 5, 15), -1.0)
    step[..., 8:] = 1.0
    k = torch.exp(-0.5 * (torch.arange(BLUR_TAPS) - BLUR_TAPS // 2).float() ** 2)
    k = k / k.sum()
    for gamma in (1.0, 2.2):
        cam = CameraModel(domains=1, gamma=gamma)
        cam.set_optics(0, chromatic_aberration=0.0, blur_sigma=1.0, vignette=(0.0, 0.0))
        edge = (cam(step, 0)[0, 0, 2, 7] + 1) / 2  # pixel 7: the taps at 8, 9, 10 see white
        assert edge.item() == pytest.approx(float(k[4:].sum()) ** (1 / gamma), abs=1e-5), gamma


def test_exported_blur_taps_leave_out_only_taps_below_the_floor() -> None:
    """Known answers of the tap count (weight exp(-i^2 / 2 sigma^2) >= 1e-5 of the centre's kept)."""
    from sim2real.translator.camera import _exported_blur_taps

    assert [_exported_blur_taps(s) for s in (0.1, 0.3, 0.395, 0.5, 0.62, 0.7, 1.0, 3.0)] == [1, 3, 3, 5, 5, 7, 7, 7]
    for sigma in (0.3, 0.395, 0.5, 0.62):
        half = _exported_blur_taps(sigma) // 2
        assert math.exp(-0.5 * ((half + 1) / sigma) ** 2) < 1e-5 <= math.exp(-0.5 * (half / sigma) ** 2)


@pytest.mark.parametrize("case", [(0.395, 1.0, 3, 1e-4), (0.5, 1.0, 5, 1e-4), (1.0, 1.0, 7, 1e-5),
                                  (0.395, 2.2, 7, 1e-5)])
def test_an_exported_camera_equals_the_eager_one(tmp_path, monkeypatch,
                                                 case: tuple[float, float, int, float]) -> None:
    """ONNX Runtime against eager on a sharp-edged frame with saturated blacks: the pruned kernel (``taps`` in the
    graph) moves no output by more than ``tolerance``; with gamma 2.2 nothing is pruned (the root after the blur
    would magnify a dropped tap near black: ~0.7 of a level); a kernel cut to 3 taps at sigma 1 (control) moves
    the output by > 0.01."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    import sim2real.translator.camera as camera_module

    sigma, gamma, taps, tolerance = case  # blur sigma, gamma, taps in the graph, largest difference
    torch.manual_seed(0)
    cam = CameraModel(domains=1, knots=8, gamma=gamma)
    cam.load_state_dict(camera(blur=sigma, ca=0.01, a=0.2, b=-0.1).state_dict())
    with torch.no_grad():
        cam.tone[0] = torch.randn(8) * 0.5
    x = torch.where(torch.rand(1, 3, 24, 32) > 0.5, 0.9, -1.0)

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cam = cam

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.cam(image, 0)

    def exported(path) -> tuple[np.ndarray, list[int]]:
        torch.onnx.export(Wrapped(), (x,), str(path), input_names=["x"], dynamo=False)
        graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
        shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
        widths = sorted({max(shapes[n.input[1]][2:]) for n in graph.node  # the blur's (3, 1, 1, k), (3, 1, k, 1)
                         if n.op_type == "Conv" and len(shapes.get(n.input[1], [])) == 4})
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x.numpy()})[0], widths

    with torch.no_grad():
        eager = cam(x, 0).numpy()
    out, widths = exported(tmp_path / "camera.onnx")
    assert widths == [taps]
    assert np.abs(out - eager).max() < tolerance
    if sigma == 1.0:
        monkeypatch.setattr(camera_module, "_exported_blur_taps", lambda s: 3)
        cut, _ = exported(tmp_path / "cut.onnx")
        assert np.abs(cut - eager).max() > 0.01


def test_the_output_is_twice_the_tone_curve_minus_one_clamped() -> None:
    """The scale and shift folded into the tone curve's convolution: the camera without optics returns
    clamp(2 tone(u) - 1, -1, 1), with a curve whose slopes clip the highlights."""
    torch.manual_seed(2)
    cam = camera(blur=1e-3)
    with torch.no_grad():
        cam.tone[0] = torch.randn(8) + 1.0
    x = torch.linspace(-1, 1, 200).expand(1, 3, 4, 200)
    u = (x + 1) / 2
    expected = (cam.tone_curve(u, 0) * 2 - 1).clamp(-1, 1)
    assert cam.tone_curve(torch.ones(1), 0).item() > 1.05  # the curve leaves [0, 1]: the clamp counts
    assert torch.allclose(cam(x, 0), expected, atol=1e-6)
