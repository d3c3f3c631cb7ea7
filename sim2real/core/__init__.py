"""Core: the project's error types, label conventions (Cityscapes train ids, instance ids, CamVid classes) and
colour conventions (luma weights), and the number spellings PyYAML reads as text (``5e-5``).

Everything else builds on these; they depend on numpy (and OpenCV lazily for label PNGs) only.

Layer rule (checked by test/test_layers.py): may import from sim2real: nothing.
"""
