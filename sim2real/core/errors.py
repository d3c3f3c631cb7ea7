"""Exception hierarchy. Every error names what was wrong and, where it helps, what was expected."""

from __future__ import annotations


class Sim2RealError(Exception):
    """Base class of every error sim2real raises on purpose."""


class ImageConversionError(Sim2RealError, ValueError):
    """A sensor_msgs Image / CompressedImage could not be converted (bad field, encoding, size, dtype)."""


class LabelError(Sim2RealError, ValueError):
    """A label map (semantic / instance) is malformed or outside the canonical spaces."""


class ConfigError(Sim2RealError, ValueError):
    """A config value or registry name is invalid; the message lists the valid choices."""


class CheckpointError(Sim2RealError, ValueError):
    """A checkpoint is missing, unsafe (pickle), corrupt, or does not match the model config."""


class BagError(Sim2RealError, OSError):
    """A rosbag2 recording is missing, empty, corrupt or lacks a requested topic."""


class InferenceError(Sim2RealError, RuntimeError):
    """An inference backend cannot run the model (an exported graph that does not fit, a session that fails):
    a fault of the model or its runtime, never of the frame being translated."""


class BagWriteError(BagError):
    """Writing a rosbag2 recording failed (disk full, file too large, I/O error): the bag file being written is
    broken; the writer never writes a metadata.yaml that claims its messages."""
