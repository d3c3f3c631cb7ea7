"""Generator checkpoints: bit-exact round trip, and refusal of unsafe / corrupt / mismatched files."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import safetensors.torch
import torch

from sim2real.core.errors import CheckpointError, ConfigError
from sim2real.core.labels import CLASS_NAMES, IGNORE_ID
from sim2real.translator.checkpoint import (
    METADATA_KEY,
    SCHEMA_VERSION,
    build_generator,
    load_checkpoint,
    read_checkpoint_document,
    save_checkpoint,
    sidecar_path,
    tensor_digest,
)
from sim2real.translator.config import GeneratorConfig, get_generator_config
from sim2real.translator.generator import TranslatorGenerator


def _randomised(cfg: GeneratorConfig, seed: int = 0) -> TranslatorGenerator:
    """A generator whose every float tensor (parameters and buffers) differs from its initialisation."""
    torch.manual_seed(seed)
    gen = TranslatorGenerator(cfg)
    with torch.no_grad():
        for t in gen.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.05)
    return gen.eval()


@pytest.fixture(scope="module")
def lite() -> GeneratorConfig:
    return get_generator_config("lite")


@pytest.fixture(scope="module")
def generator(lite: GeneratorConfig) -> TranslatorGenerator:
    return _randomised(lite)


@pytest.fixture
def ckpt(tmp_path: Path, generator: TranslatorGenerator, lite: GeneratorConfig) -> Path:
    return save_checkpoint(tmp_path / "gen.safetensors", generator, lite, training_data={"frames": 12})


def _rewrite(path: Path, out: Path, *, doc_edit=None, tensors_edit=None) -> Path:
    """Re-save a checkpoint with its embedded document and/or tensors edited (a crafted file)."""
    doc = read_checkpoint_document(path)
    tensors = safetensors.torch.load(path.read_bytes())
    if doc_edit is not None:
        doc_edit(doc)
    if tensors_edit is not None:
        tensors_edit(tensors)
    out.write_bytes(safetensors.torch.save(tensors, metadata={METADATA_KEY: json.dumps(doc)}))
    return out


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip_is_bit_exact(ckpt: Path, generator: TranslatorGenerator, lite: GeneratorConfig) -> None:
    loaded = load_checkpoint(ckpt)
    assert loaded.config == lite
    assert loaded.model_name == "lite"
    expected = generator.state_dict()
    assert loaded.state_dict.keys() == expected.keys()
    for name, t in expected.items():
        got = loaded.state_dict[name]
        assert got.dtype == t.dtype and got.shape == t.shape, name
        assert torch.equal(got, t), f"tensor {name} changed in the round trip"

    doc = loaded.metadata
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["config"] == lite.to_dict()
    assert doc["classes"]["names"] == list(CLASS_NAMES)
    assert doc["classes"]["ignore_id"] == IGNORE_ID
    assert doc["input_normalization"]["rgb"]["formula"] == "x / 127.5 - 1"
    assert doc["training_data"] == {"frames": 12}
    assert doc["weights"] == "raw"
    assert doc["created_at"].endswith("+00:00")
    assert doc["tensor_sha256"] == tensor_digest(expected)

    rebuilt = build_generator(loaded)
    assert not rebuilt.training
    for name, t in rebuilt.state_dict().items():
        assert torch.equal(t, expected[name]), name


def test_sidecar_holds_the_same_document_and_no_temp_files_remain(ckpt: Path) -> None:
    side = sidecar_path(ckpt)
    assert side.name == "gen.json"
    assert json.loads(side.read_text()) == read_checkpoint_document(ckpt)
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["gen.json", "gen.safetensors"]


def test_loading_ignores_the_sidecar(ckpt: Path, lite: GeneratorConfig) -> None:
    sidecar_path(ckpt).write_text(json.dumps({"schema_version": 99}))
    assert load_checkpoint(ckpt).config == lite


def test_overwrite_replaces_atomically(tmp_path: Path, lite: GeneratorConfig) -> None:
    path = tmp_path / "g.safetensors"
    save_checkpoint(path, _randomised(lite, seed=1), lite, sidecar=False)
    second = _randomised(lite, seed=2)
    save_checkpoint(path, second, lite, ema=True, sidecar=False)
    loaded = load_checkpoint(path)
    assert loaded.metadata["weights"] == "ema"
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in second.state_dict().items())
    assert [p.name for p in tmp_path.iterdir()] == ["g.safetensors"]


def test_save_validates_arguments(tmp_path: Path, generator: TranslatorGenerator, lite: GeneratorConfig) -> None:
    with pytest.raises(CheckpointError, match=r"must end in '\.safetensors'"):
        save_checkpoint(tmp_path / "g.pt", generator, lite)
    with pytest.raises(CheckpointError, match="training_data must be JSON-serialisable"):
        save_checkpoint(tmp_path / "g.safetensors", generator, lite, training_data={"bad": object()})
    other = GeneratorConfig(name="custom", base_channels=8)
    with pytest.raises(ConfigError, match="base_channels: expected 8, got 16"):
        save_checkpoint(tmp_path / "g.safetensors", generator, other)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ unsafe files


class _Payload:
    """Unpickling this creates ``marker``: proof that a loader executed pickle code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_pickle_checkpoint_is_refused_without_running_it(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_Payload(marker), protocol=protocol))
    expected = "pickle / torch.save file" if protocol >= 2 else "not a safetensors file"
    with pytest.raises(CheckpointError, match=expected) as info:
        load_checkpoint(evil)
    assert str(evil) in str(info.value)
    assert not marker.exists(), "load_checkpoint executed pickle code"
    # control: the payload is live, so the assertion above can fail
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control), protocol=protocol)).close()
    assert control.exists()


def test_torch_save_files_are_refused_without_running_them(tmp_path: Path, generator: TranslatorGenerator) -> None:
    marker = tmp_path / "pwned"
    zipped = tmp_path / "zip.safetensors"
    torch.save({"state": generator.state_dict(), "hook": _Payload(marker)}, zipped)
    assert zipfile.is_zipfile(zipped)
    with pytest.raises(CheckpointError, match=r"zip archive \(torch\.save file\); sim2real loads safetensors only"):
        load_checkpoint(zipped)
    legacy = tmp_path / "legacy.pt"
    torch.save({"hook": _Payload(marker)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"is a pickle / torch\.save file"):
        load_checkpoint(legacy)
    assert not marker.exists()


def test_valid_checkpoint_starting_with_0x80_is_not_mistaken_for_a_pickle(
    tmp_path: Path, generator: TranslatorGenerator, lite: GeneratorConfig
) -> None:
    # a safetensors file starts with its u64 LE header length, so its first byte can be 0x80 like a pickle's
    path = tmp_path / "g.safetensors"
    save_checkpoint(path, generator, lite, extra={"pad": ""}, sidecar=False)
    n0 = int.from_bytes(path.read_bytes()[:8], "little")  # space-padded to a multiple of 8, like 0x80
    save_checkpoint(path, generator, lite, extra={"pad": "x" * ((0x80 - n0) % 256)}, sidecar=False)
    data = path.read_bytes()
    assert data[0] == 0x80, f"header length {int.from_bytes(data[:8], 'little'):#x}"
    assert load_checkpoint(path).config == lite
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match="is truncated"):
        load_checkpoint(truncated)


def test_missing_and_non_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="only 0 bytes"):
        load_checkpoint(empty)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="not a safetensors file: header does not start"):
        load_checkpoint(junk)


@pytest.mark.parametrize("keep", [4, 100, -100, -1])
def test_truncated_checkpoint_is_refused(ckpt: Path, tmp_path: Path, keep: int) -> None:
    data = ckpt.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[:keep])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_checkpoint(bad)
    assert str(bad) in str(info.value)


def test_corrupt_header_and_payload_are_refused(ckpt: Path, tmp_path: Path) -> None:
    data = bytearray(ckpt.read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = bytearray(data)
    header[8 + n // 2] = ord("\x01")  # a control character inside the JSON header
    bad = tmp_path / "header.safetensors"
    bad.write_bytes(bytes(header))
    with pytest.raises(CheckpointError, match="corrupt safetensors header") as info:
        load_checkpoint(bad)
    assert str(bad) in str(info.value)

    payload = bytearray(data)
    payload[-5] ^= 0xFF  # flip bits in the last tensor
    flipped = tmp_path / "payload.safetensors"
    flipped.write_bytes(bytes(payload))
    with pytest.raises(CheckpointError, match="does not match field 'tensor_sha256'"):
        load_checkpoint(flipped)
    assert load_checkpoint(flipped, verify_digest=False).state_dict  # the framing itself is intact


def test_plain_safetensors_without_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match=r"without a __metadata__\['sim2real'\] document"):
        load_checkpoint(path)


# ------------------------------------------------------------------------------------- mismatches


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(schema_version=2), r"field 'schema_version' is 2, expected 1"),
        (lambda d: d.pop("schema_version"), r"field 'schema_version' is '<missing>'"),
        (lambda d: d["classes"]["names"].__setitem__(3, "wal"), r"'classes.names'.*id 3: 'wal', expected 'wall'"),
        (lambda d: d["classes"].update(ignore_id=0), r"field 'classes.ignore_id' is 0, expected 255"),
        (lambda d: d["input_normalization"]["rgb"].update(scale=1 / 255), r"'input_normalization.rgb'"),
        (lambda d: d["config"].update(bogus=1), r"field 'config'.*unknown GeneratorConfig field\(s\) \['bogus'\]"),
        (lambda d: d["config"].update(work_scale=3), r"field 'config'.*work_scale must be one of"),
    ],
)
def test_document_mismatches_name_the_field(ckpt: Path, tmp_path: Path, edit, message: str) -> None:
    bad = _rewrite(ckpt, tmp_path / "bad.safetensors", doc_edit=edit)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(bad)


def test_wrong_shapes_missing_and_unexpected_keys_are_named(ckpt: Path, tmp_path: Path) -> None:
    state = load_checkpoint(ckpt).state_dict
    name = next(k for k, v in state.items() if v.dim() == 4)
    shape = tuple(state[name].shape)
    dropped = sorted(state)[-1]

    def edit(t: dict[str, torch.Tensor]) -> None:
        t[name] = torch.zeros(shape[0] + 1, *shape[1:])
        t.pop(dropped)
        t["extra.weight"] = torch.zeros(3)

    bad = _rewrite(ckpt, tmp_path / "shapes.safetensors", doc_edit=lambda d: d.pop("tensor_sha256"), tensors_edit=edit)
    with pytest.raises(CheckpointError) as info:
        build_generator(load_checkpoint(bad))
    msg = str(info.value)
    assert str(bad) in msg
    assert f"{name}: model {shape}, " in msg and f"({shape[0] + 1}," in msg
    assert f"missing keys (1): {dropped}" in msg
    assert "unexpected keys (1): extra.weight (3,)" in msg


def test_expected_config_mismatch_names_the_field(ckpt: Path, lite: GeneratorConfig) -> None:
    other = GeneratorConfig(name="lite", max_instances=lite.max_instances + 1)
    with pytest.raises(CheckpointError, match=rf"max_instances: expected {lite.max_instances + 1}, got"):
        build_generator(load_checkpoint(ckpt), expected_config=other)
    assert build_generator(load_checkpoint(ckpt), expected_config=lite) is not None
