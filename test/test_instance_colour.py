"""Instance colour: known answers (identity, a hue rotation, halved chroma) and negative controls (one colour
for every instance, greyed-out instances, a tint on grey ones)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sim2real.evaluation.instance_colour import MIN_PIXELS, InstanceColourTally, instance_colour_tally

#: Lab (L, a, b) of the scene's instances: four coloured (chroma 30), one grey
COLOURS = ((50.0, 30.0, 0.0), (55.0, 0.0, 30.0), (45.0, -21.2, -21.2), (60.0, -30.0, 0.0), (70.0, 0.0, 0.0))


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _scene(colours: tuple[tuple[float, float, float], ...] = COLOURS) -> tuple[np.ndarray, np.ndarray]:
    """Grey background with one 20x30 block per colour (instance ids 1..N) and a 10x10 one (too small to score);
    rgb (H, W, 3) uint8 and instance ids (H, W)."""
    lab = np.zeros((60, 200, 3), np.float32)
    lab[..., 0] = 40.0
    instance = np.zeros((60, 200), np.int64)
    for k, colour in enumerate(colours):
        instance[10:30, 5 + 38 * k: 35 + 38 * k] = k + 1
        lab[10:30, 5 + 38 * k: 35 + 38 * k] = colour
    instance[40:50, 5:15] = 99
    lab[40:50, 5:15] = (50.0, 40.0, 40.0)
    return _lab_to_rgb(lab), instance


def _map_ab(rgb: np.ndarray, instance: np.ndarray, fn) -> np.ndarray:
    """The frame with fn applied to the (a, b) of every instance pixel (Lab, float)."""
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    inside = instance > 0
    lab[inside, 1:] = fn(lab[inside, 1:])
    return _lab_to_rgb(lab)


def test_identity_keeps_every_hue_and_chroma() -> None:
    rgb, instance = _scene()
    tally = instance_colour_tally(rgb, rgb, instance)
    assert len(tally.rows) == len(COLOURS)  # the 10x10 block has 100 < MIN_PIXELS pixels
    assert MIN_PIXELS > 100
    assert tally.coloured_count() == 4
    assert tally.hue_error() == pytest.approx(0.0, abs=1e-6)
    assert tally.chroma_ratio() == pytest.approx(1.0, abs=1e-6)
    assert tally.grey_tint() < 1.0


@pytest.mark.parametrize("degrees", [30.0, 60.0, 150.0])
def test_a_hue_rotation_reads_its_angle(degrees: float) -> None:
    rgb, instance = _scene()
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    turned = _map_ab(rgb, instance, lambda ab: ab @ np.array([[c, s], [-s, c]], np.float32))
    tally = instance_colour_tally(rgb, turned, instance)
    assert tally.hue_error() == pytest.approx(degrees, abs=1.0)
    assert tally.chroma_ratio() == pytest.approx(1.0, abs=0.05)


def test_halved_chroma_keeps_the_hue() -> None:
    rgb, instance = _scene()
    tally = instance_colour_tally(rgb, _map_ab(rgb, instance, lambda ab: ab * 0.5), instance)
    assert tally.hue_error() == pytest.approx(0.0, abs=2.0)
    assert tally.chroma_ratio() == pytest.approx(0.5, abs=0.03)


def test_one_colour_for_every_instance_is_a_large_error() -> None:
    """The defect the metric is for: every bus the same dark red whatever its own colour."""
    rgb, instance = _scene()
    painted = _map_ab(rgb, instance, lambda ab: np.broadcast_to(np.float32([15.0, 10.0]), ab.shape).copy())
    tally = instance_colour_tally(rgb, painted, instance)
    assert tally.hue_error() > 90.0
    assert tally.grey_tint() > 15.0  # the grey instance is painted too


def test_greying_out_shows_in_the_chroma_ratio() -> None:
    """Scaling every chroma down keeps each hue: the ratio, not the hue error, reads the collapse."""
    rgb, instance = _scene()
    tally = instance_colour_tally(rgb, _map_ab(rgb, instance, lambda ab: ab * 0.1), instance)
    assert tally.chroma_ratio() < 0.15
    assert tally.hue_error() < 10.0


def test_the_hue_error_is_a_mean_and_the_chroma_ratio_a_median() -> None:
    """One of four coloured instances turned by 90 degrees and its chroma halved: mean 22.5 degrees, median ratio 1."""
    rgb, instance = _scene()
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    first = instance == 1
    lab[first, 1:] = lab[first, 1:] @ np.float32([[0.0, 0.5], [-0.5, 0.0]])
    tally = instance_colour_tally(rgb, _lab_to_rgb(lab), instance)
    assert tally.hue_error() == pytest.approx(22.5, abs=0.5)
    assert tally.chroma_ratio() == pytest.approx(1.0, abs=0.02)


def test_the_thresholds_pick_coloured_grey_and_scored_instances() -> None:
    """Chroma 8 is neither coloured (>= 12) nor grey (< 5); exactly MIN_PIXELS pixels are scored, one fewer not."""
    rgb, instance = _scene(((50.0, 8.0, 0.0), (50.0, 0.0, 0.0)))
    tally = instance_colour_tally(rgb, rgb, instance)
    assert len(tally.rows) == 2 and tally.coloured_count() == 0 and np.isnan(tally.hue_error())
    painted = _map_ab(rgb, instance, lambda ab: ab + np.float32([20.0, 0.0]))
    assert instance_colour_tally(rgb, painted, instance).grey_tint() == pytest.approx(20.0, abs=1.0)
    block = np.zeros((40, 40), np.int64)
    block.ravel()[:MIN_PIXELS] = 1
    block.ravel()[MIN_PIXELS:2 * MIN_PIXELS - 1] = 2
    grey = np.full((40, 40, 3), 128, np.uint8)
    assert len(instance_colour_tally(grey, grey, block).rows) == 1


def test_tallies_add_and_empty_ones_read_nan() -> None:
    rgb, instance = _scene()
    one = instance_colour_tally(rgb, rgb, instance)
    assert len((one + one).rows) == 2 * len(one.rows)
    empty = instance_colour_tally(rgb, rgb, np.zeros_like(instance))
    assert empty.rows == [] and np.isnan(empty.hue_error()) and np.isnan(empty.grey_tint())
    assert np.isnan(InstanceColourTally().chroma_ratio())


def test_mismatched_shapes_are_refused() -> None:
    rgb, instance = _scene()
    with pytest.raises(ValueError, match="must be"):
        instance_colour_tally(rgb, rgb[:-1], instance)
