"""Start a node with SIGINT / SIGTERM caught from its first line:
``python -m sim2real.nodes.start <node> [--ros-args ...]`` (what ``sim2real-launch`` runs) and the ROS 2
executables of ``scripts/nodes/`` (``ros2 run``, launch_ros).

A node's module imports rclpy, torch and its model code for seconds (more on a loaded machine). Python's default
SIGINT handler would raise KeyboardInterrupt somewhere in those imports: a traceback and exit status 1 for a
user's Ctrl-C, or a launch stopped early. Here the signal only sets
:data:`sim2real.nodes.early_stop.STOPPED_BEFORE_START`;
:func:`sim2real.nodes.common.run_node` sees it once the imports are done and exits 0 without building the node.

Imports nothing but the standard library before the node's module (the package ``__init__`` files above it are
docstrings only). Before that (the interpreter's own start-up, tens of milliseconds) SIGINT is still Python's
KeyboardInterrupt and SIGTERM still ends the process at once.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

from sim2real.nodes.early_stop import catch_stop_signals

__all__ = ["NODES", "main", "run"]

#: The node modules of this package that have an entry point (``main``).
NODES = ("monitor_node", "record_node", "sim_adapter_node", "sim_node", "trainer_node", "translate_node")


def run(node: str) -> NoReturn:
    """Catch stop signals, import ``sim2real.nodes.<node>`` and exit with its ``main()``'s status (ROS
    arguments come from ``sys.argv``, as with ``python -m sim2real.nodes.<node>``)."""
    catch_stop_signals()
    if node not in NODES:
        print(f"sim2real.nodes.start: unknown node {node!r}; valid: {', '.join(NODES)}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"sim2real.nodes.{node}")
    from sim2real.nodes.common import exit_node

    exit_node(module.main())


def main() -> NoReturn:
    """``python -m sim2real.nodes.start <node> [ROS arguments]``: :func:`run` with ``sys.argv`` shifted so the
    node sees its own arguments only."""
    if len(sys.argv) < 2:
        print(f"usage: python -m sim2real.nodes.start <node> [--ros-args ...]; nodes: {', '.join(NODES)}",
              file=sys.stderr)
        sys.exit(2)
    node = sys.argv[1]
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    run(node)


if __name__ == "__main__":
    main()
