"""The image translator: generator, its config and presets, instance branch, class-wise style memory.

Importing this package is light (the config only); the torch modules load on first attribute access::

    from sim2real.translator import Translator, TranslatorGenerator, get_generator_config
    gen = TranslatorGenerator(get_generator_config("lite"))
    tr = Translator.from_checkpoint("models/default.safetensors")

See docs/translator.md for the data flow and design decisions.

Layer rule (checked by test/test_layers.py): may import from sim2real: core.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from sim2real.translator.config import GENERATOR_PRESETS, GeneratorConfig, get_generator_config

__all__ = [
    "DOMAINS",
    "GENERATOR_PRESETS",
    "ClassStyleMemory",
    "ContentCode",
    "GeneratorConfig",
    "InstanceBoxes",
    "InstanceBranch",
    "Translator",
    "TranslatorGenerator",
    "count_macs",
    "count_params",
    "get_generator_config",
    "instance_boxes",
    "resolve_device",
    "roi_align",
]

#: public name -> submodule that defines it (loaded lazily, PEP 562).
_LAZY: Final[dict[str, str]] = {
    "DOMAINS": "generator",
    "ContentCode": "generator",
    "TranslatorGenerator": "generator",
    "InstanceBranch": "instance_branch",
    "InstanceBoxes": "boxes",
    "instance_boxes": "boxes",
    "roi_align": "roi_align",
    "ClassStyleMemory": "memory",
    "count_macs": "complexity",
    "count_params": "complexity",
    "Translator": "inference",
    "resolve_device": "device",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
