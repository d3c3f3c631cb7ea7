"""The class-wise colour prior: Lab conversions with known answers, the prior equal to the ``classwise_pooled``
baseline it is fitted as, where it acts in the generator, and fitting at training start (checkpoints and ONNX of
both prior kinds: test_colour_prior_per_frame.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from procedural_frames import procedural_frames as _frames

from sim2real.core.errors import ConfigError
from sim2real.evaluation.baselines import (
    classwise_transfer,
    fit_real_stats,
    fit_source_stats,
    pooled_lab_maps,
)
from sim2real.translator.colour_prior import ClassColourPrior, lab_to_srgb, srgb_to_lab
from sim2real.translator.config import get_generator_config
from sim2real.translator.generator import TranslatorGenerator


def _prior_like_baseline() -> tuple[ClassColourPrior, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A prior fitted as classwise_pooled on frames of one world (their colours shifted: the 'real' ones),
    mapping frames of another; returns (prior, rgb, semantic, baseline output)."""
    real_rgb, real_sem = _frames(6, seed=1)
    real_rgb = (real_rgb * torch.tensor([0.8, 0.9, 1.1]).view(1, 3, 1, 1) + 0.1).clamp(-1, 1)
    rgb, sem = _frames(4, seed=2)
    lut = torch.arange(256)
    stats = fit_real_stats(real_rgb, real_sem, num_classes=255)
    pooled = fit_source_stats(rgb, sem, class_lut=lut)
    expected = classwise_transfer(rgb, sem, stats, class_lut=lut, source_stats=pooled)
    prior = ClassColourPrior()
    prior.set_maps(*(t.float() for t in pooled_lab_maps(stats, pooled, lut)))
    return prior, rgb, sem, expected


def test_lab_conversion_known_values_and_round_trip() -> None:
    colours = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]]).view(3, 3, 1, 1)
    lab = srgb_to_lab(colours.double())[..., 0, 0]
    # white, sRGB red (L 53.24, a 80.09, b 67.20), black
    assert torch.allclose(lab, torch.tensor([[100.0, 0, 0], [53.24, 80.09, 67.20], [0, 0, 0]],
                                            dtype=torch.float64), atol=0.02)
    rgb = torch.rand(2, 3, 16, 16) * 2 - 1
    assert (lab_to_srgb(srgb_to_lab(rgb)) - rgb).abs().max() < 1e-4  # float32 throughout


def test_the_fitted_prior_is_the_pooled_classwise_baseline() -> None:
    prior, rgb, sem, expected = _prior_like_baseline()
    out = prior(rgb, sem)
    assert out.dtype == torch.float32
    assert (out - expected).abs().max() < 2e-3  # float32 here, float64 in the baseline
    assert (rgb - expected).abs().mean() > 0.03  # and the map does change the frames (the check can fail)


def test_the_fast_forward_equals_the_reference_lab_round_trip() -> None:
    torch.manual_seed(0)
    prior = ClassColourPrior()
    prior.set_maps(torch.rand(256, 3) * 0.6 + 0.7, torch.randn(256, 3) * 5)
    rgb = torch.randint(0, 256, (2, 3, 32, 48)).float() / 127.5 - 1  # 8-bit frames, dark levels included
    sem = torch.randint(0, 256, (2, 32, 48))
    gain, offset = (t[sem].permute(0, 3, 1, 2) for t in (prior.gain, prior.offset))
    reference = lab_to_srgb(srgb_to_lab(rgb.double()) * gain + offset).float()
    assert (prior(rgb, sem) - reference).abs().max() < 1e-4


def test_a_fresh_prior_is_the_identity_and_bad_maps_are_refused() -> None:
    rgb, sem = _frames(1, seed=3)
    unlabelled = torch.full_like(sem, 255)
    for per_frame in (False, True):  # the per-frame one also on unlabelled pixels (its frame-fitted no-class row)
        fresh = ClassColourPrior(per_frame=per_frame)
        for labels in (sem, unlabelled):
            assert (fresh(rgb, labels) - rgb).abs().max() < 1e-4 and fresh.fitted.item() == 0
    prior = ClassColourPrior()
    with pytest.raises(ValueError, match=r"\(256, 3\)"):
        prior.set_maps(torch.ones(19, 3), torch.zeros(19, 3))
    with pytest.raises(ValueError, match="finite"):
        prior.set_maps(torch.full((256, 3), float("nan")), torch.zeros(256, 3))


def _generator_pair() -> tuple[TranslatorGenerator, TranslatorGenerator]:
    """The same lite weights without and with a fitted prior."""
    torch.manual_seed(0)
    plain = TranslatorGenerator(get_generator_config("lite")).eval()
    with_prior = TranslatorGenerator(dataclasses.replace(plain.cfg, use_colour_prior=True)).eval()
    with_prior.load_state_dict(plain.state_dict(), strict=False)
    prior, *_ = _prior_like_baseline()
    with_prior.colour_prior.load_state_dict(prior.state_dict())
    return plain, with_prior


def test_the_prior_feeds_only_the_target_decoder_of_source_content() -> None:
    plain, with_prior = _generator_pair()
    rgb, sem = _frames(1, seed=4, size=(64, 96))
    with torch.no_grad():
        code = with_prior.encode_content(rgb, "source", sem)
        assert torch.equal(code.guide, rgb)
        assert (code.target_guide - with_prior.colour_prior(rgb, sem)).abs().max() == 0
        assert code.guide_for("target") is code.target_guide and code.guide_for("source") is code.guide
        assert with_prior.encode_content(rgb, "target").target_guide is None  # a real frame is not re-coloured
        assert with_prior.encode_content(rgb, "source").target_guide is None  # no labels, no prior
        # the source decoder (reconstruction) is untouched; the target translation changes
        style = plain.mean_style("source", 1)
        same = plain.decode(plain.encode_content(rgb, "source", sem), style, "source")
        assert torch.allclose(with_prior.decode(code, style, "source"), same, atol=1e-6)
        assert (with_prior.translate(rgb, sem, None) - plain.translate(rgb, sem, None)).abs().mean() > 0.02


def _write_labelled_folder(root: Path, rgb: torch.Tensor, sem: torch.Tensor) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    for i in range(rgb.shape[0]):
        frame = ((rgb[i] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        cv2.imwrite(str(images / f"f{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(labels / f"f{i:03d}.png"), sem[i].numpy().astype(np.uint8))
    return images, labels


def test_training_start_fits_the_prior_from_labelled_frames(tmp_path: Path) -> None:
    from sim2real.data.datasets import ProceduralSourceDataset
    from sim2real.training.config import ColourPriorConfig, load_train_config
    from sim2real.training.trainer import Trainer

    real_rgb, real_sem = _frames(4, seed=1)
    real_rgb = (real_rgb * 0.5 - 0.4).clamp(-1, 1)  # a darker 'real' domain
    images, labels = _write_labelled_folder(tmp_path / "real", real_rgb, real_sem)
    with pytest.raises(ConfigError, match="colour_prior.images"):
        load_train_config(None, ["generator.use_colour_prior=true"])
    with pytest.raises(ConfigError, match="one label folder per image folder"):
        ColourPriorConfig(images=(str(images),))
    overrides = [f"out_dir={tmp_path / 'run'}", "steps=1", "batch_size=1", "crop=[64,96]", "resize_short=null",
                 "amp=false", "device=cpu", "validation_judge=null", "generator.use_colour_prior=true",
                 f"colour_prior.images=[{images}]", f"colour_prior.labels=[{labels}]",
                 "colour_prior.label_space=train_id", "colour_prior.source_frames=4", f"target.paths=[{images}]"]
    cfg = load_train_config(None, overrides)
    from sim2real.data.datasets import ImageFolderDataset

    source = ProceduralSourceDataset(8, 96, 64, 0)
    logs: list[str] = []
    trainer = Trainer(cfg, source, ImageFolderDataset([str(images)]), None, log=logs.append, progress=False)
    prior = trainer.nets.gen.colour_prior
    assert prior.fitted.item() == 1 and torch.equal(trainer.nets.gen_ema.colour_prior.gain, prior.gain)
    rgb, sem = _frames(1, seed=0)
    lightness = srgb_to_lab(rgb)[:, 0], srgb_to_lab(prior(rgb, sem))[:, 0]
    assert lightness[1].mean() < lightness[0].mean() - 5  # darker real frames: the prior darkens the frame
    assert any("colour prior fitted" in line for line in logs)
    wrong = dataclasses.replace(cfg.colour_prior, labels=(str(tmp_path),))
    from sim2real.training.colour_prior_fit import fit_colour_prior

    with pytest.raises(ConfigError, match="have no label"):
        fit_colour_prior(wrong, source)


def test_the_prior_frames_count_as_training_targets_for_the_evaluation(tmp_path: Path) -> None:
    from sim2real.evaluation.provenance import paths_overlap, training_provenance
    from sim2real.translator.checkpoint import save_checkpoint

    _, with_prior = _generator_pair()
    config = {"generator": {"use_colour_prior": True}, "target": {"paths": ["real"]},
              "colour_prior": {"images": [str(tmp_path / "camvid" / "val" / "images")],
                               "labels": [str(tmp_path / "camvid" / "val" / "labels")]}}
    path = save_checkpoint(tmp_path / "m.safetensors", with_prior, with_prior.cfg, training_data={"config": config})
    targets = training_provenance(path)["target_paths"]
    assert targets[0] == "real" and any(paths_overlap(tmp_path / "camvid" / "val", p) for p in targets)
    config["generator"]["use_colour_prior"] = False  # a prior section without a prior is not training data
    path = save_checkpoint(tmp_path / "n.safetensors", with_prior, with_prior.cfg, training_data={"config": config})
    assert training_provenance(path)["target_paths"] == ["real"]


class _CyclingSource:
    """A map-style source of ``size`` flat grey frames whose level cycles with the index (period 4), as the
    procedural source cycles its four times of day; every pixel is class 0."""

    levels = (-0.6, -0.2, 0.2, 0.6)

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        level = self.levels[index % len(self.levels)]
        return {"rgb": torch.full((3, 4, 4), level), "semantic": torch.zeros(4, 4, dtype=torch.long)}


def test_the_source_samples_do_not_alias_with_a_dataset_that_cycles_by_index() -> None:
    from sim2real.evaluation.baselines import fit_stats_of_frames
    from sim2real.training.colour_prior_fit import sample_indices, source_frames

    indices = sample_indices(4000, 200)
    assert indices == sorted(set(indices)) and len(indices) == 200 and indices[0] >= 0 and indices[-1] < 4000
    assert indices == sample_indices(4000, 200)  # the same subset every run
    assert sample_indices(5, 200) == [0, 1, 2, 3, 4]
    for period in (2, 4, 5, 10):  # every 20th of 4000 (even spacing) hits one phase of each of these
        share = np.bincount(np.asarray(indices) % period, minlength=period) / len(indices)
        assert share.min() > 0.5 / period and share.max() < 1.5 / period, period
    assert len(set(np.asarray(indices) % 20)) == 20
    # known answer: the pooled lightness of the sampled frames is that of all four levels, not of one
    source = _CyclingSource(4000)
    sampled = fit_stats_of_frames(source_frames(source, 200, torch.arange(256)), num_classes=1)
    every = fit_stats_of_frames(((source[i]["rgb"], source[i]["semantic"]) for i in range(4)), num_classes=1)
    one_level = fit_stats_of_frames([(source[0]["rgb"], source[0]["semantic"])], num_classes=1)
    # L in 0..100, the four levels span ~55; the 200 drawn hold the phases 36 / 55 / 55 / 54 times (2.8 off)
    assert abs(sampled.class_mean[0, 0] - every.class_mean[0, 0]) < 4.0
    assert abs(sampled.class_std[0, 0] - every.class_std[0, 0]) < 4.0
    assert abs(one_level.class_mean[0, 0] - every.class_mean[0, 0]) > 15  # the control: one phase is far off
