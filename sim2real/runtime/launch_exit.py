"""How the launch files fail as a unit: the ``on_exit`` handler of every essential node (``ros2 launch`` only;
``launch`` is imported when a handler runs, so this module imports without it).

When a node exits, the launch shuts down. When it exits with a status other than 0 (and not because the
launch itself was stopping it), the handler raises :class:`NodeExitedError`: launch logs it as one line,
``[ERROR] [launch]: Caught exception in launch (see debug for traceback): <node> exited with status N ...``,
stops the other nodes and ``ros2 launch`` exits 1 (upstream launch returns 1 only for an exception; a
``Shutdown`` action alone would exit 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

__all__ = ["NodeExitedError", "on_exit"]

#: exit statuses of a node stopped by the launch's own SIGINT / SIGTERM / SIGKILL while shutting down
STOPPED_BY_LAUNCH: Final = (-2, -9, -15)


class NodeExitedError(RuntimeError):
    """A node of the set exited with a non-zero status."""


def on_exit(name: str) -> Callable[[Any, Any], list[Any]]:
    """The ``on_exit`` handler (``(ProcessExited event, LaunchContext) -> actions``) of node ``name``."""

    def handler(event: Any, context: Any) -> list[Any]:
        from launch.actions import Shutdown

        code = event.returncode
        if code != 0 and not (context.is_shutdown and code in STOPPED_BY_LAUNCH):
            raise NodeExitedError(f"{name} exited with status {code} (its log above says why): stopping the launch")
        return [Shutdown(reason=f"{name} exited")]

    return handler
