"""Colour baselines of the evaluation (sim2real.evaluation.baselines): known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sim2real.core.errors import ConfigError
from sim2real.core.labels import CAMVID_CLASS_NAMES, IGNORE_ID, TRAIN_ID
from sim2real.evaluation.baselines import (
    BASELINES,
    apply_baseline,
    classwise_transfer,
    fit_real_stats,
    fit_source_stats,
    histogram_match,
    lab_to_rgb,
    reinhard_transfer,
    rgb_to_lab,
)


def from_u8(*rgb: tuple[int, int, int]) -> torch.Tensor:
    """Pixels as a (1, 3, 1, N) tensor in [-1, 1]."""
    return torch.tensor(rgb, dtype=torch.float32).T[None, :, None, :] / 127.5 - 1


def test_lab_known_values_and_round_trip() -> None:
    lab = rgb_to_lab(from_u8((255, 255, 255), (0, 0, 0), (255, 0, 0), (128, 128, 128)))[0, :, 0].T
    np.testing.assert_allclose(lab[0].numpy(), [100, 0, 0], atol=0.02)
    np.testing.assert_allclose(lab[1].numpy(), [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(lab[2].numpy(), [53.24, 80.09, 67.20], atol=0.02)  # sRGB red, D65
    np.testing.assert_allclose(lab[3].numpy(), [53.59, 0, 0], atol=0.02)
    x = torch.rand(2, 3, 5, 7) * 2 - 1
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(x)), x, atol=1e-5, rtol=0)


def real_set(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 'real' frames: left half class road (dark grey-blue), right half class tree (green), with noise."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.empty(2, 3, 16, 32)
    rgb[:, :, :, :16] = torch.tensor([-0.3, -0.28, -0.2]).view(1, 3, 1, 1)
    rgb[:, :, :, 16:] = torch.tensor([-0.35, -0.1, -0.3]).view(1, 3, 1, 1)
    rgb = (rgb + 0.05 * torch.randn(rgb.shape, generator=g)).clamp(-1, 1)
    labels = torch.full((2, 16, 32), CAMVID_CLASS_NAMES.index("road"), dtype=torch.long)
    labels[:, :, 16:] = CAMVID_CLASS_NAMES.index("tree")
    labels[:, 0] = IGNORE_ID
    return rgb, labels


def test_fit_real_stats_class_means_match_the_pixels() -> None:
    rgb, labels = real_set()
    stats = fit_real_stats(rgb, labels)
    lab = rgb_to_lab(rgb)
    road = labels == CAMVID_CLASS_NAMES.index("road")
    expected = lab.permute(1, 0, 2, 3)[:, road].mean(1).numpy()
    np.testing.assert_allclose(stats.class_mean[CAMVID_CLASS_NAMES.index("road")], expected, rtol=1e-9)
    assert np.isnan(stats.class_mean[CAMVID_CLASS_NAMES.index("car")]).all()  # no car pixels
    assert stats.class_pixels.sum() == int((labels != IGNORE_ID).sum()) and stats.frames == 2
    np.testing.assert_allclose(stats.lab_mean, lab.permute(1, 0, 2, 3).flatten(1).mean(1).numpy(), rtol=1e-9)
    assert stats.cdf.shape == (3, 256) and np.allclose(stats.cdf[:, -1], 1.0)


def test_reinhard_gives_the_real_global_statistics() -> None:
    rgb, labels = real_set()
    stats = fit_real_stats(rgb, labels)
    g = torch.Generator().manual_seed(1)
    sim = (torch.tensor([0.2, 0.1, 0.3]).view(1, 3, 1, 1) + 0.1 * torch.randn(1, 3, 16, 32, generator=g))
    out_lab = rgb_to_lab(reinhard_transfer(sim.clamp(-1, 1), stats))[0].flatten(1)
    assert (out_lab[0] > 5).all()  # nothing clipped at black: the transfer's statistics must hold exactly
    np.testing.assert_allclose(out_lab.mean(1).numpy(), stats.lab_mean, atol=0.05)
    np.testing.assert_allclose(out_lab.std(1, unbiased=False).numpy(), stats.lab_std, rtol=0.01, atol=0.02)


def test_histogram_match_to_its_own_statistics_is_the_identity_and_to_others_moves_the_cdf() -> None:
    rgb, labels = real_set()
    own = fit_real_stats(rgb[:1], labels[:1])
    u8 = ((rgb[:1] + 1) * 127.5).round() / 127.5 - 1
    torch.testing.assert_close(histogram_match(u8, own), u8, atol=1.01 / 127.5, rtol=0)
    other = fit_real_stats(rgb.flip(1), labels)  # channels swapped: different histograms
    out = histogram_match(u8, other)
    levels = ((out + 1) * 127.5).round().long()
    for c in range(3):
        cdf = np.cumsum(np.bincount(levels[0, c].flatten().numpy(), minlength=256)) / levels[0, c].numel()
        assert np.abs(cdf - other.cdf[c]).max() < 0.1


def test_classwise_transfer_moves_each_class_to_its_real_colour() -> None:
    rgb, labels = real_set()
    stats = fit_real_stats(rgb, labels)
    sim = torch.zeros(1, 3, 16, 32)
    semantic = torch.full((1, 16, 32), TRAIN_ID["road"], dtype=torch.long)
    semantic[:, :, 20:] = TRAIN_ID["vegetation"]  # -> CamVid tree
    semantic[:, :4, :] = TRAIN_ID["terrain"]  # no CamVid class: global transfer
    sim[:, :, :, 20:] = 0.5
    sim = sim + 0.05 * torch.randn(sim.shape, generator=torch.Generator().manual_seed(2))
    out = rgb_to_lab(classwise_transfer(sim, semantic, stats))[0]
    for train_id, camvid in ((TRAIN_ID["road"], "road"), (TRAIN_ID["vegetation"], "tree")):
        mask = semantic[0] == train_id
        np.testing.assert_allclose(out[:, mask].mean(1).numpy(), stats.class_mean[CAMVID_CLASS_NAMES.index(camvid)],
                                   atol=0.5)
    # the global transfer would give the tree pixels the mean colour of everything: far from the tree colour
    glob = rgb_to_lab(reinhard_transfer(sim, stats))[0]
    tree = semantic[0] == TRAIN_ID["vegetation"]
    tree_mean = stats.class_mean[CAMVID_CLASS_NAMES.index("tree")]
    assert np.abs(glob[:, tree].mean(1).numpy() - tree_mean).max() > 5 * np.abs(
        out[:, tree].mean(1).numpy() - tree_mean).max()


def test_apply_baseline_dispatch_and_identity() -> None:
    rgb, labels = real_set()
    stats = fit_real_stats(rgb, labels)
    sem = torch.full((2, 16, 32), TRAIN_ID["road"], dtype=torch.long)
    assert BASELINES == ("identity", "reinhard", "histogram", "classwise", "classwise_pooled")
    assert torch.equal(apply_baseline("identity", rgb, sem, stats), rgb)
    pooled = fit_source_stats(rgb, sem)
    for name in BASELINES:
        out = apply_baseline(name, rgb, sem, stats, source_stats=pooled)
        assert out.shape == rgb.shape and out.min() >= -1 and out.max() <= 1
    with pytest.raises(ConfigError, match="unknown baseline 'cut'.*identity, reinhard, histogram, classwise"):
        apply_baseline("cut", rgb, sem, stats)
    with pytest.raises(ConfigError, match="pooled source statistics"):
        apply_baseline("classwise_pooled", rgb, sem, stats)
    with pytest.raises(ConfigError, match="real frames"):
        fit_real_stats(torch.zeros(3, 16, 32))


def test_pooled_classwise_applies_one_map_per_class_to_every_frame() -> None:
    rgb, labels = real_set()
    stats = fit_real_stats(rgb, labels)
    semantic = torch.full((2, 16, 32), TRAIN_ID["road"], dtype=torch.long)
    noise = 0.05 * torch.randn(2, 3, 16, 32, generator=torch.Generator().manual_seed(3))
    sim = torch.stack((torch.full((3, 16, 32), -0.4), torch.full((3, 16, 32), 0.2))) + noise  # dark, bright frame
    pooled = fit_source_stats(sim, semantic)
    road = CAMVID_CLASS_NAMES.index("road")
    per_frame = rgb_to_lab(classwise_transfer(sim, semantic, stats))
    one_map = rgb_to_lab(classwise_transfer(sim, semantic, stats, source_stats=pooled))
    # per frame, each frame's road is moved to the real road colour: the brightness difference is erased
    for b in range(2):
        np.testing.assert_allclose(per_frame[b].flatten(1).mean(1).numpy(), stats.class_mean[road], atol=0.5)
    # one map for both: the pooled road lands on the real road colour, the dark frame stays darker
    np.testing.assert_allclose(one_map.flatten(2).mean((0, 2)).numpy(), stats.class_mean[road], atol=1.5)
    assert one_map[0, 0].mean() < one_map[1, 0].mean() - 5
    # a class with only a few pixels in a frame still gets its fixed map (per frame it falls back to global)
    small = semantic.clone()
    small[:, :2, :3] = TRAIN_ID["vegetation"]  # 6 pixels of tree in each frame
    sim_small = sim.clone()
    sim_small[:, :, :2, :3] = 0.3
    pooled_small = fit_source_stats(sim_small, small)
    tree = CAMVID_CLASS_NAMES.index("tree")
    out = rgb_to_lab(classwise_transfer(sim_small, small, stats, source_stats=pooled_small))
    np.testing.assert_allclose(out[:, :, :2, :3].flatten(2).mean((0, 2)).numpy(), stats.class_mean[tree], atol=1.5)


def test_the_std_ratio_is_capped_so_a_flat_class_is_not_stretched_into_noise() -> None:
    rgb, labels = real_set()
    stats = fit_real_stats(rgb, labels)
    semantic = torch.full((1, 16, 32), TRAIN_ID["road"], dtype=torch.long)
    sim = 0.001 * torch.randn(1, 3, 16, 32, generator=torch.Generator().manual_seed(4))  # nearly flat
    src_std = rgb_to_lab(sim)[0].flatten(1).std(1)
    out_std = rgb_to_lab(classwise_transfer(sim, semantic, stats))[0].flatten(1).std(1)
    assert (out_std <= 4 * src_std + 0.05).all(), (out_std, src_std)  # uncapped it would be the real road's std
    assert (torch.from_numpy(stats.class_std[CAMVID_CLASS_NAMES.index("road")]) > 10 * src_std).any()


def test_the_ignore_label_is_not_a_class_even_in_train_id_space() -> None:
    rgb, _ = real_set()
    labels = torch.full(rgb.shape[:1] + rgb.shape[2:], 255, dtype=torch.long)
    labels[:, :8] = 0
    stats = fit_real_stats(rgb, labels, num_classes=256)
    assert stats.class_pixels[255] == 0 and np.isnan(stats.class_mean[255]).all()
    assert stats.class_pixels[0] == labels[:, :8].numel()


def test_painted_labels_are_the_real_class_colours_and_nothing_else() -> None:
    from sim2real.evaluation.baselines import paint_labels

    rgb, labels = real_set()
    stats = fit_real_stats(rgb, labels)
    semantic = torch.full((1, 16, 32), TRAIN_ID["road"], dtype=torch.long)
    semantic[:, :, 20:] = TRAIN_ID["vegetation"]
    semantic[:, :4] = TRAIN_ID["terrain"]  # no CamVid class: the global mean
    lab = rgb_to_lab(paint_labels(semantic, stats))[0]
    road, tree = (stats.class_mean[CAMVID_CLASS_NAMES.index(n)] for n in ("road", "tree"))
    np.testing.assert_allclose(lab[:, 8, 5].numpy(), road, atol=1.0)
    np.testing.assert_allclose(lab[:, 8, 25].numpy(), tree, atol=1.0)
    np.testing.assert_allclose(lab[:, 0, 5].numpy(), stats.lab_mean, atol=1.0)
    assert lab[:, 4:, :20].std(dim=(1, 2)).max() < 0.5  # flat inside a class: no texture at all
