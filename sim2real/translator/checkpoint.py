"""Generator checkpoints: one ``.safetensors`` file, weights plus a self-describing JSON document.

Format (``SCHEMA_VERSION`` 1)
-----------------------------
* The tensors are the generator's ``state_dict()`` (the EMA generator's when training keeps one; the
  document's ``weights`` field says which), stored with `safetensors`: no pickle anywhere, so loading a
  checkpoint never runs code.
* ``__metadata__["sim2real"]`` holds a JSON document (see :func:`checkpoint_document`)::

      schema_version       int, this module reads exactly SCHEMA_VERSION
      format               "sim2real.translator.generator"
      model_class          "TranslatorGenerator"
      model_name           GeneratorConfig.name when the config has one, else null
      config               GeneratorConfig.to_dict()  (typed config, as nanoGPT's ``model_args``)
      classes              {"names": [...], "ids": {name: train id}, "ignore_id": 255, "thing_ids": [...]}
      input_normalization  how uint8 frames become network inputs (rgb: x / 127.5 - 1 -> [-1, 1])
      output_denormalization  how the (B, 3, H, W) [-1, 1] output becomes uint8
      weights              "ema" or "raw"
      training_data        free dict describing the data the weights were trained on
      extra                free dict for the caller
      created_at           ISO-8601 UTC timestamp
      sim2real_version, torch_version
      tensor_sha256        optional sha256 of the tensors (see :func:`tensor_digest`), checked on load

* Beside it, ``<name>.json`` is a human-readable copy of the same document (``sidecar=True``). Loading
  never reads it: the embedded document is authoritative.

Safety: :func:`load_checkpoint` sniffs the first bytes before anything parses the file, refuses pickles
and ``torch.save`` zip archives outright, validates the safetensors header itself, and only then hands
the bytes to `safetensors`.

Training state (optimisers, discriminators, step counters) is deliberately *not* stored here: inference
needs only the generator. ``save_training_state`` / ``load_training_state`` belong to the trainer
(``sim2real.training``) and keep their own file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import safetensors
import safetensors.torch
import torch
from torch import nn

from sim2real import __version__ as _SIM2REAL_VERSION
from sim2real.core.errors import CheckpointError, ConfigError
from sim2real.core.labels import CLASS_NAMES, IGNORE_ID, THING_CLASSES, TRAIN_ID

if TYPE_CHECKING:
    from sim2real.translator.config import GeneratorConfig
    from sim2real.translator.generator import TranslatorGenerator

__all__ = [
    "CHECKPOINT_SUFFIX",
    "FORMAT_NAME",
    "METADATA_KEY",
    "SCHEMA_VERSION",
    "LoadedCheckpoint",
    "build_generator",
    "check_finite",
    "check_state_dict",
    "checkpoint_document",
    "config_differences",
    "load_checkpoint",
    "read_checkpoint_document",
    "save_checkpoint",
    "sidecar_path",
    "tensor_digest",
]

SCHEMA_VERSION: Final = 1
METADATA_KEY: Final = "sim2real"
FORMAT_NAME: Final = "sim2real.translator.generator"
MODEL_CLASS: Final = "TranslatorGenerator"
CHECKPOINT_SUFFIX: Final = ".safetensors"

#: rgb uint8 -> float network input: x * scale + offset == x / 127.5 - 1, range [-1, 1].
RGB_SCALE: Final = 1.0 / 127.5
RGB_OFFSET: Final = -1.0

#: a safetensors header larger than this is refused (the reference implementation uses 100 MB too).
_MAX_HEADER_BYTES: Final = 100 * 1024 * 1024
_ZIP_MAGIC: Final = b"PK\x03\x04"
_PICKLE_PROTO: Final = 0x80
#: bytes per element of the safetensors dtypes we can size-check; others are left to safetensors.
_DTYPE_SIZES: Final[dict[str, int]] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A parsed, validated checkpoint: typed config, tensors, and the embedded JSON document."""

    config: GeneratorConfig
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    path: Path | None = field(default=None, compare=False)

    @property
    def model_name(self) -> str | None:
        """The document's ``model_name`` (``config.name`` at save time, e.g. ``"lite"``), else None."""
        name = self.metadata.get("model_name")
        return name if isinstance(name, str) else None


# --------------------------------------------------------------------------------------------- helpers


def _config_to_dict(cfg: Any) -> dict[str, Any]:
    """``cfg.to_dict()`` as a plain JSON-able dict; ConfigError when cfg is not a config object."""
    to_dict = getattr(cfg, "to_dict", None)
    if not callable(to_dict):
        raise ConfigError(f"cfg must be a GeneratorConfig (with to_dict()), got {type(cfg).__name__}")
    d = to_dict()
    if not isinstance(d, dict):
        raise ConfigError(f"{type(cfg).__name__}.to_dict() returned {type(d).__name__}, expected dict")
    return d


def config_differences(expected: Any, actual: Any) -> list[str]:
    """Fields where two configs differ, each as ``"name: expected X, got Y"`` (empty when equal).

    Works on config objects (via ``to_dict()``) or plain dicts.
    """
    a = expected if isinstance(expected, Mapping) else _config_to_dict(expected)
    b = actual if isinstance(actual, Mapping) else _config_to_dict(actual)
    out = []
    for key in sorted(set(a) | set(b), key=str):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if va != vb:
            out.append(f"{key}: expected {va!r}, got {vb!r}")
    return out


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``<dir>/<name>.json`` for ``<dir>/<name>.safetensors``."""
    return Path(path).with_suffix(".json")


def _class_table() -> dict[str, Any]:
    return {
        "names": list(CLASS_NAMES),
        "ids": dict(TRAIN_ID),
        "ignore_id": IGNORE_ID,
        "thing_ids": sorted(THING_CLASSES),
    }


def _input_normalization() -> dict[str, Any]:
    return {
        "rgb": {
            "dtype": "uint8",
            "layout": "(B, 3, H, W) float32, RGB channel order",
            "formula": "x / 127.5 - 1",
            "scale": RGB_SCALE,
            "offset": RGB_OFFSET,
            "range": [-1.0, 1.0],
        },
        "semantic": {
            "dtype": "int64",
            "layout": "(B, H, W)",
            "values": f"Cityscapes train ids 0..{len(CLASS_NAMES) - 1}, {IGNORE_ID} = ignore",
            "pad_value": IGNORE_ID,
        },
        "instance": {"dtype": "int64", "layout": "(B, H, W)", "values": "0 = no instance", "pad_value": 0},
        "rgb_padding": "replicate",
    }


def _output_denormalization() -> dict[str, Any]:
    return {"rgb": {"formula": "round(clamp((y + 1) * 127.5, 0, 255))", "dtype": "uint8"}}


def _json_field(value: Any, name: str) -> Any:
    """Check that value survives a JSON round trip (no NaN, no arbitrary objects); returns it."""
    if value is None:
        return None
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"{name} must be JSON-serialisable (dicts, lists, str, finite numbers): {e}"
        ) from e


def tensor_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the tensors, independent of file layout.

    For each name in sorted order: ``name \\0 dtype \\0 shape-as-JSON \\0 raw little-endian bytes``.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(name.encode("utf-8") + b"\0")
        h.update(str(t.dtype).removeprefix("torch.").encode() + b"\0")
        h.update(json.dumps(list(t.shape)).encode() + b"\0")
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _plain_state_dict(generator: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (no shared storage, which safetensors refuses)."""
    state = generator.state_dict() if isinstance(generator, nn.Module) else generator
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(
                f"state_dict entry {k!r} is a {type(v).__name__}, not a tensor; "
                "safetensors checkpoints hold tensors only"
            )
        out[str(k)] = v.detach().to("cpu", copy=True).contiguous()
    return out


def checkpoint_document(
    cfg: GeneratorConfig,
    *,
    training_data: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    ema: bool = False,
    tensor_sha256: str | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """The JSON document embedded in (and written beside) a checkpoint. See the module docstring."""
    config = _json_field(_config_to_dict(cfg), "cfg.to_dict()")
    name = getattr(cfg, "name", None)
    return {
        "schema_version": SCHEMA_VERSION,
        "format": FORMAT_NAME,
        "model_class": MODEL_CLASS,
        "model_name": name if isinstance(name, str) else None,
        "config": config,
        "classes": _class_table(),
        "input_normalization": _input_normalization(),
        "output_denormalization": _output_denormalization(),
        "weights": "ema" if ema else "raw",
        "training_data": _json_field(dict(training_data) if training_data else {}, "training_data"),
        "extra": _json_field(dict(extra) if extra else {}, "extra"),
        "created_at": created_at or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sim2real_version": _SIM2REAL_VERSION,
        "torch_version": torch.__version__,
        "tensor_sha256": tensor_sha256,
    }


def _atomic_write(path: Path, data: bytes) -> None:
    """Write data to path via a temp file in the same directory, fsync, then os.replace."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the platform allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# ------------------------------------------------------------------------------------------------ save


def save_checkpoint(
    path: str | os.PathLike[str],
    generator: nn.Module | Mapping[str, torch.Tensor],
    cfg: GeneratorConfig,
    *,
    training_data: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    ema: bool = False,
    sidecar: bool = True,
    digest: bool = True,
) -> Path:
    """Write ``generator``'s weights and ``cfg`` to ``path`` (``*.safetensors``), atomically.

    Args:
        path: destination; must end in ``.safetensors``. Parent directories are created.
        generator: the generator module (pass the EMA copy when training keeps one) or its state_dict.
        cfg: the GeneratorConfig the generator was built with. When the module carries ``cfg`` /
            ``config`` itself, the two must agree.
        training_data: free JSON-able description of the training data (datasets, frame counts, ...).
        extra: free JSON-able dict stored under ``extra``.
        ema: True when the weights are an exponential moving average.
        sidecar: also write ``<name>.json`` (same document, indented) beside the checkpoint.
        digest: store ``tensor_sha256`` so loading can detect silent corruption.

    Returns:
        The checkpoint path.
    """
    path = Path(path)
    if path.suffix != CHECKPOINT_SUFFIX:
        raise CheckpointError(f"checkpoint path {str(path)!r} must end in {CHECKPOINT_SUFFIX!r}")
    if isinstance(generator, nn.Module):
        own = getattr(generator, "cfg", None) or getattr(generator, "config", None)
        if own is not None and callable(getattr(own, "to_dict", None)):
            diff = config_differences(cfg, own)
            if diff:
                raise ConfigError(
                    "cfg does not match the config the generator was built with: " + "; ".join(diff)
                )
    state = _plain_state_dict(generator)
    if not state:
        raise CheckpointError("generator has no parameters or buffers to save")
    doc = checkpoint_document(
        cfg,
        training_data=training_data,
        extra=extra,
        ema=ema,
        tensor_sha256=tensor_digest(state) if digest else None,
    )
    blob = safetensors.torch.save(
        state, metadata={METADATA_KEY: json.dumps(doc, sort_keys=True, separators=(",", ":")), "format": "pt"}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, blob)
    if sidecar:
        _atomic_write(sidecar_path(path), (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    return path


# ------------------------------------------------------------------------------------------------ load


def _looks_like_safetensors(data: bytes) -> bool:
    """Plausible safetensors framing: u64 LE header length that fits the file, header starting '{'.

    A safetensors file's first byte is the low byte of that length, so it can be anything (0x80
    included); the framing, not the first byte, is what identifies the format.
    """
    if len(data) < 9:
        return False
    n = int.from_bytes(data[:8], "little")
    return 2 <= n <= min(_MAX_HEADER_BYTES, len(data) - 8) and data[8:9] == b"{"


def _refuse_unsafe(path: Path, data: bytes) -> None:
    """Name pickles and torch.save archives by their magic bytes, before any parser sees the file.

    Only called when the framing is not safetensors'. Nothing here (or anywhere in this module) ever
    unpickles: the checks choose the error message, safety does not depend on them.
    """
    if data.startswith(_ZIP_MAGIC):
        raise CheckpointError(
            f"{path} is a zip archive (torch.save file); sim2real loads safetensors only. "
            "Convert it once in a trusted environment, never load it here."
        )
    # pickle protocol >= 2: PROTO opcode 0x80, the protocol number, then an opcode (never 0x00, which is
    # what a small safetensors header length has in that place)
    if len(data) >= 3 and data[0] == _PICKLE_PROTO and 2 <= data[1] <= 5 and data[2] != 0:
        raise CheckpointError(
            f"{path} is a pickle / torch.save file (pickle protocol {data[1]} header); "
            "sim2real loads safetensors only"
        )


def _parse_header(path: Path, data: bytes) -> dict[str, Any]:
    """Validate the safetensors framing of ``data`` and return the header JSON object."""
    size = len(data)
    if size < 8:
        raise CheckpointError(f"{path} is not a safetensors file: only {size} bytes (truncated or empty)")
    n = int.from_bytes(data[:8], "little")
    if n < 2 or n > _MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{path} is not a safetensors file: header length field is {n} "
            f"(expected 2..{_MAX_HEADER_BYTES}); is it a pickle / torch.save file or corrupt?"
        )
    if 8 + n > size:
        raise CheckpointError(
            f"{path} is truncated: safetensors header needs {n} bytes "
            f"but only {size - 8} follow the length field"
        )
    raw = data[8 : 8 + n]
    if raw[:1] != b"{":
        raise CheckpointError(f"{path} is not a safetensors file: header does not start with '{{'")
    try:
        header = json.loads(raw.decode("utf-8").rstrip(" "))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} has a corrupt safetensors header (invalid JSON: {e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a corrupt safetensors header: expected a JSON object")
    _check_spans(path, header, payload=size - 8 - n)
    return header


def _check_spans(path: Path, header: dict[str, Any], *, payload: int) -> None:
    """Every tensor entry well-formed, sized by dtype x shape, and the spans tile the payload exactly."""
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(entry, dict) and {"dtype", "shape", "data_offsets"} <= entry.keys()):
            raise CheckpointError(f"{path}: safetensors header entry {name!r} lacks dtype/shape/data_offsets")
        offs, shape = entry["data_offsets"], entry["shape"]
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)):
            raise CheckpointError(f"{path}: tensor {name!r} has malformed data_offsets {offs!r}")
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise CheckpointError(f"{path}: tensor {name!r} has malformed shape {shape!r}")
        start, end = offs
        itemsize = _DTYPE_SIZES.get(entry["dtype"])
        if itemsize is not None and end - start != math.prod(shape) * itemsize:
            raise CheckpointError(
                f"{path}: tensor {name!r} ({entry['dtype']}, shape {shape}) needs "
                f"{math.prod(shape) * itemsize} bytes, header gives {end - start}"
            )
        spans.append((start, end, name))
    spans.sort()
    pos = 0
    for start, end, name in spans:
        if start != pos or end < start:
            raise CheckpointError(
                f"{path}: tensor {name!r} data_offsets [{start}, {end}] overlap or leave a gap"
            )
        pos = end
    if pos != payload:
        what = "truncated" if pos > payload else "has trailing bytes"
        raise CheckpointError(
            f"{path} is {what}: header describes {pos} bytes of tensor data, file holds {payload}"
        )


def _expect(path: Path, doc: Mapping[str, Any], key: str, expected: Any, *, prefix: str = "") -> None:
    actual = doc.get(key, "<missing>")
    if actual != expected:
        raise CheckpointError(f"{path}: field {prefix + key!r} is {actual!r}, expected {expected!r}")


def _validate_document(path: Path, doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise CheckpointError(
            f"{path}: metadata {METADATA_KEY!r} must be a JSON object, got {type(doc).__name__}"
        )
    version = doc.get("schema_version", "<missing>")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: field 'schema_version' is {version!r}, expected {SCHEMA_VERSION} "
            "(this sim2real reads exactly that schema)"
        )
    _expect(path, doc, "format", FORMAT_NAME)
    _expect(path, doc, "model_class", MODEL_CLASS)
    classes = doc.get("classes")
    if not isinstance(classes, dict):
        raise CheckpointError(f"{path}: field 'classes' is missing or not an object")
    names = classes.get("names")
    if names != list(CLASS_NAMES):
        detail = "missing"
        if isinstance(names, list):
            bad = [i for i in range(max(len(names), len(CLASS_NAMES)))
                   if i >= len(names) or i >= len(CLASS_NAMES) or names[i] != CLASS_NAMES[i]]
            i = bad[0]
            got = names[i] if i < len(names) else "<missing>"
            want = CLASS_NAMES[i] if i < len(CLASS_NAMES) else "<none>"
            detail = f"{len(names)} names, first difference at id {i}: {got!r}, expected {want!r}"
        raise CheckpointError(f"{path}: field 'classes.names' does not match sim2real.core.labels ({detail})")
    _expect(path, classes, "ignore_id", IGNORE_ID, prefix="classes.")
    norm = doc.get("input_normalization")
    rgb = norm.get("rgb") if isinstance(norm, dict) else None
    if not (isinstance(rgb, dict) and rgb.get("scale") == RGB_SCALE and rgb.get("offset") == RGB_OFFSET):
        raise CheckpointError(
            f"{path}: field 'input_normalization.rgb' is {rgb!r}, "
            f"expected scale {RGB_SCALE} offset {RGB_OFFSET}"
        )
    if not isinstance(doc.get("config"), dict):
        raise CheckpointError(f"{path}: field 'config' is missing or not an object")
    return doc


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint {path} does not exist") from e
    except IsADirectoryError as e:
        raise CheckpointError(f"checkpoint {path} is a directory, expected a .safetensors file") from e
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {e}") from e


def _document_from(path: Path, data: bytes) -> dict[str, Any]:
    if not _looks_like_safetensors(data):
        _refuse_unsafe(path, data[:16])
    header = _parse_header(path, data)  # the detailed framing errors (truncation, bad length, ...)
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or METADATA_KEY not in meta:
        raise CheckpointError(
            f"{path} is a safetensors file without a __metadata__[{METADATA_KEY!r}] document; "
            "was it written by sim2real.translator.checkpoint.save_checkpoint?"
        )
    try:
        doc = json.loads(meta[METADATA_KEY])
    except (TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: __metadata__[{METADATA_KEY!r}] is not valid JSON: {e}") from e
    return _validate_document(path, doc)


def read_checkpoint_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated embedded JSON document of a checkpoint, without materialising the tensors."""
    path = Path(path)
    return _document_from(path, _read_bytes(path))


def _parse_config(path: Path, d: dict[str, Any]) -> GeneratorConfig:
    from sim2real.translator.config import GeneratorConfig

    try:
        return GeneratorConfig.from_dict(d)
    except (ConfigError, TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: field 'config' is not a valid GeneratorConfig: {e}") from e


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    *,
    verify_digest: bool = True,
) -> LoadedCheckpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Refuses, with a CheckpointError naming the file: pickles and ``torch.save`` files (sniffed from the
    magic bytes before any parsing), anything without a valid safetensors header, truncated or corrupt
    files, a ``schema_version`` other than SCHEMA_VERSION, a class table that differs from
    ``sim2real.core.labels``, a config that GeneratorConfig.from_dict rejects (every field bounded, checked
    before any tensor is read), (``verify_digest``) tensors whose sha256 differs from the stored
    ``tensor_sha256``, and tensors holding NaN or infinity (naming them). The node, translate-bag, eval and the
    trainer's ``init_from`` all load through here.
    """
    path = Path(path)
    data = _read_bytes(path)
    doc = _document_from(path, data)
    config = _parse_config(path, doc["config"])
    try:
        tensors = safetensors.torch.load(data)
    except safetensors.SafetensorError as e:
        raise CheckpointError(f"{path} is a corrupt safetensors file: {e}") from e
    expected_digest = doc.get("tensor_sha256")
    if verify_digest and expected_digest is not None:
        actual = tensor_digest(tensors)
        if actual != expected_digest:
            raise CheckpointError(
                f"{path}: tensor data does not match field 'tensor_sha256' "
                f"(expected {expected_digest}, computed {actual}); the file is corrupt"
            )
    check_finite(tensors, source=str(path))
    device = torch.device(map_location)
    if device.type != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return LoadedCheckpoint(config=config, state_dict=tensors, metadata=doc, path=path)


def check_finite(tensors: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> None:
    """Raise CheckpointError naming every floating-point tensor that holds NaN or infinity (with counts)."""
    bad = []
    for name in sorted(tensors):
        t = tensors[name]
        if t.is_floating_point() or t.is_complex():
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                bad.append(f"{name} ({int((~finite).sum())} of {t.numel()} values)")
    if bad:
        raise CheckpointError(f"{source}: tensor(s) holding NaN or inf: {', '.join(bad[:8])}"
                              f"{f' and {len(bad) - 8} more' if len(bad) > 8 else ''}; the weights are unusable")


# ----------------------------------------------------------------------------------------------- build


def check_state_dict(
    expected: Mapping[str, torch.Tensor], actual: Mapping[str, torch.Tensor], *, source: str = "checkpoint"
) -> None:
    """Raise CheckpointError listing missing, unexpected and shape-mismatched keys (with shapes)."""
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    mismatched = [
        f"{k}: model {tuple(expected[k].shape)}, {source} {tuple(actual[k].shape)}"
        for k in sorted(set(expected) & set(actual))
        if tuple(expected[k].shape) != tuple(actual[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): " + ", ".join(
            f"{k} {tuple(expected[k].shape)}" for k in missing))
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): " + ", ".join(
            f"{k} {tuple(actual[k].shape)}" for k in unexpected))
    if mismatched:
        parts.append(f"shape mismatches ({len(mismatched)}): " + "; ".join(mismatched))
    raise CheckpointError(f"{source} does not fit the generator: " + " | ".join(parts))


def build_generator(
    loaded: LoadedCheckpoint, *, expected_config: GeneratorConfig | None = None
) -> TranslatorGenerator:
    """Instantiate ``TranslatorGenerator(loaded.config)`` and load the weights strictly, in eval mode.

    The config's network is first built on the ``meta`` device (shapes, no memory) and checked against the
    tensors: a small file whose config describes a huge network fails there, before anything is allocated.

    Args:
        loaded: result of :func:`load_checkpoint`.
        expected_config: when given, the checkpoint's config must equal it (error names each field).

    The module is created on the device the tensors live on.
    """
    from sim2real.translator.generator import TranslatorGenerator

    source = str(loaded.path) if loaded.path is not None else "checkpoint"
    if expected_config is not None:
        diff = config_differences(expected_config, loaded.config)
        if diff:
            raise CheckpointError(f"{source}: config does not match the expected config: " + "; ".join(diff))
    with torch.device("meta"):  # shapes only: a config that does not match the tensors allocates nothing
        skeleton = TranslatorGenerator(loaded.config)
    check_state_dict(skeleton.state_dict(), loaded.state_dict, source=source)
    gen = TranslatorGenerator(loaded.config)
    first = next(iter(loaded.state_dict.values()))
    gen.to(first.device)
    gen.load_state_dict(loaded.state_dict, strict=True)
    gen.eval()
    return gen
