"""Training checkpoints of one run: RNG states, writing (rank 0, last K + the best kept), finding the one to resume.

The tensors of a training state may be read onto any device (``read_state(map_location=...)``) by a machine
other than the one that wrote them: a run started on a GPU resumes on another GPU, on one with fewer GPUs,
or on a CPU. :func:`restore_rng_state` therefore moves every RNG state, however deeply nested (NumPy's key in
a list, the per-device CUDA states in a list), to the host before handing it to its library, and restores
CUDA states only for devices that exist here.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim2real.training.state_io import EXPORTED_GENERATOR, find_resumable, prune_checkpoints, write_state

__all__ = ["CheckpointDir", "capture_rng_state", "restore_rng_state", "to_host"]


def to_host(obj: Any) -> Any:
    """``obj`` with every tensor in it (nested in dicts, lists, tuples) moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_host(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_host(v) for v in obj)
    return obj


def capture_rng_state() -> dict[str, Any]:
    """The torch, Python, NumPy and (when present) per-device CUDA RNG states, storable by state_io."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`, whatever device the state's tensors were read onto (see the
    module docstring). CUDA states of devices beyond this machine's count are ignored."""
    state = to_host(state)
    torch.set_rng_state(state["torch"])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        for index, device_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, index)


class CheckpointDir:
    """``<out_dir>/checkpoints``: one ``step_NNNNNNNN/`` per checkpoint (state_io), ``best.json`` naming the
    best by validation score, the last ``keep_last`` and the best kept. Writes happen on rank 0 only."""

    def __init__(self, directory: Path, keep_last: int, is_main: bool) -> None:
        self.directory, self.keep_last, self.is_main = directory, keep_last, is_main
        self.best: dict[str, float] = {}

    def resumable(self) -> Path | None:
        """The newest checkpoint that verifies, or None."""
        return find_resumable(self.directory)

    def save(self, step: int, state: Callable[[], dict[str, Any]], export: Callable[[Path], Any],
             val: dict[str, float] | None = None) -> Path | None:
        """Write ``state()`` and the EMA generator (``export(path)``) as the checkpoint of ``step``; keep the
        best by the validation judge's ``val/judge_miou`` (higher is better; the score stored is its negative).
        Without a judge's figure no checkpoint is "best": the run's own critics never select one. None on ranks
        other than 0."""
        if not self.is_main:
            return None
        name = f"step_{step:08d}"
        if val and "val/judge_miou" in val:
            score = -val["val/judge_miou"]
            if not self.best or score < self.best["score"]:
                self.best = {"score": score, "step": float(step)}
        path = write_state(self.directory, name, state(), extra_files={EXPORTED_GENERATOR: export})
        if self.best.get("step") == float(step):
            (self.directory / "best.json").write_text(json.dumps({"checkpoint": name, "score": self.best["score"]}))
        keep = {f"step_{int(self.best['step']):08d}"} if self.best else set()
        prune_checkpoints(self.directory, self.keep_last, keep)
        return path
