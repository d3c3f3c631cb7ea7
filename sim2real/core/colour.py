"""Colour conventions shared by every layer."""

from __future__ import annotations

from typing import Final

#: Rec. 601 luma weights of (R, G, B): luma = 0.299 R + 0.587 G + 0.114 B
LUMA_WEIGHTS: Final[tuple[float, float, float]] = (0.299, 0.587, 0.114)
