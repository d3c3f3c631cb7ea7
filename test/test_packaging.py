"""The ament_python package builds with colcon and installs what ROS 2 tooling looks for."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ros_testing import isolated_env, ros2_cli

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
    for name in scripts:  # the command-line tools: on PATH (colcon adds install/sim2real/bin)
        exe = prefix / "bin" / name
        assert exe.is_file() and exe.stat().st_mode & 0o111, f"console script {name} not installed in bin/"
    executables = sorted(p.name for p in (prefix / "lib" / "sim2real").iterdir())
    assert executables == NODES, f"lib/sim2real must hold the node executables only, got {executables}"
    for name in executables:
        assert (prefix / "lib" / "sim2real" / name).stat().st_mode & 0o111, f"{name} is not executable"
    # the installed executable runs the node: the procedural simulator publishes 2 frames and exits 0
    result = subprocess.run(
        [str(prefix / "lib" / "sim2real" / "sim_node"), "--ros-args", "-p", "width:=32", "-p", "height:=32",
         "-p", "rate_hz:=50.0", "-p", "max_frames:=2"],
        env=isolated_env(tmp_path / "ros_home"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "max_frames=2 reached" in result.stdout + result.stderr
    # after `colcon build`, `. install/setup.bash` makes ros2 find the installed package and its launch files
    ros2_cli()  # skips here only where the ROS 2 CLI wheels do not exist
    script = ". install/setup.bash && ros2 pkg prefix sim2real && ros2 launch sim2real translate.launch.py --show-args"
    result = subprocess.run(["bash", "-c", script], cwd=ws, env=isolated_env(tmp_path / "ros_home"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == str(prefix), result.stdout
    assert "'namespace':" in result.stdout and "'record_compression':" in result.stdout


NODES = sorted(["monitor_node", "record_node", "sim_adapter_node", "sim_node", "trainer_node", "translate_node"])


def test_node_executables_are_not_console_scripts_and_the_venv_prefix_has_them() -> None:
    """`ros2 run sim2real <node>` finds the nodes in <prefix>/lib/sim2real; the CLIs are console scripts only."""
    scripts = console_scripts()
    assert not set(scripts) & set(NODES), f"node executables must not be console scripts: {scripts}"
    assert sorted(p.name for p in (REPO / "scripts" / "nodes").iterdir()) == NODES
    venv_lib = Path(sys.prefix) / "lib" / "sim2real"  # scripts/setup.sh links them into the venv prefix
    assert sorted(p.name for p in venv_lib.iterdir()) == NODES, "re-run scripts/setup.sh"
    for name in NODES:
        assert os.access(venv_lib / name, os.X_OK), f"{venv_lib / name} is not executable"


def test_ros2_pkg_executables_lists_only_the_nodes(tmp_path: Path) -> None:
    ros2 = ros2_cli()
    result = subprocess.run([ros2, "pkg", "executables", "sim2real"], env=isolated_env(tmp_path / "ros_home"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(line.split()[1] for line in result.stdout.splitlines()) == NODES


def test_colcon_sees_no_warning_from_the_environment_script(tmp_path: Path) -> None:
    """.venv is on AMENT_PREFIX_PATH (env.sh): colcon accepts it as a prefix (it has local_setup.* files)."""
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent))
    assert colcon is not None
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    result = subprocess.run([colcon, "build"], cwd=ws, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "AMENT_PREFIX_PATH": sys.prefix})
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr and "local_setup" not in result.stderr, result.stderr
