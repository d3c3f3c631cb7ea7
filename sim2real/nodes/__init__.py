"""ROS 2 nodes of sim2real: thin rclpy layers over the pure modules below them (run with
``python -m sim2real.nodes.start <name>`` or ``ros2 run sim2real <name>``: both catch a stop signal during the
imports, ``start.py``; ``python -m sim2real.nodes.<name>`` does not). The only layer that imports rclpy.

Layer rule (checked by test/test_layers.py): may import from sim2real: core, io, runtime, data, translator,
evaluation, training, apps; and sim_bridge.
"""
