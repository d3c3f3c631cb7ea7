"""Frames in and out of the network: validation, normalisation, padding to the stride. Pure functions, no model.

The conventions every backend (eager torch, ONNX Runtime, the exported graph) shares:

* ``rgb``       uint8 ``(H, W, 3)`` or ``(B, H, W, 3)``, RGB order; network space is float ``(B, 3, H, W)`` in
  [-1, 1], ``x / 127.5 - 1`` in and ``round(clamp((y + 1) * 127.5))`` out;
* ``semantic``  integer (uint8 canonical) ``(H, W)`` / ``(B, H, W)``: train ids 0..18 or 255 (ignore);
* ``instance``  integer (uint16 canonical) ``(H, W)`` / ``(B, H, W)``: 0 = no instance, ids 1..65535;
* frames are padded on the bottom / right to the network stride (rgb replicated, semantic with 255, instance with
  0; at least :data:`MIN_CONTENT_CELLS` content cells per side) and the result is cropped back.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sim2real.core.errors import LabelError
from sim2real.core.labels import IGNORE_ID, NUM_CLASSES, TRAIN_ID

__all__ = [
    "MAX_INSTANCE_ID",
    "MIN_CONTENT_CELLS",
    "ArrayOrTensor",
    "check_frames",
    "check_label_values",
    "denormalize_rgb",
    "normalize_rgb",
    "pad_to_stride",
    "padded_size",
    "synthetic_frame",
    "to_uint8_image",
]

#: instance ids live in the uint16 space (sim2real.core.labels); the box extraction indexes tables that long.
MAX_INSTANCE_ID: Final = 65535
#: frames are padded so the content code has at least this many cells per side (see padded_size).
MIN_CONTENT_CELLS: Final = 2

ArrayOrTensor = np.ndarray | Tensor


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
    """Raise LabelError for semantic ids outside 0..18 and 255, or instance ids outside 0..65535.

    One host synchronisation on the valid path (a CUDA tensor's check waits for the device once per call);
    the error path takes more to describe the bad values.
    """
    bad_semantic = ((semantic >= NUM_CLASSES) & (semantic != IGNORE_ID)) | (semantic < 0)
    bad_instance = (instance < 0) | (instance > MAX_INSTANCE_ID)
    if not bool(bad_semantic.any() | bad_instance.any()):
        return
    if bool(bad_semantic.any()):
        values = torch.unique(semantic[bad_semantic])[:8].tolist()
        raise LabelError(
            f"semantic holds ids {values} outside the canonical space 0..{NUM_CLASSES - 1} and {IGNORE_ID}"
        )
    raise LabelError(
        f"instance holds ids {int(instance.min())}..{int(instance.max())}; expected "
        f"0 = none and ids 1..{MAX_INSTANCE_ID} (uint16 space)"
    )


def to_uint8_image(rgb: Tensor) -> np.ndarray:
    """One network-space image to a picture: float ``(3, H, W)`` in [-1, 1] -> numpy uint8 ``(H, W, 3)``
    (:func:`denormalize_rgb`, on the host)."""
    return denormalize_rgb(rgb.detach()[None])[0].cpu().numpy()


def synthetic_frame(
    height: int, width: int, *, num_instances: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A deterministic test frame: rgb (H, W, 3) uint8, semantic (H, W) uint8, instance (H, W) uint16.

    Road below the horizon, building above, a sky band, and ``num_instances`` car/person boxes with ids
    1..n (some overlapping the border so padding paths are exercised).
    """
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    semantic = np.full((height, width), TRAIN_ID["road"], dtype=np.uint8)
    semantic[: height // 2] = TRAIN_ID["building"]
    semantic[: max(1, height // 6)] = TRAIN_ID["sky"]
    semantic[height // 2, : width // 3] = 255  # an ignore strip
    instance = np.zeros((height, width), dtype=np.uint16)
    for k in range(num_instances):
        h = int(rng.integers(max(2, height // 8), max(3, height // 3)))
        w = int(rng.integers(max(2, width // 8), max(3, width // 3)))
        y0 = int(rng.integers(0, max(1, height - h // 2)))
        x0 = int(rng.integers(0, max(1, width - w // 2)))
        cls = TRAIN_ID["car"] if k % 2 == 0 else TRAIN_ID["person"]
        semantic[y0 : y0 + h, x0 : x0 + w] = cls
        instance[y0 : y0 + h, x0 : x0 + w] = k + 1
    return rgb, semantic, instance
