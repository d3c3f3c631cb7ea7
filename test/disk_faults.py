"""Real write failures for tests, without root: a per-file size limit and a full (tiny tmpfs) disk.

* :func:`file_size_limit` -- a ``preexec_fn`` that sets ``RLIMIT_FSIZE`` in the child: any write that would grow
  a file past the limit fails with ``EFBIG`` (Python ignores SIGXFSZ, so the write returns the error instead of
  killing the process). Portable (Linux, macOS); per file, not per disk.
* :func:`full_disk_command` -- wraps a command so it runs in a private user + mount namespace (``unshare -rm``)
  with a tmpfs of a few MiB mounted at ``mount``: writes past its size fail with ``ENOSPC``, as on a full disk.
  The tmpfs vanishes with the namespace, so the wrapper copies it to ``keep`` after the command and exits with
  the command's status. :func:`full_disk_available` says whether this machine allows it (unprivileged user
  namespaces); tests that need it skip otherwise.
"""

from __future__ import annotations

import functools
import resource
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path


def file_size_limit(limit_bytes: int) -> Callable[[], None]:
    """A ``preexec_fn`` limiting every file the child writes to ``limit_bytes``."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


@functools.cache
def full_disk_available() -> bool:
    """True when ``unshare -rm`` can mount a tmpfs here."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True, timeout=30)
    return probe.returncode == 0


def full_disk_command(cmd: Sequence[str], mount: Path, keep: Path, size: str = "4m") -> list[str]:
    """``cmd`` run with a ``size`` tmpfs mounted at ``mount`` (an existing empty directory); afterwards the tmpfs'
    content is copied to ``keep`` (created) and the wrapper exits with ``cmd``'s status."""
    script = (f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(mount))} || exit 97; "
              f"{shlex.join(cmd)}; rc=$?; mkdir -p {shlex.quote(str(keep))}; "
              f"cp -a {shlex.quote(str(mount))}/. {shlex.quote(str(keep))}/; exit $rc")
    return ["unshare", "-rm", "sh", "-c", script]
