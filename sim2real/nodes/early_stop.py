"""The stop signal a node receives before it installs its own handlers (standard library only, so that
:mod:`sim2real.nodes.start` can install it before any heavy import, and :mod:`sim2real.nodes.common` can read it).
"""

from __future__ import annotations

import signal
import threading

__all__ = ["RECEIVED", "STOPPED_BEFORE_START", "catch_stop_signals"]

#: Set when SIGINT or SIGTERM arrived before the node installed its own handlers.
STOPPED_BEFORE_START = threading.Event()
#: Those signals' numbers, in order of arrival (a node that counts signals replays them).
RECEIVED: list[int] = []


def _record(signum: int, _frame: object) -> None:
    RECEIVED.append(signum)
    STOPPED_BEFORE_START.set()


def catch_stop_signals() -> None:
    """From now on SIGINT / SIGTERM only set :data:`STOPPED_BEFORE_START` (until the node installs its own)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _record)
