"""An output a node could only fail to write at shutdown stops it at start with one clear line (#17, finding 11):
an uncreatable ``stats_file`` (under /proc, or a directory) -> ``cannot start: stats_file '<path>' cannot be
written: ...``, exit status 1, no traceback, nothing else created."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ros_testing import isolated_env, python_cmd


@pytest.mark.ros
@pytest.mark.parametrize("node", ["translate_node", "record_node"])
@pytest.mark.parametrize("where", ["proc", "directory"])
def test_an_uncreatable_stats_file_is_one_clear_error_at_start(tmp_path: Path, node: str, where: str) -> None:
    stats = "/proc/sim2real/stats.json" if where == "proc" else str(tmp_path)
    params = {"translate_node": ["device:=cpu", "warmup_width:=0"],
              "record_node": [f"output:={tmp_path / 'bag'}", "topics:=[/a]"]}[node]
    cmd = python_cmd("-m", f"sim2real.nodes.{node}", "--ros-args",
                     *[a for p in [*params, f"stats_file:={stats}"] for a in ("-p", p)])
    result = subprocess.run(cmd, env=isolated_env(tmp_path / "ros_home"), capture_output=True, text=True,
                            timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"cannot start: stats_file '{stats}' cannot be written: " in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "bag").exists(), "record_node opened the bag before refusing"
