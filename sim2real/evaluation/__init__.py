"""Evaluation: the judges (networks trained on real frames, used only to score, never as a loss), the metrics,
the colour-transfer baselines, the ``sim2real-eval`` and ``sim2real-perception-check`` tools, the monitor's
logic and temporal smoothing. Nothing here is a training loss.

Layer rule (checked by test/test_layers.py): may import from sim2real: core, io, runtime, data, translator;
and sim_bridge.
"""
