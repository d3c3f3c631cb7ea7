"""The node set of ``translate``: one small, pure description shared by the launch file and the runner.

``launch/translate.launch.py`` turns it into ``launch_ros.actions.Node`` actions (``ros2 launch``);
``sim2real-launch translate`` (:mod:`sim2real.runtime.launcher`) starts the same nodes as ``python -m`` processes
(works without launch / launch_ros). No launch or rclpy import here.

Names: every node runs in the ROS namespace ``namespace`` (default: none), so two launches with different
namespaces run side by side without crossing (node names ``/<namespace>/translate_node`` ...). Topics are
relative by default and resolve under it: the simulator topics ``<input_namespace>/{image,semantic,instance,
camera_info}`` (default ``sim/camera``) and the outputs ``<output_namespace>/...`` (default ``translated``); an
absolute ``input_namespace`` / ``output_namespace`` (``/carla/front``) points outside the namespace (remapped).

Per ``source``:

* ``builtin``: ``sim_node`` (the procedural simulator) publishing the four simulator topics;
* ``carla`` | ``carla_ros_bridge`` | ``isaac`` | ``morai`` | ``airsim``: ``sim_adapter_node`` with
  ``simulator:=<source>``, turning the simulator's native topics (absolute, its topic profile's; per-topic
  parameters ``rgb_topic`` ... in the params file) into the same four topics;
* ``none``: no source node (something else publishes them, e.g. a bag being played);

then ``translate_node`` with its generic topic names remapped (``image`` -> ``<input_namespace>/image`` ...,
``translated/image`` -> ``<output_namespace>/image`` ...) and the params file (default
``share/sim2real/config/translate.yaml``) plus the ``model`` / ``device`` overrides; and, with
``record:=true``, ``record_node`` writing ``<output_namespace>/{image,semantic,instance,camera_info}`` to the
bag directory ``output`` (it refuses to overwrite one). ``ESSENTIAL`` nodes end the whole launch when they exit.
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
    "ESSENTIAL",
    "GENERIC_INPUTS",
    "SIMULATORS",
    "SOURCES",
    "TRANSLATED_OUTPUTS",
    "LaunchArgument",
    "LaunchConfig",
    "NodeSpec",
    "check_namespace",
    "check_topic_prefix",
    "default_params_file",
    "describe",
    "format_param_value",
    "parse_bool",
    "ros_args",
]

#: the sim_adapter_node adapters (sim_bridge.adapters.ADAPTERS; test_launch checks they agree)
SIMULATORS: Final = ("carla", "carla_ros_bridge", "isaac", "morai", "airsim")
SOURCES: Final = ("builtin", *SIMULATORS, "none")
STORAGES: Final = ("mcap", "sqlite3")
GENERIC_INPUTS: Final = ("image", "image/compressed", "semantic", "instance", "camera_info")
TRANSLATED_OUTPUTS: Final = ("image", "image/compressed", "semantic", "instance", "camera_info", "preview")
TRANSPORTS: Final = ("raw", "compressed")
RECORD_COMPRESSION: Final = ("none", "jpeg", "png")
#: what record:=true records, with types: record_node subscribes typed topics at start, so the first
#: translated frames are not lost while it discovers translate_node's publishers
RECORDED: Final[Mapping[str, str]] = MappingProxyType({
    "image": "sensor_msgs/msg/Image", "semantic": "sensor_msgs/msg/Image", "instance": "sensor_msgs/msg/Image",
    "camera_info": "sensor_msgs/msg/CameraInfo",
})
#: every node of the set: when one exits, the launch (and the runner) stops the others
ESSENTIAL: Final = ("sim_node", "sim_adapter_node", "translate_node", "record_node")
_NAME_PATH: Final = re.compile(r"^/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
_NODE_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_namespace(value: str) -> str:
    """A ROS namespace as ``__ns`` wants it: ``""`` (none) or absolute ``/a/b`` (``a/b`` and ``/a/b/`` are
    accepted); raises :class:`ConfigError` for anything else."""
    text = value.strip().rstrip("/")
    if not text:
        return ""
    if not _NAME_PATH.match(text):
        raise ConfigError(f"namespace must be a ROS namespace like /robot1 or /fleet/car2, got {value!r}")
    return "/" + text.lstrip("/")


def check_topic_prefix(name: str, value: str) -> str:
    """A topic prefix, relative (``sim/camera``: under the node's namespace) or absolute (``/sim/camera``),
    without a trailing slash; raises :class:`ConfigError` naming ``name`` for anything else."""
    text = value.strip().rstrip("/")
    if not _NAME_PATH.match(text):
        raise ConfigError(f"{name} must be a topic prefix like sim/camera (relative: under the namespace) or"
                          f" /sim/camera (absolute), got {value!r}")
    return text


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
    "namespace": LaunchArgument("", "ROS namespace of every node (their names and relative topics resolve under"
                                " it; e.g. /car1); empty: none"),
    "input_namespace": LaunchArgument("sim/camera", "prefix of the simulator topics image, semantic, instance,"
                                      " camera_info: relative (under namespace) or absolute (remapped to it)"),
    "output_namespace": LaunchArgument("translated", "prefix of the translated image, the republished labels and"
                                       " the preview: relative (under namespace) or absolute"),
    "model": LaunchArgument("", "generator checkpoint (.safetensors); empty: the params file / the node default "
                            "share/sim2real/models/default.safetensors"),
    "device": LaunchArgument("", "inference device auto | cpu | cuda | cuda:N; empty: the params file"),
    "record": LaunchArgument("false", "also record the translated topics to a bag", ("true", "false")),
    "output": LaunchArgument("", "bag directory for record:=true (must not exist); empty: "
                             "sim2real_<date>_<time> in the working directory"),
    "storage": LaunchArgument("mcap", "bag storage for record:=true", STORAGES),
    "record_compression": LaunchArgument("none", "record:=true stores the translated image as <output_namespace>/"
                                         "image/compressed (sensor_msgs/CompressedImage, jpeg or png) instead of"
                                         " raw; the labels stay raw (lossless)", RECORD_COMPRESSION),
    "input_transport": LaunchArgument("raw", "the simulator image as sensor_msgs/Image (raw) or as"
                                      " sensor_msgs/CompressedImage on <input_namespace>/image/compressed",
                                      TRANSPORTS),
    "params_file": LaunchArgument("", "parameters YAML for the nodes; empty: share/sim2real/config/translate.yaml"),
}


def default_params_file() -> str:
    """share/sim2real/config/translate.yaml (installed, or the source checkout's)."""
    from sim2real.runtime.paths import share_dir

    return str(share_dir() / "config" / "translate.yaml")


def parse_bool(name: str, value: str | bool, *, empty_is_false: bool = False) -> bool:
    """A launch-argument boolean: true / 1 / yes / on or false / 0 / no / off (any case; "" too when
    ``empty_is_false``); ConfigError naming ``name`` otherwise."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off") or (empty_is_false and text == ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class LaunchConfig:
    """The evaluated arguments. ``node_parameters[node][param]`` adds per-node parameter overrides."""

    source: str = "builtin"
    namespace: str = ""
    input_namespace: str = "sim/camera"
    output_namespace: str = "translated"
    model: str = ""
    device: str = ""
    record: bool = False
    output: str = ""
    storage: str = "mcap"
    record_compression: str = "none"
    input_transport: str = "raw"
    params_file: str = ""
    node_parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate every field (ConfigError lists the valid choices)."""
        if self.source not in SOURCES:
            raise ConfigError(f"source must be one of {', '.join(SOURCES)}; got {self.source!r}")
        if check_namespace(self.namespace) != self.namespace:
            raise ConfigError(f"namespace must be empty or absolute without a trailing slash (as from_strings"
                              f" gives it), got {self.namespace!r}")
        for name in ("input_namespace", "output_namespace"):
            if check_topic_prefix(name, getattr(self, name)) != getattr(self, name):
                raise ConfigError(f"{name} must have no trailing slash, got {getattr(self, name)!r}")
        if self.input_namespace.lstrip("/") == self.output_namespace.lstrip("/"):
            raise ConfigError(f"input_namespace and output_namespace must differ, both are {self.input_namespace!r}")
        for name, choices in (("storage", STORAGES), ("record_compression", RECORD_COMPRESSION),
                              ("input_transport", TRANSPORTS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")
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
        record = parse_bool("record", v["record"], empty_is_false=True)
        output = v["output"]
        if record and not output:
            output = time.strftime("sim2real_%Y%m%d_%H%M%S", time.localtime(now))
        return cls(
            source=v["source"], namespace=check_namespace(v["namespace"]),
            input_namespace=check_topic_prefix("input_namespace", v["input_namespace"]),
            output_namespace=check_topic_prefix("output_namespace", v["output_namespace"]),
            model=v["model"], device=v["device"],
            record=record, output=output, storage=v["storage"], record_compression=v["record_compression"],
            input_transport=v["input_transport"], params_file=v["params_file"],
            node_parameters=dict(node_parameters or {}),
        )


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: name, executable, module, parameters (files first, then overrides), remaps and the
    ROS namespace (``""``: none)."""

    name: str
    executable: str
    module: str
    parameters: Mapping[str, Any]
    params_files: tuple[str, ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    namespace: str = ""


def describe(config: LaunchConfig) -> list[NodeSpec]:
    """The nodes of ``translate`` for ``config``, in start-up order: source, translate_node, record_node."""
    params_file = config.params_file or default_params_file()
    extra = config.node_parameters
    nodes: list[NodeSpec] = []
    ns, inp, out = config.namespace, config.input_namespace, config.output_namespace
    if config.source == "builtin":
        nodes.append(NodeSpec(
            "sim_node", "sim_node", "sim2real.nodes.sim_node",
            {"output_prefix": inp, **extra.get("sim_node", {})}, (params_file,), namespace=ns,
        ))
    elif config.source in SIMULATORS:
        nodes.append(NodeSpec(
            "sim_adapter_node", "sim_adapter_node", "sim2real.nodes.sim_adapter_node",
            {"simulator": config.source, "output_prefix": inp, **extra.get("sim_adapter_node", {})}, (params_file,),
            namespace=ns,
        ))
    overrides: dict[str, Any] = {}
    if config.model:
        overrides["model"] = config.model
    if config.device:
        overrides["device"] = config.device
    if config.input_transport != "raw":
        overrides["input_transport"] = config.input_transport
    remaps = tuple((name, f"{inp}/{name}") for name in GENERIC_INPUTS) + tuple(
        (f"translated/{name}", f"{out}/{name}") for name in TRANSLATED_OUTPUTS
    )
    nodes.append(NodeSpec(
        "translate_node", "translate_node", "sim2real.nodes.translate_node",
        {**overrides, **extra.get("translate_node", {})}, (params_file,), remaps, namespace=ns,
    ))
    if config.record:
        compression = {} if config.record_compression == "none" else {
            "compress_topics": [f"{out}/image"], "compressed_format": config.record_compression}
        nodes.append(NodeSpec(
            "record_node", "record_node", "sim2real.nodes.record_node",
            {"output": config.output, "storage": config.storage,
             "topics": [f"{out}/{n}:{t}" for n, t in RECORDED.items()], **compression,
             **extra.get("record_node", {})},
            (params_file,), namespace=ns,
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
    """``--ros-args -r __node:=<name> [-r __ns:=<ns>] -r a:=b ... --params-file F ... -p k:=v ...`` for ``spec``.

    Params files come before the ``-p`` overrides, so the overrides win.
    """
    args = ["--ros-args", "-r", f"__node:={spec.name}"]
    if spec.namespace:
        args += ["-r", f"__ns:={spec.namespace}"]
    for src, dst in spec.remappings:
        args += ["-r", f"{src}:={dst}"]
    for path in spec.params_files:
        args += ["--params-file", path]
    for key, value in spec.parameters.items():
        args += ["-p", f"{key}:={format_param_value(value)}"]
    return args
