"""A differentiable camera model, learned per target domain: what a real camera adds after the scene.

Applied to the decoder's image x in [-1, 1] (u = (x + 1) / 2 in [0, 1]), in the order light meets the camera
(Carlson et al., 2018); steps 1-4 act on u^gamma (``gamma`` 1: on display values; 2.2: on approximately linear
light, as a lens and a sensor do), and u = (...)^(1 / gamma) before the tone curve:

1. **lateral chromatic aberration** — red sampled at magnification 1 + c, blue at 1 - c, about the frame centre
   (bilinear, separable: one 2-tap gather per axis); c = 0.02 tanh(p_ca);
2. **defocus blur** — a normalised Gaussian of width sigma = softplus(p_blur) px (7 taps per axis, separable,
   replicate border; an exported graph with ``gamma`` 1 leaves out outer taps below 1e-5 of the centre's);
3. **vignetting** — u <- u (1 - a r^2 - b r^4), r = distance to the frame centre / half-diagonal, (a, b) =
   0.5 tanh(p_vig);
4. **sensor noise** — u <- u + n sqrt(s_shot u + s_read^2) with n ~ N(0, 1) supplied by the caller (None = the
   mean output, no noise), (s_shot, s_read) = softplus(p_noise) * (0.01, 0.05);
5. **tone curve** — a monotone piecewise-linear curve through ``knots`` equally spaced knots, slopes =
   softplus(p_tone) (initialised to the identity), applied to every channel; its output saturates at 1 (a
   curve whose slopes sum above ``knots`` clips the highlights, as a sensor does).

Every parameter starts at the identity camera (no aberration, ~0.3 px blur, no vignetting, almost no noise,
identity tone curve), so a model with a camera behaves like one without until training moves it, unless the run
sets the target camera's optics from measurements first (:mod:`sim2real.training.camera_calibration`). With
``gamma`` > 1 the identity camera floors display values at 1e-6^(1 / gamma) (0.0019 for 2.2: half an 8-bit
level).

Positions are in the **full frame**: a training crop passes ``frame_box`` (B, 4) = its (x0, y0, x1, y1) in
normalised full-frame coordinates, so aberration and vignetting are those of the frame the crop came from.
"""

from __future__ import annotations

import math
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BLUR_TAPS", "BLUR_TAP_FLOOR", "CameraModel", "frame_coordinates"]

BLUR_TAPS: Final = 7
#: in an exported graph with ``gamma`` 1, outer blur taps below this share of the centre tap are left out
#: (:func:`_exported_blur_taps`)
BLUR_TAP_FLOOR: Final = 1e-5
_CA_MAX: Final = 0.02
_NOISE_SCALE: Final = (0.01, 0.05)
_GAMMA_FLOOR: Final = 1e-6


def _softplus_inverse(y: float) -> float:
    return math.log(math.expm1(y))


def _exported_blur_taps(sigma: float) -> int:
    """Taps of the blur kernel in an exported graph with ``gamma`` 1 (a constant there): the ``BLUR_TAPS`` ones
    less the outer pairs whose weight is below ``BLUR_TAP_FLOOR`` of the centre's, exp(-i^2 / (2 sigma^2)) < 1e-5
    (sigma 0.4 px: 3 taps, ~0.4 ms less per 640x360 frame in ONNX Runtime). The kernel is normalised over the
    taps kept: on display values the output moves by at most ~4e-5 of a step's height (~0.01 of an 8-bit
    level). With ``gamma`` > 1 the blur acts on u^gamma and the root after it magnifies that near black (up to
    levels), so those graphs keep every tap."""
    half = min(BLUR_TAPS // 2, int(sigma * math.sqrt(-2 * math.log(BLUR_TAP_FLOOR))))
    return 2 * half + 1


def frame_coordinates(size: int, box: Tensor, axis: int) -> Tensor:
    """Normalised full-frame coordinate of each pixel centre along one axis: box (B, 4) -> (B, size)."""
    lo, hi = box[:, axis], box[:, axis + 2]
    t = (torch.arange(size, device=box.device, dtype=box.dtype) + 0.5) / size
    return lo[:, None] + t[None] * (hi - lo)[:, None]


def _magnify_axis(x: Tensor, coords: Tensor, span: tuple[Tensor, Tensor], factor: Tensor, dim: int) -> Tensor:
    """Resample (B, H, W) along ``dim`` (1 = H, 2 = W) at the positions a magnification by ``factor`` about the
    frame centre maps each pixel to (linear interpolation, clamped at the border); ``span`` = the image's (lo, hi)
    extent along that axis in normalised full-frame coordinates, (B,) each."""
    lo, hi = span
    size = x.shape[dim]
    source = 0.5 + (coords - 0.5) / factor  # normalised full-frame position sampled
    pixel = (source - lo[:, None]) / (hi - lo)[:, None] * size - 0.5  # (B, size) in this image's pixels
    pixel = pixel.clamp(0, size - 1)
    left = pixel.floor().clamp(max=size - 2) if size > 1 else pixel.floor()
    frac = (pixel - left).to(x.dtype)
    left = left.long()
    right = (left + 1).clamp(max=size - 1)
    shape = (x.shape[0], 1, size) if dim == 2 else (x.shape[0], size, 1)
    if dim == 1 and x.shape[0] == 1:  # one frame: whole rows (in ONNX Runtime a gather of rows, ~6x faster)
        a, b = x.index_select(1, left[0]), x.index_select(1, right[0])
    else:
        a = torch.gather(x, dim, left.view(shape).expand(x.shape))
        b = torch.gather(x, dim, right.view(shape).expand(x.shape))
    return a + (b - a) * frac.view(shape)


class CameraModel(nn.Module):
    """Learned camera of each domain (module docstring): image (B, 3, H, W) in [-1, 1] -> same shape and range.

    Args:
        domains: how many domains have a camera (one parameter set each).
        knots: knots of the tone curve.
        gamma: the optics and the noise act on u^gamma (module docstring); fixed, not learned.
    """

    def __init__(self, domains: int = 2, knots: int = 8, gamma: float = 1.0) -> None:
        super().__init__()
        self.knots, self.gamma = knots, float(gamma)
        self.ca = nn.Parameter(torch.zeros(domains))
        self.blur = nn.Parameter(torch.full((domains,), _softplus_inverse(0.3)))
        self.vignette = nn.Parameter(torch.zeros(domains, 2))
        self.noise = nn.Parameter(torch.full((domains, 2), _softplus_inverse(0.05)))
        self.tone = nn.Parameter(torch.full((domains, knots), _softplus_inverse(1.0)))

    def describe(self, domain: int) -> dict[str, float | list[float]]:
        """The physical parameters of one domain's camera (for cards and tests)."""
        with torch.no_grad():
            shot, read = (F.softplus(self.noise[domain]) * self.noise.new_tensor(_NOISE_SCALE)).tolist()
            return {"chromatic_aberration": float(_CA_MAX * torch.tanh(self.ca[domain])),
                    "blur_sigma": float(F.softplus(self.blur[domain])),
                    "vignette": (0.5 * torch.tanh(self.vignette[domain])).tolist(),
                    "noise_shot": shot, "noise_read": read,
                    "tone": self.tone_curve(torch.linspace(0, 1, 9), domain).tolist()}

    def set_optics(self, domain: int, *, chromatic_aberration: float, blur_sigma: float,
                   vignette: tuple[float, float]) -> None:
        """Set one domain's optics (aberration c, blur sigma in px, vignetting (a, b)) to known values, the inverse
        of :meth:`describe` for them; the tone curve and the noise stay as learned. For the optics measured at the start
        of a run (:mod:`sim2real.training.camera_calibration`) and for diagnostics (``benchmarks/learnability.py
        --look-optics``). Raises ValueError for a
        value outside what the parametrisation can reach (|c| < 0.02, sigma > 0, |a|, |b| < 0.5)."""
        a, b = vignette
        if not (abs(chromatic_aberration) < _CA_MAX and blur_sigma > 0 and abs(a) < 0.5 and abs(b) < 0.5):
            raise ValueError(f"optics out of range: chromatic_aberration {chromatic_aberration} (|c| < {_CA_MAX}), "
                             f"blur_sigma {blur_sigma} (> 0), vignette {vignette} (each |.| < 0.5)")
        with torch.no_grad():
            self.ca[domain] = math.atanh(chromatic_aberration / _CA_MAX)
            self.blur[domain] = _softplus_inverse(blur_sigma)
            self.vignette[domain] = self.vignette.new_tensor([math.atanh(2 * a), math.atanh(2 * b)])

    def tone_curve(self, u: Tensor, domain: int) -> Tensor:
        """The monotone piecewise-linear tone curve, any non-empty shape with values in [0, 1] -> same shape and
        dtype (identity at init).

        With slopes s_k >= 0 of the K segments of width 1/K, on u in [0, 1] (above 1 the hinge form keeps the last
        slope instead of stopping: callers clamp)::

            y = sum_k s_k clamp(u - k / K, 0, 1 / K) = sum_k w_k relu(u - k / K),   w_0 = s_0, w_k = s_k - s_(k-1)

        computed in the hinge form: one broadcast, one ReLU and a K -> 1 convolution (4 ms -> 2 ms at 640x360 in
        ONNX Runtime, against K clamps, products and sums), in u's dtype with autocast off (the hinge weights are
        differences of slopes: in bf16 they would cost up to 1.3 levels). Gradients w.r.t. the slopes are those of
        the clamp form; w.r.t. u, exactly at a knot, the one-sided slope s_(k-1) (0 at u = 0)."""
        return self._scaled_tone_curve(u, domain)

    def _scaled_tone_curve(self, u: Tensor, domain: int, scale: float = 1.0, shift: float = 0.0) -> Tensor:
        """scale * tone_curve(u) + shift, the scale and shift inside the K -> 1 convolution (the camera's output
        2 y - 1 without two more full-resolution passes)."""
        slopes = F.softplus(self.tone[domain]).to(u.dtype)  # (K,) >= 0: monotone
        K = self.knots
        knots = torch.arange(K, device=u.device, dtype=u.dtype) / K
        weights = torch.cat([slopes[:1], slopes[1:] - slopes[:-1]])  # (K,)
        with torch.autocast(u.device.type, enabled=False):
            hinge = (u.reshape(1, 1, -1) - knots.view(1, K, 1)).relu()  # (1, K, N)
            return F.conv1d(hinge, (weights * scale).view(1, K, 1), weights.new_full((1,), shift)).reshape(u.shape)

    def forward(self, x: Tensor, domain: int, frame_box: Tensor | None = None, noise: Tensor | None = None
                ) -> Tensor:
        """x (B, 3, H, W) in [-1, 1]; ``frame_box`` (B, 4) normalised (default: x is the whole frame);
        ``noise`` (B, 3, H, W) standard normal or None -> (B, 3, H, W) in [-1, 1]."""
        B, _, H, W = x.shape
        box = frame_box if frame_box is not None else x.new_tensor([0.0, 0.0, 1.0, 1.0]).expand(B, 4)
        box = box.to(torch.float32)
        u = (x + 1) * 0.5
        if self.gamma != 1.0:
            u = u.clamp(min=0) ** self.gamma
        u = self._aberration(u, domain, box)
        u = self._blur(u, domain)
        u = u * self._vignetting(box, H, W, domain).to(u.dtype)
        if noise is not None:
            shot, read = F.softplus(self.noise[domain]) * self.noise.new_tensor(_NOISE_SCALE)
            u = u + noise.to(u.dtype) * torch.sqrt(shot * u.clamp(min=0) + read * read)
        if self.gamma != 1.0:  # back to display values (the floor keeps the gradient of the root finite at 0)
            u = u.clamp(min=_GAMMA_FLOOR) ** (1 / self.gamma)
        # 2 y - 1 clamped to [-1, 1]: saturates at white, like a sensor
        return self._scaled_tone_curve(u.clamp(0, 1), domain, 2.0, -1.0).clamp(-1, 1)

    def _aberration(self, u: Tensor, domain: int, box: Tensor) -> Tensor:
        c = _CA_MAX * torch.tanh(self.ca[domain])
        H, W = u.shape[-2:]
        xs, ys = frame_coordinates(W, box, 0), frame_coordinates(H, box, 1)
        out = [u[:, 1]]
        for channel, factor in ((0, 1 + c), (2, 1 - c)):
            plane = _magnify_axis(u[:, channel], xs, (box[:, 0], box[:, 2]), factor, dim=2)
            out.insert(channel, _magnify_axis(plane, ys, (box[:, 1], box[:, 3]), factor, dim=1))
        return torch.stack(out, 1)

    def _blur(self, u: Tensor, domain: int) -> Tensor:
        sigma = F.softplus(self.blur[domain]).clamp(min=1e-3)
        # exported, sigma is a constant of the graph: its value sets the tap count (a TracerWarning, on purpose)
        # (on display values only: with gamma > 1 the root after the blur magnifies what a dropped tap leaves
        # near black, up to levels)
        prune = torch.onnx.is_in_onnx_export() and self.gamma == 1.0
        taps = _exported_blur_taps(float(sigma)) if prune else BLUR_TAPS
        t = torch.arange(taps, device=u.device, dtype=torch.float32) - taps // 2
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = (k / k.sum()).to(u.dtype)
        p, channels = taps // 2, u.shape[1]
        # separable depthwise convolutions, replicate border (11 -> 2 ms at 640x360 in ONNX Runtime against
        # sums of 7 shifted planes per axis), in u's dtype with autocast off like the rest of the camera (fp16
        # weight gradients summed over every pixel overflow under loss scaling)
        with torch.autocast(u.device.type, enabled=False):
            # one Pad on every side: the padded rows blurred along the width are the edge rows' blurred values
            u = F.conv2d(F.pad(u, (p, p, p, p), mode="replicate"),
                         torch.cat([k.view(1, 1, 1, taps)] * channels), groups=channels)
            return F.conv2d(u, torch.cat([k.view(1, 1, taps, 1)] * channels), groups=channels)

    def _vignetting(self, box: Tensor, height: int, width: int, domain: int) -> Tensor:
        """(B, 1, H, W) gain 1 - a r^2 - b r^4 in full-frame geometry."""
        H, W = height, width
        a, b = 0.5 * torch.tanh(self.vignette[domain])
        full_w = W / (box[:, 2] - box[:, 0])  # (B,) full-frame size in pixels
        full_h = H / (box[:, 3] - box[:, 1])
        dx = (frame_coordinates(W, box, 0) - 0.5) * full_w[:, None]  # (B, W) pixels from the centre
        dy = (frame_coordinates(H, box, 1) - 0.5) * full_h[:, None]
        r2 = (dy[:, :, None] ** 2 + dx[:, None, :] ** 2) / ((full_w**2 + full_h**2) / 4)[:, None, None]
        return (1 - a * r2 - b * r2 * r2)[:, None]
