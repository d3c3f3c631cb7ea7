"""``sim2real-translate-bag``: translate a recorded simulator bag into a new bag, offline.

    sim2real-translate-bag IN OUT --model CKPT [--image-topic /sim/camera/image]
        [--semantic-topic /sim/camera/semantic] [--instance-topic /sim/camera/instance]
        [--output-topic TOPIC] [--storage mcap|sqlite3] [--batch 8] [--device auto|cpu|cuda:N]
        [--precision auto|fp32|fp16|bf16] [--tolerance S] [--unmatched copy|drop|error] [--adapter NAME]
        [--compress jpeg|png [--jpeg-quality 95] [--png-level 3]]

What OUT holds (a new recording; an existing OUT is never overwritten):

* ``--output-topic`` (default: the image topic itself, i.e. replaced): one ``sensor_msgs/msg/Image`` (rgb8)
  per translated frame, whose header is the input image's (same stamp and frame_id) and whose bag timestamp
  is the input image's. When ``--output-topic`` names another topic, the input images are kept as well.
  With ``--compress jpeg|png`` the translated images are ``sensor_msgs/msg/CompressedImage`` on
  ``<output topic>/compressed`` instead (image_transport's name and format string; same header and bag time).
* every other topic (semantic, instance, camera_info, tf, ...) copied unchanged: the serialized bytes, the
  bag timestamps and the per-topic message counts and order are the input's. Message definitions are
  taken from the input's connections, so types the ROS 2 Kilted typestore does not know are copied too; so are
  their offered QoS profiles (the translated images take the input image topic's).
* images whose semantic + instance never arrive (header stamps matched within ``--tolerance`` seconds by
  :func:`sim2real.data.datasets.match_triplets`) follow ``--unmatched``: ``copy`` (default) writes the
  original image unchanged (a CompressedImage is decoded to rgb8 when it replaces its own topic), ``drop``
  leaves it out, ``error`` stops. The counts are always printed.

Streaming and order: the input is read once in bag-time order and never loaded whole. Every message goes
into one FIFO; image messages are slots that become ready once their frame is translated (in batches of
``--batch`` frames) or found unmatched, and the FIFO is written out from its head while the head is ready.
So the output is written in exactly the input's message order. The FIFO is bounded: an image waits at most
for ``window`` newer images on its topic (the matcher then declares it unmatched) plus one batch, and a
partial batch is translated early when the buffered bytes exceed ``max_buffer_mb``.

Atomic output: OUT is written as ``.OUT.partial/OUT`` beside it (locked by this process) and renamed to OUT
once complete, so OUT either does not exist or is a complete bag. On any failure (a bad frame, a full disk,
Ctrl-C) the partial output is removed. After a SIGKILL the next run finds the partial directory unlocked, removes
it and starts over (there is no resume from a partial output).

Exit status: 0 done; 2 user error: an invalid argument, an unreadable / corrupt input bag or frame (the message
names the file, topic and stamp), a bad model file, an existing or uncreatable OUT; 1 the output could not be
written (disk full, file too large, I/O error; the partial output is removed).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
from tqdm import tqdm

from sim2real.core.errors import BagError, BagWriteError, ConfigError, ImageConversionError, LabelError, Sim2RealError
from sim2real.data.datasets import LabelDecoder, MatchStats, adapter_label_decoder, canonical_labels, match_triplets
from sim2real.io.bag_reader import IMAGE_TYPES, BagMessage, BagReader, decode_image
from sim2real.io.bag_writer import STORAGES, BagWriter
from sim2real.io.conversions import array_to_compressed, image_fields, to_rgb8
from sim2real.io.split_bag import lock_bag

__all__ = [
    "UNMATCHED_POLICIES",
    "FrameTranslator",
    "TranslateBagConfig",
    "TranslateBagResult",
    "build_parser",
    "detect_storage",
    "main",
    "translate_bag",
]

UNMATCHED_POLICIES: Final[tuple[str, ...]] = ("copy", "drop", "error")
IMAGE: Final = "sensor_msgs/msg/Image"
COMPRESSED: Final = "sensor_msgs/msg/CompressedImage"
PROG: Final = "sim2real-translate-bag"
#: upper bound of --max-buffer-mb (1 TiB): a limit, not a way to disable buffering limits with inf
MAX_BUFFER_MB: Final = float(2**20)


class FrameTranslator(Protocol):
    """What :func:`translate_bag` needs from a model: :meth:`sim2real.translator.inference.Translator.translate`."""

    def translate(self, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
        """uint8 ``(B, H, W, 3)`` RGB + ``(B, H, W)`` semantic + ``(B, H, W)`` instance -> uint8 ``(B, H, W, 3)``."""
        ...


@dataclass(frozen=True)
class TranslateBagConfig:
    """Topics and policies of one bag translation (the CLI's options, validated by :meth:`validate`)."""

    image_topic: str = "/sim/camera/image"
    semantic_topic: str = "/sim/camera/semantic"
    instance_topic: str = "/sim/camera/instance"
    #: topic of the translated images; None = the image topic (replace the input images)
    output_topic: str | None = None
    #: output storage; None = the input's (mcap when it cannot be told)
    storage: str | None = None
    batch: int = 8
    tolerance_s: float = 0.0
    unmatched: str = "copy"
    #: per-topic matcher window (pending messages) of match_triplets
    window: int = 64
    #: buffered input bytes above which a partial batch is translated early
    max_buffer_mb: float = 512.0
    #: None: translated images as raw Image; "jpeg" / "png": CompressedImage on <output topic>/compressed
    compress: str | None = None
    jpeg_quality: int = 95
    png_level: int = 3

    @property
    def out_topic(self) -> str:
        """The topic translated images are written to."""
        base = self.output_topic or self.image_topic
        return f"{base}/compressed" if self.compress else base

    @property
    def replaces_input(self) -> bool:
        """Whether the translated images take the input images' place (no ``--output-topic`` of another name)."""
        return self.output_topic in (None, self.image_topic)

    @property
    def out_type(self) -> str:
        """The message type of the translated images."""
        return COMPRESSED if self.compress else IMAGE

    @property
    def triplet_topics(self) -> list[str]:
        """``[image, semantic, instance]``, the order match_triplets yields them in."""
        return [self.image_topic, self.semantic_topic, self.instance_topic]

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field and what is accepted."""
        for name in ("image_topic", "semantic_topic", "instance_topic"):
            value = getattr(self, name)
            if not value.startswith("/"):
                raise ConfigError(f"{name} must be an absolute topic name starting with '/', got {value!r}")
        if len(set(self.triplet_topics)) != 3:
            raise ConfigError(f"image, semantic and instance topics must differ, got {self.triplet_topics}")
        if self.output_topic is not None:
            if not self.output_topic.startswith("/"):
                raise ConfigError(f"output_topic must be an absolute topic name, got {self.output_topic!r}")
            if self.output_topic in (self.semantic_topic, self.instance_topic):
                raise ConfigError(f"output_topic {self.output_topic!r} would overwrite a label topic")
        if self.storage is not None and self.storage not in STORAGES:
            raise ConfigError(f"storage {self.storage!r} is not valid; expected one of {', '.join(STORAGES)}")
        if self.batch < 1:
            raise ConfigError(f"batch must be >= 1, got {self.batch}")
        if not 0 <= self.tolerance_s < math.inf:
            raise ConfigError(f"--tolerance (tolerance_s) must be a finite number of seconds >= 0, got "
                              f"{self.tolerance_s}")
        if self.unmatched not in UNMATCHED_POLICIES:
            raise ConfigError(f"unmatched policy {self.unmatched!r} is not valid; expected one of "
                              f"{', '.join(UNMATCHED_POLICIES)}")
        if self.window < 1:
            raise ConfigError(f"window must be >= 1, got {self.window}")
        if not 0 < self.max_buffer_mb <= MAX_BUFFER_MB:
            raise ConfigError(f"--max-buffer-mb must be > 0 and <= {MAX_BUFFER_MB:g}, got {self.max_buffer_mb}")
        self._validate_codec()

    def _validate_codec(self) -> None:
        if self.compress not in (None, "jpeg", "png"):
            raise ConfigError(f"compress must be jpeg or png, got {self.compress!r}")
        if not 1 <= self.jpeg_quality <= 100 or not 0 <= self.png_level <= 9:
            raise ConfigError(f"jpeg quality must be 1..100 and png level 0..9, got {self.jpeg_quality}, "
                              f"{self.png_level}")


@dataclass
class TranslateBagResult:
    """What a translation did: frame counts, messages written per topic, match statistics, time."""

    src: Path
    dst: Path
    storage: str
    translated: int = 0
    copied: int = 0
    dropped: int = 0
    messages: dict[str, int] = field(default_factory=dict)
    match: MatchStats = field(default_factory=MatchStats)
    seconds: float = 0.0
    #: most input messages held back at once (waiting for an earlier image's translation or verdict)
    peak_buffered: int = 0

    @property
    def frames(self) -> int:
        """Input images seen (translated + copied + dropped)."""
        return self.translated + self.copied + self.dropped

    def summary(self) -> str:
        """One line: frames translated / copied / dropped, topics, messages, seconds, frames/s."""
        rate = self.translated / self.seconds if self.seconds > 0 else 0.0
        return (f"translated {self.translated} frames, unmatched: {self.copied} copied, {self.dropped} dropped; "
                f"{len(self.messages)} topics, {sum(self.messages.values())} messages written to {self.dst} "
                f"({self.storage}) in {self.seconds:.2f} s ({rate:.1f} frames/s)")


def detect_storage(path: str | Path) -> str | None:
    """``"mcap"`` / ``"sqlite3"`` from a bag directory's storage files or a lone file's suffix; None if unknown."""
    path = Path(path)
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    suffixes = {p.suffix for p in files}
    if ".mcap" in suffixes:
        return "mcap"
    if ".db3" in suffixes:
        return "sqlite3"
    return None


# ------------------------------------------------------------------------------------------------ buffering


@dataclass(frozen=True)
class _Record:
    """One message to write: serialized bytes with the topic, type, bag time and (optional) definition."""

    topic: str
    msgtype: str
    data: bytes | memoryview
    timestamp: int
    msgdef: str | None = None
    rihs01: str | None = None
    qos: tuple[Any, ...] = ()  # the offered QoS profiles of the input connection


@dataclass
class _Slot:
    """A FIFO entry; ``records`` is None while an image waits for translation or its unmatched verdict."""

    nbytes: int
    records: list[_Record] | None = None
    #: image slots only: the input image (for translation and the unmatched policy)
    image: BagMessage | None = None
    raw: bytes | memoryview | None = None
    msgtype: str = ""
    keep_input: _Record | None = None


def _definition(conn: Any) -> tuple[str | None, str | None]:
    """The connection's (msgdef, rihs01) when the bag stores both; else (None, None) = use the typestore."""
    msgdef = getattr(getattr(conn, "msgdef", None), "data", "") or ""
    digest = getattr(conn, "digest", "") or ""
    if msgdef and digest.startswith("RIHS01_"):
        return msgdef, digest
    return None, None


def _encoding(msg: Any) -> str:
    """An Image's encoding, or the original encoding a CompressedImage's format names ("" if none)."""
    if hasattr(msg, "encoding"):
        return str(msg.encoding)
    fmt = str(msg.format)
    return fmt.split(";", maxsplit=1)[0].strip() if ";" in fmt else ""


class _BagTranslation:
    """The streaming state machine of :func:`translate_bag` (one instance per run)."""

    def __init__(self, reader: BagReader, writer: BagWriter, translator: FrameTranslator, *,
                 config: TranslateBagConfig, decoder: LabelDecoder, result: TranslateBagResult,
                 bar: tqdm) -> None:
        self.reader = reader
        self.writer = writer
        self.translator = translator
        self.config = config
        self.decoder = decoder
        self.result = result
        self.bar = bar
        self.types = {name: info.msgtype for name, info in reader.topics.items()}
        self.fifo: deque[_Slot] = deque()
        self.buffered = 0
        self.max_buffered = int(config.max_buffer_mb * 2**20)
        #: images fed to the matcher and not matched yet, in arrival order (mirrors its pending queue)
        self.pending: OrderedDict[int, _Slot] = OrderedDict()
        self.batch: list[tuple[_Slot, tuple[BagMessage, ...]]] = []
        self.unmatched_seen = 0
        #: offered QoS profiles of each input topic (the translated images take the image topic's)
        self.qos: dict[str, tuple[Any, ...]] = {}

    # -- input ---------------------------------------------------------------------------------------------
    def feed(self) -> Iterator[BagMessage]:
        """Queue every message of the bag; yield those of the triplet topics, deserialized, to the matcher."""
        cfg = self.config
        triplet = set(cfg.triplet_topics)
        typestore = self.reader.typestore
        for conn, timestamp, raw in self.reader.raw_messages():
            self.reconcile_unmatched()
            msgdef, rihs01 = _definition(conn)
            qos = tuple(getattr(conn.ext, "offered_qos_profiles", ()) or ())
            self.qos.setdefault(conn.topic, qos)
            copy = _Record(conn.topic, conn.msgtype, raw, int(timestamp), msgdef, rihs01, qos)
            if conn.topic not in triplet:
                self.push(_Slot(len(raw), [copy]))
                continue
            try:
                msg = typestore.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:
                raise BagError(f"cannot deserialise a {conn.msgtype} message on {conn.topic} at t={timestamp} ns "
                               f"in {self.reader.path}: {exc}") from exc
            message = BagMessage(conn.topic, int(timestamp), msg)
            if conn.topic == cfg.image_topic:
                keep = None if cfg.replaces_input else copy
                slot = _Slot(len(raw), None, message, raw, conn.msgtype, keep)
                self.pending[id(message)] = slot
                self.push(slot)
            else:
                self.push(_Slot(len(raw), [copy]))
            yield message

    def push(self, slot: _Slot) -> None:
        """Append to the FIFO (translating a partial batch early past ``max_buffer_mb``) and flush."""
        self.fifo.append(slot)
        self.buffered += slot.nbytes
        if self.buffered > self.max_buffered and self.batch:
            self.run_batch()
        self.flush()
        self.result.peak_buffered = max(self.result.peak_buffered, len(self.fifo))

    # -- matching ------------------------------------------------------------------------------------------
    def matched(self, triplet: tuple[BagMessage, ...]) -> None:
        """A complete (image, semantic, instance) set: queue the image for the next batch."""
        slot = self.pending.pop(id(triplet[0]), None)
        if slot is None:  # cannot happen unless match_triplets changes its contract
            raise BagError(f"internal error: matched image at stamp {triplet[0].stamp_ns} ns was not pending")
        self.reconcile_unmatched()
        self.batch.append((slot, triplet))
        if len(self.batch) >= self.config.batch:
            self.run_batch()
        self.flush()

    def reconcile_unmatched(self) -> None:
        """match_triplets drops pending images oldest-first and counts them; resolve as many of ours."""
        count = self.result.match.unmatched.get(self.config.image_topic, 0)
        for _ in range(count - self.unmatched_seen):
            _, slot = self.pending.popitem(last=False)
            self.resolve_unmatched(slot)
        self.unmatched_seen = count

    def resolve_unmatched(self, slot: _Slot) -> None:
        """Apply ``--unmatched`` (copy / drop / error) to an image the matcher gave up on."""
        cfg = self.config
        assert slot.image is not None and slot.raw is not None
        records = [slot.keep_input] if slot.keep_input is not None else []
        if cfg.unmatched == "error":
            raise BagError(f"image on {cfg.image_topic} with stamp {slot.image.stamp_ns} ns (bag time "
                           f"{slot.image.timestamp_ns} ns) in {self.reader.path} has no {cfg.semantic_topic} + "
                           f"{cfg.instance_topic} within {cfg.tolerance_s} s (--unmatched error)")
        if cfg.unmatched == "copy":
            if slot.msgtype == cfg.out_type == IMAGE:
                records.append(_Record(cfg.out_topic, IMAGE, slot.raw, slot.image.timestamp_ns,
                                       qos=self.qos.get(cfg.image_topic, ())))
            else:  # another type than the output topic's: decoded, untranslated, in the output's type
                records.append(self.image_record(slot.image, self.converted(slot.image, lambda m: to_rgb8(m.msg))))
            self.result.copied += 1
        else:
            self.result.dropped += 1
        slot.records = records
        slot.image = slot.raw = None
        self.bar.update(1)
        self.flush()

    # -- translation ---------------------------------------------------------------------------------------
    def converted(self, message: BagMessage, convert: Any) -> np.ndarray:
        """``convert(message)``; an ImageConversionError names the bag, the topic and the stamp."""
        try:
            return convert(message)
        except ImageConversionError as exc:
            raise ImageConversionError(f"{message.topic} message with stamp {message.stamp_ns} ns (bag time "
                                       f"{message.timestamp_ns} ns) in {self.reader.path}: {exc}") from exc

    def decode(self, triplet: tuple[BagMessage, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb (H, W, 3) uint8, semantic (H, W) uint8, instance (H, W) uint16) of a matched set."""
        img, sem, ins = triplet
        rgb = self.converted(img, lambda m: to_rgb8(m.msg))
        raw_sem = self.converted(sem, lambda m: decode_image(self.types[m.topic], m.msg))
        raw_ins = self.converted(ins, lambda m: decode_image(self.types[m.topic], m.msg))
        try:
            semantic, instance = self.decoder(raw_sem, _encoding(sem.msg), raw_ins, _encoding(ins.msg))
        except LabelError as exc:
            raise LabelError(f"labels of the frame with stamp {img.stamp_ns} ns in {self.reader.path}: {exc}"
                             ) from exc
        if semantic.shape != rgb.shape[:2] or instance.shape != rgb.shape[:2]:
            raise LabelError(f"frame with stamp {img.stamp_ns} ns in {self.reader.path}: semantic "
                             f"{semantic.shape} / instance {instance.shape} differ from the image size "
                             f"{rgb.shape[:2]}")
        return rgb, semantic, instance

    def run_batch(self) -> None:
        """Translate the queued frames (consecutive frames of one size go through the network together)."""
        items, self.batch = self.batch, []
        decoded = [self.decode(triplet) for _, triplet in items]
        start = 0
        while start < len(items):
            end = start + 1
            while end < len(items) and decoded[end][0].shape == decoded[start][0].shape:
                end += 1
            group = decoded[start:end]
            out = self.translator.translate(np.stack([d[0] for d in group]), np.stack([d[1] for d in group]),
                                            np.stack([d[2] for d in group]))
            for (slot, triplet), frame in zip(items[start:end], out, strict=True):
                records = [slot.keep_input] if slot.keep_input is not None else []
                records.append(self.image_record(triplet[0], frame))
                slot.records = records
                slot.image = slot.raw = None
                self.result.translated += 1
            self.bar.update(end - start)
            start = end

    def image_record(self, image: BagMessage, rgb: np.ndarray) -> _Record:
        """An rgb8 Image of ``rgb`` (or its jpeg / png CompressedImage with ``--compress``) with ``image``'s
        header, at ``image``'s bag time, on the output topic."""
        cfg = self.config
        header = image.msg.header
        stamp_ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        types = self.writer.typestore.types
        out_header = self.writer.header(stamp_ns, str(header.frame_id))
        rgb = np.ascontiguousarray(rgb)
        if cfg.compress:
            packed = array_to_compressed(rgb, "rgb8", cfg.compress, cfg.jpeg_quality, png_level=cfg.png_level)
            msg = types[COMPRESSED](header=out_header, format=packed.format,
                                    data=np.frombuffer(bytes(packed.data), dtype=np.uint8))
        else:
            msg = types[IMAGE](header=out_header, **image_fields(rgb, "rgb8", data_type="numpy"))
        data = self.writer.typestore.serialize_cdr(msg, cfg.out_type)
        return _Record(cfg.out_topic, cfg.out_type, data, image.timestamp_ns, qos=self.qos.get(cfg.image_topic, ()))

    # -- output --------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the FIFO's ready head, in input order."""
        while self.fifo and self.fifo[0].records is not None:
            slot = self.fifo.popleft()
            self.buffered -= slot.nbytes
            for rec in slot.records or ():
                self.writer.write_raw(rec.topic, rec.msgtype, rec.data, rec.timestamp, msgdef=rec.msgdef,
                                      rihs01=rec.rihs01, another_type_ok=True,  # copies keep every connection
                                      offered_qos=rec.qos)
                self.result.messages[rec.topic] = self.result.messages.get(rec.topic, 0) + 1

    def run(self) -> None:
        """Stream the whole bag through matcher, batches and FIFO; everything is written when it returns."""
        cfg = self.config
        for triplet in match_triplets(self.feed(), cfg.triplet_topics, round(cfg.tolerance_s * 1e9),
                                      self.result.match, window=cfg.window):
            self.matched(triplet)
        self.reconcile_unmatched()
        while self.pending:  # match_triplets counted these at the end; be exhaustive anyway
            _, slot = self.pending.popitem(last=False)
            self.resolve_unmatched(slot)
        if self.batch:
            self.run_batch()
        self.flush()
        if self.fifo:
            raise BagError(f"internal error: {len(self.fifo)} messages of {self.reader.path} were never written")


def _staging(dst: Path) -> tuple[Path, int]:
    """Create and lock ``.<name>.partial`` beside ``dst`` (removing one a killed run left); (its path, lock fd).
    BagError when it cannot be created or another live run holds it."""
    staging = dst.parent / f".{dst.name}.partial"
    if staging.is_dir():
        with contextlib.suppress(BagError):  # locked: another run is writing; the mkdir below then says so
            os.close(lock_bag(staging))
            shutil.rmtree(staging)  # a killed run's partial output: start over
    try:
        staging.mkdir(parents=True)
    except FileExistsError as exc:
        raise BagError(f"{dst} is being written by another live run ({staging} is locked)") from exc
    except OSError as exc:
        raise BagError(f"cannot create the output {dst}: {exc.strerror or exc}") from exc
    return staging, lock_bag(staging)


def translate_bag(src: str | Path, dst: str | Path, translator: FrameTranslator,
                  config: TranslateBagConfig = TranslateBagConfig(), *,
                  label_decoder: LabelDecoder = canonical_labels, progress: bool = True) -> TranslateBagResult:
    """Write a new bag ``dst``: ``src`` with its images translated by ``translator`` (see the module docstring).

    ``dst`` appears only once complete (written beside it as ``.<name>.partial/<name>`` and renamed); on any
    error the partial output is removed.

    Raises:
        ConfigError: an invalid ``config`` field.
        BagError: ``dst`` exists or cannot be created, ``src`` is missing / corrupt / lacks a topic (the message
            lists the topics it has) / has a triplet topic of several types, the output topic collides with an
            existing one, or ``--unmatched error`` met an image without labels.
        BagWriteError: the output could not be written (disk full, file too large, I/O error).
        LabelError, ImageConversionError: a frame's labels or image cannot be decoded (names bag, topic, stamp).
    """
    config.validate()
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise BagError(f"refusing to overwrite {dst}: it exists already (choose another output path)")
    t0 = time.perf_counter()
    with BagReader(src) as reader:
        reader.require_topics(config.triplet_topics, IMAGE_TYPES)
        topics = reader.topics
        if config.out_topic != config.image_topic and config.out_topic in topics:
            raise BagError(f"output topic {config.out_topic!r} exists in {src} already "
                           f"({topics[config.out_topic].msgtype}); choose another --output-topic")
        storage = config.storage or detect_storage(src) or "mcap"
        result = TranslateBagResult(src=src, dst=dst, storage=storage)
        staging, lock = _staging(dst)
        writer = BagWriter(staging / dst.name, storage=storage)
        try:
            writer.open()
            with tqdm(total=topics[config.image_topic].count, unit="frame", desc="translate", disable=not progress,
                      dynamic_ncols=True, file=sys.stderr) as bar:
                _BagTranslation(reader, writer, translator, config=config, decoder=label_decoder, result=result,
                                bar=bar).run()
            writer.close()
            if dst.exists():
                raise BagError(f"{dst} appeared while it was being written; the translation is not kept")
            os.rename(staging / dst.name, dst)
        except BagWriteError as exc:
            writer.abort()
            raise BagWriteError(f"cannot write {dst} (the partial output was removed): {exc}") from exc
        except BaseException:
            writer.abort()  # never raises: the cleanup below always runs
            raise
        finally:
            os.close(lock)
            shutil.rmtree(staging, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    """The ``sim2real-translate-bag`` argument parser."""
    from sim2real.translator.inference import PRECISIONS

    d = TranslateBagConfig()
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="simulator bag (directory with metadata.yaml, or a .mcap/.db3)")
    p.add_argument("output", metavar="OUT", help="bag directory to create (must not exist)")
    p.add_argument("--model", required=True, help="generator checkpoint (.safetensors)")
    p.add_argument("--image-topic", default=d.image_topic, help=f"RGB image topic (default {d.image_topic})")
    p.add_argument("--semantic-topic", default=d.semantic_topic, help=f"default {d.semantic_topic}")
    p.add_argument("--instance-topic", default=d.instance_topic, help=f"default {d.instance_topic}")
    p.add_argument("--output-topic", default=None,
                   help="topic of the translated images (default: the image topic, replacing the input images; "
                        "another name keeps the input images too)")
    p.add_argument("--storage", choices=sorted(STORAGES), default=None, help="output storage (default: the input's)")
    p.add_argument("--batch", type=int, default=d.batch, help=f"frames per inference batch (default {d.batch})")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default: bf16/fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16")
    p.add_argument("--tolerance", type=float, default=d.tolerance_s,
                   help="header-stamp matching tolerance in seconds (default 0: exact)")
    p.add_argument("--unmatched", choices=UNMATCHED_POLICIES, default=d.unmatched,
                   help="images without labels: copy unchanged (default), drop, or error")
    p.add_argument("--adapter", default=None,
                   help="decode the labels with this sim-bridge adapter (e.g. carla); default: canonical labels")
    p.add_argument("--window", type=int, default=d.window, help=f"matcher window per topic (default {d.window})")
    p.add_argument("--max-buffer-mb", type=float, default=d.max_buffer_mb,
                   help=f"buffered input above which a partial batch is translated (default {d.max_buffer_mb:g})")
    p.add_argument("--compress", choices=("jpeg", "png"), default=None,
                   help="write the translated images as sensor_msgs/CompressedImage on <output topic>/compressed")
    p.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality, help=f"with --compress jpeg (default "
                                                                            f"{d.jpeg_quality})")
    p.add_argument("--png-level", type=int, default=d.png_level, help=f"with --compress png (default {d.png_level})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sim2real-translate-bag``: 0 done, 2 user error (argument, input bag or frame, model,
    output path), 1 the output could not be written (disk full, I/O error). One line on stderr, no traceback."""
    args = build_parser().parse_args(argv)
    config = TranslateBagConfig(
        image_topic=args.image_topic, semantic_topic=args.semantic_topic, instance_topic=args.instance_topic,
        output_topic=args.output_topic, storage=args.storage, batch=args.batch, tolerance_s=args.tolerance,
        unmatched=args.unmatched, window=args.window, max_buffer_mb=args.max_buffer_mb, compress=args.compress,
        jpeg_quality=args.jpeg_quality, png_level=args.png_level)
    try:
        config.validate()
        decoder: LabelDecoder = canonical_labels if args.adapter is None else adapter_label_decoder(args.adapter)
        if Path(args.output).exists():  # before the model loads: fail fast
            raise BagError(f"refusing to overwrite {args.output}: it exists already (choose another OUT)")
        from sim2real.translator.inference import Translator

        translator = Translator.from_checkpoint(args.model, device=args.device, precision=args.precision)
        result = translate_bag(args.input, args.output, translator, config, label_decoder=decoder,
                               progress=not args.no_progress)
    except ConfigError as exc:
        print(f"{PROG}: invalid argument: {exc}", file=sys.stderr)
        return 2
    except BagWriteError as exc:
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except Sim2RealError as exc:  # BagError, CheckpointError (names the file), LabelError, ImageConversionError
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an I/O failure no layer below named (e.g. the model file's disk)
        print(f"{PROG}: I/O error: {exc}", file=sys.stderr)
        return 1
    print(f"matching: {result.match.summary()}")
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
