"""Node end-to-end throughput and latency vs the bare model, in the same run (not a test).

    . .venv/env.sh && .venv/bin/python benchmarks/bench_node.py [--backends auto,torch] [--duration 40]
        [--rate 30] [--width 640] [--height 360] [--model models/default.safetensors] [--threads N]
        [--source builtin|replay] [--device cpu|cuda] [--precision fp32|fp16|bf16|auto]

Per backend:

1. **bare model**: ``Translator.translate`` (uint8 numpy in and out, label checks: what the node calls) on
   one procedural 640x360 frame, ``--frames`` timed calls after warm-up, in this process: frames/s.
2. **node set**: ``sim2real-launch translate source:=builtin`` (sim_node -> translate_node, no recorder,
   no preview), or with ``--source replay`` ``source:=none`` and this process publishing
   ``--replay-frames`` procedural frames rendered beforehand, in a loop at ``--rate`` Hz (a simulator
   whose rendering costs nothing: the ratio then shows the node's own overhead), for ``--duration`` s
   with ``translate_node.backend`` set and ``translate_node.stats_file`` written at shutdown; this process
   subscribes to ``/translated/image`` (reliable, keep last 5) and records, per frame, the receive time
   and ``receive time - header stamp`` (frames are stamped with the wall clock when they are published:
   this is simulator publish -> translated frame received, through two DDS hops). Throughput = frames
   received / time between the first and last frame after a ``--settle`` s start-up. The stats JSON gives
   the node's own inference and end-to-end percentiles and drops by reason.

``--device`` / ``--precision`` set both the bare model's and the node's (``device:=``,
``translate_node.precision:=``; default cpu / fp32; the onnxruntime backend is CPU fp32 only).

Prints one Markdown row per backend: the node's frames/s as a ratio of the bare model's frames/s measured
just before, the subscriber's latency p50 / p95 and the node's counters. Like ``translate_node``, this
process sets ``OMP_WAIT_POLICY=PASSIVE`` (unless set) before torch is imported. With ``builtin`` the
simulator renders at ``--rate`` Hz on the same CPU, so the ratio includes its cost; either way the node
cannot deliver more than ``--rate`` frames/s, so the rate must exceed the bare model's frames/s for the
ratio to measure the node. The load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def bare_model_fps(args: argparse.Namespace, backend: str) -> tuple[float, str]:
    """Frames/s of ``Translator.translate`` on one procedural frame, and the concrete backend used."""
    import torch

    from sim2real.translator.inference import Translator
    from sim_bridge.procedural import ProceduralSimulator, SimConfig

    torch.set_num_threads(args.threads)
    frame = ProceduralSimulator(SimConfig(width=args.width, height=args.height)).frame(0)
    rgb, sem, inst = frame.rgb, frame.semantic, frame.instance
    tr = Translator.from_checkpoint(args.model, device=args.device, precision=args.precision, backend=backend,
                                    threads=args.threads)
    for _ in range(3):
        tr.translate(rgb, sem, inst)
    t0 = time.perf_counter()
    for _ in range(args.frames):
        tr.translate(rgb, sem, inst)  # numpy out: the device has finished each frame
    return args.frames / (time.perf_counter() - t0), tr.backend


class ReplayPublisher:
    """Publishes pre-built frames on ``/sim/camera/{image,semantic,instance,camera_info}`` at ``rate`` Hz,
    cycling through them, each frame's four messages with one header stamped with the wall clock at
    publish (as sim_node does), from a thread with a drift-free schedule."""

    def __init__(self, node: Any, frames: list[Any], rate: float) -> None:
        """Build the messages of ``frames`` (SimFrame) once; publishers with sensor-data QoS on ``node``."""
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import Header

        from sim2real.io.conversions import array_to_image
        from sim2real.nodes.sim_node import camera_info_message

        self.messages = []
        for frame in frames:
            header = Header(frame_id="sim_camera")
            self.messages.append((
                array_to_image(frame.rgb, "rgb8", header), array_to_image(frame.semantic, "mono8", header),
                array_to_image(frame.instance, "16UC1", header), camera_info_message(frame, header),
            ))
        types = (Image, Image, Image, CameraInfo)
        names = ("image", "semantic", "instance", "camera_info")
        self.pubs = [node.create_publisher(t, f"/sim/camera/{n}", qos_profile_sensor_data)
                     for t, n in zip(types, names, strict=True)]
        self.period = 1.0 / rate
        self.published = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from builtin_interfaces.msg import Time

        next_at = time.monotonic()
        while not self._stop.is_set():
            sec, nanosec = divmod(time.time_ns(), 1_000_000_000)
            msgs = self.messages[self.published % len(self.messages)]
            for pub, msg in zip(self.pubs, msgs, strict=True):
                msg.header.stamp = Time(sec=sec, nanosec=nanosec)
                pub.publish(msg)
            self.published += 1
            next_at += self.period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        """Start publishing."""
        self.thread.start()

    def stop(self) -> None:
        """Stop publishing and join the thread."""
        self._stop.set()
        self.thread.join(timeout=5.0)


class Receiver:
    """rclpy subscriber on ``/translated/image`` recording (receive time, latency from the header stamp)."""

    def __init__(self, domain_id: int) -> None:
        """Create a context on ``domain_id``, the node and its subscription, and spin it on a thread."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("bench_node_receiver", context=self.context)
        self.samples: list[tuple[float, float]] = []
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Image, "/translated/image", self._on_image, qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            self.executor.spin()

    def _on_image(self, msg: Any) -> None:
        now = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.samples.append((time.monotonic(), now - stamp))

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def run_node_set(args: argparse.Namespace, backend: str, stats_file: Path, domain_id: int) -> list[tuple[float, float]]:
    """Launch sim_node -> translate_node for ``args.duration`` s; return the receiver's samples."""
    node_threads = args.threads if args.node_threads is None else args.node_threads
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), OMP_NUM_THREADS=str(node_threads))
    if node_threads == 0:  # the node's own rule: cores - 1 unless OMP_NUM_THREADS is set
        del env["OMP_NUM_THREADS"]
    source = "builtin" if args.source == "builtin" else "none"
    cmd = [
        sys.executable, "-m", "sim2real.runtime.launcher", "translate", f"source:={source}", f"device:={args.device}",
        f"model:={args.model}", f"duration:={args.duration}", "record:=false",
        *([f"sim_node.width:={args.width}", f"sim_node.height:={args.height}", f"sim_node.rate_hz:={args.rate}"]
          if source == "builtin" else []),
        f"translate_node.backend:={backend}", f"translate_node.threads:={node_threads}",
        f"translate_node.stats_file:={stats_file}",
        "translate_node.preview_rate_hz:=0.0", f"translate_node.precision:={args.precision}",
        f"translate_node.warmup_width:={args.width}", f"translate_node.warmup_height:={args.height}",
    ]
    receiver = Receiver(domain_id)
    replay = None
    if args.source == "replay":
        from sim_bridge.procedural import ProceduralSimulator, SimConfig

        sim = ProceduralSimulator(SimConfig(width=args.width, height=args.height, rate_hz=args.rate))
        replay = ReplayPublisher(receiver.node, [sim.frame(i) for i in range(args.replay_frames)], args.rate)
        replay.start()
    log = stats_file.with_suffix(".log")
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
            try:
                proc.wait(timeout=args.duration + 120)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
        time.sleep(0.5)
    finally:
        if replay is not None:
            replay.stop()
        receiver.close()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"(launcher exited with {proc.returncode}; last lines of its log:)", *tail, sep="\n", file=sys.stderr)
    return receiver.samples


def summarise(samples: list[tuple[float, float]], settle: float) -> dict[str, float]:
    """Throughput after the first ``settle`` s of output, latency percentiles (ms) over the same frames."""
    if len(samples) < 3:
        return {"fps": float("nan"), "p50": float("nan"), "p95": float("nan"), "frames": len(samples)}
    start = samples[0][0] + settle
    kept = [s for s in samples if s[0] >= start] or samples
    span = kept[-1][0] - kept[0][0]
    lat = np.array([s[1] for s in kept]) * 1e3
    return {
        "fps": (len(kept) - 1) / span if span > 0 else float("nan"),
        "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)), "frames": len(kept),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="auto,torch")
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of output ignored at the start")
    parser.add_argument("--rate", type=float, default=30.0, help="simulator frame rate (Hz)")
    parser.add_argument("--source", choices=("builtin", "replay"), default="builtin",
                        help="builtin: sim_node renders every frame; replay: pre-rendered frames from this process")
    parser.add_argument("--replay-frames", type=int, default=30, help="distinct frames cycled by --source replay")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=20, help="timed bare-model frames")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads of the bare model (and of the node unless --node-threads)")
    parser.add_argument("--node-threads", type=int, default=None,
                        help="translate_node threads (default: --threads; 0 = the node's auto rule, cores - 1)")
    parser.add_argument("--model", default=str(REPO / "models" / "default.safetensors"))
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (bare model and node)")
    parser.add_argument("--precision", default="fp32", help="fp32, fp16, bf16 or auto (bare model and node)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as translate_node does; before torch loads OpenMP
    print(f"load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs; "
          f"{args.width}x{args.height}, {args.source} source at {args.rate:g} Hz, {args.duration:g} s per run, "
          f"threads {args.threads} (bare model), "
          f"{args.threads if args.node_threads is None else args.node_threads} (node; 0 = auto)")
    print()
    print("| backend | bare model frames/s | node frames/s | node / model | latency p50 / p95 ms (sim publish -> "
          "subscriber) | node inference p50 / p95 ms | node end-to-end p50 / p95 ms | frames in / out | drops | "
          "load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            model_fps, concrete = bare_model_fps(args, backend)
            stats_file = Path(tmp) / f"stats_{backend}.json"
            samples = run_node_set(args, backend, stats_file, random.randint(120, 200))
            res = summarise(samples, args.settle)
            stats: dict[str, Any] = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
            inf, e2e = stats.get("inference_ms", {}), stats.get("end_to_end_ms", {})
            drops = ", ".join(f"{k} {v}" for k, v in stats.get("drops", {}).items()) or "none"
            print(f"| {backend} ({concrete}) | {model_fps:.2f} | {res['fps']:.2f} | {res['fps'] / model_fps:.2f} | "
                  f"{res['p50']:.0f} / {res['p95']:.0f} | {inf.get('p50', float('nan')):.0f} / "
                  f"{inf.get('p95', float('nan')):.0f} | {e2e.get('p50', float('nan')):.0f} / "
                  f"{e2e.get('p95', float('nan')):.0f} | {stats.get('frames_in', '?')} / {stats.get('frames_out', '?')}"
                  f" | {drops} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
