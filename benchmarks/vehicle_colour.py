"""Whether each vehicle keeps its own colour through a translator: hue error and chroma ratio (not a test).

    .venv/bin/python benchmarks/vehicle_colour.py models/default.safetensors [OTHER.safetensors ...]
        [--frames 160] [--stride 15] [--min-pixels 300] [--classes car,truck,bus] [--style NAME]

``sim2real-eval``'s instance colour figures (sim2real/evaluation/instance_colour.py) read every thing instance
of its 48 frames, mostly people: those frames hold one coloured vehicle of 300 px or more. This script reads the
vehicles: ``--frames`` procedural frames of the evaluation world (``EVAL_SIM_SEED``, disjoint from training;
every time of day, ``--stride`` frames apart), each vehicle once, in the frame where it is largest (at least
``--min-pixels``), translated eagerly on the CPU in the model's mean style (the translate node's default) or
``--style``. Per model it prints the coloured vehicles' count (Lab chroma >= 12), mean hue error (degrees),
median chroma ratio (output / source) and the grey vehicles' mean tint (Lab units), and whether each vehicle
keeps its shading (:func:`shading_rows`): the median shading ratio and the mean Lab chroma of the dark parts
(undersides, tyres, windows), which a translator that paints a region flat lifts and tints. The first row is
the identity: 0 degrees, ratios 1 and the source's own dark chroma, the known answer. Exits 2 on a user error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

if TYPE_CHECKING:
    from sim2real.evaluation.frames import SourceFrames
    from sim2real.evaluation.instance_colour import InstanceColourTally
    from sim2real.translator.inference import Translator


def largest_views(semantic: np.ndarray, instance: np.ndarray, sequence: np.ndarray, classes: set[int],
                  min_pixels: int) -> dict[tuple[int, int], int]:
    """Where each vehicle is largest: (T, H, W) semantic and instance ids, (T,) sequence of each frame ->
    {(sequence, instance id): frame index} for the instances whose most frequent class is in ``classes``
    and whose largest view has at least ``min_pixels`` pixels."""
    best: dict[tuple[int, int], tuple[int, int]] = {}
    for t in range(len(instance)):
        ids, index, counts = np.unique(instance[t].ravel(), return_inverse=True, return_counts=True)
        for k in np.flatnonzero((ids > 0) & (counts >= min_pixels)):
            key = (int(sequence[t]), int(ids[k]))
            if counts[k] > best.get(key, (0, -1))[0]:
                majority = int(np.bincount(semantic[t].ravel()[index.ravel() == k]).argmax())
                if majority in classes:
                    best[key] = (int(counts[k]), t)
    return {key: t for key, (_, t) in best.items()}


#: vehicles whose source lightness spread (bright quartile minus dark quartile) is below this are not scored
MIN_SHADING: Final = 10.0


def shading_rows(source: np.ndarray, translated: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each vehicle's shading: source and translated (H, W, 3) uint8 RGB, (H, W) ids (0 = not scored) ->
    (N, 3) rows [shading ratio, dark chroma source, dark chroma translated], one per id whose source spread
    is at least ``MIN_SHADING``.

    With the CIE Lab lightness L of the id's pixels, *dark* = source L at most its 25th percentile and *bright*
    = at least its 75th: ratio = (mean L_t(bright) - mean L_t(dark)) / (mean L_s(bright) - mean L_s(dark))
    (1: the shading kept, 0: painted flat, < 0: inverted); dark chroma = |mean (a, b)| over the dark pixels.
    """
    import cv2

    labs = [cv2.cvtColor(x.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab) for x in (source, translated)]
    rows = []
    for obj in np.unique(ids[ids > 0]):
        lab_s, lab_t = (lab[ids == obj] for lab in labs)
        low, high = np.percentile(lab_s[:, 0], [25, 75])
        dark, bright = lab_s[:, 0] <= low, lab_s[:, 0] >= high
        spread = lab_s[bright, 0].mean() - lab_s[dark, 0].mean()
        if spread < MIN_SHADING:
            continue
        ratio = (lab_t[bright, 0].mean() - lab_t[dark, 0].mean()) / spread
        rows.append([ratio, *(np.hypot(*lab[dark, 1:].mean(0)) for lab in (lab_s, lab_t))])
    return np.array(rows, np.float64).reshape(-1, 3)


def vehicle_tally(source: SourceFrames, kept: dict[int, np.ndarray], translator: Translator | None
                  ) -> tuple[InstanceColourTally, np.ndarray]:
    """The instance colour tally and the :func:`shading_rows` of the vehicles in ``kept`` ({frame index: (H, W)
    ids of the vehicles scored there, 0 elsewhere}) of ``source``, translated by ``translator`` (None: the
    identity)."""
    import torch

    from sim2real.evaluation.instance_colour import InstanceColourTally, instance_colour_tally
    from sim2real.translator.frames import denormalize_rgb

    out, shading = InstanceColourTally(), []
    for t, ids in kept.items():
        rgb, sem, inst = source.rgb[t:t + 1], source.semantic[t:t + 1], source.instance[t:t + 1]
        with torch.no_grad():
            translated = rgb if translator is None else translator.translate_normalized(rgb, sem, inst)
        pair = denormalize_rgb(rgb)[0].numpy(), denormalize_rgb(translated)[0].numpy()
        out = out + instance_colour_tally(*pair, ids)
        shading.append(shading_rows(*pair, ids))
    return out, np.concatenate([np.zeros((0, 3)), *shading])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="translator checkpoints (.safetensors)")
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--stride", type=int, default=15)
    parser.add_argument("--min-pixels", type=int, default=300)
    parser.add_argument("--classes", default="car,truck,bus", help="Cityscapes class names, comma-separated")
    parser.add_argument("--style", default=None)
    args = parser.parse_args()

    from sim2real.core.labels import TRAIN_ID
    from sim2real.evaluation.instance_colour import MIN_PIXELS

    missing = [str(m) for m in args.models if not m.is_file()]
    if missing:
        parser.exit(2, f"error: no such file: {', '.join(missing)}\n")
    unknown = [c for c in args.classes.split(",") if c not in TRAIN_ID]
    if unknown:
        parser.exit(2, f"error: unknown class {', '.join(unknown)}; known: {', '.join(TRAIN_ID)}\n")
    if min(args.frames, args.stride) < 1 or args.min_pixels < MIN_PIXELS:
        parser.exit(2, f"error: --frames and --stride must be >= 1, --min-pixels >= {MIN_PIXELS}\n")

    from sim2real.core.errors import Sim2RealError
    from sim2real.evaluation.evaluate import EVAL_SIM_SEED
    from sim2real.evaluation.frames import load_source_frames
    from sim2real.translator.inference import Translator

    source = load_source_frames(f"procedural:{args.frames}", sim_seed=EVAL_SIM_SEED, stride=args.stride)
    semantic, instance = source.semantic.numpy(), source.instance.numpy()
    views = largest_views(semantic, instance, source.sequence.numpy(), {TRAIN_ID[c] for c in args.classes.split(",")},
                          args.min_pixels)
    # only each vehicle's largest view is scored
    kept = {t: np.zeros_like(instance[t]) for t in sorted(set(views.values()))}
    for (_, obj), t in views.items():
        kept[t][instance[t] == obj] = obj

    rows = [("identity", vehicle_tally(source, kept, None))]
    for model in args.models:
        try:
            translator = Translator.from_checkpoint(model, device="cpu", style=args.style)
        except Sim2RealError as exc:
            parser.exit(2, f"error: {model}: {exc}\n")
        rows.append((str(model), vehicle_tally(source, kept, translator)))
    print(f"{len(views)} vehicles ({args.classes}) of {len(source)} frames of world {EVAL_SIM_SEED}, "
          f"each at its largest view (>= {args.min_pixels} px)\n")
    print("| model | coloured vehicles | hue error (degrees) ↓ | chroma ratio | grey tint (Lab) | shaded vehicles "
          "| shading ratio | dark-part chroma (Lab) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (t, shade) in rows:
        print(f"| {name} | {t.coloured_count()} | {t.hue_error():.1f} | {t.chroma_ratio():.2f} | {t.grey_tint():.2f} "
              f"| {len(shade)} | {np.median(shade[:, 0]):.2f} | {shade[:, 2].mean():.2f} |")


if __name__ == "__main__":
    main()
