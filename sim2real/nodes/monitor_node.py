"""monitor_node: live label-preservation monitor of the translated stream (judge mIoU, instance recall).

Topics (relative names, so they resolve to ``/translated/*`` like translate_node's outputs; remap each with
e.g. ``-r translated/image:=/front/translated/image``, or move all of them with ``-r __ns:=/front``):

=============================== =========================== ==================================================
subscribed                      type                        notes
=============================== =========================== ==================================================
``translated/image``            sensor_msgs/Image           any colour encoding ``to_rgb8`` reads
``translated/semantic``         sensor_msgs/Image           mono8 train ids (255 = ignore)
``translated/instance``         sensor_msgs/Image           16UC1 (8-bit accepted), 0 = no instance
=============================== =========================== ==================================================

The three are matched by exact header stamp (:class:`~sim2real.io.sync.StampSynchronizer`); a complete set goes
into a keep-latest slot (:class:`~sim2real.io.sync.LatestSlot`). A timer at ``rate_hz`` (own callback group, so
subscriptions are never blocked by the judge) takes the newest set, if any, and scores it with the judge
(:func:`sim2real.evaluation.monitor.score_frame`, the same scoring as ``sim2real-eval``); a set replaced in the
slot before the evaluator took it is counted as
``skipped``. Scores go into a sliding window of the last ``window`` evaluated frames
(:class:`sim2real.evaluation.monitor.MonitorWindow`).

Published after every evaluated frame (i.e. once per window position):

* ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): one status named ``"sim2real monitor"`` with the window's
  judge mIoU, instance recall, IoU of the reported classes, frames in window, evaluated / skipped / bad counts; level
  WARN with a message naming the crossed threshold and by how much, else OK. Also every
  ``diagnostics_period_s`` while no frame is evaluated, so the status never goes stale.
* ``~/metrics`` (std_msgs/String, JSON): the same numbers, nested (``classes.<name>.iou`` ...);
  also with the heartbeat when only the counters changed (sets skipped or malformed, nothing evaluated).
  Why a JSON String: no standard message carries named, nested, nullable metrics (Float64MultiArray has no
  names, diagnostic_msgs/KeyValue values are strings anyway and DiagnosticArray would duplicate
  ``/diagnostics``), and a custom .msg cannot be built from the PyPI wheels; JSON is self-describing,
  recorded as-is by rosbag2 and parsed by any consumer (``json.loads(msg.data)``).

A crossed threshold is also logged as a warning, at most once every ``warn_period_s``.

The judge (``judge``: default the shipped ``models/judges/camvid_segmenter.safetensors``; a segmenter trained on
real frames, never a training loss, loaded with :func:`sim2real.evaluation.judge.load_judge`) must load: the node
exits at start with an error naming the path when it is missing or unreadable. The translator's training
critics are never used. A malformed message
(bad encoding, size mismatch) is counted in ``bad_messages``, logged (rate-limited) and skipped; the node
never dies on one.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image
from std_msgs.msg import String

from sim2real.core.errors import Sim2RealError
from sim2real.evaluation.monitor import (
    DIAGNOSTIC_NAME,
    MonitorCounters,
    MonitorReport,
    MonitorWindow,
    Thresholds,
    build_report,
    score_frame,
)
from sim2real.io.sync import LatestSlot, StampSynchronizer, stamp_to_ns
from sim2real.nodes.common import OrderlyMultiThreadedExecutor, exit_node, run_node
from sim2real.nodes.common import descriptor as _descriptor
from sim2real.nodes.translate.frames import Frame, FrameError, decode_frame
from sim2real.runtime.node_stats import LogRateLimiter
from sim2real.translator.device import resolve_device

__all__ = ["MonitorNode", "load_monitor_judge", "main", "resolve_device"]

NODE_NAME: Final = "monitor_node"
IMAGE, SEMANTIC, INSTANCE = "image", "semantic", "instance"
IN_PREFIX: Final = "translated"

_STR, _DBL, _INT = ParameterType.PARAMETER_STRING, ParameterType.PARAMETER_DOUBLE, ParameterType.PARAMETER_INTEGER


def load_monitor_judge(path: str, device: torch.device) -> tuple[Any, dict[str, Any]]:
    """The judge at ``path`` ("" = the shipped one; eval mode, on ``device``) and its description;
    Sim2RealError naming the path."""
    from sim2real.evaluation.evaluate import DEFAULT_JUDGE
    from sim2real.evaluation.judge import load_judge
    from sim2real.runtime.paths import share_dir

    p = Path(path) if path else share_dir() / DEFAULT_JUDGE
    if not p.is_file():
        raise Sim2RealError(f"judge {str(p)!r} does not exist; set 'judge' to a judge .safetensors "
                            f"(default {DEFAULT_JUDGE})")
    try:
        judge, info = load_judge(p, device)
    except Exception as exc:  # wrong format, pickle, corrupt file: name the path and the reason
        raise Sim2RealError(f"judge {str(p)!r} could not be loaded: {exc}") from exc
    return judge, {"origin": str(p), **info}


def _parameter_table() -> list[tuple[str, Any, ParameterDescriptor]]:
    """Every parameter of the node: (name, default, descriptor)."""
    return [
        ("judge", "", _descriptor(
            "evaluation judge (a segmenter trained on real frames); empty = the shipped"
            " models/judges/camvid_segmenter.safetensors", _STR, read_only=True,
            constraints="empty or path to a judge .safetensors")),
        ("device", "auto", _descriptor(
            "device of the judge", _STR, read_only=True, constraints="auto | cpu | cuda | cuda:N")),
        ("rate_hz", 2.0, _descriptor(
            "largest evaluation rate; the newest synchronised set is scored, the ones it replaced are skipped",
            _DBL, read_only=True, float_range=(0.01, 100.0))),
        ("window", 30, _descriptor(
            "evaluated frames in the sliding window the metrics are summed over", _INT, read_only=True,
            int_range=(1, 100000))),
        ("min_frames", 5, _descriptor(
            "thresholds are judged only once the window holds this many frames (<= window)", _INT,
            int_range=(1, 100000))),
        ("min_judge_miou", 0.1, _descriptor(
            "WARN when the window's judge mIoU falls below this (set it from sim2real-eval's figure for your"
            " simulator's untranslated frames)", _DBL, float_range=(0.0, 1.0))),
        ("min_instance_recall", 0.1, _descriptor(
            "WARN when the window's instance recall falls below this", _DBL, float_range=(0.0, 1.0))),
        ("sync_queue_size", 10, _descriptor(
            "messages kept per topic while waiting for partners", _INT, read_only=True, int_range=(1, 1000))),
        ("diagnostics_period_s", 1.0, _descriptor(
            "/diagnostics is also published this often while no frame is evaluated", _DBL, read_only=True,
            float_range=(0.1, 60.0))),
        ("warn_period_s", 10.0, _descriptor(
            "at most one threshold warning in the log per this many seconds", _DBL, float_range=(0.0, 3600.0))),
    ]


@dataclass
class _Set:
    """One synchronised set waiting for the evaluator."""

    image: Any
    semantic: Any
    instance: Any
    stamp_ns: int


class MonitorNode(Node):
    """The ROS layer over :mod:`sim2real.evaluation.monitor` (see the module docstring)."""

    def __init__(self, **node_kwargs: Any) -> None:
        """Declare and validate parameters, load the judge, then subscribe. Raises Sim2RealError on bad config."""
        super().__init__(NODE_NAME, **node_kwargs)
        for name, default, desc in _parameter_table():
            self.declare_parameter(name, default, desc)
        p = {name: self.get_parameter(name).value for name, _, _ in _parameter_table()}
        if p["min_frames"] > p["window"]:
            raise Sim2RealError(f"min_frames ({p['min_frames']}) must be <= window ({p['window']})")
        self._window_size: int = p["window"]
        self._thresholds = Thresholds(p["min_judge_miou"], p["min_instance_recall"], p["min_frames"])
        self._device = resolve_device(p["device"])
        self._judge, info = load_monitor_judge(p["judge"], self._device)
        self._judge_origin = str(info["origin"])
        self.get_logger().info(
            f"judge {self._judge_origin} on {self._device}")
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._window = MonitorWindow(self._window_size)
        self._lock = threading.Lock()  # window + counters
        self._counters = MonitorCounters()
        self._published_counters = MonitorCounters()  # as last published on ~/metrics
        self._limiter = LogRateLimiter(period=2.0)
        self._warn_limiter = LogRateLimiter(period=p["warn_period_s"])
        self._slot: LatestSlot[_Set] = LatestSlot()
        self._sync: StampSynchronizer[Any] = StampSynchronizer(
            [IMAGE, SEMANTIC, INSTANCE], queue_size=p["sync_queue_size"],
            on_drop=lambda _topic, _reason, _item: self._count(unmatched=1))
        self._last_publish = time.monotonic()

        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._pub_metrics = self.create_publisher(
            String, "~/metrics", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.create_timer(1.0 / p["rate_hz"], self._evaluate_newest, callback_group=MutuallyExclusiveCallbackGroup())
        self._diag_period = float(p["diagnostics_period_s"])
        self.create_timer(self._diag_period, self._heartbeat, callback_group=MutuallyExclusiveCallbackGroup())
        subs = MutuallyExclusiveCallbackGroup()
        overrides = QoSOverridingOptions.with_default_policies()
        self._subs = {
            name: self.create_subscription(
                Image, f"{IN_PREFIX}/{name}", lambda msg, n=name: self._on_message(n, msg), qos_profile_sensor_data,
                callback_group=subs, qos_overriding_options=overrides)
            for name in (IMAGE, SEMANTIC, INSTANCE)
        }
        self.get_logger().info(
            f"monitoring {', '.join(s.topic_name for s in self._subs.values())} at up to {p['rate_hz']:g} Hz,"
            f" window {self._window_size} frames; WARN below judge mIoU {self._thresholds.min_judge_miou:g} or"
            f" instance recall {self._thresholds.min_instance_recall:g}; metrics on {self._pub_metrics.topic_name}")

    # ------------------------------------------------------------------------------------------- parameters
    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Ranges are enforced by the descriptors; here the cross-parameter rule min_frames <= window."""
        for param in params:
            if param.name == "min_frames" and int(param.value) > self._window_size:
                return SetParametersResult(
                    successful=False, reason=f"min_frames must be <= window ({self._window_size}), got {param.value}")
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        updates = {p.name: p.value for p in params}
        with self._lock:
            t = self._thresholds
            self._thresholds = Thresholds(
                float(updates.get("min_judge_miou", t.min_judge_miou)),
                float(updates.get("min_instance_recall", t.min_instance_recall)),
                int(updates.get("min_frames", t.min_frames)))
        if "warn_period_s" in updates:
            self._warn_limiter = LogRateLimiter(period=float(updates["warn_period_s"]))
        for name, value in updates.items():
            if not name.startswith("qos_overrides."):
                self.get_logger().info(f"parameter {name} = {value!r}")

    # -------------------------------------------------------------------------------------------- callbacks
    def _count(self, **delta: int) -> None:
        with self._lock:
            c = self._counters
            self._counters = dataclasses.replace(c, **{k: getattr(c, k) + n for k, n in delta.items()})

    def _log_bad(self, topic: str, reason: str, detail: str) -> None:
        allowed, suppressed = self._limiter.allow((topic, reason))
        if allowed:
            more = f" [{suppressed} similar suppressed]" if suppressed else ""
            self.get_logger().warning(f"bad message on {topic}: {reason}: {detail}{more}")

    def _on_message(self, name: str, msg: Image) -> None:
        try:
            for matched in self._sync.add(name, stamp_to_ns(msg.header.stamp), msg):
                items = matched.items
                self._count(sets=1)
                superseded = self._slot.put(_Set(items[IMAGE], items[SEMANTIC], items[INSTANCE], matched.stamp_ns))
                if superseded is not None:
                    self._count(skipped=1)
        except Exception as exc:  # never let one message kill the node
            self._log_bad(self._subs[name].topic_name, "callback_error", repr(exc))

    def _evaluate_newest(self) -> None:
        item = self._slot.take(timeout=0.0)
        if item is None:
            return
        try:
            rgb, semantic, instance = decode_frame(Frame(item.image, item.semantic, item.instance, None,
                                                         item.stamp_ns, time.monotonic()))
            score = score_frame(self._judge, rgb, semantic, instance, device=self._device, stamp_ns=item.stamp_ns)
        except FrameError as err:
            self._count(bad=1)
            self._log_bad(self._subs[err.topic].topic_name, err.reason, err.detail)
            return
        except Exception as exc:  # label values the judge cannot take, device errors: count, go on
            self._count(bad=1)
            self._log_bad("(judge)", "evaluation_error", repr(exc))
            return
        with self._lock:
            self._window.add(score)
            self._counters = dataclasses.replace(self._counters, evaluated=self._counters.evaluated + 1)
        report = self.report()
        self._publish(report, metrics=True)
        if report.warnings:
            allowed, suppressed = self._warn_limiter.allow("thresholds")
            if allowed:
                more = f" [{suppressed} more windows over threshold since the last warning]" if suppressed else ""
                self.get_logger().warning(f"label preservation below threshold over the last "
                                          f"{report.document['frames_in_window']} frames: {report.message}{more}")

    def _heartbeat(self) -> None:
        """While nothing is evaluated: /diagnostics every period; ~/metrics too when the counters moved
        (sets skipped or malformed), so consumers of either see them."""
        if time.monotonic() - self._last_publish >= self._diag_period * 0.99:
            report = self.report()
            with self._lock:
                changed = self._counters != self._published_counters
            self._publish(report, metrics=changed)

    # ------------------------------------------------------------------------------------------------ output
    def report(self) -> MonitorReport:
        """The current window's report (thread-safe)."""
        with self._lock:
            summary, counters, thresholds = self._window.summary(), self._counters, self._thresholds
        return build_report(summary, thresholds, counters,
                            {"judge": self._judge_origin, "device": str(self._device)})

    def _publish(self, report: MonitorReport, *, metrics: bool) -> None:
        self._last_publish = time.monotonic()
        if metrics:
            with self._lock:
                doc = report.document
                self._published_counters = MonitorCounters(doc["sets_received"], doc["evaluated"], doc["skipped"],
                                                           doc["bad_messages"], doc["unmatched_messages"])
        status = DiagnosticStatus(level=bytes([report.level]), name=DIAGNOSTIC_NAME, message=report.message,
                                  hardware_id=str(self._device),
                                  values=[KeyValue(key=k, value=v) for k, v in report.values])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        outputs: list[tuple[Any, Any]] = [(self._pub_diag, array)]
        if metrics:
            outputs.append((self._pub_metrics, String(data=json.dumps(report.document, sort_keys=True))))
        for publisher, msg in outputs:
            try:
                publisher.publish(msg)
            except Exception as exc:  # RCLError under load or at shutdown: log, go on
                self._log_bad(publisher.topic_name, "publish_error", repr(exc))

    def stop(self) -> MonitorCounters:
        """Close the slot (a set still pending is neither evaluated nor skipped) and log the final counts."""
        self._slot.close()
        with self._lock:
            counters = self._counters
        self.get_logger().info(f"final: sets={counters.sets} evaluated={counters.evaluated} "
                               f"skipped={counters.skipped} bad={counters.bad} unmatched={counters.unmatched}")
        return counters


def main(args: list[str] | None = None) -> int:
    """Entry point (``monitor_node``): run until SIGINT/SIGTERM; 1 when the configuration is invalid."""
    return run_node(MonitorNode, NODE_NAME, lambda: OrderlyMultiThreadedExecutor(num_threads=3), args)


if __name__ == "__main__":
    exit_node(main())
