"""Simulator side of sim2real: the built-in procedural simulator and adapters for real simulators.

Everything here produces the canonical label spaces defined in :mod:`sim2real.labels`.
"""
