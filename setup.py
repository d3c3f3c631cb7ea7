"""ament_python package definition for sim2real (also a plain pip-installable package)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "sim2real"


def share(subdir: str) -> tuple[str, list[str]]:
    """Install every file of ``subdir`` (non-recursive) into share/sim2real/<subdir>."""
    return (f"share/{PACKAGE}/{subdir}", [p for p in glob(f"{subdir}/*") if not p.endswith(".gitkeep")])


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["sim2real", "sim2real.*", "sim_bridge", "sim_bridge.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        share("launch"),
        share("config"),
        share("models"),
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
    entry_points={"console_scripts": []},
)
