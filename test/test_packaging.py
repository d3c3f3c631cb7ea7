"""The ament_python package builds with colcon and installs what ROS 2 tooling looks for."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "out", "runs", ".ros",
                                 "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", ".hypothesis")


def console_scripts() -> list[str]:
    """Names of the console_scripts declared in setup.py (read without running it)."""
    out = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; "
         "print('\\n'.join(e.name for e in m.distribution('sim2real').entry_points "
         "if e.group == 'console_scripts'))"],
        capture_output=True, text=True, check=True,
    )
    return [line for line in out.stdout.splitlines() if line]


def test_package_xml_is_format_3_ament_python_with_runtime_depends() -> None:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "sim2real"
    assert root.find("export/build_type").text == "ament_python"
    depends = {e.text for e in root.findall("exec_depend")}
    for dep in ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "launch_ros", "python3-torch"):
        assert dep in depends, f"package.xml lacks <exec_depend>{dep}</exec_depend>"


def test_colcon_build_installs_scripts_and_share_files(tmp_path: Path) -> None:
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent))
    if colcon is None:
        pytest.fail("colcon is not installed in the venv: scripts/setup.sh installs it from requirements/test.txt")
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=IGNORED, symlinks=True)
    ws = repo / "ros2_ws"
    assert (ws / "src" / "sim2real").resolve() == repo.resolve(), "ros2_ws/src/sim2real must point at the repo"
    result = subprocess.run([colcon, "build"], cwd=ws, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    prefix = ws / "install" / "sim2real"
    assert (prefix / "share/ament_index/resource_index/packages/sim2real").is_file()
    share = prefix / "share" / "sim2real"
    assert (share / "package.xml").is_file()
    assert (share / "config" / "fastdds.xml").is_file()
    for sub in ("launch", "config", "models"):
        installed = sorted(str(p.relative_to(share / sub)) for p in (share / sub).rglob("*") if p.is_file())
        expected = sorted(str(p.relative_to(repo / sub)) for p in (repo / sub).rglob("*")
                          if p.is_file() and p.name != ".gitkeep")
        assert installed == expected, f"share/sim2real/{sub}: {installed} != {expected}"
    assert (share / "models" / "default.safetensors").is_file(), "the default model must be installed"
    scripts = console_scripts()
    assert scripts, "setup.py declares no console_scripts"
    for name in scripts:
        exe = prefix / "lib" / "sim2real" / name
        assert exe.is_file(), f"console script {name} not installed in lib/sim2real"
        assert exe.stat().st_mode & 0o111, f"{exe} is not executable"
