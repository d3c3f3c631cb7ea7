"""Time exported ONNX graphs against each other, alternating in one process (not a test).

    sim2real-export-onnx models/default.safetensors /tmp/new.onnx --height 360 --width 640   # in each tree
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_onnx_files.py /tmp/old.onnx /tmp/new.onnx
        [--threads 2] [--rounds 6] [--frames 30] [--onnx-spin-us 0] [--frame procedural|synthetic]

The machine's speed moves by 10-15 % from hour to hour (docs/BENCHMARKS.md), more than most graph changes, so
two graphs are compared inside one run: every round times ``--frames`` frames of each file in turn, and the
table gives each file's median over the rounds, the range, and the ratio to the first file measured in the
same rounds. The files get the same frame (the procedural simulator's frame 0 at the graphs' size, or
``bench_model.py``'s synthetic frame), the same ONNX Runtime settings as the translate node
(:class:`~sim2real.translator.onnx_export.OnnxTranslator`: graph optimisation ALL, ``--threads`` intra-op
threads, no spin-wait unless ``--onnx-spin-us``), and the largest output difference against the first file is
printed in 8-bit levels (graphs of the same weights should agree to a small fraction of a level).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def frame_for(height: int, width: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame at the graphs' size: rgb (1, 3, H, W) float32 in [-1, 1], semantic and instance (1, H, W) int64."""
    if kind == "synthetic":
        import torch

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_model import frame

        rgb, semantic, instance = (t.numpy() for t in frame(height, width, torch.device("cpu")))
    else:
        from sim_bridge.procedural import ProceduralSimulator, SimConfig

        f = ProceduralSimulator(SimConfig(width=width, height=height)).frame(0)
        rgb, semantic, instance = f.rgb.transpose(2, 0, 1)[None] / 127.5 - 1, f.semantic[None], f.instance[None]
    return rgb.astype(np.float32), semantic.astype(np.int64), instance.astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="ONNX files exported at the same frame size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--frames", type=int, default=30, help="frames per file and round")
    parser.add_argument("--onnx-spin-us", type=int, default=0)
    parser.add_argument("--frame", choices=("procedural", "synthetic"), default="procedural")
    args = parser.parse_args()
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        parser.exit(2, f"error: no such file: {', '.join(missing)}\n")
    if min(args.threads, args.rounds, args.frames) < 1 or args.onnx_spin_us < 0:
        parser.exit(2, "error: --threads, --rounds and --frames must be >= 1, --onnx-spin-us >= 0\n")

    from sim2real.core.errors import CheckpointError
    from sim2real.translator.onnx_export import OnnxTranslator

    try:
        graphs = [OnnxTranslator(f, intra_op_threads=args.threads, spin_us=args.onnx_spin_us) for f in args.files]
    except CheckpointError as e:  # not an ONNX file, or not one of ours
        parser.exit(2, f"error: {e}\n")
    if len({(g.height, g.width) for g in graphs}) != 1:
        parser.exit(2, "error: the files were exported at different frame sizes\n")
    frame = frame_for(graphs[0].height, graphs[0].width, args.frame)
    outputs = [g.translate_normalized(*frame) for g in graphs]  # also the warm-up
    times: list[list[float]] = [[] for _ in graphs]
    for _ in range(args.rounds):
        for graph, row in zip(graphs, times, strict=True):
            start = time.perf_counter()
            for _ in range(args.frames):
                graph.translate_normalized(*frame)
            row.append((time.perf_counter() - start) / args.frames * 1000)
    base = float(np.median(times[0]))
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.threads} threads, spin "
          f"{args.onnx_spin_us} us, load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds x {args.frames} "
          f"frames, {args.frame} frame\n")
    print("| file | ms / frame (median) | range | ratio to the first | largest output difference to the first "
          "(8-bit levels) |")
    print("|---|---|---|---|---|")
    for f, row, out in zip(args.files, times, outputs, strict=True):
        print(f"| {f.name} | {np.median(row):.1f} | {min(row):.1f}–{max(row):.1f} | {np.median(row) / base:.3f} | "
              f"{np.abs(out - outputs[0]).max() * 127.5:.4f} |")


if __name__ == "__main__":
    main()
