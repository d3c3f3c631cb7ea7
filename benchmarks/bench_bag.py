"""Bag write and decode frames/s (mcap vs sqlite3) and training step time (not a test).

    .venv/bin/python benchmarks/bench_bag.py [--frames 60] [--width 640 --height 360] [--steps 5]
        [--crop 128x256] [--batch 1] [--threads 2] [--split-frames 20] [--no-train]

1. Writes ``--frames`` procedural frames (rgb8 + mono8 semantic + mono16 instance, 640x360) with
   :class:`sim2real.io.bag_writer.BagWriter` into an mcap and a sqlite3 recording (temporary directory), then
   reads them back three ways: raw CDR messages (``BagReader.raw_messages``), decoded rgb8 images
   (``messages`` + ``to_rgb8``), and matched source samples (``BagSourceDataset``: three topics decoded,
   matched by stamp, converted to tensors) — frames/s of wall clock.
2. Writes the same frames again with :class:`sim2real.io.split_bag.SplitBagWriter` (the recorder's durable
   writer: splits of ``--split-frames`` frames at 30 Hz, each read back, fsynced and listed in metadata.yaml)
   and with the plain ``BagWriter`` in the same run (the baseline): frames/s and the ratio.
3. Times ``Trainer.train_step`` (critics + generator + discriminator step) for the ``lite`` preset at a
   small crop, procedural source, real target frames (``../shared/data/real/seq0000``): 2 warm-up steps,
   then ``--steps`` timed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def write_bags(root: Path, frames: int, width: int, height: int) -> dict[str, Path]:
    """One recording per storage with the canonical /sim/camera/{image,semantic,instance} topics."""
    from sim2real.io.bag_writer import BagWriter
    from sim_bridge.procedural import ProceduralSimulator, SimConfig

    sim = ProceduralSimulator(SimConfig(width=width, height=height))
    rendered = [sim.frame(i) for i in range(frames)]
    paths = {}
    for storage in ("mcap", "sqlite3"):
        path = root / storage
        with BagWriter(path, storage=storage) as bag:
            for f in rendered:
                bag.write_image("/sim/camera/image", f.rgb, "rgb8", f.stamp_ns, "camera")
                bag.write_image("/sim/camera/semantic", f.semantic, "mono8", f.stamp_ns, "camera")
                bag.write_image("/sim/camera/instance", f.instance, "mono16", f.stamp_ns, "camera")
        paths[storage] = path
    return paths


def serialized_frames(frames: list) -> list[list[tuple[str, bytes, int]]]:
    """Per frame: (topic, CDR bytes of its sensor_msgs/Image, stamp) for image, semantic and instance."""
    from rosbags.typesys import Stores, get_typestore

    from sim2real.io.conversions import image_fields

    store = get_typestore(Stores.ROS2_KILTED)
    types = store.types
    out = []
    for f in frames:
        sec, nanosec = divmod(f.stamp_ns, 1_000_000_000)
        header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                              frame_id="camera")
        out.append([(f"/sim/camera/{topic}", bytes(store.serialize_cdr(types["sensor_msgs/msg/Image"](
            header=header, **image_fields(array, encoding, data_type="numpy")), "sensor_msgs/msg/Image")), f.stamp_ns)
            for topic, array, encoding in (("image", f.rgb, "rgb8"), ("semantic", f.semantic, "mono8"),
                                           ("instance", f.instance, "mono16"))])
    return out


def bench_write(root: Path, frames: list[list[tuple[str, bytes, int]]], storage: str,
                split_frames: int) -> tuple[float, float, int]:
    """(BagWriter frames/s, SplitBagWriter frames/s, splits): the same serialized frames, both writers."""
    from sim2real.io.bag_writer import BagWriter
    from sim2real.io.split_bag import SplitBagWriter

    clock = [0.0]  # the split writer's clock: 30 Hz frames, so a split holds split_frames frames

    def write(bag: BagWriter | SplitBagWriter) -> float:
        t0 = time.perf_counter()
        for messages in frames:
            for topic, raw, stamp in messages:
                bag.write_raw(topic, "sensor_msgs/msg/Image", raw, stamp)
            clock[0] += 1 / 30
        bag.close()
        return len(frames) / (time.perf_counter() - t0)

    plain = write(BagWriter(root / f"plain_{storage}", storage=storage).open())
    split = SplitBagWriter(root / f"split_{storage}", storage, split_seconds=(split_frames - 0.5) / 30,
                           clock=lambda: clock[0]).open()
    durable = write(split)
    return plain, durable, len(split.splits)


def bench_decode(path: Path, frames: int) -> dict[str, float]:
    """frames/s for raw reads, decoded rgb8 images and matched source samples."""
    from sim2real.data.datasets import BagSourceDataset
    from sim2real.io.bag_reader import BagReader
    from sim2real.io.conversions import to_rgb8

    out = {}
    t0 = time.perf_counter()
    with BagReader(path) as bag:
        n = sum(1 for _ in bag.raw_messages(["/sim/camera/image"]))
    out["raw"] = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    with BagReader(path) as bag:
        n = sum(to_rgb8(m.msg).shape[0] > 0 for m in bag.messages(["/sim/camera/image"]))
    out["rgb8"] = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = sum(1 for _ in BagSourceDataset([path]))
    out["triplets"] = n / (time.perf_counter() - t0)
    assert n == frames, f"{path}: {n} triplets, expected {frames}"
    return out


def bench_train(steps: int, crop: tuple[int, int], batch: int, out_dir: Path) -> float:
    """Mean seconds of ``Trainer.train_step`` (lite, procedural source, real target folder)."""
    from sim2real.training.cli import build_datasets
    from sim2real.training.config import load_train_config
    from sim2real.training.trainer import Trainer

    real = (REPO / ".." / "shared" / "data" / "real" / "seq0000").resolve()
    cfg = load_train_config(None, [
        f"out_dir={out_dir}", "generator_preset=lite", f"batch_size={batch}", f"crop=[{crop[0]},{crop[1]}]",
        f"resize_short={crop[0]}", "source.kind=procedural", "source.frames=16", "val_frames=1",
        f"target.paths=[{real}]", "device=cpu",
    ])
    source, target, val = build_datasets(cfg)
    trainer = Trainer(cfg, source, target, val, resume=False, log=lambda _msg: None)
    for _ in range(2):
        trainer.train_step(*trainer.next_batches())
    times = []
    for _ in range(steps):
        src, tgt = trainer.next_batches()
        t0 = time.perf_counter()
        trainer.train_step(src, tgt)
        times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--crop", default="128x256", help="HxW training crop")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--split-frames", type=int, default=20, help="frames per split of the durable writer")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step benchmark")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        from sim_bridge.procedural import ProceduralSimulator, SimConfig

        sim = ProceduralSimulator(SimConfig(width=args.width, height=args.height))
        frames = serialized_frames([sim.frame(i) for i in range(args.frames)])
        print(f"\nbag write, {args.frames} frames {args.width}x{args.height}; SplitBagWriter: splits of "
              f"{args.split_frames} frames (30 Hz), each read back + fsynced; baseline BagWriter in the same run\n")
        print("| storage | BagWriter frames/s | SplitBagWriter frames/s | ratio | splits |\n|---|---|---|---|---|")
        for storage in ("mcap", "sqlite3"):
            plain, durable, splits = bench_write(Path(tmp), frames, storage, args.split_frames)
            print(f"| {storage} | {plain:.0f} | {durable:.0f} | {durable / plain:.2f} | {splits} |", flush=True)
        paths = write_bags(Path(tmp), args.frames, args.width, args.height)
        print(f"\nbag decode, {args.frames} frames {args.width}x{args.height} (rgb8 + mono8 + mono16 per frame)\n")
        print("| storage | size on disk | raw image msgs/s | decoded rgb8 frames/s | source triplets/s |")
        print("|---|---|---|---|---|")
        for storage, path in paths.items():
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
            r = bench_decode(path, args.frames)
            print(f"| {storage} | {size:.0f} MiB | {r['raw']:.0f} | {r['rgb8']:.0f} | {r['triplets']:.1f} |",
                  flush=True)
        if args.no_train:
            return
        crop = tuple(int(v) for v in args.crop.split("x"))
        sec = bench_train(args.steps, (crop[0], crop[1]), args.batch, Path(tmp) / "run")
        print("\n| training step | preset | crop | batch | s / step | steps/s |\n|---|---|---|---|---|---|")
        print(f"| Trainer.train_step (critics + G + D) | lite | {crop[0]}x{crop[1]} | {args.batch} | {sec:.2f} | "
              f"{1 / sec:.2f} |")


if __name__ == "__main__":
    main()
