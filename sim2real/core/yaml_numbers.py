"""Numbers PyYAML reads as strings: it follows YAML 1.1, where ``5e-5`` and ``1E3`` (an exponent, no dot) are not
floats; YAML 1.2, rcl's parameter parser (``-p name:=5e-5``) and Python's ``float`` read them as numbers."""

import re
from typing import Final

EXPONENT_FLOAT: Final = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def exponent_float(text: str) -> float | None:
    """A decimal with an exponent (``"5e-5"`` -> 5e-05; ``"1.5e-3"`` too), surrounding spaces ignored; None for
    any other text."""
    stripped = text.strip()
    return float(stripped) if EXPONENT_FLOAT.fullmatch(stripped) else None
