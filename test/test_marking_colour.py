"""Road-marking colour (``sim2real/evaluation/marking_colour.py``): known answers on a road with a yellow stripe
built in Lab: the identity 0, a cast over the whole frame ~0, a scaled chroma ~0 with its ratio, the stripe's
hue turned by 40 degrees ~40 (the negative control), frames without markings not scored, shapes checked."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from sim2real.evaluation.marking_colour import ROAD, MarkingColourTally, marking_colour_tally

SIDEWALK = ROAD + 1
ROAD_AB = np.array([1.0, 3.0])  # a warm grey asphalt
STRIPE_AB = np.array([-4.0, 22.0])  # CARLA's pale yellow: 19.6 Lab units from the road
CAST = np.array([6.0, -9.0])  # a colour cast over the whole frame


def _frame(road_ab: np.ndarray = ROAD_AB, stripe_ab: np.ndarray | None = STRIPE_AB) -> np.ndarray:
    """A 48x64 uint8 RGB frame from Lab: road L 60 with (a, b) ``road_ab`` (a little noise), a 4 px stripe of L 85
    and ``stripe_ab`` across it (none for None)."""
    rng = np.random.default_rng(0)
    lab = np.zeros((48, 64, 3), np.float32)
    lab[..., 0] = 60
    lab[..., 1:] = road_ab + rng.normal(0, 0.7, (48, 64, 2))
    if stripe_ab is not None:
        lab[20:24, :, 0] = 85
        lab[20:24, :, 1:] = stripe_ab
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def _semantic() -> np.ndarray:
    sem = np.full((48, 64), ROAD, np.int64)
    sem[:, 56:] = SIDEWALK  # a few columns of another class: not scored
    return sem


def _turned(ab: np.ndarray, degrees: float, scale: float = 1.0) -> np.ndarray:
    """The stripe's (a, b) with its deviation from the road turned by ``degrees`` and scaled by ``scale``."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    d = ab - ROAD_AB
    return ROAD_AB + scale * np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])


def _score(translated: np.ndarray) -> MarkingColourTally:
    return marking_colour_tally(_frame(), translated, _semantic())


def test_the_identity_scores_zero_and_a_ratio_of_one() -> None:
    tally = _score(_frame())
    assert tally.frames() == 1 and tally.hue_error() == pytest.approx(0, abs=1e-6)
    assert tally.chroma_ratio() == pytest.approx(1, abs=1e-6)


def test_a_cast_over_the_whole_frame_and_a_chroma_scaling_keep_the_hue_against_the_road() -> None:
    cast = _score(_frame(ROAD_AB + CAST, STRIPE_AB + CAST))
    assert cast.hue_error() < 3 and cast.chroma_ratio() == pytest.approx(1, abs=0.1)
    scaled = _score(_frame(stripe_ab=_turned(STRIPE_AB, 0, 0.5)))
    assert scaled.hue_error() < 3 and scaled.chroma_ratio() == pytest.approx(0.5, abs=0.08)


def test_a_stripe_turned_by_40_degrees_scores_about_40_the_negative_control() -> None:
    turned = _score(_frame(stripe_ab=_turned(STRIPE_AB, 40)))
    assert turned.hue_error() == pytest.approx(40, abs=3)
    mint = _score(_frame(ROAD_AB + np.array([-1.0, -6.0]), np.array([-9.0, 2.0])))  # the mint line on a cooler road
    assert mint.hue_error() > 20
    both = turned + _score(_frame())  # the mean over frames
    assert both.frames() == 2 and both.hue_error() == pytest.approx(turned.hue_error() / 2)


def test_frames_without_markings_or_road_are_not_scored_and_shapes_are_checked() -> None:
    plain = marking_colour_tally(_frame(stripe_ab=None), _frame(stripe_ab=None), _semantic())
    assert plain.frames() == 0 and math.isnan(plain.hue_error()) and math.isnan(plain.chroma_ratio())
    no_road = marking_colour_tally(_frame(), _frame(), np.full((48, 64), SIDEWALK))
    assert no_road.frames() == 0
    with pytest.raises(ValueError, match="must be"):
        marking_colour_tally(_frame(), _frame()[:40], _semantic())
