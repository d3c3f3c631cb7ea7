"""Message and bag I/O: sensor_msgs Image <-> ndarray <-> tensor conversions, rosbag2 reading and writing
(rosbags, no ``ros2 bag``), and the stamp synchroniser of the live nodes. No rclpy import: the message types
come from whatever the caller passes in.

Layer rule (checked by test/test_layers.py): may import from sim2real: core.
"""
