"""Label conventions: the canonical semantic and instance spaces every part of sim2real speaks.

Canonical semantic map: the 19 Cityscapes *train ids* (0..18) plus ``IGNORE_ID`` (255), uint8, (H, W).
Canonical instance map: uint16 (H, W), 0 = no instance; published as ``16UC1`` (``mono16`` accepted).
"""

from __future__ import annotations

from typing import Final

import numpy as np

IGNORE_ID: Final = 255
NUM_CLASSES: Final = 19

#: train id -> class name (Cityscapes order).
CLASS_NAMES: Final[tuple[str, ...]] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
TRAIN_ID: Final[dict[str, int]] = {name: i for i, name in enumerate(CLASS_NAMES)}

#: "thing" classes: countable objects that carry instance ids (Cityscapes hasInstances).
THING_CLASSES: Final[frozenset[int]] = frozenset(
    TRAIN_ID[n] for n in ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
)
#: small, safety-critical classes that get extra weight in the anti-flip loss and separate reporting.
SMALL_CLASSES: Final[frozenset[int]] = frozenset(
    TRAIN_ID[n] for n in ("pole", "traffic light", "traffic sign")
)

#: standard Cityscapes palette, RGB, indexed by train id.
PALETTE: Final = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
        (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)
IGNORE_COLOR: Final = np.array((0, 0, 0), dtype=np.uint8)
