"""Frames per second of the procedural simulator on ONE core (not a test).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sim.py [--frames 150] [--warmup 10]

Renders consecutive frames (the simulator's steady state: segments cached, traffic moving) at
640x360 and 1280x720 and prints frames/s (wall clock, and per CPU second of this thread: the latter is
what one uncontended core gives when other processes share the machine) and per-frame time percentiles.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from sim_bridge.procedural import ProceduralSimulator, SimConfig


def bench(width: int, height: int, frames: int, warmup: int, time_of_day: float) -> None:
    sim = ProceduralSimulator(SimConfig(width=width, height=height, time_of_day=time_of_day))
    for i in range(warmup):
        sim.frame(i)
    times, cpu = [], []
    for i in range(warmup, warmup + frames):
        t0, c0 = time.perf_counter(), time.thread_time()
        sim.frame(i)
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    ms = np.array(times) * 1e3
    print(f"{width}x{height} tod={time_of_day:4.1f}h: {frames / ms.sum() * 1e3:6.1f} frames/s wall, "
          f"{frames / sum(cpu):6.1f} frames/s of CPU time  (wall per frame mean {ms.mean():.1f} ms, "
          f"p50 {np.percentile(ms, 50):.1f}, p95 {np.percentile(ms, 95):.1f}, max {ms.max():.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    for width, height in ((640, 360), (1280, 720)):
        bench(width, height, args.frames, args.warmup, 12.0)
    bench(640, 360, args.frames, args.warmup, 21.0)


if __name__ == "__main__":
    main()
