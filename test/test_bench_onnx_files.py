"""benchmarks/bench_onnx_files.py: two exported graphs timed against each other, on small random models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sim2real.translator.config import get_generator_config
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.onnx_export import export_onnx

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_onnx_files.py"


def _export(path: Path, seed: int, height: int = 64, width: int = 96) -> Path:
    torch.manual_seed(seed)
    generator = TranslatorGenerator(get_generator_config("lite")).eval()
    with torch.no_grad():  # a non-zero head, so two seeds translate differently
        for p in generator.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return export_onnx(generator, path, height, width)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def test_the_table_compares_each_file_with_the_first(tmp_path: Path) -> None:
    first, same, other = (_export(tmp_path / f"{name}.onnx", seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    run = _run(str(first), str(same), str(other), "--rounds", "2", "--frames", "1", "--threads", "1")
    assert run.returncode == 0, run.stderr
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in run.stdout.splitlines() if line.startswith("| ") and ".onnx" in line}
    assert list(rows) == ["a.onnx", "b.onnx", "c.onnx"]
    assert rows["a.onnx"][2] == "1.000" and float(rows["a.onnx"][0]) > 0
    assert float(rows["b.onnx"][3]) == 0.0  # the same weights: the same output
    assert float(rows["c.onnx"][3]) > 0.1  # other weights: the difference shows


def test_user_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    small, large = _export(tmp_path / "small.onnx", 0), _export(tmp_path / "large.onnx", 0, 64, 128)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph")
    for args, message in (((str(tmp_path / "missing.onnx"),), "no such file"),
                          ((str(small), str(large)), "different frame sizes"),
                          ((str(small), "--rounds", "0"), ">= 1"),
                          ((str(small), "--onnx-spin-us", "-1"), "--onnx-spin-us >= 0"),
                          ((str(small), str(junk)), "cannot be opened by onnxruntime")):
        run = _run(*args)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize("kind", ["procedural", "synthetic"])
def test_both_frames_run(tmp_path: Path, kind: str) -> None:
    run = _run(str(_export(tmp_path / "a.onnx", 0)), "--rounds", "1", "--frames", "1", "--threads", "1",
               "--frame", kind)
    assert run.returncode == 0 and f"{kind} frame" in run.stdout, run.stderr
