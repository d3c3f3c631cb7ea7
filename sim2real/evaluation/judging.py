"""Scores of frames through a judge (:mod:`sim2real.evaluation.judge`): label agreement, object preservation and
the embeddings of the realism distances. Nothing here is a loss; nothing reads ground truth into the judge.

Per evaluated set of frames (one "method": a baseline or a translator) a :class:`JudgeTally` accumulates:

* **segmentation** — the confusion matrix of the judge's classes against the simulator's semantic map mapped
  to CamVid's classes (:data:`~sim2real.core.labels.TRAIN_ID_TO_CAMVID`); mIoU = mean IoU over the classes
  that occur in the labels (the FCN-score of pix2pix / CycleGAN);
* **objects** — for every simulator instance of a CamVid thing class (car, pedestrian, bicyclist) with at
  least ``min_pixels`` pixels: *instance recall* = share of instances of which at least half the pixels are
  judged as their class; *box recall@0.5* / *box mIoU* = the best IoU between the instance's box and the boxes
  of the connected components of the judge's prediction of that class (8-connectivity). Proposals come from
  the judge's own output, never from the ground truth;
* **features** — the judge's pooled multi-layer features (learned-feature KID / Fréchet distance) and the
  colour-only features (:func:`~sim2real.evaluation.metrics.colour_features`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import cv2
import numpy as np
import torch
from torch import Tensor

from sim2real.core.labels import CAMVID_CLASS_NAMES, CAMVID_NUM_CLASSES, IGNORE_ID, TRAIN_ID_TO_CAMVID
from sim2real.evaluation.judge import JudgeNet, pooled_features
from sim2real.evaluation.judge_training import confusion_matrix, iou_from_confusion
from sim2real.evaluation.metrics import colour_features

__all__ = [
    "CAMVID_THINGS",
    "JudgeTally",
    "ObjectTally",
    "camvid_labels",
    "judge_frames",
    "object_tally",
]

#: CamVid classes scored as objects (they carry simulator instance ids).
CAMVID_THINGS: Final = tuple(CAMVID_CLASS_NAMES.index(n) for n in ("car", "pedestrian", "bicyclist"))
_LUT: Final = torch.full((256,), IGNORE_ID, dtype=torch.long)
for _train_id, _camvid in TRAIN_ID_TO_CAMVID.items():
    _LUT[_train_id] = _camvid


def camvid_labels(semantic: Tensor) -> Tensor:
    """Cityscapes train ids -> CamVid classes (255 where none): (B, H, W) int -> (B, H, W) int64."""
    return _LUT[semantic.long().clamp(0, 255)]


@torch.no_grad()
def judge_frames(net: JudgeNet, rgb: Tensor, batch: int = 4) -> tuple[Tensor, Tensor]:
    """Run the judge once per frame: rgb (N, 3, H, W) in [-1, 1] -> (classes (N, H, W) int64, features (N, D))."""
    classes, feats = [], []
    for i in range(0, rgb.shape[0], batch):
        x = rgb[i : i + batch].float()
        maps = net.forward_features(x)
        classes.append(net.decode(maps, x.shape[-2:]).argmax(1))
        feats.append(pooled_features(maps))
    return torch.cat(classes), torch.cat(feats)


@dataclass
class ObjectTally:
    """Per CamVid class: instances counted, recalled (>= half their pixels judged right), box IoU sum and
    box hits (IoU >= 0.5); arrays (K,) float64, added up over frames."""

    instances: np.ndarray = field(default_factory=lambda: np.zeros(CAMVID_NUM_CLASSES))
    recalled: np.ndarray = field(default_factory=lambda: np.zeros(CAMVID_NUM_CLASSES))
    box_iou: np.ndarray = field(default_factory=lambda: np.zeros(CAMVID_NUM_CLASSES))
    box_hits: np.ndarray = field(default_factory=lambda: np.zeros(CAMVID_NUM_CLASSES))

    def __add__(self, other: ObjectTally) -> ObjectTally:
        return ObjectTally(self.instances + other.instances, self.recalled + other.recalled,
                           self.box_iou + other.box_iou, self.box_hits + other.box_hits)

    def _ratio(self, num: np.ndarray, classes: tuple[int, ...] | None) -> float:
        idx = list(classes) if classes is not None else list(CAMVID_THINGS)
        n = self.instances[idx].sum()
        return float(num[idx].sum() / n) if n > 0 else float("nan")

    def instance_recall(self, classes: tuple[int, ...] | None = None) -> float:
        return self._ratio(self.recalled, classes)

    def box_recall50(self, classes: tuple[int, ...] | None = None) -> float:
        return self._ratio(self.box_hits, classes)

    def box_miou(self, classes: tuple[int, ...] | None = None) -> float:
        return self._ratio(self.box_iou, classes)


def _component_boxes(mask: np.ndarray) -> np.ndarray:
    """Boxes (x1, y1, x2, y2), x2 / y2 exclusive, of the 8-connected components of a (H, W) bool mask: (M, 4)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    s = stats[1:count]
    return np.stack((s[:, 0], s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 3]), 1).astype(np.float64)


def _best_iou(box: np.ndarray, boxes: np.ndarray) -> float:
    if boxes.shape[0] == 0:
        return 0.0
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    union = (box[2:] - box[:2]).prod() + (boxes[:, 2:] - boxes[:, :2]).prod(1) - inter
    return float((inter / np.maximum(union, 1e-9)).max())


def object_tally(pred: Tensor, semantic: Tensor, instance: Tensor, min_pixels: int = 64) -> ObjectTally:
    """Object preservation of one frame: judge classes (H, W), simulator train ids (H, W) and instance ids
    (H, W) -> :class:`ObjectTally` (see the module docstring)."""
    pred_np = pred.cpu().numpy()
    classes = camvid_labels(semantic).cpu().numpy()
    inst = instance.cpu().numpy()
    tally = ObjectTally()
    boxes_of = {c: _component_boxes(pred_np == c) for c in CAMVID_THINGS}
    ids, first = np.unique(inst.ravel(), return_index=True)
    for obj_id, at in zip(ids, first, strict=True):
        cls = int(classes.ravel()[at])
        if obj_id == 0 or cls not in boxes_of:
            continue
        ys, xs = np.nonzero(inst == obj_id)
        if ys.size < min_pixels:
            continue
        tally.instances[cls] += 1
        tally.recalled[cls] += float((pred_np[ys, xs] == cls).mean() >= 0.5)
        iou = _best_iou(np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64), boxes_of[cls])
        tally.box_iou[cls] += iou
        tally.box_hits[cls] += float(iou >= 0.5)
    return tally


@dataclass
class JudgeTally:
    """Everything the judge says about one method's frames, accumulated frame by frame.

    ``frames``: frames added; ``last_confusion`` / ``last_objects``: what the last :meth:`add` contributed (so
    per-group tallies can be kept beside the overall one with :meth:`add_counts`).
    """

    confusion: np.ndarray = field(default_factory=lambda: np.zeros((CAMVID_NUM_CLASSES,) * 2, np.int64))
    objects: ObjectTally = field(default_factory=ObjectTally)
    features: list[Tensor] = field(default_factory=list)
    colour: list[Tensor] = field(default_factory=list)
    frames: int = 0
    #: the confusion matrix of each :meth:`add` call (one frame each in sim2real-eval): for the bootstrap
    frame_confusions: list[np.ndarray] = field(default_factory=list)
    last_confusion: np.ndarray | None = None
    last_objects: ObjectTally | None = None

    def add(self, net: JudgeNet, rgb: Tensor, semantic: Tensor, instance: Tensor) -> Tensor:
        """Judge simulator-labelled frames rgb (B, 3, H, W), train ids and instances (B, H, W) -> judge classes."""
        pred, feats = judge_frames(net, rgb)
        objects = ObjectTally()
        for b in range(rgb.shape[0]):
            objects = objects + object_tally(pred[b], semantic[b], instance[b])
        confusion = confusion_matrix(pred, camvid_labels(semantic), CAMVID_NUM_CLASSES)
        self.frame_confusions.append(confusion)
        self.add_counts(confusion, objects, rgb.shape[0])
        self.features.append(feats)
        self.colour.append(colour_features(rgb))
        return pred

    def add_real(self, net: JudgeNet, rgb: Tensor, labels: Tensor) -> Tensor:
        """Judge real frames with CamVid labels (B, H, W) (255 = unlabelled); no object scores."""
        pred, feats = judge_frames(net, rgb)
        self.add_counts(confusion_matrix(pred, labels, CAMVID_NUM_CLASSES), ObjectTally(), rgb.shape[0])
        self.features.append(feats)
        self.colour.append(colour_features(rgb))
        return pred

    def add_features_only(self, net: JudgeNet, rgb: Tensor) -> None:
        """Only the embeddings of unlabelled frames (realism distances)."""
        self.features.append(judge_frames(net, rgb)[1])
        self.colour.append(colour_features(rgb))
        self.frames += rgb.shape[0]

    def add_counts(self, confusion: np.ndarray, objects: ObjectTally, frames: int) -> None:
        self.confusion = self.confusion + confusion
        self.objects = self.objects + objects
        self.frames += frames
        self.last_confusion, self.last_objects = confusion, objects

    def iou(self) -> np.ndarray:
        """(K,) per-class IoU, NaN for classes absent from the labels."""
        return iou_from_confusion(self.confusion)

    def miou(self) -> float:
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def feature_matrix(self) -> Tensor:
        return torch.cat(self.features)

    def colour_matrix(self) -> Tensor:
        return torch.cat(self.colour)
