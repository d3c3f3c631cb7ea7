"""Label-edge overshoot (sim2real.evaluation.edge_overshoot): known answers on two-region frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sim2real.evaluation.edge_bleed import distance_to_other_label
from sim2real.evaluation.edge_overshoot import OvershootTally, edge_overshoot_tally


def two_regions(left: int, right: int, size: tuple[int, int] = (32, 64)) -> tuple[np.ndarray, np.ndarray]:
    """A grey frame, left half ``left`` and right half ``right`` levels; labels 1 and 2 along the same split."""
    h, w = size
    labels = np.ones((h, w), np.int64)
    labels[:, w // 2 :] = 2
    rgb = np.where(labels[..., None] == 1, left, right).astype(np.uint8).repeat(3, axis=2)
    return rgb, labels


def raise_edge(rgb: np.ndarray, labels: np.ndarray, levels: int) -> np.ndarray:
    out = rgb.astype(np.int64)
    out[distance_to_other_label(labels) <= 1.0] += levels
    return np.clip(out, 0, 255).astype(np.uint8)


def test_flat_regions_and_a_blurred_edge_have_no_rim() -> None:
    rgb, labels = two_regions(50, 200)
    flat = edge_overshoot_tally(rgb, labels)
    assert flat.count == 2 * 32 and flat.light() == 0.0 and flat.dark() == 0.0  # one column each side
    blurred = edge_overshoot_tally(cv2.GaussianBlur(rgb, (0, 0), 1.0), labels)
    assert blurred.light() == 0.0 and blurred.dark() == 0.0  # a monotone ramp stays inside the envelope


def test_a_raised_edge_reads_its_height() -> None:
    rgb, labels = two_regions(120, 120)
    assert edge_overshoot_tally(raise_edge(rgb, labels, 20), labels).light() == pytest.approx(20.0, abs=1e-3)
    assert edge_overshoot_tally(raise_edge(rgb, labels, -15), labels).dark() == pytest.approx(15.0, abs=1e-3)
    rgb, labels = two_regions(50, 200)  # only the light side's raised pixels rise above the envelope
    rim = edge_overshoot_tally(raise_edge(rgb, labels, 20), labels)
    assert rim.light() == pytest.approx(10.0, abs=1e-3) and rim.dark() == 0.0


def test_sharpening_draws_both_rims_and_the_ignored_label_is_not_scored() -> None:
    rgb, labels = two_regions(50, 200)
    step = rgb.astype(np.float32)
    sharp = np.clip(step + 1.5 * (step - cv2.GaussianBlur(step, (0, 0), 0.7)), 0, 255).astype(np.uint8)
    tally = edge_overshoot_tally(sharp, labels)
    assert tally.light() > 3.0 and tally.dark() > 3.0
    only_left = edge_overshoot_tally(sharp, labels, ignore=2)
    assert only_left.count == 32 and only_left.light() == 0.0 and only_left.dark() > tally.dark()


def test_tallies_add_and_an_empty_tally_is_nan() -> None:
    rgb, labels = two_regions(120, 120)
    one = edge_overshoot_tally(raise_edge(rgb, labels, 20), labels)
    both = one + edge_overshoot_tally(rgb, labels)
    assert both.count == 2 * one.count and both.light() == pytest.approx(10.0, abs=1e-3)
    single = edge_overshoot_tally(rgb, np.zeros(labels.shape, np.int64))
    assert single == OvershootTally() and np.isnan(single.light()) and np.isnan(single.dark())
    with pytest.raises(ValueError, match="must be"):
        edge_overshoot_tally(rgb[..., 0], labels)


def test_a_structure_without_a_flat_part_of_its_own_is_not_scored() -> None:
    rgb, labels = two_regions(200, 200)
    labels[:, 20:22], rgb[:, 20:22] = 3, 30  # a dark pole 2 px wide: darker than every flat pixel around it
    tally = edge_overshoot_tally(rgb, labels)
    assert tally.dark() == 0.0 and tally.light() == 0.0
    assert tally.count == 4 * 32  # the pole's neighbours and the 1 / 2 edge; the pole's own pixels are not scored
