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
            # ROS 2 nodes (`ros2 run sim2real <name>` on a full install; `python -m sim2real.nodes.<name>` here)
            "sim_node = sim2real.nodes.sim_node:main",
            "sim_adapter_node = sim2real.nodes.sim_adapter_node:main",
            "translate_node = sim2real.nodes.translate_node:main",
            "record_node = sim2real.nodes.record_node:main",
            "trainer_node = sim2real.nodes.trainer_node:main",
            "monitor_node = sim2real.nodes.monitor_node:main",
            # command-line tools
            "sim2real-launch = sim2real.runtime.launcher:main",
            "sim2real-sim = sim_bridge.record_cli:main",
            "sim2real-train = sim2real.training.cli:main",
            "sim2real-translate-bag = sim2real.apps.translate_bag:main",
            "sim2real-bag-repair = sim2real.apps.bag_repair:main",
            "sim2real-eval = sim2real.evaluation.evaluate:main",
            "sim2real-perception-check = sim2real.evaluation.perception_check:main",
            "sim2real-export-onnx = sim2real.translator.onnx_export:main",
            "sim2real-model-info = sim2real.translator.complexity:main",
            "carla_spawn_cameras = sim_bridge.carla_plugin.spawn_cameras:main",
        ],
    },
)
