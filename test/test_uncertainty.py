"""Block bootstrap of the judge's IoUs, and verdicts that call a difference inside the noise a tie."""

from __future__ import annotations

import numpy as np

from sim2real.evaluation.report import verdicts
from sim2real.evaluation.uncertainty import block_bootstrap, bootstrap_ious


def test_blocks_never_cross_sequences_and_resamples_are_reproducible() -> None:
    sequence = [0] * 9 + [1] * 7  # two sequences; block = round(sqrt(16)) = 4
    a = block_bootstrap(sequence, resamples=50, seed=3)
    assert len(a) == 50
    assert all(np.array_equal(x, y) for x, y in zip(a, block_bootstrap(sequence, resamples=50, seed=3), strict=True))
    blocks = {0: [0, 1, 2, 3], 4: [4, 5, 6, 7], 8: [8], 9: [9, 10, 11, 12], 13: [13, 14, 15]}  # cut per sequence
    for idx in a:
        p, drawn = 0, 0
        while p < len(idx):  # each resample is whole blocks, one after another
            block = blocks[int(idx[p])]
            assert list(idx[p : p + len(block)]) == block, idx
            p, drawn = p + len(block), drawn + 1
        assert drawn == len(blocks)
    lengths = {len(x) for x in a}
    assert len(lengths) > 1 and min(lengths) >= 5 and max(lengths) <= 20  # 5 blocks of 1-4 frames each


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
