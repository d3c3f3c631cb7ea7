"""The node set of ``translate``: one small, pure description shared by the launch file and the runner.

``launch/translate.launch.py`` turns it into ``launch_ros.actions.Node`` actions (full ROS 2 installs);
``sim2real-launch translate`` (:mod:`sim2real.runtime.launcher`) starts the same nodes as ``python -m`` processes
(works with the PyPI wheels, where launch / launch_ros do not exist). No launch or rclpy import here.

Per ``source``:

* ``builtin``: ``sim_node`` (the procedural simulator) publishing ``<namespace>/{image,semantic,instance,
  camera_info}``;
* ``carla`` | ``isaac`` | ``morai`` | ``airsim``: ``sim_adapter_node`` with ``simulator:=<source>``, turning
  the simulator's native topics into the same four canonical topics under ``<namespace>``;
* ``none``: no source node (something else publishes ``<namespace>/*``, e.g. a bag being played);

then ``translate_node`` with its generic topic names remapped (``image`` -> ``<namespace>/image`` ...,
``translated/image`` -> ``<output_namespace>/image`` ...) and the params file (default
``share/sim2real/config/translate.yaml``) plus the ``model`` / ``device`` overrides; and, with
``record:=true``, ``record_node`` writing ``<output_namespace>/{image,semantic,instance,camera_info}`` to the
bag directory ``output`` (it refuses to overwrite one).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from sim2real.core.errors import ConfigError

__all__ = [
    "ARGUMENTS",
    "GENERIC_INPUTS",
    "SIMULATORS",
    "SOURCES",
    "TRANSLATED_OUTPUTS",
    "LaunchArgument",
    "LaunchConfig",
    "NodeSpec",
    "default_params_file",
    "describe",
    "format_param_value",
    "ros_args",
]

SIMULATORS: Final = ("carla", "isaac", "morai", "airsim")
SOURCES: Final = ("builtin", *SIMULATORS, "none")
STORAGES: Final = ("mcap", "sqlite3")
GENERIC_INPUTS: Final = ("image", "semantic", "instance", "camera_info")
TRANSLATED_OUTPUTS: Final = ("image", "semantic", "instance", "camera_info", "preview")
#: what record:=true records, with types: record_node subscribes typed topics at start, so the first
#: translated frames are not lost while it discovers translate_node's publishers
RECORDED: Final[Mapping[str, str]] = MappingProxyType({
    "image": "sensor_msgs/msg/Image", "semantic": "sensor_msgs/msg/Image", "instance": "sensor_msgs/msg/Image",
    "camera_info": "sensor_msgs/msg/CameraInfo",
})
_NAMESPACE: Final = re.compile(r"^(/[A-Za-z_][A-Za-z0-9_]*)+$")
_NODE_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class LaunchArgument:
    """One launch argument: default (a string, as launch passes them), description, allowed values."""

    default: str
    description: str
    choices: tuple[str, ...] | None = None


#: the launch arguments of ``translate`` (the launch file declares exactly these; the runner accepts them).
ARGUMENTS: Final[Mapping[str, LaunchArgument]] = {
    "source": LaunchArgument("builtin", "what publishes the simulator topics: builtin (procedural sim_node), a "
                             "simulator adapter, or none (something else publishes them)", SOURCES),
    "namespace": LaunchArgument("/sim/camera", "namespace of the simulator topics image, semantic, instance, "
                                "camera_info"),
    "output_namespace": LaunchArgument("/translated", "namespace of the translated image, the republished "
                                       "labels and the preview"),
    "model": LaunchArgument("", "generator checkpoint (.safetensors); empty: the params file / the node default "
                            "share/sim2real/models/default.safetensors"),
    "device": LaunchArgument("", "inference device auto | cpu | cuda | cuda:N; empty: the params file"),
    "record": LaunchArgument("false", "also record the translated topics to a bag", ("true", "false")),
    "output": LaunchArgument("", "bag directory for record:=true (must not exist); empty: "
                             "sim2real_<date>_<time> in the working directory"),
    "storage": LaunchArgument("mcap", "bag storage for record:=true", STORAGES),
    "params_file": LaunchArgument("", "parameters YAML for the nodes; empty: share/sim2real/config/translate.yaml"),
}


def default_params_file() -> str:
    """share/sim2real/config/translate.yaml (installed, or the source checkout's)."""
    from sim2real.runtime.paths import share_dir

    return str(share_dir() / "config" / "translate.yaml")


def _parse_bool(name: str, value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class LaunchConfig:
    """The evaluated arguments. ``node_parameters[node][param]`` adds per-node parameter overrides."""

    source: str = "builtin"
    namespace: str = "/sim/camera"
    output_namespace: str = "/translated"
    model: str = ""
    device: str = ""
    record: bool = False
    output: str = ""
    storage: str = "mcap"
    params_file: str = ""
    node_parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate every field (ConfigError lists the valid choices)."""
        if self.source not in SOURCES:
            raise ConfigError(f"source must be one of {', '.join(SOURCES)}; got {self.source!r}")
        for name in ("namespace", "output_namespace"):
            value = getattr(self, name)
            if not _NAMESPACE.match(value):
                raise ConfigError(f"{name} must be an absolute ROS namespace like /sim/camera, got {value!r}")
        if self.namespace == self.output_namespace:
            raise ConfigError(f"namespace and output_namespace must differ, both are {self.namespace!r}")
        if self.storage not in STORAGES:
            raise ConfigError(f"storage must be one of {', '.join(STORAGES)}; got {self.storage!r}")
        if self.model and not self.model.endswith(".safetensors"):
            raise ConfigError(f"model must be a .safetensors checkpoint, got {self.model!r}")
        for node in self.node_parameters:
            if not _NODE_NAME.match(node):
                raise ConfigError(f"invalid node name {node!r} in a parameter override")

    @classmethod
    def from_strings(cls, values: Mapping[str, str], node_parameters: Mapping[str, Mapping[str, Any]] | None = None,
                     *, now: float | None = None) -> LaunchConfig:
        """From launch-style string values (missing keys take :data:`ARGUMENTS` defaults).

        ``record:=true`` without ``output`` records to ``sim2real_<YYYYmmdd_HHMMSS>`` (time ``now``).
        """
        unknown = sorted(set(values) - set(ARGUMENTS))
        if unknown:
            raise ConfigError(f"unknown argument(s) {', '.join(unknown)}; valid: {', '.join(ARGUMENTS)}")
        v = {name: str(values.get(name, arg.default)) for name, arg in ARGUMENTS.items()}
        for name, arg in ARGUMENTS.items():
            if arg.choices is not None and v[name] not in arg.choices:
                raise ConfigError(f"{name} must be one of {', '.join(arg.choices)}; got {v[name]!r}")
        record = _parse_bool("record", v["record"])
        output = v["output"]
        if record and not output:
            output = time.strftime("sim2real_%Y%m%d_%H%M%S", time.localtime(now))
        return cls(
            source=v["source"], namespace=v["namespace"].rstrip("/") or "/",
            output_namespace=v["output_namespace"].rstrip("/") or "/", model=v["model"], device=v["device"],
            record=record, output=output, storage=v["storage"], params_file=v["params_file"],
            node_parameters=dict(node_parameters or {}),
        )


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: name, console script, module, parameters (files first, then overrides), remaps."""

    name: str
    executable: str
    module: str
    parameters: Mapping[str, Any]
    params_files: tuple[str, ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()


def describe(config: LaunchConfig) -> list[NodeSpec]:
    """The nodes of ``translate`` for ``config``, in start-up order: source, translate_node, record_node."""
    params_file = config.params_file or default_params_file()
    extra = config.node_parameters
    nodes: list[NodeSpec] = []
    ns, out = config.namespace, config.output_namespace
    if config.source == "builtin":
        nodes.append(NodeSpec(
            "sim_node", "sim_node", "sim2real.nodes.sim_node",
            {"namespace": ns, **extra.get("sim_node", {})}, (params_file,),
        ))
    elif config.source in SIMULATORS:
        nodes.append(NodeSpec(
            "sim_adapter_node", "sim_adapter_node", "sim2real.nodes.sim_adapter_node",
            {"simulator": config.source, "output_prefix": ns, **extra.get("sim_adapter_node", {})}, (params_file,),
        ))
    overrides: dict[str, Any] = {}
    if config.model:
        overrides["model"] = config.model
    if config.device:
        overrides["device"] = config.device
    remaps = tuple((name, f"{ns}/{name}") for name in GENERIC_INPUTS) + tuple(
        (f"translated/{name}", f"{out}/{name}") for name in TRANSLATED_OUTPUTS
    )
    nodes.append(NodeSpec(
        "translate_node", "translate_node", "sim2real.nodes.translate_node",
        {**overrides, **extra.get("translate_node", {})}, (params_file,), remaps,
    ))
    if config.record:
        nodes.append(NodeSpec(
            "record_node", "record_node", "sim2real.nodes.record_node",
            {"output": config.output, "storage": config.storage,
             "topics": [f"{out}/{n}:{t}" for n, t in RECORDED.items()], **extra.get("record_node", {})},
            (params_file,),
        ))
    known = {n.name for n in nodes}
    stray = sorted(set(extra) - known)
    if stray:
        raise ConfigError(f"parameter overrides for node(s) {', '.join(stray)} that this launch does not start "
                          f"(nodes: {', '.join(sorted(known))})")
    return nodes


_YAML_PLAIN: Final = re.compile(r"^[A-Za-z0-9_./+-][A-Za-z0-9_./+ -]*$")
_YAML_SPECIAL: Final = re.compile(
    r"^(true|false|yes|no|on|off|null|~|[-+]?(\d[\d_]*)?\.?\d*([eE][-+]?\d+)?|\.inf|\.nan)$", re.IGNORECASE
)


def format_param_value(value: Any) -> str:
    """A value for ``-p name:=<value>`` that rcl's YAML parser reads back with the same type.

    Strings that YAML would read as something else (``true``, ``1.5``, ``a:b``, ...) are single-quoted.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_param_value(v) for v in value) + "]"
    text = str(value)
    if _YAML_PLAIN.match(text) and not _YAML_SPECIAL.match(text) and text == text.strip():
        return text
    return "'" + text.replace("'", "''") + "'"


def ros_args(spec: NodeSpec) -> list[str]:
    """``--ros-args -r __node:=<name> -r a:=b ... --params-file F ... -p k:=v ...`` for ``spec``.

    Params files come before the ``-p`` overrides, so the overrides win.
    """
    args = ["--ros-args", "-r", f"__node:={spec.name}"]
    for src, dst in spec.remappings:
        args += ["-r", f"{src}:={dst}"]
    for path in spec.params_files:
        args += ["--params-file", path]
    for key, value in spec.parameters.items():
        args += ["-p", f"{key}:={format_param_value(value)}"]
    return args
