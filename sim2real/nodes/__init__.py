"""ROS 2 nodes of sim2real (thin rclpy layers over the pure modules); run with ``python -m sim2real.nodes.<name>``."""
