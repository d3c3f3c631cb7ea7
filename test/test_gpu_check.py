"""benchmarks/gpu_check.sh --dry-run: the GPU check's every phase runs on the CPU with tiny settings, CUDA rows
skipped with a message, so the script is known to work the day a GPU is lent (issue #14)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


@pytest.mark.timeout(400)
def test_gpu_check_dry_run_runs_every_phase(tmp_path: Path) -> None:
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path)], capture_output=True,
                            text=True, timeout=380)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (tmp_path / "gpu_check_report.md").read_text()
    assert result.stdout.strip().endswith(report.strip().splitlines()[-1])  # the report is what it printed
    for phase in ("tests", "bench", "bench_onnx", "train", "node"):
        assert f"## {phase}: ok" in report, report
        assert f"| {phase} | ok |" in report
    assert "needs a CUDA device (benchmarks/gpu_check.sh runs these on one)" in report  # CUDA tests: skipped
    assert "| cuda | skipped: no CUDA device |" in report
    assert "| lite | 64x32 | cpu eager fp32 |" in report  # the bench really timed a row
    assert "resumed at 1" in report and "non-finite rows: none, export: True" in report
    assert "skipped: the node end to end needs CUDA" in report


def test_gpu_check_refuses_unknown_arguments() -> None:
    result = subprocess.run(["bash", str(SCRIPT), "--fast"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "unknown argument --fast" in result.stderr
