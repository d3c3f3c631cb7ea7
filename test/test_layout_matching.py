"""Layout-matched target crops (sim2real.data.layout) and the labelled CamVid dataset, with known answers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import (
    CAMVID_TO_TRAIN_ID,
    CAMVID_UNLABELLED,
    IGNORE_ID,
    camvid_to_train_ids,
    train_ids_to_camvid,
)
from sim2real.data.datasets import CamVidDataset
from sim2real.data.transforms import PairedTransform


# --- CamVid-style labelled real frames ---
def test_camvid_classes_map_to_representative_train_ids_and_back():
    camvid = np.array([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, CAMVID_UNLABELLED]], np.uint8)
    train = camvid_to_train_ids(camvid)
    assert train.dtype == np.uint8 and train[1, 5] == IGNORE_ID
    assert [train.ravel()[i] for i in range(11)] == [CAMVID_TO_TRAIN_ID[i] for i in range(11)]
    assert np.array_equal(train_ids_to_camvid(train)[camvid != CAMVID_UNLABELLED], camvid[camvid != CAMVID_UNLABELLED])
    assert camvid_to_train_ids(np.array([-1, 12, 255, 300])).tolist() == [IGNORE_ID] * 4


def _write_split(root: Path, stems: list[str], size: tuple[int, int] = (36, 48)) -> np.ndarray:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    label = (np.arange(size[0] * size[1]) % 12).reshape(size).astype(np.uint8)
    for stem in stems:
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), np.full((*size, 3), 128, np.uint8))
        cv2.imwrite(str(root / "labels" / f"{stem}.png"), label)
    return label


def test_camvid_dataset_yields_train_ids_and_frame_box(tmp_path):
    label = _write_split(tmp_path, ["a", "b"])
    plain = CamVidDataset(tmp_path)
    sample = plain[1]
    assert len(plain) == 2 and set(sample) == {"rgb", "semantic"}
    assert sample["semantic"].dtype == torch.int64
    assert np.array_equal(sample["semantic"].numpy(), camvid_to_train_ids(label))
    cropped = CamVidDataset(tmp_path, PairedTransform(crop=(16, 24), hflip=0.0), seed=3)[0]
    assert set(cropped) == {"rgb", "semantic", "frame_box"} and cropped["semantic"].shape == (16, 24)
    x0, y0, x1, y1 = (cropped["frame_box"] * torch.tensor([48, 36, 48, 36])).round().int().tolist()
    assert (x1 - x0, y1 - y0) == (24, 16)
    assert np.array_equal(cropped["semantic"].numpy(), camvid_to_train_ids(label)[y0:y1, x0:x1])


def test_camvid_dataset_names_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="images/ and labels/"):
        CamVidDataset(tmp_path)
    _write_split(tmp_path / "s", ["a", "b"])
    (tmp_path / "s" / "labels" / "b.png").unlink()
    with pytest.raises(ConfigError, match=r"do not pair up.*'b'"):
        CamVidDataset(tmp_path / "s")
    _write_split(tmp_path / "t", ["a"])
    cv2.imwrite(str(tmp_path / "t" / "labels" / "a.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(LabelError, match=r"a\.png"):
        CamVidDataset(tmp_path / "t")[0]


def test_camvid_train_split_reads_as_labelled_targets(shared_data):
    dataset = CamVidDataset(shared_data / "camvid" / "train")
    sample = dataset[0]
    assert len(dataset) == 367 and sample["rgb"].shape == (3, 360, 480)
    assert set(sample["semantic"].unique().tolist()) <= set(CAMVID_TO_TRAIN_ID.values()) | {IGNORE_ID}
