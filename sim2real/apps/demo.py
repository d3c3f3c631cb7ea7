"""``make demo``: the main job on the embedded default, end to end, with outputs you can look at.

Starts the built-in procedural simulator -> translate_node (the shipped default model, CPU here) ->
record_node through ``sim2real-launch translate`` for a fixed time, then writes ``out/``:

* ``translated_bag/``: the recorded rosbag2 (translated image + the unchanged labels and camera_info);
* ``previews/*.png``: side-by-side sim | translated | label overlay frames (from ``translated/preview``);
* ``translated.mp4``: translated | label overlay, every recorded frame (when OpenCV can write MP4);
* ``summary.json`` / ``summary.md``: frames in / out, drops by reason, throughput, latency percentiles, and
  the check that every translated frame's labels carry its stamp.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sim2real.core.labels import overlay
from sim2real.io.bag_reader import BagReader, decode_image

__all__ = ["main", "summarize_bag"]

OUT_NS = "/translated"
TOPICS = [f"{OUT_NS}/{n}" for n in ("image", "semantic", "instance", "camera_info", "preview")]
#: with types: record_node subscribes to them at start, before translate_node publishes its first frame
TYPED_TOPICS = [f"{t}:sensor_msgs/msg/{'CameraInfo' if t.endswith('camera_info') else 'Image'}" for t in TOPICS]


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def summarize_bag(bag: Path, out: Path, max_previews: int = 4, video_fps: float = 5.0) -> dict[str, Any]:
    """Read the recorded bag once: counts, stamp agreement, preview PNGs and the MP4."""
    counts: dict[str, int] = defaultdict(int)
    labels_by_stamp: dict[str, set[int]] = defaultdict(set)
    image_stamps: list[int] = []
    previews: list[np.ndarray] = []
    semantic_of: dict[int, np.ndarray] = {}
    video_path = out / "translated.mp4"
    writer = None
    pending: dict[int, np.ndarray] = {}
    with BagReader(bag) as reader:
        present = [t for t in TOPICS if t in reader.topics]
        for m in reader.messages(present):
            counts[m.topic] += 1
            stamp = _stamp(m.msg)
            name = m.topic.rsplit("/", 1)[1]
            if name == "preview":
                previews.append(decode_image("sensor_msgs/msg/Image", m.msg))
                continue
            if name == "image":
                image_stamps.append(stamp)
                pending[stamp] = np.asarray(decode_image("sensor_msgs/msg/Image", m.msg))
            elif name in ("semantic", "instance", "camera_info"):
                labels_by_stamp[name].add(stamp)
                if name == "semantic":
                    semantic_of[stamp] = np.asarray(decode_image("sensor_msgs/msg/Image", m.msg))
            for s in [s for s in pending if s in semantic_of]:
                rgb, sem = pending.pop(s), semantic_of.pop(s)
                frame = np.concatenate([rgb, overlay(rgb, sem, 0.45)], axis=1)
                if writer is None:
                    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), video_fps,
                                             (frame.shape[1], frame.shape[0]))
                    if not writer.isOpened():
                        writer = False
                if writer:
                    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if writer:
        writer.release()
    matched = sum(all(s in labels_by_stamp[k] for k in ("semantic", "instance", "camera_info")) for s in image_stamps)
    preview_dir = out / "previews"
    preview_dir.mkdir(parents=True, exist_ok=True)
    chosen = np.linspace(0, len(previews) - 1, min(max_previews, len(previews))).round().astype(int) if previews else []
    files = []
    for k, i in enumerate(chosen):
        path = preview_dir / f"preview_{k}.png"
        cv2.imwrite(str(path), cv2.cvtColor(previews[i], cv2.COLOR_RGB2BGR))
        files.append(str(path))
    return {
        "bag": str(bag), "messages": dict(counts), "translated_frames": len(image_stamps),
        "frames_with_matching_labels": matched, "previews": files,
        "video": str(video_path) if video_path.is_file() else None,
    }


def _markdown(summary: dict[str, Any]) -> str:
    stats = summary.get("translate_node", {})
    inf, e2e = stats.get("inference_ms", {}), stats.get("end_to_end_ms", {})
    rows = [
        "# sim2real demo run", "",
        f"- model: `{summary['model']}` on `{summary['device']}`",
        f"- simulator: built-in procedural, {summary['width']}x{summary['height']} at {summary['rate_hz']} Hz "
        f"for {summary['duration_s']} s",
        f"- translate_node: frames in {stats.get('frames_in')}, out {stats.get('frames_out')}, dropped "
        f"{stats.get('dropped_total')} {stats.get('drops', {})}",
        f"- throughput: {summary['translated_fps']:.2f} translated frames/s",
        f"- inference latency p50/p95: {inf.get('p50')} / {inf.get('p95')} ms; end-to-end p50/p95: "
        f"{e2e.get('p50')} / {e2e.get('p95')} ms",
        f"- bag `{summary['bag']['bag']}`: {summary['bag']['messages']}",
        f"- translated frames whose semantic, instance and camera_info carry the same stamp: "
        f"{summary['bag']['frames_with_matching_labels']} of {summary['bag']['translated_frames']}",
        "", *[f"![preview]({Path(p).relative_to(Path(summary['out']))})" for p in summary["bag"]["previews"]],
    ]
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; exit 0 when frames were translated and every one kept its labels' stamps."""
    parser = argparse.ArgumentParser(prog="sim2real-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out", help="output folder (its previous demo outputs are replaced)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds the pipeline runs")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--rate", type=float, default=10.0, help="simulator frame rate (Hz)")
    parser.add_argument("--model", default="", help="translator checkpoint (default: the shipped model)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda:N")
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in ("translated_bag", "previews", "translated.mp4", "summary.json", "summary.md",
                "translate_stats.json", "launch.log"):
        target = out / old
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    bag, stats_file = out / "translated_bag", out / "translate_stats.json"
    model_arg = [f"model:={Path(args.model).resolve()}"] if args.model else []
    cmd = [
        sys.executable, "-m", "sim2real.runtime.launcher", "translate", "source:=builtin", "record:=true",
        f"output:={bag}", f"device:={args.device}", f"duration:={args.duration}", *model_arg,
        f"sim_node.width:={args.width}", f"sim_node.height:={args.height}", f"sim_node.rate_hz:={float(args.rate)}",
        f"translate_node.stats_file:={stats_file}", f"translate_node.warmup_width:={args.width}",
        f"translate_node.warmup_height:={args.height}", "translate_node.preview_rate_hz:=1.0",
        f"record_node.topics:={json.dumps(TYPED_TOPICS)}",
    ]
    print(f"[demo] running for {args.duration:g} s: built-in simulator {args.width}x{args.height}@{args.rate:g} Hz "
          f"-> translate_node -> record_node ({out / 'launch.log'})", flush=True)
    start = time.monotonic()
    with open(out / "launch.log", "wb") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode  # noqa: S603 - our own argv
    wall = time.monotonic() - start
    if code != 0 or not bag.is_dir():
        print(f"[demo] the node set failed (exit {code}); see {out / 'launch.log'}:", file=sys.stderr)
        print((out / "launch.log").read_text()[-3000:], file=sys.stderr)
        return 1
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    bag_summary = summarize_bag(bag, out)
    summary = {
        "out": str(out), "model": args.model or "share/sim2real/models/default.safetensors (shipped)",
        "device": args.device, "width": args.width, "height": args.height, "rate_hz": args.rate,
        "duration_s": args.duration, "wall_s": round(wall, 1), "translate_node": stats, "bag": bag_summary,
        "translated_fps": bag_summary["translated_frames"] / args.duration,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(_markdown(summary))
    print((out / "summary.md").read_text())
    ok = bag_summary["translated_frames"] > 0 and (
        bag_summary["frames_with_matching_labels"] == bag_summary["translated_frames"])
    print(f"[demo] {'done' if ok else 'FAILED'} in {wall:.0f} s: {out}/ holds translated_bag/, previews/, "
          f"{'translated.mp4, ' if bag_summary['video'] else ''}summary.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
