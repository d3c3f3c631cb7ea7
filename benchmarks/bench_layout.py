"""Cost and quality of layout-matched target sampling (sim2real.data.layout) on ONE core (not a test).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_layout.py [--sources 48] [--repeats 4]

Cost, per source crop, median milliseconds at the trainer's crop sizes:
  descriptor of one crop (labels / appearance), matching against K descriptors, and the whole
  ``LayoutMatchedTargets.match`` with the target frames loaded from ../shared/data (real Cityscapes clips:
  appearance; CamVid: labels) -- cold (no descriptor cache: K loads), warm (cache filled: one load) --
  against plain random sampling (matching off: one load) measured in the same run.
Quality: procedural source crops matched to CamVid val crops; the CamVid labels, never shown to the
appearance descriptor, referee: mean label similarity (histogram intersection of the category grid) of a plain
random pick, of the appearance pick, of the label pick (the oracle), and the share of the oracle's gain over
random that the appearance pick recovers.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import torch

from sim2real.data.datasets import CamVidDataset, ImageFolderDataset, ProceduralSourceDataset
from sim2real.data.layout import LayoutConfig, LayoutMatchedTargets, describe_sample, similarities
from sim2real.data.transforms import PairedTransform

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _median_ms(fn: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def _transform(crop: tuple[int, int]) -> PairedTransform:
    return PairedTransform(crop=crop, resize_short=2 * crop[0], scale_range=(0.8, 1.25), hflip=0.5)


def bench_cost(crop: tuple[int, int], sources: list[dict], n: int) -> None:
    targets = {"appearance": ImageFolderDataset([DATA / "real"], transform=_transform(crop)),
               "labels": CamVidDataset(DATA / "camvid" / "train", transform=_transform(crop))}
    for kind, dataset in targets.items():
        descriptors = [describe_sample(dataset[i], kind) for i in range(8)]
        describe = _median_ms(lambda i, kind=kind: describe_sample(sources[i % len(sources)], kind), n)
        line = f"crop {crop[0]}x{crop[1]} {kind:10s} ({type(dataset).__name__}): descriptor {describe:.2f} ms"
        for k in (4, 8):
            match = _median_ms(lambda i, d=descriptors[:k]: int(similarities(d[0], d).argmax()), n)
            line += f" | K={k}: match {match:.3f} ms, descriptors+match cold {describe * (k + 1) + match:.2f} ms"
        print(line)
        print(f"    whole pick incl. loading: {_whole_pick(dataset, sources, n)}")


def _whole_pick(dataset: object, sources: list[dict], n: int) -> str:
    """Median ms of ``match`` per source crop: plain random (K = 1), cold (no cache) and warm (cache filled) for
    K = 4 and 8, timed round-robin so that a load on the shared CPU hits every variant alike."""
    variants = {"plain": LayoutMatchedTargets(dataset, LayoutConfig(candidates=1), seed=0)}
    for k in (4, 8):
        variants[f"cold{k}"] = LayoutMatchedTargets(dataset, LayoutConfig(candidates=k, cache_size=0), seed=0)
        variants[f"warm{k}"] = warm = LayoutMatchedTargets(dataset, LayoutConfig(candidates=k), seed=0)
        for i in range(300):  # fill the cache (300 x K draws cover every frame but a few)
            warm.match(sources[i % len(sources)], i)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(n):
        for name, matcher in variants.items():
            t0 = time.perf_counter()
            matcher.match(sources[i % len(sources)], 10_000 + i)
            times[name].append(time.perf_counter() - t0)
    ms = {name: float(np.median(t) * 1e3) for name, t in times.items()}
    return f"plain random {ms['plain']:.1f} ms" + "".join(
        f" | K={k}: cold {ms[f'cold{k}']:.1f} ms ({ms[f'cold{k}'] / ms['plain']:.1f}x), warm {ms[f'warm{k}']:.1f} ms "
        f"({ms[f'warm{k}'] / ms['plain']:.2f}x)" for k in (4, 8))


def bench_quality(sources: list[dict], repeats: int) -> None:
    targets = CamVidDataset(DATA / "camvid" / "val", transform=_transform((128, 256)))
    target_labels = [describe_sample(targets[i], "labels") for i in range(len(targets))]
    source_labels = [describe_sample(s, "labels") for s in sources]
    for k in (4, 8):
        matcher = LayoutMatchedTargets(targets, LayoutConfig(candidates=k, descriptor="appearance"), seed=0)
        random, picked, oracle = [], [], []
        for draw in range(len(sources) * repeats):
            i = draw % len(sources)
            indices = matcher.candidate_indices(draw)
            truth = similarities(source_labels[i], [target_labels[j] for j in indices])
            choice = int(matcher.match(sources[i], draw)["target_index"])
            random.append(float(truth[0]))
            picked.append(float(truth[list(indices).index(choice)]))
            oracle.append(float(truth.max()))
        r, p, o = np.mean(random), np.mean(picked), np.mean(oracle)
        print(f"quality K={k}: label similarity random {r:.3f}, appearance pick {p:.3f}, oracle {o:.3f}; "
              f"recovered {(p - r) / (o - r):.2f} of the oracle's gain; pick changed in "
              f"{matcher.counter.summary()['changed_fraction']:.0%} of {matcher.counter.picks} draws")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=48, help="procedural source crops")
    parser.add_argument("--repeats", type=int, default=4, help="draws per source crop in the quality run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    for crop in ((128, 256), (256, 512)):
        sources = list(ProceduralSourceDataset(16, 640, 360, seed=1, transform=_transform(crop)))
        bench_cost(crop, sources, n=60)
    sources = list(ProceduralSourceDataset(args.sources, 640, 360, seed=5, transform=_transform((128, 256))))
    bench_quality(sources, args.repeats)


if __name__ == "__main__":
    main()
