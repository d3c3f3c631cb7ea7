"""Class-pooled decoder coefficients: fewer halos and smears at label edges.

The decoder predicts its affine colour coefficients (and the detail path's features) at work resolution. Their
field is smooth over several cells, also across label edges, so a class near another takes part of the other's
colour map (halos of sky along buildings, a car's colour smeared onto the road). Pooling blends each work cell's
coefficients with their mean over the cells of the same class in the frame, before the upsampling:

    c'(q) = (1 - w) * c(q) + w * mean_{q': label(q') = label(q)} c(q')

with ``label(q)`` the label at the centre pixel of work cell q (:func:`~sim2real.translator.memory.downsample_labels`)
and ``w`` = ``GeneratorConfig.coefficient_pooling``. A cell whose label is not a class (``< 0`` or
``>= num_classes``: ignore / void, unknown ids, padding) takes, whenever ``w > 0``, the mean over every class cell
of its frame, wholly:

    c'(q) = mean_{q' of a class} c(q')

**Edge pooling** (``GeneratorConfig.coefficient_edge_pooling`` = r cells): a class cell within r cells of a cell of
another label (Chebyshev distance on the work grid) takes its class mean wholly, whatever ``w``:

    c'(q) = mean_{q': label(q') = label(q)} c(q')    if some q'' with |q'' - q|_inf <= r has label(q'') != label(q)

The field the decoder predicts is smooth across label edges (its receptive field spans both sides), so the cells
next to an edge carry part of the other class's map: that, not the camera or the detail path, is where the halos
come from (the shipped model on 8 held-apart frames: edge bleed 10.6 levels in all, 10.5 with camera and detail
path off, 1.0 for the colour prior alone). Edge pooling replaces exactly those cells and keeps the decoder's own
spatial variation in the interior of every region. It changes no weight, so it can be switched on for a trained
model (``training.networks.RUN_MAY_CHANGE``).

The decoder never saw such cells in training (the procedural simulator labels every pixel), so their own
coefficients are not to be trusted: on CARLA's frames its "static" banners (void) came out as pale green boxes.
The frame's mean map treats an unlabelled region like the frame as a whole. A frame without any class cell (the
node's all-255 map when labels are missing) keeps its own coefficients. Padded cells (label 255) take the frame
mean too; the bilinear upsampling carries a little of it into the last real row or column next to them (no padding
at 640x360 or 1280x720). Done at work resolution it costs a (B, hw, num_classes) one-hot product; the bilinear
upsampling that follows still mixes neighbouring cells within one cell of an edge. Computed in float32, also under
autocast (a bf16 mean over thousands of cells is off by a few per cent).

**Wide edge pooling** (``GeneratorConfig.coefficient_wide_edge_classes``, ``coefficient_wide_edge_pooling`` =
R > r cells): the cells of the listed classes take their class mean wholly within R cells of another label instead
of r. The decoder's field departs from the interior's farther than r cells from an edge on large, varied regions
(CARLA's façades around poles, signs and banners: 83 % of its label-edge bleed with r = 2); elsewhere the narrow
band keeps the decoder's own variation, which the judge's realism needs (docs/translator.md "Wide edge pooling").

**Whole classes** (``GeneratorConfig.coefficient_whole_classes``): the cells of these classes take their class mean
wholly, whatever ``w``: one colour map per frame for the class, applied to the guide's own variation. In the sky,
whose real counterpart is smooth, the decoder's spatial variation is only blotches, streaks and a band along the
frame's top edge (docs/translator.md "Whole sky").

**Edge pooling per pixel** (``GeneratorConfig.coefficient_edge_pixels``): :func:`edge_pooled_coefficients` also
returns the edge cells and every label id's pooling target, so that the decoder can give the share of its bilinear
upsampling a pixel takes from edge cells to the pixel's own label's class mean instead
(:meth:`~sim2real.translator.generator.Decoder._edge_field`, at every full-resolution pixel).

**Lightness bins** (``GeneratorConfig.coefficient_lightness_bins``): the class means above (of pooling, edge
pooling, whole classes and the edge-pixel table) taken per bin of the guide's lightness instead, read back by each
cell's (each pixel's) own lightness (:mod:`~sim2real.translator.lightness_bins`); a whole class then has one map
per frame and lightness bin, a piecewise-affine function of the guide's lightness. The frame mean that cells of no
class take stays one.

Per-class means over the work cells' centre pixels also serve the detail path's class-mean high-pass
(:func:`class_mean_removed`, ``GeneratorConfig.detail_mean``): its full-resolution output less, per pixel, its
mean over the frame's pixels of the pixel's label. Its rows differ a little from the pooling's: a negative id
counts as class 0 there (ids are read as the colour prior reads them), and ids >= num_classes share one row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, NamedTuple

import torch
from torch import Tensor

from sim2real.translator.layers import window_max
from sim2real.translator.lightness_bins import binned_class_means, by_label_and_lightness, lightness_weights
from sim2real.translator.memory import at_cell_centres, downsample_labels

#: label ids 0..255 (uint8 label maps, 255 = ignore): the rows of :func:`class_mean_removed`'s per-pixel table.
ID_ROWS: Final = 256


def id_mask(ids: Iterable[int], cell_ids: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """1 where ``cell_ids`` (any shape, integer label ids) is one of ``ids``, else 0, in ``dtype``: a lookup in a
    (ID_ROWS,) table (a Gather in an exported graph); ids outside 0..255 read as 255."""
    table = torch.zeros(ID_ROWS, device=cell_ids.device, dtype=dtype)
    table[sorted(ids)] = 1
    ids_long = cell_ids.long()
    return table[torch.where((ids_long < 0) | (ids_long >= ID_ROWS), ID_ROWS - 1, ids_long)]


def _row_means(values: Tensor, rows: Tensor, num_rows: int) -> tuple[Tensor, Tensor]:
    """values (B, K, N), rows (B, N) integer row of each sample -> (means (B, K, R): each row's mean over its
    samples, 0 for a row without any; member (B, N, R), the samples' one-hot rows), R = ``num_rows``."""
    member = (rows.unsqueeze(-1) == torch.arange(num_rows, device=values.device)).float()
    return (values @ member) / member.sum(1).clamp(min=1).unsqueeze(1), member


class WideEdge(NamedTuple):
    """Wide edge pooling (module docstring): cells of these class ids take their class mean within ``radius`` work
    cells of another label (instead of the edge pooling's own radius). Empty ``ids``: off."""

    ids: tuple[int, ...] = ()
    radius: int = 0


#: wide edge pooling off
NO_WIDE_EDGE: Final = WideEdge()


class _ClassTargets(NamedTuple):
    """What :func:`_class_targets` finds: the per-cell pooling target and the per-class means it came from."""

    target: Tensor  # (B, K, h, w): each cell's class mean, the frame mean of the class cells for a cell of no class
    in_class: Tensor  # (B, 1, h, w) bool
    class_cells: Tensor  # (B, 1, 1, 1): how many class cells the frame has
    means: Tensor  # (B, K, C): each class's mean, the frame mean for a class without a cell
    frame_mean: Tensor  # (B, K, 1, 1)
    binned: Tensor | None  # lightness bins: (B, K, L, ID_ROWS) the means per bin by label id (frame mean: no class)


def _class_targets(coeffs: Tensor, cell_ids: Tensor, num_classes: int, lightness: Tensor | None = None,
                   bins: int = 0) -> _ClassTargets:
    """coeffs (B, K, h, w) float32, cell_ids (B, hw), lightness (B, 1, h, w) the guide's at the cell centres (with
    ``bins`` >= 2: the class means per lightness bin, :mod:`~sim2real.translator.lightness_bins`) ->
    :class:`_ClassTargets`."""
    means, member = _row_means(coeffs.flatten(2), cell_ids, num_classes)  # (B, K, C), (B, hw, C)
    is_class = member.sum(-1).view(coeffs.shape[0], 1, *coeffs.shape[-2:])  # (B, 1, h, w) 1 or 0
    class_cells = is_class.sum((2, 3), keepdim=True)  # (B, 1, 1, 1)
    frame_mean = (coeffs * is_class).sum((2, 3), keepdim=True) / class_cells.clamp(min=1)  # (B, K, 1, 1)
    in_class = is_class > 0
    means = torch.where(member.sum(1).unsqueeze(1) > 0, means, frame_mean.flatten(2))
    if bins >= 2 and lightness is not None:
        binned = binned_class_means(coeffs.flatten(2), member, lightness_weights(lightness.flatten(1), bins), means)
        others = frame_mean.flatten(2).unsqueeze(2).expand(-1, -1, bins, ID_ROWS - num_classes)
        table = torch.cat([binned, others], 3)  # (B, K, L, ID_ROWS)
        ids = cell_ids.view(coeffs.shape[0], *coeffs.shape[-2:])
        return _ClassTargets(by_label_and_lightness(table, ids, lightness[:, 0])[0], in_class, class_cells, means,
                             frame_mean, table)
    pooled = (means @ member.transpose(1, 2)).view_as(coeffs)  # each cell's class mean (0: no class)
    # pooled is exactly 0 on the cells of no class: adding the frame mean there is the Where, without its
    # broadcast over K (0.4 -> ~0.1 ms at 640x360 in onnxruntime)
    target = pooled + (1 - is_class) * frame_mean
    return _ClassTargets(target, in_class, class_cells, means, frame_mean, None)


def near_other_label(cell_ids: Tensor, size: tuple[int, int], radius: int) -> Tensor:
    """cell_ids (B, hw) integer labels of a (h, w) grid -> (B, 1, h, w) bool: a cell of another label lies within
    ``radius`` cells (Chebyshev distance; the frame's border is not another label).

    The (2 radius + 1)^2 window around a cell holds another label exactly when its largest and smallest label
    differ (the cell's own label lies between them): two window maxima (:func:`~sim2real.translator.layers.
    window_max`), a handful of operations where one comparison per window offset made ~100 in the exported graph."""
    h, w = size
    grid = cell_ids.view(-1, 1, h, w).float()  # ids below 2^24: exact in float32
    return window_max(grid, radius) != -window_max(-grid, radius)


def edge_cells(cell_ids: Tensor, size: tuple[int, int], radius: int, wide: WideEdge = NO_WIDE_EDGE) -> Tensor:
    """cell_ids (B, hw) integer labels of a (h, w) grid -> (B, 1, h, w) bool: the cells edge pooling gives their
    class mean wholly: within ``radius`` cells of another label (:func:`near_other_label`), or, for a cell of one of
    ``wide.ids``, within ``wide.radius`` cells (wide edge pooling, module docstring)."""
    near = near_other_label(cell_ids, size, radius)
    if not wide.ids:
        return near
    listed = id_mask(wide.ids, cell_ids).view_as(near) > 0
    return near | (listed & near_other_label(cell_ids, size, wide.radius))


def class_pooled_coefficients(coeffs: Tensor, labels: Tensor, weight: float, num_classes: int,
                              edge_radius: int = 0, *, whole_classes: tuple[int, ...] = (),
                              lightness: Tensor | None = None, bins: int = 0, wide: WideEdge = NO_WIDE_EDGE) -> Tensor:
    """coeffs (B, K, h, w) at work resolution, labels (B, H, W) integer ids -> (B, K, h, w) float32.

    ``weight`` 0 (and ``edge_radius`` 0, no ``whole_classes``) returns the coefficients unchanged (as float32); 1
    gives every cell of a class its class's mean. For any ``weight`` > 0, cells of no class take the mean over the
    frame's class cells (module docstring). ``edge_radius`` r > 0: cells within r cells of another label take
    their target wholly (edge pooling, module docstring), whatever ``weight``. ``whole_classes``: class ids whose
    cells take their class mean wholly, whatever ``weight`` (whole classes, module docstring). ``bins`` >= 2 with
    ``lightness`` (B, 1, H, W), the decoder's guide's: the class means are taken per lightness bin
    (:mod:`~sim2real.translator.lightness_bins`). ``wide``: wide edge pooling (module docstring; with
    ``edge_radius`` > 0).
    """
    with torch.autocast(coeffs.device.type, enabled=False):
        coeffs = coeffs.float()
        if weight == 0 and edge_radius == 0 and not whole_classes:
            return coeffs
        return _pooled(coeffs, labels, weight, num_classes, edge_radius, whole_classes=whole_classes,
                       lightness=lightness, bins=bins, wide=wide)[0]


def edge_pooled_coefficients(coeffs: Tensor, labels: Tensor, weight: float, num_classes: int, edge_radius: int,
                             *, whole_classes: tuple[int, ...] = (), lightness: Tensor | None = None,
                             bins: int = 0, wide: WideEdge = NO_WIDE_EDGE) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`class_pooled_coefficients` with ``edge_radius`` > 0, also returning what edge pooling per pixel
    (module docstring) needs: coeffs (B, K, h, w), labels (B, H, W) -> (pooled (B, K, h, w) float32; edge
    (B, 1, h, w) float32, 1 on the cells that took their class mean wholly, else 0; table (B, K, ID_ROWS) float32,
    column = label id: the class's mean for a class with a cell, the frame mean of the class cells for every other
    id). A frame without a class cell has no edge cell. ``whole_classes``: as :func:`class_pooled_coefficients`
    (their cells hold their class mean; only those near another label count as edge cells). ``lightness`` and
    ``bins`` >= 2: as :func:`class_pooled_coefficients`, and the table is (B, K, bins, ID_ROWS), a column per bin
    and label id (read by :func:`~sim2real.translator.lightness_bins.by_label_and_lightness`). ``wide``: wide edge
    pooling (module docstring); its cells count as edge cells."""
    if edge_radius <= 0:
        raise ValueError(f"edge pooling per pixel needs edge_radius > 0, got {edge_radius}")
    with torch.autocast(coeffs.device.type, enabled=False):
        pooled, edge, targets = _pooled(coeffs.float(), labels, weight, num_classes, edge_radius,
                                        whole_classes=whole_classes, lightness=lightness, bins=bins, wide=wide)
        if targets.binned is not None:
            return pooled, edge.float(), targets.binned
        others = targets.frame_mean.flatten(2).expand(-1, -1, ID_ROWS - num_classes)
        return pooled, edge.float(), torch.cat([targets.means, others], 2)


def _pooled(coeffs: Tensor, labels: Tensor, weight: float, num_classes: int, edge_radius: int,
            *, whole_classes: tuple[int, ...] = (), lightness: Tensor | None = None, bins: int = 0,
            wide: WideEdge = NO_WIDE_EDGE) -> tuple[Tensor, Tensor, _ClassTargets]:
    """coeffs (B, K, h, w) float32, lightness (B, 1, H, W) or None -> (pooled (B, K, h, w), edge cells
    (B, 1, h, w) bool, the class targets)."""
    cells = tuple(coeffs.shape[-2:])
    cell_ids = downsample_labels(labels, cells).long().flatten(1)  # (B, hw)
    cell_lightness = at_cell_centres(lightness.float(), cells) if bins >= 2 and lightness is not None else None
    targets = _class_targets(coeffs, cell_ids, num_classes, cell_lightness, bins)
    share = torch.where(targets.in_class, weight, (targets.class_cells > 0).float())  # no class cell: own
    if whole_classes:
        share = torch.where(id_mask(whole_classes, cell_ids).view_as(targets.in_class) > 0, 1.0, share)
    near = torch.zeros_like(targets.in_class)
    if edge_radius > 0:
        near = edge_cells(cell_ids, tuple(coeffs.shape[-2:]), edge_radius, wide) & (targets.class_cells > 0)
        share = torch.where(near, 1.0, share)
    return coeffs + share * (targets.target - coeffs), near, targets


def class_means_by_id(x: Tensor, labels: Tensor, cells: tuple[int, int], num_classes: int) -> Tensor:
    """x (B, C, H, W), labels (B, H, W) integer ids -> (B, C, ID_ROWS) float32: for every label id, the mean of x
    over the frame's pixels of that id's row, sampled at the centre pixels of a ``cells`` = (h, w) grid
    (:func:`class_mean_removed`'s means: row = the id if a class, else num_classes; ids read clamped to
    [0, 255]; a row without a sampled pixel takes the frame mean over the sample)."""
    with torch.autocast(x.device.type, enabled=False):
        sampled = at_cell_centres(x.float(), cells).flatten(2)  # (B, C, hw)
        frame_mean = sampled.mean(-1, keepdim=True)  # (B, C, 1)
        row_of_id = torch.arange(ID_ROWS, device=x.device).clamp(max=num_classes)  # (256,)
        cell_rows = row_of_id[downsample_labels(labels, cells).long().clamp(0, ID_ROWS - 1).flatten(1)]  # (B, hw)
        means, member = _row_means(sampled, cell_rows, num_classes + 1)  # (B, C, R), (B, hw, R)
        means = torch.where(member.sum(1).unsqueeze(1) > 0, means, frame_mean)  # rows without a sample
        return means.index_select(2, row_of_id)


def class_mean_removed(x: Tensor, labels: Tensor | None, cells: tuple[int, int], num_classes: int) -> Tensor:
    """x (B, C, H, W), labels (B, H, W) integer ids or None -> (B, C, H, W) float32: x minus, at every pixel, the
    mean of x over the frame's pixels of the pixel's label.

        out(p) = x(p) - mean_{q in S, row(q) = row(p)} x(q)        row = the label if a class, else num_classes

    over the sample S of the centre pixels of a ``cells`` = (h, w) grid (the work cells: 1/16 of the pixels at
    work scale 4, so the means cost a (B, hw, num_classes + 1) one-hot product, not a full-resolution one). Ids
    that are not a class (void, ignore, padding: >= num_classes) share one row; ids are read clamped to [0, 255]
    as the colour prior reads them (a negative id counts as class 0). A row with no sampled pixel (a thin class
    that no cell centre hits), and every pixel when ``labels`` is None, takes the frame mean over S
    (:func:`class_means_by_id`). Each pixel gathers its mean by its id from one (B * 256, C) table. Float32 also
    under autocast.
    """
    with torch.autocast(x.device.type, enabled=False):
        x = x.float()
        batch, channels = x.shape[:2]
        if labels is None:
            return x - at_cell_centres(x, cells).mean((2, 3), keepdim=True)
        ids = labels.long().clamp(0, ID_ROWS - 1)
        table = class_means_by_id(x, labels, cells, num_classes).transpose(1, 2).reshape(batch * ID_ROWS, channels)
        # one frame (the ONNX graph is exported for batch 1, and OnnxTranslator runs frames one at a time):
        # no per-frame row offset to add at full resolution
        index = ids + torch.arange(batch, device=x.device).view(-1, 1, 1) * ID_ROWS if batch > 1 else ids
        return x - table[index].permute(0, 3, 1, 2)
