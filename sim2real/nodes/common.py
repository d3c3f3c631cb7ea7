"""Helpers every sim2real node shares: parameter descriptors, the spin-until-signal loop, guarded worker
threads, and the entry point.

No zombies: the executor's thread and every thread started with :func:`guarded_thread` are watched; when one
of them dies of an unexpected exception, :func:`spin_until_signal` stops the node as it would on SIGINT
(``on_stop`` runs, final statistics are written), logs one FATAL line naming the thread and the exception,
and the entry point exits with status 1, so a launch that treats the node as essential stops too. Signals:
rclpy's own handlers are off (:func:`run_node` passes ``SignalHandlerOptions.NO``), so SIGINT / SIGTERM only
set an event and the context (and its ``/rosout`` publisher) stays valid until the node has logged its last
line: a stop prints no traceback and no rosout warning.
"""

from __future__ import annotations

import faulthandler
import functools
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, Final, NoReturn

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from sim2real.nodes.early_stop import STOPPED_BEFORE_START

__all__ = ["OrderlyMultiThreadedExecutor", "check_writable_file", "descriptor", "guarded_thread",
           "read_only_descriptor", "run_node", "spin_until_signal", "stopped_before_start"]


class _Watch:
    """This process's stop event and the first fatal error of a watched thread."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.fatal: str | None = None
        self._lock = threading.Lock()

    def reset(self) -> None:
        """No stop requested, no fatal error (a new spin in this process)."""
        with self._lock:
            self.fatal = None
        self.stop.clear()

    def die(self, where: str, exc: BaseException) -> None:
        """Record that ``where`` died of ``exc`` (the first one wins) and wake the main thread."""
        frames = traceback.extract_tb(exc.__traceback__)
        at = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        with self._lock:
            if self.fatal is None:
                self.fatal = f"{where} died: {exc!r}{at}"
        self.stop.set()


_WATCH = _Watch()


def guarded_thread(target: Callable[[], Any], name: str) -> threading.Thread:
    """A daemon thread running ``target``; an exception escaping it stops the node with a FATAL line and exit
    status 1 (see the module docstring) instead of leaving the process alive without it. Not started."""

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # the thread's work is over: take the process down, say why
            _WATCH.die(f"thread {name!r}", exc)

    return threading.Thread(target=run, name=name, daemon=True)


def descriptor(description: str, ptype: int, *, read_only: bool = False, constraints: str = "",
               float_range: tuple[float, float] | None = None,
               int_range: tuple[int, int] | None = None) -> ParameterDescriptor:
    """A ParameterDescriptor with a description, type, read-only flag, constraints text and optional range."""
    desc = ParameterDescriptor(description=description, type=ptype, read_only=read_only,
                               additional_constraints=constraints)
    if float_range is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float_range[0], to_value=float_range[1])]
    if int_range is not None:
        desc.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    return desc


#: :func:`descriptor` with ``read_only=True`` by default (nodes whose parameters are fixed at start).
read_only_descriptor = functools.partial(descriptor, read_only=True)


def _stop_on_signals() -> dict[int, Any]:
    """SIGINT / SIGTERM set the stop event from now on; returns the previous handlers."""
    return {sig: signal.signal(sig, lambda *_: _WATCH.stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}


def stopped_before_start(name: str) -> bool:
    """Whether SIGINT / SIGTERM arrived while the node's modules were still importing
    (:mod:`sim2real.nodes.start`); says so on stderr (rclpy's logging is not up yet) when it did."""
    if STOPPED_BEFORE_START.is_set():
        print(f"[{name}] stopped before it started (SIGINT / SIGTERM while importing)", file=sys.stderr, flush=True)
        return True
    return False


def _restore(handlers: dict[int, Any]) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


class OrderlyMultiThreadedExecutor(MultiThreadedExecutor):
    """``MultiThreadedExecutor`` whose :meth:`shutdown` lets the callbacks already queued on its thread pool
    finish *before* it destroys its guard condition.

    rclpy 9.1 (Kilted) destroys the guard condition first and waits for the pool after; every queued callback
    then fails on ``gc.trigger()`` with ``InvalidHandle`` and its task prints "The following exception was never
    retrieved: cannot use Destroyable because destruction was requested" at exit (one per callback: a busy node
    printed several on every stop). Here the pool is drained first; :meth:`spin` then ends quietly when its next
    submit to the drained pool fails.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As ``MultiThreadedExecutor``."""
        super().__init__(*args, **kwargs)
        self._draining = False

    def spin(self) -> None:
        """Spin until shut down (see the class docstring)."""
        try:
            super().spin()
        except RuntimeError:  # "cannot schedule new futures after shutdown": the pool was drained
            if not self._draining:
                raise

    def shutdown(self, timeout_sec: float | None = None, *, wait_for_threads: bool = True) -> bool:
        """Drain the queued callbacks, then shut down as rclpy does."""
        self._draining = True
        self._executor.shutdown(wait=wait_for_threads)
        return super().shutdown(timeout_sec, wait_for_threads=wait_for_threads)


def check_writable_file(parameter: str, path: str) -> None:
    """Raise :class:`~sim2real.core.errors.ConfigError` naming ``parameter`` and ``path`` unless a file can be
    written there (its folder is created; a probe file is written and removed): checked at start, so an
    output the node could only fail to write at shutdown stops it at once with one clear line."""
    from pathlib import Path

    from sim2real.core.errors import ConfigError

    target = Path(path)
    probe = target.with_name(f".{target.name}.probe-{os.getpid()}")
    try:
        if target.is_dir():
            raise IsADirectoryError(f"{path} is a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{parameter} {path!r} cannot be written: {exc}") from None


def spin_until_signal(node: Node, executor: Any, on_stop: Callable[[], Any] | None = None,
                      done: threading.Event | None = None, *, fresh: bool = True) -> int:
    """Spin ``executor`` on a thread until SIGINT/SIGTERM, ``done`` (the node's work is finished), the executor
    ending, or a watched thread dying; then stop it and call ``on_stop`` while the node is still alive (final
    statistics). The main thread waits on an event: no polling. Returns 0, or 1 after a thread died (logged as
    one FATAL line: which thread, the exception and where it was raised). ``fresh=False`` keeps a stop requested
    before the call (a signal during the node's start-up).
    """
    watch = _WATCH
    if fresh:
        watch.reset()
    previous = _stop_on_signals()
    executor.add_node(node)

    stopping = threading.Event()

    def spin() -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        except BaseException as exc:  # a callback raised: fatal, unless we were stopping it anyway
            if not stopping.is_set():
                watch.die("thread 'executor'", exc)
        watch.stop.set()

    if done is not None:
        guarded_thread(lambda: (done.wait(), watch.stop.set()), "done_watch").start()
    thread = threading.Thread(target=spin, name="executor", daemon=True)
    thread.start()
    try:
        watch.stop.wait()
    finally:
        stopping.set()
        executor.shutdown(timeout_sec=5.0)
        thread.join(timeout=5.0)
        if watch.fatal is not None:
            node.get_logger().fatal(f"{watch.fatal}: stopping the node")
        if on_stop is not None:
            on_stop()
        _restore(previous)
    return 0 if watch.fatal is None else 1


#: seconds a node's teardown may take after its final log line (destroying the node, shutting rclpy down, and the
#: interpreter's exit with the middleware's destructors; all normally well under a second). Past it, every thread's
#: stack goes to stderr and the process exits 1: a hung teardown says where it hung, before ``ros2 launch``
#: escalates to SIGTERM / SIGKILL (5 s each).
TEARDOWN_TIMEOUT_S: Final = 5.0


def exit_node(code: int, timeout_s: float = TEARDOWN_TIMEOUT_S) -> NoReturn:
    """``sys.exit(code)`` for a node executable, with the interpreter's exit bounded by ``timeout_s`` (see
    :data:`TEARDOWN_TIMEOUT_S`; faulthandler's watchdog thread needs no GIL, so it fires even when the main
    thread is stuck in C)."""
    faulthandler.dump_traceback_later(timeout_s, exit=True)
    sys.exit(code)


def run_node(make_node: Callable[[], Any], name: str, make_executor: Callable[[], Any],
             args: list[str] | None = None) -> int:
    """A node's entry point: init rclpy (without its signal handlers), build the node, spin it until
    SIGINT/SIGTERM (or its ``done`` event, when it has one) with ``node.stop`` as the final step, shut down
    (bounded by :data:`TEARDOWN_TIMEOUT_S`).
    Returns 0 (without building the node when a stop signal came during its imports, see
    :mod:`sim2real.nodes.start`); 1 (logged as fatal with the reason) when the node cannot be built (bad
    parameters, a missing model, an existing output, ...) or when one of its threads died.
    """
    _WATCH.reset()
    previous = _stop_on_signals()  # a signal during start-up (loading a model, ...) stops the node once built
    if stopped_before_start(name):  # one during the imports: nothing to build, nothing to stop
        _restore(previous)
        return 0
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        try:
            node = make_node()
        except Exception as exc:  # say why and exit
            rclpy.logging.get_logger(name).fatal(f"cannot start: {exc}")
            return 1
        code = spin_until_signal(node, make_executor(), node.stop, getattr(node, "done", None), fresh=False)
        faulthandler.dump_traceback_later(TEARDOWN_TIMEOUT_S, exit=True)  # a hung teardown: stacks, exit 1
        node.destroy_node()
        return code
    finally:
        _restore(previous)
        rclpy.try_shutdown()
        faulthandler.cancel_dump_traceback_later()
