"""The on-disk cache of exported ONNX graphs: keyed by the model's content, verified on every load.

One file per (model digest, frame size, opset, graph version, torch version)::

    <dir>/<model>_<digest[:20]>_<H>x<W>_op<opset>_g<graph version>_torch<version>.onnx
    <dir>/<same>.onnx.sha256        sha256 of the .onnx file's bytes

The model digest is :func:`model_digest`: the sha256 of the generator's tensors *and* its config (two models
with equal weights but, say, another padding mode trace different graphs). A cached file is served only when
its bytes match the ``.sha256`` beside it and the ``"sim2real.export"`` entry inside it names the same model
digest, frame size and graph version (checked by the caller with :func:`export_mismatch` once the session is
open): a damaged file, a graph swapped in from another model or a graph of another size is reported and
exported again, never served.

Writing is best effort: a cache directory that cannot be created or written (read-only, disk full) is
reported once and the graphs are then kept in memory for the life of the process, so a full disk costs one
export per frame size, not one per frame.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn

__all__ = [
    "DIGEST_FIELD",
    "OnnxGraphCache",
    "default_onnx_cache_dir",
    "export_mismatch",
    "model_digest",
    "state_digest",
]

#: the "sim2real.export" field that records the model digest a cached graph was exported from.
DIGEST_FIELD: Final = "model_sha256"
_log = logging.getLogger(__name__)


def default_onnx_cache_dir() -> Path:
    """Where exported graphs are cached: ``$SIM2REAL_CACHE_DIR/onnx``, else ``$XDG_CACHE_HOME/sim2real/onnx``,
    else ``~/.cache/sim2real/onnx``."""
    root = os.environ.get("SIM2REAL_CACHE_DIR")
    if root:
        return Path(root) / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sim2real" / "onnx"


def state_digest(module: nn.Module) -> str:
    """SHA-256 (hex) of a module's state dict: every tensor's name, dtype, shape and bytes, in key order."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_digest(module: nn.Module, config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a model's content: :func:`state_digest` of its tensors and its config as JSON."""
    h = hashlib.sha256(state_digest(module).encode())
    h.update(json.dumps(dict(config), sort_keys=True).encode())
    return h.hexdigest()


def export_mismatch(info: Mapping[str, Any], digest: str, height: int, width: int) -> str | None:
    """Why a graph's ``"sim2real.export"`` entry does not fit (model digest, frame size, graph version), or None."""
    from sim2real.translator.onnx_export import GRAPH_VERSION  # onnx / onnxruntime load on first use only

    if info.get(DIGEST_FIELD) != digest:
        return f"it was exported from model {str(info.get(DIGEST_FIELD))[:20]}, not {digest[:20]}"
    if (info.get("height"), info.get("width")) != (height, width):
        return f"it was exported for {info.get('height')}x{info.get('width')} frames, not {height}x{width}"
    if info.get("graph_version") != GRAPH_VERSION:
        return f"it has graph version {info.get('graph_version')}, not {GRAPH_VERSION}"
    return None


class OnnxGraphCache:
    """Exported graphs of one model, on disk under ``directory`` (see the module docstring)."""

    def __init__(self, directory: Path | None, model_name: str, digest: str) -> None:
        self.directory = directory or default_onnx_cache_dir()
        self.model_name, self.digest = model_name, digest
        self.writable = True

    def path(self, height: int, width: int) -> Path:
        """The cache file of ``height x width`` frames."""
        from sim2real.translator.onnx_export import DEFAULT_OPSET, GRAPH_VERSION

        name = (f"{self.model_name}_{self.digest[:20]}_{height}x{width}_op{DEFAULT_OPSET}_g{GRAPH_VERSION}"
                f"_torch{torch.__version__.split('+')[0]}.onnx")
        return self.directory / name

    def read(self, height: int, width: int) -> bytes | None:
        """The cached graph's bytes when the file exists and matches its ``.sha256``; None (reported) otherwise."""
        path = self.path(height, width)
        try:
            data = path.read_bytes()
            expected = path.with_name(path.name + ".sha256").read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as e:
            _log.warning("ONNX cache entry %s cannot be read (%s); exporting the graph again", path, e)
            return None
        if hashlib.sha256(data).hexdigest() != expected:
            _log.warning("ONNX cache entry %s does not match its .sha256 (damaged or replaced); exporting the "
                         "graph again", path)
            return None
        return data

    def write(self, height: int, width: int, data: bytes) -> None:
        """Store a graph (atomically, then its ``.sha256``). Failures are reported once; later graphs then stay
        in memory only."""
        from sim2real.translator.onnx_export import write_atomically

        if not self.writable:
            return
        path = self.path(height, width)
        try:
            write_atomically(path, data)
            write_atomically(path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())
        except OSError as e:
            self.writable = False
            _log.warning("cannot write the ONNX cache %s (%s): exported graphs are kept in memory for this "
                         "process", self.directory, e)
