"""Helpers every sim2real node shares: parameter descriptors, the spin-until-signal loop, the entry point."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

__all__ = ["descriptor", "read_only_descriptor", "run_node", "spin_until_signal"]


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


def spin_until_signal(node: Node, executor: Any, on_stop: Callable[[], Any] | None = None) -> None:
    """Spin ``executor`` on a thread until SIGINT/SIGTERM (or the executor ends), then stop it and call
    ``on_stop`` while the node is still alive (final statistics). The main thread waits on an event: no polling.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    executor.add_node(node)

    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException):
            executor.spin()
        stop.set()

    thread = threading.Thread(target=spin, name="executor", daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        executor.shutdown(timeout_sec=5.0)
        thread.join(timeout=5.0)
        if on_stop is not None:
            on_stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_node(make_node: Callable[[], Any], name: str, make_executor: Callable[[], Any],
             args: list[str] | None = None) -> int:
    """A node's entry point: init rclpy (without its signal handlers), build the node, spin it until
    SIGINT/SIGTERM with ``node.stop`` as the final step, shut down. Returns 0, or 1 (logged as fatal with the
    reason) when the node cannot be built: bad parameters, a missing model, an existing output, ...
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        try:
            node = make_node()
        except Exception as exc:  # say why and exit
            rclpy.logging.get_logger(name).fatal(f"cannot start: {exc}")
            return 1
        spin_until_signal(node, make_executor(), node.stop)
        node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()
