"""Simulator adapters: native topics, encodings and class tables -> the canonical sim2real label spaces.

The registry is explicit: :data:`ADAPTERS` maps a simulator name to its adapter, and
:func:`get_adapter` refuses unknown names with the list of valid ones. Each adapter is a frozen
dataclass of tables (see :mod:`sim_bridge.adapters.base`); per-simulator details, sources and caveats
are in ``docs/simulators/``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from sim2real.core.errors import ConfigError

from .airsim import AIRSIM, AirSimAdapter
from .base import ClassTable, DecodeStats, KeyTable, SimulatorAdapter, TopicSet
from .carla import CARLA, CARLA_ROS_BRIDGE, CarlaAdapter
from .isaac import ISAAC, IsaacAdapter, parse_isaac_labels
from .morai import MORAI, MoraiAdapter, load_color_table

__all__ = [
    "ADAPTERS",
    "AirSimAdapter",
    "CarlaAdapter",
    "ClassTable",
    "DecodeStats",
    "IsaacAdapter",
    "KeyTable",
    "MoraiAdapter",
    "SimulatorAdapter",
    "TopicSet",
    "get_adapter",
    "load_color_table",
    "parse_isaac_labels",
]

#: simulator name -> adapter (read-only).
ADAPTERS: Final = MappingProxyType(
    {
        CARLA.name: CARLA,
        CARLA_ROS_BRIDGE.name: CARLA_ROS_BRIDGE,
        ISAAC.name: ISAAC,
        MORAI.name: MORAI,
        AIRSIM.name: AIRSIM,
    }
)


def get_adapter(name: str) -> SimulatorAdapter:
    """The adapter registered as ``name``; ConfigError listing the valid names otherwise."""
    try:
        return ADAPTERS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown simulator {name!r}; valid simulators: {', '.join(sorted(ADAPTERS))}"
        ) from None
