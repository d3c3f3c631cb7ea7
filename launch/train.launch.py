"""Launch the sim2real trainer node: train (or fine-tune) the translator with ROS progress, diagnostics and
save / stop services.

    ros2 launch sim2real train.launch.py config:=$(ros2 pkg prefix sim2real)/share/sim2real/config/train_lite.yaml \\
        overrides:="steps=2000 device=cuda out_dir=runs/lite"
    ros2 service call /trainer_node/save_checkpoint std_srvs/srv/Trigger
    ros2 service call /trainer_node/stop std_srvs/srv/Trigger      # final checkpoint + export, then exit

The argument -> parameter mapping is :func:`sim2real.nodes.trainer_node.launch_parameters` (tested without
launch_ros); the launch ends when the node exits (training finished, stopped, or failed: then with one
``[ERROR] [launch]`` line naming the exit status, and ``ros2 launch`` exits 1).
"""

from __future__ import annotations

from typing import Any

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchContext, LaunchDescription
from sim2real.nodes.trainer_node import LAUNCH_ARGUMENTS, NODE_NAME, launch_parameters
from sim2real.runtime.launch_exit import on_exit


def _trainer(context: LaunchContext, *_args: Any, **_kwargs: Any) -> list[Node]:
    """Evaluate the arguments into the node's parameters; the launch shuts down when the node exits."""
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    return [
        Node(
            package="sim2real",
            executable=NODE_NAME,
            name=NODE_NAME,
            output="screen",
            parameters=[launch_parameters(**values)],
            on_exit=on_exit(NODE_NAME),
        )
    ]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments (with descriptions and allowed values), then the node."""
    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=description,
                              **({"choices": list(choices)} if choices else {}))
        for name, (default, description, choices) in LAUNCH_ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_trainer)])
