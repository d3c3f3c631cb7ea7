"""A user's perception model, described by a small YAML, run on frames and scored against simulator labels.

The closed-loop question — "does my detector behave on translated frames the way it does on real ones?" — is
answered by ``sim2real-perception-check`` with the user's own model, through this module:

.. code-block:: yaml

    # perception.yaml (paths relative to the YAML)
    name: my-segmenter
    task: segmentation            # or detection
    runtime: onnx                 # or python: entry_point = "package.module:callable"
    path: segmenter.onnx
    input:
      size: [360, 480]            # H, W the model takes (frames are resized; null = the frame's own size)
      channel_order: RGB          # or BGR
      layout: NCHW                # or NHWC
      mean: [0.5, 0.5, 0.5]       # x = (uint8 / 255 - mean) / std, per channel
      std: [0.5, 0.5, 0.5]
    classes: [sky, building, pole, road, ...]   # output order of the model
    class_map:                    # model class -> the simulator classes (Cityscapes names) it stands for
      road: [road]
      car: [car, truck, bus, train]

Segmentation output: logits (1, K, h, w) / (1, h, w, K) or a class map (1, h, w) / (h, w), resized back to the
frame by nearest. Detection output: boxes (N, 4) xyxy in model-input pixels, labels (N,) class indices and
scores (N,) — the ONNX outputs named in ``outputs`` (default ``boxes``, ``labels``, ``scores``), or a Python
callable returning that triple; boxes are scaled back to the frame.

Scores, in the model's class space (classes without a ``class_map`` entry are not scored): segmentation IoU per
class against the simulator's semantic map (simulator classes not in any entry are ignored); detection recall@0.5
of the simulator's instances (thing classes, >= ``min_pixels``) by predictions of their class with score >=
``score_threshold`` (one prediction matches at most one instance, larger instances first), and unmatched
predictions per frame. Means over classes use only the classes every compared row scores.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import cv2
import numpy as np
import yaml

from sim2real.core.errors import ConfigError
from sim2real.core.labels import CAMVID_CLASS_NAMES, CLASS_NAMES, IGNORE_ID, TRAIN_ID

__all__ = [
    "DetectionOutput",
    "InputSpec",
    "PerceptionModel",
    "PerceptionSpec",
    "PerceptionTally",
    "camvid_to_train_ids",
    "load_perception_model",
    "load_spec",
]

#: CamVid class -> the Cityscapes train id that stands for it when real CamVid labels are scored.
#: CamVid's bicyclist (rider and bicycle as one region) has no single counterpart (the simulator labels the rider
#: person-like ``rider`` and the bike ``bicycle``), so it is not scored on real frames.
_CAMVID_REPRESENTATIVE: Final = {"sky": "sky", "building": "building", "pole": "pole", "road": "road",
                                  "pavement": "sidewalk", "tree": "vegetation", "sign/symbol": "traffic sign",
                                  "fence": "fence", "car": "car", "pedestrian": "person", "bicyclist": None}


def camvid_to_train_ids(labels: np.ndarray) -> np.ndarray:
    """CamVid class ids -> the Cityscapes train id standing for each (255 elsewhere): (H, W) -> (H, W) uint8.

    Lets real CamVid labels be scored in any model's class space through its ``class_map`` (CamVid merges some
    classes, e.g. car / truck / bus map to car; bicyclist = rider + bicycle is left unscored)."""
    lut = np.full(256, IGNORE_ID, np.uint8)
    for k, name in enumerate(CAMVID_CLASS_NAMES):
        if _CAMVID_REPRESENTATIVE[name] is not None:
            lut[k] = TRAIN_ID[_CAMVID_REPRESENTATIVE[name]]
    return lut[np.clip(labels, 0, 255).astype(np.int64)]


@dataclass(frozen=True)
class InputSpec:
    """How a frame becomes the model's input (see the module docstring)."""

    size: tuple[int, int] | None = None
    channel_order: Literal["RGB", "BGR"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 8):
            raise ConfigError(f"input.size must be [H, W] with both >= 8, or null; got {self.size}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ConfigError(f"input.channel_order must be RGB or BGR, got {self.channel_order!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError(f"input.layout must be NCHW or NHWC, got {self.layout!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"input.mean and input.std need 3 values each, std > 0; got {self.mean}, {self.std}")

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (1, 3, h, w) or (1, h, w, 3) float32 model input."""
        x = rgb if self.channel_order == "RGB" else rgb[..., ::-1]
        if self.size is not None and x.shape[:2] != tuple(self.size):
            x = cv2.resize(np.ascontiguousarray(x), (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        x = (x.astype(np.float32) / 255.0 - np.float32(self.mean)) / np.float32(self.std)
        return (x.transpose(2, 0, 1) if self.layout == "NCHW" else x)[None].astype(np.float32)


@dataclass(frozen=True)
class PerceptionSpec:
    """A user's perception model (module docstring); paths are resolved against the YAML's folder."""

    name: str
    task: Literal["segmentation", "detection"]
    runtime: Literal["onnx", "python"]
    classes: tuple[str, ...]
    class_map: dict[str, tuple[str, ...]]
    input: InputSpec = field(default_factory=InputSpec)
    path: Path | None = None
    entry_point: str | None = None
    outputs: tuple[str, ...] = ("boxes", "labels", "scores")
    score_threshold: float = 0.5
    min_pixels: int = 64

    def __post_init__(self) -> None:
        if self.task not in ("segmentation", "detection"):
            raise ConfigError(f"task must be segmentation or detection, got {self.task!r}")
        if self.runtime == "onnx" and (self.path is None or not self.path.is_file()):
            raise ConfigError(f"runtime onnx needs 'path' to an existing .onnx file, got {self.path}")
        if self.runtime == "python" and (not self.entry_point or ":" not in self.entry_point):
            raise ConfigError(f"runtime python needs entry_point 'module:callable', got {self.entry_point!r}")
        if self.runtime not in ("onnx", "python"):
            raise ConfigError(f"runtime must be onnx or python, got {self.runtime!r}")
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise ConfigError(f"classes must be a non-empty list of distinct names, got {list(self.classes)}")
        unknown = sorted(set(self.class_map) - set(self.classes))
        bad = sorted({s for v in self.class_map.values() for s in v} - set(CLASS_NAMES))
        if unknown or bad:
            raise ConfigError(f"class_map: unknown model classes {unknown} / simulator classes {bad} "
                              f"(simulator classes: {', '.join(CLASS_NAMES)})")
        taken = [s for v in self.class_map.values() for s in v]
        twice = sorted({s for s in taken if taken.count(s) > 1})
        if twice:
            raise ConfigError(f"class_map: simulator classes {twice} are claimed by more than one model class")
        if not self.class_map:
            raise ConfigError("class_map is empty: nothing could be scored")

    @property
    def scored(self) -> list[int]:
        """Model class indices that have a class_map entry, in output order."""
        return [i for i, c in enumerate(self.classes) if c in self.class_map]

    def train_id_to_model(self) -> np.ndarray:
        """(256,) int64 lookup: simulator train id -> model class index, -1 where none."""
        lut = np.full(256, -1, np.int64)
        for i, name in enumerate(self.classes):
            for sim_class in self.class_map.get(name, ()):
                lut[TRAIN_ID[sim_class]] = i
        return lut


def load_spec(path: str | Path) -> PerceptionSpec:
    """Read a perception YAML (module docstring). Raises ConfigError naming the file and the field."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"perception spec {path}: cannot read it as YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"perception spec {path}: expected a mapping at the top level")
    known = {f.name for f in dataclasses.fields(PerceptionSpec)}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"perception spec {path}: unknown field(s) {unknown}; valid: {sorted(known)}")
    try:
        inp = doc.get("input") or {}
        input_spec = InputSpec(**{**inp, **({"size": tuple(inp["size"])} if inp.get("size") else {}),
                                  **({"mean": tuple(inp["mean"])} if "mean" in inp else {}),
                                  **({"std": tuple(inp["std"])} if "std" in inp else {})})
        return PerceptionSpec(
            name=str(doc.get("name", path.stem)), task=doc.get("task"), runtime=doc.get("runtime"),
            classes=tuple(doc.get("classes") or ()),
            class_map={str(k): tuple(v if isinstance(v, list) else [v])
                       for k, v in (doc.get("class_map") or {}).items()},
            input=input_spec, path=(path.parent / doc["path"]).resolve() if doc.get("path") else None,
            entry_point=doc.get("entry_point"), outputs=tuple(doc.get("outputs") or ("boxes", "labels", "scores")),
            score_threshold=float(doc.get("score_threshold", 0.5)), min_pixels=int(doc.get("min_pixels", 64)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"perception spec {path}: {exc}") from exc


@dataclass(frozen=True)
class DetectionOutput:
    """boxes (N, 4) xyxy in frame pixels, labels (N,) model class indices, scores (N,)."""

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray


class PerceptionModel:
    """The user's model behind one call: ``predict(rgb (H, W, 3) uint8) -> (H, W) class map | DetectionOutput``."""

    def __init__(self, spec: PerceptionSpec, run: Callable[[np.ndarray], Any]) -> None:
        self.spec = spec
        self._run = run

    def predict(self, rgb: np.ndarray) -> np.ndarray | DetectionOutput:
        h, w = rgb.shape[:2]
        raw = self._run(self.spec.input.prepare(rgb))
        if self.spec.task == "segmentation":
            return _class_map(raw, len(self.spec.classes), (h, w))
        boxes, labels, scores = (np.asarray(a) for a in raw)
        ih, iw = self.spec.input.size or (h, w)
        scale = np.array([w / iw, h / ih, w / iw, h / ih], np.float64)
        return DetectionOutput(boxes.reshape(-1, 4).astype(np.float64) * scale, labels.reshape(-1).astype(np.int64),
                               scores.reshape(-1).astype(np.float64))


def _class_map(raw: Any, num_classes: int, size: tuple[int, int]) -> np.ndarray:
    out = np.asarray(raw[0] if isinstance(raw, list | tuple) else raw)
    out = out[0] if out.ndim in (3, 4) and out.shape[0] == 1 else out
    if out.ndim == 3:  # logits: (K, h, w) or (h, w, K)
        out = out.argmax(0) if out.shape[0] == num_classes else out.argmax(-1)
    if out.ndim != 2:
        raise ConfigError(f"segmentation output of shape {np.asarray(raw).shape} is neither logits nor a class map")
    return cv2.resize(out.astype(np.int32), (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(np.int64)


def load_perception_model(spec: PerceptionSpec) -> PerceptionModel:
    """Build the runner of a spec: an onnxruntime CPU session, or the Python callable of its entry point."""
    if spec.runtime == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(spec.path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        outputs = list(spec.outputs) if spec.task == "detection" else None
        return PerceptionModel(spec, lambda x: session.run(outputs, {name: x}))
    module_name, _, attr = spec.entry_point.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"entry_point {spec.entry_point!r} cannot be imported: {exc}") from exc
    return PerceptionModel(spec, fn)


@dataclass
class PerceptionTally:
    """One frame set's scores in the model's class space: segmentation confusion, detection recall."""

    num_classes: int
    confusion: np.ndarray = field(init=False)
    instances: np.ndarray = field(init=False)
    hits: np.ndarray = field(init=False)
    unmatched: int = 0
    frames: int = 0

    def __post_init__(self) -> None:
        k = self.num_classes
        self.confusion, self.instances, self.hits = np.zeros((k, k), np.int64), np.zeros(k), np.zeros(k)

    def add_segmentation(self, pred: np.ndarray, target: np.ndarray) -> None:
        """pred, target (H, W) model class indices (target < 0 = not scored)."""
        keep = target >= 0
        idx = target[keep] * self.num_classes + np.clip(pred[keep], 0, self.num_classes - 1)
        self.confusion += np.bincount(idx, minlength=self.num_classes**2).reshape(self.num_classes, -1)
        self.frames += 1

    def add_detection(self, det: DetectionOutput, target: np.ndarray, instance: np.ndarray, *,
                      score_threshold: float, min_pixels: int) -> None:
        """Recall@0.5 of the instances of ``instance`` (H, W) whose class (``target``, model indices) is scored."""
        keep = det.scores >= score_threshold
        boxes, labels = det.boxes[keep], det.labels[keep]
        matched = np.zeros(len(boxes), bool)
        objects, sizes = np.unique(instance[instance > 0], return_counts=True)
        for obj in objects[np.argsort(-sizes, kind="stable")]:  # larger instances claim predictions first
            ys, xs = np.nonzero(instance == obj)
            cls = int(np.bincount(target[ys, xs][target[ys, xs] >= 0], minlength=1).argmax()) if (
                target[ys, xs] >= 0).any() else -1
            if cls < 0 or ys.size < min_pixels:
                continue
            self.instances[cls] += 1
            gt = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
            ious = _ious(gt, boxes) * (labels == cls) * ~matched  # one prediction matches one instance
            if ious.size and ious.max() >= 0.5:
                self.hits[cls] += 1
                matched[int(ious.argmax())] = True
        self.unmatched += int((~matched).sum())
        self.frames += 1

    def iou(self) -> np.ndarray:
        tp = np.diag(self.confusion).astype(float)
        denom = self.confusion.sum(0) + self.confusion.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.confusion.sum(1) > 0, tp / np.maximum(denom, 1), np.nan)

    def recall(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.instances > 0, self.hits / np.maximum(self.instances, 1), np.nan)


def _ious(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    if boxes.shape[0] == 0:
        return np.zeros(0)
    lt, rb = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    union = (box[2:] - box[:2]).prod() + np.clip(boxes[:, 2:] - boxes[:, :2], 0, None).prod(1) - inter
    return inter / np.maximum(union, 1e-9)
