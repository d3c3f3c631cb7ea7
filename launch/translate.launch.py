"""Launch the sim2real translate node set: a source (procedural simulator or simulator adapter), the
translate node and, with ``record:=true``, the bag recorder.

    ros2 launch sim2real translate.launch.py source:=builtin record:=true output:=bags/run1
    ros2 launch sim2real translate.launch.py source:=carla model:=/path/gen.safetensors device:=cuda:0
    ros2 launch sim2real translate.launch.py namespace:=/car1     # nodes /car1/..., topics /car1/sim/camera/...

The node set comes from :func:`sim2real.runtime.launch_description.describe`, the same description that
``sim2real-launch translate ...`` starts without launch_ros, so both always start the same nodes with the same
remappings and parameters. Per-node parameters beyond ``model`` / ``device`` go in ``params_file``.

The nodes run in the ROS namespace ``namespace`` (pushed, so an including launch file's namespace applies
too). The set fails as a unit: when any of its nodes exits the launch shuts down; an exit status other than 0
(e.g. translate_node refusing a missing model) is one ``[ERROR] [launch]: ... <node> exited with status N``
line, and ``ros2 launch`` then exits 1. Stop the launch with SIGINT (Ctrl-C; systemd ``KillSignal=SIGINT``,
docker ``STOPSIGNAL SIGINT``): on SIGTERM upstream launch leaves the nodes running.
"""

from __future__ import annotations

from typing import Any

from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from launch import LaunchContext, LaunchDescription
from sim2real.runtime.launch_description import ARGUMENTS, LaunchConfig, describe
from sim2real.runtime.launch_exit import on_exit


def _nodes(context: LaunchContext, *_args: Any, **_kwargs: Any) -> list[Any]:
    """Evaluate the launch arguments; one ``launch_ros`` Node per described node, under the namespace."""
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    config = LaunchConfig.from_strings(values)
    nodes = [
        Node(
            package="sim2real",
            executable=spec.executable,
            name=spec.name,
            output="screen",
            parameters=[*spec.params_files, dict(spec.parameters)],
            remappings=list(spec.remappings),
            on_exit=on_exit(spec.name),
        )
        for spec in describe(config)
    ]
    return [GroupAction([PushRosNamespace(config.namespace), *nodes])] if config.namespace else nodes


def generate_launch_description() -> LaunchDescription:
    """Declare every argument (with its description and allowed values), then the nodes."""
    arguments = [
        DeclareLaunchArgument(name, default_value=arg.default, description=arg.description,
                              **({"choices": list(arg.choices)} if arg.choices else {}))
        for name, arg in ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
