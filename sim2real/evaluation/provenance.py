"""Evaluation protocol: frames disjoint from the model's training data.

A translator checkpoint written by the trainer records its training config (``training_data.config``):
the procedural world seed, the source bags / folders, the target real frames. :func:`check_disjoint` refuses
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

    Returns {"source_kind", "world_seeds" (procedural worlds used for training and validation;
    ``seed`` counts as one, as it chose the training world until 2026-12-05), "source_paths",
    "target_paths" (the target frames and the labelled real frames a colour prior was fitted from), "steps"}.
    """
    from sim2real.translator.checkpoint import read_checkpoint_document

    doc = read_checkpoint_document(model)
    config = (doc.get("training_data") or {}).get("config")
    if not isinstance(config, dict):
        return None
    source = config.get("source") or {}
    target = config.get("target") or {}
    prior = config.get("colour_prior") or {}
    prior_paths = [*prior.get("images", []), *prior.get("labels", [])] if (config.get("generator") or {}).get(
        "use_colour_prior") else []
    kind = source.get("kind")
    seeds: list[int] = []
    if kind == "procedural":
        sim_seed = int(source.get("sim_seed", 0))
        # training world, validation world; runs before 2026-12-05 trained on world ``seed``
        seeds = sorted({int(config.get("seed", 0)), sim_seed, sim_seed + 1000})
    return {
        "source_kind": kind,
        "world_seeds": seeds,
        "source_paths": [*source.get("paths", []), *source.get("val_paths", [])],
        "target_paths": [*target.get("paths", []), *prior_paths],
        "steps": (doc.get("training_data") or {}).get("steps"),
    }


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
        if prov["source_kind"] == "procedural" and cfg.sim_seed in prov["world_seeds"]:
            return [f"procedural world seed {cfg.sim_seed} is one the model trained or validated on "
                    f"({prov['world_seeds']})"]
        return []
    path = rest if kind == "carla" and rest else cfg.source
    return [f"source {path} overlaps the training source {p}" for p in prov["source_paths"] if paths_overlap(path, p)]


def _bag_world_unknowns(cfg: Any, prov: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(overlaps, unknowns) of a bag source against a model trained on procedural worlds: a bag recorded by
    ``sim2real-sim record`` names its world seed in metadata.yaml; any other bag may hold the same world."""
    kind = cfg.source.partition(":")[0]
    if kind in ("procedural", "carla") or prov["source_kind"] != "procedural":
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
        reasons += [f"reference real frames {cfg.real} overlap the model's training targets {p}"
                    for p in prov["target_paths"] if cfg.real is not None and paths_overlap(cfg.real, p)]
    if reasons and not cfg.allow_overlap:
        raise ConfigError("evaluation frames overlap training data: " + "; ".join(reasons)
                          + " (choose held-apart frames, or pass --allow-overlap and say so)")
    return {"overlap": bool(reasons), "reasons": reasons, "allowed": bool(reasons and cfg.allow_overlap),
            "known": prov is not None and not unknown, "unknown": unknown}
