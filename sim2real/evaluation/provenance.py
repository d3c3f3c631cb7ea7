"""Evaluation protocol: frames disjoint from the model's training data.

A translator checkpoint written by the trainer records its training config (``training_data.config``):
the procedural world seed, the source bags / folders, the target real frames, and the same record of the weights
it started from (:mod:`sim2real.training.lineage`). :func:`check_disjoint` refuses
an evaluation whose source frames or real reference frames overlap them (the same procedural world, the same or a
nested path; a bag that ``sim2real-sim record`` made from a trained world, by the seed it records), and one whose
baselines are fitted on the reference frames themselves, unless overlap is allowed
explicitly; the result is recorded in the report either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim2real.core.errors import ConfigError
from sim2real.io.bag_reader import WORLD_SEED_KEY, bag_custom_data
from sim2real.runtime.paths import share_dir

__all__ = ["check_disjoint", "paths_overlap", "training_provenance"]


def training_provenance(model: Path) -> dict[str, Any] | None:
    """What a checkpoint says about its training data, or None when it records nothing.

    Follows the record's ``init`` chain (:mod:`sim2real.training.lineage`): the weights a run started from count
    as its training data too. Returns {"source_kind" (the last run's), "world_seeds" (procedural worlds any run of
    the chain trained or validated on), "source_paths", "target_paths" (the target frames and the labelled real
    frames a colour prior was fitted from), "steps" (the last run's), "unrecorded_init" (``init_from`` paths of
    the chain whose own training data is not recorded)}.
    """
    from sim2real.translator.checkpoint import read_checkpoint_document

    record = read_checkpoint_document(model).get("training_data") or {}
    if not isinstance(record.get("config"), dict):
        return None
    prov: dict[str, Any] = {"source_kind": (record["config"].get("source") or {}).get("kind"), "world_seeds": set(),
                            "source_paths": [], "target_paths": [], "steps": record.get("steps"),
                            "unrecorded_init": []}
    while isinstance(record, dict) and isinstance(record.get("config"), dict):
        _add_run(prov, record)
        init_from = record["config"].get("init_from")
        record = record.get("init")
        if init_from and not (isinstance(record, dict) and isinstance(record.get("config"), dict)):
            prov["unrecorded_init"].append(str(init_from))
    prov["world_seeds"] = sorted(prov["world_seeds"])
    return prov


def _add_run(prov: dict[str, Any], record: dict[str, Any]) -> None:
    """Add one run's worlds and folders (a record of :func:`sim2real.training.lineage.training_record`)."""
    config = record["config"]
    source = config.get("source") or {}
    target = config.get("target") or {}
    prior = config.get("colour_prior") or {}
    prior_paths = [*prior.get("images", []), *prior.get("labels", [])] if (config.get("generator") or {}).get(
        "use_colour_prior") else []
    _extend_unique(prov["target_paths"], [*target.get("paths", []), *prior_paths])
    _extend_unique(prov["source_paths"], [*source.get("paths", []), *source.get("val_paths", [])])
    if "procedural_worlds" in record:
        prov["world_seeds"].update(int(w) for w in record["procedural_worlds"])
    elif source.get("kind") == "procedural":
        # written before the record named its worlds: training and validation world, and ``seed``, which chose
        # the training world until 2026-12-05
        sim_seed = int(source.get("sim_seed") or 0)  # validation world: + training.config.VALIDATION_WORLD_OFFSET
        prov["world_seeds"].update({int(config.get("seed") or 0), sim_seed, sim_seed + 1000})


def _extend_unique(paths: list[str], more: list[str]) -> None:
    paths.extend(p for p in dict.fromkeys(more) if p not in paths)


def _candidates(path: str | Path) -> list[Path]:
    """A recorded path resolved against the working directory and the source checkout (it may be relative)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return [p.resolve()]
    return [p.resolve(), (share_dir() / p).resolve()]


def paths_overlap(a: str | Path, b: str | Path) -> bool:
    """True when two paths are the same or one lies inside the other (after resolving)."""
    for x in _candidates(a):
        for y in _candidates(b):
            if x == y or x in y.parents or y in x.parents:
                return True
    return False


def _source_overlaps(cfg: Any, prov: dict[str, Any]) -> list[str]:
    kind, _, rest = cfg.source.partition(":")
    if kind == "procedural":
        if cfg.sim_seed in prov["world_seeds"]:
            return [f"procedural world seed {cfg.sim_seed} is one the model trained or validated on "
                    f"({prov['world_seeds']})"]
        return []
    path = rest if kind == "carla" and rest else cfg.source
    return [f"source {path} overlaps the training source {p}" for p in prov["source_paths"] if paths_overlap(path, p)]


def _bag_world_unknowns(cfg: Any, prov: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(overlaps, unknowns) of a bag source against a model trained on procedural worlds: a bag recorded by
    ``sim2real-sim record`` names its world seed in metadata.yaml; any other bag may hold the same world."""
    kind = cfg.source.partition(":")[0]
    if kind in ("procedural", "carla") or not prov["world_seeds"]:
        return [], []
    path = Path(cfg.source)
    bag = path if path.is_dir() else path.parent  # a lone .mcap / .db3: its recording's metadata.yaml, if any
    seed = bag_custom_data(bag).get(WORLD_SEED_KEY)
    if seed is None:
        return [], [f"source {cfg.source} does not record which procedural world it shows; the model trained "
                    f"on procedural worlds {prov['world_seeds']}"]
    if seed.lstrip("-").isdigit() and int(seed) in prov["world_seeds"]:
        return [f"source {cfg.source} shows procedural world seed {seed}, one the model trained or validated "
                f"on ({prov['world_seeds']})"], []
    return [], []


def check_disjoint(cfg: Any, prov: dict[str, Any] | None) -> dict[str, Any]:
    """Check an :class:`~sim2real.evaluation.evaluate.EvalConfig` (paths resolved) against the model's provenance.

    Returns {"overlap": bool, "reasons": [...], "allowed": bool, "known": bool, "unknown": [...]}: ``known`` is
    False when the checkpoint records no training data or the source cannot be checked (``unknown`` says why).

    Raises:
        ConfigError: an overlap (each reason listed) while ``cfg.allow_overlap`` is False.
    """
    reasons: list[str] = []
    unknown: list[str] = []
    if cfg.real is not None and cfg.real_stats is not None and paths_overlap(cfg.real, cfg.real_stats):
        reasons.append(f"the baselines' real statistics ({cfg.real_stats}) overlap the reference frames ({cfg.real})")
    if prov is not None:
        reasons += _source_overlaps(cfg, prov)
        bag_overlaps, unknown = _bag_world_unknowns(cfg, prov)
        reasons += bag_overlaps
        unknown += [f"the model was fine-tuned from {path}, whose training data it does not record"
                    for path in prov["unrecorded_init"]]
        reasons += [f"reference real frames {cfg.real} overlap the model's training targets {p}"
                    for p in prov["target_paths"] if cfg.real is not None and paths_overlap(cfg.real, p)]
    if reasons and not cfg.allow_overlap:
        raise ConfigError("evaluation frames overlap training data: " + "; ".join(reasons)
                          + " (choose held-apart frames, or pass --allow-overlap and say so)")
    return {"overlap": bool(reasons), "reasons": reasons, "allowed": bool(reasons and cfg.allow_overlap),
            "known": prov is not None and not unknown, "unknown": unknown}
