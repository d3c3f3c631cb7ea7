"""Calibrating the target camera's blur and vignetting from labelled frames: known answers, negative controls,
refusals and the trainer's start (sim2real.training.camera_calibration)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sim2real.core.errors import ConfigError
from sim2real.training.camera_calibration import (
    RadialLuma,
    calibrate_from_config,
    calibrate_optics,
    edge_sharpness,
    fit_blur,
    fit_vignetting,
    radial_luma,
)
from sim2real.translator.camera import CameraModel

SIZE = (144, 256)


def _source(count: int = 12, seed: int = 0, size: tuple[int, int] = SIZE) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Procedural frames (rgb in [-1, 1], train ids with 255 -> -1) of ``size`` (H, W), three times of day."""
    from sim_bridge.procedural import ProceduralSimulator, SimConfig

    sims = [ProceduralSimulator(SimConfig(width=size[1], height=size[0], seed=seed, time_of_day=h))
            for h in (8.0, 12.0, 16.0)]
    frames = []
    for i in range(count):
        frame = sims[i % 3].frame(i * 7)
        labels = torch.from_numpy(frame.semantic.astype(np.int64))
        frames.append((torch.from_numpy(frame.rgb).permute(2, 0, 1).float() / 127.5 - 1,
                       torch.where(labels == 255, -1, labels)))
    return frames


def _camera(blur: float = 1e-3, vignette: tuple[float, float] = (0.0, 0.0), gamma: float = 1.0) -> CameraModel:
    camera = CameraModel(domains=1, gamma=gamma)
    camera.set_optics(0, chromatic_aberration=0.0, blur_sigma=blur, vignette=vignette)
    return camera


def _through(frames, camera: CameraModel, class_gain: float = 1.0):
    """Frames through ``camera`` (identity tone curve, no noise), every class's colour scaled by ``class_gain``
    for even train ids (a per-class colour change the class term must take)."""
    out = []
    with torch.no_grad():
        for rgb, labels in frames:
            u = (rgb + 1) / 2 * torch.where(labels % 2 == 0, class_gain, 1.0)
            out.append((camera(u[None] * 2 - 1, 0)[0], labels))
    return out


def test_the_vignetting_of_a_known_camera_is_recovered_despite_a_per_class_colour_change() -> None:
    source = _source()
    target = _through(source, _camera(vignette=(0.2, 0.05)), class_gain=0.7)
    a, b = fit_vignetting(radial_luma(target, 256), radial_luma(source, 256))
    assert a == pytest.approx(0.2, abs=0.01) and b == pytest.approx(0.05, abs=0.02)
    gain = 1 - a - b  # at the frame corner
    assert gain == pytest.approx(0.75, abs=0.01)
    # negative control: the same colour change without vignetting reads as none
    a0, b0 = fit_vignetting(radial_luma(_through(source, _camera(), class_gain=0.7), 256), radial_luma(source, 256))
    assert abs(a0) < 0.01 and abs(b0) < 0.01


def test_vignetting_needs_three_radial_bins_seen_in_both_domains() -> None:
    empty = RadialLuma(*(np.zeros((3, 8)) for _ in range(4)))
    with pytest.raises(ConfigError, match="radial bin"):
        fit_vignetting(empty, empty)
    # class 0 only near the centre, class 1 only near the corners: the bins of one are not tied to the other's
    pixels = np.zeros((2, 8))
    pixels[0, :3], pixels[1, 5:] = 1000, 1000
    split = RadialLuma(pixels * 0.5, pixels, pixels * 0.1, pixels * 0.01)
    with pytest.raises(ConfigError, match="do not link every radial bin"):
        fit_vignetting(split, split)


def test_edge_sharpness_falls_with_blur_and_a_known_blur_is_recovered() -> None:
    source = _source(8)
    sharp = edge_sharpness(source)
    blurred = {s: edge_sharpness(_through(source, _camera(blur=s))) for s in (0.5, 1.0, 1.5)}
    assert sharp > 0.9  # the simulator's edges are steps
    assert sharp > blurred[0.5] > blurred[1.0] > blurred[1.5]
    for sigma in (0.7, 1.3):  # two answers: the fit follows the blur, it does not return a constant
        measured = fit_blur(edge_sharpness(_through(source, _camera(blur=sigma))), source)
        assert measured == pytest.approx(sigma, abs=0.05)


def test_frames_without_a_clear_labelled_step_are_refused() -> None:
    flat = [(torch.zeros(3, *SIZE), torch.zeros(SIZE, dtype=torch.long))]
    with pytest.raises(ConfigError, match="no label boundary with a clear step in the target frames"):
        edge_sharpness(flat, "target frames")


def test_calibration_measures_a_camera_from_another_world_of_the_simulator() -> None:
    """Target and source from different worlds (the unpaired case): blur and corner gain near the truth."""
    target = _through(_source(24, seed=1), _camera(blur=1.2, vignette=(0.25, 0.0)))
    optics = calibrate_optics(iter(target), iter(_source(24, seed=0)), 256, gamma=1.0)
    assert optics.blur_sigma == pytest.approx(1.2, abs=0.1)
    assert 1 - sum(optics.vignette) == pytest.approx(0.75, abs=0.06)
    assert optics.source_sharpness > 0.9
    assert optics.target_sharpness < 0.5


def test_a_linear_light_camera_is_calibrated_in_its_own_gamma() -> None:
    """A target through a gamma-2.2 camera: calibrated with gamma 2.2 its optics come back; read with gamma 1
    (display values) the same frames give another vignetting (the parameter the camera must be given differs)."""
    source = _source(16)
    target = _through(source, _camera(blur=1.0, vignette=(0.3, 0.0), gamma=2.2))
    linear = calibrate_optics(iter(target), iter(source), 256, gamma=2.2)
    assert linear.blur_sigma == pytest.approx(1.0, abs=0.05)
    assert linear.vignette[0] == pytest.approx(0.3, abs=0.02) and abs(linear.vignette[1]) < 0.03
    display = calibrate_optics(iter(target), iter(source), 256, gamma=1.0)
    assert display.vignette[0] < 0.2  # on display values the same falloff is ~(1 - 0.3 r^2)^(1 / 2.2)


def test_frames_are_calibrated_at_the_scale_training_sees_them(tmp_path: Path) -> None:
    """Target frames at twice the source's size with a 2 px blur there: at ``resize_short`` (the training scale)
    the camera blurs 1 px; read at their own size, 2 px (the negative control)."""
    from sim2real.data.datasets import ProceduralSourceDataset
    from sim2real.training.config import CameraCalibrationConfig

    big = (2 * SIZE[0], 2 * SIZE[1])
    images, labels = _write_folder(tmp_path / "big", _through(_source(12, seed=1, size=big), _camera(blur=2.0)))
    cfg = CameraCalibrationConfig(True, (str(images),), (str(labels),), "train_id", 12, 12)
    source = ProceduralSourceDataset(12, SIZE[1], SIZE[0], 0)
    at_training_scale = calibrate_from_config(cfg, source, resize_short=SIZE[0], gamma=1.0)
    assert at_training_scale.blur_sigma == pytest.approx(1.0, abs=0.15)
    as_stored = calibrate_from_config(cfg, source, resize_short=None, gamma=1.0)
    assert as_stored.blur_sigma > 1.6


def _write_folder(root: Path, frames) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    for i, (rgb, ids) in enumerate(frames):
        image = ((rgb.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        cv2.imwrite(str(images / f"f{i:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(labels / f"f{i:03d}.png"), torch.where(ids < 0, 255, ids).numpy().astype(np.uint8))
    return images, labels


def test_training_start_calibrates_the_target_camera_of_both_generators(tmp_path: Path) -> None:
    from sim2real.data.datasets import ImageFolderDataset, ProceduralSourceDataset
    from sim2real.data.transforms import PairedTransform
    from sim2real.training.config import CameraCalibrationConfig, load_train_config
    from sim2real.training.trainer import Trainer
    from sim2real.translator.generator import domain_index

    real = _through(_source(16, seed=1), _camera(blur=1.0, vignette=(0.25, 0.0)))
    images, labels = _write_folder(tmp_path / "real", real)
    with pytest.raises(ConfigError, match="camera_calibration.images"):
        load_train_config(None, ["camera_calibration.enabled=true"])
    with pytest.raises(ConfigError, match="use_camera"):
        load_train_config(None, ["camera_calibration.enabled=true", f"camera_calibration.images=[{images}]",
                                 f"camera_calibration.labels=[{labels}]", "generator.use_camera=false"])
    with pytest.raises(ConfigError, match="one label folder per image folder"):
        CameraCalibrationConfig(images=(str(images),))
    cfg = load_train_config(None, [
        f"out_dir={tmp_path / 'run'}", "steps=1", "crop=[64,96]", "resize_short=null", "device=cpu",
        "validation_judge=null", "camera_calibration.enabled=true", f"camera_calibration.images=[{images}]",
        f"camera_calibration.labels=[{labels}]", "camera_calibration.label_space=train_id",
        "camera_calibration.source_frames=16", f"target.paths=[{images}]"])
    # the training transform crops and rescales: calibration must read the frames without it
    source = ProceduralSourceDataset(16, SIZE[1], SIZE[0], 0, transform=PairedTransform(crop=(64, 96)))
    logs: list[str] = []
    trainer = Trainer(cfg, source, ImageFolderDataset([str(images)]), None, log=logs.append, progress=False)
    target = domain_index("target")
    for gen in (trainer.nets.gen, trainer.nets.gen_ema):  # crops read as frames would move the centre
        optics = gen.camera.describe(target)
        assert optics["blur_sigma"] == pytest.approx(1.0, abs=0.1)
        assert 1 - sum(optics["vignette"]) == pytest.approx(0.75, abs=0.06)
    assert trainer.nets.gen.camera.describe(1 - target)["blur_sigma"] == pytest.approx(0.3, abs=1e-4)  # untouched
    assert source.transform is not None  # the training source keeps its transform
    assert any("target camera calibrated" in line for line in logs)
    with pytest.raises(ConfigError, match="camera_calibration: .* must both be folders"):
        calibrate_from_config(CameraCalibrationConfig(True, (str(images),), (str(tmp_path / "none"),)), source,
                              resize_short=None, gamma=1.0)
    with pytest.raises(ConfigError, match="exposes no transform"):  # a wrapper could not be read unaugmented
        calibrate_from_config(cfg.camera_calibration, [source[0]], resize_short=None, gamma=1.0)
