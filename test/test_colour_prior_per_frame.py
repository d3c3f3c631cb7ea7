"""The per-frame colour prior: its maps against a float64 reference of the module docstring's equations, equal to
the fixed prior on the frames the pooled statistics came from, adapting to a simulator with other colours (the
fixed prior does not), unlabelled pixels mapped by the frame's global statistics, ONNX, and fine-tuning from a
fixed prior.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from procedural_frames import procedural_frames as _frames

from sim2real.core.errors import ConfigError
from sim2real.core.labels import THING_CLASSES
from sim2real.evaluation.baselines import fit_real_stats, fit_source_stats
from sim2real.training.colour_prior_fit import PriorStatistics, frame_tables, install_colour_prior
from sim2real.translator.colour_prior import FRAME_ROWS, STATS_STRIDE, ClassColourPrior, lab_to_srgb, srgb_to_lab
from sim2real.translator.config import GeneratorConfig, get_generator_config
from sim2real.translator.generator import TranslatorGenerator

LUT = torch.arange(256)


def _statistics(source_rgb: torch.Tensor, source_sem: torch.Tensor) -> PriorStatistics:
    """Real = frames of world 1 darkened and tinted; simulated = the given frames (train-id classes)."""
    real_rgb, real_sem = _frames(6, seed=1)
    real_rgb = (real_rgb * torch.tensor([0.8, 0.9, 1.1]).view(1, 3, 1, 1) + 0.1).clamp(-1, 1)
    real = fit_real_stats(real_rgb, real_sem, num_classes=255)
    return PriorStatistics(real, fit_source_stats(source_rgb, source_sem, class_lut=LUT), LUT)


def _priors(stats: PriorStatistics, share: float = 0.01) -> tuple[ClassColourPrior, ClassColourPrior]:
    fixed, per_frame = ClassColourPrior(), ClassColourPrior(per_frame=True, pooled_share=share)
    install_colour_prior(fixed, stats)
    install_colour_prior(per_frame, stats)
    return fixed, per_frame


def _reference(rgb: torch.Tensor, sem: torch.Tensor, stats: PriorStatistics, share: float) -> torch.Tensor:
    """The module docstring's equations in float64, one class at a time (frames of one image)."""
    class_of_id, mu_r, sd_r, mu_s, sd_s, adapts = (t.double() if t.is_floating_point() else t
                                                    for t in _flatten(frame_tables(stats)))
    lab = srgb_to_lab(rgb.double())[0]  # (3, H, W)
    rows = class_of_id[sem[0].long()]
    sample, sample_rows = lab[:, ::STATS_STRIDE, ::STATS_STRIDE].flatten(1), rows[::STATS_STRIDE, ::STATS_STRIDE]
    weight = share * sample.shape[1]
    out = torch.empty_like(lab)
    for row in rows.unique().tolist():
        px = sample[:, sample_rows.flatten() == row] if adapts[row] else sample[:, :0]
        if row == FRAME_ROWS - 1:  # the no-class row: the frame's global statistics
            px = sample
        n = px.shape[1]
        frame_mean, frame_var = (px.mean(1), px.var(1, unbiased=False)) if n else (mu_s[row], sd_s[row] ** 2)
        mean = (n * frame_mean + weight * mu_s[row]) / (n + weight)
        var = (n * frame_var + weight * sd_s[row] ** 2) / (n + weight)
        gain = (sd_r[row] / (var.sqrt() + 1e-6)).clamp(0.25, 4)
        mask = rows == row
        out[:, mask] = lab[:, mask] * gain[:, None] + (mu_r[row] - gain * mean)[:, None]
    return lab_to_srgb(out[None]).float()


def _flatten(tables: tuple) -> list[torch.Tensor]:
    class_of_id, real, source, adapts = tables
    return [class_of_id, *real, *source, adapts]


@pytest.mark.parametrize("share", [0.01, 0.5])
def test_per_frame_maps_match_the_reference_equations(share: float) -> None:
    rgb, sem = _frames(6, seed=2)
    stats = _statistics(rgb[:4], sem[:4])
    _, per_frame = _priors(stats, share)
    shifted = (rgb[4:] * 0.8 + 0.15).clamp(-1, 1)  # other colours than the pooled ones
    labels = sem[4:].clone()
    labels[:, :16, :24] = 255  # an unlabelled corner: the no-class row
    batch = per_frame(shifted, labels)  # two frames at once: each with its own statistics
    for i in range(2):
        frame, labels_i = shifted[i : i + 1], labels[i : i + 1]
        assert (batch[i : i + 1] - _reference(frame, labels_i, stats, share)).abs().max() < 2e-3
        assert torch.equal(batch[i : i + 1], per_frame(frame, labels_i))


def test_on_the_frames_of_the_pooled_statistics_it_equals_the_fixed_prior() -> None:
    """Pooled statistics fitted on one frame's sampled pixels: that frame's own statistics are the pooled ones,
    so the per-frame map is the fixed map, for any weight of the pooled statistics."""
    rgb, sem = _frames(1, seed=3, size=(64, 96))
    s = STATS_STRIDE
    stats = _statistics(rgb[:, :, ::s, ::s], sem[:, ::s, ::s])
    for share in (0.01, 1.0):
        fixed, per_frame = _priors(stats, share)
        assert (per_frame(rgb, sem) - fixed(rgb, sem)).abs().max() < 2e-3


def _class_means(rgb: torch.Tensor, sem: torch.Tensor, classes: list[int]) -> torch.Tensor:
    lab = srgb_to_lab(rgb)
    return torch.stack([lab.permute(1, 0, 2, 3)[:, sem == k].mean(1) for k in classes])


def test_it_adapts_to_a_simulator_with_other_colours_where_the_fixed_prior_does_not() -> None:
    rgb, sem = _frames(5, seed=2)
    stats = _statistics(rgb[:4], sem[:4])
    fixed, per_frame = _priors(stats)
    # another simulator: the same scene brighter and warmer (a CARLA-like photographic render)
    other = (rgb[4:] * torch.tensor([0.7, 0.75, 0.6]).view(1, 3, 1, 1) + torch.tensor([0.3, 0.2, 0.1]).view(
        1, 3, 1, 1)).clamp(-1, 1)
    labels = sem[4:]
    # classes of >= 15 % of the frame: the pooled statistics weigh <= 1/16 there (a smaller class is pulled
    # toward the pooled mean by design, and its shift is then scaled by the gain)
    classes = [int(k) for k in labels.unique() if (labels == k).sum() > 0.15 * labels.numel()
               and not np.isnan(stats.real.class_mean[int(k)]).any()]
    assert len(classes) >= 2
    real = torch.from_numpy(stats.real.class_mean[classes]).float()
    error_fixed = (_class_means(fixed(other, labels), labels, classes) - real).norm(dim=1)
    error_frame = (_class_means(per_frame(other, labels), labels, classes) - real).norm(dim=1)
    assert error_frame.max() < 4.0  # every large class lands near its real mean colour (Lab units; the fixed
    # prior misses by 15-38 here)
    assert error_fixed.mean() > 3 * error_frame.mean() + 3.0  # the fixed map carries the other colours along
    # and keeps its contrast: the lightness std of each large class lands on the real one (a moved class is not
    # flattened by the distance between its frame and pooled means)
    real_std = torch.from_numpy(stats.real.class_std[classes][:, 0]).float()
    lab = srgb_to_lab(per_frame(other, labels))[:, 0]
    out_std = torch.stack([lab[labels == k].std(unbiased=False) for k in classes])
    assert ((out_std - real_std).abs() / real_std).max() < 0.2, (out_std, real_std)


def test_unlabelled_pixels_follow_the_frame_as_a_whole() -> None:
    """Ignore / unknown ids take a global transfer fitted to the frame: a frame without labels lands on the real
    global statistics (whatever its colours), and an unlabelled region is mapped by the frame around it."""
    rgb, sem = _frames(5, seed=2)
    stats = _statistics(rgb[:4], sem[:4])
    fixed, per_frame = _priors(stats)
    class_of_id, *_ = frame_tables(stats)
    assert class_of_id[254] == FRAME_ROWS - 1 and class_of_id[255] == FRAME_ROWS - 1
    real_mean, real_std = (torch.from_numpy(x).float() for x in (stats.real.lab_mean, stats.real.lab_std))
    other = (rgb[4:] * torch.tensor([0.6, 0.7, 0.5]).view(1, 3, 1, 1) + 0.2).clamp(-1, 1)  # another simulator
    unlabelled = torch.full_like(sem[4:], 255)
    for i in range(other.shape[0]):
        lab = srgb_to_lab(per_frame(other[i : i + 1], unlabelled[i : i + 1]))[0].flatten(1)
        assert (lab.mean(1) - real_mean).abs().max() < 1.0, lab.mean(1)  # Lab units (the pooled share, sampling)
        # the spreads up to gamut clipping (b: 19.8 for 22.7 on frame 0, the clipped blues of the sky)
        assert ((lab.std(1, unbiased=False) - real_std).abs() / real_std).max() < 0.15, lab.std(1)
        pooled_map = srgb_to_lab(fixed(other[i : i + 1], unlabelled[i : i + 1]))[0].flatten(1)
        assert (pooled_map.mean(1) - real_mean).abs().max() > 5  # the training world's global map does not
    labels = sem[4:].clone()
    labels[:, :16, :16] = 254
    before = per_frame(other, labels)[..., :16, :16]
    brighter = other.clone()
    brighter[..., 16:, 16:] = (brighter[..., 16:, 16:] + 0.3).clamp(-1, 1)  # the rest of the frame brightens
    after = per_frame(brighter, labels)[..., :16, :16]
    assert torch.equal(other[..., :16, :16], brighter[..., :16, :16])
    assert srgb_to_lab(after)[:, 0].mean() < srgb_to_lab(before)[:, 0].mean() - 2  # mapped against a brighter frame


def test_bad_statistics_and_the_wrong_setter_are_refused() -> None:
    prior = ClassColourPrior(per_frame=True)
    ones, zeros = torch.ones(FRAME_ROWS, 3), torch.zeros(FRAME_ROWS, 3)
    ids = torch.zeros(256, dtype=torch.long)
    with pytest.raises(ValueError, match="class_of_id"):
        prior.set_statistics(torch.full((256,), FRAME_ROWS), (zeros, ones), (zeros, ones), torch.ones(FRAME_ROWS))
    with pytest.raises(ValueError, match="finite"):
        prior.set_statistics(ids, (zeros, -ones), (zeros, ones), torch.ones(FRAME_ROWS))
    with pytest.raises(ValueError, match=r"\(32, 3\)"):
        prior.set_statistics(ids, (zeros[:3], ones), (zeros, ones), torch.ones(FRAME_ROWS))
    with pytest.raises(ValueError, match="set_statistics"):
        prior.set_maps(torch.ones(256, 3), torch.zeros(256, 3))
    with pytest.raises(ValueError, match="set_maps"):
        ClassColourPrior().set_statistics(ids, (zeros, ones), (zeros, ones), torch.ones(FRAME_ROWS))
    with pytest.raises(ValueError, match="pooled_share"):
        ClassColourPrior(per_frame=True, pooled_share=0.0)
    with pytest.raises(ConfigError, match="colour_prior_pooled_share"):
        GeneratorConfig(colour_prior_pooled_share=0)
    assert prior.fitted.item() == 0  # nothing was installed


def _prior_generator(per_frame: bool, thing_chroma: bool = False) -> TranslatorGenerator:
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_generator_config("lite"), use_colour_prior=True, colour_prior_per_frame=per_frame,
                              colour_prior_thing_chroma=thing_chroma)
    gen = TranslatorGenerator(cfg).eval()
    rgb, sem = _frames(4, seed=2)
    install_colour_prior(gen.colour_prior, _statistics(rgb, sem))
    return gen


@pytest.mark.parametrize(("per_frame", "buffer"), [(False, "gain"), (True, "real_std")])
def test_both_prior_kinds_survive_checkpoint_and_onnx(tmp_path: Path, per_frame: bool, buffer: str) -> None:
    from sim2real.translator.checkpoint import build_generator, load_checkpoint, save_checkpoint
    from sim2real.translator.onnx_export import OnnxTranslator, export_onnx, onnx_parity

    gen = _prior_generator(per_frame)
    path = save_checkpoint(tmp_path / "prior.safetensors", gen, gen.cfg)
    loaded = build_generator(load_checkpoint(path, map_location="cpu")).eval()
    assert loaded.colour_prior.per_frame == per_frame and loaded.colour_prior.fitted.item() == 1
    assert torch.equal(getattr(loaded.colour_prior, buffer), getattr(gen.colour_prior, buffer))
    runner = OnnxTranslator(export_onnx(loaded, tmp_path / "prior.onnx", 64, 96), intra_op_threads=1)
    assert onnx_parity(loaded, runner) < 1e-3
    getattr(loaded.colour_prior, buffer).mul_(1.3)  # another prior: parity must see it
    assert onnx_parity(loaded, runner) > 1e-2


def test_fine_tuning_a_fixed_prior_model_into_a_per_frame_one(tmp_path: Path) -> None:
    from sim2real.core.errors import CheckpointError
    from sim2real.training.config import load_train_config
    from sim2real.training.networks import build_networks, load_initial_weights
    from sim2real.translator.checkpoint import save_checkpoint

    torch.manual_seed(0)
    fixed_cfg = dataclasses.replace(get_generator_config("lite"), use_colour_prior=True)
    fixed = TranslatorGenerator(fixed_cfg).eval()
    rgb, sem = _frames(4, seed=2)
    install_colour_prior(fixed.colour_prior, _statistics(rgb, sem))
    path = save_checkpoint(tmp_path / "fixed.safetensors", fixed, fixed_cfg)
    overrides = ["device=cpu", "validation_judge=null", "generator.use_colour_prior=true",
                 "colour_prior.images=[x]", "colour_prior.labels=[y]"]
    nets = build_networks(load_train_config(None, [*overrides, "generator.colour_prior_per_frame=true"]), "cpu")
    logs: list[str] = []
    load_initial_weights(nets, str(path), logs.append)
    state = nets.gen.state_dict()
    assert all(torch.equal(state[k], v) for k, v in fixed.state_dict().items() if not k.startswith("colour_prior."))
    assert nets.gen.colour_prior.per_frame and nets.gen.colour_prior.fitted.item() == 0  # the run fits its own
    assert any("another kind" in line for line in logs)
    other = build_networks(load_train_config(None, [*overrides, "generator.detail_channels=2"]), "cpu")
    with pytest.raises(CheckpointError, match="differs"):  # any other difference is still refused
        load_initial_weights(other, str(path), logs.append)
    no_detail = TranslatorGenerator(dataclasses.replace(fixed_cfg, detail_channels=0)).eval()
    install_colour_prior(no_detail.colour_prior, _statistics(rgb, sem))
    no_detail_path = save_checkpoint(tmp_path / "no_detail.safetensors", no_detail, no_detail.cfg)
    high = build_networks(load_train_config(None, [*overrides, "generator.detail_highpass=true"]), "cpu")
    with pytest.raises(CheckpointError, match="differs"):  # the loaded config with the run's high-pass is no valid
        load_initial_weights(high, str(no_detail_path), logs.append)  # config: still "differs", not a ConfigError
    from sim2real.training.networks import _load_generator

    no_prior = TranslatorGenerator(dataclasses.replace(fixed_cfg, use_colour_prior=False))
    with pytest.raises(CheckpointError, match="does not fit"):  # a missing prior is not "another kind"
        _load_generator(nets.gen, no_prior.state_dict(), path)
    partial = {k: v for k, v in fixed.state_dict().items() if k != "colour_prior.offset"}
    with pytest.raises(CheckpointError, match="does not fit"):  # nor is a prior missing one buffer
        _load_generator(TranslatorGenerator(fixed_cfg), partial, path)


def test_a_run_of_zero_steps_switches_a_trained_model_to_the_per_frame_prior(tmp_path: Path) -> None:
    """steps=0 with init_from: no optimiser step, the per-frame prior fitted, every other weight exported as is."""
    import cv2

    from sim2real.core.errors import CheckpointError
    from sim2real.data.datasets import ImageFolderDataset, ProceduralSourceDataset
    from sim2real.training.config import load_train_config
    from sim2real.training.trainer import Trainer
    from sim2real.translator.checkpoint import build_generator, load_checkpoint, save_checkpoint

    real_rgb, real_sem = _frames(3, seed=1)
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for i in range(3):
        frame = ((real_rgb[i] * 0.5 - 0.4 + 1) * 127.5).clamp(0, 255).round().byte().permute(1, 2, 0).numpy()
        cv2.imwrite(str(images / f"f{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(labels / f"f{i}.png"), real_sem[i].numpy().astype(np.uint8))
    common = ["batch_size=1", "crop=[64,96]", "resize_short=null", "amp=false", "device=cpu", "validation_judge=null",
              "generator.use_colour_prior=true", f"colour_prior.images=[{images}]", f"colour_prior.labels=[{labels}]",
              "colour_prior.label_space=train_id", "colour_prior.source_frames=4", f"target.paths=[{images}]"]
    torch.manual_seed(0)
    fixed = TranslatorGenerator(load_train_config(None, common).generator_config()).eval()
    path = save_checkpoint(tmp_path / "fixed.safetensors", fixed, fixed.cfg)
    with pytest.raises(ConfigError, match="steps must be an int >= 0"):
        load_train_config(None, [*common, "steps=-1"])
    with pytest.raises(ConfigError, match="needs init_from"):
        load_train_config(None, [*common, "steps=0"])
    with pytest.raises(ConfigError, match="colour_prior_per_frame needs use_colour_prior"):
        GeneratorConfig(colour_prior_per_frame=True)
    cfg = load_train_config(None, [*common, "steps=0", f"init_from={path}", f"out_dir={tmp_path / 'run'}",
                                   "generator.colour_prior_per_frame=true"])
    trainer = Trainer(cfg, ProceduralSourceDataset(8, 96, 64, 0), ImageFolderDataset([str(images)]), None,
                      log=lambda _: None, progress=False)
    assert trainer.fit() == {} and trainer.step == 0
    out = build_generator(load_checkpoint(trainer.export(tmp_path / "m.safetensors"), map_location="cpu"))
    assert out.colour_prior.per_frame and out.colour_prior.fitted.item() == 1
    state = out.state_dict()
    assert all(torch.equal(state[k], v) for k, v in fixed.state_dict().items() if not k.startswith("colour_prior."))
    # the shipped recipe's path: a training checkpoint directory, here per frame -> a fixed-prior run
    from sim2real.training.networks import build_networks, load_initial_weights

    directory = trainer.save_checkpoint()
    assert directory is not None and directory.is_dir()
    nets = build_networks(load_train_config(None, [*common, f"out_dir={tmp_path / 'again'}"]), "cpu")
    logs: list[str] = []
    load_initial_weights(nets, str(directory), logs.append)
    assert not nets.gen.colour_prior.per_frame and nets.gen.colour_prior.fitted.item() == 0
    assert sum("another kind" in line for line in logs) == 1
    again = nets.gen_ema.state_dict()
    assert all(torch.equal(again[k], v) for k, v in state.items() if not k.startswith("colour_prior."))
    # the directory's run config is compared like a file's: a field a run may change is logged, any other refused
    pooled = build_networks(load_train_config(None, [*common, "generator.coefficient_pooling=0.5"]), "cpu")
    logs.clear()
    load_initial_weights(pooled, str(directory), logs.append)
    assert any("generator.coefficient_pooling was 0.0, this run uses 0.5" in line for line in logs)
    colder = build_networks(load_train_config(None, [*common, "generator.memory_temperature=0.5"]), "cpu")
    with pytest.raises(CheckpointError, match="differs"):  # same shapes, so only the config can tell
        load_initial_weights(colder, str(directory), logs.append)
    from sim2real.training.networks import _directory_generator_config
    from sim2real.training.state_io import EXPORTED_GENERATOR

    assert _directory_generator_config(directory, logs.append) == trainer.nets.gen.cfg  # the exported file's
    (directory / EXPORTED_GENERATOR).unlink()
    logs.clear()  # unreadable: not compared, and the log says so
    assert _directory_generator_config(directory, logs.append) is None
    assert len(logs) == 1 and "not compared" in logs[0]


@pytest.mark.parametrize("per_frame", [False, True])
def test_the_prior_computes_in_fp32_under_autocast(per_frame: bool) -> None:
    """The fp16 / bf16 paths (CUDA inference and AMP training; CPU bf16 here): the prior's colour products and
    per-frame sums stay fp32 (in bf16 they moved colours by 12-18 levels)."""
    prior = _prior_generator(per_frame).colour_prior
    rgb, sem = _frames(1, seed=5, size=(128, 256))
    reference = prior(rgb, sem)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = prior(rgb, sem)
    assert out.dtype == torch.float32 and (out - reference).abs().max() < 1e-6


def test_a_moved_small_class_keeps_its_contrast() -> None:
    """A class on 4 % of the frame whose lightness moved 30 away from the pooled mean, with the pooled and real
    std: its gain stays ~1 (blending raw second moments instead gave 0.40: the move counted as contrast)."""
    prior = ClassColourPrior(per_frame=True)
    five, zero = torch.full((FRAME_ROWS, 3), 5.0), torch.zeros(FRAME_ROWS, 3)
    adapts = torch.zeros(FRAME_ROWS)
    adapts[0] = 1
    pooled_mean = zero.clone()
    pooled_mean[:, 0] = 50
    prior.set_statistics(torch.full((256,), FRAME_ROWS - 1), (pooled_mean, five), (pooled_mean, five), adapts)
    torch.manual_seed(0)
    lab = torch.zeros(1, 360, 640, 3)
    rows = torch.full((1, 360, 640), FRAME_ROWS - 1)
    rows[:, :, :26] = 0  # 4 % of the columns
    lab[..., 0] = torch.where(rows == 0, 80 + 5 * torch.randn(1, 360, 640), torch.tensor(50.0))
    s = STATS_STRIDE
    gain, offset, _ = prior.frame_statistics(lab[:, ::s, ::s], rows[:, ::s, ::s])
    assert abs(float(gain[0, 0, 0]) - 1.0) < 0.1
    mapped_mean = 80 * float(gain[0, 0, 0]) + float(offset[0, 0, 0])
    assert abs(mapped_mean - (50 + 0.2 * 30)) < 2.0  # the pooled mean keeps w / (n + w) = 0.2 of the move


@pytest.mark.parametrize("per_frame", [False, True])
def test_thing_chroma_keeps_the_chroma_of_thing_classes_and_maps_their_lightness(per_frame: bool) -> None:
    """``thing_chroma``: pixels of thing classes (here cars, recoloured blue, yellow and purple) keep their Lab a
    and b and get the same lightness as without it; every pixel of another class is mapped exactly as without it.
    Control: without it the cars' chroma moves."""
    rgb, sem = _frames(4, seed=3, size=(64, 96))
    stats = _statistics(*_frames(4, seed=5, size=(64, 96)))
    rgb = rgb[:1].clone()
    sem = sem[:1].clone()
    car = torch.zeros_like(sem, dtype=torch.bool)
    for colour, cols in (((-0.4, -0.3, 0.1), slice(0, 20)), ((0.2, 0.15, -0.3), slice(30, 50)),
                         ((0.0, -0.25, -0.25), slice(60, 80))):  # muted: mapped, they stay in the sRGB gamut
        rgb[:, :, 40:56, cols] = torch.tensor(colour).view(1, 3, 1, 1)
        sem[:, 40:56, cols] = 13  # car
        car[:, 40:56, cols] = True
    plain = ClassColourPrior(per_frame=per_frame)
    keeping = ClassColourPrior(per_frame=per_frame, thing_chroma=True)
    install_colour_prior(plain, stats)
    install_colour_prior(keeping, stats)
    source, mapped, kept = (srgb_to_lab(x)[0] for x in (rgb, plain(rgb, sem), keeping(rgb, sem)))
    inside = car[0] & (kept[0] > 5) & (kept[0] < 95)  # off the gamut's black and white ends
    assert inside.sum() > 500
    assert (kept[1:, inside] - source[1:, inside]).abs().max() < 0.5  # chroma kept (sRGB gamut rounding)
    assert (kept[0, inside] - mapped[0, inside]).abs().max() < 0.5  # lightness mapped as without the option
    assert (mapped[1:, inside] - source[1:, inside]).abs().max() > 5  # control: the plain prior moves chroma
    stuff = ~torch.isin(sem[0], torch.tensor(sorted(THING_CLASSES)))  # not a thing (the frame's people neither)
    assert torch.equal(plain(rgb, sem)[..., stuff], keeping(rgb, sem)[..., stuff])


def test_thing_chroma_leaves_the_no_class_row_alone() -> None:
    """A thing class without statistics maps to the last (no-class) row, which also maps every unlabelled
    pixel: that row keeps its chroma map."""
    rgb, sem = _frames(2, seed=3, size=(64, 96))
    stats = _statistics(rgb, torch.where(sem == 13, 255, sem))  # no car statistics: cars take the last row
    plain, keeping = ClassColourPrior(per_frame=True), ClassColourPrior(per_frame=True, thing_chroma=True)
    install_colour_prior(plain, stats)
    install_colour_prior(keeping, stats)
    assert int(plain.class_of_id[13]) == FRAME_ROWS - 1
    unlabelled = torch.full_like(sem[:1], 255)
    assert torch.equal(plain(rgb[:1], unlabelled), keeping(rgb[:1], unlabelled))


@pytest.mark.parametrize("per_frame", [False, True])
def test_thing_chroma_survives_checkpoint_and_onnx(tmp_path: Path, per_frame: bool) -> None:
    """The option travels in the checkpoint's config and exports: ONNX Runtime matches eager, and the graph
    differs from one without the option on frames with things (so the option is in the graph)."""
    from sim2real.translator.checkpoint import build_generator, load_checkpoint, save_checkpoint
    from sim2real.translator.onnx_export import OnnxTranslator, export_onnx, onnx_parity

    gen = _prior_generator(per_frame, thing_chroma=True)
    loaded = build_generator(load_checkpoint(save_checkpoint(tmp_path / "p.safetensors", gen, gen.cfg))).eval()
    assert loaded.colour_prior.thing_chroma
    runner = OnnxTranslator(export_onnx(loaded, tmp_path / "p.onnx", 64, 96), intra_op_threads=1)
    assert onnx_parity(loaded, runner) < 1e-3
    assert onnx_parity(_prior_generator(per_frame), runner) > 1e-2  # the same weights without the option


def test_thing_chroma_is_a_config_flag_a_zero_step_run_may_switch() -> None:
    from sim2real.training.networks import check_generator_config

    base = dataclasses.replace(get_generator_config("lite"), use_colour_prior=True, colour_prior_per_frame=True)
    switched = dataclasses.replace(base, colour_prior_thing_chroma=True)
    assert TranslatorGenerator(switched).colour_prior.thing_chroma
    check_generator_config(base, switched, Path("trained.safetensors"), lambda _: None)  # no error
    with pytest.raises(ConfigError, match="colour_prior_thing_chroma"):
        dataclasses.replace(base, colour_prior_thing_chroma="yes")
