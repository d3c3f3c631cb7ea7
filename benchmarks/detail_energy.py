"""What a model's detail path adds: texture, or a second colour map? (not a test)

    .venv/bin/python benchmarks/detail_energy.py [--model models/default.safetensors] [--frames 8]

Translates held-apart procedural frames (world 2718, the evaluation's) and splits the detail path's output r
(B, 3, H, W; the residual added to the affine colour map before the tanh) into three bands:

    r = m + (box_k(r) - m) + (r - box_k(r)),      m = r's frame mean per channel, k = 2 work_scale + 1

(the frame-wide shift an affine bias could carry; what varies between work cells, like the affine map; what varies
within a cell: texture, grain, edges). Prints the RMS of r and of each band in 8-bit levels (pre-tanh), and the
mean change per channel of the final output (after tanh and camera) when the detail path is switched off. With
``detail_highpass`` (``detail_mean`` box or class_box) the frame-mean band is ~0 by construction and the
between-cells band is reduced, not removed (it is box_k(r) - box_k(box_k(r)): a box filter is not idempotent);
with ``detail_mean`` class only each label's frame mean is taken off, so the between-cells band stays. Exit 2 when
the model has no detail path.
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
BANDS = ("frame_mean", "between_cells", "within_cell")


def _run(translator: Translator, frames: SourceFrames, i: int) -> torch.Tensor:
    return translator.translate_normalized(frames.rgb[i : i + 1], frames.semantic[i : i + 1],
                                           frames.instance[i : i + 1])


def detail_energy(translator: Translator, frames: SourceFrames) -> dict[str, float | list[float]]:
    """The target decoder's detail output on ``frames``: {"rms", "frame_mean", "between_cells", "within_cell"
    (RMS in levels of r and of its three bands), "box" (k, px), "output_change" (mean change of the final output
    per channel, levels, when the path outputs zero)}. Raises ValueError without a detail path."""
    detail = translator.generator.decoders["target"].detail
    if detail is None:
        raise ValueError("the model has no detail path")
    box = 2 * translator.generator.cfg.work_scale + 1
    outputs: list[torch.Tensor] = []
    switched_off = [False]

    def record_or_zero(_module: torch.nn.Module, _inputs: object, out: tuple[torch.Tensor, torch.Tensor | None]
                       ) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        if switched_off[0]:  # the output, and the class means class_box_field hands the decoder, as if zero
            return torch.zeros_like(out[0]), None if out[1] is None else torch.zeros_like(out[1])
        outputs.append(out[0].detach())
        return None

    energy = dict.fromkeys(("rms", *BANDS), 0.0)
    change = torch.zeros(3)
    hook = detail.register_forward_hook(record_or_zero)
    try:
        with torch.no_grad():
            for i in range(len(frames)):
                switched_off[0] = False
                full = _run(translator, frames, i)
                r = outputs[-1]
                mean, smooth = r.mean((2, 3), keepdim=True), box_mean(r, box)
                for key, band in zip(("rms", *BANDS), (r, mean.expand_as(r), smooth - mean, r - smooth), strict=True):
                    energy[key] += float((band**2).mean()) / len(frames)
                switched_off[0] = True
                change += (full - _run(translator, frames, i)).mean((0, 2, 3)) / len(frames)
    finally:
        hook.remove()
    return {**{k: v**0.5 * LEVELS for k, v in energy.items()}, "box": box,
            "output_change": [float(v) * LEVELS for v in change]}


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
    print(f"{args.model}, {len(frames)} frames: detail output RMS {e['rms']:.2f} levels (pre-tanh); bands: frame mean "
          f"{e['frame_mean']:.2f}, between work cells {e['between_cells']:.2f}, within a cell (box {e['box']} px) "
          f"{e['within_cell']:.2f}; the path's mean effect on the output (R, G, B) "
          f"{', '.join(f'{v:+.1f}' for v in e['output_change'])} levels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
