"""Inference API: ``Translator`` turns simulator frames into photorealistic frames.

    tr = Translator.from_checkpoint("models/gen.safetensors")          # device/precision "auto"
    real = tr.translate(rgb, semantic, instance)                         # numpy uint8 in, numpy uint8 out

Inputs (numpy arrays or torch tensors, all three of the same kind, same leading dims):

* ``rgb``       uint8 ``(H, W, 3)`` or ``(B, H, W, 3)``, RGB order
* ``semantic``  integer (uint8 canonical) ``(H, W)`` / ``(B, H, W)``: train ids 0..18 or 255 (ignore)
* ``instance``  integer (uint16 canonical) ``(H, W)`` / ``(B, H, W)``: 0 = no instance, ids >= 0

The output has the kind, shape and device of ``rgb`` and dtype uint8. Any H, W work: frames are padded
on the bottom/right to the network stride (rgb replicated, semantic with 255, instance with 0; at least
two content cells per side) and the result cropped back. Normalisation is the checkpoint's:
``x / 127.5 - 1`` in, ``(y + 1) * 127.5`` out.

Execution: eval mode under ``torch.inference_mode``; fp32 weights with autocast for ``fp16``/``bf16``;
optional channels_last and ``torch.compile``. The network has no sampling at inference (``style=None``),
so the same input gives the same output.

Backends (``backend=``): ``"torch"`` (eager, the default of the constructors), ``"onnxruntime"`` (CPU,
fp32: the graph is exported with :func:`~sim2real.translator.onnx_export.export_onnx` on first use of a
frame size and cached on disk under :func:`default_onnx_cache_dir`, keyed by the weights' digest, the
size, the opset, the graph version and the torch version) and ``"auto"`` (onnxruntime on CPU in fp32
when ``onnxruntime`` is importable, torch otherwise, e.g. on CUDA). Outputs of the two backends agree to
~1e-6 in [-1, 1] space (checked by ``test/test_fast_paths.py``).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID
from sim2real.translator.checkpoint import build_generator, load_checkpoint

if TYPE_CHECKING:
    from sim2real.translator.config import GeneratorConfig
    from sim2real.translator.onnx_export import OnnxTranslator

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Precision",
    "Translator",
    "check_frames",
    "check_label_values",
    "default_onnx_cache_dir",
    "denormalize_rgb",
    "normalize_rgb",
    "pad_to_stride",
    "padded_size",
    "resolve_backend",
    "resolve_device",
    "resolve_precision",
    "state_digest",
]

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: Final[tuple[str, ...]] = ("auto", "fp32", "fp16", "bf16")
#: inference backends: "auto" = onnxruntime on CPU (fp32) when importable, else torch.
BACKENDS: Final[tuple[str, ...]] = ("auto", "torch", "onnxruntime")
_AUTOCAST_DTYPES: Final = {"fp16": torch.float16, "bf16": torch.bfloat16}
#: instance ids live in the uint16 space (sim2real.core.labels); the box extraction indexes tables that long.
_MAX_INSTANCE_ID: Final = 65535
#: frames are padded so the content code has at least this many cells per side (see padded_size).
MIN_CONTENT_CELLS: Final = 2

ArrayOrTensor = np.ndarray | Tensor


# ------------------------------------------------------------------------------------- pure helpers


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available else ``cpu``; ``"cpu"``; ``"cuda"`` / ``"cuda:N"`` checked.

    Raises:
        ConfigError: unknown device string, CUDA requested but unavailable, or N out of range.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(
            f"device {device!r} is not valid; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from e
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ConfigError(f"device {device!r} is not supported; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} requested but CUDA is not available "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); use 'cpu' or 'auto'"
        )
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if not 0 <= index < count:
        raise ConfigError(
            f"device {device!r}: CUDA device index {index} out of range, {count} device(s) visible"
        )
    return torch.device("cuda", index)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Map ``"auto"`` to a concrete precision for ``device`` and check the combination is usable.

    ``auto``: bf16 on CUDA devices that support it, else fp16 on CUDA, fp32 on CPU. fp16 needs CUDA;
    bf16 runs on CUDA (when supported) and on CPU (CPU autocast).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not valid; expected one of {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    if precision == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and not cuda:
        raise ConfigError(
            f"precision 'fp16' needs a CUDA device, got device {str(device)!r}; use 'fp32' or 'bf16'"
        )
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"precision 'bf16' is not supported on {torch.cuda.get_device_name(device)}; use 'fp16'"
        )
    return precision


def _onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def resolve_backend(backend: str, device: torch.device, precision: str) -> str:
    """Concrete backend (``"torch"`` or ``"onnxruntime"``) for ``backend`` on ``device`` at ``precision``.

    ``auto``: onnxruntime on a CPU device in fp32 when ``onnxruntime`` (and ``onnx``) are importable, torch
    otherwise (CUDA, fp16 / bf16). An explicit ``onnxruntime`` needs all three conditions.

    Raises:
        ConfigError: unknown backend, or ``onnxruntime`` requested where it cannot run (the message says why).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not valid; expected one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return "torch"
    usable = device.type == "cpu" and precision == "fp32" and _onnxruntime_available()
    if backend == "auto":
        return "onnxruntime" if usable else "torch"
    if device.type != "cpu":
        raise ConfigError(f"backend 'onnxruntime' runs on the CPU only, got device {str(device)!r}; use 'torch'")
    if precision != "fp32":
        raise ConfigError(f"backend 'onnxruntime' runs fp32 only, got precision {precision!r}")
    if not usable:
        raise ConfigError("backend 'onnxruntime' needs the onnxruntime and onnx packages, which are not importable")
    return "onnxruntime"


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


def normalize_rgb(rgb: Tensor) -> Tensor:
    """uint8 ``(B, H, W, 3)`` -> float32 ``(B, 3, H, W)`` in [-1, 1], ``x / 127.5 - 1``."""
    return rgb.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def denormalize_rgb(y: Tensor) -> Tensor:
    """float ``(B, 3, H, W)`` in [-1, 1] -> uint8 ``(B, H, W, 3)``, ``round(clamp((y + 1) * 127.5))``."""
    return ((y.float() + 1.0) * 127.5).clamp_(0.0, 255.0).round_().to(torch.uint8).permute(0, 2, 3, 1)


def padded_size(height: int, width: int, stride: int, min_cells: int = MIN_CONTENT_CELLS) -> tuple[int, int]:
    """Smallest ``(H', W') >= (H, W)`` that are multiples of ``stride`` and at least ``min_cells * stride``.

    The floor keeps the content code (at ``1 / stride``) at least ``min_cells`` cells per side: instance
    normalisation needs more than one spatial element, so a tiny frame is padded further.
    """
    floor = min_cells * stride
    return max(-(-height // stride) * stride, floor), max(-(-width // stride) * stride, floor)


def pad_to_stride(
    rgb: Tensor, semantic: Tensor, instance: Tensor, stride: int, min_cells: int = MIN_CONTENT_CELLS
) -> tuple[Tensor, Tensor, Tensor]:
    """Pad bottom/right to :func:`padded_size` (multiples of ``stride``, >= ``min_cells * stride``).

    Shapes: rgb ``(B, 3, H, W)`` float (replicate padding), semantic ``(B, H, W)`` (padded with 255),
    instance ``(B, H, W)`` (padded with 0) -> the same at ``(H', W')``. Unpadded inputs are returned as is.
    """
    H, W = rgb.shape[-2:]
    Hp, Wp = padded_size(int(H), int(W), stride, min_cells)
    ph, pw = Hp - H, Wp - W
    if ph == 0 and pw == 0:
        return rgb, semantic, instance
    return (
        F.pad(rgb, (0, pw, 0, ph), mode="replicate"),
        F.pad(semantic, (0, pw, 0, ph), value=IGNORE_ID),
        F.pad(instance, (0, pw, 0, ph), value=0),
    )


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray | Tensor):
        return f"{type(x).__module__.split('.')[0]} {tuple(x.shape)} {x.dtype}"
    return type(x).__name__


def _is_integer_dtype(x: ArrayOrTensor) -> bool:
    if isinstance(x, np.ndarray):
        return np.issubdtype(x.dtype, np.integer)
    return not (x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool)


def _to_tensor(x: ArrayOrTensor) -> Tensor:
    """numpy -> torch without a warning for read-only arrays (copies those); tensors pass through."""
    if isinstance(x, Tensor):
        return x
    if x.dtype.kind == "u" and x.dtype.itemsize > 1:  # uint16/32/64: widen on the host, exactly
        x = x.astype(np.int32 if x.dtype.itemsize == 2 else np.int64)
    elif not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    elif not x.flags.writeable:
        x = np.array(x, order="C", copy=True)
    return torch.from_numpy(x)


def check_frames(
    rgb: ArrayOrTensor, semantic: ArrayOrTensor, instance: ArrayOrTensor
) -> tuple[Tensor, Tensor, Tensor, bool]:
    """Validate kinds, shapes and dtypes of one frame or a batch (see the module docstring).

    Returns ``(rgb (B, H, W, 3) uint8, semantic (B, H, W), instance (B, H, W), batched)`` as tensors on
    the inputs' device (numpy inputs become CPU tensors; uint16+ ids are widened exactly).

    Raises:
        TypeError: the arguments are not all numpy arrays or all torch tensors.
        ValueError: a shape or dtype does not match; the message names the argument, expected and actual.
    """
    if not isinstance(rgb, np.ndarray | Tensor):
        raise TypeError(f"rgb must be a numpy array or torch tensor, got {_describe(rgb)}")
    kind = np.ndarray if isinstance(rgb, np.ndarray) else Tensor
    for name, arr in (("semantic", semantic), ("instance", instance)):
        if not isinstance(arr, kind):
            raise TypeError(
                f"{name} must be a {'numpy array' if kind is np.ndarray else 'torch tensor'} like rgb, "
                f"got {_describe(arr)}"
            )
    if rgb.ndim not in (3, 4) or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3) or (B, H, W, 3), got {tuple(rgb.shape)}")
    if rgb.dtype not in (np.uint8, torch.uint8):
        raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    lead = tuple(rgb.shape[:-1])
    if min(lead) < 1:
        raise ValueError(f"rgb has an empty dimension: shape {tuple(rgb.shape)}")
    for name, arr, canonical in (("semantic", semantic, "uint8"), ("instance", instance, "uint16")):
        if tuple(arr.shape) != lead:
            raise ValueError(
                f"{name} must have shape {lead} to match rgb {tuple(rgb.shape)}, got {tuple(arr.shape)}"
            )
        if not _is_integer_dtype(arr):
            raise ValueError(f"{name} must be an integer array ({canonical} canonical), got {arr.dtype}")
    batched = rgb.ndim == 4
    rgb_t, sem_t, inst_t = (_to_tensor(a) for a in (rgb, semantic, instance))
    if not batched:
        rgb_t, sem_t, inst_t = rgb_t[None], sem_t[None], inst_t[None]
    return rgb_t, sem_t, inst_t, batched


def check_label_values(semantic: Tensor, instance: Tensor) -> None:
    """Raise LabelError for semantic ids outside 0..18 and 255, or instance ids outside 0..65535."""
    bad = ((semantic >= NUM_CLASSES) & (semantic != IGNORE_ID)) | (semantic < 0)
    if bool(bad.any()):
        values = torch.unique(semantic[bad])[:8].tolist()
        raise LabelError(
            f"semantic holds ids {values} outside the canonical space 0..{NUM_CLASSES - 1} and {IGNORE_ID}"
        )
    if bool(((instance < 0) | (instance > _MAX_INSTANCE_ID)).any()):
        raise LabelError(
            f"instance holds ids {int(instance.min())}..{int(instance.max())}; expected "
            f"0 = none and ids 1..{_MAX_INSTANCE_ID} (uint16 space)"
        )


# ----------------------------------------------------------------------------------------- Translator


class Translator:
    """Frame-in, frame-out inference around a ``TranslatorGenerator`` (see the module docstring).

    Build with :meth:`from_checkpoint` or :meth:`from_generator`; not thread-safe (one caller at a time).
    """

    def __init__(
        self,
        generator: nn.Module,
        cfg: GeneratorConfig,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        channels_last: bool = True,
        compile: bool = False,
        metadata: Mapping[str, Any] | None = None,
        backend: str = "torch",
        threads: int | None = None,
        onnx_cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Wrap ``generator`` (moved to ``device``, eval mode). Prefer the two constructors.

        ``backend``: see the module docstring (:data:`BACKENDS`). ``threads``: onnxruntime intra-op threads
        (default: ``torch.get_num_threads()``). ``onnx_cache_dir``: where exported graphs are kept
        (default :func:`default_onnx_cache_dir`; a temporary directory when that is not writable).
        """
        self._device = resolve_device(device)
        self._precision = resolve_precision(precision, self._device)
        self._backend = resolve_backend(backend, self._device, self._precision)
        self._threads = int(threads) if threads else torch.get_num_threads()
        self._onnx_cache_dir = Path(onnx_cache_dir) if onnx_cache_dir is not None else None
        self._sessions: dict[tuple[int, int], OnnxTranslator] = {}
        self._digest: str | None = None
        self._cfg = cfg
        self._metadata = dict(metadata or {})
        self._channels_last = bool(channels_last)
        stride = int(getattr(cfg, "stride", 1))
        if stride < 1:
            raise ConfigError(f"cfg.stride must be >= 1, got {stride}")
        self._stride = stride
        gen = generator.to(self._device).eval()
        for p in gen.parameters():
            p.requires_grad_(False)
        if self._channels_last:
            gen = gen.to(memory_format=torch.channels_last)
        self._generator = gen
        self._forward: Callable[[Tensor, Tensor, Tensor], Tensor] = gen.translate
        if compile:
            self._forward = torch.compile(gen.translate, dynamic=False)
        self._compiled = bool(compile)

    # ---------------------------------------------------------------------------------- constructors
    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        precision: str = "auto",
        channels_last: bool = True,
        compile: bool = False,
        *,
        backend: str = "torch",
        threads: int | None = None,
        onnx_cache_dir: str | os.PathLike[str] | None = None,
    ) -> Translator:
        """Load a ``.safetensors`` checkpoint (see ``checkpoint.py``) and wrap its generator.

        Device, precision and backend are validated before the file is read, so a bad argument fails fast.
        """
        dev = resolve_device(device)
        resolve_backend(backend, dev, resolve_precision(precision, dev))
        loaded = load_checkpoint(path, map_location="cpu")
        gen = build_generator(loaded)
        return cls(
            gen, loaded.config, device=dev, precision=precision, channels_last=channels_last,
            compile=compile, metadata=loaded.metadata, backend=backend, threads=threads,
            onnx_cache_dir=onnx_cache_dir,
        )

    @classmethod
    def from_generator(
        cls,
        generator: nn.Module,
        cfg: GeneratorConfig,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        channels_last: bool = True,
        compile: bool = False,
        copy_module: bool = True,
        metadata: Mapping[str, Any] | None = None,
        backend: str = "torch",
        threads: int | None = None,
        onnx_cache_dir: str | os.PathLike[str] | None = None,
    ) -> Translator:
        """Wrap an in-memory generator (tests, the trainer's validation).

        ``copy_module=True`` (default) deep-copies it first, so the caller's module keeps its device,
        mode, memory format and ``requires_grad`` flags.
        """
        gen = copy.deepcopy(generator) if copy_module else generator
        return cls(
            gen, cfg, device=device, precision=precision, channels_last=channels_last,
            compile=compile, metadata=metadata, backend=backend, threads=threads, onnx_cache_dir=onnx_cache_dir,
        )

    # ------------------------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        """The device the network runs on."""
        return self._device

    @property
    def backend(self) -> str:
        """Concrete backend: ``"torch"`` or ``"onnxruntime"``."""
        return self._backend

    @property
    def precision(self) -> str:
        """Concrete precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (autocast)."""
        return self._precision

    @property
    def config(self) -> GeneratorConfig:
        """The GeneratorConfig of the wrapped network."""
        return self._cfg

    @property
    def model_name(self) -> str:
        """``config.name`` (e.g. ``"lite"``) if set, else the checkpoint's ``model_name``, else "custom"."""
        name = getattr(self._cfg, "name", None) or self._metadata.get("model_name")
        return name if isinstance(name, str) and name else "custom"

    @property
    def stride(self) -> int:
        """Frames are padded to multiples of this."""
        return self._stride

    @property
    def metadata(self) -> dict[str, Any]:
        """The checkpoint's JSON document (empty for :meth:`from_generator` without metadata)."""
        return dict(self._metadata)

    @property
    def generator(self) -> nn.Module:
        """The wrapped network (eval mode, on :attr:`device`)."""
        return self._generator

    # ------------------------------------------------------------------------------------- inference
    @torch.inference_mode()
    def translate_normalized(self, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor:
        """Network-space call: float ``(B, 3, H, W)`` in [-1, 1], int64 ``(B, H, W)`` x2 -> float32
        ``(B, 3, H, W)`` in [-1, 1], on :attr:`device`. Pads to the stride and crops back; no validation.
        """
        H, W = rgb.shape[-2:]
        if self._backend == "onnxruntime":
            session = self.onnx_session(int(H), int(W))
            frames = [
                torch.from_numpy(session.translate_normalized(
                    rgb[b : b + 1].float().cpu().numpy(), semantic[b : b + 1].long().cpu().numpy(),
                    instance[b : b + 1].long().cpu().numpy()))
                for b in range(rgb.shape[0])
            ]
            return torch.cat(frames) if len(frames) > 1 else frames[0]
        rgb = rgb.to(self._device, non_blocking=True).float()
        semantic = semantic.to(self._device, non_blocking=True).long()
        instance = instance.to(self._device, non_blocking=True).long()
        # rgb stays NCHW: the stems convolve it as it is and the affine colour head reads NCHW planes of the
        # guide (a channels_last copy here would be undone there).
        x, s, i = pad_to_stride(rgb, semantic, instance, self._stride)
        dtype = _AUTOCAST_DTYPES.get(self._precision)
        with torch.autocast(self._device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            y = self._forward(x, s, i)
        return y[:, :, :H, :W].float()

    @torch.inference_mode()
    def translate(
        self, rgb: ArrayOrTensor, semantic: ArrayOrTensor, instance: ArrayOrTensor
    ) -> ArrayOrTensor:
        """Translate one frame or a batch; output has rgb's kind (numpy/torch), shape and device, uint8.

        Raises:
            TypeError: the arguments are not all numpy arrays or all torch tensors.
            ValueError: a shape or dtype does not match (the message names the argument).
            LabelError: semantic ids outside 0..18 and 255, or negative instance ids.
        """
        if self._backend == "onnxruntime":
            return self._translate_onnx(rgb, semantic, instance)
        rgb_t, sem_t, inst_t, batched = check_frames(rgb, semantic, instance)
        sem_t = self._to_device(sem_t).long()
        inst_t = self._to_device(inst_t).long()
        check_label_values(sem_t, inst_t)
        x = normalize_rgb(self._to_device(rgb_t))
        y = self.translate_normalized(x, sem_t, inst_t)
        out = denormalize_rgb(y)
        if not batched:
            out = out[0]
        if isinstance(rgb, np.ndarray):
            return out.contiguous().cpu().numpy()
        return out.contiguous().to(rgb.device)

    __call__ = translate

    def _to_device(self, t: Tensor) -> Tensor:
        """``t`` on :attr:`device`; a host tensor bound for CUDA is staged in page-locked memory first.

        A pageable source makes ``non_blocking`` a synchronous copy; ``pin_memory()`` takes the buffer from
        torch's caching host allocator, which records the asynchronous copy and does not hand the block out
        again before it has finished (so back-to-back inputs cannot overwrite each other's staging buffer).
        """
        if self._device.type != "cuda" or t.device.type != "cpu":
            return t.to(self._device, non_blocking=True)
        return t.pin_memory().to(self._device, non_blocking=True)

    def _translate_onnx(
        self, rgb: ArrayOrTensor, semantic: ArrayOrTensor, instance: ArrayOrTensor
    ) -> ArrayOrTensor:
        """:meth:`translate` through the onnxruntime session of the frame size (numpy in the middle)."""
        rgb_t, sem_t, inst_t, batched = check_frames(rgb, semantic, instance)
        sem_t, inst_t = sem_t.long(), inst_t.long()
        check_label_values(sem_t, inst_t)
        session = self.onnx_session(int(rgb_t.shape[1]), int(rgb_t.shape[2]))
        out = session.translate_checked(rgb_t.cpu().numpy(), sem_t.cpu().numpy(), inst_t.cpu().numpy())
        if not batched:
            out = out[0]
        if isinstance(rgb, np.ndarray):
            return out
        return torch.from_numpy(out).to(rgb.device)

    def onnx_session(self, height: int, width: int) -> OnnxTranslator:
        """The onnxruntime runner for ``height x width`` frames: exported on first use (or read from the
        on-disk cache, see the module docstring) and kept for the life of this Translator."""
        session = self._sessions.get((height, width))
        if session is not None:
            return session
        from sim2real.core.errors import CheckpointError
        from sim2real.translator.onnx_export import DEFAULT_OPSET, GRAPH_VERSION, OnnxTranslator, export_onnx

        if self._digest is None:
            self._digest = state_digest(self._generator)
        name = (f"{self.model_name}_{self._digest[:20]}_{height}x{width}_op{DEFAULT_OPSET}_g{GRAPH_VERSION}"
                f"_torch{torch.__version__.split('+')[0]}.onnx")
        path = self._cache_dir() / name
        try:
            session = OnnxTranslator(path, intra_op_threads=self._threads)
        except CheckpointError:  # not cached yet (or a damaged file): export, then open
            export_onnx(self, path, height, width)
            session = OnnxTranslator(path, intra_op_threads=self._threads)
        self._sessions[(height, width)] = session
        return session

    def _cache_dir(self) -> Path:
        """The ONNX cache directory, created; a private temporary directory when it is not writable."""
        directory = self._onnx_cache_dir or default_onnx_cache_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if not os.access(directory, os.W_OK):
                raise PermissionError(directory)
        except OSError:
            directory = Path(tempfile.mkdtemp(prefix="sim2real_onnx_"))
        self._onnx_cache_dir = directory
        return directory

    def warmup(self, height: int, width: int, batch: int = 1) -> None:
        """Run one synthetic batch of ``(batch, height, width)`` frames (one car instance) to trigger
        lazy initialisation, cuDNN autotuning and compilation; waits for the device to finish."""
        if min(height, width, batch) < 1:
            raise ValueError(f"warmup needs height, width, batch >= 1, got {height}, {width}, {batch}")
        rgb = torch.full((batch, height, width, 3), 128, dtype=torch.uint8, device=self._device)
        sem = torch.full((batch, height, width), TRAIN_ID["road"], dtype=torch.uint8, device=self._device)
        inst = torch.zeros((batch, height, width), dtype=torch.int64, device=self._device)
        h0, w0 = height // 4, width // 4
        sem[:, h0 : h0 + max(1, height // 2), w0 : w0 + max(1, width // 2)] = TRAIN_ID["car"]
        inst[:, h0 : h0 + max(1, height // 2), w0 : w0 + max(1, width // 2)] = 1
        self.translate(rgb, sem, inst)
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
