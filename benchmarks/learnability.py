"""Learnability check with a known answer: train sim -> camera look UNPAIRED, score against the known look.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/learnability.py [--config config/learnability.yaml]
        [--steps 2000] [--out runs/learnability] [--eval-frames 24] [overrides key=value ...]

1. Renders the target domain: ``--target-frames`` frames of procedural world 1 in the camera look
   (:mod:`sim_bridge.procedural.look`: per-class colour and texture, chromatic aberration, blur, vignetting,
   sensor noise, tone curve), written as an image folder; their label maps go to a folder beside it, which only
   what is fitted at the start of the run reads: the generator's class-wise colour prior
   (``generator.use_colour_prior``, as the class-wise baselines are fitted) and the target camera's blur and
   vignetting (``camera_calibration``, :mod:`sim2real.training.camera_calibration`). The source domain is worlds
   ``source.sim_seed`` and ``source.extra_sim_seeds`` (0 and 3-9 in the config; worlds 1 and 2 are refused). No
   source frame's look is ever shown: the pairs never meet.
2. Trains with ``sim2real-train`` (the config plus overrides) and exports the EMA generator.
3. Renders ``--eval-frames`` frames of a held-apart world 2 with their look, and scores against the look's
   deterministic part (:mod:`sim2real.evaluation.known_answer`): identity, the colour baselines (fitted on the
   target look frames; class-wise transfer in the simulator's 19 classes, with the target frames' labels) and
   the model. Prints the table and the verdict against the acceptance bound (model >= class-wise + 3 dB PSNR)
   and writes ``<out>/learnability.json``.

``--score-only MODEL`` skips steps 1-2 and scores an existing model; ``--look-optics`` adds a row for the model
with its own aberration, blur and vignetting off and the look's applied in linear light (how far its colours would
get with a perfect camera). Not a test: ``test/test_learnability.py``
runs a short version in CI with a looser bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from sim2real.evaluation.baselines import BASELINES, apply_baseline, fit_source_stats, fit_stats_of_frames
from sim2real.evaluation.known_answer import render_look_set, score_known_answer, write_look_folder
from sim_bridge.procedural.look import CameraLook, through_look_optics

ROOT = Path(__file__).resolve().parents[1]
TARGET_WORLD, EVAL_WORLD = 1, 2
REQUIRED_GAIN_DB = 3.0
LOOK = CameraLook()
LOOK_OPTICS_ROW = "model with the look's optics"
RENDER_CHUNK = 50  # target look frames rendered at a time


def translate_all(model: Path, looks, noise: bool, look_optics: bool = False) -> torch.Tensor:
    """The model's outputs for every frame of a look set ((N, 3, H, W) in [-1, 1]): ``noise`` samples its random
    part (detail path and camera noise, seeded per frame), else the mean output. ``look_optics`` switches the learned
    camera's aberration, blur and vignetting off (its tone curve stays) and puts the output through the look's own
    optics in linear light (:func:`~sim_bridge.procedural.look.through_look_optics`): the model's colours under the
    look's exact camera. Raises TypeError for a model without a random part when ``noise`` is asked, or without a
    camera when ``look_optics`` is."""
    from sim2real.translator.checkpoint import build_generator, load_checkpoint
    from sim2real.translator.generator import domain_index

    gen = build_generator(load_checkpoint(model, map_location="cpu")).eval()
    if noise and gen.cfg.detail_channels == 0 and not gen.cfg.use_camera:
        raise TypeError("this model synthesises no random part")
    if look_optics:
        if gen.camera is None:
            raise TypeError("this model has no camera model to give the look's optics")
        gen.camera.set_optics(domain_index("target"), chromatic_aberration=0.0, blur_sigma=1e-3, vignette=(0.0, 0.0))
    outs = []
    with torch.no_grad():
        for i in range(len(looks)):
            x = looks.sim[i : i + 1]
            n = torch.randn(1, 4, *x.shape[-2:], generator=torch.Generator().manual_seed(i)) if noise else None
            out = gen.translate(x, looks.semantic[i : i + 1], looks.instance[i : i + 1], noise=n)
            if look_optics:
                display = ((out[0].permute(1, 2, 0).float() + 1) / 2).numpy()
                out = torch.from_numpy(through_look_optics(display, LOOK)).permute(2, 0, 1)[None] * 2 - 1
            outs.append(out)
    return torch.cat(outs)


def target_stats(count: int, size: tuple[int, int], folder: Path | None = None, labels: Path | None = None):
    """The class-wise colour statistics (train-id space) of ``count`` target look frames of world TARGET_WORLD,
    writing the frames and labels to ``folder`` / ``labels`` when given. Rendered RENDER_CHUNK frames at a time
    and streamed into the statistics: a whole rendered set held ~12 GB at 400 frames of 360x640, which ran two
    benchmarks side by side out of memory."""

    def frames():
        for start in range(0, count, RENDER_CHUNK):
            chunk = render_look_set(min(RENDER_CHUNK, count - start), size, TARGET_WORLD, start=start)
            if folder is not None:
                write_look_folder(chunk, folder, labels, first=start)
            yield from zip(chunk.full, chunk.semantic, strict=True)

    return fit_stats_of_frames(frames(), num_classes=256)


def score(model: Path | None, stats, size: tuple[int, int], eval_frames: int, look_optics: bool = False) -> dict:
    """Baselines and (optionally) the model on held-apart frames of world EVAL_WORLD, the class-wise baselines
    fitted to ``stats`` (:func:`target_stats`); ``look_optics`` adds a row for the model's colours through the
    look's exact optics (a diagnostic: what they score with a perfect camera)."""
    looks = render_look_set(eval_frames, size, EVAL_WORLD)
    lut = torch.arange(256)
    pooled = fit_source_stats(looks.sim, looks.semantic, class_lut=lut)
    means = {name: torch.cat([apply_baseline(name, looks.sim[i : i + 1], looks.semantic[i : i + 1], stats,
                                             class_lut=lut, source_stats=pooled) for i in range(len(looks))])
             for name in BASELINES}
    sampled = {}
    if model is not None:
        means["model"] = translate_all(model, looks, noise=False)
        with contextlib.suppress(TypeError):  # a model without a random part has no noise to sample
            sampled["model"] = translate_all(model, looks, noise=True)
        if look_optics:
            means[LOOK_OPTICS_ROW] = translate_all(model, looks, noise=False, look_optics=True)
    return score_known_answer(looks, means, sampled)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "config" / "learnability.yaml")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "learnability")
    p.add_argument("--steps", type=int, help="training steps (default: the config's)")
    p.add_argument("--target-frames", type=int, default=400)
    p.add_argument("--eval-frames", type=int, default=24)
    p.add_argument("--size", default="360x640", help="HxW of the rendered frames (default 360x640)")
    p.add_argument("--score-only", type=Path, help="score this model instead of training one")
    p.add_argument("--look-optics", action="store_true",
                   help="also score the model's colours through the look's exact optics (its own optics off)")
    p.add_argument("overrides", nargs="*", help="sim2real-train overrides key=value")
    return p.parse_args(argv)


def source_world_problem(config: Path, overrides: list[str]) -> str | None:
    """Why the training source may not be used, or None: a procedural source must render worlds other than the
    target look's and the scoring frames' (it would show the pairs, or be scored on its own scenes)."""
    from sim2real.training.config import load_train_config

    src = load_train_config(str(config), overrides).source
    clash = sorted({src.sim_seed, *src.extra_sim_seeds} & {TARGET_WORLD, EVAL_WORLD})
    if src.kind == "procedural" and clash:
        return (f"source world(s) {clash} (source.sim_seed / extra_sim_seeds) include the target look's world "
                f"({TARGET_WORLD}) or the scoring world ({EVAL_WORLD}); pick others")
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    h, w = (int(v) for v in args.size.split("x"))
    folder, labels = args.out / "target_look", args.out / "target_look_labels"  # labels: for a colour prior
    overrides = [f"out_dir={args.out / 'run'}", f"target.paths=[{folder}]", f"colour_prior.images=[{folder}]",
                 f"colour_prior.labels=[{labels}]", "colour_prior.label_space=train_id",
                 f"camera_calibration.images=[{folder}]", f"camera_calibration.labels=[{labels}]",
                 "camera_calibration.label_space=train_id", *args.overrides]
    if args.steps:
        overrides.append(f"steps={args.steps}")
    if args.score_only is None and (problem := source_world_problem(args.config, overrides)):
        print(f"[learnability] {problem}", file=sys.stderr)
        return 2
    t0 = time.time()
    print(f"[learnability] rendering {args.target_frames} target look frames of world {TARGET_WORLD}", flush=True)
    model = args.score_only
    stats = target_stats(args.target_frames, (h, w), *((folder, labels) if model is None else ()))
    train_s = 0.0
    if model is None:
        t1 = time.time()
        cmd = [sys.executable, "-m", "sim2real.training.cli", str(args.config), *overrides]
        print("[learnability] " + " ".join(cmd), flush=True)
        if subprocess.run(cmd, cwd=ROOT, check=False).returncode != 0:
            print("[learnability] training failed", file=sys.stderr)
            return 1
        train_s = time.time() - t1
        model = args.out / "run" / "model.safetensors"
    table = score(model, stats, (h, w), args.eval_frames, look_optics=args.look_optics)
    print("\n| method | PSNR vs deterministic look (dB) | SSIM | random-part error (levels) |\n|---|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | {row['psnr']:.2f} | {row['ssim']:.4f} | {row['random_part_error']:.2f} |")
    best = max(("classwise", "classwise_pooled"), key=lambda n: table[n]["psnr"])  # the stronger class-wise
    gain = table["model"]["psnr"] - table[best]["psnr"] if "model" in table else None
    verdict = (f"model - class-wise transfer ({best}) = {gain:+.2f} dB PSNR: "
               f"{'PASS' if gain >= REQUIRED_GAIN_DB else 'FAIL'} (needs >= {REQUIRED_GAIN_DB} dB)"
               if gain is not None else "no model")
    print(f"\n[learnability] {verdict}; training {train_s / 60:.1f} min, total {(time.time() - t0) / 60:.1f} min")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learnability.json").write_text(json.dumps(
        {"table": table, "gain_db": gain, "verdict": verdict, "train_s": train_s, "model": str(model),
         "config": str(args.config), "overrides": args.overrides, "size": [h, w]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
