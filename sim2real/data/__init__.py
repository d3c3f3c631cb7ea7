"""Datasets: labelled simulator frames and unlabelled real frames from rosbag2 recordings, image folders,
Cityscapes-named folders or the procedural simulator, with the paired transforms (crop / resize / flip, labels
by nearest). Shared by training, evaluation and the bag tools.

Layer rule (checked by test/test_layers.py): may import from sim2real: core, io; and sim_bridge.
"""
