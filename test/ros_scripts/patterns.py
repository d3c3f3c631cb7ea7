"""Deterministic test frames shared by the pattern publisher and the tests that check what arrived."""

from __future__ import annotations

import functools

import numpy as np

# encoding -> (dtype, channels) for the encodings the transport tests send.
PATTERN_ENCODINGS = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3), "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1), "32SC1": (np.int32, 1), "32FC1": (np.float32, 1),
}


@functools.lru_cache(maxsize=8)
def _base(seed: int, height: int, width: int, encoding: str) -> np.ndarray:
    dtype, channels = PATTERN_ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def pattern_frame(seed: int, index: int, height: int, width: int, encoding: str) -> np.ndarray:
    """Frame ``index``: a fixed random image rolled by ``index`` columns (every frame differs)."""
    return np.roll(_base(seed, height, width, encoding), index, axis=1)
