"""Where installed data lives: share/sim2real (launch, config, models) for an installed or source checkout."""

from __future__ import annotations

from pathlib import Path

PACKAGE = "sim2real"
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def share_dir() -> Path:
    """share/sim2real of the ament prefix that has the package, else the source checkout's root.

    The ament index is asked first (colcon install, a ROS 2 distro, or the venv prefix that
    scripts/setup.sh registers); a plain source checkout falls back to the repository root, which has the same
    ``launch/``, ``config/`` and ``models/`` folders.
    """
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return _SOURCE_ROOT
    try:
        return Path(get_package_share_directory(PACKAGE))
    except PackageNotFoundError:
        return _SOURCE_ROOT


def config_path(name: str) -> Path:
    """A file under share/sim2real/config, e.g. ``config_path("fastdds.xml")``; error if missing."""
    path = share_dir() / "config" / name
    if not path.is_file():
        raise FileNotFoundError(f"config file {name!r} not found in {path.parent}")
    return path


def data_dir() -> Path:
    """The shared test and evaluation data: ``$SIM2REAL_DATA``, else ``../shared/data`` beside the checkout.

    Holds the real frames the judges and baselines use (``camvid/``, ``real/``, ``carla/``); see its README.
    """
    import os

    env = os.environ.get("SIM2REAL_DATA")
    return Path(env) if env else _SOURCE_ROOT.parent / "shared" / "data"
