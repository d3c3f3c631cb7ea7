"""Training state: safetensors + JSON round trip, atomic writes, corruption detection, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sim2real.core.errors import CheckpointError
from sim2real.training.state_io import (
    find_resumable,
    list_checkpoints,
    prune_checkpoints,
    read_state,
    write_state,
)


def trained_state() -> dict:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / 100)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).square().mean().backward()
        opt.step()
        sched.step()
    return {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": 3,
            "rng": torch.get_rng_state(), "note": ("a", 1, None), "losses": [0.5, 0.25]}


def assert_equal(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert set(a) == set(b), (set(a), set(b))
        for k in a:
            assert_equal(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_equal(x, y)
    else:
        assert a == b


def test_round_trip_is_exact_including_optimizer_int_keys(tmp_path: Path) -> None:
    state = trained_state()
    write_state(tmp_path, "step_00000003", state)
    loaded = read_state(tmp_path / "step_00000003")
    assert_equal(state, loaded)
    assert set(loaded["opt"]["state"]) == {0, 1, 2, 3}  # int keys restored
    # a restored optimizer continues identically
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    model.load_state_dict(loaded["model"])
    opt = torch.optim.Adam(model.parameters())
    opt.load_state_dict(loaded["opt"])
    assert opt.param_groups[0]["betas"] == (0.5, 0.999)


def test_no_pickle_anywhere(tmp_path: Path) -> None:
    write_state(tmp_path, "step_00000001", trained_state())
    files = sorted(p.name for p in (tmp_path / "step_00000001").iterdir())
    assert files == ["state.json", "state.safetensors"]
    json.loads((tmp_path / "step_00000001" / "state.json").read_text())
    with pytest.raises(CheckpointError, match="cannot store object"):
        write_state(tmp_path, "step_00000002", {"bad": object()})
    assert list_checkpoints(tmp_path) == [tmp_path / "step_00000001"]


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path: Path) -> None:
    write_state(tmp_path, "step_00000001", {"w": torch.ones(3)})

    def disk_full(path: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_state(tmp_path, "step_00000002", {"w": torch.zeros(3)}, extra_files={"gen.safetensors": disk_full})
    assert list_checkpoints(tmp_path) == [tmp_path / "step_00000001"]
    assert not any(".tmp-" in p.name for p in tmp_path.iterdir())
    assert find_resumable(tmp_path) == tmp_path / "step_00000001"
    assert torch.equal(read_state(find_resumable(tmp_path))["w"], torch.ones(3))


def test_corrupt_newest_checkpoint_is_skipped_for_the_previous_one(tmp_path: Path) -> None:
    write_state(tmp_path, "step_00000001", {"w": torch.ones(3)})
    newest = write_state(tmp_path, "step_00000002", {"w": torch.full((3,), 2.0)})
    blob = newest / "state.safetensors"
    blob.write_bytes(blob.read_bytes()[:-4] + b"\xff\xff\xff\xff")
    with pytest.raises(CheckpointError, match="corrupt"):
        read_state(newest)
    assert find_resumable(tmp_path) == tmp_path / "step_00000001"
    (newest / "state.json").write_text("{not json")
    assert find_resumable(tmp_path) == tmp_path / "step_00000001"


def test_find_resumable_empty_and_prune(tmp_path: Path) -> None:
    assert find_resumable(tmp_path / "nothing") is None
    for step in range(1, 6):
        write_state(tmp_path, f"step_{step:08d}", {"step": step})
    deleted = prune_checkpoints(tmp_path, keep_last=2, keep={"step_00000002"})
    assert [p.name for p in deleted] == ["step_00000001", "step_00000003"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002", "step_00000004", "step_00000005"]
    assert find_resumable(tmp_path).name == "step_00000005"
