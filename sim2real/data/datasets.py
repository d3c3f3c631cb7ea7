"""Datasets for unpaired training: labelled source frames and unlabelled target frames.

Source (RGB + semantic + instance): rosbag2 recordings (triplets matched by header stamp), the procedural
simulator on the fly, or folders in Cityscapes naming. Target (RGB only): rosbag2 camera topics or image
folders; labelled target (RGB + semantic): CamVid-style splits. Bag datasets stream (a bag is never loaded
whole) and shard across DataLoader workers and DDP ranks.

Every dataset yields dicts of tensors: ``rgb`` float (3, H, W) in [-1, 1]; sources add ``semantic`` int64
(H, W) train ids (255 = ignore) and ``instance`` int64 (H, W) (0 = none); labelled targets add ``semantic``
only. With a transform, ``frame_box`` (4,) float32 says where the crop lies in its frame.
"""

from __future__ import annotations

import logging
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from sim2real.core.errors import BagError, ConfigError, LabelError, Sim2RealError
from sim2real.core.labels import (
    IGNORE_ID,
    camvid_to_train_ids,
    cityscapes_instances_to_canonical,
    label_ids_to_train_ids,
)
from sim2real.data.transforms import PairedTransform
from sim2real.io.bag_reader import IMAGE_TYPES, BagMessage, BagReader, decode_image
from sim2real.io.conversions import to_rgb8

__all__ = [
    "SKIPPED_KEY",
    "BagSourceDataset",
    "BagTargetDataset",
    "CamVidDataset",
    "CityscapesSourceDataset",
    "ImageFolderDataset",
    "MatchStats",
    "ProceduralSourceDataset",
    "SourceTopics",
    "adapter_label_decoder",
    "canonical_labels",
    "match_triplets",
    "to_sample",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_log = logging.getLogger(__name__)
#: (semantic array, its encoding, instance array, its encoding) as stored -> canonical (uint8, uint16)
LabelDecoder = Callable[[np.ndarray, str, np.ndarray, str], tuple[np.ndarray, np.ndarray]]


def canonical_labels(semantic: np.ndarray, _sem_encoding: str, instance: np.ndarray, _inst_encoding: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Labels already in the canonical spaces (what sim2real's simulator and adapters publish), checked."""
    if semantic.ndim != 2 or instance.shape != semantic.shape:
        raise LabelError(f"semantic {semantic.shape} and instance {instance.shape} must be equal (H, W) maps")
    bad = semantic[(semantic > 18) & (semantic != IGNORE_ID)]
    if bad.size:
        raise LabelError(f"semantic holds values outside train ids 0..18/255: {np.unique(bad)[:5].tolist()}")
    return semantic.astype(np.uint8, copy=False), instance.astype(np.uint16, copy=False)


def adapter_label_decoder(simulator: str) -> LabelDecoder:
    """Decode a real simulator's native semantic + instance images with its sim-bridge adapter."""
    from sim_bridge.adapters import get_adapter

    adapter = get_adapter(simulator)

    def decode(semantic: np.ndarray, sem_encoding: str, instance: np.ndarray, inst_encoding: str
               ) -> tuple[np.ndarray, np.ndarray]:
        sem = adapter.decode_semantic(semantic, sem_encoding)
        _, inst = adapter.decode_instance(instance, inst_encoding, semantic=sem)
        return sem, inst

    return decode


def to_sample(rgb: np.ndarray, semantic: np.ndarray | None = None, instance: np.ndarray | None = None,
              frame_box: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """(H, W, 3) uint8 RGB [+ (H, W) labels] [+ (4,) frame box] -> dict of tensors (rgb in [-1, 1], labels int64,
    ``frame_box`` float32: where an augmented window lies in its frame, see ``PairedTransform.apply``)."""
    rgb = np.require(rgb, np.uint8, ["C", "W"])  # decoded bag data is a read-only view: copy only then
    out = {"rgb": torch.from_numpy(rgb).permute(2, 0, 1).float().div_(127.5).sub_(1.0)}
    if frame_box is not None:
        out["frame_box"] = torch.from_numpy(np.asarray(frame_box, np.float32))
    if semantic is not None:
        out["semantic"] = torch.from_numpy(semantic.astype(np.int64))
    if instance is not None:
        out["instance"] = torch.from_numpy(instance.astype(np.int64))
    return out


def _shard() -> tuple[int, int]:
    """(index, count) of this reader among DDP ranks x DataLoader workers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = get_worker_info()
    wid, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nworkers + wid, world * nworkers


def _rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


#: key of the bad frames a streaming dataset skipped (``skip_bad_frames=True``): every sample carries a str,
#: the newline-separated descriptions ("bag ... stamp ... ns (topic): reason") of the frames skipped since
#: the previous sample ("" for none); collated batches carry a list of them (see ``training.stream``).
SKIPPED_KEY = "skipped"


class _BadFrames:
    """Bad frames met by one pass over a streaming dataset: raise (naming bag and stamp), or skip and report
    them with the next sample yielded."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.pending: list[str] = []

    def met(self, exc: Sim2RealError, bag: Path, stamp_ns: int, topic: str) -> None:
        """A frame failed with ``exc``: re-raise it naming where, or note it (skipping)."""
        problem = f"bag {bag} stamp {stamp_ns} ns ({topic}): {exc}"
        if not self.skip:
            raise type(exc)(f"bad frame in {problem}") from exc
        self.pending.append(problem)

    def attach(self, sample: dict[str, Any]) -> dict[str, Any]:
        """``sample`` with the pending descriptions under :data:`SKIPPED_KEY` (when skipping)."""
        if self.skip:
            sample[SKIPPED_KEY] = "\n".join(self.pending)
            self.pending.clear()
        return sample

    def finish(self) -> None:
        """End of a pass: frames skipped after the last sample cannot ride on one; say so."""
        if self.pending:
            _log.warning("skipped %d bad frame(s) after the last sample of this pass (not counted toward the "
                         "trainer's limit): %s", len(self.pending), "; ".join(self.pending))
            self.pending.clear()


# --- stamp matching ---
@dataclass
class MatchStats:
    """How many messages per topic were read, and how many found no partner within the tolerance."""

    read: dict[str, int] = field(default_factory=dict)
    unmatched: dict[str, int] = field(default_factory=dict)
    matched: int = 0

    def summary(self) -> str:
        """One line for logs: matched sets and unmatched counts per topic."""
        parts = ", ".join(f"{t}: {self.unmatched.get(t, 0)}/{n}" for t, n in self.read.items())
        return f"{self.matched} matched sets; unmatched/read per topic: {parts}"


def match_triplets(messages: Iterable[BagMessage], topics: Sequence[str], tolerance_ns: int = 0,
                   stats: MatchStats | None = None, window: int = 64) -> Iterator[tuple[BagMessage, ...]]:
    """Group messages of ``topics`` whose header stamps agree within ``tolerance_ns``.

    Streaming: at most ``window`` pending messages per topic. A message is counted unmatched once a set with a
    later stamp has been emitted, or when it falls out of the window. Yields tuples ordered like ``topics``.
    """
    stats = stats if stats is not None else MatchStats()
    pending: dict[str, deque[BagMessage]] = {t: deque() for t in topics}
    for t in topics:
        stats.read.setdefault(t, 0)
        stats.unmatched.setdefault(t, 0)

    def drop_older_than(stamp: int) -> None:
        for t, queue in pending.items():
            while queue and queue[0].stamp_ns < stamp - tolerance_ns:
                queue.popleft()
                stats.unmatched[t] += 1

    for m in messages:
        if m.topic not in pending:
            continue
        stats.read[m.topic] += 1
        queue = pending[m.topic]
        queue.append(m)
        if len(queue) > window:
            queue.popleft()
            stats.unmatched[m.topic] += 1
        # A set completes when every topic has a message within tolerance of this one's stamp.
        chosen = []
        for t in topics:
            best = min(pending[t], key=lambda x: abs(x.stamp_ns - m.stamp_ns), default=None)
            if best is None or abs(best.stamp_ns - m.stamp_ns) > tolerance_ns:
                break
            chosen.append(best)
        else:
            for t, c in zip(topics, chosen, strict=True):
                pending[t].remove(c)
            stats.matched += 1
            drop_older_than(min(c.stamp_ns for c in chosen))
            yield tuple(chosen)
    for t, queue in pending.items():
        stats.unmatched[t] += len(queue)


# --- sources ---
@dataclass(frozen=True)
class SourceTopics:
    """Topic names of a simulator recording (defaults: sim2real's canonical /sim/camera/* set)."""

    image: str = "/sim/camera/image"
    semantic: str = "/sim/camera/semantic"
    instance: str = "/sim/camera/instance"

    def as_list(self) -> list[str]:
        return [self.image, self.semantic, self.instance]


def _encoding(msg: Any) -> str:
    """An Image's encoding, or the original encoding a CompressedImage's format names ("" if none)."""
    if hasattr(msg, "encoding"):
        return msg.encoding
    return msg.format.split(";")[0].strip() if ";" in msg.format else ""


class EpochAugmented:
    """Datasets whose random crops / flips are a function of (seed, epoch, index): ``set_epoch`` moves to the next
    epoch's (the trainer's batch stream calls it at every pass, so exact resume holds)."""

    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (like DistributedSampler.set_epoch)."""
        self.epoch = epoch


class BagSourceDataset(EpochAugmented, IterableDataset):
    """Streams (RGB, semantic, instance) triplets from rosbag2 recordings, matched by header stamp.

    ``label_decoder`` turns the stored label arrays into canonical ones (default: already canonical; pass a
    sim-bridge adapter's decoder to train directly on, e.g., a CARLA bag). After an epoch, ``stats`` holds
    the matched / unmatched counts of the last pass. A frame that cannot be decoded (a corrupt image, labels
    outside the canonical space or of another size) raises naming the bag and the stamp, or, with
    ``skip_bad_frames``, is skipped and reported with the next sample (:data:`SKIPPED_KEY`).
    """

    def __init__(self, bags: Sequence[str | Path], topics: SourceTopics = SourceTopics(), *,
                 tolerance_s: float = 0.0, transform: PairedTransform | None = None,
                 label_decoder: LabelDecoder = canonical_labels, seed: int = 0, skip_bad_frames: bool = False
                 ) -> None:
        if not bags:
            raise ConfigError("BagSourceDataset needs at least one bag path")
        self.skip_bad_frames = skip_bad_frames
        self.bags = [Path(b) for b in bags]
        self.topics = topics
        self.tolerance_ns = round(tolerance_s * 1e9)
        self.transform = transform
        self.label_decoder = label_decoder
        self.seed = seed
        self.epoch = 0
        self.stats = MatchStats()
        for bag in self.bags:  # fail early, in the main process, with the bag's name
            with BagReader(bag) as reader:
                reader.require_topics(topics.as_list(), IMAGE_TYPES)
                empty = [t for t in topics.as_list() if reader.topics[t].count == 0]
                if empty:
                    raise BagError(f"bag {bag} has no messages on {empty}")


    def __iter__(self) -> Iterator[dict[str, Any]]:
        shard, nshards = _shard()
        self.stats = MatchStats()
        bad = _BadFrames(self.skip_bad_frames)
        index = 0
        for bag in self.bags:
            with BagReader(bag) as reader:
                types = {t: reader.topics[t].msgtype for t in self.topics.as_list()}
                triplets = match_triplets(reader.messages(self.topics.as_list()), self.topics.as_list(),
                                          self.tolerance_ns, self.stats)
                for triplet in triplets:
                    index += 1
                    if (index - 1) % nshards != shard:
                        continue
                    try:
                        sample = self._sample(triplet, types, index - 1)
                    except Sim2RealError as exc:
                        bad.met(exc, bag, triplet[0].stamp_ns, self.topics.image)
                        continue
                    yield bad.attach(sample)
        bad.finish()

    def _sample(self, triplet: tuple[BagMessage, ...], types: dict[str, str], index: int
                ) -> dict[str, torch.Tensor]:
        img_m, sem_m, ins_m = triplet
        rgb = to_rgb8(img_m.msg)  # Image or CompressedImage, any colour encoding -> RGB
        semantic, instance = self.label_decoder(
            decode_image(types[sem_m.topic], sem_m.msg), _encoding(sem_m.msg),
            decode_image(types[ins_m.topic], ins_m.msg), _encoding(ins_m.msg))
        if semantic.shape != rgb.shape[:2]:
            raise LabelError(f"label size {semantic.shape} differs from image size {rgb.shape[:2]} at stamp "
                             f"{img_m.stamp_ns} ns")
        if self.transform is not None:
            rgb, (semantic, instance), box = self.transform.apply(
                rgb, [semantic, instance], _rng(self.seed, self.epoch, index), [IGNORE_ID, 0])
            return to_sample(rgb, semantic, instance, box)
        return to_sample(rgb, semantic, instance)


class ProceduralSourceDataset(EpochAugmented, Dataset):
    """The built-in procedural simulator as a map-style dataset: item i = frame i (random access).

    Frames are spread over ``frames`` indices with a stride, so a small dataset still covers varied scenes;
    ``time_of_day`` is varied per frame when ``vary_time_of_day`` (index i -> the (i mod 4)-th of 8:00, 12:00,
    16:00, 18:30) so the translator sees day and dusk. ``seed`` is the simulator's world; with ``extra_seeds`` the
    frames cycle over the worlds (seed, *extra_seeds): frame i comes from world (i // hours) mod worlds, each world
    at every hour. ``augment_seed`` (default ``seed``) seeds the transform's per-frame randomness.
    """

    def __init__(self, frames: int, width: int = 640, height: int = 360, seed: int = 0, *,
                 transform: PairedTransform | None = None, stride: int = 7, vary_time_of_day: bool = True,
                 augment_seed: int | None = None, extra_seeds: Sequence[int] = ()) -> None:
        from sim_bridge.procedural import ProceduralSimulator, SimConfig

        if frames < 1:
            raise ConfigError(f"ProceduralSourceDataset needs frames >= 1, got {frames}")
        self.frames, self.stride, self.transform, self.epoch = frames, stride, transform, 0
        self.seed = seed if augment_seed is None else augment_seed  # the augmentation's (EpochAugmented's) seed
        hours = (8.0, 12.0, 16.0, 18.5) if vary_time_of_day else (SimConfig().time_of_day,)
        self.sims = [[ProceduralSimulator(SimConfig(width=width, height=height, seed=world, time_of_day=h))
                      for h in hours] for world in (seed, *extra_seeds)]

    def __len__(self) -> int:
        return self.frames

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.frames:
            raise IndexError(f"frame {index} outside 0..{self.frames - 1}")
        hours = len(self.sims[0])
        frame = self.sims[(index // hours) % len(self.sims)][index % hours].frame(index * self.stride)
        rgb, semantic, instance = frame.rgb, frame.semantic, frame.instance
        if self.transform is not None:
            rgb, (semantic, instance), box = self.transform.apply(
                rgb, [semantic, instance], _rng(self.seed, self.epoch, index), [IGNORE_ID, 0])
            return to_sample(rgb, semantic, instance, box)
        return to_sample(rgb, semantic, instance)


class CityscapesSourceDataset(EpochAugmented, Dataset):
    """Labelled frames in Cityscapes naming: ``X_leftImg8bit.png`` + ``X_gtFine_labelIds.png`` (+ instances).

    Files are matched by the prefix before ``_leftImg8bit``; frames without a label file are an error that
    names them (nothing is silently skipped).
    """

    def __init__(self, image_dir: str | Path, label_dir: str | Path | None = None,
                 transform: PairedTransform | None = None, seed: int = 0) -> None:
        image_dir = Path(image_dir)
        label_dir = Path(label_dir) if label_dir is not None else image_dir
        self.images = sorted(p for p in image_dir.rglob("*_leftImg8bit.*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.images:
            raise ConfigError(f"no *_leftImg8bit.(png|jpg) files under {image_dir}")
        suffix = "_gtFine_labelIds.png"
        labels = {p.name.removesuffix(suffix): p for p in label_dir.rglob(f"*{suffix}")}
        self.pairs = []
        for img in self.images:
            key = img.name[: img.name.rindex("_leftImg8bit")]
            if key not in labels:
                raise ConfigError(f"no {key}_gtFine_labelIds.png under {label_dir} for {img}")
            self.pairs.append((img, labels[key], labels[key].with_name(f"{key}_gtFine_instanceIds.png")))
        self.transform = transform
        self.seed = seed
        self.epoch = 0


    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        img_path, label_path, inst_path = self.pairs[index]
        rgb = _read_rgb(img_path)
        if inst_path.is_file():
            semantic, instance = cityscapes_instances_to_canonical(_read_unchanged(inst_path))
        else:
            semantic = label_ids_to_train_ids(_read_unchanged(label_path))
            instance = np.zeros(semantic.shape, np.uint16)
        if self.transform is not None:
            rgb, (semantic, instance), box = self.transform.apply(
                rgb, [semantic, instance], _rng(self.seed, self.epoch, index), [IGNORE_ID, 0])
            return to_sample(rgb, semantic, instance, box)
        return to_sample(rgb, semantic, instance)


# --- targets ---
def _read_unchanged(path: Path) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ConfigError(f"cannot read image file {path} (missing or corrupt)")
    return array


def _read_rgb(path: Path) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if array is None:
        raise ConfigError(f"cannot read image file {path} (missing or corrupt)")
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


class ImageFolderDataset(EpochAugmented, Dataset):
    """Unlabelled target frames: every image file under ``roots`` (recursive, sorted). Each sample also carries
    ``dataset``: the index of its root in ``roots`` (a style per target dataset, ``TargetDataConfig.styles``)."""

    def __init__(self, roots: Sequence[str | Path], transform: PairedTransform | None = None, seed: int = 0
                 ) -> None:
        found = sorted((p, k) for k, r in enumerate(roots) for p in Path(r).rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES)
        self.files = [p for p, _ in found]
        self.dataset_of = [k for _, k in found]
        if not self.files:
            raise ConfigError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {[str(r) for r in roots]}")
        self.transform = transform
        self.seed = seed
        self.epoch = 0


    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rgb = _read_rgb(self.files[index])
        if self.transform is not None:
            rgb, _, box = self.transform.apply(rgb, [], _rng(self.seed + 1, self.epoch, index))
            sample = to_sample(rgb, frame_box=box)
        else:
            sample = to_sample(rgb)
        sample["dataset"] = torch.tensor(self.dataset_of[index], dtype=torch.long)
        return sample


class CamVidDataset(EpochAugmented, Dataset):
    """Labelled real frames in a CamVid-style split: ``root/images/X.jpg`` + ``root/labels/X.png`` (same stems).

    Labels are SegNet's 11 CamVid classes (11 = unlabelled); samples carry them as Cityscapes train ids, each
    class read as its representative id (``core.labels.CAMVID_TO_TRAIN_ID``), unlabelled as 255. No
    ``instance`` (CamVid has none). Augmentation draws from ``seed + 1`` like the other target datasets.
    """

    def __init__(self, root: str | Path, transform: PairedTransform | None = None, seed: int = 0) -> None:
        root = Path(root)
        images, labels = root / "images", root / "labels"
        if not images.is_dir() or not labels.is_dir():
            raise ConfigError(f"{root} is not a CamVid-style split (expected images/ and labels/ inside)")
        image_files = {p.stem: p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        label_files = {p.stem: p for p in labels.glob("*.png")}
        unpaired = sorted(set(image_files) ^ set(label_files))
        if unpaired:
            raise ConfigError(f"{root}: {len(unpaired)} image(s) and label(s) do not pair up by stem, e.g. "
                              f"{unpaired[:5]}")
        if not image_files:
            raise ConfigError(f"{root}: no frames under images/")
        self.pairs = [(image_files[stem], label_files[stem]) for stem in sorted(image_files)]
        self.transform, self.seed, self.epoch = transform, seed, 0


    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image_path, label_path = self.pairs[index]
        rgb = _read_rgb(image_path)
        label = _read_unchanged(label_path)
        if label.ndim != 2 or label.shape != rgb.shape[:2]:
            raise LabelError(f"label {label_path} is {label.shape}, expected a single-channel map of the image's "
                             f"size {rgb.shape[:2]}")
        semantic = camvid_to_train_ids(label)
        if self.transform is not None:
            rgb, (semantic,), box = self.transform.apply(
                rgb, [semantic], _rng(self.seed + 1, self.epoch, index), [IGNORE_ID])
            return to_sample(rgb, semantic, frame_box=box)
        return to_sample(rgb, semantic)


class BagTargetDataset(EpochAugmented, IterableDataset):
    """Streams unlabelled camera frames from one or more topics of one or more rosbag2 recordings.

    Bad frames: as :class:`BagSourceDataset` (raise naming bag and stamp, or ``skip_bad_frames``)."""

    def __init__(self, bags: Sequence[str | Path], topics: Sequence[str],
                 transform: PairedTransform | None = None, seed: int = 0, *, skip_bad_frames: bool = False) -> None:
        if not bags or not topics:
            raise ConfigError("BagTargetDataset needs at least one bag and one topic")
        self.bags, self.topics = [Path(b) for b in bags], list(topics)
        self.skip_bad_frames = skip_bad_frames
        self.transform, self.seed, self.epoch = transform, seed, 0
        for bag in self.bags:
            with BagReader(bag) as reader:
                present = [t for t in self.topics if t in reader.topics]
                if not present:
                    reader.require_topics(self.topics)  # raises, listing the topics that exist
                reader.require_topics(present, IMAGE_TYPES)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        shard, nshards = _shard()
        bad = _BadFrames(self.skip_bad_frames)
        index = 0
        for bag in self.bags:
            with BagReader(bag) as reader:
                present = [t for t in self.topics if t in reader.topics]
                for m in reader.messages(present):
                    index += 1
                    if (index - 1) % nshards != shard:
                        continue
                    try:
                        rgb = to_rgb8(m.msg)  # Image or CompressedImage, any colour encoding -> RGB
                    except Sim2RealError as exc:
                        bad.met(exc, bag, m.stamp_ns, m.topic)
                        continue
                    if self.transform is not None:
                        seed = self.seed + 1 + zlib.crc32(m.topic.encode())
                        rgb, _, box = self.transform.apply(rgb, [], _rng(seed, self.epoch, index))
                        yield bad.attach(to_sample(rgb, frame_box=box))
                    else:
                        yield bad.attach(to_sample(rgb))
        bad.finish()


def describe(dataset: Any) -> dict[str, Any]:
    """A small JSON-able description of a dataset for checkpoints' training-data field."""
    kind = type(dataset).__name__
    if isinstance(dataset, BagSourceDataset | BagTargetDataset):
        return {"kind": kind, "bags": [str(b) for b in dataset.bags]}
    if isinstance(dataset, ImageFolderDataset):
        return {"kind": kind, "files": len(dataset.files), "first": str(dataset.files[0])}
    if isinstance(dataset, CityscapesSourceDataset | CamVidDataset):
        return {"kind": kind, "frames": len(dataset)}
    return {"kind": kind}
