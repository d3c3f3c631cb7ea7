"""The shipped default model loads from share/sim2real/models, translates a simulator frame, and has its card."""

from __future__ import annotations

import numpy as np

from sim2real.runtime.paths import share_dir
from sim2real.translator.checkpoint import read_checkpoint_document
from sim2real.translator.inference import Translator
from sim_bridge.procedural import ProceduralSimulator, SimConfig


def test_default_model_translates_a_sim_frame() -> None:
    path = share_dir() / "models" / "default.safetensors"
    doc = read_checkpoint_document(path)
    assert doc["config"]["name"] == "lite"
    frame = ProceduralSimulator(SimConfig(width=160, height=96, seed=11)).frame(5)
    out = Translator.from_checkpoint(path, device="cpu").translate(frame.rgb, frame.semantic, frame.instance)
    assert out.shape == frame.rgb.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - frame.rgb.astype(int))
    assert diff.mean() > 1.0, "the trained model should change the image"
    assert diff.mean() < 80.0, "but keep the scene (it starts from the identity colour transform)"


def test_model_card_is_shipped_with_its_pictures() -> None:
    card = share_dir() / "models" / "README.md"
    text = card.read_text()
    for needed in ("steps", "CPU", "sim2real-train config/train_default.yaml", "sim2real-eval", "classwise_pooled",
                   "carla:"):
        assert needed in text, needed
    for picture in ("card/before_after_0.png", "card/loss_curves.png", "card/eval_grid.png", "card/carla_0.png"):
        assert picture in text and (card.parent / picture).is_file(), picture


def test_the_default_model_records_the_training_data_of_every_run_behind_it() -> None:
    """The file (ten steps-0 re-exports, each switching on options that change no weight, of stage 2: steps 0, the
    per-frame prior refitted) carries the records of stage 1b (2 000 steps with the lightness-gain floor) and
    stage 1 (5 600 steps; world 0, validation world 1000), so ``sim2real-eval`` knows every world and folder
    behind the weights."""
    from sim2real.evaluation.provenance import training_provenance

    prov = training_provenance(share_dir() / "models" / "default.safetensors")
    assert prov is not None and prov["unrecorded_init"] == []
    assert prov["world_seeds"] == [0, 1000] and 2718 not in prov["world_seeds"]
    chain, record = [], read_checkpoint_document(share_dir() / "models" / "default.safetensors")["training_data"]
    while record:
        chain.append((record["steps"], record["config"].get("init_from")))
        record = record.get("init")
    assert chain == [*[(0, "models/default.safetensors")] * 10,
                     (0, "runs/lg35/checkpoints/step_00002000"),
                     (2000, "runs/hh_s0/checkpoints/step_00005600"), (5600, None)]
