"""Two-process data-parallel training on CPU (torchrun + gloo): the replicas stay identical, rank 0 exports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim2real.translator.inference import Translator

# test/test_trainer.py's FAST list (tiny networks, 32x64 crops, batch 1).
FAST = [
    "batch_size=1", "crop=[32,64]", "resize_short=64", "log_every=1", "image_every=5", "val_every=10",
    "val_frames=1", "checkpoint_every=10", "discriminator.base_channels=16", "discriminator.num_scales=1",
    "aux.box_channels=8", "aux.seg_channels=8", "aux.box_hidden=32",
]

# For the opt-in negative control: the CLI with gradient averaging switched off (each rank keeps its own
# gradients, from its own shard of the data), so the replicas must drift apart and check_replicas() must raise.
NO_AVERAGING = """\
import sys
from sim2real.training import replicas
replicas.Replicas.average_gradients = lambda self, params: None
from sim2real.training.cli import main
sys.exit(main())
"""


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sim_bridge.record_cli import main as record_main

    out = tmp_path_factory.mktemp("simbag") / "sim"
    assert record_main(["record", "--frames", "12", "--out", str(out), "--width", "128", "--height", "64"]) == 0
    return out


def torchrun(tmp_path: Path, sim_bag: Path, real: Path, *target: str) -> tuple[int, str, Path]:
    """Run ``torchrun --standalone --nproc_per_node=2 <target> <tiny overrides>`` (4 steps); (rc, output, run)."""
    run = tmp_path / "run"
    overrides = [*FAST, f"out_dir={run}", "steps=4", "device=cpu", "source.kind=bag", f"source.paths=[{sim_bag}]",
                 f"target.paths=[{real}]"]
    # CUDA hidden: the CLI picks nccl whenever CUDA is available, and this test is about gloo on CPU
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *target,
           *overrides, "--no-resume"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    return result.returncode, result.stdout + result.stderr, run


def test_two_rank_gloo_training_keeps_replicas_identical(tmp_path: Path, sim_bag: Path, shared_data: Path) -> None:
    rc, out, run = torchrun(tmp_path, sim_bag, shared_data / "real" / "seq0000", "-m", "sim2real.training.cli")
    assert rc == 0, out[-6000:]
    # check_replicas(): every rank all-gathers the SHA-256 of all weights and buffers; it raises on a mismatch
    assert "replicas identical on 2 ranks" in out, out[-6000:]
    assert "DDP replicas diverged" not in out
    # rank 0 alone writes: one metrics file with 4 steps, one export, and the export loads and runs
    assert (run / "model.safetensors").is_file()
    rows = [line for line in (run / "metrics.jsonl").read_text().splitlines() if '"g/total"' in line]
    assert len(rows) == 4
    translator = Translator.from_checkpoint(run / "model.safetensors", device="cpu")
    from sim_bridge.procedural import ProceduralSimulator, SimConfig

    frame = ProceduralSimulator(SimConfig(width=64, height=32, seed=1)).frame(0)
    translated = translator.translate(frame.rgb, frame.semantic, frame.instance)
    assert translated.shape == frame.rgb.shape


@pytest.mark.slow
def test_without_gradient_averaging_the_replica_check_fails(tmp_path: Path, sim_bag: Path,
                                                            shared_data: Path) -> None:
    """Negative control: the test above can fail (ranks see different data, so unaveraged replicas diverge)."""
    script = tmp_path / "no_averaging.py"
    script.write_text(NO_AVERAGING)
    rc, out, _ = torchrun(tmp_path, sim_bag, shared_data / "real" / "seq0000", str(script))
    assert rc != 0, out[-6000:]
    assert "DDP replicas diverged" in out and "replicas identical" not in out, out[-6000:]
