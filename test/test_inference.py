"""Translator inference API: shapes, dtypes, padding, batching, determinism, input validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import IGNORE_ID
from sim2real.translator.checkpoint import save_checkpoint
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.inference import (
    Translator,
    denormalize_rgb,
    normalize_rgb,
    pad_to_stride,
    padded_size,
    resolve_device,
    resolve_precision,
)
from sim2real.translator.onnx_export import synthetic_frame


@pytest.fixture(scope="module")
def translator(generator: TranslatorGenerator, lite: GeneratorConfig) -> Translator:
    return Translator.from_generator(generator, lite, device="cpu")


def _batch(height: int, width: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frames = [synthetic_frame(height, width, seed=s, num_instances=s + 1) for s in range(n)]
    return tuple(np.stack([f[i] for f in frames]) for i in range(3))  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ outputs


@pytest.mark.parametrize(("height", "width"), [(37, 61), (8, 16), (1, 1), (360, 641)])
def test_any_size_returns_input_shape_uint8(translator: Translator, height: int, width: int) -> None:
    rgb, sem, inst = synthetic_frame(height, width)
    out = translator.translate(rgb, sem, inst)
    assert isinstance(out, np.ndarray)
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    if height * width > 1:
        assert out.std() > 0  # the network produced an image, not a constant


def test_torch_input_gives_torch_output_equal_to_numpy(translator: Translator) -> None:
    rgb, sem, inst = synthetic_frame(37, 61)
    ref = translator.translate(rgb, sem, inst)
    out = translator.translate(torch.from_numpy(rgb), torch.from_numpy(sem), torch.from_numpy(inst.astype(np.int32)))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and out.shape == (37, 61, 3)
    assert out.device == torch.device("cpu")
    np.testing.assert_array_equal(out.numpy(), ref)


def test_batched_equals_per_frame(translator: Translator) -> None:
    rgb, sem, inst = _batch(37, 61, 3)
    batched = translator.translate(rgb, sem, inst)
    assert batched.shape == (3, 37, 61, 3) and batched.dtype == np.uint8
    single = np.stack([translator.translate(rgb[i], sem[i], inst[i]) for i in range(3)])
    diff = np.abs(batched.astype(np.int16) - single)
    # float reductions differ in the last bits between batch sizes; at most a rounding flip remains
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    x = normalize_rgb(torch.from_numpy(rgb))
    s, i = torch.from_numpy(sem).long(), torch.from_numpy(inst.astype(np.int64))
    y_batch = translator.translate_normalized(x, s, i)
    y_single = torch.cat([translator.translate_normalized(x[k : k + 1], s[k : k + 1], i[k : k + 1]) for k in range(3)])
    assert (y_batch - y_single).abs().max().item() < 1e-4


def test_deterministic_and_instance_sensitive(translator: Translator) -> None:
    rgb, sem, inst = synthetic_frame(40, 64, num_instances=3)
    first = translator.translate(rgb, sem, inst)
    np.testing.assert_array_equal(translator.translate(rgb, sem, inst), first)
    # the instance map is a real input: dropping the instances changes the result
    assert not np.array_equal(translator.translate(rgb, sem, np.zeros_like(inst)), first)


def test_padding_values_and_crop(translator: Translator) -> None:
    rgb = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6)
    sem = torch.ones(2, 5, 6, dtype=torch.long)
    inst = torch.full((2, 5, 6), 7, dtype=torch.long)
    assert padded_size(37, 61, 8) == (40, 64) and padded_size(360, 641, 8) == (360, 648)
    assert padded_size(1, 1, 8) == (16, 16) and padded_size(1, 1, 8, min_cells=1) == (8, 8)
    x, s, i = pad_to_stride(rgb, sem, inst, 8, min_cells=1)
    assert x.shape == (2, 3, 8, 8) and s.shape == i.shape == (2, 8, 8)
    assert torch.equal(x[:, :, :5, :6], rgb) and torch.equal(x[:, :, 7, :6], rgb[:, :, 4, :])
    assert torch.equal(x[:, :, :5, 7], rgb[:, :, :, 5])
    assert (s[:, 5:, :] == IGNORE_ID).all() and (s[:, :, 6:] == IGNORE_ID).all() and (s[:, :5, :6] == 1).all()
    assert (i[:, 5:, :] == 0).all() and (i[:, :, 6:] == 0).all() and (i[:, :5, :6] == 7).all()
    same = pad_to_stride(x, s, i, 8, min_cells=1)
    assert same[0] is x


def test_normalisation_matches_the_checkpoint_formula() -> None:
    u8 = torch.tensor([[[[0, 127, 255]]]], dtype=torch.uint8)  # (1, 1, 1, 3)
    x = normalize_rgb(u8)
    assert x.shape == (1, 3, 1, 1)
    assert torch.allclose(x.flatten(), torch.tensor([-1.0, 127 / 127.5 - 1, 1.0]))
    y = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0]).reshape(1, 5, 1, 1)[:, :3]
    assert denormalize_rgb(y).flatten().tolist() == [0, 0, 128]
    ramp = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 256, 1).expand(1, 1, 256, 3)  # (B, H, W, 3)
    assert torch.equal(denormalize_rgb(normalize_rgb(ramp)), ramp)  # uint8 survives the round trip


def test_from_checkpoint_matches_from_generator(
    tmp_path: Path, translator: Translator, generator: TranslatorGenerator, lite: GeneratorConfig
) -> None:
    path = save_checkpoint(tmp_path / "g.safetensors", generator, lite)
    loaded = Translator.from_checkpoint(path, device="cpu")
    assert loaded.model_name == "lite" and loaded.config == lite and loaded.device == torch.device("cpu")
    assert loaded.metadata["schema_version"] == 1
    rgb, sem, inst = synthetic_frame(37, 61)
    np.testing.assert_array_equal(loaded.translate(rgb, sem, inst), translator.translate(rgb, sem, inst))


def test_options_and_caller_module_untouched(generator: TranslatorGenerator, lite: GeneratorConfig) -> None:
    generator.train()
    try:
        tr = Translator.from_generator(generator, lite, device="cpu", channels_last=False, precision="fp32")
        assert generator.training and all(p.requires_grad for p in generator.parameters())
        assert not tr.generator.training and tr.precision == "fp32" and tr.stride == lite.stride
    finally:
        generator.eval()
    rgb, sem, inst = synthetic_frame(24, 40)
    ref = tr.translate(rgb, sem, inst)
    cl = Translator.from_generator(generator, lite, device="cpu", channels_last=True).translate(rgb, sem, inst)
    assert np.abs(cl.astype(np.int16) - ref).max() <= 1
    bf16 = Translator.from_generator(generator, lite, device="cpu", precision="bf16")
    assert bf16.precision == "bf16"
    out = bf16.translate(rgb, sem, inst)
    assert out.shape == rgb.shape and np.abs(out.astype(np.int16) - ref).mean() < 8
    tr.warmup(20, 30, batch=2)


# ---------------------------------------------------------------------------------------- validation


def test_invalid_inputs_name_the_argument(translator: Translator) -> None:
    rgb, sem, inst = synthetic_frame(16, 24)
    cases = [
        ((rgb.astype(np.float32), sem, inst), ValueError, r"rgb must be uint8, got float32"),
        ((rgb[..., :2], sem, inst), ValueError, r"rgb must have shape \(H, W, 3\) or .*, got \(16, 24, 2\)"),
        ((rgb[None, None], sem, inst), ValueError, r"rgb must have shape"),
        ((rgb, sem[:, :-1], inst), ValueError, r"semantic must have shape \(16, 24\) to match rgb .* got \(16, 23\)"),
        ((rgb, sem, inst[None]), ValueError, r"instance must have shape \(16, 24\) .* got \(1, 16, 24\)"),
        ((rgb, sem.astype(np.float32), inst), ValueError, r"semantic must be an integer array \(uint8 canonical\)"),
        ((rgb, sem, inst.astype(bool)), ValueError, r"instance must be an integer array \(uint16 .*, got bool"),
        ((rgb, torch.from_numpy(sem), inst), TypeError, r"semantic must be a numpy array like rgb, got torch"),
        ((torch.from_numpy(rgb), sem, inst), TypeError, r"semantic must be a torch tensor like rgb, got numpy"),
        ((rgb.tolist(), sem, inst), TypeError, r"rgb must be a numpy array or torch tensor, got list"),
        ((np.zeros((0, 24, 3), np.uint8), sem[:0], inst[:0]), ValueError, r"rgb has an empty dimension"),
    ]
    for args, exc, message in cases:
        with pytest.raises(exc, match=message):
            translator.translate(*args)


def test_label_values_are_checked(translator: Translator) -> None:
    rgb, sem, inst = synthetic_frame(16, 24)
    bad = sem.copy()
    bad[3, 4] = 42
    bad[5, 5] = 19
    with pytest.raises(LabelError, match=r"semantic holds ids \[19, 42\] outside the canonical space 0..18 and 255"):
        translator.translate(rgb, bad, inst)
    with pytest.raises(LabelError, match=r"instance holds ids -1\.\.3"):
        translator.translate(rgb, sem, np.where(inst == 0, -1, inst.astype(np.int32)))
    with pytest.raises(LabelError, match=r"instance holds ids 0\.\.70000"):
        translator.translate(rgb, sem, np.where(inst == 1, 70000, inst.astype(np.int64)))
    sem255 = np.full_like(sem, IGNORE_ID)
    assert translator.translate(rgb, sem255, inst).shape == rgb.shape  # all-ignore is legal


def test_device_and_precision_validation() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match=r"device 'tpu' is not valid; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match=r"device 'meta' is not supported"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"device 'cuda:0' requested but CUDA is not available"):
            resolve_device("cuda:0")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            Translator.from_checkpoint("does-not-matter.safetensors", device="cuda")
    else:
        n = torch.cuda.device_count()
        with pytest.raises(ConfigError, match=rf"CUDA device index {n} out of range, {n} device\(s\) visible"):
            resolve_device(f"cuda:{n}")
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ConfigError, match=r"precision 'fp8' is not valid; expected one of auto, fp32, fp16, bf16"):
        resolve_precision("fp8", cpu)
    with pytest.raises(ConfigError, match=r"precision 'fp16' needs a CUDA device, got device 'cpu'"):
        resolve_precision("fp16", cpu)


def test_warmup_validates(translator: Translator) -> None:
    with pytest.raises(ValueError, match=r"warmup needs height, width, batch >= 1, got 0, 8, 1"):
        translator.warmup(0, 8)


def test_translator_and_device_resolver_are_exported_by_the_package() -> None:
    import sim2real.translator as package
    from sim2real.translator import Translator as Exported
    from sim2real.translator import resolve_device as exported_resolver
    from sim2real.translator.device import resolve_device as resolver
    from sim2real.translator.inference import Translator as Defined

    assert Exported is Defined and exported_resolver is resolver
    assert {"Translator", "resolve_device"} <= set(package.__all__)
