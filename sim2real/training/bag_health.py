"""Check training bags before a run: fail naming the bad file, or skip it (``--skip-bad-files``).

A truncated or corrupt recording (a disk that filled up mid-recording, a copy that stopped half-way) makes
:class:`~sim2real.io.bag_reader.BagReader` raise :class:`~sim2real.core.errors.BagError` naming the path; without a
check that happens while the datasets are built, for the first bad bag only. :func:`check_bags` opens every
bag up front (reads metadata.yaml and the storage index; with ``deep=True`` also deserialises every message) and
either raises one error listing *every* bad bag, or returns the good ones and reports the skipped ones.

``sim2real-train`` (``cli.py``) runs :func:`with_checked_bags` on every config before training;
``--skip-bad-files`` selects the skipping policy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sim2real.core.errors import BagError
from sim2real.io.bag_reader import BagReader

__all__ = ["BagProblem", "check_bag", "check_bags", "with_checked_bags"]


@dataclasses.dataclass(frozen=True)
class BagProblem:
    """One unreadable bag: its path and why."""

    path: Path
    reason: str


def check_bag(path: str | Path, *, deep: bool = False) -> BagProblem | None:
    """None when ``path`` opens (metadata + index; ``deep``: every message deserialises), else the problem."""
    p = Path(path)
    try:
        with BagReader(p) as reader:
            if reader.message_count == 0:
                return BagProblem(p, f"bag {p} holds no messages")
            if deep:
                for _ in reader.messages(list(reader.topics)):
                    pass
    except BagError as exc:
        return BagProblem(p, str(exc))
    except Exception as exc:  # anything else the storage libraries raise on garbage
        return BagProblem(p, f"cannot read bag {p}: {type(exc).__name__}: {exc}")
    return None


def check_bags(paths: Iterable[str | Path], skip_bad: bool = False, *, deep: bool = False,
               log: Callable[[str], None] | None = None) -> list[Path]:
    """The readable bags of ``paths``, in order.

    Args:
        paths: bag directories (or lone .mcap / .db3 files).
        skip_bad: False: raise :class:`BagError` naming every bad bag and its reason. True: leave them out,
            reporting each through ``log``; still raise when no bag is left.
        deep: also deserialise every message (catches corruption inside the data; costs a full read).
        log: where skipped bags are reported (default: nowhere).
    """
    good: list[Path] = []
    problems: list[BagProblem] = []
    for path in paths:
        problem = check_bag(path, deep=deep)
        if problem is None:
            good.append(Path(path))
        else:
            problems.append(problem)
    if problems and not skip_bad:
        listing = "; ".join(p.reason for p in problems)
        raise BagError(f"{len(problems)} unreadable bag(s) ({listing}); fix or remove them, or pass "
                       "--skip-bad-files to train on the others")
    for problem in problems:
        if log is not None:
            log(f"skipping unreadable bag {problem.path}: {problem.reason}")
    if problems and not good:
        raise BagError(f"every bag is unreadable: {', '.join(str(p.path) for p in problems)}")
    return good


def _checked(paths: Sequence[str], skip_bad: bool, deep: bool, log: Callable[[str], None] | None) -> tuple[str, ...]:
    return tuple(str(p) for p in check_bags(paths, skip_bad, deep=deep, log=log))


def with_checked_bags(cfg: Any, skip_bad: bool = False, *, deep: bool = False,
                      log: Callable[[str], None] | None = None) -> Any:
    """``cfg`` (a :class:`~sim2real.training.config.TrainConfig`) with its bag paths checked (see
    :func:`check_bags`): source bags (``source.kind == "bag"``: paths and val_paths) and target bags
    (``target.kind == "bag"``)."""
    source, target = cfg.source, cfg.target
    if source.kind == "bag":
        source = dataclasses.replace(
            source, paths=_checked(source.paths, skip_bad, deep, log),
            val_paths=_checked(source.val_paths, skip_bad, deep, log) if source.val_paths else source.val_paths,
        )
    if target.kind == "bag":
        target = dataclasses.replace(target, paths=_checked(target.paths, skip_bad, deep, log))
    return dataclasses.replace(cfg, source=source, target=target)
