"""Evaluation frames (sim2real.evaluation.frames): procedural sequences by time of day, real CARLA output through the
CARLA adapter, real reference sets; the protocol's path overlap rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sim2real.core.errors import ConfigError
from sim2real.core.labels import TRAIN_ID
from sim2real.evaluation.frames import load_real_frames, load_source_frames
from sim2real.evaluation.provenance import paths_overlap


def test_procedural_frames_are_sequences_per_time_of_day() -> None:
    f = load_source_frames("procedural:6", size=(72, 128), sim_seed=5, hours=(8.0, 18.5), stride=3)
    assert len(f) == 6 and f.rgb.shape == (6, 3, 72, 128) and f.rgb.min() >= -1 and f.rgb.max() <= 1
    assert f.groups == ["08:00"] * 3 + ["18:30"] * 3
    assert f.sequence.tolist() == [0, 0, 0, 1, 1, 1]
    assert f.description["frame_indices"] == [0, 3, 6, 900, 903, 906]
    dusk, noon = f.rgb[3:].mean(), f.rgb[:3].mean()
    assert dusk < noon  # 18:30 is darker than 08:00 in the procedural world
    again = load_source_frames("procedural:6", size=(72, 128), sim_seed=5, hours=(8.0, 18.5), stride=3)
    assert torch.equal(again.rgb, f.rgb)  # deterministic
    other = load_source_frames("procedural:6", size=(72, 128), sim_seed=6, hours=(8.0, 18.5), stride=3)
    assert not torch.equal(other.rgb, f.rgb)  # another world


def test_carla_frames_come_through_the_adapter_as_windows(shared_data: Path) -> None:
    f = load_source_frames(f"carla:{shared_data / 'carla'}", size=(360, 640))
    assert len(f) == 12 and f.rgb.shape == (12, 3, 360, 640)
    assert set(f.groups) == {"Town10HD_000033_5026200", "Town10HD_000063_5026800"}
    assert f.sequence.unique().numel() == 12  # windows are not consecutive frames
    cars = f.semantic == TRAIN_ID["car"]
    assert cars.any() and (f.instance[cars] > 0).float().mean() > 0.95  # cars carry CARLA object ids
    assert (f.instance[f.semantic == TRAIN_ID["sky"]] == 0).all()
    with pytest.raises(ConfigError, match="no \\*_img.png"):
        load_source_frames(f"carla:{shared_data / 'labels'}", size=(360, 640))


def test_real_frames_keep_their_aspect_at_the_evaluation_height(shared_data: Path) -> None:
    rgb, labels = load_real_frames(shared_data / "camvid" / "val", 180, limit=3)
    assert rgb.shape == (3, 3, 180, 240) and labels is not None and labels.shape == (3, 180, 240)
    assert set(np.unique(labels.numpy())) <= set(range(11)) | {255}
    rgb, labels = load_real_frames(shared_data / "real" / "seq0000", 180, limit=2)
    assert rgb.shape == (2, 3, 180, 360) and labels is None
    with pytest.raises(ConfigError, match="at least 2"):
        load_real_frames(shared_data / "real" / "seq0000", 180, limit=1)


def test_paths_overlap_same_nested_and_apart(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    assert paths_overlap(tmp_path / "a", tmp_path / "a")
    assert paths_overlap(tmp_path / "a", tmp_path / "a" / "b") and paths_overlap(tmp_path / "a" / "b", tmp_path / "a")
    assert not paths_overlap(tmp_path / "a", tmp_path / "c")
    assert not paths_overlap(tmp_path / "a" / "b", tmp_path / "ab")
