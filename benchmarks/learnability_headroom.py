"""How much PSNR the learnability check's bound leaves above the pooled class-wise transfer (not a test).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/learnability_headroom.py [--eval-frames 24] [--target-frames 200]
        [--source-worlds "0;0,3,4,5;0,3,4,5,6,7,8,9"] [--source-frames 96]

Scores, against the deterministic camera look of held-apart world 2 (as benchmarks/learnability.py does):
the look itself rendered *without* its optics (exact colour remap and tone curve, no blur / vignetting /
aberration), and the pooled class-wise transfer against both the full and the optics-free look. The first says
what the optics are worth; the last what a model that matched the pooled colours and learned the optics exactly
could reach. Then, for each set of ``--source-worlds``, the same pooled map with its simulator statistics taken
from those training worlds instead of the scored frames (what the model's class-wise colour prior starts from),
against the look and through the look's exact optics (:func:`~sim_bridge.procedural.look.through_look_optics`):
how much the class statistics of one world's content cost.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from sim2real.evaluation.baselines import apply_baseline, fit_real_stats, fit_source_stats
from sim2real.evaluation.known_answer import psnr, render_look_set
from sim_bridge.procedural.look import CameraLook, through_look_optics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--eval-frames", type=int, default=24)
    p.add_argument("--target-frames", type=int, default=200)
    p.add_argument("--size", default="360x640")
    p.add_argument("--source-worlds", default="0;0,3,4,5;0,3,4,5,6,7,8,9",
                   help="';'-separated sets of ','-separated simulator worlds the source statistics come from")
    p.add_argument("--source-frames", type=int, default=96, help="source frames per set, split over its worlds")
    args = p.parse_args()
    world_sets = [[int(w) for w in worlds.split(",")] for worlds in args.source_worlds.split(";")]
    for seeds in world_sets:
        if {1, 2} & set(seeds) or args.source_frames < len(seeds):
            p.error(f"source worlds {seeds}: not the target's (1) or the scored world (2), at most one per frame")
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
    for seeds in world_sets:
        sources = [render_look_set(args.source_frames // len(seeds), size, w, look=look) for w in seeds]
        source_stats = fit_source_stats(torch.cat([s.sim for s in sources]), torch.cat([s.semantic for s in sources]),
                                        class_lut=lut)
        prior = torch.cat([apply_baseline("classwise_pooled", full.sim[i : i + 1], full.semantic[i : i + 1], stats,
                                          class_lut=lut, source_stats=source_stats) for i in range(len(full))])
        optics = torch.stack([torch.from_numpy(through_look_optics(((f.permute(1, 2, 0) + 1) / 2).numpy(), look))
                              for f in prior]).permute(0, 3, 1, 2) * 2 - 1
        print(f"pooled map, source statistics of worlds {seeds}: {psnr(prior, full.deterministic):.2f} dB, through "
              f"the look's optics {psnr(optics, full.deterministic):.2f} dB")


if __name__ == "__main__":
    main()
