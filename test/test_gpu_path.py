"""The CUDA code path, checked on the CPU (issue #14): every finding of the GPU review reproduced through the same
code the GPU runs, with CPU autocast (bf16 / fp16) standing in for CUDA autocast, a tensor that refuses host
conversions standing in for a CUDA tensor, a counting backend standing in for inductor, and two gloo ranks
standing in for two GPUs. Tests marked ``cuda`` run the real thing where a GPU exists (benchmarks/gpu_check.sh)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sim2real.translator.aux_nets import AuxConfig, AuxNets
from sim2real.translator.config import get_generator_config
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.instance_branch import paste_instances
from sim2real.translator.layers import ModulatedConv2d
from sim2real.translator.objective import SourceBatch, TargetBatch, translate_batches, update_generator_state

REPO = Path(__file__).resolve().parents[1]
# test/test_trainer.py's FAST list (tiny networks, 32x64 crops, batch 1) on top of the shipped lite config
FAST = [
    "batch_size=1", "crop=[32,64]", "resize_short=64", "log_every=1", "image_every=5", "val_every=10",
    "val_frames=1", "checkpoint_every=1", "discriminator.base_channels=16", "discriminator.num_scales=1",
    "aux.box_channels=8", "aux.seg_channels=8", "aux.box_hidden=32", "num_workers=0", "source.frames=4",
    "source.sim_width=128", "source.sim_height=64",
]


def _batches(seed: int = 0, batch: int = 2, height: int = 32, width: int = 64) -> tuple[SourceBatch, TargetBatch]:
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, height, width, generator=g) * 2 - 1
    semantic = torch.randint(0, 19, (batch, height, width), generator=g)
    instance = torch.zeros(batch, height, width, dtype=torch.long)
    instance[:, 4:20, 8:40] = 1
    instance[:, 10:28, 30:60] = 2
    semantic[instance > 0] = 13
    return SourceBatch(rgb, semantic, instance), TargetBatch(torch.rand(batch, 3, height, width, generator=g) * 2 - 1)


def _tiny_lite_config(out: Path, real: Path, *extra: str) -> Any:
    from sim2real.training.config import load_train_config

    return load_train_config(REPO / "config" / "train_lite.yaml",
                             [*FAST, f"out_dir={out}", f"target.paths=[{real}]", *extra])


# ------------------------------------------------------------------------------ 1. AMP training step


def test_state_update_after_an_autocast_forward() -> None:
    """The trainer's order: forward + losses under autocast, then the state update (memory, mean styles)."""
    torch.manual_seed(0)
    gen = TranslatorGenerator(get_generator_config("lite")).train()
    aux = AuxNets(AuxConfig(box_channels=8, seg_channels=8, box_hidden=32))
    src, tgt = _batches()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = translate_batches(gen, aux, src, tgt)
    assert out.content_source.features.dtype == torch.bfloat16  # autocast is really on
    keys_before = gen.memory.keys.clone()
    update_generator_state(gen, out)
    assert gen.memory.keys.dtype == torch.float32 and gen.style_mean.dtype == torch.float32
    assert not torch.equal(gen.memory.keys, keys_before)
    assert torch.isfinite(gen.memory.keys).all() and torch.isfinite(gen.memory.values).all()
    assert torch.allclose(gen.memory.keys.norm(dim=-1), torch.ones(()), atol=1e-5)


@pytest.mark.timeout(300)
def test_the_lite_config_trains_and_resumes_under_cpu_bf16_autocast(tmp_path: Path, shared_data: Path) -> None:
    """config/train_lite.yaml as shipped (amp: true), on the CPU with bf16 autocast: steps with the state update,
    a checkpoint, and a resume from it."""
    from sim2real.training.cli import build_datasets
    from sim2real.training.trainer import Trainer

    cfg = _tiny_lite_config(tmp_path / "run", shared_data / "real" / "seq0000", "steps=3", "device=cpu",
                            "amp_dtype=bf16", "checkpoint_every=2")
    assert cfg.amp and cfg.generator_preset == "lite"
    trainer = Trainer(cfg, *build_datasets(cfg), resume=False, progress=False)
    assert trainer.precision.dtype == torch.bfloat16 and not trainer.precision.scaled
    keys = trainer.nets.gen.memory.keys.clone()
    losses = trainer.fit(steps=2)
    assert all(np.isfinite(v) for v in losses.values())
    gen = trainer.nets.gen
    assert gen.memory.keys.dtype == torch.float32 and not torch.equal(gen.memory.keys, keys)
    resumed = Trainer(cfg, *build_datasets(cfg), progress=False)
    assert resumed.step == 2
    assert torch.equal(resumed.nets.gen.memory.keys, gen.memory.keys)
    assert all(np.isfinite(v) for v in resumed.fit().values()) and resumed.step == 3


@pytest.fixture
def restore_determinism():
    yield
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False


def test_deterministic_runs_switch_torch_to_deterministic_algorithms(tmp_path: Path, shared_data: Path,
                                                                     restore_determinism: None) -> None:
    """``deterministic: true``: every op of a training step has a deterministic kernel (on CUDA the others
    raise), the state update included."""
    from sim2real.training.cli import build_datasets
    from sim2real.training.trainer import Trainer

    cfg = _tiny_lite_config(tmp_path / "run", shared_data / "real" / "seq0000", "steps=1", "device=cpu",
                            "deterministic=true")
    trainer = Trainer(cfg, *build_datasets(cfg), resume=False, progress=False)
    assert torch.are_deterministic_algorithms_enabled()
    assert all(np.isfinite(v) for v in trainer.fit().values())


# ------------------------------------------------------------------------------ 3. the paste's precision


def test_instance_paste_runs_in_fp32_under_autocast() -> None:
    g = torch.Generator().manual_seed(1)
    crops = torch.randn(2, 4, 8, 7, 7, generator=g)
    boxes = torch.tensor([[[3.0, 5.0, 41.0, 29.0]] * 4] * 2) + torch.rand(2, 4, 4, generator=g) * 3
    masks = torch.rand(2, 4, 8, 16, generator=g)
    reference = paste_instances(crops, boxes, masks, stride=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pasted = paste_instances(crops, boxes, masks, stride=4)
    assert pasted.dtype == torch.float32
    assert (pasted - reference).abs().max().item() <= 1e-6


# ------------------------------------------------------------------------------ 5a. fp16 epsilons


def test_demodulation_epsilon_survives_fp16() -> None:
    """A zero style scale (s = 0) must give the bias, not 0 * rsqrt(0 + 1e-8 rounded to 0) = NaN."""
    conv = ModulatedConv2d(4, 6, 3, latent_dim=5, padding_mode="zeros")
    with torch.no_grad():
        conv.affine.weight.zero_()
        conv.affine.bias.zero_()
        conv.bias.copy_(torch.arange(6.0))
    x, latent = torch.randn(2, 4, 8, 8), torch.randn(2, 5)
    with torch.autocast("cpu", dtype=torch.float16):
        training = conv(x.requires_grad_(), latent)  # the unfolded path (gradient recorded)
        with torch.inference_mode():
            folded = conv(x[:1].detach(), latent[:1])  # the batch-1 folded inference path
    for y in (training, folded):
        assert torch.isfinite(y).all()
        assert torch.allclose(y.float(), torch.arange(6.0).view(1, 6, 1, 1).expand_as(y), atol=1e-3)


# ------------------------------------------------------------------------------ 5d. host syncs per frame


class _OpCounter(TorchDispatchMode):
    """Counts aten ops by name (overload packet) while active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, Any, tuple, dict]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops.append((func.overloadpacket.__name__, func, args, kwargs))
        return func(*args, **kwargs)

    def count(self, *names: str) -> int:
        return sum(name in names for name, *_ in self.ops)


HOST_SYNCS = ("_local_scalar_dense", "is_nonzero", "item", "equal", "tolist")


def test_label_check_waits_for_the_device_once_per_frame() -> None:
    from sim2real.translator.inference import check_label_values

    semantic = torch.randint(0, 19, (1, 48, 64))
    semantic[0, :4] = 255
    instance = torch.randint(0, 300, (1, 48, 64))
    with _OpCounter() as counter:
        check_label_values(semantic, instance)
    assert counter.count(*HOST_SYNCS) == 1, [n for n, *_ in counter.ops]


# ------------------------------------------------------------------------------ 5c. deterministic state update

#: accumulating aten ops whose CUDA kernels add floats in a nondeterministic order (atomics)
ATOMIC_ACCUMULATION = ("index_add", "index_add_", "scatter_add", "scatter_add_", "index_put", "index_put_",
                       "_index_put_impl_", "put_", "scatter_reduce", "scatter_reduce_")


def _order_dependent(ops: list[tuple[str, Any, tuple, dict]]) -> list[str]:
    """Float accumulations whose result depends on the summation order (integer counts of ones do not)."""
    bad = []
    for name, _func, args, kwargs in ops:
        if name not in ATOMIC_ACCUMULATION:
            continue
        if name.startswith("index_put") or name in ("_index_put_impl_", "put_"):
            accumulate = kwargs.get("accumulate", args[3] if len(args) > 3 else False)
            if not accumulate:
                continue
        target = args[0]
        source = args[-1] if isinstance(args[-1], torch.Tensor) else kwargs.get("src", kwargs.get("source"))
        if name.startswith("scatter_reduce") and args[3] in ("amax", "amin"):
            continue
        if not target.is_floating_point():
            continue
        if isinstance(source, torch.Tensor) and bool((source == 1).all()):
            continue  # counting: sums of ones are exact in float32 up to 2**24, in any order
        bad.append(f"{name} on {target.dtype} {tuple(target.shape)}")
    return bad


def test_state_update_adds_in_a_fixed_order() -> None:
    """The memory / mean-style update must give bit-identical buffers on every run (exact resume on CUDA)."""
    torch.manual_seed(0)
    gen = TranslatorGenerator(get_generator_config("lite")).train()
    src, tgt = _batches(seed=3)
    with torch.no_grad():
        out = translate_batches(gen, None, src, TargetBatch(tgt.rgb, src.semantic))
    with _OpCounter() as counter:
        update_generator_state(gen, out)
    assert not _order_dependent(counter.ops)
    assert counter.count("mm", "matmul", "bmm", "addmm") > 0  # the update really ran


def test_order_dependence_check_sees_index_add() -> None:
    with _OpCounter() as counter:
        torch.zeros(3).index_add_(0, torch.tensor([0, 0, 1]), torch.tensor([0.1, 0.2, 0.3]))
        torch.zeros(3).index_add_(0, torch.tensor([0, 0, 1]), torch.ones(3))
    assert len(_order_dependent(counter.ops)) == 1


# ------------------------------------------------------------------------------ 4. torch.compile


def test_compile_does_not_recompile_for_every_frame_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight (B, H, W) shapes, as a multi-camera node with several resolutions sees them, compile a bounded
    number of graphs (a counting backend stands in for inductor; dynamo's tracing is what is counted)."""
    import torch._dynamo

    from sim2real.translator.inference import Translator

    graphs: list[int] = []

    def counting_backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        graphs.append(len(gm.graph.nodes))
        return gm.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, **{**kw, "backend": counting_backend}))
    torch._dynamo.reset()
    torch.manual_seed(0)
    gen = TranslatorGenerator(get_generator_config("lite"))
    compiled = Translator.from_generator(gen, gen.cfg, device="cpu", precision="fp32", compile=True)
    eager = Translator.from_generator(gen, gen.cfg, device="cpu", precision="fp32")
    shapes = [(1, 40, 72), (1, 48, 80), (1, 56, 64), (2, 40, 72), (3, 48, 80), (1, 64, 96), (2, 64, 96),
              (4, 40, 56)]
    try:
        for b, h, w in shapes:
            src, _ = _batches(seed=b * h, batch=b, height=h, width=w)
            y = compiled.translate_normalized(src.rgb, src.semantic, src.instance)
            assert torch.allclose(y, eager.translate_normalized(src.rgb, src.semantic, src.instance), atol=1e-5)
    finally:
        torch._dynamo.reset()
    assert 1 <= len(graphs) <= 4, f"{len(graphs)} graphs compiled for {len(shapes)} shapes"


# ------------------------------------------------------------------------------ 2. resume on another device


class _OnAccelerator(torch.Tensor):
    """A tensor as ``read_state(map_location="cuda")`` returns it, emulated on the CPU: it refuses every host
    conversion (``numpy()``, ``set_rng_state``) until it is moved with ``.cpu()``, as a CUDA tensor does."""

    def numpy(self, *args: Any, **kwargs: Any) -> np.ndarray:  # type: ignore[override]
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                        "to host memory first.")

    def cpu(self, *args: Any, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        return self.as_subclass(torch.Tensor).clone()

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.to:  # .to("cpu") / .to(device) as a plain tensor
            return func(*[a.as_subclass(torch.Tensor) if isinstance(a, cls) else a for a in args], **(kwargs or {}))
        return super().__torch_function__(func, types, args, kwargs)


def _on_accelerator(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.as_subclass(_OnAccelerator)
    if isinstance(obj, dict):
        return {k: _on_accelerator(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_on_accelerator(v) for v in obj)
    return obj


def test_resume_of_a_state_read_onto_an_accelerator(tmp_path: Path, shared_data: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint written on a 2-GPU machine, resumed where every tensor is read onto the (one) accelerator:
    the RNG states nested in lists (NumPy's key, the per-device CUDA states) must reach their host APIs."""
    from sim2real.training import state_io
    from sim2real.training.cli import build_datasets
    from sim2real.training.trainer import Trainer

    cfg = _tiny_lite_config(tmp_path / "run", shared_data / "real" / "seq0000", "steps=1", "device=cpu")
    datasets = build_datasets(cfg)
    trainer = Trainer(cfg, *datasets, resume=False, progress=False)
    trainer.fit(steps=1)  # checkpoint_every=1: step_00000001 written, RNG states saved after the step
    np_state, torch_state, py_state = np.random.get_state(), torch.get_rng_state(), random.getstate()
    np.random.seed(123)
    torch.manual_seed(123)
    random.seed(123)

    cuda_states = [torch.arange(16, dtype=torch.uint8), torch.arange(16, 32, dtype=torch.uint8)]
    real_unflatten = state_io.unflatten

    def unflatten_onto_accelerator(obj: Any, tensors: Any) -> Any:
        state = real_unflatten(obj, tensors)
        if isinstance(state, dict) and "rng" in state:
            state["rng"] = _on_accelerator({**state["rng"], "cuda": cuda_states})
        return state

    restored: list[tuple[int, torch.Tensor]] = []

    def set_rng_state(new_state: torch.Tensor, device: Any = "cuda") -> None:
        index = device if isinstance(device, int) else torch.device(device).index or 0
        restored.append((index, new_state))

    monkeypatch.setattr(state_io, "unflatten", unflatten_onto_accelerator)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all",
                        lambda states: [set_rng_state(s, i) for i, s in enumerate(states)])
    resumed = Trainer(cfg, *datasets, resume=True, progress=False)
    monkeypatch.undo()

    assert resumed.step == 1
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and np.random.get_state()[2] == np_state[2]
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    # one visible device: only its state is restored, as a host uint8 tensor
    assert [i for i, _ in restored] == [0]
    assert type(restored[0][1]) is torch.Tensor and restored[0][1].device.type == "cpu"
    assert torch.equal(restored[0][1], cuda_states[0])


# ------------------------------------------------------------------------------ 5b. two ranks, one memory

DDP_FAST = [*FAST, "device=cpu", "optim.lr_generator=0.0", "optim.lr_aux=0.0", "checkpoint_every=1000",
            "val_every=1000"]


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One of two gloo ranks: a tiny lite trainer, one step on this rank's own frames, buffers saved.

    Rank 0 always sees the frames of seed 0; rank 1 sees seed 1 (variant 1) or seed 2 (variant 2). The
    generator's and the critics' learning rates are 0, so the memory queries and the target pseudo labels are
    the same in both variants: rank 0's buffers can only differ between them through rank 1's contribution.
    """
    from sim2real.data.datasets import ProceduralSourceDataset
    from sim2real.training.config import load_train_config
    from sim2real.training.trainer import Trainer

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        for variant in (1, 2):
            cfg = load_train_config(REPO / "config" / "train_lite.yaml", [*DDP_FAST, f"out_dir={out_dir}/v{variant}"])
            seed = 0 if rank == 0 else variant
            source = ProceduralSourceDataset(2, 64, 32, seed)
            target = ProceduralSourceDataset(2, 64, 32, 100 + seed)
            trainer = Trainer(cfg, source, target, None, resume=False, progress=False, log=lambda _m: None)
            trainer.train_step(*trainer.next_batches())
            gen = trainer.nets.gen
            np.savez(Path(out_dir) / f"rank{rank}_v{variant}.npz", keys=gen.memory.keys.numpy(),
                     values=gen.memory.values.numpy(), style_mean=gen.style_mean.numpy())
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.timeout(300)
def test_two_gloo_ranks_pool_their_memory_updates(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    buffers = {(r, v): dict(np.load(tmp_path / f"rank{r}_v{v}.npz")) for r in (0, 1) for v in (1, 2)}
    for v in (1, 2):  # rank-consistent: both replicas hold the same state after the step
        for name in ("keys", "values", "style_mean"):
            assert np.array_equal(buffers[0, v][name], buffers[1, v][name]), f"{name} differs between ranks"
    for name in ("keys", "values", "style_mean"):  # and rank 1's frames are in it (pooled, not rank 0's alone)
        assert not np.array_equal(buffers[0, 1][name], buffers[0, 2][name]), f"{name} ignores rank 1's update"


# ------------------------------------------------------------------------------ on a real GPU (skipped without one)

CUDA_STEPS = 4


@pytest.fixture(scope="module")
def rendered_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A target image folder rendered here (a GPU machine may not have ../shared/data)."""
    import cv2

    from sim_bridge.procedural import ProceduralSimulator, SimConfig

    out = tmp_path_factory.mktemp("target")
    sim = ProceduralSimulator(SimConfig(width=256, height=128, seed=7, time_of_day=17.5))
    for i in range(4):
        cv2.imwrite(str(out / f"frame_{i}.png"), sim.frame(i * 5).rgb[:, :, ::-1])
    return out


def _cuda_losses(run: Path, real: Path, *extra: str, interrupt_at: int | None = None) -> dict[int, dict[str, float]]:
    """Per-step losses of a tiny lite run on CUDA (AMP, deterministic kernels where torch has them); with
    ``interrupt_at`` the run stops there and a fresh Trainer resumes it to the end."""
    import json

    from sim2real.training.cli import build_datasets
    from sim2real.training.trainer import Trainer

    cfg = _tiny_lite_config(run, real, f"steps={CUDA_STEPS}", "device=cuda", "deterministic=true",
                            "checkpoint_every=1", *extra)
    trainer = Trainer(cfg, *build_datasets(cfg), progress=False)
    trainer.fit(steps=interrupt_at)
    if interrupt_at is not None:
        trainer = Trainer(cfg, *build_datasets(cfg), progress=False)
        assert trainer.step == interrupt_at
        trainer.fit()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if "g/total" in r}


@pytest.mark.cuda
@pytest.mark.timeout(600)
@pytest.mark.parametrize("amp_dtype", ["fp16", "bf16"])
def test_cuda_amp_training_resumes(tmp_path: Path, rendered_target: Path, amp_dtype: str,
                                   restore_determinism: None) -> None:
    real = rendered_target
    straight = _cuda_losses(tmp_path / "straight", real, f"amp_dtype={amp_dtype}")
    resumed = _cuda_losses(tmp_path / "resumed", real, f"amp_dtype={amp_dtype}", interrupt_at=2)
    assert sorted(straight) == sorted(resumed) == list(range(1, CUDA_STEPS + 1))
    for step in range(1, CUDA_STEPS + 1):  # to rounding: three backward ops have no deterministic CUDA kernel
        for key in ("g/total", "d/total", "aux/total", "g/memory"):
            a, b = straight[step][key], resumed[step][key]
            assert np.isfinite(a) and np.isfinite(b)
            assert abs(a - b) <= 1e-3 * max(1.0, abs(a)), f"step {step} {key}: {a} vs {b}"


@pytest.mark.cuda
@pytest.mark.timeout(600)
def test_cuda_checkpoint_resumes_on_the_cpu_and_back(tmp_path: Path, rendered_target: Path) -> None:
    from sim2real.training.cli import build_datasets
    from sim2real.training.trainer import Trainer

    real = rendered_target
    for first, second in (("cuda", "cpu"), ("cpu", "cuda")):
        run = tmp_path / f"{first}_{second}"
        cfg = _tiny_lite_config(run, real, "steps=2", f"device={first}")
        Trainer(cfg, *build_datasets(cfg), progress=False).fit(steps=1)
        cfg = _tiny_lite_config(run, real, "steps=2", f"device={second}")
        trainer = Trainer(cfg, *build_datasets(cfg), progress=False)
        assert trainer.step == 1 and trainer.device.type == second
        assert all(np.isfinite(v) for v in trainer.fit().values())


@pytest.mark.cuda
def test_cuda_translator_precisions_and_compile_agree(restore_determinism: None) -> None:
    from sim2real.translator.frames import synthetic_frame
    from sim2real.translator.inference import Translator

    rgb, sem, inst = synthetic_frame(360, 640, num_instances=6, seed=2)
    cases = (("full", "fp32", False, 1), ("full", "fp16", False, 6), ("full", "bf16", False, 12),
             ("lite", "fp16", True, 6))  # compiled: lite (inductor takes tens of seconds per network)
    for preset, precision, compile, levels in cases:
        torch.manual_seed(0)
        gen = TranslatorGenerator(get_generator_config(preset))
        cpu = Translator.from_generator(gen, gen.cfg, device="cpu", precision="fp32").translate(rgb, sem, inst)
        tr = Translator.from_generator(gen, gen.cfg, device="cuda", precision=precision, compile=compile)
        out = tr.translate(rgb, sem, inst)
        worst = int(np.abs(out.astype(int) - cpu.astype(int)).max())
        assert worst <= levels, f"{preset} {precision} compile={compile}: {worst} levels from CPU fp32"
        batch = tr.translate(np.stack([rgb, rgb]), np.stack([sem, sem]), np.stack([inst, inst]))
        assert np.abs(batch[1].astype(int) - out.astype(int)).max() <= levels


@pytest.mark.cuda
def test_cuda_state_update_is_bit_reproducible() -> None:
    torch.manual_seed(0)
    gen = TranslatorGenerator(get_generator_config("full")).cuda().train()
    src, tgt = _batches(seed=5, batch=4, height=64, width=128)
    src = SourceBatch(src.rgb.cuda(), src.semantic.cuda(), src.instance.cuda())
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        out = translate_batches(gen, None, src, TargetBatch(tgt.rgb.cuda(), src.semantic))
    start = {k: v.clone() for k, v in gen.state_dict().items() if "memory" in k or "style_mean" in k}
    results = []
    for _ in range(3):
        gen.load_state_dict(start, strict=False)
        update_generator_state(gen, out)
        results.append(torch.cat([gen.memory.keys.flatten(), gen.memory.values.flatten(), gen.style_mean.flatten()]))
    assert all(torch.equal(results[0], r) for r in results[1:])
