"""benchmarks/vehicle_colour.py: each vehicle at its largest view (known answer) and its user errors (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
from vehicle_colour import largest_views, shading_rows  # noqa: E402


def test_each_vehicle_is_kept_once_at_its_largest_view() -> None:
    car, person = 13, 11
    semantic = np.zeros((3, 40, 40), np.int64)
    instance = np.zeros((3, 40, 40), np.int64)
    for t, side in enumerate((20, 30, 25)):  # instance 5, a car, grows then shrinks: largest at frame 1
        instance[t, :side, :side], semantic[t, :side, :side] = 5, car
    instance[:, 35:, 35:], semantic[:, 35:, 35:] = 6, car  # 25 px: too small
    instance[2, 30:, :20], semantic[2, 30:, :20] = 7, person  # not a vehicle
    views = largest_views(semantic, instance, np.zeros(3, np.int64), {car}, min_pixels=100)
    assert views == {(0, 5): 1}
    # the same id in another sequence is another vehicle
    assert largest_views(semantic, instance, np.array([0, 0, 1]), {car}, 100) == {(0, 5): 1, (1, 5): 2}


def test_shading_ratio_and_dark_chroma_have_known_answers() -> None:
    source = np.zeros((20, 40, 3), np.uint8)
    source[:10], source[10:] = 200, 20  # vehicle 1: light body over a black underside
    source[:, 20:] = 128  # vehicle 2: flat grey, no shading to keep
    ids = np.zeros((20, 40), np.int64)
    ids[:, :20], ids[:, 20:] = 1, 2
    (row,) = shading_rows(source, source, ids)  # vehicle 2 is not scored
    assert row[0] == 1.0 and row[1] == row[2] < 1.0
    flat = source.copy()
    flat[:, :20] = 110
    assert abs(shading_rows(source, flat, ids)[0, 0]) < 1e-6
    inverted = 255 - source
    assert shading_rows(source, inverted, ids)[0, 0] < -0.9
    pink = source.copy()
    pink[10:, :20] = (90, 40, 50)  # the underside lifted and tinted
    lifted = shading_rows(source, pink, ids)[0]
    assert 0.0 < lifted[0] < 0.9 and lifted[2] > 10.0


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH / "vehicle_colour.py"), *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120, check=False)


def test_user_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"")
    for args, message in (((str(tmp_path / "none.safetensors"),), "no such file"),
                          ((str(model), "--classes", "car,boat"), "unknown class boat"),
                          ((str(model), "--min-pixels", "10"), "--min-pixels >= 200")):
        run = _run(*args)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr, run.stderr
