"""Frames an evaluation runs on: labelled simulator frames (source) and real frames (realism reference, colour
statistics, real-vs-real floor).

Source specs (:func:`load_source_frames`):

* ``procedural[:N]`` — N frames of the built-in simulator (world seed ``sim_seed``), split evenly over the
  times of day ``hours``: per hour one sequence of consecutive frames ``stride`` apart (so the temporal
  metrics have frame pairs), each sequence starting ``_SEQUENCE_GAP`` frames after the previous one (other
  scenes);
* ``carla:DIR`` — real CARLA output (``*_img.png`` + raw ``*_instance.png``) decoded by the CARLA adapter,
  resized to half resolution and cut into ``_CARLA_WINDOWS`` overlapping windows of the evaluation size;
* a rosbag2 recording with the canonical ``/sim/camera/{image,semantic,instance}`` topics;
* a folder of Cityscapes-named frames.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sim2real.core.errors import ConfigError

__all__ = [
    "DEFAULT_HOURS",
    "SourceFrames",
    "is_bag",
    "load_real_frames",
    "load_source_frames",
    "resize_frames",
]

DEFAULT_HOURS: Final = (8.0, 12.0, 16.0, 18.5)
_DEFAULT_SIZE: Final = (360, 640)
_DEFAULT_FRAMES: Final = 32
_SEQUENCE_GAP: Final = 900
_CARLA_WINDOWS: Final = ((0.0, 0.0), (0.0, 0.5), (0.0, 1.0), (1.0, 0.0), (1.0, 0.5), (1.0, 1.0))
_BAG_SUFFIXES: Final = (".mcap", ".db3")
_IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg")


@dataclass
class SourceFrames:
    """Labelled source frames: rgb (T, 3, H, W) in [-1, 1]; semantic / instance (T, H, W) int64.

    ``sequence`` (T,) int64: frames with the same value are consecutive frames of one sequence (temporal metrics
    pair frame t with t - 1 only inside a sequence); ``groups`` (T,) str: the breakdown each frame belongs to
    (e.g. ``"08:00"``; "all" when the source has none). ``clusters``: frames that are not independent of each
    other share a name (CARLA: the overlapping windows of one frame), and the bootstrap resamples whole clusters;
    None = blocks of consecutive frames within a sequence.
    """

    rgb: Tensor
    semantic: Tensor
    instance: Tensor
    sequence: Tensor
    groups: list[str]
    description: dict[str, Any] = field(default_factory=dict)
    clusters: list[str] | None = None

    def __len__(self) -> int:
        return int(self.rgb.shape[0])


def is_bag(path: Path) -> bool:
    return path.suffix in _BAG_SUFFIXES or (path.is_dir() and (path / "metadata.yaml").is_file())


def _resize_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()


def resize_frames(rgb: Tensor, size: tuple[int, int]) -> Tensor:
    """Area (shrinking) / bilinear (enlarging) resize: (N, 3, H, W) -> (N, 3, *size), kept in [-1, 1]."""
    if tuple(rgb.shape[-2:]) == tuple(size):
        return rgb
    shrink = size[0] < rgb.shape[-2]
    return F.interpolate(rgb, size=size, mode="area" if shrink else "bilinear",
                         align_corners=None if shrink else False).clamp(-1, 1)


def _from_samples(samples: list[dict[str, Tensor]], size: tuple[int, int] | None, desc: dict[str, Any]
                  ) -> SourceFrames:
    if not samples:
        raise ConfigError(f"source {desc} gave no frames")
    rgb = torch.stack([s["rgb"] for s in samples])
    semantic = torch.stack([s["semantic"] for s in samples])
    instance = torch.stack([s["instance"] for s in samples])
    if size is not None:
        rgb, semantic, instance = resize_frames(rgb, size), _resize_labels(semantic, size), _resize_labels(
            instance, size)
    return SourceFrames(rgb, semantic, instance, torch.zeros(len(samples), dtype=torch.long),
                        ["all"] * len(samples), desc | {"frames": len(samples)})


def _procedural(count: int, size: tuple[int, int], sim_seed: int, hours: tuple[float, ...], stride: int
                ) -> SourceFrames:
    from sim2real.data.datasets import to_sample
    from sim_bridge.procedural import ProceduralSimulator, SimConfig

    if not hours:
        raise ConfigError("procedural evaluation needs at least one time of day")
    base = SimConfig(width=size[1], height=size[0], seed=sim_seed)
    samples, sequence, groups, indices = [], [], [], []
    per_hour = [count // len(hours) + (1 if k < count % len(hours) else 0) for k in range(len(hours))]
    for k, (hour, n) in enumerate(zip(hours, per_hour, strict=True)):
        sim = ProceduralSimulator(dataclasses.replace(base, time_of_day=hour))
        for j in range(n):
            index = k * _SEQUENCE_GAP + j * stride
            frame = sim.frame(index)
            samples.append(to_sample(frame.rgb, frame.semantic, frame.instance))
            sequence.append(k)
            groups.append(f"{int(hour):02d}:{round(60 * (hour % 1)):02d}")
            indices.append(index)
    out = _from_samples(samples, None, {"kind": "procedural", "sim_seed": sim_seed, "hours": list(hours),
                                        "stride": stride, "frame_indices": indices})
    out.sequence, out.groups = torch.tensor(sequence), groups
    return out


def _carla(folder: Path, size: tuple[int, int]) -> SourceFrames:
    from sim2real.data.datasets import to_sample
    from sim_bridge.adapters.carla import CARLA

    names = sorted(p.name[: -len("_img.png")] for p in folder.glob("*_img.png"))
    if not names:
        raise ConfigError(f"carla:{folder}: no *_img.png frames (with *_instance.png beside them)")
    samples, sequence, groups = [], [], []
    for name in names:
        bgr = cv2.imread(str(folder / f"{name}_img.png"), cv2.IMREAD_COLOR)
        raw = cv2.imread(str(folder / f"{name}_instance.png"), cv2.IMREAD_UNCHANGED)
        if bgr is None or raw is None or raw.ndim != 3 or raw.shape[:2] != bgr.shape[:2]:
            raise ConfigError(f"carla:{folder}: cannot read {name}_img.png / {name}_instance.png as a pair")
        semantic, instance = CARLA.decode_instance(raw[..., :3], "bgr8")
        h, w = bgr.shape[0] // 2, bgr.shape[1] // 2
        if h < size[0] or w < size[1]:
            raise ConfigError(f"carla:{folder}: frames of {w * 2}x{h * 2} are smaller than twice the evaluation "
                              f"size {size[1]}x{size[0]}")
        rgb = cv2.resize(bgr[..., ::-1], (w, h), interpolation=cv2.INTER_AREA)
        semantic = cv2.resize(semantic, (w, h), interpolation=cv2.INTER_NEAREST)
        instance = cv2.resize(instance, (w, h), interpolation=cv2.INTER_NEAREST)
        for fy, fx in _CARLA_WINDOWS:
            y, x = round(fy * (h - size[0])), round(fx * (w - size[1]))
            win = (slice(y, y + size[0]), slice(x, x + size[1]))
            samples.append(to_sample(rgb[win], semantic[win], instance[win]))
            sequence.append(len(sequence))  # windows are not a sequence
            groups.append(name)
    out = _from_samples(samples, None, {"kind": "carla", "path": str(folder), "frames_on_disk": len(names),
                                        "windows_per_frame": len(_CARLA_WINDOWS), "scale": 0.5})
    out.sequence, out.groups, out.clusters = torch.tensor(sequence), groups, list(groups)
    return out


def load_source_frames(spec: str, frames: int | None = None, size: tuple[int, int] | None = None, *,
                       sim_seed: int = 1, hours: tuple[float, ...] = DEFAULT_HOURS, stride: int = 3,
                       topic_prefix: str = "/sim/camera") -> SourceFrames:
    """Labelled source frames from a spec (module docstring); a bag is read on ``<topic_prefix>/{image,semantic,
    instance}``.

    Raises:
        ConfigError: an unknown spec, a missing path or no frames.
    """
    from sim2real.data.datasets import BagSourceDataset, CityscapesSourceDataset, SourceTopics

    kind, _, rest = spec.partition(":")
    if kind == "procedural":
        try:
            count = frames or (int(rest) if rest else _DEFAULT_FRAMES)
        except ValueError as exc:
            raise ConfigError(f"source {spec!r}: expected procedural or procedural:N with an integer N") from exc
        return _procedural(count, size or _DEFAULT_SIZE, sim_seed, hours, stride)
    if kind == "carla" and rest:
        folder = Path(rest)
        if not folder.is_dir():
            raise ConfigError(f"source {spec!r}: {folder} is not a folder")
        out = _carla(folder, size or _DEFAULT_SIZE)
        return out if frames is None else _select(out, frames)
    path = Path(spec)
    if not path.exists():
        raise ConfigError(f"source {spec!r} is neither 'procedural[:N]', 'carla:DIR' nor an existing bag or folder")
    count = frames or _DEFAULT_FRAMES
    if is_bag(path):
        samples = []
        topics = SourceTopics(*(f"{topic_prefix}/{name}" for name in ("image", "semantic", "instance")))
        for sample in BagSourceDataset([path], topics):
            samples.append(sample)
            if len(samples) == count:
                break
        out = _from_samples(samples, size, {"kind": "bag", "path": str(path), "topics": topics.as_list()})
        out.sequence = torch.zeros(len(out), dtype=torch.long)  # one recording: consecutive frames
        return out
    dataset = CityscapesSourceDataset(path)
    out = _from_samples([dataset[i] for i in range(min(count, len(dataset)))], size,
                        {"kind": "cityscapes_folder", "path": str(path)})
    out.sequence = torch.arange(len(out))
    return out


def _select(frames: SourceFrames, count: int) -> SourceFrames:
    keep = slice(0, min(count, len(frames)))
    return SourceFrames(frames.rgb[keep], frames.semantic[keep], frames.instance[keep], frames.sequence[keep],
                        frames.groups[keep], frames.description | {"frames": len(frames.groups[keep])})


def load_real_frames(spec: str | Path, height: int, limit: int | None = None, *, labels: bool = False
                     ) -> tuple[Tensor, Tensor | None]:
    """Real frames resized to ``height`` (aspect kept; width rounded to a multiple of 8).

    ``spec``: a folder of images (recursive, sorted; a CamVid split's ``images/`` is used when present) or a
    rosbag2 recording (``/camera/image``). With ``labels=True`` the folder must be a CamVid split and the
    labels come back too (CamVid ids, 255 = unlabelled). Returns (rgb (N, 3, h, w) in [-1, 1], labels or None).
    """
    from sim2real.data.datasets import BagTargetDataset
    from sim2real.evaluation.judge_training import load_camvid_split

    path = Path(spec)
    if not path.exists():
        raise ConfigError(f"real frames {str(spec)!r} do not exist (expected an image folder or a rosbag2 recording)")
    if labels or (path / "labels").is_dir():
        split = load_camvid_split(path, limit)
        rgb = torch.from_numpy(split.rgb).permute(0, 3, 1, 2).float() / 127.5 - 1
        lab = torch.from_numpy(split.labels).long()
    elif is_bag(path):
        rgb = torch.stack([s["rgb"] for s in _first(BagTargetDataset([path], ["/camera/image"]), limit)])
        lab = None
    else:
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)[:limit]
        if not files:
            raise ConfigError(f"real frames {path}: no image files ({', '.join(_IMAGE_SUFFIXES)})")
        arrays = []
        for f in files:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ConfigError(f"real frames: cannot decode {f}")
            arrays.append(cv2.resize(bgr[..., ::-1], _size_for(bgr.shape[:2], height)[::-1],
                                     interpolation=cv2.INTER_AREA))
        if len({a.shape for a in arrays}) != 1:
            raise ConfigError(f"real frames {path}: images of different aspect ratios")
        rgb = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1
        lab = None
    if rgb.shape[0] < 2:
        raise ConfigError(f"real frames {path}: {rgb.shape[0]} frame(s); the distances need at least 2")
    size = _size_for(tuple(rgb.shape[-2:]), height)
    rgb = resize_frames(rgb, size)
    if lab is not None:
        lab = _resize_labels(lab, size)
    return rgb, lab


def _first(dataset: Any, limit: int | None) -> list[dict[str, Tensor]]:
    out = []
    for sample in dataset:
        out.append(sample)
        if limit is not None and len(out) == limit:
            break
    return out


def _size_for(shape: tuple[int, ...], height: int) -> tuple[int, int]:
    h, w = int(shape[0]), int(shape[1])
    return height, max(8, round(w * height / h / 8) * 8)
