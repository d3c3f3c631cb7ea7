"""Applications built from the layers below: the demo job (``make demo``) and ``sim2real-translate-bag``.

Layer rule (checked by test/test_layers.py): may import from sim2real: core, io, runtime, data, translator,
evaluation, training; and sim_bridge.
"""
