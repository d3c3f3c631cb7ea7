"""Simulator side of sim2real: the built-in procedural simulator and adapters for real simulators.

Everything here produces the canonical label spaces defined in :mod:`sim2real.core.labels`.

Layer rule (checked by test/test_layers.py): may import from sim2real: core, io.
"""
