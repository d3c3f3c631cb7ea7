"""Soak of the ONNX Runtime backend over changing frame sizes: resident memory stays bounded (not a unit test).

    . .venv/env.sh
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soak_sizes.py [--sizes 12] [--rounds 3] [--max-sessions 4]
        [--preset lite | --tiny] [--cache DIR] [--max-growth 0.10] [--json FILE]

One Translator (``backend="onnxruntime"``) translates a frame of each of ``--sizes`` frame sizes (640x360 plus
multiples of 8 around it), ``--rounds`` times over, in two child processes measured the same way:

* ``lru``: the default table of at most ``--max-sessions`` sessions (a revisited size comes back from the
  on-disk cache when it was evicted);
* ``unbounded``: ``max_sessions = --sizes`` (every session kept, what the Translator did before the LRU), the
  baseline of the same run.

Printed per phase: VmRSS after the first round (every size seen once) and after the last, the growth between
them, the peak, and the backend's counters (exports, cache reads, evictions). Exits 0 when the ``lru`` phase's
RSS grows by less than ``--max-growth`` (10 %) after the first round and its peak stays below the unbounded
baseline's; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def rss_mb() -> float:
    """VmRSS of this process in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def frame_sizes(count: int, tiny: bool) -> list[tuple[int, int]]:
    """``count`` distinct (height, width): 360x640 and neighbours in steps of 8 (tiny: 32x48 and neighbours)."""
    base_h, base_w = (32, 48) if tiny else (360, 640)
    return [(base_h + 8 * (k % 3), base_w + 8 * (k // 3)) for k in range(count)]


def run_phase(args: argparse.Namespace) -> dict[str, Any]:
    """One phase in this process: translate every size ``--rounds`` times; RSS and counters."""
    import torch

    from sim2real.translator.config import GeneratorConfig, get_generator_config
    from sim2real.translator.frames import synthetic_frame
    from sim2real.translator.generator import TranslatorGenerator
    from sim2real.translator.inference import Translator

    torch.manual_seed(0)
    cfg = (GeneratorConfig(name="tiny", work_scale=4, num_downsamples=1, base_channels=8, content_channels=16,
                           num_enc_res=1, num_dec_res=1, style_channels=16, style_mlp_dim=16, instance_channels=8,
                           memory_key_dim=8, memory_value_dim=8, max_instances=4) if args.tiny
           else get_generator_config(args.preset))
    sizes = frame_sizes(args.sizes, args.tiny)
    keep = args.max_sessions if args.phase == "lru" else len(sizes)
    tr = Translator.from_generator(TranslatorGenerator(cfg), cfg, device="cpu", precision="fp32",
                                   backend="onnxruntime", threads=1, onnx_cache_dir=args.cache, max_sessions=keep)
    rounds: list[float] = []
    peak = 0.0
    t0 = time.perf_counter()
    for _ in range(args.rounds):
        for h, w in sizes:
            tr.translate(*synthetic_frame(h, w, num_instances=3, seed=h * w))
            peak = max(peak, rss_mb())
        rounds.append(rss_mb())
    return {"phase": args.phase, "sizes": len(sizes), "max_sessions": keep, "rss_per_round_mb": rounds,
            "rss_first_round_mb": rounds[0],
            "rss_last_round_mb": rounds[-1], "growth": (rounds[-1] - rounds[0]) / rounds[0], "peak_mb": peak,
            "seconds": time.perf_counter() - t0, **tr.runner.stats}


def child(args: argparse.Namespace, phase: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", phase, "--sizes", str(args.sizes), "--rounds", str(args.rounds),
           "--max-sessions", str(args.max_sessions), "--preset", args.preset, "--cache", str(args.cache)]
    if args.tiny:
        cmd.append("--tiny")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, default=12, help="distinct frame sizes")
    parser.add_argument("--rounds", type=int, default=3, help="passes over all sizes")
    parser.add_argument("--max-sessions", type=int, default=4, help="the LRU's size (the Translator's default: 4)")
    parser.add_argument("--preset", default="lite")
    parser.add_argument("--tiny", action="store_true", help="a tiny network and small frames (smoke run)")
    parser.add_argument("--cache", type=Path, default=None, help="ONNX cache directory (default: a temporary one)")
    parser.add_argument("--max-growth", type=float, default=0.10)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--phase", choices=("lru", "unbounded"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        args.cache = args.cache or Path(tmp)
        results = [child(args, "lru"), child(args, "unbounded")]
    print("| phase | sizes | max sessions | RSS after round 1 (MB) | RSS after last round (MB) | growth | peak (MB) "
          "| exports | cache reads | evictions | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['phase']} | {r['sizes']} | {r['max_sessions']} | {r['rss_first_round_mb']:.0f} | "
              f"{r['rss_last_round_mb']:.0f} | {r['growth'] * 100:+.1f} % | {r['peak_mb']:.0f} | {r['exports']} | "
              f"{r['cache_reads']} | {r['evictions']} | {r['seconds']:.0f} |")
    for r in results:
        print(f"{r['phase']}: RSS after each round (MB): {', '.join(f'{v:.0f}' for v in r['rss_per_round_mb'])}")
    lru, unbounded = results
    ok = lru["growth"] < args.max_growth and lru["peak_mb"] <= unbounded["peak_mb"]
    print(f"{'bounded' if ok else 'NOT bounded'}: lru growth {lru['growth'] * 100:+.1f} % after round 1 "
          f"(limit {args.max_growth * 100:.0f} %), peak {lru['peak_mb']:.0f} MB vs {unbounded['peak_mb']:.0f} MB "
          "keeping every session")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
