"""A stop signal while a node still imports (sim2real.nodes.start): exit 0, one line, no traceback.

The signal is sent as soon as ``start`` has installed its handlers (read from /proc/<pid>/status), while the
node's module is still importing (about a second here, more on a loaded machine); the control runs the same node
without ``start`` and must end in KeyboardInterrupt, which shows the signal did land inside the imports.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from ros_testing import isolated_env, python_cmd

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler installed for ``sig`` (the SigCgt mask of /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(mask >> (sig - 1) & 1)


def _signal_while_importing(cmd: list[str], sig: int, tmp_path: Path, *, when_caught: int = signal.SIGTERM,
                            ) -> tuple[int, str]:
    """Start ``cmd``, send ``sig`` the moment the process catches ``when_caught`` (SIGTERM: ``start`` has installed
    its handlers; Python's own SIGINT handler is there from the interpreter's start); ``(exit status, output)``."""
    # SIGINT at its default: a job started in the background by a non-interactive shell (a CI runner) inherits it
    # ignored, and Python then installs no KeyboardInterrupt handler of its own
    proc = subprocess.Popen(cmd, env=isolated_env(tmp_path / "ros_home"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509 - one call
    try:
        deadline = time.monotonic() + 30
        while not _catches(proc.pid, when_caught):
            assert proc.poll() is None and time.monotonic() < deadline, "the process never installed a handler"
            time.sleep(0.002)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
        return proc.returncode, out
    finally:  # never leave a node behind (a failing run)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_during_the_imports_ends_the_node_cleanly(sig: int, tmp_path: Path) -> None:
    code, out = _signal_while_importing(python_cmd("-m", "sim2real.nodes.start", "sim_node", "--ros-args",
                                                   "-p", "width:=64", "-p", "height:=48"), sig, tmp_path)
    assert code == 0, out
    assert "[sim_node] stopped before it started" in out, out
    assert "Traceback" not in out and "publishing" not in out, out  # never built, never published


def test_the_trainer_node_also_stops_cleanly_during_its_imports(tmp_path: Path) -> None:
    # a config that does not exist: should the signal ever miss the imports, the node fails at once (no training)
    cmd = python_cmd("-m", "sim2real.nodes.start", "trainer_node", "--ros-args", "-p", "config:=/no/such.yaml")
    code, out = _signal_while_importing(cmd, signal.SIGINT, tmp_path)
    assert code == 0 and "[trainer_node] stopped before it started" in out and "Traceback" not in out, out


def test_control_without_start_the_same_signal_is_a_keyboard_interrupt(tmp_path: Path) -> None:
    """Python catches SIGINT from its start; a node run directly gets it inside its imports."""
    code, out = _signal_while_importing(python_cmd("-m", "sim2real.nodes.sim_node"), signal.SIGINT, tmp_path,
                                        when_caught=signal.SIGINT)
    assert code != 0 and "KeyboardInterrupt" in out, out


def test_an_unknown_node_is_a_usage_error(tmp_path: Path) -> None:
    for args, expected in ((("no_such_node",), "unknown node 'no_such_node'"), ((), "usage:")):
        result = subprocess.run(python_cmd("-m", "sim2real.nodes.start", *args), capture_output=True, text=True,
                                env=isolated_env(tmp_path / "ros_home"), timeout=60)
        assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


def test_the_installed_executables_go_through_start() -> None:
    scripts = Path(__file__).resolve().parents[1] / "scripts" / "nodes"
    from sim2real.nodes.start import NODES

    assert sorted(p.name for p in scripts.iterdir()) == sorted(NODES)
    for script in scripts.iterdir():
        assert f'run("{script.name}")' in script.read_text(), script
