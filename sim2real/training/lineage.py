"""What an exported checkpoint records about the data behind its weights (``training_data``).

    {"steps": optimiser steps of this run,
     "config": the run's TrainConfig as plain data,
     "procedural_worlds": [training worlds..., validation world] of a procedural source ([] for other sources),
     "init": the same record of the ``init_from`` checkpoint, or None}

``init`` makes the record a chain: a fine-tuned or refitted model (e.g. the shipped default's stage 2) names the
worlds and folders its starting weights saw, so the evaluation's disjointness check
(:mod:`sim2real.evaluation.provenance`) reads every one of them, not only the last run's. A training checkpoint
directory keeps its run's ``init`` record in its state (``lineage``), so a run resumed or started from it passes
the chain on. A checkpoint written before this record existed has no ``procedural_worlds`` and no ``init``: the
provenance check then counts the worlds its config may have used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim2real.core.errors import CheckpointError
from sim2real.training.config import VALIDATION_WORLD_OFFSET, TrainConfig, to_plain
from sim2real.training.state_io import read_state_scalars

__all__ = ["LINEAGE_KEY", "VALIDATION_WORLD_OFFSET", "init_record", "procedural_worlds", "training_record"]

LINEAGE_KEY = "lineage"  # the training state's field holding the run's ``init`` record (JSON)


def procedural_worlds(source_kind: str, sim_seed: int, extra_sim_seeds: Sequence[int] = ()) -> list[int]:
    """[training worlds..., validation world] of a run on the procedural simulator; [] for recorded sources."""
    if source_kind != "procedural":
        return []
    return [sim_seed, *extra_sim_seeds, sim_seed + VALIDATION_WORLD_OFFSET]


def init_record(path: str | None) -> dict[str, Any] | None:
    """The training record behind ``init_from``: an inference checkpoint's ``training_data``, or for a training
    checkpoint directory the same record rebuilt from its state; None without ``init_from`` and for a file that
    records no training config (the provenance check then reports its data as unknown).

    Raises:
        CheckpointError: the path is neither a readable checkpoint file nor a training checkpoint directory.
    """
    if not path:
        return None
    source = Path(path)
    if source.suffix == ".safetensors":
        from sim2real.translator.checkpoint import read_checkpoint_document

        record = read_checkpoint_document(source).get("training_data")
        return dict(record) if isinstance(record, dict) and isinstance(record.get("config"), dict) else None
    scalars = read_state_scalars(source)
    try:
        config = json.loads(scalars["config"])
        init = json.loads(scalars.get(LINEAGE_KEY) or "null")
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"init_from {source}: its state has no readable config ({exc})") from exc
    record = {"steps": scalars.get("step"), "config": config, "init": init}
    if LINEAGE_KEY in scalars:  # older states trained on world ``seed``: leave their worlds to the fallback
        source = config.get("source") or {}
        record["procedural_worlds"] = procedural_worlds(source.get("kind") or "", int(source.get("sim_seed") or 0),
                                                        [int(w) for w in source.get("extra_sim_seeds") or ()])
    return record


def training_record(cfg: TrainConfig, steps: int, init: dict[str, Any] | None) -> dict[str, Any]:
    """The ``training_data`` an exported checkpoint of this run carries (module docstring)."""
    return {"steps": steps, "config": to_plain(cfg),
            "procedural_worlds": procedural_worlds(cfg.source.kind, cfg.source.sim_seed, cfg.source.extra_sim_seeds),
            "init": init}
