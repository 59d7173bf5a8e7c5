"""Map post-processing shared by every explainer: resizing and min-max normalisation."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["minmax_normalize", "minmax_normalize_", "resize_maps", "resized_extrema"]


def minmax_normalize(maps: Tensor) -> Tensor:
    """Min-max normalise each map of a batch to [0, 1].

    Args:
        maps: (..., H, W). Each trailing (H, W) map is normalised on its own.

    Returns:
        A tensor of the same shape and dtype. A constant map (max == min, e.g. a layer
        where no channel fires) becomes all zeros rather than NaN (docs/design-decisions.md §1).
    """
    flat = maps.flatten(-2)
    low, high = _extremes(flat, keepdim=True)
    span = high - low
    # Where span is 0, divide by 1 instead: (x - low) is exactly 0 there.
    normalised = (flat - low) / torch.where(span > 0, span, torch.ones_like(span))
    return normalised.view_as(maps)


def minmax_normalize_(maps: Tensor) -> Tensor:
    """In-place :func:`minmax_normalize` of a contiguous tensor the caller owns; returns it."""
    flat = maps.view(*maps.shape[:-2], -1)
    low, high = _extremes(flat, keepdim=True)
    span = high - low
    flat.sub_(low).div_(torch.where(span > 0, span, torch.ones_like(span)))
    return maps


def _extremes(flat: Tensor, keepdim: bool = False) -> tuple[Tensor, Tensor]:
    """Minimum and maximum over the last dimension.

    On the CPU this takes ``amin`` plus ``amax`` rather than ``aminmax``; which is faster
    depends on the shape and the torch version (``benchmarks/bench_extrema.py`` times both);
    on accelerators the single kernel is cheaper.
    """
    if flat.device.type == "cpu":
        return flat.amin(-1, keepdim=keepdim), flat.amax(-1, keepdim=keepdim)
    return torch.aminmax(flat, dim=-1, keepdim=keepdim)


def resize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize maps (..., h, w) to ``size`` = (H, W), ``align_corners=False``.

    A no-op (returns the input) when the size already matches.
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    leading = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    resized = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return resized.view(*leading, *size)


def resized_extrema(maps: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Per-map minimum and maximum of ``resize_maps(maps, size)``, without resizing.

    Bilinear interpolation is, within each cell between two input rows (or columns),
    linear in the output position. So over the output pixels that fall in one cell,
    the extremes lie at the first or last of them, and the extremes of the whole
    resized map lie on the small grid of those "cell-boundary" rows and columns (at
    most 2h x 2w of them). Only that grid is evaluated, with two small matrix products.
    This lets MLFEM normalise a layer's map without materialising it at full size.

    Args:
        maps: (..., h, w).
        size: the (H, W) that :func:`resize_maps` would produce.

    Returns:
        ``(low, high)``, each (..., 1, 1), in ``maps``' dtype. They equal the extremes of
        the resized map up to rounding, and lie within the extremes of ``maps`` (so a
        constant map has ``low == high`` exactly).
    """
    low, high = _map_extremes(maps)
    if tuple(maps.shape[-2:]) == tuple(size):
        return low, high
    # ATen computes source positions in float64 for float64 maps, float32 otherwise.
    arithmetic = torch.float64 if maps.dtype == torch.float64 else torch.float32
    rows = _boundary_interpolation(maps.shape[-2], size[0], arithmetic, maps.device)
    columns = _boundary_interpolation(maps.shape[-1], size[1], arithmetic, maps.device)
    grid = rows @ maps.to(arithmetic) @ columns.T
    grid_low, grid_high = _map_extremes(grid)
    # The interpolated values are convex combinations of the input's: clamping only
    # removes rounding, and keeps a constant map's range exactly zero.
    grid_low = torch.clamp(grid_low.to(maps.dtype), low, high)
    grid_high = torch.clamp(grid_high.to(maps.dtype), low, high)
    return grid_low, grid_high


def _map_extremes(maps: Tensor) -> tuple[Tensor, Tensor]:
    """Minimum and maximum of each trailing (h, w) map, shaped (..., 1, 1).

    One ``aminmax`` kernel on every device: MLFEM calls this twice per layer on small maps
    (B, h, w), where the second kernel's fixed cost outweighs any difference in speed
    (``benchmarks/bench_extrema.py``: ``aminmax`` 0.5x the pair on eight 224x224 maps).
    """
    low, high = torch.aminmax(maps.flatten(-2), dim=-1, keepdim=True)
    shape = (*maps.shape[:-2], 1, 1)
    return low.view(shape), high.view(shape)


# Resizing as two matrix products costs about h * (w + H) multiply-adds per output pixel
# (for an (h, w) map resized to (H, W)); F.interpolate costs a fixed few nanoseconds per
# output pixel. On the CPU the products are cheaper once the map is at least 4 times
# smaller than the output on both sides (measured with 1 thread on 2026-12-01: 7x7 ->
# 224x224 five times faster, 56x56 about as fast, 112x112 twice as slow).
_MATMUL_RESIZE_FACTOR = 4


def _resize_into(accumulator: Tensor | None, maps: Tensor, size: tuple[int, int]) -> Tensor:
    """``accumulator + resize_maps(maps, size)`` for maps (B, h, w), computed in place in
    ``accumulator`` (a (B, H, W) tensor the caller owns) when one is given.

    Small maps on the CPU are resized by two matrix products with the bilinear weights of
    :func:`resize_maps` (``R @ maps @ C.T``, ``R`` (H, h) and ``C`` (W, w)): the result
    equals F.interpolate's up to float rounding (the sums are taken in another order).
    Other maps go through :func:`resize_maps`.
    """
    height, width = maps.shape[-2], maps.shape[-1]
    if (
        maps.device.type == "cpu"
        and maps.ndim == 3
        and maps.dtype in (torch.float32, torch.float64)
        and height * _MATMUL_RESIZE_FACTOR <= size[0]
        and width * _MATMUL_RESIZE_FACTOR <= size[1]
    ):
        rows = _interpolation_matrix(height, size[0], maps.dtype, maps.device)
        columns = _interpolation_matrix(width, size[1], maps.dtype, maps.device)
        half = maps @ columns.T  # (B, h, W)
        if accumulator is None:
            return torch.matmul(rows, half)
        return accumulator.baddbmm_(rows.expand(maps.shape[0], *rows.shape), half)
    resized = resize_maps(maps, size)
    return resized if accumulator is None else accumulator.add_(resized)


@functools.lru_cache(maxsize=64)
def _boundary_interpolation(
    in_size: int, out_size: int, arithmetic: torch.dtype, device: torch.device
) -> Tensor:
    """Bilinear weights (n, in_size) of the output positions that start or end a cell.

    Cached: MLFEM asks for the same few (layer size, input size) pairs on every batch.
    The result is shared, so callers must not modify it (``.T`` of it is a view).

    The weights follow ATen's ``align_corners=False`` rule: source position
    ``(i + 0.5) * in / out - 0.5``, clamped at 0; the last input index is repeated at
    the far edge.
    """
    with torch.inference_mode(False):  # the cached result must be usable in any mode
        return _build_boundary_interpolation(in_size, out_size, arithmetic, device)


@functools.lru_cache(maxsize=64)
def _interpolation_matrix(
    in_size: int, out_size: int, arithmetic: torch.dtype, device: torch.device
) -> Tensor:
    """Bilinear weights (out_size, in_size) of every output position (see
    :func:`_boundary_interpolation`; cached and shared: callers must not modify it)."""
    with torch.inference_mode(False):
        return _build_boundary_interpolation(
            in_size, out_size, arithmetic, device, every_position=True
        )


def _build_boundary_interpolation(
    in_size: int,
    out_size: int,
    arithmetic: torch.dtype,
    device: torch.device,
    every_position: bool = False,
) -> Tensor:
    # Source positions in the same precision as ATen's, so that the extremes match
    # those of the resized map to rounding.
    position = torch.arange(out_size, dtype=arithmetic)
    scale = torch.tensor(in_size / out_size, dtype=arithmetic)
    source = ((position + 0.5) * scale - 0.5).clamp(min=0.0).double()
    left = source.floor().long().clamp(max=in_size - 1)
    right = (left + 1).clamp(max=in_size - 1)
    weight_right = (source - left).clamp(0.0, 1.0)
    if every_position:
        keep = torch.arange(out_size)
    else:
        # Keep the first and last output position of every run of equal ``left``.
        starts = torch.ones(out_size, dtype=torch.bool)
        starts[1:] = left[1:] != left[:-1]
        ends = torch.ones(out_size, dtype=torch.bool)
        ends[:-1] = left[:-1] != left[1:]
        keep = (starts | ends).nonzero().squeeze(1)
    matrix = torch.zeros(keep.numel(), in_size, dtype=torch.float64)
    row = torch.arange(keep.numel())
    matrix.index_put_((row, left[keep]), 1.0 - weight_right[keep], accumulate=True)
    matrix.index_put_((row, right[keep]), weight_right[keep], accumulate=True)
    return matrix.to(device=device, dtype=arithmetic)
