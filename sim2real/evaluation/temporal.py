"""Temporal consistency at inference: hold the translated output where the input has not changed.

A per-frame translator is deterministic per input frame, but its output at a pixel depends on a large
neighbourhood (instance branch, class-wise memory, decoder receptive field), so a car moving elsewhere
changes the colour of a static sky or building pixel from frame to frame: flicker. :class:`TemporalSmoother`
keeps, per pixel, the output it last emitted and the input it was computed from; where the current input
(rgb within ``tolerance`` 8-bit levels, and labels) equals that reference input, it emits
``alpha * held + (1 - alpha) * new`` (``alpha = 1``: the held output exactly, so the static-pixel flicker of
:func:`sim2real.evaluation.metrics.temporal_flicker` is 0), elsewhere the new output, and updates the reference there.
Comparing with the reference input (not the previous frame) bounds drift: a slowly changing input is
re-translated as soon as it has moved more than ``tolerance`` in total.

Pure torch, no ROS; the node can wrap ``Translator.translate_normalized`` with it (not wired in yet).
"""

from __future__ import annotations

from torch import Tensor

from sim2real.core.errors import ConfigError

__all__ = ["TemporalSmoother", "temporal_blend"]


def temporal_blend(new: Tensor, held: Tensor, static: Tensor, alpha: float) -> Tensor:
    """(B, 3, H, W) new and held outputs, (B, H, W) bool static mask -> (B, 3, H, W).

    ``alpha * held + (1 - alpha) * new`` where ``static``, ``new`` elsewhere.
    """
    blended = held * alpha + new * (1.0 - alpha) if alpha < 1.0 else held
    return new.where(~static[:, None], blended)


class TemporalSmoother:
    """Stateful per-stream smoother (one instance per camera stream; not thread-safe).

    Args:
        alpha: weight of the held output in static pixels, in [0, 1] (0 = off, 1 = hold exactly).
        tolerance: an rgb change of at most this many 8-bit levels (every channel) still counts as static.
        use_labels: a pixel whose semantic or instance label changed is never static.
    """

    def __init__(self, alpha: float = 1.0, tolerance: float = 0.0, use_labels: bool = True) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"TemporalSmoother alpha must be in [0, 1], got {alpha}")
        if tolerance < 0:
            raise ConfigError(f"TemporalSmoother tolerance must be >= 0, got {tolerance}")
        self.alpha = float(alpha)
        self.tolerance = float(tolerance)
        self.use_labels = use_labels
        self._ref: tuple[Tensor, Tensor, Tensor] | None = None
        self._held: Tensor | None = None

    def reset(self) -> None:
        """Forget the stream (next frame passes through unchanged)."""
        self._ref = None
        self._held = None

    def __call__(self, rgb: Tensor, semantic: Tensor, instance: Tensor, output: Tensor) -> Tensor:
        """Smooth one frame: inputs rgb (B, 3, H, W) in [-1, 1], semantic / instance (B, H, W), the
        translator's ``output`` (B, 3, H, W) in [-1, 1] -> smoothed (B, 3, H, W). The first frame, and any
        frame whose shape differs from the last, pass through unchanged."""
        out = output
        if self._ref is not None and self._held is not None and self._held.shape == output.shape:
            ref_rgb, ref_sem, ref_inst = self._ref
            static = (rgb - ref_rgb).abs().amax(1) * 127.5 <= self.tolerance + 1e-3
            if self.use_labels:
                static &= (semantic == ref_sem) & (instance == ref_inst)
            out = temporal_blend(output, self._held, static, self.alpha)
            keep = static[:, None]
            self._ref = (ref_rgb.where(keep, rgb), ref_sem.where(static, semantic), ref_inst.where(static, instance))
        else:
            self._ref = (rgb.clone(), semantic.clone(), instance.clone())
        self._held = out.clone()
        return out
