"""Launch the sim2real translate node set: a source (procedural simulator or simulator adapter), the
translate node and, with ``record:=true``, the bag recorder.

    ros2 launch sim2real translate.launch.py source:=builtin record:=true output:=bags/run1
    ros2 launch sim2real translate.launch.py source:=carla model:=/path/gen.safetensors device:=cuda:0

The node set comes from :func:`sim2real.runtime.launch_description.describe`, the same description that
``sim2real-launch translate ...`` starts without launch_ros, so both always start the same nodes with the same
remappings and parameters. Per-node parameters beyond ``model`` / ``device`` go in ``params_file``.
"""

from __future__ import annotations

from typing import Any

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchContext, LaunchDescription
from sim2real.runtime.launch_description import ARGUMENTS, LaunchConfig, describe


def _nodes(context: LaunchContext, *_args: Any, **_kwargs: Any) -> list[Node]:
    """Evaluate the launch arguments and build one ``launch_ros`` Node action per described node."""
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    config = LaunchConfig.from_strings(values)
    return [
        Node(
            package="sim2real",
            executable=spec.executable,
            name=spec.name,
            output="screen",
            parameters=[*spec.params_files, dict(spec.parameters)],
            remappings=list(spec.remappings),
        )
        for spec in describe(config)
    ]


def generate_launch_description() -> LaunchDescription:
    """Declare every argument (with its description and allowed values), then the nodes."""
    arguments = [
        DeclareLaunchArgument(name, default_value=arg.default, description=arg.description,
                              **({"choices": list(arg.choices)} if arg.choices else {}))
        for name, arg in ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
