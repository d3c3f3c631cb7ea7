"""PairedTransform.apply reports where its window lies in the frame (the camera model's full-frame geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.data.transforms import PairedTransform


class FixedRng:
    """A stand-in for np.random.Generator with chosen draws: uniform -> scale factor, integers -> offsets, random."""

    def __init__(self, scale: float, offsets: list[int], flip: float) -> None:
        self.scale, self.offsets, self.flip = scale, list(offsets), flip

    def uniform(self, lo: float, hi: float) -> float:
        return self.scale

    def integers(self, lo: int, hi: int) -> int:
        return self.offsets.pop(0)

    def random(self) -> float:
        return self.flip


def test_the_box_of_a_crop_and_of_its_mirror() -> None:
    rgb = np.arange(40 * 80 * 3, dtype=np.uint8).reshape(40, 80, 3)
    label = np.arange(40 * 80, dtype=np.uint8).reshape(40, 80)
    t = PairedTransform(crop=(20, 40), hflip=0.5)
    out, (lab,), box = t.apply(rgb, [label], FixedRng(1.0, [10, 30], flip=0.9))  # y 10, x 30, no flip
    np.testing.assert_array_equal(out, rgb[10:30, 30:70])
    np.testing.assert_array_equal(lab, label[10:30, 30:70])
    np.testing.assert_allclose(box, [30 / 80, 10 / 40, 70 / 80, 30 / 40])
    _, _, mirrored = t.apply(rgb, [label], FixedRng(1.0, [10, 30], flip=0.1))  # flipped
    np.testing.assert_allclose(mirrored, [1 - 70 / 80, 10 / 40, 1 - 30 / 80, 30 / 40])


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_a_resize_keeps_the_box_in_frame_coordinates(scale: float) -> None:
    rgb = np.zeros((40, 80, 3), np.uint8)
    t = PairedTransform(crop=(10, 20), scale_range=(scale, scale), hflip=0.0)
    _, _, box = t.apply(rgb, [], FixedRng(scale, [4, 6], flip=0.9))
    h, w = round(40 * scale), round(80 * scale)
    np.testing.assert_allclose(box, [6 / w, 4 / h, 26 / w, 14 / h])
    _, _, whole = PairedTransform(hflip=0.0).apply(rgb, [], FixedRng(1.0, [], flip=0.9))
    np.testing.assert_allclose(whole, [0, 0, 1, 1])
