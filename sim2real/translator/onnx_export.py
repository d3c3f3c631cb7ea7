"""ONNX export of the inference graph, and :class:`OnnxTranslator` to run it with onnxruntime.

Exported graph (one fixed frame size, batch 1, instance cap ``cfg.max_instances``)::

    rgb       float32 (1, 3, H, W) in [-1, 1]  (x / 127.5 - 1 of the uint8 frame)
    semantic  int64   (1, H, W)     train ids 0..18, 255 = ignore
    instance  int64   (1, H, W)     0 = none, ids 1..65535
    -> output float32 (1, 3, H, W) in [-1, 1]

Decision: the graph takes the raw *instance map*, not precomputed boxes. Box extraction
(``boxes.instance_boxes``) is written with static shapes (scatter into (B, 65536) tables + ``topk`` of
the N = ``max_instances`` largest), so it exports as ScatterElements and TopK with no data-dependent
control flow (checked exact against eager at opsets 17 and 18); frames with more instances keep the N
largest, exactly as the eager network does. Padding to the network stride (replicate / 255 / 0) and
the crop back are inside the graph too, so H and W are the camera's own size, not necessarily
multiples of the stride.

The legacy TorchScript exporter is used (``dynamo=False``): the dynamo exporter needs ``onnxscript``,
which is not a dependency. It lacks ``nearest-exact`` interpolation (used to align label maps), so
:func:`export_onnx` registers an exact Resize-based symbolic for the duration of the export. The
checkpoint's JSON document is stored in the model's ``metadata_props``
(key ``"sim2real"``) together with an ``"sim2real.export"`` entry (size, opset, graph version, instance
cap, and what the caller adds: the Translator's ONNX cache records the model digest it keys on there).
:func:`export_onnx_bytes` builds the model in memory; :func:`export_onnx` writes it atomically. Both take
the generator itself (and its config), not a Translator: this module sits below the inference API.

CLI::

    python -m sim2real.translator.onnx_export CKPT.safetensors OUT.onnx --height 360 --width 640 [--int8]

(``--int8``: the encoder convolutions in int8 with the checkpoint's calibration, :mod:`sim2real.translator.int8`.)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from sim2real.core.errors import CheckpointError, ConfigError
from sim2real.translator.checkpoint import METADATA_KEY, build_generator, load_checkpoint
from sim2real.translator.frames import check_frames, check_label_values, pad_to_stride, synthetic_frame
from sim2real.translator.int8 import calibration_of, quantize_int8

if TYPE_CHECKING:
    from sim2real.translator.config import GeneratorConfig

__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_METADATA_KEY",
    "GRAPH_VERSION",
    "MIN_OPSET",
    "ExportGraph",
    "NetworkSpaceTranslator",
    "OnnxTranslator",
    "export_onnx",
    "export_onnx_bytes",
    "main",
    "onnx_parity",
    "synthetic_frame",
    "write_atomically",
]

DEFAULT_OPSET: Final = 18
#: oldest opset the graph is known to export at (checked with 17 and 18).
MIN_OPSET: Final = 17
EXPORT_METADATA_KEY: Final = "sim2real.export"
#: bumped whenever the traced graph changes for the same weights (part of the Translator's ONNX cache key).
GRAPH_VERSION: Final = 12  # 3: RoIAlign as matmuls (no GridSample); 4: padding_mode / label_resolution;
# 5: unlabelled pixels: the frame's global colour statistics, the frame's mean coefficients; 6: the same function
# ~9 ms faster (camera blur and tone curve as convolutions, decoder tail without full-resolution splits); 7: the
# detail path's convolutions as 3-D ones over a depth of 1 (out of ONNX Runtime's NCHWc layout); 8: the same
# function with ~100 nodes fewer (edge pooling's window test as two max poolings, the aberration's rows gathered);
# 9: ~6 ms faster (one 12-plane upsampling for the affine head, the instance paste as one contraction, the colour
# prior's biases in its table, one Pad per box filter and blur, the tone curve's 2 y - 1 in its convolution, blur
# taps below 1e-5 of the centre's left out, the decoder's style modulation folded into constant weights); 10: the
# colour prior's input linearised by formula, not by a table read by 8-bit level; 11: the edge-pixel field at full
# resolution (each pixel its own label's class means), ordered by column before its upsampling; 12: painted
# markings keep their chroma (marking_chroma_classes)
INPUT_NAMES: Final = ("rgb", "semantic", "instance")
OUTPUT_NAME: Final = "output"
_NEAREST_EXACT: Final = "aten::_upsample_nearest_exact2d"
_ONNX_INT64: Final = 7  # onnx.TensorProto.INT64


class ExportGraph(nn.Module):
    """The traced inference graph: pad to the stride, ``generator.translate``, crop back.

    rgb (1, 3, H, W) float in [-1, 1], semantic (1, H, W) int64, instance (1, H, W) int64
    -> (1, 3, H, W) float in [-1, 1]. H and W are fixed at construction (static export).
    """

    def __init__(self, generator: nn.Module, stride: int, height: int, width: int) -> None:
        """Wrap ``generator`` (kept as is: pass an eval-mode CPU copy) for frames of ``height x width``."""
        super().__init__()
        self.generator = generator
        self.stride = int(stride)
        self.height = int(height)
        self.width = int(width)

    def forward(self, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor:
        """(1, 3, H, W), (1, H, W), (1, H, W) -> (1, 3, H, W); see the class docstring."""
        x, s, i = pad_to_stride(rgb, semantic, instance, self.stride)
        y = self.generator.translate(x, s, i)
        if tuple(y.shape[-2:]) == (self.height, self.width):  # not padded: no cropping copy in the graph
            return y
        return y[:, :, : self.height, : self.width]


def _nearest_exact_symbolic(g: Any, input: Any, output_size: Any, *rest: Any) -> Any:
    """ONNX symbolic for ``aten::_upsample_nearest_exact2d`` (``F.interpolate(mode="nearest-exact")``).

    The legacy exporter has none. PyTorch picks source index ``floor((i + 0.5) * in / out)``; ONNX Resize
    with ``half_pixel`` maps ``i`` to ``(i + 0.5) * in / out - 0.5`` and ``round_prefer_ceil`` rounds that
    to ``floor((i + 0.5) * in / out)``: the same index.
    """
    from torch.onnx import symbolic_helper as sh  # exporter internals: imported at export time only

    empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
    attrs = {"coordinate_transformation_mode_s": "half_pixel", "mode_s": "nearest",
             "nearest_mode_s": "round_prefer_ceil"}
    scales, _ = sh._get_interpolate_attributes(g, "nearest", rest)
    if scales is not None:  # scale_factor= call: PyTorch maps with the given factors, and so does Resize
        return g.op("Resize", input, empty, scales, **attrs)
    batch_channels = sh._slice_helper(g, g.op("Shape", input), axes=[0], starts=[0], ends=[2])
    out_hw = g.op("Cast", output_size, to_i=_ONNX_INT64)
    sizes = g.op("Concat", batch_channels, out_hw, axis_i=0)
    return g.op("Resize", input, empty, empty, sizes, **attrs)


@contextlib.contextmanager
def _export_symbolics(opset: int) -> Iterator[None]:
    """Register the extra symbolics for the duration of one export, then remove them again."""
    torch.onnx.register_custom_op_symbolic(_NEAREST_EXACT, _nearest_exact_symbolic, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic(_NEAREST_EXACT, opset)


def _export_info(cfg: GeneratorConfig, height: int, width: int, opset: int, extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "height": height, "width": width, "opset": opset, "batch": 1, "graph_version": GRAPH_VERSION,
        "max_instances": int(getattr(cfg, "max_instances", 0)), "stride": int(cfg.stride),
        "inputs": {
            "rgb": "float32 (1, 3, H, W), x / 127.5 - 1", "semantic": "int64 (1, H, W)",
            "instance": "int64 (1, H, W), 0 = none",
        },
        "output": "float32 (1, 3, H, W) in [-1, 1]; uint8 = round(clamp((y + 1) * 127.5, 0, 255))",
        **extra,
    }


def _trace(generator: nn.Module, cfg: GeneratorConfig, height: int, width: int, opset: int) -> bytes:
    """The traced graph of a float32 CPU copy of ``generator`` for ``height x width`` frames, as ONNX bytes."""
    gen = copy.deepcopy(generator).to("cpu", dtype=torch.float32, memory_format=torch.contiguous_format)
    graph = ExportGraph(gen.eval(), cfg.stride, height, width).eval()
    rgb, sem, inst = synthetic_frame(height, width)
    args = (
        torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0,
        torch.from_numpy(sem)[None].long(),
        torch.from_numpy(inst.astype(np.int64))[None],
    )
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), _export_symbolics(opset):
        warnings.simplefilter("ignore", category=DeprecationWarning)  # legacy exporter notice
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)  # shapes are static on purpose
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        warnings.filterwarnings("ignore", message=".*operator 'instance_norm' is set to train=True")
        torch.onnx.export(
            graph, args, buffer, dynamo=False, opset_version=opset,
            input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME], do_constant_folding=True,
        )
    return buffer.getvalue()


def export_onnx_bytes(
    generator: nn.Module,
    height: int,
    width: int,
    opset: int = DEFAULT_OPSET,
    *,
    cfg: GeneratorConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    export_info: Mapping[str, Any] | None = None,
) -> bytes:
    """The checked ONNX model of ``generator``'s inference graph for ``height x width`` frames, in memory.

    Args:
        generator: a ``TranslatorGenerator`` (any device / dtype / memory format: a float32 CPU copy is traced).
        height, width: the frame size (any size; padding to the stride happens inside the graph).
        opset: ONNX opset, >= MIN_OPSET (17).
        cfg: its GeneratorConfig; default ``generator.cfg``.
        metadata: JSON document stored under ``metadata_props["sim2real"]`` (the checkpoint's; default: the
            config and model name).
        export_info: extra fields for the ``"sim2real.export"`` entry (e.g. the model digest a cache keys on).
    """
    if not isinstance(generator, nn.Module):
        raise TypeError(f"export_onnx needs a generator nn.Module, got {type(generator).__name__}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    if opset < MIN_OPSET:
        raise ConfigError(f"opset {opset} is not supported: the graph needs opset >= {MIN_OPSET}")
    cfg = cfg or getattr(generator, "cfg", None)
    if cfg is None:
        raise ConfigError("export_onnx(generator, ...) needs cfg= when the module has no .cfg attribute")
    proto = onnx.load_from_string(_trace(generator, cfg, height, width, opset))
    # the tracer loses the output's static shape through the crop; state it (it is fixed by design)
    out_shape = proto.graph.output[0].type.tensor_type.shape
    del out_shape.dim[:]
    for d in (1, 3, height, width):
        out_shape.dim.add().dim_value = d
    doc = dict(metadata or {}) or {"config": cfg.to_dict(), "model_name": getattr(cfg, "name", None)}
    info = _export_info(cfg, height, width, opset, export_info or {})
    meta = {METADATA_KEY: json.dumps(doc, sort_keys=True), EXPORT_METADATA_KEY: json.dumps(info)}
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "sim2real"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def write_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def export_onnx(
    generator: nn.Module,
    path: str | os.PathLike[str],
    height: int,
    width: int,
    opset: int = DEFAULT_OPSET,
    *,
    cfg: GeneratorConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """:func:`export_onnx_bytes` written to ``path`` atomically; returns the path. See there for the arguments."""
    data = export_onnx_bytes(generator, height, width, opset, cfg=cfg, metadata=metadata)
    return write_atomically(Path(path), data)


class OnnxTranslator:
    """Runs an exported graph with onnxruntime; the numpy ``translate`` interface of the Translator.

    Only the exported frame size is accepted; batches ``(B, H, W, 3)`` run frame by frame. The session
    uses onnxruntime's full graph optimisation (``ORT_ENABLE_ALL``: constant folding, node fusions, NCHWc
    layout transformation) and ``intra_op_threads`` threads (onnxruntime's default when None).
    ``spin_us`` = 0 (default) stops idle pool threads from busy-waiting between operators: on a CPU shared with
    the simulator and other processes, spinning threads steal the cores the busy ones need (measured here: 2
    threads 287 ms/frame spinning vs 186 ms not, lite 640x360, load ~4 on 2 cores; the graph shipped before edge
    pooling per pixel, with two busy processes on the 2 cores: 138.6 ms spinning up to 1 ms vs 100.1 not).
    ``spin_us`` > 0 lets them spin up to that many microseconds before sleeping
    (``session.intra_op.spin_duration_us``): on a CPU of its own that saves waking a thread for every parallel
    operator (the shipped graph, 2 threads, idle machine: 49.2-49.5 vs 54.7-54.8 ms per 640x360 frame at
    1000 µs; docs/BENCHMARKS.md).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | bytes,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int | None = None,
        spin_us: int = 0,
        name: str | None = None,
    ) -> None:
        """Open ``path``: an ONNX file written by :func:`export_onnx`, or the model's bytes
        (:func:`export_onnx_bytes`; ``name`` then says where they came from in error messages)."""
        self._path = Path(name or "<in-memory ONNX model>") if isinstance(path, bytes) else Path(path)
        if not isinstance(path, bytes) and not self._path.is_file():
            raise CheckpointError(f"ONNX model {self._path} does not exist")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: shape-merge notices of the exported If nodes are noise
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not isinstance(spin_us, int) or isinstance(spin_us, bool) or spin_us < 0:
            raise ValueError(f"spin_us must be an int >= 0 (microseconds; 0 = no spin-wait), got {spin_us!r}")
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_us else "0")
        if spin_us:
            opts.add_session_config_entry("session.intra_op.spin_duration_us", str(spin_us))
        if intra_op_threads is not None:
            opts.intra_op_num_threads = int(intra_op_threads)
        model = path if isinstance(path, bytes) else str(self._path)
        try:
            self._session = ort.InferenceSession(model, sess_options=opts, providers=list(providers))
        except Exception as e:  # onnxruntime raises its own (non-exported) exception types
            raise CheckpointError(f"{self._path} cannot be opened by onnxruntime: {e}") from e
        inputs = {i.name: i for i in self._session.get_inputs()}
        if set(inputs) != set(INPUT_NAMES):
            raise CheckpointError(
                f"{self._path}: graph inputs are {sorted(inputs)}, expected {sorted(INPUT_NAMES)}"
            )
        shape = inputs["rgb"].shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape) or shape[:2] != [1, 3]:
            raise CheckpointError(
                f"{self._path}: input 'rgb' has shape {shape}, expected static (1, 3, H, W)"
            )
        self._height, self._width = int(shape[2]), int(shape[3])
        props = self._session.get_modelmeta().custom_metadata_map
        self._metadata: dict[str, Any] = json.loads(props.get(METADATA_KEY, "{}"))
        self._export: dict[str, Any] = json.loads(props.get(EXPORT_METADATA_KEY, "{}"))
        self._rgb_buffer = np.empty((1, 3, self._height, self._width), dtype=np.float32)  # reused input

    @property
    def height(self) -> int:
        """Frame height the graph was exported for."""
        return self._height

    @property
    def width(self) -> int:
        """Frame width the graph was exported for."""
        return self._width

    @property
    def metadata(self) -> dict[str, Any]:
        """The checkpoint JSON document stored at export (``config``, ``classes``, ...)."""
        return dict(self._metadata)

    @property
    def export_info(self) -> dict[str, Any]:
        """Size, opset and instance cap recorded at export."""
        return dict(self._export)

    @property
    def model_name(self) -> str:
        """The checkpoint's model name, or "custom"."""
        name = self._metadata.get("model_name")
        return name if isinstance(name, str) and name else "custom"

    def translate_normalized(
        self, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray
    ) -> np.ndarray:
        """Network space: float32 (1, 3, H, W) in [-1, 1], int64 (1, H, W) x2 -> float32 (1, 3, H, W)."""
        feeds = {
            "rgb": np.ascontiguousarray(rgb, dtype=np.float32),
            "semantic": np.ascontiguousarray(semantic, dtype=np.int64),
            "instance": np.ascontiguousarray(instance, dtype=np.int64),
        }
        return self._session.run([OUTPUT_NAME], feeds)[0]

    def translate(self, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) / (B, H, W, 3) + semantic + instance -> uint8 of rgb's shape (numpy only).

        Raises:
            TypeError: not numpy arrays.
            ValueError: a shape / dtype mismatch, or a frame size other than the exported one.
            LabelError: label ids outside the canonical spaces.
        """
        if not isinstance(rgb, np.ndarray):
            raise TypeError(f"OnnxTranslator.translate takes numpy arrays, rgb is {type(rgb).__name__}")
        rgb_t, sem_t, inst_t, batched = check_frames(rgb, semantic, instance)
        sem_t, inst_t = sem_t.long(), inst_t.long()
        check_label_values(sem_t, inst_t)
        return self.translate_checked(rgb_t.numpy(), sem_t.numpy(), inst_t.numpy(), batched=batched)

    def translate_checked(
        self, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray, *, batched: bool = True
    ) -> np.ndarray:
        """Validated batch: rgb uint8 (B, H, W, 3), labels int64 (B, H, W) -> uint8 (B, H, W, 3)
        (``(H, W, 3)`` when ``batched`` is False and B = 1).

        Normalisation and quantisation match :func:`~sim2real.translator.inference.normalize_rgb` /
        ``denormalize_rgb`` exactly (x / 127.5 - 1 in float32; round(clamp((y + 1) * 127.5))), written into
        a reused input buffer and the session's output in place: no per-frame temporaries beyond the output.

        Raises:
            ValueError: a frame size other than the exported one.
        """
        if tuple(rgb.shape[1:3]) != (self._height, self._width):
            raise ValueError(
                f"rgb frame size {tuple(rgb.shape[1:3])} does not match the exported graph "
                f"({self._height}, {self._width}); export again for this size"
            )
        x = self._rgb_buffer
        out = np.empty(tuple(rgb.shape), dtype=np.uint8)
        for b in range(rgb.shape[0]):
            np.divide(rgb[b].transpose(2, 0, 1), np.float32(127.5), out=x[0], dtype=np.float32, casting="unsafe")
            x -= np.float32(1.0)
            y = self.translate_normalized(x, semantic[b : b + 1], instance[b : b + 1])[0]
            y += np.float32(1.0)
            y *= np.float32(127.5)
            np.clip(y, 0.0, 255.0, out=y)
            np.rint(y, out=y)
            out[b] = y.transpose(1, 2, 0)  # integral values in [0, 255]: the cast is exact
        return out if batched else out[0]

    __call__ = translate


class NetworkSpaceTranslator(Protocol):
    """Anything with the network-space call of :class:`~sim2real.translator.inference.Translator`."""

    def translate_normalized(self, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor: ...


def onnx_parity(
    reference: NetworkSpaceTranslator | nn.Module, onnx_model: OnnxTranslator, *, num_instances: int = 3,
    seed: int = 0,
) -> float:
    """Max abs difference (float, [-1, 1] space) between eager and ONNX outputs on a synthetic frame.

    ``reference``: a Translator (or anything with ``translate_normalized``), or a generator run eagerly as
    the exported graph is (:class:`ExportGraph`, float32 on the CPU).
    """
    rgb, sem, inst = synthetic_frame(onnx_model.height, onnx_model.width, num_instances=num_instances, seed=seed)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    s = torch.from_numpy(sem)[None].long()
    i = torch.from_numpy(inst.astype(np.int64))[None]
    if isinstance(reference, nn.Module):
        with torch.inference_mode():
            graph = ExportGraph(reference.eval(), reference.cfg.stride, onnx_model.height, onnx_model.width)
            eager = graph(x, s, i).float().cpu().numpy()
    else:
        eager = reference.translate_normalized(x, s, i).cpu().numpy()
    exported = onnx_model.translate_normalized(x.numpy(), s.numpy(), i.numpy())
    return float(np.abs(eager - exported).max())


#: the parity check's default tolerance for an int8 graph: 8 levels of 255 in [-1, 1] space.
INT8_TOLERANCE: Final = 8 / 127.5


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; see the module docstring. Returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m sim2real.translator.onnx_export",
        description="Export a sim2real generator checkpoint (.safetensors) to ONNX for one frame size.",
    )
    parser.add_argument("checkpoint", type=Path, help="generator checkpoint (.safetensors)")
    parser.add_argument("output", type=Path, help="ONNX file to write")
    parser.add_argument("--height", type=int, required=True, help="frame height in pixels")
    parser.add_argument("--width", type=int, required=True, help="frame width in pixels")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the eager-vs-onnxruntime parity check"
    )
    parser.add_argument(
        "--int8", action="store_true",
        help="encoder convolutions in int8 with the checkpoint's calibration (sim2real-calibrate-int8): the graph "
             "the translate node runs",
    )
    parser.add_argument(
        "--tolerance", type=float, default=None,
        help="max abs difference allowed by the parity check (default 1e-3; with --int8 8 levels: 0.0627)",
    )
    args = parser.parse_args(argv)
    tolerance = args.tolerance if args.tolerance is not None else INT8_TOLERANCE if args.int8 else 1e-3
    try:
        loaded = load_checkpoint(args.checkpoint, map_location="cpu")
        calibration = calibration_of(loaded.metadata) if args.int8 else None
        if args.int8 and calibration is None:
            raise CheckpointError(f"{args.checkpoint} has no int8 calibration: run sim2real-calibrate-int8 on it")
        gen = build_generator(loaded)
        data = export_onnx_bytes(gen, args.height, args.width, opset=args.opset, metadata=loaded.metadata)
        out = write_atomically(args.output, data if calibration is None else quantize_int8(data, calibration))
    except (CheckpointError, ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({loaded.model_name or 'custom'}, {args.height}x{args.width}, opset {args.opset}"
          f"{', int8 encoders' if calibration else ''})")
    if not args.no_verify:
        worst = max(onnx_parity(gen, OnnxTranslator(out), num_instances=n) for n in (0, 3))
        print(f"parity: max abs difference {worst:.3g} (tolerance {tolerance:g})")
        if not worst <= tolerance:
            print("error: ONNX output differs from eager beyond the tolerance", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
