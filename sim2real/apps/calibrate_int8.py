"""``sim2real-calibrate-int8``: measure a checkpoint's int8 activation ranges and store them in it.

    sim2real-calibrate-int8 models/default.safetensors [--out OUT.safetensors] [--source procedural]
        [--frames 16] [--check-frames 4] [--height 360] [--width 640] [--seed 7]

Translates ``--frames`` labelled source frames (the sources of ``sim2real-eval``: ``procedural``,
``carla:DIR``, ``cityscapes:DIR``, a bag) with the checkpoint's generator, records the ranges of the int8
convolutions' inputs and outputs (:mod:`sim2real.translator.int8`) and writes the checkpoint again, weights
unchanged, with the ranges in its document's ``extra["int8_calibration"]`` (in place unless ``--out``; the
``.json`` beside it too). The onnxruntime backend then runs those convolutions in int8.

Before writing, the int8 graph is checked against the fp32 graph on ``--check-frames`` further frames of the
source (not used for the ranges): the difference in 8-bit levels is printed, and nothing is written (exit 1)
when its mean is over ``--max-mean-levels`` or its maximum over ``--max-levels``. Exit 2 on user error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim2real.core.errors import CheckpointError, ConfigError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sim2real-calibrate-int8", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="generator checkpoint (.safetensors)")
    p.add_argument("--out", type=Path, default=None, help="write here instead of in place")
    p.add_argument("--source", default="procedural", help="labelled frames (sim2real-eval's --source specs)")
    p.add_argument("--frames", type=int, default=16, help="calibration frames")
    p.add_argument("--check-frames", type=int, default=4, help="further frames the int8 graph is checked on")
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--seed", type=int, default=7, help="procedural world seed (other than the evaluation's)")
    p.add_argument("--max-mean-levels", type=float, default=1.0, help="largest mean difference allowed (of 255)")
    p.add_argument("--max-levels", type=float, default=8.0, help="largest difference allowed (of 255)")
    return p


def _differences(fp32: bytes, int8: bytes, frames: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    """|int8 graph - fp32 graph| in 8-bit levels over ``frames`` (rgb, semantic, instance numpy batches of 1)."""
    from sim2real.translator.onnx_export import OnnxTranslator

    reference, quantized = OnnxTranslator(fp32), OnnxTranslator(int8)
    return np.stack([np.abs(quantized.translate_normalized(*f) - reference.translate_normalized(*f)) * 127.5
                     for f in frames])


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``sim2real-calibrate-int8``); returns the exit status (module docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if min(args.frames, args.check_frames, args.height, args.width) < 1:
        parser.exit(2, "error: --frames, --check-frames, --height and --width must be >= 1\n")
    if not args.checkpoint.is_file():
        parser.exit(2, f"error: no such checkpoint: {args.checkpoint}\n")
    if args.out is not None and args.out.suffix != ".safetensors":
        parser.exit(2, f"error: --out must end in .safetensors, got {args.out}\n")

    from sim2real.evaluation.frames import load_source_frames
    from sim2real.translator.checkpoint import build_generator, load_checkpoint, save_checkpoint, tensor_digest
    from sim2real.translator.int8 import DOCUMENT_KEY, calibrate_int8, quantize_int8
    from sim2real.translator.onnx_export import export_onnx_bytes

    try:
        loaded = load_checkpoint(args.checkpoint, map_location="cpu")
        total = args.frames + args.check_frames
        source = load_source_frames(args.source, frames=total, size=(args.height, args.width), sim_seed=args.seed)
    except (CheckpointError, ConfigError, OSError) as e:
        parser.exit(2, f"error: {e}\n")
    if len(source.rgb) < total:
        parser.exit(2, f"error: {args.source} has {len(source.rgb)} frames, fewer than --frames + --check-frames "
                       f"= {total}\n")
    generator = build_generator(loaded).eval()
    frames = [(source.rgb[i : i + 1], source.semantic[i : i + 1], source.instance[i : i + 1]) for i in range(total)]
    described = f"{args.source} ({args.frames} frames, {args.width}x{args.height}" + (
        f", seed {args.seed})" if args.source.startswith("procedural") else ")")
    try:
        calibration = calibrate_int8(generator, frames[: args.frames], source=described,
                                     tensor_sha256=tensor_digest(loaded.state_dict))  # the file's, as saved
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    fp32 = export_onnx_bytes(generator, args.height, args.width, metadata=loaded.metadata)
    diff = _differences(fp32, quantize_int8(fp32, calibration),
                        [tuple(t.numpy() for t in f) for f in frames[args.frames :]])
    print(f"int8 encoders ({len(calibration.ranges)} convolutions) vs fp32 on {args.check_frames} other frames: "
          f"mean {diff.mean():.3f}, 99.99th percentile {np.percentile(diff, 99.99):.2f}, max {diff.max():.2f} "
          "levels of 255")
    if diff.mean() > args.max_mean_levels or diff.max() > args.max_levels:
        print(f"error: over --max-mean-levels {args.max_mean_levels} / --max-levels {args.max_levels}: "
              "nothing written", file=sys.stderr)
        return 1
    doc = loaded.metadata
    out = args.out or args.checkpoint
    save_checkpoint(out, loaded.state_dict, loaded.config, training_data=doc.get("training_data"),
                    extra={**(doc.get("extra") or {}), DOCUMENT_KEY: calibration.to_dict()},
                    ema=doc.get("weights") == "ema")
    print(f"wrote {out} (calibration: {described})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
