"""Training state on disk: safetensors + JSON only (no pickle), written atomically, verified on load.

A training checkpoint is a directory ``step_NNNNNNNN/`` with ``state.safetensors`` (every tensor: weights,
optimizer moments, EMA, RNG states) and ``state.json`` (everything else, with ``{"__tensor__": key}``
references into the tensor file, plus the tensor file's SHA-256). It is written into ``<name>.tmp-<pid>`` and
renamed into place, and ``latest.json`` is replaced atomically afterwards, so a crash at any instant leaves
either the previous checkpoint or the new one, never a half-written one that resume would pick.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sim2real.core.errors import CheckpointError

__all__ = [
    "EXPORTED_GENERATOR", "find_resumable", "flatten", "list_checkpoints", "prune_checkpoints", "read_state",
    "read_state_scalars", "unflatten", "write_state",
]

TENSOR_REF = "__tensor__"
TUPLE_REF = "__tuple__"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
LATEST = "latest.json"
#: the EMA generator a checkpoint directory also holds as an inference checkpoint (``CheckpointDir.save``)
EXPORTED_GENERATOR = "generator.safetensors"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Replace every tensor in a nested dict/list/tuple by a reference; collect tensors in ``tensors``.

    Supports the structures of ``state_dict()`` of modules, optimizers, LR schedulers and GradScalers.
    Dict keys become strings (int keys of optimizer state are restored by :func:`unflatten`).
    """
    if isinstance(obj, torch.Tensor):
        key = prefix or "tensor"
        tensors[key] = obj.detach().cpu().contiguous()
        return {TENSOR_REF: key}
    if isinstance(obj, Mapping):
        return {"__dict__": [[_key(k), flatten(v, tensors, f"{prefix}.{k}" if prefix else str(k))]
                             for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {TUPLE_REF: [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise CheckpointError(f"cannot store {type(obj).__name__} at {prefix!r} in a training state "
                          "(only tensors, dicts, lists, tuples and JSON scalars)")


def _key(k: Any) -> Any:
    if isinstance(k, bool) or not isinstance(k, int | str):
        raise CheckpointError(f"state dict key {k!r} must be an int or str")
    return k


def unflatten(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(obj, dict):
        if TENSOR_REF in obj:
            key = obj[TENSOR_REF]
            if key not in tensors:
                raise CheckpointError(f"training state references tensor {key!r} missing from {STATE_TENSORS}")
            return tensors[key]
        if TUPLE_REF in obj:
            return tuple(unflatten(v, tensors) for v in obj[TUPLE_REF])
        return {k: unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete ``*.tmp-<pid>`` checkpoints / latest files left by processes that died while writing them."""
    removed = []
    for p in Path(directory).glob("*.tmp-*"):
        pid = p.name.rsplit(".tmp-", 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def write_state(directory: str | Path, name: str, state: Mapping[str, Any],
                extra_files: Mapping[str, Any] | None = None) -> Path:
    """Write ``state`` atomically as ``directory/name/`` and point ``directory/latest.json`` at it.

    ``extra_files`` maps file names to callables ``f(path)`` that write more files into the checkpoint
    (e.g. the inference ``.safetensors`` of the EMA generator) before it is renamed into place.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory)
    final = directory / name
    tmp = directory / f"{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        tensors: dict[str, torch.Tensor] = {}
        skeleton = flatten(dict(state), tensors)
        save_file(tensors, str(tmp / STATE_TENSORS))
        for filename, writer in (extra_files or {}).items():
            writer(tmp / filename)
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
        doc = {"format": "sim2real-training-state", "version": 1, "files": files, "state": skeleton}
        with open(tmp / STATE_JSON, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        for p in tmp.iterdir():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    latest_tmp = directory / f"{LATEST}.tmp-{os.getpid()}"
    latest_tmp.write_text(json.dumps({"checkpoint": name}))
    os.replace(latest_tmp, directory / LATEST)
    return final


def _read_document(path: Path) -> dict[str, Any]:
    """``path/state.json`` parsed and checked to be a training state; CheckpointError otherwise."""
    doc_path = path / STATE_JSON
    try:
        doc = json.loads(doc_path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path} is not a training checkpoint: {STATE_JSON} missing") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"corrupt {doc_path}: {exc}") from exc
    if doc.get("format") != "sim2real-training-state":
        raise CheckpointError(f"{doc_path}: field 'format' is {doc.get('format')!r}, "
                              "expected 'sim2real-training-state'")
    return doc


def read_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint directory written by :func:`write_state`; CheckpointError if corrupt."""
    path = Path(path)
    doc = _read_document(path)
    for filename, digest in doc["files"].items():
        file = path / filename
        if not file.is_file():
            raise CheckpointError(f"training checkpoint {path} lacks {filename}")
        if _sha256(file) != digest:
            raise CheckpointError(f"training checkpoint file {file} is corrupt (SHA-256 mismatch)")
    try:
        tensors = load_file(str(path / STATE_TENSORS), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:  # a pickle or garbage whose digest was forged
        raise CheckpointError(f"training checkpoint file {path / STATE_TENSORS} is not a valid safetensors file:"
                              f" {exc}") from exc
    return unflatten(doc["state"], tensors)


def read_state_scalars(path: str | Path) -> dict[str, Any]:
    """The top-level JSON scalars of a checkpoint directory's state (step, config, ...) without reading its
    tensors or verifying their digests; CheckpointError if ``state.json`` is missing or not a training state."""
    doc = _read_document(Path(path))
    return {k: v for k, v in doc["state"]["__dict__"] if v is None or isinstance(v, bool | int | float | str)}


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Completed ``step_*`` checkpoint directories, oldest first (temporary ones excluded)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("step_*") if p.is_dir() and ".tmp-" not in p.name)


def find_resumable(directory: str | Path) -> Path | None:
    """The newest checkpoint that verifies, preferring ``latest.json``; None if there is none.

    A checkpoint that fails verification (e.g. a disk that lied about a write) is skipped for the one
    before it, never used.
    """
    directory = Path(directory)
    candidates = list_checkpoints(directory)[::-1]
    try:
        latest = json.loads((directory / LATEST).read_text())["checkpoint"]
        candidates.sort(key=lambda p: p.name != latest)
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        pass
    for candidate in candidates:
        try:
            read_state(candidate)
        except CheckpointError:
            continue
        return candidate
    return None


def prune_checkpoints(directory: str | Path, keep_last: int, keep: set[str] | None = None) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints (and those named in ``keep``); return deleted."""
    keep = keep or set()
    existing = list_checkpoints(directory)
    doomed = [p for p in existing[: max(0, len(existing) - keep_last)] if p.name not in keep]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed
