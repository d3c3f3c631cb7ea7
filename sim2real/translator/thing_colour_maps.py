"""Where the chroma of thing classes comes from (``GeneratorConfig.decoder_thing_chroma``).

The target decoder gives every work cell an affine colour map c = (A, b) on its guide g (RGB in [-1, 1]):
out = A g + b (A row-major 3x3 in c[0:9], b in c[9:12]). On a thing class (person ... bicycle) that map carries
the class's learned colour: its response to a grey guide, A (y 1) + b, is tinted (the dusk white bus turns salmon,
grey trucks pinkish white), and its response to the guide's own chroma was never trained where the prior handed
the decoder near-grey vehicles (docs/translator.md "Thing chroma"). Two replacements keep the map's lightness
(w . out, with w the luma weights (0.299, 0.587, 0.114), 1 = (1, 1, 1) and y = w . g) and change its chroma:

- ``"untinted"``: the map's chroma response to grey taken off,

      A' = A - P(A 1) w^T,    b' = b - P(b),    P(v) = v - (w . v) 1,
      A' g + b' = A g + b - P(A 1 y + b),    P(A' g + b') = P(A (g - y 1)):

  grey stays grey; a coloured guide takes the map of its own chroma (which may turn or amplify it);
- ``"guide"``: the guide's chroma unchanged,

      A'' = I - 1 w^T + 1 (w^T A),    b'' = (w . b) 1,
      A'' g + b'' = (g - y 1) + (w . (A g + b)) 1:

  the map decides only the lightness; with the prior's ``thing_chroma`` the guide's chroma is the source
  instance's own.

Exact for the affine map; the output squashing (tanh), the detail path and the camera model act after it, so an
output's chroma is the guide's only up to what those add.

``untinted`` is linear in the coefficients and ``guide`` affine (its constant I - 1 w^T passes through any
weighted sum whose weights sum to 1), so both commute with the bilinear upsampling and with class means: the
decoder applies them to the work cells of thing classes and to the thing columns of the edge-pixel field's class
table (:meth:`~sim2real.translator.generator.Decoder.render`). A thing pixel whose upsampling reaches a cell of
another class gets that class's map unchanged (with edge pooling per pixel it takes its own class's mean
instead). Neither changes a weight, so a trained model can take either on (``training.networks.RUN_MAY_CHANGE``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import torch
from torch import Tensor

from sim2real.core.colour import LUMA_WEIGHTS  # the w of the module docstring (any weights summing to 1 keep grey)
from sim2real.core.labels import THING_CLASSES
from sim2real.translator.coefficient_pooling import ID_ROWS, id_mask
from sim2real.translator.layers import AFFINE_COEFFS
from sim2real.translator.memory import downsample_labels


def _luma_weights(coeffs: Tensor, dim: int) -> Tensor:
    """w shaped to broadcast along ``dim`` of a (B, ..., *S) tensor with ``coeffs``' spatial dims."""
    shape = [1] * (coeffs.dim() + 1)
    shape[dim] = 3
    return coeffs.new_tensor(LUMA_WEIGHTS).view(shape)


def untinted(coeffs: Tensor) -> Tensor:
    """coeffs (B, 12 + D, *S), affine maps [A row-major | b] and D other channels -> (B, 12 + D, *S): the maps
    with their tint taken off (A', b' of the module docstring); the D channels unchanged."""
    a = coeffs[:, :9].unflatten(1, (3, 3))  # (B, row, column, *S)
    b = coeffs[:, 9:AFFINE_COEFFS]
    w_rows, w_columns = _luma_weights(coeffs, 1)[:, :, 0], _luma_weights(coeffs, 2)
    rows = a.sum(2)  # A 1: (B, 3, *S)
    tint = rows - (rows * w_rows).sum(1, keepdim=True)  # P(A 1)
    a = a - tint.unsqueeze(2) * w_columns
    b = (b * w_rows).sum(1, keepdim=True).expand_as(b)  # b - P(b) = (w . b) 1
    return torch.cat([a.flatten(1, 2), b, coeffs[:, AFFINE_COEFFS:]], 1)


def guide_chroma(coeffs: Tensor) -> Tensor:
    """coeffs (B, 12 + D, *S) -> (B, 12 + D, *S): maps that keep the guide's chroma and their own lightness (A'',
    b'' of the module docstring); the D channels unchanged."""
    a = coeffs[:, :9].unflatten(1, (3, 3))  # (B, row, column, *S)
    w_rows, w_columns = _luma_weights(coeffs, 1), _luma_weights(coeffs, 2)
    luma_row = (a * w_rows).sum(1, keepdim=True)  # w^T A: (B, 1, 3, *S)
    eye = torch.eye(3, dtype=coeffs.dtype, device=coeffs.device).view(1, 3, 3, *([1] * (coeffs.dim() - 2)))
    a = (eye - w_columns) + luma_row  # I - 1 w^T + 1 (w^T A), every row alike but for I
    b = coeffs[:, 9:AFFINE_COEFFS]
    b = (b * w_rows[:, :, 0]).sum(1, keepdim=True).expand_as(b)
    return torch.cat([a.flatten(1, 2), b, coeffs[:, AFFINE_COEFFS:]], 1)


#: ``GeneratorConfig.decoder_thing_chroma`` -> the change to a thing class's maps ("decoder": none).
THING_CHROMA_MAPS: Final[dict[str, Callable[[Tensor], Tensor]]] = {"untinted": untinted, "guide": guide_chroma}


def thing_cells(coeffs: Tensor, labels: Tensor, mode: str) -> Tensor:
    """coeffs (B, 12 + D, h, w) at work resolution, labels (B, H, W) integer ids -> (B, 12 + D, h, w): the cells
    whose label (at the cell centre, :func:`~sim2real.translator.memory.downsample_labels`) is a thing class take
    ``THING_CHROMA_MAPS[mode]``; every other cell is unchanged."""
    thing = id_mask(THING_CLASSES, downsample_labels(labels, tuple(coeffs.shape[-2:])), coeffs.dtype).unsqueeze(1)
    return coeffs + thing * (THING_CHROMA_MAPS[mode](coeffs) - coeffs)  # thing: (B, 1, h, w)


def thing_columns(table: Tensor, mode: str) -> Tensor:
    """table (B, 12 + D, 256), a map per label id (column) -> the same with the thing ids' columns taking
    ``THING_CHROMA_MAPS[mode]``."""
    thing = id_mask(THING_CLASSES, torch.arange(ID_ROWS, device=table.device), table.dtype)  # (ID_ROWS,)
    return table + thing * (THING_CHROMA_MAPS[mode](table) - table)
