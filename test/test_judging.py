"""Negative controls of every evaluation metric, through the shipped judge (models/judges/camvid_segmenter).

Each metric must score a broken frame worse than the clean one: objects painted over or moved away from their
labels, uniform noise; and identity must score exactly the source. The clean frames are real CamVid val frames
(where the judge is good, so a drop is visible) with instances taken as connected components of their labels,
and procedural frames.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sim2real.core.labels import CAMVID_CLASS_NAMES, TRAIN_ID
from sim2real.evaluation.baselines import apply_baseline, fit_real_stats
from sim2real.evaluation.evaluate import score_method
from sim2real.evaluation.frames import load_source_frames
from sim2real.evaluation.judge import load_judge
from sim2real.evaluation.judge_training import load_camvid_split
from sim2real.evaluation.judging import JudgeTally, object_tally
from sim2real.evaluation.metrics import frechet_distance_features, kid
from sim2real.evaluation.perception import camvid_to_train_ids

REPO = Path(__file__).resolve().parents[1]
JUDGE = REPO / "models" / "judges" / "camvid_segmenter.safetensors"
CAR = CAMVID_CLASS_NAMES.index("car")
THINGS = (CAMVID_CLASS_NAMES.index("car"), CAMVID_CLASS_NAMES.index("pedestrian"))


@pytest.fixture(scope="module")
def judge() -> torch.nn.Module:
    torch.set_num_threads(2)
    return load_judge(JUDGE)[0]


@pytest.fixture(scope="module")
def real(shared_data: Path) -> dict[str, torch.Tensor]:
    """8 CamVid val frames with many car pixels: rgb, train-id labels, instances (components of car / pedestrian)."""
    split = load_camvid_split(shared_data / "camvid" / "val")
    order = np.argsort([-(lab == CAR).sum() for lab in split.labels])[:8]
    instance = np.zeros((len(order), *split.labels.shape[1:]), np.int64)
    for n, i in enumerate(order):
        next_id = 1
        for cls in THINGS:
            count, comp = cv2.connectedComponents((split.labels[i] == cls).astype(np.uint8), connectivity=8)
            for c in range(1, count):
                instance[n][comp == c] = next_id
                next_id += 1
    return {"rgb": torch.from_numpy(split.rgb[order]).permute(0, 3, 1, 2).float() / 127.5 - 1,
            "semantic": torch.from_numpy(camvid_to_train_ids(split.labels[order])).long(),
            "instance": torch.from_numpy(instance)}


@pytest.fixture(scope="module")
def reference(shared_data: Path, judge: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Judge and colour features of 16 other real frames (CamVid train): the realism reference."""
    split = load_camvid_split(shared_data / "camvid" / "train", limit=16)
    tally = JudgeTally()
    tally.add_features_only(judge, torch.from_numpy(split.rgb).permute(0, 3, 1, 2).float() / 127.5 - 1)
    return tally.feature_matrix(), tally.colour_matrix()


def judged(judge: torch.nn.Module, frames: dict[str, torch.Tensor], rgb: torch.Tensor) -> JudgeTally:
    tally = JudgeTally()
    for i in range(rgb.shape[0]):
        tally.add(judge, rgb[i : i + 1], frames["semantic"][i : i + 1], frames["instance"][i : i + 1])
    return tally


def painted_over(frames: dict[str, torch.Tensor]) -> torch.Tensor:
    """Every instance filled with the mean colour of its frame's road pixels (the object erased)."""
    out = frames["rgb"].clone()
    for b in range(out.shape[0]):
        road = frames["semantic"][b] == TRAIN_ID["road"]
        fill = out[b][:, road].mean(1) if road.any() else out[b].mean((1, 2))
        out[b][:, frames["instance"][b] > 0] = fill[:, None]
    return out


def moved_away(frames: dict[str, torch.Tensor], shift: int = 60) -> torch.Tensor:
    """Every instance's pixels moved ``shift`` px sideways (labels stay): the object no longer where labelled."""
    out = painted_over(frames)
    for b in range(out.shape[0]):
        mask = frames["instance"][b] > 0
        moved = torch.roll(mask, shift, dims=1)
        out[b][:, moved] = torch.roll(frames["rgb"][b], shift, dims=2)[:, moved]
    return out


def noise_like(rgb: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return torch.rand(rgb.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_judge_card_reports_its_real_frame_ceiling() -> None:
    card = json.loads(JUDGE.with_suffix(".json").read_text())
    val = card["validation"]
    assert val["frames"] == 101 and set(val["iou"]) == set(CAMVID_CLASS_NAMES)
    assert 0.4 < val["miou"] <= 1.0
    assert "camvid" in card["training"]["data"].lower() and card["training"]["command"].startswith("benchmarks/")


def test_clean_real_frames_are_judged_well(judge, real) -> None:
    clean = judged(judge, real, real["rgb"])
    assert clean.miou() > 0.4 and clean.iou()[CAR] > 0.5
    assert clean.objects.instance_recall() > 0.5


def test_painted_over_objects_score_worse_on_every_object_metric(judge, real) -> None:
    clean, broken = judged(judge, real, real["rgb"]), judged(judge, real, painted_over(real))
    assert broken.iou()[CAR] < clean.iou()[CAR] - 0.3
    assert broken.objects.instance_recall() < clean.objects.instance_recall() - 0.3
    assert broken.objects.box_recall50() < clean.objects.box_recall50()
    assert broken.objects.box_miou() < clean.objects.box_miou()
    assert broken.miou() < clean.miou()


def test_objects_moved_away_from_their_labels_score_worse(judge, real) -> None:
    clean, broken = judged(judge, real, real["rgb"]), judged(judge, real, moved_away(real))
    assert broken.iou()[CAR] < clean.iou()[CAR] - 0.2
    assert broken.objects.instance_recall() < clean.objects.instance_recall() - 0.2
    assert broken.objects.box_miou() < clean.objects.box_miou()


def test_noise_scores_worse_than_the_clean_frames_on_every_metric(judge, real, reference) -> None:
    ref_feats, ref_colour = reference
    clean, noisy = judged(judge, real, real["rgb"]), judged(judge, real, noise_like(real["rgb"]))
    assert noisy.miou() < clean.miou() - 0.3
    assert noisy.objects.instance_recall() < clean.objects.instance_recall()
    for get, ref in ((JudgeTally.feature_matrix, ref_feats), (JudgeTally.colour_matrix, ref_colour)):
        assert kid(get(noisy), ref)[0] > kid(get(clean), ref)[0] + 1e-6
        assert frechet_distance_features(get(noisy), ref) > frechet_distance_features(get(clean), ref)


def test_identity_scores_exactly_the_source_and_noise_worse(judge, reference) -> None:
    source = load_source_frames("procedural:4", size=(180, 320), sim_seed=2718, hours=(12.0, 18.5))
    stats = fit_real_stats(source.rgb, None)  # any statistics: identity must not use them
    identity = score_method(lambda i: apply_baseline("identity", source.rgb[i : i + 1],
                                                     source.semantic[i : i + 1], stats), source, judge)
    direct = judged(judge, {"semantic": source.semantic, "instance": source.instance}, source.rgb)
    np.testing.assert_array_equal(identity.judge.confusion, direct.confusion)
    torch.testing.assert_close(identity.judge.feature_matrix(), direct.feature_matrix(), rtol=0, atol=0)
    assert identity.ssim.overall() == pytest.approx(1.0) and identity.flicker.static_flicker == 0.0
    noisy = score_method(lambda i: noise_like(source.rgb[i : i + 1], seed=i), source, judge)
    assert noisy.judge.miou() < identity.judge.miou()
    assert kid(noisy.judge.feature_matrix(), reference[0])[0] > kid(identity.judge.feature_matrix(), reference[0])[0]
    assert noisy.ssim.overall() < 0.5 and noisy.flicker.static_flicker > 10


def test_object_tally_counts_only_things_above_the_size_limit() -> None:
    semantic = torch.full((40, 60), TRAIN_ID["road"], dtype=torch.long)
    instance = torch.zeros(40, 60, dtype=torch.long)
    semantic[5:15, 5:25], instance[5:15, 5:25] = TRAIN_ID["car"], 1  # 200 px car
    semantic[20:24, 40:44], instance[20:24, 40:44] = TRAIN_ID["person"], 2  # 16 px: too small
    pred = torch.full((40, 60), CAMVID_CLASS_NAMES.index("road"), dtype=torch.long)
    pred[5:15, 5:20] = CAR  # 150 of 200 car pixels judged car, box (5, 5, 20, 15)
    t = object_tally(pred, semantic, instance)
    assert t.instances.sum() == 1 and t.recalled[CAR] == 1
    assert t.box_iou[CAR] == pytest.approx(150 / 200)
    pred[5:15, 5:12] = 0  # now 80 of 200 judged car: not recalled, box IoU 80 / 200
    t = object_tally(pred, semantic, instance)
    assert t.recalled[CAR] == 0 and t.box_hits[CAR] == 0 and t.box_iou[CAR] == pytest.approx(80 / 200)
    assert math.isnan(object_tally(pred, semantic, torch.zeros_like(instance)).instance_recall())
