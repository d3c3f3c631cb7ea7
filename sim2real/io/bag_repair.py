"""Repair a recording whose writer was killed (or whose disk filled up): make it a complete, readable bag.

What :func:`repair_bag` does to ``BAG`` (a directory; refused while a live writer holds its lock):

* every storage file (``BAG/*.mcap|*.db3``, and the unfinished split ``BAG/NAME_<k>/NAME_<k>.<ext>`` that
  :class:`sim2real.io.split_bag.SplitBagWriter` leaves) is checked: rosbags must open it and read every message.
* an mcap file that is cut short (no summary, a partial record at the end) is *salvaged*: its complete records
  (schemas, channels, whole chunks of messages) are copied to a new file that is given an end (DataEnd + footer),
  and kept if rosbags reads it back; the cut record is lost. An sqlite3 file with a journal left by the killed
  writer is opened once with sqlite3 so the journal is rolled back (the rosbags writer commits only when it
  closes: a killed sqlite3 split has no message left, and is removed).
* files that hold no message, or that cannot be read even after salvage, are not listed (an unreadable file is
  left in place and reported; an empty unfinished split is removed).
* ``BAG/metadata.yaml`` is rewritten from the files themselves (:func:`sim2real.io.bag_index.write_metadata`).

Nothing outside ``BAG`` is touched; a file is only replaced by a salvaged copy that was read back completely.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

import yaml

from sim2real.core.errors import BagError
from sim2real.io.bag_index import (
    STORAGE_SUFFIXES,
    FileIndex,
    count_messages,
    fsync_path,
    index_storage_file,
    write_metadata,
)
from sim2real.io.split_bag import lock_bag

__all__ = ["RepairReport", "repair_bag", "salvage_mcap"]

MCAP_MAGIC: Final = b"\x89MCAP0\r\n"
_OP_MESSAGE, _OP_CHUNK, _OP_DATA_END, _OP_FOOTER = 0x05, 0x06, 0x0F, 0x02
_RECORD_HEAD: Final = struct.Struct("<BQ")
#: name prefix of a salvaged copy being written (a repair killed meanwhile leaves it; the next one removes it)
SALVAGE_PREFIX: Final = ".salvage-"


@dataclass
class RepairReport:
    """What a repair found and did."""

    path: Path
    storage: str
    listed: list[str] = field(default_factory=list)
    salvaged: dict[str, int] = field(default_factory=dict)  # file -> messages recovered from a cut file
    removed: list[str] = field(default_factory=list)  # empty unfinished splits
    unreadable: dict[str, str] = field(default_factory=dict)  # file -> reason (left in place, not listed)
    counts: Counter[str] = field(default_factory=Counter)
    before: int | None = None  # message count the old metadata.yaml claimed (None: there was none)

    def summary(self) -> str:
        """One line per thing done, then the totals."""
        lines = [f"salvaged {n} messages from the cut file {f}" for f, n in self.salvaged.items()]
        lines += [f"removed {f}: it holds no message" for f in self.removed]
        lines += [f"not listed: {f}: {why}" for f, why in self.unreadable.items()]
        claimed = "none" if self.before is None else f"{self.before} messages"
        lines.append(f"{self.path}: {len(self.listed)} files, {sum(self.counts.values())} messages "
                     f"({', '.join(f'{t}={n}' for t, n in sorted(self.counts.items())) or 'none'}); "
                     f"metadata.yaml before: {claimed}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ mcap salvage


def _complete_records_end(bio: BinaryIO, size: int) -> tuple[int, int]:
    """Offset after the last complete data-section record, and the number of complete message/chunk records."""
    bio.seek(0)
    if bio.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
        return 0, 0
    end, records = len(MCAP_MAGIC), 0
    while end + _RECORD_HEAD.size <= size:
        bio.seek(end)
        opcode, length = _RECORD_HEAD.unpack(bio.read(_RECORD_HEAD.size))
        if opcode in (_OP_DATA_END, _OP_FOOTER) or end + _RECORD_HEAD.size + length > size:
            break  # the data section ends here, or the record was cut
        end += _RECORD_HEAD.size + length
        records += opcode in (_OP_MESSAGE, _OP_CHUNK)
    return end, records


def salvage_mcap(src: Path, dst: Path) -> int:
    """Copy the complete records of the cut mcap file ``src`` to ``dst`` and end it (DataEnd, footer without a
    summary, magic); return the messages rosbags reads from it (0, and no ``dst``, when ``src`` holds no complete
    message or chunk). BagError (``dst`` removed) when the copy cannot be read back."""
    size = src.stat().st_size
    with open(src, "rb") as bio:
        end, records = _complete_records_end(bio, size)
        if not records:
            return 0
        with open(dst, "wb") as out:
            _copy_prefix(bio, out, end)
            out.write(_RECORD_HEAD.pack(_OP_DATA_END, 4) + struct.pack("<I", 0))
            out.write(_RECORD_HEAD.pack(_OP_FOOTER, 20) + struct.pack("<QQI", 0, 0, 0) + MCAP_MAGIC)
            out.flush()
            os.fsync(out.fileno())
    try:
        return sum(count_messages(dst).values())
    except BagError:
        dst.unlink(missing_ok=True)
        raise


def _copy_prefix(src: BinaryIO, dst: BinaryIO, n: int, block: int = 1 << 20) -> None:
    """Copy the first ``n`` bytes of ``src`` (from its start) to ``dst``."""
    src.seek(0)
    while n > 0:
        data = src.read(min(block, n))
        if not data:
            break
        dst.write(data)
        n -= len(data)


# ------------------------------------------------------------------------------------------------ the repair


def _split_order(path: Path) -> tuple[int, str]:
    match = re.search(r"_(\d+)$", path.stem)
    return (int(match.group(1)) if match else -1, path.name)


def _detect_storage(bag: Path) -> str:
    meta = bag / "metadata.yaml"
    if meta.is_file():
        with contextlib.suppress(yaml.YAMLError, OSError, TypeError, KeyError):
            storage = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]["storage_identifier"]
            if storage in STORAGE_SUFFIXES:
                return str(storage)
    found = {name for name, suffix in STORAGE_SUFFIXES.items()
             if any(bag.glob(f"*{suffix}")) or any(bag.glob(f"*/*{suffix}"))}
    if len(found) != 1:
        what = "no .mcap or .db3 file" if not found else "both .mcap and .db3 files"
        raise BagError(f"cannot tell the storage of {bag}: it holds {what}")
    return found.pop()


def _claimed(bag: Path) -> int | None:
    with contextlib.suppress(Exception):
        return int(yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["message_count"])
    return None


def _roll_back_sqlite(db: Path) -> None:
    """Open an sqlite3 file read-write once, so a hot journal left by a killed writer is rolled back."""
    if (db.parent / f"{db.name}-journal").exists() or (db.parent / f"{db.name}-wal").exists():
        conn = sqlite3.connect(db)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()


def _readable(path: Path) -> bool:
    try:
        index_storage_file(path)
    except BagError:
        return False
    return True


def _check_file(path: Path, storage: str, report: RepairReport, label: str) -> FileIndex | None:
    """Index ``path`` if every message reads back, salvaging a cut mcap file first; None (reported under
    ``label``) when it cannot be listed."""
    if storage == "sqlite3":
        with contextlib.suppress(sqlite3.Error):
            _roll_back_sqlite(path)
    try:
        index = index_storage_file(path)
        if sum(count_messages(path).values()) != index.message_count:
            raise BagError(f"{path}: fewer messages read than its index states")
        return index
    except BagError as exc:
        if storage != "mcap":
            report.unreadable[label] = str(exc)
            return None
    tmp = path.with_name(f"{SALVAGE_PREFIX}{path.name}")
    try:
        recovered = salvage_mcap(path, tmp)
    except BagError as exc:
        report.unreadable[label] = f"cut and not salvageable: {exc}"
        return None
    if not recovered:  # the writer was killed before it wrote a whole chunk: nothing to lose
        return FileIndex(path.name, 0, 0)
    report.salvaged[label] = recovered
    os.replace(tmp, path)
    return index_storage_file(path)


def _finish_unfinished_splits(bag: Path, storage: str, report: RepairReport) -> None:
    """Move each unfinished split's storage file (salvaged) into ``bag``, or remove the split when empty."""
    suffix = STORAGE_SUFFIXES[storage]
    for stale in bag.glob(f"**/{SALVAGE_PREFIX}*"):
        stale.unlink()
    for split in sorted((d for d in bag.iterdir() if (d / f"{d.name}{suffix}").is_file()), key=_split_order):
        stored = split / f"{split.name}{suffix}"
        label = str(stored.relative_to(bag))
        if (bag / stored.name).exists():
            report.unreadable[label] = f"{stored.name} exists in {bag} already"
            continue
        index = _check_file(stored, storage, report, label)
        if index is None:
            continue
        if index.message_count:
            os.replace(stored, bag / stored.name)
        else:
            report.removed.append(label)
        shutil.rmtree(split)
    for empty in [d for d in bag.iterdir() if d.is_dir() and re.fullmatch(rf"{re.escape(bag.name)}_\d+", d.name)
                  and not any(f.suffix in STORAGE_SUFFIXES.values() for f in d.iterdir())]:
        shutil.rmtree(empty)  # an unfinished split whose storage file was never created
        report.removed.append(empty.name)


def _index_files(bag: Path, storage: str, report: RepairReport) -> list[FileIndex]:
    """Index every storage file in ``bag`` (salvaging cut mcap files, removing those without a whole chunk)."""
    files = []
    suffix = STORAGE_SUFFIXES[storage]
    for stored in sorted((f for f in bag.glob(f"*{suffix}") if not f.name.startswith(".")), key=_split_order):
        index = _check_file(stored, storage, report, stored.name)
        if index is None:
            continue
        if not index.message_count and storage == "mcap" and not _readable(stored):
            stored.unlink()  # a cut file without one whole chunk
            report.removed.append(stored.name)
            continue
        files.append(index)
        for key, count in index.counts.items():
            report.counts[key[0]] += count
    return files


def repair_bag(path: str | Path) -> RepairReport:
    """Make the killed recording ``path`` a readable bag (see the module docstring); return what was done.

    Raises BagError: not a directory, a live writer holds it, or its storage cannot be told. OSError when the
    disk fails while the repair writes.
    """
    bag = Path(path)
    if not bag.is_dir():
        raise BagError(f"{bag} is not a bag directory")
    lock = lock_bag(bag)
    try:
        storage = _detect_storage(bag)
        report = RepairReport(bag, storage, before=_claimed(bag))
        _finish_unfinished_splits(bag, storage, report)
        files = _index_files(bag, storage, report)
        write_metadata(bag, storage, files)
        fsync_path(bag)
        report.listed = [f.name for f in files]
        return report
    finally:
        os.close(lock)
