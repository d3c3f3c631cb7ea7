"""The learnability check's camera look (sim_bridge/procedural/look.py): its tone curve's inverse and re-rendering
an optics-free frame through the look's optics."""

from __future__ import annotations

import dataclasses

import numpy as np

from sim2real.core.labels import TRAIN_ID
from sim_bridge.procedural.look import CameraLook, display_to_linear, render_look, through_look_optics


def tone(v: np.ndarray, look: CameraLook) -> np.ndarray:
    """The look's tone curve, written out (module docstring, step 7)."""
    w2 = look.white_point**2
    return np.clip(v * (1 + v / w2) / (1 + v), 0, 1) ** (1 / 2.2)


def test_display_to_linear_inverts_the_tone_curve() -> None:
    look = CameraLook()
    v = np.linspace(0, look.white_point, 101, dtype=np.float32)
    np.testing.assert_allclose(display_to_linear(tone(v, look), look), v, atol=1e-4)
    assert float(display_to_linear(np.ones(1), look)[0]) == np.float32(look.white_point)


def test_an_optics_free_look_through_the_look_optics_is_the_look() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)
    semantic = np.full((40, 64), TRAIN_ID["road"], np.int64)
    semantic[:20] = TRAIN_ID["sky"]
    semantic[10:30, 20:40] = TRAIN_ID["car"]
    look = CameraLook()
    bare = dataclasses.replace(look, chromatic_aberration=0.0, blur_sigma=0.0, vignette=0.0)
    full = render_look(rgb, semantic, 3, look).deterministic
    free = render_look(rgb, semantic, 3, bare).deterministic
    np.testing.assert_allclose(through_look_optics(free, look), full, atol=2e-5)
    # the negative control: another camera's optics are far from the look
    other = dataclasses.replace(look, blur_sigma=2.0, vignette=0.1)
    assert np.abs(through_look_optics(free, other) - full).max() > 0.05
    assert np.abs(free - full).max() > 0.05  # the optics matter on this frame


def test_look_sets_rendered_in_chunks_join_into_the_one_set(tmp_path) -> None:
    from sim2real.evaluation.known_answer import render_look_set, write_look_folder

    whole = render_look_set(6, (24, 40), 1)
    parts = [render_look_set(3, (24, 40), 1, start=0), render_look_set(3, (24, 40), 1, start=3)]
    for name in ("sim", "semantic", "instance", "full", "deterministic"):
        joined = np.concatenate([getattr(p, name).numpy() for p in parts])
        np.testing.assert_array_equal(joined, getattr(whole, name).numpy(), err_msg=name)
    assert parts[0].indices + parts[1].indices == whole.indices
    assert not np.array_equal(parts[0].sim.numpy(), parts[1].sim.numpy())  # the chunks are different frames
    for part, first in zip(parts, (0, 3), strict=True):
        write_look_folder(part, tmp_path / "look", tmp_path / "labels", first=first)
    assert sorted(p.name for p in (tmp_path / "look").iterdir()) == [f"look_{i:05d}.png" for i in range(6)]
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == [f"look_{i:05d}.png" for i in range(6)]
