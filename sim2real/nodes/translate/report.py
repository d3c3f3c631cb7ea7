"""What translate_node tells the world: rate-limited log lines about dropped or bad messages, publishing that
counts failures instead of raising, ``/diagnostics``, the periodic summary and the final counters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from sim2real.runtime.node_stats import LogRateLimiter, NodeStats, build_diagnostic_status, summary_line

__all__ = ["Reporter"]


class Reporter:
    """Logging, counted publishing and diagnostics for one node (thread-safe: callbacks and worker share it)."""

    def __init__(self, node: Any, stats: NodeStats, period: float = 2.0) -> None:
        """Report for ``node`` (its logger, clock and name) into ``stats``; one line per key every ``period`` s."""
        self._node = node
        self._logger = node.get_logger()
        self.stats = stats
        self.limiter = LogRateLimiter(period=period)

    def log_bad(self, topic: str, reason: str, detail: str, stamp_ns: int | None = None) -> None:
        """Rate-limited (per topic and reason) warning about a bad message; ``topic`` is a resolved name."""
        self.log_limited("bad message on", topic, reason, detail, stamp_ns)

    def log_limited(self, what: str, topic: str, reason: str, detail: str, stamp_ns: int | None = None,
                    *, level: str = "warning") -> None:
        """``<what> <topic> (stamp s): <reason>: <detail>`` at ``level``, once per (topic, reason) per period."""
        allowed, suppressed = self.limiter.allow((topic, reason))
        if not allowed:
            return
        where = f" (stamp {stamp_ns / 1e9:.9f})" if stamp_ns is not None else ""
        more = f" [{suppressed} similar suppressed]" if suppressed else ""
        line = f"{what} {topic}{where}: {reason}: {detail}{more}"
        # one call site per severity: rclpy refuses a logging call site whose severity changes between calls
        if level == "debug":
            self._logger.debug(line)
        elif level == "info":
            self._logger.info(line)
        else:
            self._logger.warning(line)

    def publish(self, publisher: Any, msg: Any) -> bool:
        """Publish ``msg``; on failure count it (``publish_errors``), log it rate-limited and return False."""
        try:
            publisher.publish(msg)
        except Exception as exc:  # RCLError under load, or the context going away
            self.stats.publish_error(publisher.topic_name)
            allowed, suppressed = self.limiter.allow((publisher.topic_name, "publish"))
            if allowed:
                more = f" [{suppressed} similar suppressed]" if suppressed else ""
                self._logger.error(f"publish on {publisher.topic_name} failed: {exc!r}{more}")
            return False
        return True

    def publish_diagnostics(self, publisher: Any, hardware_id: str, info: dict[str, Any],
                            warnings: list[str]) -> None:
        """One ``/diagnostics`` array with this node's counters, latencies, ``info`` and ``warnings``."""
        content = build_diagnostic_status(
            f"{self._node.get_fully_qualified_name()}: translation", self.stats.snapshot(),
            hardware_id=hardware_id, info=info, warnings=warnings,
        )
        status = DiagnosticStatus(
            level=bytes([content.level]), name=content.name, message=content.message,
            hardware_id=content.hardware_id, values=[KeyValue(key=k, value=v) for k, v in content.values],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self.publish(publisher, array)

    def log_summary(self, model_name: str) -> None:
        """The periodic one-line summary."""
        self._logger.info(summary_line(self.stats.snapshot(), {"model": model_name}))

    def final(self, info: dict[str, Any], stats_file: str) -> dict[str, Any]:
        """The final snapshot with ``info`` and the accounting check; logged, and written to ``stats_file``."""
        snap = self.stats.snapshot()
        snap.update(info)
        snap["accounted"] = snap["frames_in"] == snap["frames_out"] + snap["dropped_total"]
        self._logger.info(f"final: {summary_line(snap)}; accounted={snap['accounted']}")
        if stats_file:
            path = Path(stats_file)
            tmp = path.with_suffix(path.suffix + ".tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(snap, indent=1))
                tmp.replace(path)
            except OSError as exc:  # e.g. the disk filled up since the start-up check: one line, no traceback
                self._logger.error(f"cannot write stats_file {stats_file!r}: {exc}")
        return snap
