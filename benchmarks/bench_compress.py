"""Compressed transport: bytes per frame and encode / decode time of ``translated/image/compressed`` (not a test).

    .venv/bin/python benchmarks/bench_compress.py [--sizes 640x360,1920x1080] [--repeats 20] [--threads 1]

For each size, two images that the node compresses in use:

* ``translated``: the shipped model's translation (``models/default.safetensors``, CPU fp32) of a procedural
  simulator frame at that size: exactly what ``translated/image/compressed`` carries;
* ``camera``: a real CARLA Town10HD camera frame (``../shared/data/carla``) resized to that size.

Each is encoded with :func:`sim2real.io.conversions.array_to_compressed` (what translate_node, record_node and
``sim2real-translate-bag --compress`` call: OpenCV, image_transport's format) as jpeg at quality 95 (the default)
and 80, and png at level 3 (the default) and 1. Printed per row: bytes per frame, the ratio to the raw rgb8
message measured in the same run (the baseline, ``width * height * 3`` bytes), the stream at 30 Hz in MB/s,
median encode and decode milliseconds over ``--repeats`` runs (after one warm-up), and the mean absolute pixel
error after decoding (0 for png).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CARLA = REPO.parent / "shared" / "data" / "carla"
CODECS = (("jpeg", 95), ("jpeg", 80), ("png", 3), ("png", 1))


def images(width: int, height: int) -> dict[str, np.ndarray]:
    """{"translated": (H, W, 3) uint8, "camera": (H, W, 3) uint8} at ``width`` x ``height``."""
    import cv2

    from sim2real.translator.inference import Translator
    from sim_bridge.procedural import ProceduralSimulator, SimConfig

    frame = ProceduralSimulator(SimConfig(width=width, height=height)).frame(12)
    translator = Translator.from_checkpoint(REPO / "models" / "default.safetensors", device="cpu",
                                            precision="fp32", backend="torch")
    translated = np.asarray(translator.translate(frame.rgb, frame.semantic, frame.instance))
    camera_file = sorted(CARLA.glob("*_img.png"))[0]
    camera = cv2.cvtColor(cv2.imread(str(camera_file), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    camera = cv2.resize(camera, (width, height), interpolation=cv2.INTER_AREA)
    return {"translated": translated, "camera": np.ascontiguousarray(camera)}


def measure(rgb: np.ndarray, codec: str, level: int, repeats: int) -> dict[str, float]:
    """Bytes, median encode / decode ms and mean absolute error of one codec setting on ``rgb``."""
    from sim2real.io.conversions import array_to_compressed, compressed_to_array

    def encode() -> object:
        return array_to_compressed(rgb, "rgb8", codec, level if codec == "jpeg" else 95, png_level=level)

    msg = encode()  # warm-up
    decoded = compressed_to_array(msg)
    enc, dec = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        msg = encode()
        enc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        decoded = compressed_to_array(msg)
        dec.append(time.perf_counter() - t0)
    return {"bytes": float(len(msg.data)), "encode_ms": 1000 * statistics.median(enc),
            "decode_ms": 1000 * statistics.median(dec),
            "mae": float(np.abs(decoded.astype(np.int16) - rgb.astype(np.int16)).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="640x360,1920x1080")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="OpenCV / torch threads (default 1)")
    args = parser.parse_args()
    import cv2
    import torch

    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"OpenCV {cv2.__version__}, {args.threads} thread(s), median of {args.repeats}")
    print("| size | image | codec | bytes/frame | vs raw | MB/s at 30 Hz | encode ms | decode ms | mean abs error |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        raw = width * height * 3
        for name, rgb in images(width, height).items():
            print(f"| {size} | {name} | raw rgb8 (baseline) | {raw:,} | 1.00 | {30 * raw / 1e6:.1f} | – | – | 0 |")
            for codec, level in CODECS:
                m = measure(rgb, codec, level, args.repeats)
                label = f"{codec} {'quality' if codec == 'jpeg' else 'level'} {level}"
                print(f"| {size} | {name} | {label} | {int(m['bytes']):,} | {m['bytes'] / raw:.3f} |"
                      f" {30 * m['bytes'] / 1e6:.1f} | {m['encode_ms']:.1f} | {m['decode_ms']:.1f} |"
                      f" {m['mae']:.2f} |")


if __name__ == "__main__":
    main()
