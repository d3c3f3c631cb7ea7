"""ament_python package definition for sim2real (also a plain pip-installable package)."""

import os

from setuptools import find_packages, setup

PACKAGE = "sim2real"


def share(subdir: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing every file under ``subdir`` (recursively) into share/sim2real/<subdir>."""
    entries = []
    for root, _dirs, files in sorted(os.walk(subdir)):
        paths = sorted(os.path.join(root, f) for f in files if f != ".gitkeep")
        if paths:
            entries.append((f"share/{PACKAGE}/{root}", paths))
    return entries


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["sim2real", "sim2real.*", "sim_bridge", "sim_bridge.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        # the ROS 2 node executables, where `ros2 run` and launch_ros look (the CLIs below go to bin)
        (f"lib/{PACKAGE}", sorted(os.path.join("scripts", "nodes", n) for n in os.listdir("scripts/nodes"))),
        *share("launch"),
        *share("config"),
        *share("models"),
    ],
    python_requires=">=3.10",
    # Pinned versions live in requirements/*.txt (scripts/setup.sh); these are the loose install_requires.
    install_requires=["numpy", "opencv-python-headless", "PyYAML", "rosbags", "safetensors", "tqdm"],
    extras_require={"test": ["pytest", "pytest-timeout", "hypothesis"]},
    zip_safe=True,
    maintainer="sim2real developers",
    maintainer_email="dev@sim2real.invalid",
    description="In-the-loop sim-to-real image translation for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            # command-line tools only: the ROS 2 nodes are the executables of scripts/nodes/, installed in
            # lib/sim2real above (`ros2 run sim2real translate_node`; `python -m sim2real.nodes.<name>` anywhere)
            "sim2real-launch = sim2real.runtime.launcher:main",
            "sim2real-sim = sim_bridge.record_cli:main",
            "sim2real-train = sim2real.training.cli:main",
            "sim2real-translate-bag = sim2real.apps.translate_bag:main",
            "sim2real-bag-repair = sim2real.apps.bag_repair:main",
            "sim2real-eval = sim2real.evaluation.evaluate:main",
            "sim2real-perception-check = sim2real.evaluation.perception_check:main",
            "sim2real-export-onnx = sim2real.translator.onnx_export:main",
            "sim2real-calibrate-int8 = sim2real.apps.calibrate_int8:main",
            "sim2real-model-info = sim2real.translator.complexity:main",
            "carla_spawn_cameras = sim_bridge.carla_plugin.spawn_cameras:main",
        ],
    },
)
