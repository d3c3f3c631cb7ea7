"""sim2real: make simulator camera streams look real, in the loop (ROS 2 + PyTorch).

Layout: torch/numpy-only code (labels, conversions, translator, training, metrics) never imports rclpy;
ROS nodes live in ``sim2real.nodes`` and stay thin.
"""

__version__ = "0.1.0"
