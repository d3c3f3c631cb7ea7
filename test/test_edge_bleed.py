"""Label-edge bleed: known answers on a synthetic scene, negative controls (blur, a halo), a class-wise map; the
profile by distance."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sim2real.evaluation.edge_bleed import RINGS_PX, BleedTally, distance_to_other_label, edge_bleed_tally


def _scene(h: int = 120, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Sky (0) over a building (1) and a road (2), with a textured building; rgb (H, W, 3) uint8, labels (H, W)."""
    rng = np.random.default_rng(0)
    labels = np.zeros((h, w), np.int64)
    labels[40:, 30:130] = 1
    labels[90:, :] = 2
    rgb = np.zeros((h, w, 3), np.float64)
    rgb[labels == 0] = (90, 140, 220)
    rgb[labels == 1] = (150, 120, 100)
    rgb[labels == 2] = (70, 70, 75)
    rgb += rng.normal(0, 6, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), labels


def test_distance_is_one_on_the_edge_and_grows_inside() -> None:
    labels = np.zeros((20, 20), np.int64)
    labels[:, 10:] = 1
    d = distance_to_other_label(labels)
    assert d[5, 9] == d[5, 10] == 1.0
    assert d[5, 5] == pytest.approx(5.0, abs=0.05) and d[5, 15] == pytest.approx(6.0, abs=0.05)
    assert np.isinf(distance_to_other_label(np.zeros((4, 4), np.int64))).all()


def test_identity_and_a_classwise_colour_map_do_not_bleed() -> None:
    rgb, labels = _scene()
    assert edge_bleed_tally(rgb, rgb, labels).bleed() == pytest.approx(0.0, abs=1e-6)
    mapped = rgb.astype(np.float64)
    for c, (gain, offset) in enumerate([(0.8, 30.0), (1.1, -10.0), (0.6, 20.0)]):
        mapped[labels == c] = mapped[labels == c] * gain + offset
    tally = edge_bleed_tally(rgb, np.clip(mapped, 0, 255).astype(np.uint8), labels)
    assert tally.band_rms() > 0.3 and tally.bleed() < 0.1  # gains move colours inside a bin: band and interior alike


def test_a_halo_reads_its_size_in_levels() -> None:
    rgb, labels = _scene()
    d = distance_to_other_label(labels)
    halo = rgb.astype(np.float64)
    halo[(labels == 0) & (d <= 8)] += 20.0  # a pale band of sky along the building, every band pixel of the sky
    tally = edge_bleed_tally(rgb, np.clip(halo, 0, 255).astype(np.uint8), labels)
    # only the sky's band moved (excess 20^2 there, 0 elsewhere): bleed = 20 * sqrt(the sky's share of the band)
    share = ((labels == 0) & (d >= 2) & (d <= 8)).sum() / ((d >= 2) & (d <= 8)).sum()
    assert tally.bleed() == pytest.approx(20.0 * np.sqrt(share), rel=0.05)


def test_blur_across_labels_bleeds_and_more_blur_bleeds_more() -> None:
    rgb, labels = _scene()
    values = [edge_bleed_tally(rgb, cv2.GaussianBlur(rgb, (0, 0), sigma), labels).bleed() for sigma in (1.5, 4.0)]
    assert 1.0 < values[0] < values[1]


def test_noise_of_different_size_per_class_is_not_bleed() -> None:
    """Only what is tied to edges counts: strong noise on a small class beside a large quiet one reads ~0."""
    rgb, labels = _scene()
    rng = np.random.default_rng(1)
    sigma = np.where(labels == 1, 10.0, 2.0)[..., None]  # the building: noisy; sky and road: quiet
    noisy = np.clip(rgb + rng.normal(0, 1, rgb.shape) * sigma, 0, 255).astype(np.uint8)
    tally = edge_bleed_tally(rgb, noisy, labels)
    assert tally.band_rms() > 3.0 and tally.bleed() < 1.0, (tally.band_rms(), tally.bleed())
    halo = noisy.astype(np.float64)
    halo[(labels == 0) & (distance_to_other_label(labels) <= 8)] += 20.0
    share = edge_bleed_tally(rgb, rgb, labels)  # band pixels per class, from the identity's tally
    sky = share.classes[0][1] / sum(v[1] for v in share.classes.values())
    on_noise = edge_bleed_tally(rgb, np.clip(halo, 0, 255).astype(np.uint8), labels).bleed()
    assert on_noise == pytest.approx(20.0 * np.sqrt(sky), rel=0.1)  # the halo reads its size on top of noise


def test_tallies_add_and_bad_shapes_are_refused() -> None:
    rgb, labels = _scene()
    one = edge_bleed_tally(rgb, cv2.GaussianBlur(rgb, (0, 0), 3.0), labels)
    two = one + one
    assert all(np.array_equal(two.classes[c], 2 * one.classes[c]) for c in one.classes)
    assert two.bleed() == pytest.approx(one.bleed())
    assert np.isnan(BleedTally().bleed())
    with pytest.raises(ValueError, match="must be"):
        edge_bleed_tally(rgb, rgb[:-1], labels)
    ignored = edge_bleed_tally(rgb, cv2.GaussianBlur(rgb, (0, 0), 3.0), labels, ignore=0)
    assert set(ignored.classes) == set(one.classes) - {0}


def test_the_profile_puts_a_halo_at_its_distance() -> None:
    """A +20 halo on the sky's pixels 1.5-2.5 px from another label reads 20 x sqrt(the sky's share of that ring)
    in ring "2" and nothing in the other rings; the identity reads 0 in every ring (the control)."""
    rgb, labels = _scene()
    d = distance_to_other_label(labels)
    assert set(edge_bleed_tally(rgb, rgb, labels).profile().values()) == {0.0}
    halo = rgb.astype(np.float64)
    ring = (d >= 1.5) & (d < 2.5)
    halo[(labels == 0) & ring] += 20.0
    profile = edge_bleed_tally(rgb, np.clip(halo, 0, 255).astype(np.uint8), labels).profile()
    assert list(profile) == [name for name, *_ in RINGS_PX]
    share = ((labels == 0) & ring).sum() / ring.sum()
    assert profile["2"] == pytest.approx(20.0 * np.sqrt(share), rel=0.05)
    assert max(v for k, v in profile.items() if k != "2") < 0.5
    blurred = edge_bleed_tally(rgb, cv2.GaussianBlur(rgb, (0, 0), 1.5), labels).profile()
    assert blurred["1"] > blurred["3-4"] > blurred["9-16"]  # a blur's step fades with the distance
    one = edge_bleed_tally(rgb, np.clip(halo, 0, 255).astype(np.uint8), labels)
    assert (one + one).profile() == pytest.approx(profile)
