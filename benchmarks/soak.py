"""Soak test of the translate node set (not a unit test): sim -> translate -> record for minutes.

    . .venv/env.sh
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soak.py [--minutes 10] [--width 640] [--height 360]
        [--rate 30] [--out DIR] [--model M.safetensors] [--json FILE]

Runs ``sim2real-launch translate source:=builtin record:=true`` (built-in simulator publishing image, semantic,
instance and camera_info at ``--rate`` Hz) for ``--minutes`` and measures:

* crashes: the launcher's exit status (0 only when every node exited cleanly) and tracebacks in its log;
* the resident set size (VmRSS of ``/proc/<pid>/status``) of translate_node, sampled every ``--sample-s``
  seconds; growth = (mean of the last 5 samples - mean of the first 5 after warm-up) / the latter, warm-up =
  max(30 s, 20 % of the run);
* stamps: every ``/translated/image`` in the recorded bag has a ``/translated/semantic`` and a
  ``/translated/instance`` with exactly its header stamp;
* accounting: translate_node's ``stats_file`` says ``frames_in == frames_out + sum(drops)``.

Prints the figures and exits 0 when crashes == 0, RSS growth < ``--max-rss-growth`` (5 %), every translation
kept its labels' stamps and the accounting balances; 1 otherwise. ``--json`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT_NS = "/translated"
RECORDED = [f"{OUT_NS}/{n}" for n in ("image", "semantic", "instance", "camera_info")]


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB (None when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def find_child(parent: int, needle: str) -> int | None:
    """The pid of a direct child of ``parent`` whose command line contains ``needle``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
            continue
        if needle in cmdline:
            return int(entry.name)
    return None


def rss_growth(samples: list[tuple[float, int]], warmup_s: float) -> tuple[float | None, float | None, float | None]:
    """``(growth fraction, baseline KiB, final KiB)`` of ``(t, rss)`` samples after ``warmup_s`` seconds."""
    after = [rss for t, rss in samples if t >= warmup_s]
    if len(after) < 2:
        return None, None, None
    k = max(1, min(5, len(after) // 4))
    base = sum(after[:k]) / k
    final = sum(after[-k:]) / k
    return (final - base) / base, base, final


def check_bag(bag: Path) -> dict[str, Any]:
    """Counts per topic and the translated images whose labels do not carry the image's stamp."""
    from sim2real.io.bag_reader import BagReader

    stamps: dict[str, list[int]] = {t: [] for t in RECORDED}
    with BagReader(bag) as reader:
        present = [t for t in RECORDED if t in reader.topics]
        for m in reader.messages(present):
            stamps[m.topic].append(m.stamp_ns)
    images = stamps[f"{OUT_NS}/image"]
    sem, inst = set(stamps[f"{OUT_NS}/semantic"]), set(stamps[f"{OUT_NS}/instance"])
    missing = [s for s in images if s not in sem or s not in inst]
    return {
        "counts": {t: len(v) for t, v in stamps.items()},
        "images_without_matching_labels": len(missing),
        "first_missing": missing[:5],
        "images_in_stamp_order": images == sorted(images),
        "duplicate_image_stamps": len(images) - len(set(images)),
    }


def run_soak(minutes: float, width: int, height: int, rate: float, out: Path, *, model: str = "",
             sample_s: float = 2.0, max_rss_growth: float = 0.05, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the node set for ``minutes``; return the figures (see the module docstring) with ``passed``."""
    out.mkdir(parents=True, exist_ok=True)
    bag, stats_file, log_path = out / "bag", out / "translate_stats.json", out / "launch.log"
    if bag.exists():
        raise SystemExit(f"{bag} exists: give a fresh --out")
    duration = minutes * 60.0
    cmd = [
        sys.executable, "-m", "sim2real.runtime.launcher", "translate", "source:=builtin", "record:=true",
        f"output:={bag}", "device:=cpu", f"duration:={duration:g}",
        *([f"model:={Path(model).resolve()}"] if model else []),
        f"sim_node.width:={width}", f"sim_node.height:={height}", f"sim_node.rate_hz:={float(rate)}",
        f"translate_node.stats_file:={stats_file}", f"translate_node.warmup_width:={width}",
        f"translate_node.warmup_height:={height}", "translate_node.preview_rate_hz:=0.0",
    ]
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        pid: int | None = None
        t_node = 0.0
        while proc.poll() is None:
            if pid is None:
                pid = find_child(proc.pid, "sim2real.nodes.translate_node")
                t_node = time.monotonic()
            else:
                rss = rss_kib(pid)
                if rss is not None:
                    samples.append((time.monotonic() - t_node, rss))
            time.sleep(sample_s if pid is not None else 0.2)
        rc = proc.wait()
    wall = time.monotonic() - start
    log_text = log_path.read_text(errors="replace")
    warmup = max(30.0, 0.2 * duration)
    growth, base, final = rss_growth(samples, warmup)
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    bag_figures = check_bag(bag) if (bag / "metadata.yaml").is_file() else {"error": "no bag written"}
    accounted = bool(stats) and stats["frames_in"] == stats["frames_out"] + sum(stats["drops"].values())
    crashes = int(rc != 0) + log_text.count("Traceback")
    figures: dict[str, Any] = {
        "duration_s": duration, "wall_s": round(wall, 1), "size": f"{width}x{height}", "rate_hz": rate,
        "launcher_exit": rc, "crashes": crashes,
        "rss_samples": len(samples), "rss_warmup_s": warmup,
        "rss_kib_after_warmup": None if base is None else round(base),
        "rss_kib_final": None if final is None else round(final),
        "rss_kib_max": max((r for _, r in samples), default=None),
        "rss_growth_pct": None if growth is None else round(100.0 * growth, 2),
        "frames_in": stats.get("frames_in"), "frames_out": stats.get("frames_out"),
        "drops": stats.get("drops"), "other_drops": stats.get("other_drops"),
        "bad_messages": stats.get("bad_messages"), "accounted": accounted,
        "inference_ms": stats.get("inference_ms"), "end_to_end_ms": stats.get("end_to_end_ms"),
        "bag": bag_figures,
    }
    figures["passed"] = bool(
        crashes == 0 and growth is not None and growth < max_rss_growth and accounted
        and bag_figures.get("images_without_matching_labels") == 0
        and bag_figures.get("counts", {}).get(f"{OUT_NS}/image", 0) > 0
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a new temporary one)")
    parser.add_argument("--model", default="", help="translator checkpoint (default: the shipped model)")
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--max-rss-growth", type=float, default=0.05)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = args.out or Path(tempfile.mkdtemp(prefix="sim2real-soak-"))
    figures = run_soak(args.minutes, args.width, args.height, args.rate, out, model=args.model,
                       sample_s=args.sample_s, max_rss_growth=args.max_rss_growth)
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    print(f"soak {'PASSED' if figures['passed'] else 'FAILED'}: {out}", file=sys.stderr)
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
