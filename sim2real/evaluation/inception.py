"""Standard FID / KID on Inception-v3 pool3 features, with Inception weights the user supplies (no download).

This is the number to quote in papers: the Fréchet Inception Distance (Heusel et al., 2017) and the Kernel
Inception Distance (Binkowski et al., 2018) on the 2048-d pool3 features of the TensorFlow
``inception-2015-12-05`` graph, the network every published FID uses. sim2real ships no Inception weights and
never downloads them: ``sim2real-eval --inception-weights PATH`` loads a file the user already has.

Network. :class:`FIDInceptionV3` is the FID variant of Inception-v3 as ported to PyTorch by pytorch-fid
(mseitzer/pytorch-fid, ``src/pytorch_fid/inception.py``: ``fid_inception_v3`` with ``FIDInceptionA/C/E_1/E_2``)
and by torch-fidelity (toshas/torch-fidelity, ``feature_extractor_inceptionv3.py``). It differs from
torchvision's Inception-v3 as the TF graph does: BatchNorm eps 1e-3 and no conv biases; the 3x3 average pools
of the A, C and first E blocks exclude the zero padding (``count_include_pad=False``); the last E block
(``Mixed_7c``) pools with a 3x3 *max* pool; 1008 classes in ``fc`` (unused for FID, kept so that the files
load strictly). Its ``state_dict`` keys are torchvision's names (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch5x5_1.bn.running_var``, ..., ``fc.weight``), the layout of both

* pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (loaded strictly into torchvision's
  ``Inception3(num_classes=1008, aux_logits=False)`` with the FID blocks swapped in), and
* torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (loaded strictly into a module with the same
  attribute names; written by its ``utils/util_convert_inception_weights.py`` from the TF graph: conv weights,
  BatchNorm weight / bias / running_mean / running_var, ``fc.weight`` / ``fc.bias``, no
  ``num_batches_tracked``).

Either file, or a ``.safetensors`` conversion of one, loads with :func:`load_inception`. BatchNorm
``num_batches_tracked`` entries are optional (unused in eval mode). Pickles are read with
``torch.load(weights_only=True)`` only; TorchScript archives (e.g. clean-fid's / StyleGAN2-ADA's
``inception-2015-12-05.pt``) are refused: they are code, not a state dict.

Input handling (images are sim2real's ``(B, 3, H, W)`` float in [-1, 1]). The references all score 8-bit
images, so by default frames are first quantised exactly as sim2real writes them
(``round(clamp((x + 1) * 127.5, 0, 255))``, :func:`sim2real.translator.inference.denormalize_rgb`), then
squashed to 299x299 (aspect ratio not kept, as in all three references):

==================  ===================================================================================
``resize=``         pipeline (u = 8-bit value as float)
==================  ===================================================================================
``"pytorch-fid"``   u / 255 -> ``F.interpolate(299x299, bilinear, align_corners=False)`` (half-pixel
(default)           centres, no antialiasing) -> 2x - 1. pytorch-fid's ``InceptionV3`` on PNGs read
                    with ``ToTensor``; clean-fid ``mode="legacy_pytorch"`` up to float rounding.
``"tensorflow"``    u -> TF1 ``resize_bilinear(align_corners=False)`` (no half-pixel offset:
                    src = dst * in / out) -> (u - 128) / 128. Identical to torch-fidelity (its
                    ``interpolate_bilinear_2d_like_tensorflow1x``, checked bit-exact on CPU), which
                    reproduces the original TensorFlow FID (TTUR) graph's own resize.
==================  ===================================================================================

The two presets give slightly different numbers (sampling grid, and 2u/255 - 1 vs (u - 128)/128): they are
not interchangeable; report which one was used. clean-fid's default ``mode="clean"`` runs the same TF weights
(its TorchScript copy) but resizes the 8-bit image as float32 with PIL bicubic *with antialiasing*, and
normalises with (u - 128)/128 (as ``"tensorflow"`` does). Neither preset reproduces that resize. Downsampling
to 299 (frames wider or taller than 299 px) aliases without antialiasing, and the clean-fid paper shows such
resizing differences moving FID by whole points; upsampling (e.g. 256x128 -> 299x299) differs only in the
interpolation kernel and should be much closer, but is still not identical (not measured here: no weights
ship with sim2real). Compare only numbers computed with the same tool and mode, on the same number of
samples (FID is biased in N).

KID uses :func:`sim2real.evaluation.metrics.kid` on these features: unbiased MMD^2 with the cubic polynomial
kernel (x.y / 2048 + 1)^3, 100 subsets of 1000, torch-fidelity's and clean-fid's defaults.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim2real.core.errors import CheckpointError
from sim2real.evaluation.metrics import frechet_distance
from sim2real.evaluation.metrics import frechet_distance_features as fid_from_features

__all__ = [
    "FEATURE_DIM",
    "INPUT_SIZE",
    "FIDInceptionV3",
    "fid_from_features",
    "frechet_distance",
    "inception_features",
    "load_inception",
    "to_inception_input",
]

#: Side of the square network input.
INPUT_SIZE: Final = 299
#: Width of the pool3 features.
FEATURE_DIM: Final = 2048
#: Classes of the TF graph's softmax (``fc``; not used for FID).
NUM_CLASSES: Final = 1008

Resize = Literal["pytorch-fid", "tensorflow"]
RESIZE_MODES: Final = ("pytorch-fid", "tensorflow")


# --------------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------------
class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU; keys ``conv.weight``, ``bn.*``."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_no_pad(x: Tensor) -> Tensor:
    """TF's 3x3 / stride 1 SAME average pool: the zero padding is not counted."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """Inception-A (35x35), pool branch patched to TF's average pool: (B, C, H, W) -> (B, 224 + pool, H, W)."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_no_pad(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (``Mixed_6a``; unpatched): (B, C, H, W) -> (B, 480 + C, H', W')."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    """Inception-C (17x17, factorised 7x7), pool branch patched: (B, C, H, W) -> (B, 768, H, W)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            bd = conv(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg_pool_no_pad(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (``Mixed_7a``; unpatched): (B, C, H, W) -> (B, 512 + C, H', W')."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """Inception-E (8x8, expanded filter bank): (B, C, H, W) -> (B, 2048, H, W).

    ``pool="avg"``: pytorch-fid's ``FIDInceptionE_1`` (``Mixed_7b``, average pool without padding);
    ``pool="max"``: its ``FIDInceptionE_2`` (``Mixed_7c``): the TF graph max-pools in its last block.
    """

    def __init__(self, in_channels: int, pool: Literal["avg", "max"]) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = (F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.pool == "max"
                  else _avg_pool_no_pad(x))
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 of the TF ``inception-2015-12-05`` graph, as used for FID: (B, 3, H, W) -> (B, 2048).

    ``forward`` takes the *network input* (normalised to about [-1, 1], 299x299 for standard numbers: see
    :func:`to_inception_input`) and returns the pool3 features (global average of ``Mixed_7c``). ``fc``
    (1008 classes) is never evaluated; it exists so that the reference files load with every key accounted
    for. Attribute names equal torchvision's, hence the reference ``state_dict`` keys.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, 299, 299) network input -> (B, 2048) pool3 features (spatial 149, 147, 73, 71, 35, 17, 8)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))


# --------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------
_OPTIONAL_SUFFIX: Final = ".num_batches_tracked"


def _is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (a zip with ``code/`` or ``constants.pkl``), which is never loaded."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.endswith("constants.pkl") or "/code/" in n or n.startswith("code/") for n in names)


def _read_tensors(path: Path) -> Mapping[str, object]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise CheckpointError(f"Inception weights {path}: not a readable safetensors file: {exc}") from exc
    if _is_torchscript(path):
        raise CheckpointError(f"Inception weights {path} is a TorchScript archive (code, e.g. clean-fid's "
                              "inception-2015-12-05.pt), refused: give a plain state dict (.pth / .safetensors), "
                              "e.g. pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, OSError) as exc:
        raise CheckpointError(f"Inception weights {path}: refused, not a plain tensor state dict readable with "
                              f"torch.load(weights_only=True) ({type(exc).__name__}: {str(exc)[:300]})") from exc
    if not isinstance(data, Mapping):
        raise CheckpointError(f"Inception weights {path}: expected a state dict (name -> tensor), "
                              f"got {type(data).__name__}")
    return data


def _check_state(path: Path, state: Mapping[str, object], expected: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The tensors of ``state`` keyed as ``expected``; CheckpointError naming every mismatch."""
    not_tensor = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor))
    if not_tensor:
        raise CheckpointError(f"Inception weights {path}: entries that are not tensors: {not_tensor[:8]}")
    missing = sorted(k for k in expected if k not in state and not k.endswith(_OPTIONAL_SUFFIX))
    unexpected = sorted(str(k) for k in state if k not in expected)
    if missing or unexpected:
        def head(keys: list[str]) -> str:
            return f"{keys[:10]}" + (f" (+{len(keys) - 10} more)" if len(keys) > 10 else "")

        raise CheckpointError(f"Inception weights {path} do not have the FID Inception-v3 layout (pytorch-fid / "
                              f"torch-fidelity pt_inception-2015-12-05): missing keys {head(missing)}, "
                              f"unexpected keys {head(unexpected)}")
    out: dict[str, Tensor] = {}
    for key, ref in expected.items():
        if key not in state:  # optional num_batches_tracked
            out[key] = ref.clone()
            continue
        value = state[key]
        assert isinstance(value, Tensor)
        if tuple(value.shape) != tuple(ref.shape):
            raise CheckpointError(f"Inception weights {path}: {key} has shape {tuple(value.shape)}, "
                                  f"expected {tuple(ref.shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"Inception weights {path}: non-finite values in {key}")
        out[key] = value
    return out


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """The FID Inception-v3 with the user's weights, in eval mode, no gradients.

    Args:
        path: ``.safetensors``, or a ``.pth`` / ``.pt`` state dict read with ``torch.load(weights_only=True)``
            (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` or torch-fidelity's
            ``weights-inception-2015-12-05-6726825d.pth``). Nothing is downloaded.
        device: where the model goes.

    Raises:
        CheckpointError: a missing / unreadable file, a TorchScript archive or a pickle with objects (refused,
            never executed), missing or unexpected keys (named), a wrong shape, or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Inception weights {path} do not exist (sim2real never downloads them)")
    model = FIDInceptionV3()
    state = _check_state(path, _read_tensors(path), model.state_dict())
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    return model.to(device)


# --------------------------------------------------------------------------------------------------
# Input and features
# --------------------------------------------------------------------------------------------------
def _resize_tf1_bilinear(x: Tensor, size: int) -> Tensor:
    """TF1 ``resize_bilinear(align_corners=False)``: src = dst * in / out, no half-pixel offset, edge clamp.

    (B, C, H, W) float -> (B, C, size, size); same arithmetic order and dtypes as torch-fidelity's ``slow``
    path (bit-exact with it on CPU).
    """

    def axis(n_in: int) -> tuple[Tensor, Tensor, Tensor]:
        pos = torch.arange(size, dtype=x.dtype, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = pos.long()
        return lo, (lo + 1).clamp_max(n_in - 1), pos - lo.to(x.dtype)

    ylo, yhi, dy = axis(x.shape[2])
    xlo, xhi, dx = axis(x.shape[3])
    top, bottom = x[:, :, ylo, :], x[:, :, yhi, :]
    dx, dy = dx.view(1, 1, 1, size), dy.view(1, 1, size, 1)
    row0 = top[..., xlo] + (top[..., xhi] - top[..., xlo]) * dx
    row1 = bottom[..., xlo] + (bottom[..., xhi] - bottom[..., xlo]) * dx
    return row0 + (row1 - row0) * dy


def to_inception_input(images: Tensor, resize: Resize = "pytorch-fid", quantize: bool = True) -> Tensor:
    """sim2real frames -> the reference network input: (B, 3, H, W) in [-1, 1] -> (B, 3, 299, 299) float32.

    ``quantize``: round to the 8-bit values sim2real writes (the references score 8-bit files); values
    outside [-1, 1] are clamped either way. ``resize``: ``"pytorch-fid"`` or ``"tensorflow"`` (torch-fidelity
    / original TF FID); see the module docstring.
    """
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"expected float images (B, 3, H, W) in [-1, 1], got {images.dtype} {tuple(images.shape)}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    u = ((images.float() + 1.0) * 127.5).clamp(0.0, 255.0)  # 8-bit scale
    if quantize:
        u = u.round()
    if resize == "pytorch-fid":
        x = F.interpolate(u / 255.0, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0
    return (_resize_tf1_bilinear(u, INPUT_SIZE) - 128.0) / 128.0


@torch.no_grad()
def inception_features(model: FIDInceptionV3, images: Tensor | Iterable[Tensor], batch: int = 32,
                       resize: Resize = "pytorch-fid", quantize: bool = True) -> Tensor:
    """Pool3 features of frames: (N, 3, H, W) in [-1, 1] (or an iterable of such batches) -> (N, 2048) float32.

    Runs on the model's device in chunks of ``batch`` frames; the result is on the CPU. Preprocessing:
    :func:`to_inception_input` with ``resize`` / ``quantize``.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    device = next(model.parameters()).device
    chunks = [images] if isinstance(images, Tensor) else images
    feats = []
    for chunk in chunks:
        for start in range(0, chunk.shape[0], batch):
            x = to_inception_input(chunk[start:start + batch].to(device), resize=resize, quantize=quantize)
            feats.append(model(x).float().cpu())
    if not feats:
        raise ValueError("no images given")
    return torch.cat(feats)


# --------------------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------------------
