"""Helpers that isolate each test's ROS graph: a locked, unique ROS_DOMAIN_ID and a private ROS_HOME.

Domain ids are taken with an exclusive ``flock`` on ``/tmp/sim2real-ros-domains/<id>.lock`` so that
concurrent pytest runs on one machine (developers, CI, helpers) never share a graph.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCK_DIR = Path("/tmp/sim2real-ros-domains")
# Domain ids 0-101 are valid with Fast DDS defaults; keep 0 for humans.
DOMAIN_RANGE = range(1, 101)

_held: list[int] = []  # file descriptors kept open for the life of the process


def allocate_domain_id() -> int:
    """Return a ROS_DOMAIN_ID that no other live process on this machine holds (held until exit)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    start = os.getpid() % len(DOMAIN_RANGE)
    for k in range(len(DOMAIN_RANGE)):
        domain = DOMAIN_RANGE[(start + k) % len(DOMAIN_RANGE)]
        fd = os.open(LOCK_DIR / f"{domain}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held.append(fd)
        return domain
    raise RuntimeError(f"all ROS domain ids {DOMAIN_RANGE.start}..{DOMAIN_RANGE.stop - 1} are in use")


def isolated_env(ros_home: Path, domain_id: int | None = None) -> dict[str, str]:
    """Environment for a child process on its own ROS graph (inherits the venv's runtime variables)."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(allocate_domain_id() if domain_id is None else domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_HOME"] = str(ros_home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def node_env(ros_home: Path) -> tuple[int, dict[str, str]]:
    """``(domain id, environment)`` for a node process under test: its own domain, one inference thread."""
    domain = allocate_domain_id()
    env = isolated_env(ros_home, domain_id=domain)
    env["OMP_NUM_THREADS"] = "1"
    return domain, env


@contextlib.contextmanager
def running(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` (stdout+stderr to ``log``); on exit send SIGINT, then kill if it lingers."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(2)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def python_cmd(*args: str) -> list[str]:
    """A command line running this interpreter (the venv's), e.g. ``python_cmd('-m', 'pkg.mod')``."""
    return [sys.executable, *args]


ROS_CLI_WHEELS = Path(__file__).resolve().parents[1].parent / "shared" / "wheels" / "ros2-cli"


def ros2_cli() -> str:
    """Path of the venv's ``ros2`` command. Skips the test only where the ROS 2 CLI wheels do not exist
    (../shared/wheels/ros2-cli/ absent: a user's clone); fails where they exist but are not installed."""
    import pytest

    ros2 = Path(sys.executable).parent / "ros2"
    if ros2.is_file():
        return str(ros2)
    if (ROS_CLI_WHEELS / "install-ros2-cli.sh").is_file():
        pytest.fail(f"{ROS_CLI_WHEELS} exists but ros2 is not installed in the venv: re-run scripts/setup.sh")
    pytest.skip(f"the ROS 2 command line is not installed (no {ROS_CLI_WHEELS})")


@contextlib.contextmanager
def translate_node_recording_loads(context: Any, **params: Any) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """An in-process TranslateNode on the CPU (fp32, no warm-up, the torch backend for every model) with ``params``
    as extra parameters -> (the node, the keywords each model load got, in order); stopped and destroyed after."""
    from rclpy.parameter import Parameter

    from sim2real.nodes.translate.model import load_translator
    from sim2real.nodes.translate_node import TranslateNode

    calls: list[dict[str, Any]] = []

    def factory(path: str, device: str, precision: str, backend: str, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return load_translator(path, device, precision, "torch", **kwargs)

    overrides = {"device": "cpu", "precision": "fp32", "warmup_width": 0, **params}
    node = TranslateNode(context=context, translator_factory=factory,
                         parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    try:
        yield node, calls
    finally:
        node.stop()
        node.destroy_node()
