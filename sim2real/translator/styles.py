"""Named target styles: one EMA mean style per target dataset, and rendering in one of them.

A generator built with ``GeneratorConfig.target_styles`` (names, e.g. ``("cityscapes", "camvid")``) has a buffer
``target_style_means`` (K, S) beside ``style_mean``. The trainer updates it from the encoded styles of each
dataset's frames (:func:`update_dataset_styles`); :func:`use_target_style` makes one of them the style
``translate(style=None)`` renders with.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sim2real.core.errors import ConfigError
from sim2real.translator.generator import TranslatorGenerator, domain_index

__all__ = ["update_dataset_styles", "use_target_style"]


@torch.no_grad()
def update_dataset_styles(gen: TranslatorGenerator, style: Tensor, dataset: Tensor,
                          reduce: Callable[[Tensor], Tensor] | None = None) -> None:
    """EMA per named target dataset: for each k with samples in the batch,
    mean_k <- m * mean_k + (1 - m) * mean of the styles (B, S) of the samples with ``dataset`` (B,) == k,
    m = ``cfg.style_momentum``. ``reduce`` pools the (K, S + 1) sums over data-parallel ranks. No-op without
    ``target_styles``."""
    if not gen.cfg.target_styles:
        return
    k = len(gen.cfg.target_styles)
    style = style.detach().float()
    onehot = torch.nn.functional.one_hot(dataset.long().clamp(0, k - 1), k).float()  # (B, K)
    total = torch.cat([onehot.T @ style, onehot.sum(0, keepdim=True).T], 1)  # (K, S + 1)
    if reduce is not None:
        total = reduce(total)
    seen = total[:, -1] > 0
    m = gen.cfg.style_momentum
    means = total[:, :-1] / total[:, -1:].clamp(min=1)
    gen.target_style_means[seen] = m * gen.target_style_means[seen] + (1 - m) * means[seen]


def use_target_style(gen: TranslatorGenerator, name: str) -> None:
    """Make the named target dataset's mean style the one ``translate(style=None)`` renders with.

    Raises:
        ConfigError: an unknown name (the message lists the model's styles).
    """
    if name not in gen.cfg.target_styles:
        raise ConfigError(f"style {name!r} is not one of this model's target styles "
                          f"{list(gen.cfg.target_styles) or '(none: it has one mean target style)'}")
    with torch.no_grad():
        gen.style_mean[domain_index("target")] = gen.target_style_means[gen.cfg.target_styles.index(name)]
