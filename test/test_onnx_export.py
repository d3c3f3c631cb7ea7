"""ONNX export: graph interface, eager parity (<= 1e-3 in [-1, 1] space), OnnxTranslator, CLI."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from sim2real.core.errors import CheckpointError, ConfigError, LabelError
from sim2real.translator.checkpoint import save_checkpoint
from sim2real.translator.config import GeneratorConfig
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.inference import Translator
from sim2real.translator.onnx_export import (
    OnnxTranslator,
    export_onnx,
    main,
    onnx_parity,
    synthetic_frame,
)

HEIGHT, WIDTH = 37, 61  # not multiples of the lite stride (8): padding happens inside the graph
PARITY_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def translator(generator: TranslatorGenerator, lite: GeneratorConfig) -> Translator:
    return Translator.from_generator(generator, lite, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, generator: TranslatorGenerator) -> Path:
    """The bare generator exported (cfg taken from ``generator.cfg``) at the default opset."""
    path = tmp_path_factory.mktemp("onnx") / "lite.onnx"
    assert export_onnx(generator, path, HEIGHT, WIDTH) == path
    return path


@pytest.fixture(scope="module")
def runner(exported: Path) -> OnnxTranslator:
    return OnnxTranslator(exported, intra_op_threads=1)


def test_graph_interface_and_metadata(exported: Path, runner: OnnxTranslator, lite: GeneratorConfig) -> None:
    model = onnx.load(str(exported))
    onnx.checker.check_model(model)

    def sig(values) -> list[tuple[str, int, list[int]]]:
        return [
            (v.name, v.type.tensor_type.elem_type, [d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in values
        ]

    f32, i64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    assert sig(model.graph.input) == [
        ("rgb", f32, [1, 3, HEIGHT, WIDTH]),
        ("semantic", i64, [1, HEIGHT, WIDTH]),
        ("instance", i64, [1, HEIGHT, WIDTH]),
    ]
    assert sig(model.graph.output) == [("output", f32, [1, 3, HEIGHT, WIDTH])]
    assert (runner.height, runner.width) == (HEIGHT, WIDTH)
    assert runner.metadata["config"] == lite.to_dict()
    assert runner.model_name == "lite"
    info = runner.export_info
    assert (info["height"], info["width"], info["max_instances"], info["stride"]) == (HEIGHT, WIDTH, 16, 8)
    assert not list(exported.parent.glob(".*.tmp"))  # the atomic write left no temp file


@pytest.mark.parametrize("num_instances", [0, 3, 20])  # none, a few, more than the cap of 16
def test_parity_with_eager(translator: Translator, runner: OnnxTranslator, num_instances: int) -> None:
    worst = onnx_parity(translator, runner, num_instances=num_instances, seed=num_instances)
    print(f"ONNX parity, {num_instances} instances: max abs difference {worst:.2e}")
    assert worst <= PARITY_TOLERANCE


def test_parity_catches_a_different_network(runner: OnnxTranslator, lite: GeneratorConfig) -> None:
    torch.manual_seed(1)
    other = Translator.from_generator(TranslatorGenerator(lite), lite, device="cpu", precision="fp32")
    with torch.no_grad():
        for t in other.generator.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.05)
    assert onnx_parity(other, runner) > 10 * PARITY_TOLERANCE


def test_body_replicate_padding_exports_with_parity(tmp_path: Path, generator: TranslatorGenerator,
                                                    lite: GeneratorConfig) -> None:
    """lite with body_padding_mode="replicate" (the same weights): the graph matches eager, and its output is
    not the zero-padded model's (the padding reached the exported body)."""
    cfg = dataclasses.replace(lite, body_padding_mode="replicate")
    gen = TranslatorGenerator(cfg)
    gen.load_state_dict(generator.state_dict())
    path = export_onnx(gen.eval(), tmp_path / "body_replicate.onnx", HEIGHT, WIDTH)
    runner = OnnxTranslator(path, intra_op_threads=1)
    assert runner.metadata["config"]["body_padding_mode"] == "replicate"
    assert onnx_parity(gen, runner, num_instances=3) <= PARITY_TOLERANCE
    assert onnx_parity(generator, runner, num_instances=3) > 10 * PARITY_TOLERANCE


def test_high_pass_detail_exports_with_parity(tmp_path: Path, generator: TranslatorGenerator,
                                              lite: GeneratorConfig) -> None:
    """lite with detail_highpass (the same weights, no new ones): the graph matches eager, and its output is not
    the plain detail path's (the box mean reached the exported graph)."""
    cfg = dataclasses.replace(lite, detail_highpass=True)
    gen = TranslatorGenerator(cfg)
    gen.load_state_dict(generator.state_dict())
    runner = OnnxTranslator(export_onnx(gen.eval(), tmp_path / "highpass.onnx", HEIGHT, WIDTH), intra_op_threads=1)
    assert runner.metadata["config"]["detail_highpass"] is True
    assert onnx_parity(gen, runner, num_instances=3) <= PARITY_TOLERANCE
    assert onnx_parity(generator, runner, num_instances=3) > 10 * PARITY_TOLERANCE


@pytest.mark.parametrize("mean", ["class", "class_box"])
def test_class_mean_detail_exports_with_parity(tmp_path: Path, generator: TranslatorGenerator,
                                             lite: GeneratorConfig, mean: str) -> None:
    """lite with the detail path's class-mean high-pass (``detail_mean`` class or class_box, the same weights): the
    graph matches eager, and differs from the box high-pass's output (the class means reached the graph)."""
    box = TranslatorGenerator(dataclasses.replace(lite, detail_highpass=True))
    gen = TranslatorGenerator(dataclasses.replace(lite, detail_highpass=True, detail_mean=mean))
    box.load_state_dict(generator.state_dict())
    gen.load_state_dict(generator.state_dict())
    runner = OnnxTranslator(export_onnx(gen.eval(), tmp_path / "class.onnx", HEIGHT, WIDTH), intra_op_threads=1)
    assert runner.metadata["config"]["detail_mean"] == mean
    assert onnx_parity(gen, runner, num_instances=3) <= PARITY_TOLERANCE
    assert onnx_parity(box.eval(), runner, num_instances=3) > 10 * PARITY_TOLERANCE


def test_identity_start_s_clamp_exports_with_parity(tmp_path: Path, generator: TranslatorGenerator,
                                                    lite: GeneratorConfig) -> None:
    """lite with identity_start (the same, trained-like weights): the clamp in place of tanh reaches the graph."""
    gen = TranslatorGenerator(dataclasses.replace(lite, identity_start=True))
    gen.load_state_dict(generator.state_dict())
    runner = OnnxTranslator(export_onnx(gen.eval(), tmp_path / "clamp.onnx", HEIGHT, WIDTH), intra_op_threads=1)
    assert runner.metadata["config"]["identity_start"] is True
    assert onnx_parity(gen, runner, num_instances=3) <= PARITY_TOLERANCE
    assert onnx_parity(generator, runner, num_instances=3) > 10 * PARITY_TOLERANCE


def test_a_linear_light_camera_exports_with_parity(tmp_path: Path, generator: TranslatorGenerator,
                                                  lite: GeneratorConfig) -> None:
    """lite with camera_gamma 2.2 (the same weights): the graph matches eager, and differs from the display-value
    camera's (the powers reached the exported graph)."""
    gen, display = (TranslatorGenerator(dataclasses.replace(lite, camera_gamma=g)) for g in (2.2, 1.0))
    for g in (gen, display):
        g.load_state_dict(generator.state_dict())
        g.camera.set_optics(1, chromatic_aberration=0.004, blur_sigma=1.1, vignette=(0.4, 0.0))
    runner = OnnxTranslator(export_onnx(gen.eval(), tmp_path / "linear.onnx", HEIGHT, WIDTH), intra_op_threads=1)
    assert runner.metadata["config"]["camera_gamma"] == 2.2
    assert onnx_parity(gen, runner, num_instances=3) <= PARITY_TOLERANCE
    assert onnx_parity(display.eval(), runner, num_instances=3) > 10 * PARITY_TOLERANCE


def test_onnx_translate_matches_eager_uint8(translator: Translator, runner: OnnxTranslator) -> None:
    frames = [synthetic_frame(HEIGHT, WIDTH, seed=s, num_instances=s) for s in range(2)]
    rgb, sem, inst = (np.stack([f[i] for f in frames]) for i in range(3))
    out = runner.translate(rgb, sem, inst)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    ref = translator.translate(rgb, sem, inst)
    assert np.abs(out.astype(np.int16) - ref).max() <= 1
    single = runner(rgb[1], sem[1], inst[1])
    assert single.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(single, out[1])


def test_onnx_translate_validates(runner: OnnxTranslator) -> None:
    rgb, sem, inst = synthetic_frame(HEIGHT + 1, WIDTH)
    expected = rf"frame size \({HEIGHT + 1}, {WIDTH}\) does not match the exported graph \({HEIGHT}, {WIDTH}\)"
    with pytest.raises(ValueError, match=expected):
        runner.translate(rgb, sem, inst)
    rgb, sem, inst = synthetic_frame(HEIGHT, WIDTH)
    with pytest.raises(TypeError, match="takes numpy arrays"):
        runner.translate(torch.from_numpy(rgb), torch.from_numpy(sem), torch.from_numpy(inst.astype(np.int64)))
    with pytest.raises(ValueError, match=r"semantic must have shape"):
        runner.translate(rgb, sem[:-1], inst)
    with pytest.raises(LabelError, match="semantic holds ids"):
        runner.translate(rgb, np.full_like(sem, 30), inst)


def test_export_argument_errors(tmp_path: Path, translator: Translator) -> None:
    with pytest.raises(ConfigError, match=r"opset 16 is not supported: the graph needs opset >= 17"):
        export_onnx(translator.generator, tmp_path / "x.onnx", 32, 32, opset=16)
    with pytest.raises(TypeError, match="needs a generator nn.Module, got dict"):
        export_onnx({}, tmp_path / "x.onnx", 32, 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="height and width must be >= 1, got 0x32"):
        export_onnx(translator.generator, tmp_path / "x.onnx", 0, 32)
    assert not list(tmp_path.iterdir())


def test_cli_exports_and_verifies(
    tmp_path: Path, generator: TranslatorGenerator, lite: GeneratorConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = save_checkpoint(tmp_path / "g.safetensors", generator, lite)
    out = tmp_path / "out" / "g.onnx"
    assert main([str(ckpt), str(out), "--height", "24", "--width", "40", "--opset", "17"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (lite, 24x40, opset 17)" in printed
    worst = float(printed.split("max abs difference ")[1].split()[0])
    assert worst <= PARITY_TOLERANCE
    runner = OnnxTranslator(out)
    assert (runner.height, runner.width) == (24, 40)
    assert json.loads(json.dumps(runner.metadata))["schema_version"] == 1

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    assert main([str(evil), str(tmp_path / "e.onnx"), "--height", "8", "--width", "8"]) == 2
    assert "is a pickle / torch.save file" in capsys.readouterr().err
    assert not (tmp_path / "e.onnx").exists()


def test_onnx_translator_refuses_non_onnx(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        OnnxTranslator(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf")
    with pytest.raises(CheckpointError, match="cannot be opened by onnxruntime"):
        OnnxTranslator(junk)


@pytest.mark.parametrize("padding_mode", ["zeros", "replicate"])
def test_the_detail_path_exports_as_depth1_convolutions(tmp_path: Path, padding_mode: str) -> None:
    """The detail path (mean output, non-zero weights) exported alone: its two convolutions are 3-D ones in the
    graph (5-D weights), ONNX Runtime's optimised graph has no node of its blocked NCHWc layout (the 2-D
    convolutions had two, plus their reorders, on this machine), and its output is the eager one."""
    import onnxruntime as ort

    from sim2real.translator.generator import DetailPath

    torch.manual_seed(0)
    path = DetailPath(4, 8, padding_mode=padding_mode, highpass=3).eval()
    with torch.no_grad():
        for t in path.parameters():
            t.add_(torch.randn_like(t) * 0.2)

    class Mean(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.path = path

        def forward(self, guide: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
            return self.path(guide, features, None)[0]

    guide, features = torch.rand(1, 3, 24, 40) * 2 - 1, torch.randn(1, 4, 6, 10)
    out = tmp_path / "detail.onnx"
    with torch.no_grad():
        torch.onnx.export(Mean(), (guide, features), str(out), dynamo=False, opset_version=17,
                          input_names=["guide", "features"], output_names=["r"])
    model = onnx.load(str(out))
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert sorted(len(weights[n.input[1]]) for n in convs) == [5, 5]
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    session = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    optimised = onnx.load(str(tmp_path / "optimised.onnx"))
    assert [n.op_type for n in optimised.graph.node if n.domain == "com.microsoft.nchwc"] == []
    got = session.run(None, {"guide": guide.numpy(), "features": features.numpy()})[0]
    with torch.no_grad():
        expected = path(guide, features, None)[0].numpy()
    assert np.abs(expected).max() > 0.05  # a path that outputs something
    assert np.abs(got - expected).max() < 1e-5
