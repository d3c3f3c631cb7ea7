"""Block bootstrap of the judge's IoUs, and verdicts that call a difference inside the noise a tie."""

from __future__ import annotations

import numpy as np

from sim2real.evaluation.report import verdicts
from sim2real.evaluation.uncertainty import MIN_BLOCKS, block_bootstrap, bootstrap_ious


def test_blocks_never_cross_sequences_and_resamples_are_reproducible() -> None:
    sequence = [0] * 9 + [1] * 7  # two sequences, blocks of 2
    a = block_bootstrap(sequence, resamples=50, seed=3, block=2)
    assert len(a) == 50
    again = block_bootstrap(sequence, resamples=50, seed=3, block=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, again, strict=True))
    blocks = {0: [0, 1], 2: [2, 3], 4: [4, 5], 6: [6, 7], 8: [8], 9: [9, 10], 11: [11, 12], 13: [13, 14], 15: [15]}
    for idx in a:
        p, drawn = 0, 0
        while p < len(idx):  # each resample is whole blocks, one after another
            block = blocks[int(idx[p])]
            assert list(idx[p : p + len(block)]) == block, idx
            p, drawn = p + len(block), drawn + 1
        assert drawn == len(blocks)
    assert len({len(x) for x in a}) > 1  # blocks of 1 and 2 frames: resamples of varying length


def test_too_few_independent_blocks_give_no_estimate_and_clusters_stay_whole() -> None:
    assert block_bootstrap([0] * 9 + [1] * 7) == []  # round(sqrt(16)) = 4: 5 blocks < MIN_BLOCKS
    windows = [f"frame{i // 6}" for i in range(12)]  # 6 overlapping windows of each of 2 frames
    assert block_bootstrap(windows, block=len(windows)) == []  # 2 clusters: no spread can be estimated
    many = [f"frame{i // 6}" for i in range(6 * MIN_BLOCKS)]
    for idx in block_bootstrap(many, resamples=20, block=len(many)):
        assert len(idx) == len(many) and all(idx[k] % 6 == k % 6 for k in range(len(idx)))  # whole frames


def _confusions(correct: list[int], total: int = 10) -> np.ndarray:
    """Per-frame 2-class confusions: class 0 all right; class 1 right ``correct[i]`` of ``total`` pixels."""
    out = np.zeros((len(correct), 2, 2), np.int64)
    for i, c in enumerate(correct):
        out[i] = [[total, 0], [total - c, c]]
    return out


def test_identical_frames_have_no_spread_and_varied_frames_do() -> None:
    resamples = block_bootstrap(list(range(12)), resamples=100, seed=0)  # every frame its own sequence
    flat = bootstrap_ious(_confusions([5] * 12), resamples)
    assert flat.shape == (100, 2) and np.allclose(flat.std(0), 0)
    varied = bootstrap_ious(_confusions([0, 10] * 6), resamples)
    assert varied[:, 1].std() > 0.05


def _summary(model_miou: float, paired_std: float) -> dict:
    row = {"iou": {}}
    return {"classwise": {**row, "judge_miou": 0.30},
            "model": {**row, "judge_miou": model_miou, "paired_std": {"classwise": {"judge_miou": paired_std}}}}


def test_a_difference_inside_twice_the_paired_spread_is_a_tie_not_a_win() -> None:
    within = verdicts(_summary(0.31, 0.01), "model")[0]
    assert "beats no baseline" in within and "ties with classwise (+0.01, within noise ±0.02)" in within, within
    clear = verdicts(_summary(0.35, 0.01), "model")[0]
    assert "beats classwise (+0.05)" in clear, clear
    lost = verdicts(_summary(0.25, 0.01), "model")[0]
    assert "LOSES to classwise (−0.05)" in lost, lost


def test_only_a_win_on_judge_miou_and_kid_together_counts_jointly() -> None:
    summary = {
        "classwise": {"iou": {}, "judge_miou": 0.30, "kid_judge": 5.0, "kid_judge_std": 0.1},
        "reinhard": {"iou": {}, "judge_miou": 0.20, "kid_judge": 4.0, "kid_judge_std": 0.1},
        "painted_labels": {"iou": {}, "judge_miou": 0.40, "kid_judge": 30.0, "kid_judge_std": 0.1},
        "model": {"iou": {}, "judge_miou": 0.35, "kid_judge": 4.5, "kid_judge_std": 0.1,
                  "paired_std": {"classwise": {"judge_miou": 0.01}, "reinhard": {"judge_miou": 0.01}}},
    }
    lines = verdicts(summary, "model")
    assert "painted_labels" not in lines[0]  # a control is no baseline to beat or lose to
    joint = lines[-1]
    assert joint.startswith("judge mIoU and judge KID jointly: model beats classwise; not on both: reinhard"), joint
    assert "control painted_labels: mIoU 0.4" in joint


def test_without_a_noise_estimate_a_difference_is_undecided_not_a_win() -> None:
    summary = _summary(0.40, 0.01)
    summary["model"]["paired_std"]["classwise"]["judge_miou"] = None  # e.g. two CARLA frames
    line = verdicts(summary, "model")[0]
    assert "beats no baseline" in line and "undecided (no noise estimate) against classwise (+0.1)" in line, line
    summary["model"]["instance_recall"], summary["classwise"]["instance_recall"] = 0.5, 0.4
    recall = next(v for v in verdicts(summary, "model") if v.startswith("instance recall"))
    assert recall.startswith("instance recall ↑ (no noise estimate): model 0.5 — beats classwise (+0.1)"), recall


def test_the_report_gets_paired_spreads_from_per_frame_confusions() -> None:
    import torch

    from sim2real.evaluation.evaluate import MethodScores, _add_bootstrap

    rng = np.random.default_rng(0)
    k = 11  # CamVid classes
    frames = 48
    base = [np.diag(rng.integers(50, 100, k)) + rng.integers(0, 10, (k, k)) for _ in range(frames)]
    scores = {"identity": MethodScores(), "model": MethodScores()}
    for conf in base:
        scores["identity"].judge.frame_confusions.append(conf)
        better = conf.copy()
        np.fill_diagonal(better, np.diag(conf) + 20)  # the model gets more pixels right in every frame
        scores["model"].judge.frame_confusions.append(better)
    summary = {name: {} for name in scores}
    class Frames:  # what _add_bootstrap reads of SourceFrames
        def __init__(self, clusters: list[str] | None, sequence: torch.Tensor | None) -> None:
            self.clusters, self.sequence = clusters, sequence

        def __len__(self) -> int:
            return frames

    source = Frames(None, torch.arange(frames) // 12)
    _add_bootstrap(summary, scores, source, seed=0)
    paired = summary["model"]["paired_std"]["identity"]["judge_miou"]
    assert summary["identity"]["judge_miou_std"] > 0 and summary["model"]["judge_miou_std"] > 0
    assert 0 < paired < summary["identity"]["judge_miou_std"]  # pairing removes the frames' common spread
    clustered = Frames([f"f{i // 24}" for i in range(frames)], None)
    summary = {name: {} for name in scores}
    _add_bootstrap(summary, scores, clustered, seed=0)  # two clusters: no estimate at all
    assert summary["model"]["judge_miou_std"] is None and summary["model"]["paired_std"]["identity"]["judge_miou"] \
        is None


def test_procedural_frames_are_blocks_of_their_sequences_and_carla_windows_clusters_of_their_frame(
        shared_data) -> None:
    from sim2real.evaluation.frames import load_source_frames

    procedural = load_source_frames("procedural:48", None, (36, 64), sim_seed=2718)
    assert procedural.clusters is None and len(block_bootstrap(procedural.sequence.tolist())) == 200
    carla = load_source_frames(f"carla:{shared_data / 'carla'}", None, (90, 160))
    assert carla.clusters is not None and len(set(carla.clusters)) == len(carla) // 6  # 6 windows per frame
