"""Training: the Trainer (steps, schedules, checkpoints, validation with a declared judge), its typed config,
resumable batch streams, checkpoint state I/O, the training record an exported checkpoint carries (lineage),
bag health checks, what is fitted from labelled target frames at the start of a run (the class-wise colour prior,
the target camera's calibrated optics) and the ``sim2real-train`` CLI. Torch only.

Layer rule (checked by test/test_layers.py): may import from sim2real: core, io, runtime, data, translator,
evaluation.
"""
