"""Opt-in soak (``--run-slow``): benchmarks/soak.py, short. sim 640x360 at 30 Hz -> translate -> record.

``SIM2REAL_SOAK_MINUTES`` sets the length (default 1.5 min here; the benchmark's own default is 10).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from ros_testing import isolated_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from soak import run_soak


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.timeout(1800)
def test_soak_short(tmp_path: Path) -> None:
    minutes = float(os.environ.get("SIM2REAL_SOAK_MINUTES", "1.5"))
    env = isolated_env(tmp_path / "ros_home")
    env["OMP_NUM_THREADS"] = "1"
    figures = run_soak(minutes, 640, 360, 30.0, tmp_path / "soak", env=env)
    print(json.dumps(figures, indent=1))
    assert figures["crashes"] == 0 and figures["launcher_exit"] == 0
    assert figures["rss_growth_pct"] is not None and figures["rss_growth_pct"] < 5.0, figures["rss_growth_pct"]
    assert figures["accounted"], (figures["frames_in"], figures["frames_out"], figures["drops"])
    bag = figures["bag"]
    assert bag["counts"]["/translated/image"] > 0
    assert bag["images_without_matching_labels"] == 0, bag["first_missing"]
    assert bag["images_in_stamp_order"] and bag["duplicate_image_stamps"] == 0
    assert bag["counts"]["/translated/image"] == figures["frames_out"], "recorded fewer translations than published"
    assert figures["passed"]
