"""Bare-model frames/s of the translator presets vs the CycleGAN/CUT ResNet-9 generator (not a test).

    .venv/bin/python benchmarks/bench_model.py [--sizes 640x360,1280x720,1920x1080]
        [--presets lite,full,lite+prior,lite+frame_prior,lite+frame_prior+pool,lite+frame_prior+pool+body_replicate,
         lite+frame_prior+pool+detail_highpass,lite+frame_prior+pool+detail_highpass+edge2,lite+int8]
        [--threads 2] [--warmup 3] [--frames 10] [--budget 8] [--devices cpu,cuda]
        [--compile-sizes all] [--onnx-cuda-sizes all]

Per preset and frame size: eager fp32 (contiguous), eager fp32 channels_last, ONNX Runtime CPU, and the
ResNet-9 baseline (``benchmarks/resnet9.py``, random init, eager fp32) at the same size IN THE SAME RUN;
our speed is printed as a ratio to it. With CUDA (``--devices`` includes cuda, the default when one is
present): eager fp32 / fp16 / bf16 autocast, ``torch.compile`` fp16 (at ``--compile-sizes``: inductor
compiles per preset and size, tens of seconds each), and ONNX Runtime with the CUDA and TensorRT execution
providers (at ``--onnx-cuda-sizes``, when the installed onnxruntime has them; the row says so otherwise).
"Bare model" = ``Translator.translate_normalized`` on pre-made float tensors (no uint8 conversion, no ROS),
batch 1, random-init weights (speed does not depend on the values), one synthetic frame with a few
instances. Each row runs ``--warmup`` frames then ``--frames`` timed frames, both cut short after
``--budget`` seconds (slow baselines at 1080p: the row says how many frames it timed); it reports the mean
and the 95th percentile of the per-frame wall time.

On a CPU shared with other processes run it with ``OMP_WAIT_POLICY=PASSIVE`` (what ``translate_node`` sets
for itself): with busy-waiting OpenMP threads the eager rows at 2 threads are ~10x slower under load.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from resnet9 import resnet9_generator

from sim2real.translator.config import GeneratorConfig, get_generator_config
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.inference import Translator


def machine(spin_us: int = 0) -> str:
    """CPU model, logical cores, torch version and threads."""
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical cores, torch {torch.__version__} ({torch.get_num_threads()} "
            f"intra-op threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), onnxruntime "
            f"{_ort_version()} (graph optimisation ALL, intra-op threads = --threads, "
            f"{f'spin-wait up to {spin_us} us' if spin_us else 'no spin-wait'}), load average "
            f"{os.getloadavg()[0]:.1f}")


def _ort_version() -> str:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return "not installed"


def frame(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A synthetic frame: rgb (1, 3, H, W) in [-1, 1], road / car semantic, 6 car instances."""
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, height, width, generator=g) * 2 - 1
    sem = torch.zeros(1, height, width, dtype=torch.long)
    inst = torch.zeros(1, height, width, dtype=torch.long)
    for k in range(6):
        y0, x0 = height // 2 + (k % 2) * height // 8, k * width // 7 + width // 28
        sem[:, y0 : y0 + height // 6, x0 : x0 + width // 9] = 13
        inst[:, y0 : y0 + height // 6, x0 : x0 + width // 9] = k + 1
    return rgb.to(device), sem.to(device), inst.to(device)


def timeit(fn: Callable[[], object], warmup: int, frames: int, budget: float, sync: Callable[[], None]
           ) -> tuple[float, float, int, float]:
    """(mean wall s per call, mean process CPU s per call, calls timed, p95 wall s per call); warm-up and
    timing each stop early after ``budget`` s (at least one timed call). CPU time counts every thread of this
    process."""
    t_start = time.perf_counter()
    for _ in range(warmup):
        fn()
        sync()
        if time.perf_counter() - t_start > budget:
            break
    times: list[float] = []
    t_start, c_start = time.perf_counter(), time.process_time()
    while len(times) < frames:
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - t_start > budget:
            break
    cpu = (time.process_time() - c_start) / len(times)
    return float(np.mean(times)), cpu, len(times), float(np.percentile(times, 95))


@dataclass
class Bench:
    """Benchmark settings and the rows measured so far."""

    warmup: int
    frames: int
    budget: float
    threads: int
    spin_us: int = 0
    rows: list[tuple[str, str, str, float, float, float | None, float]] = field(default_factory=list)

    def emit(self, model: str, size: str, backend: str, *, t: tuple[float, float, int, float], base: float | None
             ) -> None:
        """Print one Markdown row (ratio = ResNet-9 wall seconds / ours) and keep it; t = timeit's result."""
        sec, cpu, n, p95 = t
        ratio = f"{base / sec:.1f}×" if base else "–"
        print(f"| {model} | {size} | {backend} | {sec * 1e3:.1f} | {p95 * 1e3:.1f} | {1 / sec:.2f} | {cpu:.2f} | "
              f"{ratio} | {n} |", flush=True)
        self.rows.append((model, size, backend, sec, cpu, base, p95))

    def time(self, fn: Callable[[], object], sync: Callable[[], None]) -> tuple[float, float, int, float]:
        """:func:`timeit` with these settings."""
        return timeit(fn, self.warmup, self.frames, self.budget, sync)


def _no_sync() -> None:
    return None


def resnet9_rows(b: Bench, size: str, dev: torch.device, rgb: torch.Tensor, sync: Callable[[], None]) -> float:
    """The ResNet-9 baseline rows (fp32; fp16 too on CUDA); returns its fp32 seconds per frame."""
    torch.manual_seed(0)
    base_net = resnet9_generator().to(dev).eval()
    with torch.inference_mode():
        t = b.time(partial(base_net, rgb), sync)
    b.emit("ResNet-9 (CycleGAN/CUT)", size, f"{dev.type} eager fp32", t=t, base=None)
    if dev.type == "cuda":
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
            t16 = b.time(partial(base_net, rgb), sync)
        b.emit("ResNet-9 (CycleGAN/CUT)", size, "cuda eager fp16", t=t16, base=t[0])
    return t[0]


def skipped(preset: str, size: str, backend: str, why: str) -> None:
    """A row that did not run, and why."""
    print(f"| {preset} | {size} | {backend} | {why} | | | | | |", flush=True)


def torch_variants(dev: torch.device, preset: str, size: str, compile_here: bool) -> list[tuple[str, str, bool, bool]]:
    """(label, precision, channels_last, compile) of the torch rows on ``dev``."""
    variants = [("eager fp32", "fp32", False, False), ("eager fp32 channels_last", "fp32", True, False)]
    if dev.type == "cuda":
        variants += [("eager fp16", "fp16", True, False), ("eager bf16", "bf16", True, False)]
        if compile_here:
            variants.append(("compile fp16", "fp16", True, True))
        else:
            skipped(preset, size, "cuda compile fp16", "not at this size (--compile-sizes)")
    return variants


#: ``--presets`` suffixes: ``lite+prior`` = the lite preset with the fixed class-wise colour prior,
#: ``lite+frame_prior`` with the per-frame one (unfitted: the cost does not depend on the statistics' values),
#: ``+pool`` with half the decoder's coefficients pooled per class (``coefficient_pooling`` 0.5), ``+body_replicate``
#: with the content body and decoder padded by replication (``body_padding_mode``), ``+detail_highpass`` with the
#: detail path's local mean taken off (``detail_highpass``), ``+detail_class`` with its class means taken off instead
#: (``detail_mean`` class), ``+detail_class_box`` with both, class means first (``detail_mean`` class_box),
#: ``+detail_class_box_field`` with the box and the class steps' bands taken off in the edge-pixel field (after
#: ``+edge2_pixels``; ``detail_mean`` class_box_field),
#: ``+edge2`` with the cells within 2 work cells of another label pooled wholly (``coefficient_edge_pooling`` 2),
#: ``+edge2_pixels`` with that edge pooling also per pixel (``coefficient_edge_pixels``), ``+thing_guide`` with the
#: things' own chroma (``colour_prior_thing_chroma``, ``decoder_thing_chroma`` guide), ``+edge_clamp1`` with the
#: output clamped within 1 px of label edges (``edge_clamp`` 1), ``+lightness4`` with the pooling targets taken per
#: bin of the guide's lightness (``coefficient_lightness_bins`` 4; after a pooling option), ``+road_markings`` with
#: the road's painted markings keeping their chroma (``marking_chroma_classes`` road; after ``+frame_prior``),
#: ``+wide_building6`` with the building's cells pooled wholly within 6 work cells of another label
#: (``coefficient_wide_edge_classes`` building, ``coefficient_wide_edge_pooling`` 6; after ``+edge2``).
PRESET_OPTIONS = {"prior": {"use_colour_prior": True},
                  "frame_prior": {"use_colour_prior": True, "colour_prior_per_frame": True},
                  "pool": {"coefficient_pooling": 0.5},
                  "body_replicate": {"body_padding_mode": "replicate"},
                  "detail_highpass": {"detail_highpass": True},
                  "detail_class": {"detail_highpass": True, "detail_mean": "class"},
                  "detail_class_box": {"detail_highpass": True, "detail_mean": "class_box"},
                  "detail_class_box_field": {"detail_highpass": True, "detail_mean": "class_box_field"},
                  "edge2": {"coefficient_edge_pooling": 2},
                  "edge2_pixels": {"coefficient_edge_pooling": 2, "coefficient_edge_pixels": True},
                  "thing_guide": {"colour_prior_thing_chroma": True, "decoder_thing_chroma": "guide"},
                  "edge_clamp1": {"edge_clamp": 1},
                  "lightness4": {"coefficient_lightness_bins": 4},
                  "road_markings": {"marking_chroma_classes": ("road",)},
                  "wide_building6": {"coefficient_wide_edge_classes": ("building",),
                                     "coefficient_wide_edge_pooling": 6}}


def preset_config(spec: str) -> GeneratorConfig:
    """A preset name with optional ``+option`` suffixes (:data:`PRESET_OPTIONS`) -> its GeneratorConfig.
    ``+int8`` is not a config option: its ONNX Runtime row runs the encoder convolutions in int8
    (:mod:`sim2real.translator.int8`, calibrated on the benchmark frame)."""
    name, *options = spec.split("+")
    cfg = get_generator_config(name)
    for option in options:
        if option == "int8":
            continue
        if option not in PRESET_OPTIONS:
            raise SystemExit(f"unknown preset option +{option}; valid: {sorted(PRESET_OPTIONS)}")
        cfg = dataclasses.replace(cfg, **PRESET_OPTIONS[option])
    return cfg


def bench_size(b: Bench, width: int, height: int, dev: torch.device, *, presets: list[str], onnx: bool,
               compile_here: bool = True, onnx_cuda_here: bool = True, torch_rows: bool = True) -> None:
    """All rows of one frame size on one device: the ResNet-9 baseline first, then every preset."""
    size = f"{width}x{height}"
    sync = torch.cuda.synchronize if dev.type == "cuda" else _no_sync
    rgb, sem, inst = frame(height, width, dev)
    base_s = resnet9_rows(b, size, dev, rgb, sync) if torch_rows else None
    for preset in presets:
        cfg = preset_config(preset)
        torch.manual_seed(0)
        gen = TranslatorGenerator(cfg)
        int8 = "int8" in preset.split("+")  # an ONNX Runtime CPU row only: in torch it is the preset without it
        variants = torch_variants(dev, preset, size, compile_here) if torch_rows and not int8 else []
        for label, precision, cl, comp in variants:
            tr = Translator.from_generator(gen, cfg, device=dev, precision=precision, channels_last=cl, compile=comp)
            try:
                t = b.time(lambda tr=tr: tr.translate_normalized(rgb, sem, inst), sync)
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                skipped(preset, size, f"{dev.type} {label}", f"failed: {str(exc)[:80]}")
                continue
            b.emit(preset, size, f"{dev.type} {label}", t=t, base=base_s)
        if dev.type == "cpu" and onnx:
            bench_onnx(b, gen, preset, size, inputs=(rgb, sem, inst), base_s=base_s, int8=int8)
        if dev.type == "cuda" and onnx and onnx_cuda_here and not int8:
            for provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
                bench_onnx(b, gen, preset, size, inputs=(rgb, sem, inst), base_s=base_s, provider=provider)


def bench_onnx(b: Bench, gen: TranslatorGenerator, preset: str, size: str, *,
               inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], base_s: float | None,
               provider: str = "CPUExecutionProvider", int8: bool = False) -> None:
    """Export ``gen`` at this size and time it under ONNX Runtime with ``provider`` (intra-op threads =
    --threads; numpy in and out, so GPU providers include the copies); ``int8``: with the encoder convolutions
    in int8, calibrated on the benchmark frame."""
    import onnxruntime

    from sim2real.translator.int8 import calibrate_int8, quantize_int8
    from sim2real.translator.onnx_export import OnnxTranslator, export_onnx_bytes, write_atomically

    label = {"CPUExecutionProvider": "onnxruntime cpu", "CUDAExecutionProvider": "onnxruntime cuda",
             "TensorrtExecutionProvider": "onnxruntime tensorrt"}[provider]
    if provider not in onnxruntime.get_available_providers():
        skipped(preset, size, label, f"not available (onnxruntime {onnxruntime.__version__} providers: "
                f"{', '.join(onnxruntime.get_available_providers())})")
        return
    height, width = inputs[0].shape[-2:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{preset}_{size}.onnx"
        t0 = time.perf_counter()
        try:
            data = export_onnx_bytes(gen.cpu(), int(height), int(width))
            if int8:
                with torch.no_grad():
                    calibration = calibrate_int8(gen.cpu().eval(), [tuple(t.cpu() for t in inputs)], source="frame",
                                                 tensor_sha256="random weights")
                data = quantize_int8(data, calibration)
            write_atomically(path, data)
            providers = (provider,) if provider == "CPUExecutionProvider" else (provider, "CPUExecutionProvider")
            ort_tr = OnnxTranslator(path, intra_op_threads=b.threads, spin_us=b.spin_us, providers=providers)
        except Exception as exc:  # exporter and session errors are diverse; report and go on
            skipped(preset, size, label, f"export / session failed: {str(exc)[:80]}")
            return
        export_s = time.perf_counter() - t0
        feeds = tuple(t.cpu().numpy() for t in inputs)
        t = b.time(lambda: ort_tr.translate_normalized(*feeds), _no_sync)
        b.emit(preset, size, f"{label} (export {export_s:.0f} s)", t=t, base=base_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="640x360,1280x720,1920x1080")
    parser.add_argument("--presets", default="lite,full")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--onnx-spin-us", type=int, default=0,
                        help="ONNX Runtime rows: idle threads spin this many microseconds before sleeping (0 = not at "
                             "all, the translate node's default)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per row for warm-up and for timing")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--devices", default="cpu,cuda", help="cpu and / or cuda (cuda rows need a CUDA device)")
    parser.add_argument("--compile-sizes", default="all", help="sizes with a torch.compile row (WxH,...; all)")
    parser.add_argument("--onnx-cuda-sizes", default="all", help="sizes with ONNX Runtime CUDA / TensorRT rows")
    parser.add_argument("--onnx-only", action="store_true",
                        help="only the ONNX Runtime rows (no ResNet-9 baseline, no torch rows: ratios are '–')")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    cuda = torch.cuda.is_available()
    print(f"machine: {machine(args.onnx_spin_us)}")
    print(f"CUDA: {torch.cuda.get_device_name(0) if cuda else 'no CUDA'}")
    print()
    print("| model | size | backend | ms / frame | p95 ms | frames/s | CPU s / frame | × ResNet-9 (wall, same size, "
          "device, fp32) | timed frames |")
    print("|---|---|---|---|---|---|---|---|---|")
    if args.onnx_spin_us < 0:
        parser.error(f"--onnx-spin-us must be >= 0, got {args.onnx_spin_us}")
    b = Bench(args.warmup, args.frames, args.budget, args.threads, args.onnx_spin_us)
    wanted = args.devices.split(",")
    devices = [torch.device(d) for d in ("cpu", "cuda") if d in wanted and (d == "cpu" or cuda)]
    if "cuda" in wanted and not cuda:
        print("| (all) | (all) | cuda | skipped: no CUDA device | | | | | |")
    for width, height in sizes:
        size = f"{width}x{height}"
        for dev in devices:
            bench_size(b, width, height, dev, presets=args.presets.split(","), onnx=not args.no_onnx,
                       compile_here=args.compile_sizes == "all" or size in args.compile_sizes.split(","),
                       onnx_cuda_here=args.onnx_cuda_sizes == "all" or size in args.onnx_cuda_sizes.split(","),
                       torch_rows=not args.onnx_only)
        if size == "1920x1080":
            target_check(b)
    print()
    lite_640 = [r for r in b.rows
                if r[0] == "lite" and r[1] == "640x360" and r[2].startswith(("cpu", "onnxruntime cpu"))]
    if lite_640:
        best = min(lite_640, key=lambda r: r[3])
        base = best[5] or float("nan")
        print(f"target check (lite, 640x360, CPU): best {1 / best[3]:.1f} frames/s wall ({best[2]}, "
              f"{best[4]:.2f} CPU s / frame), {base / best[3]:.1f}× ResNet-9 — targets >= 10 frames/s and >= 50×")


def target_check(b: Bench) -> None:
    """The GPU target line: the best GPU row of ``full`` at 1920x1080 (printed as soon as that size is done)."""
    rows = [r for r in b.rows if r[0] == "full" and r[1] == "1920x1080" and r[2].startswith(("cuda", "onnxruntime"))
            and not r[2].startswith("onnxruntime cpu")]
    if rows:
        best = min(rows, key=lambda r: r[3])
        print(f"target check (full, 1920x1080, GPU): best {1 / best[3]:.1f} frames/s, p95 {best[6] * 1e3:.1f} ms "
              f"({best[2]}) — targets >= 60 frames/s and p95 <= 20 ms on an H100-class GPU", flush=True)


if __name__ == "__main__":
    main()
