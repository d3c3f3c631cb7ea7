"""What a run writes besides checkpoints (rank 0): ``metrics.jsonl``, TensorBoard scalars and preview pictures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim2real.core.labels import overlay
from sim2real.translator.boxes import instance_boxes
from sim2real.translator.frames import to_uint8_image
from sim2real.translator.objective import SourceBatch

__all__ = ["RunLog", "preview_row"]


def preview_row(src: SourceBatch, fake: torch.Tensor, index: int = 0, max_boxes: int = 32) -> np.ndarray:
    """One picture row: source | translated | semantic overlay on translated | boxes on translated."""
    import cv2

    source = to_uint8_image(src.rgb[index])
    translated = to_uint8_image(fake[index])
    semantic = src.semantic[index].cpu().numpy().astype(np.uint8)
    boxes = instance_boxes(src.instance[index: index + 1], max_boxes)
    drawn = translated.copy()
    for box, ok in zip(boxes.boxes[0].tolist(), boxes.valid[0].tolist(), strict=True):
        if ok:
            x0, y0, x1, y1 = (round(v) for v in box)
            cv2.rectangle(drawn, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 0), 1)
    return np.concatenate([source, translated, overlay(translated, semantic, 0.45), drawn], axis=1)


class RunLog:
    """``<out_dir>/metrics.jsonl`` (one JSON object per logged step) and ``<out_dir>/tensorboard``.

    Every rank keeps :attr:`history` (the rows it would log); only rank 0 (``is_main``) writes.
    """

    def __init__(self, out_dir: Path, is_main: bool) -> None:
        self.out_dir, self.is_main = out_dir, is_main
        self.history: list[dict[str, float]] = []
        self._tb: Any = None

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def _tensorboard(self) -> Any:
        if self._tb is None and self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
        return self._tb

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """One metrics row ``{"step": step, **values}``: to history, metrics.jsonl and TensorBoard."""
        record = {"step": step, **values}
        self.history.append(record)
        if not self.is_main:
            return
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        tb = self._tensorboard()
        for k, v in values.items():
            tb.add_scalar(k, v, step)

    def preview(self, step: int, src: SourceBatch, fake: torch.Tensor) -> None:
        """The :func:`preview_row` of the first sample as a TensorBoard image."""
        if self.is_main:
            self._tensorboard().add_image("preview/source|translated|semantic|boxes", preview_row(src, fake), step,
                                          dataformats="HWC")

    def truncate(self, step: int) -> None:
        """Drop metrics rows logged after ``step`` by an interrupted run: those steps are about to be redone."""
        path = self.metrics_path
        if not self.is_main or not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short when the interrupted run was killed
                continue
            if row["step"] <= step:
                kept.append(line)
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        tmp.replace(path)

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()
