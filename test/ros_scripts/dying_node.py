"""A node run by :func:`sim2real.nodes.common.run_node` whose work dies: ``python dying_node.py callback``
raises from a timer callback (the executor's thread ends), ``python dying_node.py worker`` from a thread started
with :func:`sim2real.nodes.common.guarded_thread`. The process must exit 1 with one FATAL line, not linger."""

from __future__ import annotations

import sys
import threading
from typing import Any

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from sim2real.nodes.common import guarded_thread, run_node


class DyingNode(Node):
    def __init__(self, mode: str) -> None:
        super().__init__("dying_node")
        self.stopped = False
        self._go = threading.Event()
        if mode == "callback":
            self.create_timer(0.2, self._tick)
        else:
            guarded_thread(self._work, "dying_worker").start()
            self.create_timer(0.2, self._go.set)
        self.get_logger().info(f"ready ({mode})")

    def _tick(self) -> None:
        raise RuntimeError("boom in a callback")

    def _work(self) -> None:
        self._go.wait()
        raise ValueError("boom in a worker")

    def stop(self) -> Any:
        self.get_logger().info("stop() ran: final statistics written")


if __name__ == "__main__":
    mode = sys.argv[1]
    sys.exit(run_node(lambda: DyingNode(mode), "dying_node", SingleThreadedExecutor, sys.argv[2:]))
