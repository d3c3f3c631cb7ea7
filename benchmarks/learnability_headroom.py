"""How much PSNR the learnability check's bound leaves above the pooled class-wise transfer (not a test).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/learnability_headroom.py [--eval-frames 24] [--target-frames 200]

Scores, against the deterministic camera look of held-apart world 2 (as benchmarks/learnability.py does):
the look itself rendered *without* its optics (exact colour remap and tone curve, no blur / vignetting /
aberration), and the pooled class-wise transfer against both the full and the optics-free look. The first says
what the optics are worth; the last what a model that matched the pooled colours and learned the optics exactly
could reach.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from sim2real.evaluation.baselines import apply_baseline, fit_real_stats, fit_source_stats
from sim2real.evaluation.known_answer import psnr, render_look_set
from sim_bridge.procedural.look import CameraLook


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--eval-frames", type=int, default=24)
    p.add_argument("--target-frames", type=int, default=200)
    p.add_argument("--size", default="360x640")
    args = p.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    look = CameraLook()
    full = render_look_set(args.eval_frames, size, 2, look=look)
    bare = render_look_set(args.eval_frames, size, 2, look=dataclasses.replace(
        look, blur_sigma=0.0, vignette=0.0, chromatic_aberration=0.0))
    target = render_look_set(args.target_frames, size, 1, look=look)
    lut = torch.arange(256)
    stats = fit_real_stats(target.full, target.semantic, num_classes=256)
    pooled_stats = fit_source_stats(full.sim, full.semantic, class_lut=lut)
    pooled = torch.cat([apply_baseline("classwise_pooled", full.sim[i : i + 1], full.semantic[i : i + 1], stats,
                                       class_lut=lut, source_stats=pooled_stats) for i in range(len(full))])
    print(f"exact colours + tone, no optics, vs the look: {psnr(bare.deterministic, full.deterministic):.2f} dB")
    print(f"pooled class-wise vs the look:                {psnr(pooled, full.deterministic):.2f} dB")
    print(f"pooled class-wise vs the optics-free look:    {psnr(pooled, bare.deterministic):.2f} dB")


if __name__ == "__main__":
    main()
