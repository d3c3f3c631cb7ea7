"""The translate node's ``style`` parameter: a model trained on several target datasets renders in the one named."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sim2real.core.errors import ConfigError, Sim2RealError
from sim_bridge.procedural import ProceduralSimulator, SimConfig

from ros_testing import translate_node_recording_loads


@pytest.fixture(scope="module")
def styled_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lite checkpoint with two target styles whose mean styles differ."""
    from sim2real.translator.checkpoint import save_checkpoint
    from sim2real.translator.config import get_generator_config
    from sim2real.translator.generator import TranslatorGenerator

    torch.manual_seed(0)
    cfg = dataclasses.replace(get_generator_config("lite"), target_styles=("cityscapes", "camvid"))
    gen = TranslatorGenerator(cfg)
    with torch.no_grad():
        gen.target_style_means.normal_(0, 2)  # two clearly different dataset styles
    return save_checkpoint(tmp_path_factory.mktemp("m") / "styled.safetensors", gen, cfg)


def test_load_translator_renders_in_the_named_style(styled_model: Path) -> None:
    from sim2real.nodes.translate.model import load_translator

    frame = ProceduralSimulator(SimConfig(width=96, height=64, seed=3)).frame(2)
    out = {s: load_translator(str(styled_model), "cpu", "fp32", "torch", style=s).translate(
        frame.rgb, frame.semantic, frame.instance) for s in ("", "camvid", "cityscapes")}
    from sim2real.translator.inference import Translator

    direct = Translator.from_checkpoint(styled_model, device="cpu", precision="fp32", backend="torch", style="camvid")
    assert np.array_equal(out["camvid"], direct.translate(frame.rgb, frame.semantic, frame.instance))
    assert not np.array_equal(out["camvid"], out["cityscapes"])
    assert not np.array_equal(out[""], out["camvid"])  # "" is the overall mean style, neither dataset's
    with pytest.raises(ConfigError, match=r"'kitti' is not one of this model's target styles \['cityscapes', "):
        load_translator(str(styled_model), "cpu", "fp32", "torch", style="kitti")
    assert issubclass(ConfigError, Sim2RealError)  # the node reports it like any model that cannot be loaded


@pytest.mark.ros
def test_the_node_passes_its_style_parameter_to_every_model_it_loads(styled_model: Path, ros_context: Any) -> None:
    from rclpy.parameter import Parameter

    with translate_node_recording_loads(ros_context, model=str(styled_model), style="camvid") as (node, calls):
        assert calls == [{"style": "camvid"}]
        assert node.get_parameter("style").value == "camvid"
        assert not node.set_parameters([Parameter("style", value="cityscapes")])[0].successful  # read-only
