"""The detail path's class-mean high-pass (``detail_mean: class``): known answers of ``class_mean_removed``, a step at
a label edge kept a step where the box high-pass makes a band, rows without a sample, batches, the detail path,
config, a run switching it on, autocast."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from sim2real.core.errors import ConfigError
from sim2real.translator.coefficient_pooling import class_mean_removed
from sim2real.translator.config import GeneratorConfig, get_generator_config
from sim2real.translator.generator import DetailPath, TranslatorGenerator
from sim2real.translator.layers import box_mean

CELLS = (6, 8)  # a 24 x 32 frame in 4-pixel cells: centres at rows 2, 6, ..., 22 and columns 2, 6, ..., 30


def _blocks(grid: torch.Tensor) -> torch.Tensor:
    """(B, 6, 8) cell labels -> (B, 24, 32) pixel labels, 4 x 4 pixels per cell."""
    return grid.repeat_interleave(4, 1).repeat_interleave(4, 2)


def _reference(x: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """float64 loop over the rows' means at the cell centres (the function's docstring)."""
    x64, out = x.double(), torch.empty_like(x, dtype=torch.float64)
    ids = labels.clamp(0, 255)  # read as the colour prior reads them: a negative id is class 0
    rows = torch.where(ids < num_classes, ids, num_classes)
    for b in range(x.shape[0]):
        sampled, centres = x64[b, :, 2::4, 2::4], rows[b, 2::4, 2::4]
        for row in rows[b].unique():
            member = centres == row
            mean = sampled[:, member].mean(1) if member.any() else sampled.flatten(1).mean(1)
            out[b][:, rows[b] == row] = x64[b][:, rows[b] == row] - mean[:, None]
    return out


def test_a_step_at_a_label_edge_is_removed_without_the_band_the_box_leaves() -> None:
    """Left half class 0 at +0.3, right half class 1 at -0.2, plus a texture: the class mean takes each half's
    level off and keeps the texture up to the edge; the box high-pass leaves +/- bands beside the edge (a halo)."""
    labels = torch.zeros(1, 24, 32, dtype=torch.long)
    labels[..., 16:] = 1
    texture = 0.05 * torch.sin(torch.arange(32.0) * 2.1).expand(1, 3, 24, 32)
    step = torch.where(labels.unsqueeze(1) == 0, 0.3, -0.2).expand(1, 3, 24, 32)
    out = class_mean_removed(step + texture, labels, CELLS, 19)
    sampled = texture[..., 2::4, 2::4]
    expected = texture - torch.where(labels.unsqueeze(1) == 0, sampled[..., :4].mean(), sampled[..., 4:].mean())
    assert torch.allclose(out, expected, atol=1e-6)
    box = (step + texture) - box_mean(step + texture, 9)
    assert (box - texture)[..., 12:20].abs().min() > 0.05  # the band, 1-4 px either side of the edge
    assert (out - texture)[..., 12:20].abs().max() < 0.02  # what is left: each half's texture mean


def test_class_box_keeps_the_box_high_pass_inside_each_class_and_takes_the_steps_band_off() -> None:
    """``class_box``: the class means first, then the box. Inside a class (the box within one label) it is the
    box high-pass of r exactly; beside the edge the band of the +0.3 / -0.2 step is gone: what is left is the box
    high-pass of the texture alone (with its class means off), as if there were no step."""
    labels = torch.zeros(1, 24, 32, dtype=torch.long)
    labels[..., 16:] = 1
    texture = 0.05 * torch.sin(torch.arange(32.0) * 2.1).expand(1, 3, 24, 32)
    r = torch.where(labels.unsqueeze(1) == 0, 0.3, -0.2) + texture
    centred = class_mean_removed(r, labels, CELLS, 19)
    expected = centred - box_mean(centred, 9)
    box = r - box_mean(r, 9)
    assert torch.allclose(expected[..., :12], box[..., :12], atol=1e-6)  # the box within one label: unchanged
    assert torch.allclose(expected[..., 20:], box[..., 20:], atol=1e-6)
    no_step = class_mean_removed(texture, labels, CELLS, 19)
    assert torch.allclose(expected, no_step - box_mean(no_step, 9), atol=1e-6)  # the step leaves nothing
    assert (box - expected)[..., 12:20].abs().min() > 0.05  # where the box alone leaves its band


def test_it_matches_a_float64_reference_with_thin_classes_other_ids_and_two_frames() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 24, 32)
    labels = _blocks(torch.randint(0, 4, (2, 6, 8)))
    labels[0, :, 0] = 7  # a thin class no cell centre hits: the frame mean
    labels[0, 10:14, 10:14] = 255  # ignore, void and an id past num_classes: one row
    labels[0, 0:4, 24:28] = 19
    labels[1, 16:20, 0:4] = -1  # class 0
    labels[1] = labels[1].flip(-1)  # the two frames' classes lie elsewhere
    out = class_mean_removed(x, labels, CELLS, 19)
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), _reference(x, labels, 19), atol=1e-5)
    other = x.clone()
    other[1] += 5.0  # the second frame's values do not reach the first frame's means
    assert torch.allclose(class_mean_removed(other, labels, CELLS, 19)[0], out[0], atol=1e-6)
    thin = out[0, :, :, 0] - (x[0, :, :, 0] - x[0, :, 2::4, 2::4].mean((1, 2))[:, None])
    assert thin.abs().max() < 1e-5
    assert not torch.allclose(out, class_mean_removed(x, labels, CELLS, 2), atol=1e-3)  # 2, 3 join the other row


def test_per_pixel_labels_the_last_class_beside_other_ids_and_the_gradient() -> None:
    """Labels that change at every pixel (so a cell's label is its centre pixel's, not its block's), class 18
    (num_classes - 1) beside ids 19 and 255 (which share a row apart from it), and gradients: d out / d x through
    the means, as the float64 reference's autograd gives them."""
    torch.manual_seed(3)
    labels = torch.randint(16, 20, (2, 24, 32))
    labels[labels == 19] = torch.tensor([19, 255])[torch.randint(0, 2, (int((labels == 19).sum()),))]
    x = torch.randn(2, 3, 24, 32, dtype=torch.float64, requires_grad=True)
    out = class_mean_removed(x, labels, CELLS, 19)
    reference = _reference(x.detach(), labels, 19)
    assert torch.allclose(out.double(), reference, atol=1e-5)
    assert not torch.allclose(out.double(), _reference(x.detach(), labels, 20), atol=1e-3)  # 19 its own class
    weights = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    x64 = x.detach().clone().requires_grad_(True)  # the reference, differentiated by autograd
    (expected,) = torch.autograd.grad((_reference(x64, labels, 19) * weights.double()).sum(), x64)
    assert torch.allclose(grad.double(), expected, atol=1e-5)


def test_every_row_is_zero_mean_at_the_samples_and_no_labels_gives_the_frame_mean() -> None:
    torch.manual_seed(1)
    x = torch.randn(1, 3, 24, 32) + torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1)
    labels = _blocks(torch.randint(0, 3, (1, 6, 8)))
    out = class_mean_removed(x, labels, CELLS, 19)
    centres, sampled = labels[0, 2::4, 2::4], out[0, :, 2::4, 2::4]
    for row in centres.unique():
        assert sampled[:, centres == row].mean(1).abs().max() < 1e-6
    unlabelled = class_mean_removed(x, None, CELLS, 19)
    assert torch.allclose(unlabelled, x - x[..., 2::4, 2::4].mean((2, 3), keepdim=True), atol=1e-6)
    assert not torch.allclose(out, unlabelled, atol=1e-2)  # the labels matter


def test_the_detail_path_takes_the_class_mean_off_and_keeps_its_dtype_under_autocast() -> None:
    torch.manual_seed(2)
    guide, features = torch.randn(1, 3, 24, 32), torch.randn(1, 4, 6, 8)
    labels = _blocks(torch.randint(0, 3, (1, 6, 8)))
    plain, by_class = DetailPath(4, 8), DetailPath(4, 8, highpass=9, mean="class")
    with torch.no_grad():
        torch.nn.init.normal_(plain.out.weight, std=0.3)
        plain.out.bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
        by_class.load_state_dict(plain.state_dict())
        r = plain(guide, features, None)[0]
        assert torch.allclose(by_class(guide, features, None, labels)[0], class_mean_removed(r, labels, CELLS, 19),
                              atol=1e-6)
        assert torch.allclose(by_class(guide, features, None)[0], r - r[..., 2::4, 2::4].mean((2, 3), keepdim=True),
                              atol=1e-6)  # no labels: the frame mean
        class_box = DetailPath(4, 8, highpass=9, mean="class_box")
        class_box.load_state_dict(plain.state_dict())
        centred = class_mean_removed(r, labels, CELLS, 19)
        assert torch.allclose(class_box(guide, features, None, labels)[0], centred - box_mean(centred, 9), atol=1e-6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = by_class(guide, features, None, labels)[0]
        assert low.dtype == torch.bfloat16
        assert torch.allclose(low.float(), by_class(guide, features, None, labels)[0], atol=0.05)


def test_the_config_field_is_checked_and_reaches_the_decoders() -> None:
    lite = get_generator_config("lite")
    with pytest.raises(ConfigError, match="detail_mean must be one of"):
        dataclasses.replace(lite, detail_highpass=True, detail_mean="median")
    with pytest.raises(ConfigError, match="needs detail_highpass: true"):  # not silently ignored
        dataclasses.replace(lite, detail_mean="class")
    cfg = dataclasses.replace(lite, detail_highpass=True, detail_mean="class")
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    gen = TranslatorGenerator(cfg)
    assert all(d.detail.mean == "class" and d.detail.highpass == 9 for d in gen.decoders.values())
    old = {k: v for k, v in cfg.to_dict().items() if k != "detail_mean"}
    assert GeneratorConfig.from_dict(old).detail_mean == "box"  # configs saved before the field: the box


def test_a_run_may_switch_a_trained_model_to_the_class_mean(tmp_path: Path) -> None:
    from sim2real.training.config import load_train_config
    from sim2real.training.networks import build_networks, load_initial_weights
    from sim2real.translator.checkpoint import save_checkpoint

    cfg = dataclasses.replace(get_generator_config("lite"), detail_highpass=True)
    trained = TranslatorGenerator(cfg)
    path = save_checkpoint(tmp_path / "box.safetensors", trained, cfg)
    overrides = ["device=cpu", "validation_judge=null", "generator.detail_highpass=true",
                 "generator.detail_mean=class"]
    nets = build_networks(load_train_config(None, overrides), "cpu")
    load_initial_weights(nets, str(path), lambda _: None)
    assert nets.gen.cfg.detail_mean == "class" and nets.gen.decoders["target"].detail.mean == "class"
    assert all(torch.equal(nets.gen.state_dict()[k], v) for k, v in trained.state_dict().items())
