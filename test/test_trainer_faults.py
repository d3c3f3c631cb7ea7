"""Trainer fault tolerance: SIGKILL at random steps, corrupt / truncated bags, a checkpoint write that fails.

* ``sim2real-train`` killed with SIGKILL at seeded random moments (3 times in the default run, 10 in the slow
  one): every restart resumes from the newest checkpoint that verifies (never a corrupt or half-written one),
  loses at most one checkpoint interval of steps, and the last run reaches the target step and exports.
* a truncated / garbage bag: a clear error naming the bag; ``check_bags(..., skip_bad=True)`` (the
  ``--skip-bad-files`` policy) trains on the others.
* a checkpoint write that fails (disk full, simulated) leaves the previous checkpoint intact and resumable.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim2real.core.errors import BagError
from sim2real.training.bag_health import check_bag, check_bags, with_checked_bags
from sim2real.training.state_io import find_resumable, list_checkpoints, read_state

CHECKPOINT_EVERY = 2
TINY = [
    "batch_size=1", "crop=[32,64]", "resize_short=64", "log_every=1", "image_every=100000", "val_every=100000",
    "val_frames=1", f"checkpoint_every={CHECKPOINT_EVERY}", "keep_last=3", "discriminator.base_channels=16",
    "discriminator.num_scales=1", "aux.box_channels=8", "aux.seg_channels=8", "aux.box_hidden=32", "device=cpu",
    "source.kind=procedural", "source.frames=8", "source.sim_width=128", "source.sim_height=64",
    "target.kind=folder",
]


def tiny(out: Path, real: Path, steps: int) -> list[str]:
    """Overrides of a tiny CPU run into ``out``."""
    return [*TINY, f"out_dir={out}", f"steps={steps}", f"target.paths=[{real}]"]


def logged_steps(metrics: Path, offset: int = 0) -> list[int]:
    """Steps of the complete lines of metrics.jsonl after byte ``offset`` (a killed writer may leave half a line)."""
    if not metrics.is_file():
        return []
    steps = []
    with open(metrics, "rb") as f:
        f.seek(offset)
        for line in f.read().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "g/total" in row:
                steps.append(int(row["step"]))
    return steps


def newest_valid_step(ckpt_dir: Path) -> int:
    """Step of the newest checkpoint directory that verifies (0 when none), found independently of find_resumable."""
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            read_state(path)
        except Exception:
            continue
        return int(path.name.removeprefix("step_"))
    return 0


def train_cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "sim2real.training.cli", *args]


def _wait_for(predicate: object, proc: subprocess.Popen, log: Path, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert proc.poll() is None, f"trainer exited early:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"trainer made no progress ({what})"
        time.sleep(0.05)


def kill_and_resume(tmp_path: Path, real: Path, kills: int, steps: int, seed: int) -> list[dict[str, int]]:
    """Run ``sim2real-train``, SIGKILL it ``kills`` times at seeded random moments, then let it finish.

    Progress is read from metrics.jsonl, which the trainer truncates to the resumed step when it resumes
    (so after the "resumed from" line the file shows this run's progress only).
    """
    rng = random.Random(seed)
    out = tmp_path / "run"
    metrics, ckpts = out / "metrics.jsonl", out / "checkpoints"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    history: list[dict[str, int]] = []
    expected_resume = 0
    for k in range(kills + 1):
        log = tmp_path / f"run{k}.log"
        # without a checkpoint to resume from, old rows stay: read only what this run appends
        offset = metrics.stat().st_size if (metrics.is_file() and expected_resume == 0) else 0
        with open(log, "wb") as f:
            proc = subprocess.Popen(train_cmd(tiny(out, real, steps)), env=env, stdout=f, stderr=subprocess.STDOUT)
        try:
            if k == kills:  # the last run finishes
                assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
            else:
                if expected_resume:
                    _wait_for(lambda log=log: "resumed from" in log.read_text(errors="replace"), proc, log, "resume")
                kill_at = min(steps - 1, expected_resume + rng.randint(1, 2 * CHECKPOINT_EVERY))
                _wait_for(lambda o=offset, n=kill_at: max(logged_steps(metrics, o), default=0) >= n, proc, log,
                          f"step {kill_at}")
                time.sleep(rng.uniform(0.0, 1.0))  # anywhere inside the next step, checkpoint writes included
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = log.read_text(errors="replace")
        resumed = re.search(r"resumed from (\S+) at step (\d+)", text)
        resumed_step = int(resumed.group(2)) if resumed else 0
        assert resumed_step == expected_resume, (
            f"run {k} resumed at step {resumed_step}, the newest valid checkpoint was step {expected_resume}")
        if resumed:  # the checkpoint find_resumable verified before this run started, never a temporary one
            assert Path(resumed.group(1)) == ckpts / f"step_{expected_resume:08d}"
        run_steps = logged_steps(metrics, offset)
        reached = max(run_steps, default=resumed_step)
        if expected_resume:  # rows up to the resumed step, then this run's: one row per step
            assert run_steps == list(range(1, reached + 1)), f"run {k}: metrics rows {run_steps}"
        elif run_steps:
            assert run_steps == list(range(1, reached + 1)), f"run {k} (fresh start): rows {run_steps}"
        history.append({"run": k, "resumed": resumed_step, "reached": reached})
        if k < kills:
            # what the next run must resume from: find_resumable's choice, which must verify and be recent
            found = find_resumable(ckpts)
            expected_resume = int(found.name.removeprefix("step_")) if found else 0
            assert expected_resume >= newest_valid_step(ckpts) - CHECKPOINT_EVERY
            assert reached - expected_resume <= CHECKPOINT_EVERY, (
                f"kill {k}: step {reached} logged but only step {expected_resume} resumable")
    assert history[-1]["reached"] == steps
    assert (out / "model.safetensors").is_file()
    return history


@pytest.mark.parametrize("kills", [
    pytest.param(3, id="3_kills"),
    pytest.param(10, id="10_kills", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
])
def test_sigkill_at_random_steps_resumes_from_the_last_good_checkpoint(tmp_path: Path, shared_data: Path,
                                                                       kills: int) -> None:
    steps = 2 * CHECKPOINT_EVERY * kills + 4
    history = kill_and_resume(tmp_path, shared_data / "real" / "seq0000", kills, steps, seed=20261123 + kills)
    print(history)
    assert len(history) == kills + 1
    assert sum(h["resumed"] > 0 for h in history) >= kills - 1  # nearly every restart resumed, not restarted


# --------------------------------------------------------------------------------------------------- bags


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good bag, a truncated copy, a garbage copy and a copy with one corrupt message (index intact)."""
    from sim_bridge.record_cli import main as record_main

    root = tmp_path_factory.mktemp("bags")
    good = root / "good"
    assert record_main(["record", "--frames", "6", "--out", str(good), "--width", "64", "--height", "32"]) == 0
    out = {"good": good}
    for name in ("truncated", "garbage", "chunk"):
        shutil.copytree(good, root / name)
        mcap = next((root / name).glob("*.mcap"))
        data = mcap.read_bytes()
        if name == "truncated":
            data = data[: len(data) // 2]
        elif name == "garbage":
            data = b"\x89MCAP0\r\n" + bytes(range(256)) * 20
        else:  # one message's frame_id length prefix overwritten: file structure and index intact
            hits = [m.start() for m in re.finditer(rb"sim_camera\x00", data)]
            at = hits[len(hits) // 2]
            data = data[: at - 4] + b"\xff\xff\xff\x7f" + data[at:]
        mcap.write_bytes(data)
        out[name] = root / name
    return out


@pytest.mark.parametrize("name", ["truncated", "garbage"])
def test_a_bad_bag_is_a_clear_error_naming_it(tmp_path: Path, shared_data: Path, bags: dict[str, Path],
                                              name: str, capsys: pytest.CaptureFixture[str]) -> None:
    from sim2real.training.cli import main

    code = main([*tiny(tmp_path / "r", shared_data / "real" / "seq0000", 1), "source.kind=bag",
                 f"source.paths=[{bags['good']},{bags[name]}]"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "sim2real-train: error:" in err and str(bags[name]) in err
    assert "Traceback" not in err
    with pytest.raises(BagError, match=re.escape(str(bags[name]))):
        check_bags([bags["good"], bags[name]])


def test_skip_bad_files_policy(bags: dict[str, Path]) -> None:
    reported: list[str] = []
    kept = check_bags([bags["truncated"], bags["good"], bags["garbage"]], skip_bad=True, log=reported.append)
    assert kept == [bags["good"]]
    assert len(reported) == 2 and str(bags["truncated"]) in reported[0] and str(bags["garbage"]) in reported[1]
    with pytest.raises(BagError, match="truncated.*garbage"):  # without the policy: one error listing both
        check_bags([bags["truncated"], bags["good"], bags["garbage"]])
    with pytest.raises(BagError, match="every bag is unreadable"):
        check_bags([bags["truncated"]], skip_bad=True)
    # a corrupt message passes the index check and is caught by the deep read
    assert check_bag(bags["chunk"]) is None
    problem = check_bag(bags["chunk"], deep=True)
    assert problem is not None and str(bags["chunk"]) in problem.reason
    assert check_bag(bags["good"], deep=True) is None


def test_skip_bad_files_on_a_train_config(tmp_path: Path, shared_data: Path, bags: dict[str, Path]) -> None:
    from sim2real.training.cli import build_datasets
    from sim2real.training.config import load_train_config

    cfg = load_train_config(None, [*tiny(tmp_path / "r", shared_data / "real" / "seq0000", 1), "source.kind=bag",
                                   f"source.paths=[{bags['truncated']},{bags['good']}]"])
    with pytest.raises(BagError, match=re.escape(str(bags["truncated"]))):
        with_checked_bags(cfg)
    checked = with_checked_bags(cfg, skip_bad=True)
    assert checked.source.paths == (str(bags["good"]),)
    source, _, _ = build_datasets(checked)
    assert next(iter(source))["rgb"] is not None


def test_skip_bad_files_flag_of_the_cli_trains_on_the_readable_bags(
        tmp_path: Path, shared_data: Path, bags: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from sim2real.training.cli import main

    args = [*tiny(tmp_path / "r", shared_data / "real" / "seq0000", 1), "source.kind=bag",
            f"source.paths=[{bags['truncated']},{bags['good']}]"]
    code = main([*args, "--skip-bad-files"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert str(bags["truncated"]) in out.out + out.err and "Traceback" not in out.err
    assert (tmp_path / "r" / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------- checkpoint write


def test_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path, shared_data: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from sim2real.training import state_io
    from sim2real.training.cli import build_datasets
    from sim2real.training.config import load_train_config
    from sim2real.training.trainer import Trainer

    out = tmp_path / "run"
    cfg = load_train_config(None, tiny(out, shared_data / "real" / "seq0000", 4))
    trainer = Trainer(cfg, *build_datasets(cfg), progress=False)
    trainer.fit(steps=2)
    ckpts = out / "checkpoints"
    good = ckpts / "step_00000002"
    before = {p.name: p.read_bytes() for p in good.iterdir()}

    real_save = state_io.save_file

    def disk_full(tensors: dict, path: str) -> None:
        real_save(tensors, path)
        with open(path, "r+b") as f:  # half the file made it to disk, then the disk filled up
            f.truncate(os.path.getsize(path) // 2)
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(state_io, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        trainer.fit(steps=4)  # the write at step 4 fails: loud, not silent
    monkeypatch.undo()

    assert [p.name for p in list_checkpoints(ckpts)] == ["step_00000002"]
    assert not [p for p in ckpts.iterdir() if ".tmp-" in p.name], "the half-written checkpoint was left behind"
    assert json.loads((ckpts / "latest.json").read_text())["checkpoint"] == "step_00000002"
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert find_resumable(ckpts) == good
    resumed = Trainer(cfg, *build_datasets(cfg), progress=False)
    assert resumed.step == 2
    resumed.fit()
    assert resumed.step == 4 and find_resumable(ckpts) == ckpts / "step_00000004"




def _resumable_run(tmp_path: Path, shared_data: Path) -> tuple[Path, list[str]]:
    from sim2real.training.cli import main

    out = tmp_path / "run"
    args = tiny(out, shared_data / "real" / "seq0000", 2)
    assert main(args) == 0
    return out, tiny(out, shared_data / "real" / "seq0000", 4)


def test_temporary_checkpoints_of_killed_runs_are_cleaned_up(tmp_path: Path, shared_data: Path) -> None:
    from sim2real.training.cli import main

    out, args = _resumable_run(tmp_path, shared_data)
    stale = out / "checkpoints" / "step_00000003.tmp-999999"  # a run killed while writing (pid long gone)
    stale.mkdir()
    (stale / "state.safetensors").write_bytes(b"half")
    assert main(args) == 0
    assert find_resumable(out / "checkpoints") == out / "checkpoints" / "step_00000004"
    assert not stale.exists(), "the killed run's temporary checkpoint is still there"


def test_resume_after_a_kill_mid_metrics_line(tmp_path: Path, shared_data: Path) -> None:
    from sim2real.training.cli import main

    out, args = _resumable_run(tmp_path, shared_data)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "g/total": 1.2')  # SIGKILL in the middle of a write
    assert main(args) == 0
    assert logged_steps(out / "metrics.jsonl") == [1, 2, 3, 4]
