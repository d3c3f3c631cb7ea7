"""Calibrating the target camera's optics from labelled target frames at the start of a run (``camera_calibration``).

A translator trained adversarially learns too little of a camera's optics: on the learnability check the camera
settles at a blur of 0.5 px and a vignetting of a = 0.075 against the look's 1.1 px and 0.4 in linear light
(docs/BENCHMARKS.md), and the model's colours score 2.1 dB better under the look's own optics. Like the colour
prior, the optics can instead be measured from the labelled target frames, in the camera model's own
parametrisation (:class:`~sim2real.translator.camera.CameraModel`, whose optics act on u^gamma, u = (x + 1) / 2
the display value):

- **vignetting**: per class k and radial bin j (r = distance to the frame centre / half-diagonal), the log ratio
  of the target's to the source's mean luma of u^gamma, ``log T_kj - log S_kj = c_k + e_j`` (weighted least
  squares, e = 0 in the first bin used: the class term takes the per-class colour change, the bin term the radial
  gain); then ``exp(e_j) = s (1 - a r_j^2 - b r_j^4)`` by least squares for (s, a, b). Assumes the two domains'
  scenes vary with radius alike within a class; the simulator's own radial variation cancels.
- **blur**: the edge sharpness of label boundaries, ``rho`` = the largest display-luma step between neighbouring
  pixels within 1 px of a boundary over the step between the two sides' means (3-6 px away), the median over the
  boundaries with a clear step (:func:`edge_sharpness`). The source frames are put through the camera's own blur
  at a trial width until their sharpness matches the target's (bisection): what is calibrated is exactly the
  operation the model applies, including the source's own antialiasing.

Both assume the camera's tone curve is the identity, as it is when the run starts; a run that freezes the optics
and learns the tone curve moves the effective vignetting a little. Chromatic aberration is not calibrated (its
share of the learnability gap is the smallest). Label boundaries drawn by hand (CamVid) sit a pixel or so off the
image edge, which makes a camera read blurrier; texture and noise on the target make it read sharper.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from torch import Tensor, nn

from sim2real.core.errors import ConfigError
from sim2real.data.transforms import resize_pair
from sim2real.training.config import CameraCalibrationConfig, TrainConfig
from sim2real.translator.camera import CameraModel

__all__ = ["BLUR_FRAMES", "CalibratedOptics", "RadialLuma", "calibrate_from_config", "calibrate_generators",
           "calibrate_optics", "edge_sharpness", "fit_blur", "fit_vignetting", "install_optics", "radial_luma"]

#: Rec. 709 luminance weights: the vignetting ratio is taken on u^gamma, linear light for gamma 2.2 (the project's
#: ``core.colour.LUMA_WEIGHTS`` are Rec. 601 weights for gamma-encoded values)
_LUMA: Final = (0.2126, 0.7152, 0.0722)
RADIAL_BINS: Final = 8
#: inner and outer extent of each side of a boundary whose mean gives the step (px), and the pixels either side of
#: the boundary between x and x + 1 whose neighbour differences are searched (2: x - 1 .. x + 2, three differences)
_SIDE: Final = (3, 6)
_WINDOW: Final = 2
#: a boundary counts when the step between its sides is at least this (display units in [0, 1])
MIN_STEP: Final = 0.08
MIN_CELL_PIXELS: Final = 200
BLUR_RANGE: Final = (0.05, 3.0)
#: frames of each domain the blur is measured on (the vignetting takes every frame given)
BLUR_FRAMES: Final = 32


def _luma(rgb: Tensor, gamma: float = 1.0) -> Tensor:
    """rgb (3, H, W) in [-1, 1] -> luma (H, W) in [0, 1] of u^gamma (u the display value; the camera's working
    values)."""
    u = ((rgb.float() + 1) * 0.5).clamp(min=0) ** gamma
    return sum(w * u[c] for c, w in enumerate(_LUMA))


def _radius2(height: int, width: int) -> Tensor:
    """(H, W) squared distance of each pixel centre to the frame centre over the squared half-diagonal."""
    y = torch.arange(height, dtype=torch.float32) + 0.5 - height / 2
    x = torch.arange(width, dtype=torch.float32) + 0.5 - width / 2
    return (y[:, None] ** 2 + x[None] ** 2) / ((height**2 + width**2) / 4)


@dataclass(frozen=True)
class RadialLuma:
    """Luma sums, pixel counts, r^2 and r^4 sums per class and radial bin (arrays (K, J)) of a set of frames."""

    luma: np.ndarray
    pixels: np.ndarray
    r2: np.ndarray
    r4: np.ndarray


def radial_luma(frames: Iterable[tuple[Tensor, Tensor]], classes: int, bins: int = RADIAL_BINS, gamma: float = 1.0
                ) -> RadialLuma:
    """Per class and radial bin (equal widths in r over [0, 1]) statistics of (rgb (3, H, W) in [-1, 1], labels
    (H, W) class ids in [0, classes), others ignored) frames, the luma of u^gamma (the camera's working values);
    sizes may differ."""
    sums = [np.zeros((classes, bins)) for _ in range(4)]  # luma, pixels, r^2, r^4
    for rgb, labels in frames:
        r2 = _radius2(*labels.shape)
        cell = (r2.sqrt() * bins).long().clamp(max=bins - 1)
        keep = (labels >= 0) & (labels < classes)
        index = (labels[keep].long() * bins + cell[keep]).numpy()
        for total, values in zip(sums, (_luma(rgb, gamma)[keep], torch.ones_like(r2[keep]), r2[keep], r2[keep] ** 2),
                                 strict=True):
            np.add(total, np.bincount(index, values.double().numpy(), minlength=classes * bins).reshape(classes, bins),
                   out=total)
    return RadialLuma(*sums)


def _bin_gains(target: RadialLuma, source: RadialLuma) -> tuple[np.ndarray, np.ndarray]:
    """The used cells (bool (K, J): at least MIN_CELL_PIXELS in both) and the radial gain exp(e_j) of every bin
    (NaN where unused), relative to the first bin used, from ``log T_kj - log S_kj = c_k + e_j`` by weighted least
    squares (weights sqrt of the smaller pixel count). Raises ConfigError when fewer than three bins are used or the
    classes do not link every used bin to the reference (the bin terms would not be determined)."""
    used = (target.pixels >= MIN_CELL_PIXELS) & (source.pixels >= MIN_CELL_PIXELS)
    cells = np.argwhere(used)
    bins_used = sorted({int(j) for _, j in cells})
    if len(bins_used) < 3:
        raise ConfigError(f"camera_calibration: only {len(bins_used)} radial bin(s) hold a class seen in both the "
                          "target and the source frames; vignetting needs three (more frames: "
                          "camera_calibration.max_frames / source_frames; or check camera_calibration.label_space)")
    classes = sorted({int(k) for k, _ in cells})
    column = {("k", k): i for i, k in enumerate(classes)}
    column.update({("j", j): len(classes) + i for i, j in enumerate(bins_used[1:])})  # bins_used[0]: reference
    design = np.zeros((len(cells), len(column)))
    ratio, weight = np.zeros(len(cells)), np.zeros(len(cells))
    for row, (k, j) in enumerate(cells):
        design[row, column[("k", int(k))]] = 1
        if ("j", int(j)) in column:
            design[row, column[("j", int(j))]] = 1
        ratio[row] = (np.log(target.luma[k, j] / target.pixels[k, j] + 1e-4)
                      - np.log(source.luma[k, j] / source.pixels[k, j] + 1e-4))
        weight[row] = np.sqrt(min(target.pixels[k, j], source.pixels[k, j]))
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise ConfigError("camera_calibration: the classes seen in both domains do not link every radial bin; "
                          "vignetting is not determined (more frames: camera_calibration.max_frames)")
    solution = np.linalg.lstsq(design * weight[:, None], ratio * weight, rcond=None)[0]
    gains = np.full(used.shape[1], np.nan)
    gains[bins_used] = np.exp(np.concatenate([[0.0], solution[len(classes):]]))
    return used, gains


def fit_vignetting(target: RadialLuma, source: RadialLuma) -> tuple[float, float]:
    """The vignetting (a, b) of the camera's gain 1 - a r^2 - b r^4 that turns the source's radial luma into the
    target's (module docstring): the bin gains of :func:`_bin_gains` fitted by ``s (1 - a r^2 - b r^4)`` at each
    bin's mean r^2 and r^4 over the cells used, clipped to the camera's range (|a|, |b| <= 0.49). Raises
    ConfigError when nothing can be fitted (:func:`_bin_gains`)."""
    used, gains = _bin_gains(target, source)
    bins = np.flatnonzero(~np.isnan(gains))
    pixels = (target.pixels * used)[:, bins].sum(0)
    r2, r4 = ((moment * used)[:, bins].sum(0) / pixels for moment in (target.r2, target.r4))
    design = np.stack([np.ones_like(r2), -r2, -r4], 1) * np.sqrt(pixels)[:, None]  # gain = s - (s a) r^2 - (s b) r^4
    s, sa, sb = np.linalg.lstsq(design, gains[bins] * np.sqrt(pixels), rcond=None)[0]
    return float(np.clip(sa / s, -0.49, 0.49)), float(np.clip(sb / s, -0.49, 0.49))


def _boundary_ratios(luma: Tensor, labels: Tensor) -> Tensor:
    """rho of every horizontal boundary of clean steps (module docstring) along the last axis: (H, W) -> (N,)."""
    inner, outer = _SIDE
    if labels.shape[-1] < 2 * outer:
        return luma.new_zeros(0)
    # (H, N, 2 outer): the window of columns x - outer + 1 .. x + outer about the boundary between x and x + 1
    lab = labels.unfold(-1, 2 * outer, 1)
    val = luma.unfold(-1, 2 * outer, 1)
    left, right = lab[..., :outer], lab[..., outer:]
    clean = ((left == left[..., -1:]).all(-1) & (right == right[..., :1]).all(-1)
             & (left[..., -1] != right[..., 0]) & (left[..., -1] >= 0) & (right[..., 0] >= 0))
    step = val[..., outer + inner - 1:].mean(-1) - val[..., : outer - inner + 1].mean(-1)
    diffs = val[..., outer - _WINDOW: outer + _WINDOW].diff(dim=-1)  # neighbour differences near the boundary
    jump = (diffs * step.sign()[..., None]).amax(-1)
    keep = clean & (step.abs() >= MIN_STEP)
    return (jump[keep] / step[keep].abs()).clamp(-1, 2)


def edge_sharpness(frames: Iterable[tuple[Tensor, Tensor]], what: str = "frames") -> float:
    """The median rho over the horizontal and vertical label boundaries of (rgb (3, H, W) in [-1, 1], labels (H, W),
    negative = none) frames, on display luma: 1 for a perfectly sharp step, ~0.35 for one blurred by a Gaussian of
    1.1 px. Raises ConfigError (naming ``what`` the frames are) when no boundary has a clear step."""
    ratios = []
    for rgb, labels in frames:
        luma = _luma(rgb)
        ratios += [_boundary_ratios(luma, labels), _boundary_ratios(luma.T, labels.T)]
    found = torch.cat(ratios) if ratios else torch.zeros(0)
    if found.numel() == 0:
        raise ConfigError(f"camera_calibration: no label boundary with a clear step in the {what}: cannot measure "
                          "their blur")
    return float(found.median())


def _blurred(frames: list[tuple[Tensor, Tensor]], sigma: float, gamma: float) -> list[tuple[Tensor, Tensor]]:
    """Frames through a camera with only a blur of ``sigma`` px (identity tone curve, no noise)."""
    camera = CameraModel(domains=1, gamma=gamma)
    camera.set_optics(0, chromatic_aberration=0.0, blur_sigma=sigma, vignette=(0.0, 0.0))
    with torch.no_grad():
        return [(camera(rgb[None].float(), 0)[0], labels) for rgb, labels in frames]


def fit_blur(target_sharpness: float, source: list[tuple[Tensor, Tensor]], gamma: float = 1.0,
             iterations: int = 9) -> float:
    """The blur width (px) of a camera working on u^gamma that gives the ``source`` frames (rgb, labels) the
    target's edge sharpness, by bisection in :data:`BLUR_RANGE` (sharpness falls as the blur grows; 9 halvings of
    its 2.95 px leave the answer within 0.003 px); the range's end when the target is sharper or blurrier than all
    of it."""
    lo, hi = BLUR_RANGE
    if edge_sharpness(_blurred(source, lo, gamma)) <= target_sharpness:
        return lo
    if edge_sharpness(_blurred(source, hi, gamma)) >= target_sharpness:
        return hi
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if edge_sharpness(_blurred(source, mid, gamma)) > target_sharpness else (lo, mid)
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class CalibratedOptics:
    """What :func:`calibrate_optics` measured: the camera's blur width (px) and vignetting (a, b), and the edge
    sharpness of the target and of the untouched source."""

    blur_sigma: float
    vignette: tuple[float, float]
    target_sharpness: float
    source_sharpness: float


def _keeping(frames: Iterable[tuple[Tensor, Tensor]], kept: list[tuple[Tensor, Tensor]], count: int
             ) -> Iterator[tuple[Tensor, Tensor]]:
    """``frames`` passed through, the first ``count`` of them also appended to ``kept``."""
    for frame in frames:
        if len(kept) < count:
            kept.append(frame)
        yield frame


def calibrate_optics(target: Iterable[tuple[Tensor, Tensor]], source: Iterable[tuple[Tensor, Tensor]],
                     classes: int, *, gamma: float, blur_frames: int = BLUR_FRAMES) -> CalibratedOptics:
    """Blur and vignetting of a target camera working on u^gamma (module docstring) from labelled target and
    source frames (rgb (3, H, W) in [-1, 1], labels (H, W) class ids of one label space in [0, classes), negative
    = none), each read once: the vignetting from all of them, the blur from the first ``blur_frames`` of each."""
    target_kept: list[tuple[Tensor, Tensor]] = []
    source_kept: list[tuple[Tensor, Tensor]] = []
    vignette = fit_vignetting(radial_luma(_keeping(target, target_kept, blur_frames), classes, gamma=gamma),
                              radial_luma(_keeping(source, source_kept, blur_frames), classes, gamma=gamma))
    sharp = edge_sharpness(target_kept, "target frames")
    return CalibratedOptics(fit_blur(sharp, source_kept, gamma), vignette, sharp,
                            edge_sharpness(source_kept, "source frames"))


def install_optics(camera: CameraModel, domain: int, optics: CalibratedOptics) -> None:
    """Set ``domain``'s blur and vignetting to the calibrated ones (aberration: none)."""
    camera.set_optics(domain, chromatic_aberration=0.0, blur_sigma=optics.blur_sigma, vignette=optics.vignette)


def _unaugmented(source: object) -> object:
    """``source`` without its training transform: crops would move the frame centre the vignetting is measured
    about, and random rescales blur the edges whose sharpness is matched. Raises ConfigError for a dataset that
    does not expose its transform (a wrapper: it could not be read unaugmented)."""
    if not hasattr(source, "transform"):
        raise ConfigError(f"camera_calibration: the source dataset ({type(source).__name__}) exposes no transform "
                          "to read it without augmentation")
    if source.transform is None:
        return source
    plain = copy.copy(source)
    plain.transform = None  # type: ignore[attr-defined]
    return plain


def _at_training_scale(frames: Iterable[tuple[Tensor, Tensor]], resize_short: int | None
                       ) -> Iterator[tuple[Tensor, Tensor]]:
    """Frames scaled as training scales them before its random factor (short side to ``resize_short`` with
    :func:`~sim2real.data.transforms.resize_pair`; None = as they are)."""
    for rgb, labels in frames:
        if resize_short is None or min(labels.shape) == resize_short:
            yield rgb, labels
            continue
        h, w = labels.shape
        scale = resize_short / min(h, w)
        image = ((rgb.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        size = max(1, round(h * scale)), max(1, round(w * scale))
        image, (ids,) = resize_pair(image, [labels.numpy().astype(np.int32)], *size)
        yield torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1, torch.from_numpy(ids).long()


def calibrate_from_config(cfg: CameraCalibrationConfig, source: object, *, resize_short: int | None,
                          gamma: float) -> CalibratedOptics:
    """The optics of a camera working on u^gamma, measured from ``cfg``'s labelled target frames and
    ``cfg.source_frames`` samples of ``source`` (a source dataset, read without its augmentation), both in
    ``cfg.label_space`` and scaled as training scales them (``resize_short``)."""
    from sim2real.training.colour_prior_fit import labelled_set, read_labelled_frames, source_frames

    pairs, lut, classes = labelled_set(cfg, "camera_calibration")

    def prepared(frames: Iterable[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
        for rgb, labels in _at_training_scale(frames, resize_short):  # ids outside the space (255 ignore) -> none
            yield rgb, torch.where((labels >= 0) & (labels < classes), labels, -1)

    return calibrate_optics(prepared(read_labelled_frames(pairs, cfg.max_frames, "camera_calibration")),
                            prepared(source_frames(_unaugmented(source), cfg.source_frames, lut)), classes,
                            gamma=gamma)


def calibrate_generators(cfg: TrainConfig, source: object, generators: Iterable[nn.Module],
                         log: Callable[[str], None]) -> CalibratedOptics:
    """At the start of a run: measure the target camera (``cfg.camera_calibration``, frames scaled by
    ``cfg.resize_short``, in the generators' ``camera_gamma``), set it on every generator (the model and its
    EMA) and log it."""
    from sim2real.translator.generator import domain_index

    started = time.monotonic()
    generators = list(generators)
    optics = calibrate_from_config(cfg.camera_calibration, source, resize_short=cfg.resize_short,
                                   gamma=generators[0].cfg.camera_gamma)
    for gen in generators:
        install_optics(gen.camera, domain_index("target"), optics)
    edge = " (the end of the range it is searched in)" if optics.blur_sigma in BLUR_RANGE else ""
    log(f"target camera calibrated in {time.monotonic() - started:.1f} s: blur {optics.blur_sigma:.2f} px{edge}, "
        f"vignetting (a, b) = ({optics.vignette[0]:.3f}, {optics.vignette[1]:.3f}); edge sharpness "
        f"{optics.target_sharpness:.3f} (source {optics.source_sharpness:.3f})")
    return optics
