"""``sim2real-sim``: command line of the built-in simulator.

    sim2real-sim record --frames 300 --out bags/sim_run1 [--storage mcap|sqlite3] [--width 640 --height 360]
                        [--seed 0] [--rate 30] [--namespace /sim/camera] [--frame-id sim_camera]
                        [--time-of-day 12] [--traffic-density 0.5] [--pedestrian-density 0.5] [--start 0]

``record`` writes a rosbag2 with ``<ns>/image`` (rgb8), ``<ns>/semantic`` (mono8, Cityscapes train ids),
``<ns>/instance`` (16UC1) and ``<ns>/camera_info``; all four messages of a frame share one header
(stamp = frame index / rate, frame_id) and the bag time equals that stamp.

Exit status: 0 done; 2 user error (an invalid argument, an existing or uncreatable ``--out``); 1 the bag could
not be written (disk full, file too large, I/O error: the partial bag, which did not exist before, is removed).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from collections.abc import Sequence

from sim2real.core.errors import BagError, BagWriteError, ConfigError
from sim2real.io.bag_reader import WORLD_SEED_KEY
from sim2real.io.bag_writer import STORAGES, BagWriter
from sim_bridge.procedural import ProceduralSimulator, SimConfig

__all__ = ["build_parser", "main", "record", "topic_names"]

_NAMESPACE = re.compile(r"^(/[A-Za-z_][A-Za-z0-9_]*)+$")


def topic_names(namespace: str) -> dict[str, str]:
    """The four topics under ``namespace`` (e.g. ``/sim/camera``): image, semantic, instance, camera_info."""
    ns = namespace.rstrip("/")
    if not ns.startswith("/"):
        ns = "/" + ns
    if not _NAMESPACE.match(ns):
        raise ConfigError(f"namespace {namespace!r} is not a valid ROS namespace (e.g. /sim/camera)")
    return {name: f"{ns}/{name}" for name in ("image", "semantic", "instance", "camera_info")}


def record(config: SimConfig, out: str, frames: int, *, storage: str = "mcap", namespace: str = "/sim/camera",
           frame_id: str = "sim_camera", start: int = 0) -> int:
    """Render frames ``start .. start + frames - 1`` into a new bag at ``out``; returns messages written."""
    if frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {frames}")
    if start < 0:
        raise ConfigError(f"--start must be >= 0, got {start}")
    topics = topic_names(namespace)
    sim = ProceduralSimulator(config)
    bag = BagWriter(out, storage=storage).open()
    try:
        bag.set_custom_data(WORLD_SEED_KEY, str(config.seed))  # evaluation checks it against a model's training world
        for index in range(start, start + frames):
            f = sim.frame(index)
            bag.write_image(topics["image"], f.rgb, "rgb8", f.stamp_ns, frame_id)
            bag.write_image(topics["semantic"], f.semantic, "mono8", f.stamp_ns, frame_id)
            bag.write_image(topics["instance"], f.instance, "16UC1", f.stamp_ns, frame_id)
            bag.write_camera_info(topics["camera_info"], f.K, f.stamp_ns, frame_id, width=config.width,
                                  height=config.height)
        bag.close()
    except BaseException as exc:
        bag.abort()
        shutil.rmtree(out, ignore_errors=True)  # created by this call: a partial bag helps nobody
        if isinstance(exc, BagWriteError):
            raise BagWriteError(f"{exc} (the partial bag was removed)") from exc
        raise
    return bag.count


def build_parser() -> argparse.ArgumentParser:
    """The ``sim2real-sim`` parser (one subparser per subcommand)."""
    defaults = SimConfig()
    parser = argparse.ArgumentParser(prog="sim2real-sim", description="The sim2real built-in procedural simulator.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rec = sub.add_parser("record", help="render frames into a rosbag2 (image, semantic, instance, camera_info)",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rec.add_argument("--frames", type=int, required=True, help="number of frames to render")
    rec.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    rec.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="rosbag2 storage (default mcap)")
    rec.add_argument("--width", type=int, default=defaults.width)
    rec.add_argument("--height", type=int, default=defaults.height)
    rec.add_argument("--seed", type=int, default=defaults.seed)
    rec.add_argument("--rate", type=float, default=defaults.rate_hz, help="frame rate in Hz (sets the stamps)")
    rec.add_argument("--time-of-day", type=float, default=defaults.time_of_day, help="hours, [0, 24)")
    rec.add_argument("--traffic-density", type=float, default=defaults.traffic_density, help="[0, 1]")
    rec.add_argument("--pedestrian-density", type=float, default=defaults.pedestrian_density, help="[0, 1]")
    rec.add_argument("--ego-speed", type=float, default=defaults.ego_speed, help="m/s")
    rec.add_argument("--namespace", default="/sim/camera", help="topic namespace (default /sim/camera)")
    rec.add_argument("--frame-id", default="sim_camera", help="header frame_id (default sim_camera)")
    rec.add_argument("--start", type=int, default=0, help="index of the first frame (default 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sim2real-sim`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        config = SimConfig(width=args.width, height=args.height, seed=args.seed, rate_hz=args.rate,
                           time_of_day=args.time_of_day, traffic_density=args.traffic_density,
                           pedestrian_density=args.pedestrian_density, ego_speed=args.ego_speed)
        t0 = time.perf_counter()
        count = record(config, args.out, args.frames, storage=args.storage, namespace=args.namespace,
                       frame_id=args.frame_id, start=args.start)
    except ConfigError as exc:
        print(f"sim2real-sim record: invalid argument: {exc}", file=sys.stderr)
        return 2
    except BagWriteError as exc:
        print(f"sim2real-sim record: {exc}", file=sys.stderr)
        return 1
    except BagError as exc:  # an existing or uncreatable --out
        print(f"sim2real-sim record: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    print(f"wrote {args.frames} frames ({count} messages, {args.storage}) to {args.out} in {seconds:.2f} s "
          f"({args.frames / seconds:.1f} frames/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
