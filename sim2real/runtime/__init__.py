"""Runtime support for the nodes and the launcher: the node set as one pure description (launch files and the
``sim2real-launch`` runner share it), the process runner, counters and latency statistics, and where installed
data lives. No rclpy, no torch.

Layer rule (checked by test/test_layers.py): may import from sim2real: core.
"""
