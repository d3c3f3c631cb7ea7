"""A fixed class-wise colour prior: one affine CIE Lab map per semantic class, applied before the decoder.

For a pixel of train id t with sRGB colour x::

    lab(out) = gain[t] * lab(x) + offset[t]          (per Lab channel; gain, offset: (256, 3) buffers)

The maps are fitted once, before training, from pooled colour statistics (the ``classwise_pooled`` baseline's
map: gain = clamp(sigma_real / sigma_sim, 1/4, 4), offset = mu_real - gain * mu_sim, per class; the global map
for ids without statistics) and then stay fixed: the decoder, detail path and camera model learn the residual
(shading, texture, optics) on top. Fresh, the prior is the identity (gain 1, offset 0).

**Per-frame variant** (``per_frame=True``): the source statistics of each class are those of the frame itself,
shrunk toward the pooled ones, so a simulator whose colours differ from the training world's (CARLA's
photographic palms vs the procedural world's flat trees) is still mapped to the real statistics. Per class row
k (classes of the fit's label space, the last row for every other train id), over every ``STATS_STRIDE``-th
pixel of the frame (N of them, n_k of class k, with mean mu_frame and std sigma_frame)::

    mu_k      = (n_k mu_frame + w mu_pooled) / (n_k + w)
    sigma_k^2 = (n_k sigma_frame^2 + w sigma_pooled^2) / (n_k + w)          w = pooled_share * N
    gain      = clamp(sigma_real / (sigma_k + eps), 1/4, 4),   offset = mu_real - gain * mu_k

(the variances are blended around each one's own mean: a class whose colour moved keeps its contrast). The sums
are taken over x - mu_pooled, small numbers for fp32. The **no-class row** (the last: classes without real or
source statistics, ignore and unknown ids) takes the same equations over *every* sampled pixel of the frame
(n = N, the frame's global statistics, shrunk toward the pooled global ones): a global transfer fitted to the
frame. So an unlabelled region (CARLA's "static" banners, a frame whose labels are missing) is mapped like the
frame as a whole, not by the training world's global map (whose lightness gain 1.9 turned CARLA's yellow banners
white). Other rows without statistics (``adapts`` 0) count no frame pixel: the pooled map, as in the fixed prior.
Pixels a frame was padded with (:mod:`~sim2real.translator.frames`: edge pixels replicated, label 255) count in
the no-class row too: none at 640x360 or 1280x720, a few rows or columns where the size is not a multiple of the
stride.

**Thing chroma** (``thing_chroma=True``, both kinds): in the rows of thing classes (person ... bicycle; never the
per-frame prior's no-class row) the gain on Lab a and b is 1 and their offset 0: those pixels keep their own
chroma and only their lightness is mapped. Without it, a frame's vehicles, whose sim colours spread several times
wider than real ones, are all mapped near the real vehicles' mean (near grey; docs/translator.md "Thing chroma").

The sRGB <-> Lab conversions here are the project's one implementation (the baselines use them in float64);
they keep the input dtype and export to ONNX (Pow, MatMul, Where, Gather).
"""

from __future__ import annotations

from typing import Final

import torch
from torch import Tensor, nn

from sim2real.core.labels import THING_CLASSES
from sim2real.translator.markings import marked_lab, marking_columns

__all__ = ["FRAME_ROWS", "MAX_GAIN", "STATS_STRIDE", "STD_EPS", "ClassColourPrior", "lab_to_srgb", "srgb_to_lab"]

#: train ids 0..255 (255 = ignore): one map per possible label value.
PRIOR_ROWS: Final = 256
#: class rows of the per-frame prior's tables: up to FRAME_ROWS - 1 classes, the last row for no class.
FRAME_ROWS: Final = 32
#: the per-frame prior's statistics read every STATS_STRIDE-th pixel along each axis (1/16 of the pixels).
STATS_STRIDE: Final = 4
#: every class-wise map's gain sigma_real / (sigma_src + STD_EPS), clamped to [1 / MAX_GAIN, MAX_GAIN] (here and in
#: the evaluation's baselines).
STD_EPS: Final = 1e-6
MAX_GAIN: Final = 4.0
# sRGB (D65) <-> CIE XYZ, and the D65 white point.
_RGB2XYZ: Final = ((0.4124564, 0.3575761, 0.1804375),
                   (0.2126729, 0.7151522, 0.0721750),
                   (0.0193339, 0.1191920, 0.9503041))
_WHITE: Final = (0.95047, 1.0, 1.08883)
_DELTA: Final = 6 / 29


def _matrix(values: tuple[tuple[float, ...], ...], like: Tensor, inverse: bool = False) -> Tensor:
    m = torch.tensor(values, dtype=torch.float64)
    return (torch.linalg.inv(m) if inverse else m).to(like.dtype).to(like.device)


def srgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [-1, 1] -> CIE Lab (D65; L in [0, 100]): (B, 3, H, W) -> (B, 3, H, W), same dtype."""
    u = ((rgb + 1) * 0.5).clamp(0, 1)
    lin = torch.where(u <= 0.04045, u / 12.92, ((u + 0.055) / 1.055) ** 2.4)
    white = torch.tensor(_WHITE, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    xyz = torch.einsum("ij,bjhw->bihw", _matrix(_RGB2XYZ, rgb), lin) / white
    f = torch.where(xyz > _DELTA**3, xyz.clamp(min=1e-12) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29)
    return torch.stack((116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])), 1)


def lab_to_srgb(lab: Tensor) -> Tensor:
    """CIE Lab (D65) -> sRGB in [-1, 1], clamped to the gamut: (B, 3, H, W) -> (B, 3, H, W), same dtype."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack((fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200), 1)
    white = torch.tensor(_WHITE, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    xyz = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29)) * white
    lin = torch.einsum("ij,bjhw->bihw", _matrix(_RGB2XYZ, lab, inverse=True), xyz).clamp(min=0)
    srgb = torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp(min=1e-12) ** (1 / 2.4) - 0.055)
    return srgb.clamp(0, 1) * 2 - 1


def _constants() -> dict[str, Tensor]:
    """The fixed tensors of :class:`ClassColourPrior`'s forward (float32): the colour-space matrices for row
    vectors (x @ M; the D65 white folded in)."""
    rgb2xyz, white = torch.tensor(_RGB2XYZ, dtype=torch.float64), torch.tensor(_WHITE, dtype=torch.float64)
    f_to_lab = torch.tensor([[0.0, 116, 0], [500, -500, 0], [0, 200, -200]], dtype=torch.float64)
    lab_to_f = torch.linalg.inv(f_to_lab)
    consts = {
        "to_xyz": (rgb2xyz / white[:, None]).T,
        "to_lab": f_to_lab.T,
        "lab_bias": torch.tensor([-16.0, 0, 0], dtype=torch.float64),
        "to_f": lab_to_f.T,
        "to_linear": (torch.linalg.inv(rgb2xyz) * white[None, :]).T,
    }
    return {k: v.float().contiguous() for k, v in consts.items()}


def _lab_f(t: Tensor) -> Tensor:
    """CIE f(t): cbrt(t) above delta^3, its tangent t / (3 delta^2) + 4/29 below, written as
    cbrt(max(t, delta^3)) + (min(t, delta^3) - delta^3) / (3 delta^2) (clamps, no ``where``: cheaper in ORT)."""
    knee = _DELTA**3
    return t.clamp(min=knee).log().mul(1 / 3).exp() + (t.clamp(max=knee) - knee) * (1 / (3 * _DELTA**2))


def _lab_f_inverse(f: Tensor) -> Tensor:
    """f^-1: max(f, delta)^3 + 3 delta^2 (min(f, delta) - delta)."""
    high = f.clamp(min=_DELTA)
    return high * high * high + (f.clamp(max=_DELTA) - _DELTA) * (3 * _DELTA**2)


def _moments(centred: Tensor) -> Tensor:
    """(B, N, 3) -> (B, N, 7): [1, x, x^2] per pixel, for count, first and second moment sums."""
    return torch.cat([torch.ones_like(centred[..., :1]), centred, centred * centred], -1)


def _decode_srgb(srgb: Tensor) -> Tensor:
    """sRGB in [-1, 1] -> linear light: with u = (srgb + 1) / 2 clamped to [0, 1] and u0 = 0.04045,
    ((max(u, u0) + 0.055) / 1.055)^2.4 + (min(u, u0) - u0) / 12.92 (the two pieces meet at u0 to 1e-7)."""
    u0 = 0.04045
    u = srgb.mul(0.5).add(0.5).clamp(0, 1)
    power = u.clamp(min=u0).add(0.055).mul(1 / 1.055).log().mul(2.4).exp()
    return power + (u.clamp(max=u0) - u0) * (1 / 12.92)


def _encode_srgb(linear: Tensor) -> Tensor:
    """Linear light (>= 0) -> sRGB in [-1, 1] (before clamping): 2 (1.055 max(v, v0)^(1/2.4) - 0.055 +
    12.92 (min(v, v0) - v0)) - 1 with v0 = 0.0031308 (the two pieces meet at v0 to 3e-5)."""
    v0 = 0.0031308
    power = linear.clamp(min=v0).log().mul(1 / 2.4).exp()
    return power * (2 * 1.055) + (linear.clamp(max=v0) - v0) * (2 * 12.92) - (1 + 2 * 0.055)


class ClassColourPrior(nn.Module):
    """Per-class affine Lab map (module docstring), fixed (``per_frame=False``: buffers ``gain`` and ``offset``
    (256, 3), row = train id) or fitted to each frame (``per_frame=True``: buffers ``class_of_id`` (256,) train id
    -> class row, and per class row (FRAME_ROWS, 3) ``real_mean`` / ``real_std`` / ``source_mean`` /
    ``source_std`` in Lab, ``adapts`` (FRAME_ROWS,) 1 where a row follows the frame); ``fitted`` (1,).
    ``thing_chroma``: thing classes keep their Lab a and b (module docstring).

    The forward pass is the Lab round trip of :func:`srgb_to_lab` / :func:`lab_to_srgb` arranged for speed at
    full resolution (it runs on every pixel of every frame; 20 -> ~11 ms per 640x360 frame in ONNX Runtime on 2
    cores): pixels stay channels-last for the colour-space matrices, the piecewise curves are clamps instead of
    ``where``, powers are exp / log (a 256-entry linearisation table read by 8-bit level cost 2-5 ms more per frame:
    ONNX Runtime's Gather of single floats is slow). The fixed prior equals the reference functions to ~1e-5, the
    per-frame one a float64 reference of its equations to 2e-3 (``test/test_colour_prior*.py``).
    """

    fitted: Tensor

    def __init__(self, per_frame: bool = False, pooled_share: float = 0.01, *, thing_chroma: bool = False,
                 marking_ids: tuple[int, ...] = ()) -> None:
        super().__init__()
        if not 0.0 < pooled_share <= 1.0:
            raise ValueError(f"pooled_share must be in (0, 1], got {pooled_share}")
        if marking_ids and not per_frame:
            raise ValueError("marking_ids need the per-frame prior (the marking weight reads the frame's class means)")
        if any(not 0 <= i < PRIOR_ROWS for i in marking_ids):
            raise ValueError(f"marking_ids must be train ids in [0, {PRIOR_ROWS}), got {marking_ids}")
        self.per_frame, self.pooled_share, self.thing_chroma = per_frame, float(pooled_share), thing_chroma
        self.marking_ids = tuple(marking_ids)
        if per_frame:
            self.register_buffer("class_of_id", torch.full((PRIOR_ROWS,), FRAME_ROWS - 1, dtype=torch.long))
            for name, fill in (("real_mean", 0.0), ("real_std", 1.0), ("source_mean", 0.0), ("source_std", 1.0)):
                self.register_buffer(name, torch.full((FRAME_ROWS, 3), fill))
            self.register_buffer("adapts", torch.zeros(FRAME_ROWS))
        else:
            self.register_buffer("gain", torch.ones(PRIOR_ROWS, 3))
            self.register_buffer("offset", torch.zeros(PRIOR_ROWS, 3))
        self.register_buffer("fitted", torch.zeros(1))
        for name, value in _constants().items():  # derived constants: not part of the state dict
            self.register_buffer(f"_{name}", value, persistent=False)
        self.register_buffer("_rows", torch.arange(FRAME_ROWS), persistent=False)
        self.register_buffer("_thing_ids", torch.tensor(sorted(THING_CLASSES)), persistent=False)

    @torch.no_grad()
    def set_maps(self, gain: Tensor, offset: Tensor) -> None:
        """Install fitted maps of the fixed prior: gain, offset (256, 3) (row = train id); marks it fitted."""
        if self.per_frame:
            raise ValueError("a per-frame colour prior takes class statistics (set_statistics), not maps")
        if gain.shape != (PRIOR_ROWS, 3) or offset.shape != (PRIOR_ROWS, 3):
            raise ValueError(f"colour prior maps must be ({PRIOR_ROWS}, 3), got {tuple(gain.shape)} and "
                             f"{tuple(offset.shape)}")
        if not (torch.isfinite(gain).all() and torch.isfinite(offset).all()):
            raise ValueError("colour prior maps must be finite")
        self.gain.copy_(gain)
        self.offset.copy_(offset)
        self.fitted.fill_(1.0)

    @torch.no_grad()
    def set_statistics(self, class_of_id: Tensor, real: tuple[Tensor, Tensor], source: tuple[Tensor, Tensor],
                       adapts: Tensor) -> None:
        """Install the per-frame prior's tables: ``class_of_id`` (256,) ints in [0, FRAME_ROWS); ``real`` and
        ``source`` = (mean, std) (FRAME_ROWS, 3) Lab each (the pooled source statistics); ``adapts``
        (FRAME_ROWS,) bool / 0-1. Marks the prior fitted. Raises ValueError for wrong shapes, ids out of
        range, or non-finite / negative statistics."""
        if not self.per_frame:
            raise ValueError("a fixed colour prior takes maps (set_maps), not class statistics")
        if class_of_id.shape != (PRIOR_ROWS,) or not bool(((class_of_id >= 0) & (class_of_id < FRAME_ROWS)).all()):
            raise ValueError(f"class_of_id must be ({PRIOR_ROWS},) ints in [0, {FRAME_ROWS})")
        tables = (*real, *source)
        if adapts.shape != (FRAME_ROWS,) or any(t.shape != (FRAME_ROWS, 3) for t in tables):
            raise ValueError(f"colour prior statistics must be ({FRAME_ROWS}, 3) and adapts ({FRAME_ROWS},)")
        if not all(bool(torch.isfinite(t).all()) for t in tables) or bool((real[1] < 0).any() | (source[1] < 0).any()):
            raise ValueError("colour prior statistics must be finite, the standard deviations >= 0")
        self.class_of_id.copy_(class_of_id.long())
        for name, value in zip(("real_mean", "real_std", "source_mean", "source_std"), tables, strict=True):
            getattr(self, name).copy_(value)
        self.adapts.copy_(adapts.float())
        self.fitted.fill_(1.0)

    def frame_statistics(self, sampled: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The per-frame maps (module docstring) and the class means mu_k they map from: sampled (B, h, w, 3) the
        Lab of the sampled pixels (``lab[:, ::STATS_STRIDE, ::STATS_STRIDE]`` of the frame's), rows (B, h, w) their
        class rows -> (gain, offset, mu_k), (B, FRAME_ROWS, 3) each."""
        rows = rows.reshape(sampled.shape[0], -1)  # (B, N)
        sampled = sampled.reshape(sampled.shape[0], -1, 3)  # (B, N, 3)
        member = (rows.unsqueeze(-1) == self._rows).to(sampled.dtype)  # (B, N, R)
        # (B, R, 7) sums of [1, x - mu_pooled, (x - mu_pooled)^2]: rows that adapt count their pixels ...
        sums = (member.transpose(1, 2) @ _moments(sampled - self.source_mean[rows])) * self.adapts[:, None]
        # ... and the no-class row every pixel (none before the fit: an unfitted prior stays the identity)
        every = _moments(sampled - self.source_mean[-1]).sum(1, keepdim=True) * self.fitted  # (B, 1, 7)
        sums = torch.cat([sums[:, :-1], every], 1)
        count, first, second = sums[..., :1], sums[..., 1:4], sums[..., 4:]
        weight = self.pooled_share * sampled.shape[1]
        mean = self.source_mean + first / (count + weight)
        within = (second - first * first / count.clamp(min=1)).clamp(min=0)  # n_k sigma_frame^2
        std = ((within + weight * self.source_std**2) / (count + weight)).sqrt()
        gain = (self.real_std / (std + STD_EPS)).clamp(1 / MAX_GAIN, MAX_GAIN)
        return gain, self.real_mean - gain * mean, mean

    def forward(self, rgb: Tensor, semantic: Tensor) -> Tensor:
        """rgb (B, 3, H, W) in [-1, 1], semantic (B, H, W) train ids -> (B, 3, H, W) in
        [-1, 1], float32, also under autocast (fp16 / bf16 matrix products would shift colours by ~10 levels and
        overflow the per-frame sums). Works channels-last ((B, H, W, 3) rows times 3x3 matrices) inside; each pixel
        gathers its (gain, offset) from one (256, 6) table per frame."""
        return self.forward_with_markings(rgb, semantic)[0]

    def forward_with_markings(self, rgb: Tensor, semantic: Tensor) -> tuple[Tensor, Tensor | None]:
        """:meth:`forward`, also returning the marking weight m (B, 1, H, W) float32 (:mod:`~sim2real.translator.
        markings`; the painted pixels of ``marking_ids``, whose chroma deviation from their class this prior
        keeps; 0 for a class without a frame-following row of its own), None without ``marking_ids``."""
        with torch.autocast(rgb.device.type, enabled=False):
            return self._forward_fp32(rgb, semantic)

    def _forward_fp32(self, rgb: Tensor, semantic: Tensor) -> tuple[Tensor, Tensor | None]:
        f = _lab_f(_decode_srgb(rgb.float().permute(0, 2, 3, 1)) @ self._to_xyz)  # (B, H, W, 3)
        index = semantic.long().clamp(0, PRIOR_ROWS - 1)
        lab_unbiased = f @ self._to_lab  # Lab - lab_bias: the biases go into the offsets (_folded_offsets)
        if self.per_frame:
            s = STATS_STRIDE
            sampled = lab_unbiased[:, ::s, ::s] + self._lab_bias
            gain, offset, mean = self.frame_statistics(sampled, self.class_of_id[index[:, ::s, ::s]])
            gain, offset = self._chroma_kept(gain, offset)
            marking = self._marking_constants(gain, mean)
            table = torch.cat([gain, self._folded_offsets(gain, offset)], 2)[:, self.class_of_id].reshape(-1, 6)
            index = index + torch.arange(index.shape[0], device=index.device).view(-1, 1, 1) * PRIOR_ROWS
        else:
            gain, offset = self._chroma_kept(self.gain, self.offset)
            table = torch.cat([gain, self._folded_offsets(gain, offset)], 1)  # (256, 6)
            marking = []  # (marking_ids need the per-frame prior)
        maps = table[index]  # (B, H, W, 6)
        mapped = lab_unbiased * maps[..., :3] + maps[..., 3:]
        weight = None
        for label, (columns, marks) in zip(self.marking_ids, marking, strict=True):  # their pixels are disjoint
            member = (semantic == label).to(mapped.dtype) * marks
            mapped, class_weight = marked_lab(lab_unbiased, mapped, columns, member)
            weight = class_weight if weight is None else weight + class_weight
        if weight is not None:
            weight = weight.unsqueeze(1)  # (B, 1, H, W)
        linear = (_lab_f_inverse(mapped @ self._to_f) @ self._to_linear).clamp(min=0)
        return _encode_srgb(linear).clamp(-1, 1).permute(0, 3, 1, 2), weight

    def _marking_constants(self, gain: Tensor, mean: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per marking class: its :func:`~sim2real.translator.markings.marking_columns` (B, 1, 1, 6) from the
        frame's gains and class means (B, FRAME_ROWS, 3), and :meth:`_marks`; [] without ``marking_ids``."""
        if not self.marking_ids:
            return []
        columns = marking_columns(gain, mean)  # (B, FRAME_ROWS, 6)
        return [(columns[:, self.class_of_id[i]].view(-1, 1, 1, 6), self._marks(i)) for i in self.marking_ids]

    def _marks(self, train_id: int) -> Tensor:
        """1 (a 0-d tensor) when the marking class ``train_id`` has a class row of its own that follows the frame
        in a fitted prior, else 0: on the no-class row, a row without statistics or an unfitted prior, mu_k is not
        the class's own frame mean and no pixel is a marking."""
        row = self.class_of_id[train_id]
        return (row != FRAME_ROWS - 1).to(self.adapts.dtype) * self.adapts[row] * self.fitted[0]

    def _chroma_kept(self, gain: Tensor, offset: Tensor) -> tuple[Tensor, Tensor]:
        """``thing_chroma``: the maps (..., rows, 3) with gain 1 and offset 0 on Lab a and b in the rows of thing
        classes (per-frame prior: the class rows they map to, never the last, no-class row; fixed prior: their
        train ids), so those pixels keep their own chroma and only their lightness is mapped."""
        if not self.thing_chroma:
            return gain, offset
        rows = self.class_of_id[self._thing_ids] if self.per_frame else self._thing_ids
        thing = torch.zeros(gain.shape[-2], device=gain.device, dtype=gain.dtype).index_fill(0, rows, 1.0)
        if self.per_frame:
            thing[-1] = 0.0  # the no-class row also maps every unlabelled pixel
        keep = thing[:, None] * gain.new_tensor([0.0, 1.0, 1.0])  # (rows, 3)
        return gain * (1 - keep) + keep, offset * (1 - keep)

    def _folded_offsets(self, gain: Tensor, offset: Tensor) -> Tensor:
        """Offsets (..., 3) of maps applied to Lab without its bias and read back to f without its bias. With
        lab = lab_u + lab_bias and f = (lab - lab_bias) @ to_f (the inverse of lab = f @ to_lab + lab_bias),
        gain * lab + offset -> gain * lab_u + (offset + (gain - 1) lab_bias): two full-resolution bias additions
        folded into the per-class table (ONNX Runtime also runs a bias-free 3x3 MatMul ~3x faster than the Gemm it
        fuses with a bias)."""
        return offset + (gain - 1) * self._lab_bias
