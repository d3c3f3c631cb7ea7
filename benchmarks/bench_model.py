"""Bare-model frames/s of the translator presets vs the CycleGAN/CUT ResNet-9 generator (not a test).

    .venv/bin/python benchmarks/bench_model.py [--sizes 640x360,1280x720,1920x1080] [--presets lite,full]
        [--threads 2] [--warmup 3] [--frames 10] [--budget 8]

Per preset and frame size: eager fp32 (contiguous), eager fp32 channels_last, ONNX Runtime CPU, and the
ResNet-9 baseline (``benchmarks/resnet9.py``, random init, eager fp32) at the same size IN THE SAME RUN;
our speed is printed as a ratio to it. With CUDA: fp32 / fp16 / bf16 autocast and torch.compile rows too
(else "no CUDA"). "Bare model" = ``Translator.translate_normalized`` on pre-made float tensors (no uint8
conversion, no ROS), batch 1, random-init weights (speed does not depend on the values), one synthetic
frame with a few instances. Each row runs ``--warmup`` frames then ``--frames`` timed frames, both cut
short after ``--budget`` seconds (slow baselines at 1080p: the row says how many frames it timed).

On a CPU shared with other processes run it with ``OMP_WAIT_POLICY=PASSIVE`` (what ``translate_node`` sets
for itself): with busy-waiting OpenMP threads the eager rows at 2 threads are ~10x slower under load.
"""

from __future__ import annotations

import argparse
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

from sim2real.translator.config import get_generator_config
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.inference import Translator


def machine() -> str:
    """CPU model, logical cores, torch version and threads."""
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical cores, torch {torch.__version__} ({torch.get_num_threads()} "
            f"intra-op threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), onnxruntime "
            f"{_ort_version()} (graph optimisation ALL, intra-op threads = --threads, no spin-wait), load average "
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
           ) -> tuple[float, float, int]:
    """(mean wall s per call, mean process CPU s per call, calls timed); warm-up and timing each stop early
    after ``budget`` s (at least one timed call). CPU time counts every thread of this process."""
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
    return float(np.mean(times)), (time.process_time() - c_start) / len(times), len(times)


@dataclass
class Bench:
    """Benchmark settings and the rows measured so far."""

    warmup: int
    frames: int
    budget: float
    threads: int
    rows: list[tuple[str, str, str, float, float, float | None]] = field(default_factory=list)

    def emit(self, model: str, size: str, backend: str, *, t: tuple[float, float, int], base: float | None
             ) -> None:
        """Print one Markdown row (ratio = ResNet-9 wall seconds / ours) and keep it; t = timeit's result."""
        sec, cpu, n = t
        ratio = f"{base / sec:.1f}×" if base else "–"
        print(f"| {model} | {size} | {backend} | {sec * 1e3:.1f} | {1 / sec:.2f} | {cpu:.2f} | {ratio} | {n} |",
              flush=True)
        self.rows.append((model, size, backend, sec, cpu, base))

    def time(self, fn: Callable[[], object], sync: Callable[[], None]) -> tuple[float, float, int]:
        """:func:`timeit` with these settings."""
        return timeit(fn, self.warmup, self.frames, self.budget, sync)


def _no_sync() -> None:
    return None


def bench_size(b: Bench, width: int, height: int, dev: torch.device, *, presets: list[str], onnx: bool) -> None:
    """All rows of one frame size on one device: the ResNet-9 baseline first, then every preset."""
    size = f"{width}x{height}"
    sync = torch.cuda.synchronize if dev.type == "cuda" else _no_sync
    rgb, sem, inst = frame(height, width, dev)
    torch.manual_seed(0)
    base_net = resnet9_generator().to(dev).eval()
    with torch.inference_mode():
        t = b.time(partial(base_net, rgb), sync)
    base_s = t[0]
    b.emit("ResNet-9 (CycleGAN/CUT)", size, f"{dev.type} eager fp32", t=t, base=None)
    if dev.type == "cuda":
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
            t = b.time(partial(base_net, rgb), sync)
        b.emit("ResNet-9 (CycleGAN/CUT)", size, "cuda eager fp16", t=t, base=base_s)
    for preset in presets:
        cfg = get_generator_config(preset)
        torch.manual_seed(0)
        gen = TranslatorGenerator(cfg)
        variants = [("eager fp32", "fp32", False, False), ("eager fp32 channels_last", "fp32", True, False)]
        if dev.type == "cuda":
            variants += [("eager fp16", "fp16", True, False), ("eager bf16", "bf16", True, False),
                         ("compile fp16", "fp16", True, True)]
        for label, precision, cl, comp in variants:
            tr = Translator.from_generator(gen, cfg, device=dev, precision=precision, channels_last=cl, compile=comp)
            try:
                t = b.time(lambda tr=tr: tr.translate_normalized(rgb, sem, inst), sync)
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                print(f"| {preset} | {size} | {dev.type} {label} | failed: {str(exc)[:80]} | | | | |")
                continue
            b.emit(preset, size, f"{dev.type} {label}", t=t, base=base_s)
        if dev.type == "cpu" and onnx:
            bench_onnx(b, gen, preset, size, inputs=(rgb, sem, inst), base_s=base_s)


def bench_onnx(b: Bench, gen: TranslatorGenerator, preset: str, size: str, *,
               inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], base_s: float) -> None:
    """Export ``gen`` at this size and time it under ONNX Runtime CPU (intra-op threads = --threads)."""
    from sim2real.translator.onnx_export import OnnxTranslator, export_onnx

    height, width = inputs[0].shape[-2:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{preset}_{size}.onnx"
        t0 = time.perf_counter()
        try:
            export_onnx(gen, path, int(height), int(width))
        except Exception as exc:  # exporter errors are diverse; report and go on
            print(f"| {preset} | {size} | onnxruntime cpu | export failed: {str(exc)[:80]} | | | | |")
            return
        export_s = time.perf_counter() - t0
        ort_tr = OnnxTranslator(path, intra_op_threads=b.threads)
        feeds = tuple(t.cpu().numpy() for t in inputs)
        t = b.time(lambda: ort_tr.translate_normalized(*feeds), _no_sync)
        b.emit(preset, size, f"onnxruntime cpu (export {export_s:.0f} s)", t=t, base=base_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="640x360,1280x720,1920x1080")
    parser.add_argument("--presets", default="lite,full")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per row for warm-up and for timing")
    parser.add_argument("--no-onnx", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    cuda = torch.cuda.is_available()
    print(f"machine: {machine()}")
    print(f"CUDA: {torch.cuda.get_device_name(0) if cuda else 'no CUDA'}")
    print()
    print("| model | size | backend | ms / frame | frames/s | CPU s / frame | × ResNet-9 (wall, same size, device, "
          "fp32) | timed frames |")
    print("|---|---|---|---|---|---|---|---|")
    b = Bench(args.warmup, args.frames, args.budget, args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if cuda else [])
    for width, height in sizes:
        for dev in devices:
            bench_size(b, width, height, dev, presets=args.presets.split(","), onnx=not args.no_onnx)
    print()
    lite_640 = [r for r in b.rows if r[0] == "lite" and r[1] == "640x360" and r[2].startswith(("cpu", "onnx"))]
    if lite_640:
        best = min(lite_640, key=lambda r: r[3])
        base = best[5] or float("nan")
        print(f"target check (lite, 640x360, CPU): best {1 / best[3]:.1f} frames/s wall ({best[2]}, "
              f"{best[4]:.2f} CPU s / frame), {base / best[3]:.1f}× ResNet-9 — targets >= 10 frames/s and >= 50×")


if __name__ == "__main__":
    main()
