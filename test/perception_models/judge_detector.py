"""A 'user's detector' built on the shipped judge: boxes of the connected components of its car class.

Entry point ``perception_models.judge_detector:detect`` takes the prepared input (1, 3, H, W) float32 in [-1, 1]
and returns (boxes (N, 4) xyxy, labels (N,), scores (N,)), the format sim2real-perception-check expects.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
import torch

CAR = 8  # CamVid car


@cache
def _judge() -> torch.nn.Module:
    from sim2real.evaluation.judge import load_judge

    return load_judge(Path(__file__).resolve().parents[2] / "models" / "judges" / "camvid_segmenter.safetensors")[0]


def detect(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        classes = _judge()(torch.from_numpy(x)).argmax(1)[0].numpy()
    count, _, stats, _ = cv2.connectedComponentsWithStats((classes == CAR).astype(np.uint8), connectivity=8)
    s = stats[1:count]
    s = s[s[:, 4] >= 16]
    boxes = np.stack([s[:, 0], s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 3]], 1).astype(np.float32)
    return boxes.reshape(-1, 4), np.full(len(s), CAR, np.int64), np.ones(len(s), np.float32)


def constant_road(x: np.ndarray) -> np.ndarray:
    """A broken 'segmenter' that calls every pixel road (CamVid 3): the negative control."""
    return np.full(x.shape[2:] if x.shape[1] == 3 else x.shape[1:3], 3, np.int64)
