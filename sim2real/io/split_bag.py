"""A rosbag2 recording that survives a kill or a full disk: written as a series of time-bounded splits.

Layout of ``BAG`` while it is written (``NAME`` = the directory's name)::

    BAG/metadata.yaml     lists the closed, verified splits only; absent until the first one is closed (a bag
                          closed without any message gets one empty split)
    BAG/NAME_<k>.<ext>    closed splits: complete storage files (sqlite3 committed, mcap with its summary)
    BAG/NAME_<k>/         the split being written (a rosbags bag of its own, see BagWriter)

A split is opened by the first message after the previous one closed and closed ``split_seconds`` later (on the
writer's monotonic clock; :meth:`SplitBagWriter.poll` closes it on time when no message comes). Closing a split:
finish it with rosbags, read every message back and compare the counts per topic with what was written, fsync
it, move its storage file into ``BAG``, and only then rewrite ``BAG/metadata.yaml`` (temporary file, fsync,
rename). So at every moment ``BAG`` is a readable bag whose metadata.yaml claims exactly the messages its files
hold, and a SIGKILL (or a power cut) loses at most the messages written in the last ``split_seconds`` plus the
time one split takes to close. The unfinished split stays in ``BAG/NAME_<k>/`` for ``sim2real-bag-repair``,
which recovers its complete mcap chunks (the rosbags sqlite3 writer commits a split only when it closes).

A storage failure (disk full, file too large, I/O error) raises :class:`BagWriteError`; the split being written
is aborted (left unfinished, not listed) and the writer takes no more messages; the closed splits stay listed.
While it is open the writer holds an exclusive ``flock`` on ``BAG`` (released by the kernel when the process
dies), which the repair tool checks so it never touches a live recording.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NoReturn

from sim2real.core.errors import BagError, BagWriteError
from sim2real.io.bag_index import (
    STORAGE_SUFFIXES,
    FileIndex,
    count_messages,
    fsync_path,
    index_storage_file,
    write_metadata,
)
from sim2real.io.bag_writer import STORAGE_ERRORS, STORAGES, BagWriter, storage_failure

__all__ = ["DEFAULT_SPLIT_SECONDS", "SplitBagWriter", "lock_bag"]

#: default split length: the most a kill can lose (plus the time a split takes to close)
DEFAULT_SPLIT_SECONDS: Final = 10.0


def lock_bag(path: Path) -> int:
    """An exclusive, non-blocking ``flock`` on the directory ``path``; returns the descriptor to keep open.
    BagError when another live process holds it (a recorder still writing the bag)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise BagError(f"{path} is being written by a live process (it holds the bag's lock)") from exc
    return fd


class SplitBagWriter:
    """Writes one bag as closed-and-verified splits (module docstring). Used from one thread; a context manager.

    ``durable`` counts, per topic, the messages of the closed splits, which metadata.yaml lists; ``pending`` those
    of the split being written.
    """

    def __init__(self, path: str | os.PathLike[str], storage: str = "mcap", *,
                 split_seconds: float = DEFAULT_SPLIT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}; valid: {', '.join(STORAGES)}")
        if not 0 < split_seconds < float("inf"):
            raise BagError(f"split_seconds must be a positive number of seconds, got {split_seconds}")
        self.path = Path(path)
        self.storage = storage
        self.split_seconds = float(split_seconds)
        self.durable: Counter[str] = Counter()
        self.failure: BagWriteError | None = None
        self._clock = clock
        self._files: list[FileIndex] = []
        self._split: BagWriter | None = None
        self._split_deadline = 0.0
        self._lock_fd: int | None = None

    @property
    def pending(self) -> Counter[str]:
        """Messages per topic written to the split that is still open (lost if the process dies now)."""
        return Counter(self._split.counts) if self._split is not None else Counter()

    @property
    def splits(self) -> list[str]:
        """File names of the closed splits, in order."""
        return [f.name for f in self._files]

    # ------------------------------------------------------------------ life cycle
    def open(self) -> SplitBagWriter:
        """Create ``BAG`` (refusing an existing path) and lock it."""
        if self.path.exists():
            raise BagError(f"refusing to overwrite {self.path}: it exists already (choose another output)")
        try:
            self.path.mkdir(parents=True)
        except OSError as exc:
            raise BagError(f"cannot create bag {self.path}: {exc.strerror or exc}") from exc
        self._lock_fd = lock_bag(self.path)
        return self

    def close(self) -> None:
        """Close the open split (read back, listed in metadata.yaml) and release the bag; a bag that got no
        message is closed as one empty split, so it is a readable (empty) bag. Idempotent.
        Raises BagWriteError if that split cannot be finished: it is then left unfinished and not listed."""
        if self._lock_fd is None:
            return
        try:
            if self.failure is not None:
                raise self.failure
            if self._split is None and not self._files:
                self._open_split()
            self._close_split()
        finally:
            self._unlock()

    def abort(self) -> None:
        """Leave the open split unfinished (not listed) and release the bag; metadata.yaml keeps the closed
        splits. Never raises."""
        if self._split is not None:
            self._split.abort()
            self._split = None
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> SplitBagWriter:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:
            with contextlib.suppress(BagError):
                self.close()

    # ------------------------------------------------------------------ writing
    def write_raw(self, topic: str, msgtype: str, rawdata: bytes | memoryview, timestamp: int, *,
                  msgdef: str | None = None, rihs01: str | None = None, offered_qos: Sequence[Any] = ()) -> None:
        """Write serialized CDR bytes (see :meth:`BagWriter.write_raw`, ``offered_qos`` too) to the open split,
        opening one (and closing a due one) first. BagWriteError when the storage fails; BagError for a
        per-message problem (a topic written with another type), which leaves the bag usable."""
        if self.failure is not None:
            raise self.failure
        if self._lock_fd is None:
            raise BagError(f"bag {self.path} is not open for writing")
        self.poll()
        if self._split is None:
            self._open_split()
        assert self._split is not None
        try:
            self._split.write_raw(topic, msgtype, rawdata, timestamp, msgdef=msgdef, rihs01=rihs01,
                                  offered_qos=offered_qos)
        except BagWriteError as exc:
            self._fail(exc)

    def poll(self) -> float | None:
        """Close the open split if its time is up; return the seconds until the open split is due (None: none
        open). Call it at least that often when no message arrives."""
        if self._split is None or self.failure is not None:
            return None
        left = self._split_deadline - self._clock()
        if left > 0:
            return left
        self._close_split()
        return None

    # ------------------------------------------------------------------ splits
    def _split_name(self) -> str:
        return f"{self.path.name}_{len(self._files)}"

    def _open_split(self) -> None:
        split = BagWriter(self.path / self._split_name(), storage=self.storage)
        try:
            split.open()
        except BagError as exc:  # the bag directory itself became unwritable (full, removed, read-only)
            self._fail(BagWriteError(f"cannot start a new split of {self.path}: {exc}"))
        self._split = split
        self._split_deadline = self._clock() + self.split_seconds

    def _close_split(self) -> None:
        """Finish, verify, fsync and move the open split into the bag, then list it in metadata.yaml."""
        split, self._split = self._split, None
        if split is None:
            return
        suffix = STORAGE_SUFFIXES[self.storage]
        written = Counter(split.counts)
        try:
            split.close()
            stored = split.path / f"{split.path.name}{suffix}"
            found = count_messages(split.path)
            if found != written:
                raise BagWriteError(f"split {stored} holds {dict(found)} messages per topic, {dict(written)} were "
                                    "written")
            fsync_path(stored)
            final = self.path / stored.name
            os.replace(stored, final)
            fsync_path(self.path)
            files = [*self._files, index_storage_file(final)]
            write_metadata(self.path, self.storage, files)
        except BagWriteError as exc:
            self._fail(exc)
        except BagError as exc:
            self._fail(BagWriteError(f"cannot finish split {split.path}: {exc}"))
        except STORAGE_ERRORS as exc:
            self._fail(storage_failure(split.path, "finish a split of", exc))
        self._files = files
        self.durable.update(written)
        shutil.rmtree(split.path, ignore_errors=True)  # only rosbags' metadata.yaml of the split is left there

    def _fail(self, exc: BagWriteError) -> NoReturn:
        """Record the failure, abort the open split (left for repair) and raise."""
        self.failure = exc
        if self._split is not None:
            self._split.abort()
            self._split = None
        raise exc
