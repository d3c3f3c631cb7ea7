"""Float fields of the training config take exponent notation as written on the command line or in YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim2real.core.errors import ConfigError
from sim2real.training.config import load_train_config


@pytest.mark.parametrize(("raw", "expected"), [("5e-5", 5e-5), ("1E-3", 1e-3), ("-2.5e+2", -250.0), (".5e1", 5.0)])
def test_exponent_without_dot_is_a_float(raw: str, expected: float) -> None:
    # PyYAML (YAML 1.1) reads these as strings; the float field takes them as numbers.
    cfg = load_train_config(None, [f"optim.lr_generator={raw}"])
    assert isinstance(cfg.optim.lr_generator, float) and cfg.optim.lr_generator == pytest.approx(expected)


def test_yaml_file_exponent(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr_discriminator: 3e-4\n")
    assert load_train_config(path).optim.lr_discriminator == pytest.approx(3e-4)


@pytest.mark.parametrize("raw", ["fast", "5e", "e-5", "1e-5x", "nan"])
def test_other_strings_still_rejected(raw: str) -> None:
    with pytest.raises(ConfigError, match="optim.lr_generator: expected float"):
        load_train_config(None, [f"optim.lr_generator={raw}"])


def test_int_field_does_not_take_exponent() -> None:
    with pytest.raises(ConfigError, match="steps: expected int"):
        load_train_config(None, ["steps=1e3"])
