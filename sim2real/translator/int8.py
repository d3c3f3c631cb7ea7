"""Int8 encoder convolutions in exported ONNX graphs: post-training static quantization, calibrated per checkpoint.

The work-resolution encoders (the content body's convolutions and the instance branch's encoder) are most of
the arithmetic of a ``lite`` frame: nine 3x3 convolutions to 64 channels at 1/8 of the frame's size, ~11 of the
~40-65 ms of a 640x360 frame in ONNX Runtime on 2 cores. Their inputs are instance-normalised features (or sums
of them), whose ranges hardly depend on the simulator, so fixed 8-bit activation ranges fit every frame. Run as
int8 (ONNX Runtime's QLinearConv) they cost about a third (6.6-8.8 ms less per frame, docs/BENCHMARKS.md). The
decoder, the colour head, the detail path, the colour prior and the camera model stay fp32: they produce colours,
and with the decoder's convolutions in int8 too the output moved twice as far from the fp32 graph's.

**Calibration** (:func:`calibrate_int8`): the generator translates calibration frames in torch with forward
hooks on each quantized ``Conv2d`` (the :data:`INT8_SCOPES`), recording the minimum and maximum of its input and
of its output over all frames. The ranges (:class:`Int8Calibration`, keyed by module path) are stored in the
checkpoint's document under ``extra["int8_calibration"]`` (``sim2real-calibrate-int8``).

**Quantization** (:func:`quantize_int8`), per Conv node whose weight initialiser is ``[prefix.]<path>.weight``
of a calibrated path::

    x -> Q(s_x, z_x) -> DQ -> Conv(DQ(W8), b) -> Q(s_y, z_y) -> DQ -> y
    s = (max(hi, 0) - min(lo, 0)) / 255,  z = round(-min(lo, 0) / s)          uint8 activations, range [lo, hi]
    W8[c] = round(W[c] / s_w[c]),  s_w[c] = max|W[c]| / 63                     7-bit weights per output channel

ONNX Runtime fuses each DQ-Conv-Q into one QLinearConv. The weights use 7 of the 8 bits (ONNX Runtime's
``reduce_range``): x86 CPUs without VNNI add pairs of uint8 x int8 products in int16, which 8-bit weights can
saturate; this machine has VNNI, so only the 7-bit numbers are tested here. The output of a quantized graph
differs from the fp32 graph's by ~0.2-0.3 levels of 255 on average and by at most ~4-5 (``test/test_int8.py``,
``sim2real-calibrate-int8``'s check; docs/translator.md "Int8 encoders").
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor, nn

from sim2real.core.errors import CheckpointError

__all__ = ["DOCUMENT_KEY", "INT8_SCOPES", "INT8_VERSION", "Int8Calibration", "calibrate_int8", "calibration_of",
           "check_calibration_fits", "int8_modules", "quantize_int8"]

#: module paths (prefixes) of the convolutions run in int8: the content encoder and the instance encoder.
INT8_SCOPES: Final = ("content_body.", "instance_branch.encoder.", "instance_branch.project")
#: where a checkpoint document keeps its calibration: ``document["extra"][DOCUMENT_KEY]``.
DOCUMENT_KEY: Final = "int8_calibration"
#: bumped when the quantized graph changes for the same calibration (part of the ONNX cache key of int8 graphs).
INT8_VERSION: Final = 1
_LEVELS: Final = 255
_WEIGHT_LEVELS: Final = 63


@dataclass(frozen=True)
class Int8Calibration:
    """Activation ranges of the int8 convolutions: ``ranges`` module path -> (input min, input max, output min,
    output max) over ``frames`` calibration frames described by ``source``, measured on the weights whose
    :func:`~sim2real.translator.checkpoint.tensor_digest` is ``tensor_sha256``."""

    ranges: Mapping[str, tuple[float, float, float, float]]
    frames: int
    source: str
    tensor_sha256: str

    def __post_init__(self) -> None:
        if not self.ranges:
            raise ValueError("an int8 calibration needs at least one convolution's ranges")
        if not isinstance(self.frames, int) or self.frames < 1:
            raise ValueError(f"an int8 calibration needs frames >= 1, got {self.frames!r}")
        for path, r in self.ranges.items():
            if len(r) != 4 or not all(math.isfinite(v) for v in r) or r[0] > r[1] or r[2] > r[3]:
                raise ValueError(f"int8 calibration of {path!r}: ranges must be 4 finite numbers (input min <= "
                                 f"max, output min <= max), got {list(r)}")

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "source": self.source, "tensor_sha256": self.tensor_sha256,
                "ranges": {k: [float(v) for v in r] for k, r in sorted(self.ranges.items())}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Int8Calibration:
        """The inverse of :meth:`to_dict`; ValueError names what is wrong."""
        keys = {"frames", "source", "tensor_sha256", "ranges"}
        if not isinstance(d, Mapping) or set(d) != keys:
            raise ValueError(f"an int8 calibration is an object with exactly the keys {sorted(keys)}")
        ranges = d["ranges"]
        if not isinstance(ranges, Mapping) or not all(isinstance(r, list) for r in ranges.values()):
            raise ValueError("int8 calibration 'ranges' must map module paths to lists of 4 numbers")
        return cls({str(k): tuple(float(v) for v in r) for k, r in ranges.items()}, d["frames"], str(d["source"]),
                   str(d["tensor_sha256"]))

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON: part of the cache key of graphs quantized with it."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def calibration_of(document: Mapping[str, Any]) -> Int8Calibration | None:
    """The calibration a checkpoint document carries (None when it has none). Raises CheckpointError when the
    entry is malformed or was measured on other weights than the document's ``tensor_sha256``."""
    extra = document.get("extra") or {}
    if not isinstance(extra, Mapping):
        raise CheckpointError(f"the checkpoint's 'extra' must be an object, got {type(extra).__name__}")
    entry = extra.get(DOCUMENT_KEY)
    if entry is None:
        return None
    try:
        calibration = Int8Calibration.from_dict(entry)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"the checkpoint's extra[{DOCUMENT_KEY!r}] is malformed: {e}") from e
    if calibration.tensor_sha256 != document.get("tensor_sha256"):
        theirs = str(document.get("tensor_sha256"))[:12]
        raise CheckpointError(f"the checkpoint's int8 calibration was measured on other weights (tensor_sha256 "
                              f"{calibration.tensor_sha256[:12]}, the file's {theirs}): run sim2real-calibrate-int8"
                              " on it again, or turn onnx_int8 off")
    return calibration


def int8_modules(generator: nn.Module) -> dict[str, nn.Conv2d]:
    """The generator's convolutions run in int8: every ``nn.Conv2d`` under :data:`INT8_SCOPES`, by module path."""
    return {name: m for name, m in generator.named_modules()
            if isinstance(m, nn.Conv2d) and name.startswith(INT8_SCOPES)}


def check_calibration_fits(calibration: Int8Calibration, generator: nn.Module) -> None:
    """Raise CheckpointError unless the calibration covers exactly the generator's int8 convolutions."""
    have = set(int8_modules(generator))
    if set(calibration.ranges) != have:
        extra, missing = sorted(set(calibration.ranges) - have), sorted(have - set(calibration.ranges))
        raise CheckpointError(f"the int8 calibration does not fit this network (ranges of convolutions it lacks: "
                              f"{extra}; convolutions without ranges: {missing})")


@torch.no_grad()
def calibrate_int8(generator: nn.Module, frames: Iterable[tuple[Tensor, Tensor, Tensor]], *, source: str,
                   tensor_sha256: str) -> Int8Calibration:
    """Ranges of the int8 convolutions' inputs and outputs (module docstring) over ``frames``: (rgb (1, 3, H, W)
    in [-1, 1], semantic (1, H, W), instance (1, H, W)) each, translated as the exported graph does (padded to
    the stride). The generator is run as given (put it in eval mode on the CPU first); ``tensor_sha256`` names
    its weights: the checkpoint's (:func:`~sim2real.translator.checkpoint.tensor_digest` of the file's tensors,
    which may be fp16 where the network runs fp32)."""
    from sim2real.translator.frames import pad_to_stride

    modules = int8_modules(generator)
    if not modules:
        raise ValueError(f"the generator has no convolution under {INT8_SCOPES}")
    seen: dict[str, list[float]] = {}

    def record(path: str, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        x, y = inputs[0].float(), output.float()
        now = [x.min().item(), x.max().item(), y.min().item(), y.max().item()]
        old = seen.setdefault(path, now)
        seen[path] = [min(old[0], now[0]), max(old[1], now[1]), min(old[2], now[2]), max(old[3], now[3])]

    hooks = [m.register_forward_hook(lambda _m, i, o, p=path: record(p, i, o)) for path, m in modules.items()]
    count = 0
    try:
        for rgb, semantic, instance in frames:
            generator.translate(*pad_to_stride(rgb, semantic, instance, generator.cfg.stride))
            count += 1
    finally:
        for h in hooks:
            h.remove()
    if count == 0:
        raise ValueError("int8 calibration needs at least one frame")
    missing = sorted(set(modules) - set(seen))
    if missing:  # a branch the frames never ran (e.g. frames without instances)
        raise ValueError(f"the calibration frames never ran {missing}: give frames with instances")
    return Int8Calibration({p: tuple(r) for p, r in seen.items()}, count, source, tensor_sha256)


def _activation_scale(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 scale and zero point of the range [min(lo, 0), max(hi, 0)] (zero exactly representable)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / _LEVELS
    return np.array(scale, np.float32), np.array(np.clip(round(-lo / scale), 0, _LEVELS), np.uint8)


def _weights_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8 weights: (W8, scales (C_out,)), W ~= W8 * scale[c]."""
    scale = np.maximum(np.abs(w.reshape(w.shape[0], -1)).max(1) / _WEIGHT_LEVELS, 1e-12).astype(np.float32)
    q = np.clip(np.round(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -_WEIGHT_LEVELS, _WEIGHT_LEVELS)
    return q.astype(np.int8), scale


def _path_of(weight_name: str, paths: Iterable[str]) -> str | None:
    """The calibrated module path whose ``.weight`` the initialiser ``weight_name`` is (a wrapper's prefix
    allowed: ``generator.content_body.res.0.body.0.0.weight``)."""
    for path in paths:
        tail = f"{path}.weight"
        if weight_name == tail or weight_name.endswith("." + tail):
            return path
    return None


def _subgraph_inputs(node: Any) -> set[str]:
    """Names read inside a node's subgraphs (If / Loop bodies), recursively."""
    import onnx

    names: set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for g in graphs:
            for inner in g.node:
                names.update(inner.input)
                names.update(_subgraph_inputs(inner))
    return names


def _quantized_conv(node: Any, weight: Any, ranges: tuple[float, float, float, float]) -> tuple[list[Any], list[Any]]:
    """The nodes and initialisers that run Conv ``node`` on uint8 activations and int8 weights (module docstring):
    (nodes in order, new initialisers); ``node`` itself is rewired in place."""
    from onnx import helper, numpy_helper

    tag = f"{node.name or node.output[0]}/int8"
    x_scale, x_zero = _activation_scale(ranges[0], ranges[1])
    y_scale, y_zero = _activation_scale(ranges[2], ranges[3])
    w8, w_scale = _weights_int8(numpy_helper.to_array(weight).astype(np.float32))
    inits = [numpy_helper.from_array(v, f"{tag}/{n}") for n, v in (
        ("x_scale", x_scale), ("x_zero", x_zero), ("y_scale", y_scale), ("y_zero", y_zero), ("w", w8),
        ("w_scale", w_scale), ("w_zero", np.zeros(len(w_scale), np.int8)))]
    x, y = node.input[0], node.output[0]
    nodes = [
        helper.make_node("QuantizeLinear", [x, f"{tag}/x_scale", f"{tag}/x_zero"], [f"{tag}/x8"], name=f"{tag}/Qx"),
        helper.make_node("DequantizeLinear", [f"{tag}/x8", f"{tag}/x_scale", f"{tag}/x_zero"], [f"{tag}/xq"],
                         name=f"{tag}/DQx"),
        helper.make_node("DequantizeLinear", [f"{tag}/w", f"{tag}/w_scale", f"{tag}/w_zero"], [f"{tag}/wq"],
                         name=f"{tag}/DQw", axis=0),
        node,
        helper.make_node("QuantizeLinear", [f"{tag}/y", f"{tag}/y_scale", f"{tag}/y_zero"], [f"{tag}/y8"],
                         name=f"{tag}/Qy"),
        helper.make_node("DequantizeLinear", [f"{tag}/y8", f"{tag}/y_scale", f"{tag}/y_zero"], [y], name=f"{tag}/DQy"),
    ]
    node.input[0], node.input[1], node.output[0] = f"{tag}/xq", f"{tag}/wq", f"{tag}/y"
    return nodes, inits


def quantize_int8(model: bytes, calibration: Int8Calibration, *, export_key: str = "sim2real.export") -> bytes:
    """An exported graph (ONNX bytes) with the calibrated convolutions in int8 (module docstring); the
    ``export_key`` metadata entry gains ``"int8"`` (the calibration's digest, frames and source, the count of
    convolutions). Raises CheckpointError when a calibrated convolution is not in the graph (a calibration of
    another architecture) or the graph is quantized already."""
    import onnx

    proto = onnx.load_from_string(model)
    graph = proto.graph
    weights = {i.name: i for i in graph.initializer}
    nodes: list[Any] = []
    done: set[str] = set()
    replaced: set[str] = set()
    for node in list(graph.node):
        if node.op_type in ("QuantizeLinear", "QLinearConv"):
            raise CheckpointError("the graph is quantized already")
        path = (_path_of(node.input[1], calibration.ranges)
                if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in weights else None)
        if path is None:
            nodes.append(node)
            continue
        if path in done:
            raise CheckpointError(f"the graph runs the convolution {path} twice: one calibration cannot serve both")
        weight = weights[node.input[1]]
        replaced.add(weight.name)
        new_nodes, inits = _quantized_conv(node, weight, calibration.ranges[path])
        nodes.extend(new_nodes)
        graph.initializer.extend(inits)
        done.add(path)
    missing = sorted(set(calibration.ranges) - done)
    if missing:
        raise CheckpointError(f"the graph has no top-level convolution for the calibrated {missing}: a "
                              "calibration of another model?")
    del graph.node[:]
    graph.node.extend(nodes)
    read = {name for n in graph.node for name in (*n.input, *_subgraph_inputs(n))}
    kept = [i for i in graph.initializer if i.name in read or i.name not in replaced]  # drop the fp32 weights
    del graph.initializer[:]
    graph.initializer.extend(kept)
    meta = {p.key: p for p in proto.metadata_props}
    if export_key in meta:
        info = json.loads(meta[export_key].value)
        info["int8"] = {"calibration_sha256": calibration.digest(), "frames": calibration.frames,
                        "source": calibration.source, "convolutions": len(done)}
        meta[export_key].value = json.dumps(info)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
