"""trainer_node: run :class:`~sim2real.training.trainer.Trainer` inside a ROS 2 node, observable and steerable.

    python -m sim2real.nodes.trainer_node --ros-args -p config:=config/train_lite.yaml \\
        -p "overrides:=['steps=2000', 'device=cuda']" -p resume:=true

The same training as ``sim2real-train CONFIG [overrides]`` (same config loader, datasets and Trainer; single
process: for several GPUs use ``torchrun -m sim2real.training.cli``), on a worker thread, so the executor keeps
serving the services, the diagnostics timer and parameter requests while a step runs.

Interface (``~`` = the node's name, ``/trainer_node`` by default):

``~/progress`` (std_msgs/String, reliable, depth 100)
    One JSON object every ``log_every`` steps (and at the last step)::

        {"step": 40, "steps": 3000, "losses": {"g/total": 3.1, "d/total": 1.9, "aux/total": 2.2, ...},
         "steps_per_s": 2.4, "eta_s": 1233.3, "elapsed_s": 17.0}

    Why String + JSON: the loss names depend on the configuration (every named loss of the objective), no
    standard message carries a named, open-ended set of floats with a step number (``DiagnosticStatus`` holds
    strings, ``Float32MultiArray`` loses the names), and a custom message would need an interface package that
    the PyPI-wheel setup cannot build. JSON keeps numbers numbers and is one ``json.loads`` away (or readable
    in ``ros2 topic echo``). ``eta_s`` / ``steps_per_s`` are ``null`` until a rate is known.
``/diagnostics`` (diagnostic_msgs/DiagnosticArray, every ``diagnostics_period_s``)
    One status ``<node>: training``, hardware_id = the training device; values ``state`` (starting |
    training | finishing | done | error), ``step``, ``steps``, ``steps_per_s``, ``eta_s``, the last losses
    (their names as keys), ``device``, ``out_dir``, ``config``, ``last_checkpoint``, ``export``. Level OK,
    WARN when the last requested save failed, ERROR when training failed (the error is the message).
``~/save_checkpoint`` (std_srvs/Trigger)
    The worker writes a training checkpoint at the next step boundary (requests that arrive together share
    one); the response's ``message`` is the checkpoint directory (``<out_dir>/checkpoints/step_NNNNNNNN``)
    on success, else the reason. The service thread never touches the model: it queues a request and waits
    (at most ``save_timeout_s``) for the worker's answer. Periodic checkpoints still prune to ``keep_last``.
``~/stop`` (std_srvs/Trigger)
    Graceful stop: answered at once; the worker finishes the step in progress, validates, writes the final
    checkpoint and exports the EMA generator (``export``, default ``<out_dir>/model.safetensors``); then the
    node exits 0. SIGINT / SIGTERM do the same; a second signal exits at once (status 1, nothing saved).

Reaching ``steps`` ends the same way (final checkpoint + export, exit 0). An error in training (datasets,
model, non-finite losses, ...) is logged with its traceback, published on ``/diagnostics`` at ERROR level
right away and for ``error_linger_s`` more, and the node exits 1; invalid parameters or configuration: exit 1
before training starts.

Parameters (declared once with descriptors, all read-only, validated when declared):
``config`` (YAML path; empty = built-in defaults), ``overrides`` (``key.sub=value`` strings, as on the
``sim2real-train`` command line), ``resume`` (continue from the newest checkpoint in ``out_dir``),
``export``, ``diagnostics_period_s``, ``error_linger_s``, ``save_timeout_s``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String
from std_srvs.srv import Trigger

from sim2real.core.errors import ConfigError
from sim2real.nodes.common import OrderlyMultiThreadedExecutor, exit_node, stopped_before_start
from sim2real.nodes.common import read_only_descriptor as _descriptor
from sim2real.nodes.early_stop import RECEIVED
from sim2real.runtime.launch_description import parse_bool
from sim2real.training.config import TrainConfig, load_train_config

if TYPE_CHECKING:
    from sim2real.training.trainer import Trainer

__all__ = [
    "DIAG_ERROR",
    "DIAG_OK",
    "DIAG_WARN",
    "LAUNCH_ARGUMENTS",
    "NODE_NAME",
    "STATES",
    "Progress",
    "SaveRequests",
    "TrainerNode",
    "launch_parameters",
    "main",
    "split_overrides",
]

NODE_NAME: Final = "trainer_node"
STATES: Final = ("starting", "training", "finishing", "done", "error")
DIAG_OK, DIAG_WARN, DIAG_ERROR = 0, 1, 2

#: ``launch/train.launch.py``'s arguments: name -> (default, description, allowed values or None).
LAUNCH_ARGUMENTS: Final[Mapping[str, tuple[str, str, tuple[str, ...] | None]]] = {
    "config": ("", "training YAML, e.g. share/sim2real/config/train_lite.yaml; empty: built-in defaults", None),
    "overrides": ("", "config overrides as one string of key.sub=value entries separated by spaces (quote an "
                  "entry that holds spaces), e.g. \"steps=2000 device=cuda 'crop=[128, 256]'\"", None),
    "resume": ("true", "continue from the newest valid checkpoint in out_dir", ("true", "false")),
    "export": ("", "where to export the final EMA generator (.safetensors); empty: <out_dir>/model.safetensors",
               None),
}


# ----------------------------------------------------------------------------------- pure helpers (no ROS)


def split_overrides(text: str) -> list[str]:
    """``"steps=100 'crop=[32, 64]'"`` -> ``["steps=100", "crop=[32, 64]"]`` (shell-style quoting).

    Raises ConfigError for an entry that is not ``key=value``.
    """
    try:
        entries = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"overrides {text!r}: {exc}") from exc
    for entry in entries:
        _check_override(entry)
    return entries


def _check_override(entry: str) -> None:
    key, sep, _ = entry.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {entry!r} must look like key.sub=value (e.g. steps=100, losses.bbox=2)")


def launch_parameters(config: str, overrides: str, resume: str | bool = True, export: str = "") -> dict[str, Any]:
    """The node's parameters from launch-argument strings (what ``launch/train.launch.py`` passes).

    ``overrides`` is one string of whitespace-separated ``key=value`` entries (quote entries with spaces);
    it is left out when empty (an empty list has no type in a parameters file).
    """
    params: dict[str, Any] = {"config": config, "resume": parse_bool("resume", resume)}
    entries = split_overrides(overrides)
    if entries:
        params["overrides"] = entries
    if export:
        params["export"] = export
    return params


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass
class Progress:
    """Step, losses, rate and state of a run; written by the worker, read by timers (guard with a lock)."""

    steps: int
    state: str = "starting"
    step: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    device: str = ""
    steps_per_s: float | None = None
    error: str = ""
    last_checkpoint: str = ""
    save_error: str = ""
    started: float = field(default_factory=time.monotonic)
    _mark: tuple[int, float] | None = None

    def begin(self, step: int, now: float | None = None) -> None:
        """Training starts (or resumes) at ``step``: the rate is measured from here."""
        self.step = step
        self._mark = (step, time.monotonic() if now is None else now)
        self.state = "training"

    def update(self, step: int, losses: Mapping[str, float], now: float | None = None,
               measure: bool = True) -> None:
        """Record ``step``'s losses; with ``measure``, the rate over the steps since the previous measurement."""
        now = time.monotonic() if now is None else now
        self.step, self.losses = step, dict(losses)
        if measure and self._mark is not None and step > self._mark[0] and now > self._mark[1]:
            self.steps_per_s = (step - self._mark[0]) / (now - self._mark[1])
            self._mark = (step, now)

    @property
    def eta_s(self) -> float | None:
        """Seconds to ``steps`` at the measured rate (None before a rate is known)."""
        if not self.steps_per_s:
            return None
        return max(0, self.steps - self.step) / self.steps_per_s

    def to_json(self, now: float | None = None) -> str:
        """The ``~/progress`` payload (non-finite numbers become null: the JSON stays standard)."""
        now = time.monotonic() if now is None else now
        return json.dumps({
            "step": self.step, "steps": self.steps,
            "losses": {k: _finite_or_none(v) for k, v in self.losses.items()},
            "steps_per_s": _finite_or_none(self.steps_per_s), "eta_s": _finite_or_none(self.eta_s),
            "elapsed_s": round(now - self.started, 3),
        }, allow_nan=False)

    def diagnostic(self, info: Mapping[str, str]) -> tuple[int, str, list[tuple[str, str]]]:
        """(level, message, key/values) for ``/diagnostics``."""
        eta = self.eta_s
        values = [("state", self.state), ("step", str(self.step)), ("steps", str(self.steps)),
                  ("steps_per_s", f"{self.steps_per_s:.3f}" if self.steps_per_s else ""),
                  ("eta_s", f"{eta:.0f}" if eta is not None else "")]
        values += [(k, f"{v:.6g}") for k, v in self.losses.items()]
        values += [("device", self.device), ("last_checkpoint", self.last_checkpoint), *info.items()]
        if self.state == "error":
            return DIAG_ERROR, f"training failed: {self.error}", values
        message = f"{self.state}: step {self.step}/{self.steps}"
        if self.state == "training" and eta is not None:
            message += f", eta {eta:.0f} s"
        if self.save_error:
            return DIAG_WARN, f"{message}; last requested checkpoint failed: {self.save_error}", values
        return DIAG_OK, message, values


class SaveRequests:
    """Checkpoint requests from service threads to the training thread (thread-safe).

    A requester gets a Future that resolves to the checkpoint path (or an exception); the worker takes every
    pending request at a step boundary and answers them all with one save. After :meth:`close`, new requests
    fail at once with the closing reason.
    """

    def __init__(self) -> None:
        """No request pending, open."""
        self._lock = threading.Lock()
        self._pending: list[Future[str]] = []
        self._closed: str | None = None

    def request(self) -> Future[str]:
        """Queue a request; the Future resolves when the worker has saved (or failed)."""
        future: Future[str] = Future()
        with self._lock:
            if self._closed is not None:
                future.set_exception(RuntimeError(self._closed))
            else:
                self._pending.append(future)
        return future

    def take(self) -> list[Future[str]]:
        """Every pending request (the caller must resolve them)."""
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    def close(self, reason: str) -> list[Future[str]]:
        """Refuse new requests with ``reason``; return the still-pending ones."""
        with self._lock:
            self._closed = reason
            taken, self._pending = self._pending, []
        return taken

    @staticmethod
    def resolve(futures: list[Future[str]], path: str | None = None, error: BaseException | None = None) -> None:
        """Answer ``futures`` with ``path`` or ``error`` (a Future cancelled by its waiter is skipped)."""
        for future in futures:
            if not future.set_running_or_notify_cancel():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(str(path))


# ------------------------------------------------------------------------------------------------ parameters

_STR, _DBL, _BOOL, _STR_ARRAY = (ParameterType.PARAMETER_STRING, ParameterType.PARAMETER_DOUBLE,
                                 ParameterType.PARAMETER_BOOL, ParameterType.PARAMETER_STRING_ARRAY)


def _parameter_table() -> list[tuple[str, Any, ParameterDescriptor]]:
    """Every parameter of the node: (name, default, descriptor)."""
    return [
        ("config", "", _descriptor("training YAML (see config/train_*.yaml); empty = built-in defaults", _STR,
                                   constraints="an existing file, or empty")),
        ("overrides", [""], _descriptor(
            "config overrides as on the sim2real-train command line, e.g. ['steps=100', 'losses.bbox=2']",
            _STR_ARRAY, constraints="each entry key.sub=value (YAML value)")),
        ("resume", True, _descriptor("continue from the newest valid checkpoint in out_dir", _BOOL)),
        ("export", "", _descriptor("where to export the final EMA generator; empty = <out_dir>/model.safetensors",
                                   _STR, constraints="a .safetensors path, or empty")),
        ("diagnostics_period_s", 1.0, _descriptor("period of /diagnostics", _DBL, float_range=(0.1, 60.0))),
        ("error_linger_s", 2.0, _descriptor(
            "after a training error, keep publishing the ERROR status this long before exiting (so /diagnostics "
            "listeners see it)", _DBL, float_range=(0.0, 60.0))),
        ("save_timeout_s", 600.0, _descriptor(
            "how long ~/save_checkpoint waits for the step in progress to end and the checkpoint to be written",
            _DBL, float_range=(1.0, 86400.0))),
    ]


def _check_parameter(param: Parameter) -> str | None:
    """The reason ``param`` is invalid, or None."""
    value = param.value
    if param.name == "config" and value and not Path(value).is_file():
        return f"config file not found: {value!r}"
    if param.name == "overrides":
        try:
            for entry in value:
                if entry.strip():
                    _check_override(entry)
        except ConfigError as exc:
            return str(exc)
    if param.name == "export" and value and not str(value).endswith(".safetensors"):
        return f"export must be a .safetensors path, got {value!r}"
    return None


# ------------------------------------------------------------------------------------------------------ node


class TrainerNode(Node):
    """The ROS layer around one training run (see the module docstring)."""

    def __init__(self, **node_kwargs: Any) -> None:
        """Declare and validate the parameters, load the config, create the interfaces, start the worker.

        Raises InvalidParameterValueException / ConfigError for invalid parameters or configuration.
        """
        super().__init__(NODE_NAME, **node_kwargs)
        self.add_on_set_parameters_callback(self._validate_parameters)  # also runs when parameters are declared
        for name, default, desc in _parameter_table():
            self.declare_parameter(name, default, desc)
        p = {name: self.get_parameter(name).value for name, _, _ in _parameter_table()}
        self._config_path: str = p["config"]
        self._overrides = [e for e in p["overrides"] if e.strip()]
        self._resume: bool = p["resume"]
        self._save_timeout: float = p["save_timeout_s"]
        self.error_linger_s: float = p["error_linger_s"]
        self.cfg: TrainConfig = load_train_config(self._config_path or None, self._overrides)
        self._export = Path(p["export"] or Path(self.cfg.out_dir) / "model.safetensors")

        self._lock = threading.Lock()
        self.progress = Progress(steps=self.cfg.steps)
        self._stop = threading.Event()
        self.done = threading.Event()  # the worker ended (or a second signal asked to quit now)
        self.exit_code = 1  # set by the worker when it ends
        self._saves = SaveRequests()

        self._pub_progress = self.create_publisher(
            String, "~/progress", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(p["diagnostics_period_s"], self.publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(Trigger, "~/save_checkpoint", self._on_save,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(Trigger, "~/stop", self._on_stop, callback_group=MutuallyExclusiveCallbackGroup())
        self._worker = threading.Thread(target=self._work, name="trainer", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"training {self._config_path or '(built-in defaults)'} {' '.join(self._overrides)} -> "
            f"{self.cfg.out_dir} ({self.cfg.steps} steps, resume={self._resume}); services "
            f"{self.resolve_service_name('~/save_checkpoint')}, {self.resolve_service_name('~/stop')}")

    # ------------------------------------------------------------------------------------------- parameters
    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            reason = _check_parameter(param)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    # --------------------------------------------------------------------------------------- worker thread
    def _work(self) -> None:
        """Build datasets and Trainer, fit until ``steps`` or stop, then final checkpoint + export."""
        try:
            from sim2real.training.cli import build_datasets
            from sim2real.training.trainer import Trainer

            source, target, val = build_datasets(self.cfg)
            trainer = Trainer(self.cfg, source, target, val, resume=self._resume,
                              log=lambda msg: self.get_logger().info(msg), progress=False)
            with self._lock:
                self.progress.device = str(trainer.device)
                self.progress.begin(trainer.step)
            trainer.fit(should_stop=self._stop.is_set, on_step=self._on_step)
            self._finish(trainer)
        except Exception as exc:  # any failure ends the run: say why, loudly, then exit non-zero
            self._fail(exc)
        finally:
            self.done.set()

    def _on_step(self, trainer: Trainer, losses: dict[str, float]) -> None:
        """Step boundary (worker thread): progress, then any requested checkpoint."""
        now = time.monotonic()
        log_step = trainer.step % self.cfg.log_every == 0 or trainer.step >= self.cfg.steps
        with self._lock:
            self.progress.update(trainer.step, losses, now, measure=log_step)
            payload = self.progress.to_json(now) if log_step else None
        if payload is not None:
            self._publish(self._pub_progress, String(data=payload))
        requests = self._saves.take()
        if requests:
            self._save(trainer, requests)

    def _save(self, trainer: Trainer, requests: list[Future[str]]) -> None:
        try:
            path = trainer.save_checkpoint()
        except Exception as exc:  # a failed save (disk full, ...) fails the request, not the run
            self.get_logger().error(f"requested checkpoint at step {trainer.step} failed: {exc!r}")
            with self._lock:
                self.progress.save_error = repr(exc)
            SaveRequests.resolve(requests, error=exc)
            return
        with self._lock:
            self.progress.last_checkpoint, self.progress.save_error = str(path), ""
        self.get_logger().info(f"checkpoint (requested) at step {trainer.step}: {path}")
        SaveRequests.resolve(requests, path=str(path))

    def _finish(self, trainer: Trainer) -> None:
        stopped = self._stop.is_set() and trainer.step < self.cfg.steps
        with self._lock:
            self.progress.state = "finishing"
        self.get_logger().info(f"{'stopped' if stopped else 'finished'} at step {trainer.step}: validating, "
                               "writing the final checkpoint and exporting")
        path = trainer.save_checkpoint(trainer.validate())
        SaveRequests.resolve(self._saves.close("training has ended"), path=str(path))
        out = trainer.export(self._export)
        with self._lock:
            self.progress.state, self.progress.last_checkpoint = "done", str(path)
        self.get_logger().info(f"final checkpoint {path}; exported {out}")
        self.publish_diagnostics()
        self.exit_code = 0

    def _fail(self, exc: Exception) -> None:
        self.get_logger().error(f"training failed: {exc!r}\n{traceback.format_exc()}")
        SaveRequests.resolve(self._saves.close(f"training failed: {exc!r}"), error=RuntimeError(repr(exc)))
        with self._lock:
            self.progress.state, self.progress.error = "error", f"{type(exc).__name__}: {exc}"
        self.publish_diagnostics()
        self.exit_code = 1

    @property
    def running(self) -> bool:
        """Whether the training thread is still alive."""
        return self._worker.is_alive()

    def join_worker(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for the training thread to return."""
        self._worker.join(timeout)

    # ------------------------------------------------------------------------------------ services, timers
    def _on_save(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Queue a checkpoint for the next step boundary and wait (bounded) for the worker's answer."""
        future = self._saves.request()
        try:
            path = future.result(timeout=self._save_timeout)
        except FutureTimeout:
            future.cancel()
            response.success, response.message = False, (
                f"no step boundary within {self._save_timeout:g} s (save_timeout_s); request withdrawn")
        except Exception as exc:
            response.success, response.message = False, f"checkpoint not written: {exc}"
        else:
            response.success, response.message = True, path
        return response

    def _on_stop(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = True, self.request_stop("~/stop service")
        return response

    def request_stop(self, why: str) -> str:
        """Ask the worker to stop after the step in progress; returns what will happen (thread-safe)."""
        with self._lock:
            state, step = self.progress.state, self.progress.step
        if state in ("done", "error", "finishing"):
            return f"training already {state} at step {step}"
        self._stop.set()
        message = (f"stopping after the step in progress (step {step}; {why}): final checkpoint in "
                   f"{Path(self.cfg.out_dir) / 'checkpoints'}, export to {self._export}")
        self.get_logger().info(message)
        return message

    def publish_diagnostics(self) -> None:
        """One ``/diagnostics`` status with the run's state (timer, and at the end of the run)."""
        info = {"out_dir": self.cfg.out_dir, "config": self._config_path, "export": str(self._export)}
        with self._lock:
            level, message, values = self.progress.diagnostic(info)
            device = self.progress.device
        status = DiagnosticStatus(level=bytes([level]), name=f"{self.get_fully_qualified_name()}: training",
                                  message=message, hardware_id=device,
                                  values=[KeyValue(key=k, value=v) for k, v in values])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._publish(self._pub_diag, array)

    def _publish(self, publisher: Any, msg: Any) -> None:
        try:
            publisher.publish(msg)
        except Exception as exc:  # e.g. RCLError during shutdown: never let it end training
            self.get_logger().warning(f"publish on {publisher.topic_name} failed: {exc!r}")


def _spin_until_done(node: TrainerNode) -> int:
    """Spin on a thread until the run ends; SIGINT/SIGTERM = graceful stop, a second one = quit now."""
    executor = OrderlyMultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    signals = 0
    lingering = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal signals
        signals += 1
        if node.done.is_set():
            lingering.set()  # cut the error linger short
        elif signals == 1:
            node.request_stop(signal.Signals(signum).name)
        else:
            node.done.set()  # quit now: the worker (a daemon thread) dies with the process

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    for signum in RECEIVED:  # signals while the node was built (sim2real.nodes.start caught them)
        on_signal(signum, None)

    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException):
            executor.spin()

    thread = threading.Thread(target=spin, name="executor", daemon=True)
    thread.start()
    try:
        node.done.wait()
        if signals < 2:
            node.join_worker(timeout=10.0)  # it has ended its work: let the thread return
        if node.exit_code != 0 and signals < 2 and node.error_linger_s > 0:
            node.get_logger().info(f"publishing the ERROR status for {node.error_linger_s:g} s (error_linger_s)")
            lingering.wait(node.error_linger_s)
    finally:
        executor.shutdown(timeout_sec=5.0)
        thread.join(timeout=5.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signals < 2 or not node.running:
        return node.exit_code
    node.get_logger().error("quit on a second signal before the run ended: nothing saved since the last checkpoint")
    return 1


def main(args: list[str] | None = None) -> int:
    """Entry point (``trainer_node``): 0 after the final checkpoint + export (or when stopped while it still
    imported, :mod:`sim2real.nodes.start`), 1 on any error."""
    if stopped_before_start(NODE_NAME):
        return 0
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        try:
            node = TrainerNode()
        except Exception as exc:  # invalid parameters or configuration: say why and exit
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
            return 1
        code = _spin_until_done(node)
        quit_now = node.running
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    if quit_now:  # the training thread is inside torch: skip interpreter finalization (it would abort)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    exit_node(main())
