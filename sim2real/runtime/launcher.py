"""``sim2real-launch``: start the ``translate`` node set as processes, without launch / launch_ros.

    sim2real-launch translate [source:=builtin] [namespace:=/car1] [input_namespace:=sim/camera]
                              [model:=M.safetensors] [device:=cpu] [record:=true] [output:=DIR] [storage:=mcap]
                              [params_file:=F] [duration:=S] [<node>.<param>:=<value> ...]

The arguments are those of ``launch/translate.launch.py`` (:data:`sim2real.runtime.launch_description.ARGUMENTS`) plus
``duration`` (seconds; stop after it, default: run until SIGINT / SIGTERM) and per-node parameter overrides such
as ``sim_node.width:=96`` or ``translate_node.warmup_width:=96`` (values read as YAML, as ``-p`` reads them:
``5e-5`` is a number).

Each node runs as ``python -m sim2real.nodes.start <node> --ros-args -r __node:=<node> [-r __ns:=<namespace>]
-r from:=to ... --params-file F -p k:=v ...`` (:func:`sim2real.runtime.launch_description.ros_args`), inheriting
this process's environment and output. Start order: record_node, translate_node, then the source (so nothing the
source publishes is missed while the others start); stop order is the reverse: the source first, then
translate_node (it finishes its frame), then record_node (it closes the bag), each with SIGINT and up to
``STOP_TIMEOUT_S`` before SIGKILL.

SIGINT / SIGTERM / ``duration`` stop everything and exit 0 when every node exited cleanly. A node that exits on
its own stops the others: exit status 0 when it exited with 0 (e.g. ``sim_node.max_frames:=N``), 1 otherwise.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sim2real.core.errors import ConfigError
from sim2real.core.yaml_numbers import exponent_float
from sim2real.runtime.launch_description import ARGUMENTS, LaunchConfig, NodeSpec, describe, ros_args

__all__ = ["LaunchRequest", "main", "node_command", "parse_args", "run"]

STOP_TIMEOUT_S: Final = 15.0
SETTLE_S: Final = 0.5  # between stopping the source and translate_node: frames in flight arrive
USAGE: Final = __doc__.split("\n\n")[1] if __doc__ else ""


@dataclass(frozen=True)
class LaunchRequest:
    """A parsed command line: what to launch and for how long (None: until a signal)."""

    config: LaunchConfig
    duration: float | None


def _yaml_value(text: str) -> Any:
    """``text`` read as YAML, as rcl reads ``-p name:=text``: ``5e-5`` is a float there too (not PyYAML's string)."""
    import yaml

    number = exponent_float(text)
    if number is not None:
        return number
    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text


def parse_args(argv: Sequence[str]) -> LaunchRequest:
    """``["translate", "source:=builtin", "sim_node.width:=96", ...]`` -> :class:`LaunchRequest`."""
    if not argv or argv[0] != "translate":
        raise ConfigError(f"usage: {USAGE.strip()}\n(the only launch is 'translate')")
    values: dict[str, str] = {}
    node_params: dict[str, dict[str, Any]] = {}
    duration: float | None = None
    for arg in argv[1:]:
        key, sep, value = arg.partition(":=")
        if not sep or not key:
            raise ConfigError(f"arguments are name:=value, got {arg!r}")
        if key == "duration":
            try:
                duration = float(value)
            except ValueError:
                raise ConfigError(f"duration must be a number of seconds, got {value!r}") from None
            if duration <= 0:
                raise ConfigError(f"duration must be > 0 seconds, got {duration}")
        elif "." in key:
            node, _, param = key.partition(".")
            node_params.setdefault(node, {})[param] = _yaml_value(value)
        elif key in ARGUMENTS:
            values[key] = value
        else:
            raise ConfigError(f"unknown argument {key!r}; valid: {', '.join(ARGUMENTS)}, duration, <node>.<param>")
    return LaunchRequest(LaunchConfig.from_strings(values, node_params), duration)


def node_command(spec: NodeSpec) -> list[str]:
    """The command line that runs ``spec`` with this interpreter, through :mod:`sim2real.nodes.start` (a stop
    signal while the node still imports ends it cleanly)."""
    return [sys.executable, "-m", "sim2real.nodes.start", spec.module.rpartition(".")[2], *ros_args(spec)]


def _log(message: str) -> None:
    print(f"[sim2real-launch] {message}", file=sys.stderr, flush=True)


def _stop(name: str, proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _log(f"{name} did not stop within {STOP_TIMEOUT_S:g} s after SIGINT: killing it")
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def run(request: LaunchRequest) -> int:
    """Start the nodes, wait for a signal / the duration / a node exiting, stop them in order; exit status."""
    specs = describe(request.config)
    wake = threading.Event()
    reasons: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        reasons.append(signal.Signals(signum).name)
        wake.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    exited_early: dict[str, int] = {}

    def watch(name: str, proc: subprocess.Popen[bytes]) -> None:
        rc = proc.wait()
        if not stopping.is_set():
            exited_early[name] = rc
            wake.set()

    stopping = threading.Event()
    try:
        for spec in reversed(specs):  # record_node, translate_node, then the source
            cmd = node_command(spec)
            _log(f"starting {spec.name}: {' '.join(cmd[1:])}")
            # own session: a terminal's Ctrl-C reaches only this runner, which stops the nodes in order
            procs[spec.name] = subprocess.Popen(cmd, start_new_session=True)  # noqa: S603 - sys.executable -m ours
            threading.Thread(target=watch, args=(spec.name, procs[spec.name]), daemon=True).start()
        if request.config.record:
            _log(f"recording to {request.config.output}")
        if not wake.wait(timeout=request.duration):
            reasons.append(f"duration {request.duration:g} s")
    finally:
        stopping.set()
        codes: dict[str, int] = {}
        for k, spec in enumerate(specs):  # the source first, record_node last
            if spec.name not in procs:
                continue
            codes[spec.name] = _stop(spec.name, procs[spec.name])
            if k < len(specs) - 1:
                time.sleep(SETTLE_S)  # let the frames in flight reach the next node before it stops
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    status = _exit_status(exited_early, codes)
    _log(f"stopped ({', '.join(reasons) or 'node exit'}); exit status {status}")
    return status


def _exit_status(exited_early: dict[str, int], codes: dict[str, int]) -> int:
    """1 when a node died (non-zero exit before the stop) or exited non-zero when stopped, else 0."""
    status = 0
    for name, rc in exited_early.items():
        if rc == 0:
            _log(f"{name} finished (exit 0): stopped the others")
        else:
            _log(f"{name} died with exit status {rc}: stopped the others")
            status = 1
    for name, rc in codes.items():
        if name not in exited_early and rc != 0:
            _log(f"{name} exited with status {rc} when stopped")
            status = 1
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``sim2real-launch``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        request = parse_args(args)
    except ConfigError as exc:
        print(f"sim2real-launch: {exc}", file=sys.stderr)
        return 2
    return run(request)


if __name__ == "__main__":
    sys.exit(main())
