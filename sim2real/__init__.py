"""sim2real: make simulator camera streams look real, in the loop (ROS 2 + PyTorch).

The folders are layers; each one's ``__init__`` says what lives there and what it may import (lowest first):
``core`` (errors, label conventions) -> ``io`` (messages, bags, sync) and ``runtime`` (launch description,
runner, stats) -> ``translator`` (networks) and ``data`` (datasets) -> ``evaluation`` (judges, metrics,
baselines) -> ``training`` -> ``apps`` (demo, translate-bag) -> ``nodes`` (the only rclpy users).
``sim_bridge`` (simulators and adapters) sits beside ``io``. docs/ARCHITECTURE.md draws it.
"""

__version__ = "0.1.0"
