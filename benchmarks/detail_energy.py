"""What a model's detail path adds: texture, or a second colour map? (not a test)

    .venv/bin/python benchmarks/detail_energy.py [--model models/default.safetensors] [--frames 8]

Translates held-apart procedural frames (world 2718, the evaluation's) and splits the detail path's output r
(B, 3, H, W), the residual added to the affine colour map before the tanh, into its local mean over a box of
2 ``work_scale`` + 1 pixels (the work cell and its neighbours: what the affine head could have made itself) and
the rest. Prints r's RMS in 8-bit levels, the low-frequency share of its energy and its mean per channel. A
detail path that makes texture has a small low-frequency share; one near 1 is a blurred colour shift. With
``detail_highpass`` the share is ~0 by construction. Exit 2 when the model has no detail path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sim2real.evaluation.evaluate import EVAL_SIM_SEED
from sim2real.evaluation.frames import SourceFrames, load_source_frames
from sim2real.translator.inference import Translator
from sim2real.translator.layers import box_mean

LEVELS = 127.5  # one unit of [-1, 1] in 8-bit levels


def detail_energy(translator: Translator, frames: SourceFrames) -> dict[str, float | list[float]]:
    """The target decoder's detail output on ``frames``: {"rms" (levels), "low_share" (energy share of its box
    mean; 0 when the output is all zero), "mean" (per channel, levels), "box" (px)}. Raises ValueError without
    a detail path."""
    detail = translator.generator.decoders["target"].detail
    if detail is None:
        raise ValueError("the model has no detail path")
    outputs: list[torch.Tensor] = []
    hook = detail.register_forward_hook(lambda _module, _inputs, out: outputs.append(out.detach()))
    box = 2 * translator.generator.cfg.work_scale + 1
    low = high = 0.0
    means = torch.zeros(3)
    try:
        with torch.no_grad():
            for i in range(len(frames)):
                translator.translate_normalized(frames.rgb[i : i + 1], frames.semantic[i : i + 1],
                                                frames.instance[i : i + 1])
                r = outputs[-1]
                smooth = box_mean(r, box)
                low += float((smooth**2).mean())
                high += float(((r - smooth) ** 2).mean())
                means += r.mean((0, 2, 3)) / len(frames)
    finally:
        hook.remove()
    return {"rms": ((low + high) / len(frames)) ** 0.5 * LEVELS, "low_share": low / (low + high) if low + high else 0.0,
            "mean": [float(v) * LEVELS for v in means], "box": box}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default.safetensors")
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args(argv)
    translator = Translator.from_checkpoint(Path(args.model), device="cpu", precision="fp32")
    frames = load_source_frames(f"procedural:{args.frames}", args.frames, (360, 640), sim_seed=EVAL_SIM_SEED)
    try:
        e = detail_energy(translator, frames)
    except ValueError as exc:
        print(f"detail_energy: {args.model}: {exc}", file=sys.stderr)
        return 2
    print(f"{args.model}: detail output RMS {e['rms']:.2f} levels over {len(frames)} frames; low-frequency share "
          f"(box {e['box']} px) {e['low_share']:.3f}; mean per channel (R, G, B) "
          f"{', '.join(f'{v:+.1f}' for v in e['mean'])} levels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
