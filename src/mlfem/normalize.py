"""Map post-processing shared by every explainer: resizing and min-max normalisation.

A map is 2-D (H, W) for an image and 3-D (T, H, W) for a video clip; functions take the
trailing map dimensions from their ``size`` or ``dims`` argument, so leading dimensions
(batch, layer) are always free.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "add_weighted_resized",
    "minmax_normalize",
    "minmax_normalize_",
    "resize_maps",
    "resized_extrema",
]


def minmax_normalize(maps: Tensor, dims: int = 2) -> Tensor:
    """Min-max normalise each map of a batch to [0, 1].

    Args:
        maps: (..., H, W), or (..., T, H, W) with ``dims=3``.
        dims: how many trailing dimensions make one map: 2 for images, 3 for clips (a clip
            is normalised as a whole, so quiet frames stay dark next to busy ones).

    Returns:
        A tensor of the same shape and dtype. A constant map (max == min, e.g. a layer
        where no channel fires) becomes all zeros rather than NaN (docs/design-decisions.md §1).
    """
    flat = maps.flatten(-_check_dims(maps, dims))
    low, high = _extremes(flat, keepdim=True)
    span = high - low
    # Where span is 0, divide by 1 instead: (x - low) is exactly 0 there.
    normalised = (flat - low) / torch.where(span > 0, span, torch.ones_like(span))
    return normalised.view_as(maps)


def minmax_normalize_(maps: Tensor, dims: int = 2) -> Tensor:
    """In-place :func:`minmax_normalize` of a contiguous tensor the caller owns; returns it."""
    flat = maps.view(*maps.shape[: -_check_dims(maps, dims)], -1)
    low, high = _extremes(flat, keepdim=True)
    span = high - low
    flat.sub_(low).div_(torch.where(span > 0, span, torch.ones_like(span)))
    return maps


def _check_dims(maps: Tensor, dims: int) -> int:
    if dims not in (2, 3) or maps.ndim < dims:
        raise ValueError(
            f"dims must be 2 (images) or 3 (clips) and at most maps.ndim; got dims={dims} "
            f"for maps of shape {tuple(maps.shape)}"
        )
    return dims


def _extremes(flat: Tensor, keepdim: bool = False) -> tuple[Tensor, Tensor]:
    """Minimum and maximum over the last dimension.

    On the CPU this takes ``amin`` plus ``amax`` rather than ``aminmax``, whose CPU kernel
    was 3-7x slower on a quiet machine with torch 2.15 (``benchmarks/bench_extrema.py``
    times both); on accelerators the single kernel is cheaper.
    """
    if flat.device.type == "cpu":
        return flat.amin(-1, keepdim=keepdim), flat.amax(-1, keepdim=keepdim)
    return torch.aminmax(flat, dim=-1, keepdim=keepdim)


def resize_maps(maps: Tensor, size: tuple[int, ...]) -> Tensor:
    """Resize maps to ``size``, ``align_corners=False``: bilinearly (..., h, w) to (H, W), or
    trilinearly (..., t, h, w) to a clip's (T, H, W).

    A no-op (returns the input) when the size already matches.
    """
    dims = len(size)
    if dims not in (2, 3):
        raise ValueError(f"size must be (H, W) or (T, H, W), got {tuple(size)}")
    if tuple(maps.shape[-dims:]) == tuple(size):
        return maps
    leading = maps.shape[:-dims]
    if dims == 3:
        return _resize_volumes(maps, tuple(size)).view(*leading, *size)
    flat = maps.reshape(-1, 1, *maps.shape[-dims:])
    resized = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False)
    return resized.view(*leading, *size)


def _resize_volumes(maps: Tensor, size: tuple[int, int, int]) -> Tensor:
    """Trilinear resizing (align_corners=False) of (..., t, h, w) maps, as two separable
    steps: each frame bilinearly to (H, W), then the frames linearly along T, one matrix
    product with the (T, t) interpolation weights.

    Trilinear weights are the product of one linear weight per axis, so this is
    ``F.interpolate(mode="trilinear")`` up to float rounding; on CPU it is 10-30x faster
    (ATen's trilinear kernel on one-channel maps: about 11 ms for two 16x112x112 clip maps,
    against 1 ms; benchmarks/bench_video.py), which matters because MLFEM resizes a map of
    every resolution of the network on every clip.
    """
    frames, height, width = maps.shape[-3:]
    flat = maps.reshape(-1, 1, height, width)
    if (height, width) != size[1:]:
        flat = F.interpolate(flat, size=size[1:], mode="bilinear", align_corners=False)
    per_frame = flat.view(-1, frames, size[1] * size[2])
    if frames == size[0]:
        return per_frame
    weights = _linear_weights(frames, size[0], per_frame.dtype, per_frame.device)
    return torch.matmul(weights, per_frame)


@functools.lru_cache(maxsize=64)
def _linear_weights(
    in_size: int, out_size: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """(out_size, in_size) weights of 1-D linear interpolation, align_corners=False: ATen's
    own, read off by interpolating the unit vectors. Cached and shared: do not modify."""
    with torch.inference_mode(False):  # the cached result must be usable in any mode
        units = torch.eye(in_size, dtype=dtype, device=device).unsqueeze(1)  # (in, 1, in)
        rows = F.interpolate(units, size=out_size, mode="linear", align_corners=False)
        return rows.squeeze(1).T.contiguous()


def resized_extrema(maps: Tensor, size: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Per-map minimum and maximum of ``resize_maps(maps, size)``, without resizing.

    Bilinear (and trilinear) interpolation is, within each cell between two input rows
    (columns, frames), linear in the output position along each axis. So over the output
    pixels that fall in one cell, the extremes lie at the first or last of them, and the
    extremes of the whole resized map lie on the small grid of those "cell-boundary"
    rows, columns (and frames): at most 2h x 2w (x 2t) of them. Only that grid is
    evaluated, with one small matrix product per axis. This lets MLFEM normalise a
    layer's map without materialising it at full size. (A map upsampled twice or less
    has nearly every output position on a cell boundary: it is simply resized.)

    Args:
        maps: (..., h, w), or (..., t, h, w) for clips.
        size: the (H, W) or (T, H, W) that :func:`resize_maps` would produce.

    Returns:
        ``(low, high)``, each (..., 1, 1) (or (..., 1, 1, 1)), in ``maps``' dtype. They
        equal the extremes of the resized map up to rounding, and lie within the extremes
        of ``maps`` (so a constant map has ``low == high`` exactly).
    """
    low, high, _ = _extrema_of_resized(maps, size)
    return low, high


def _extrema_of_resized(
    maps: Tensor, size: tuple[int, ...]
) -> tuple[Tensor, Tensor, Tensor | None]:
    """:func:`resized_extrema`, plus the resized maps when they had to be computed (a map
    upsampled twice or less, whose cell-boundary grid is most of the output), else None."""
    dims = len(size)
    if dims not in (2, 3):
        raise ValueError(f"size must be (H, W) or (T, H, W), got {tuple(size)}")
    low, high = _map_extremes(maps, dims)
    if tuple(maps.shape[-dims:]) == tuple(size):
        return low, high, None
    boundaries = _boundary_matrices(maps, size)
    if boundaries is None:  # the grid is most of the output: resizing is cheaper
        resized = resize_maps(maps, size)
        return (*_extremes_within(resized, low, high, dims), resized)
    rows, columns, frames = boundaries
    arithmetic = rows.dtype
    grid = rows @ maps.to(arithmetic) @ columns.T
    if frames is not None:  # then the frames: (t', t) @ (..., t, h' * w')
        grid = frames @ grid.flatten(-2)
    # (..., h', w') or (..., t', h' * w'): 2 trailing dimensions either way.
    return (*_extremes_within(grid, low, high, 2), None)


def _boundary_matrices(
    maps: Tensor, size: tuple[int, ...]
) -> tuple[Tensor, Tensor, Tensor | None] | None:
    """The bilinear weights of the cell-boundary rows, columns (and frames) of
    :func:`resized_extrema`, or None when that grid has more than half as many points as
    the resized map: then resizing and reading every pixel is cheaper (an (h, w) map
    upsampled twice or less has every output position on a cell boundary, and the two
    matrix products would cost far more than one interpolation; 112x112 to 224x224 on
    8 maps: 3.9 ms against 1.7 ms with 2 threads)."""
    # ATen computes source positions in float64 for float64 maps, float32 otherwise.
    arithmetic = torch.float64 if maps.dtype == torch.float64 else torch.float32
    rows = _boundary_interpolation(maps.shape[-2], size[-2], arithmetic, maps.device)
    columns = _boundary_interpolation(maps.shape[-1], size[-1], arithmetic, maps.device)
    frames = None
    points = rows.shape[0] * columns.shape[0]
    if len(size) == 3:
        frames = _boundary_interpolation(maps.shape[-3], size[0], arithmetic, maps.device)
        points *= frames.shape[0]
    if 2 * points > math.prod(size):
        return None
    return rows, columns, frames


def _extremes_within(values: Tensor, low: Tensor, high: Tensor, dims: int) -> tuple[Tensor, Tensor]:
    """The extremes of interpolated ``values`` (maps of the trailing ``dims`` dimensions),
    shaped and typed as the raw maps' extremes ``low``/``high`` and clamped within them.

    Interpolated values are convex combinations of the raw map's: clamping only removes
    rounding, and keeps a constant map's range exactly zero."""
    value_low, value_high = _map_extremes(values, dims)
    value_low = torch.clamp(value_low.view(low.shape).to(low.dtype), low, high)
    value_high = torch.clamp(value_high.view(high.shape).to(high.dtype), low, high)
    return value_low, value_high


def add_weighted_resized(
    accumulator: Tensor | None, maps: Tensor, weights: Sequence[float], size: tuple[int, ...]
) -> Tensor:
    """Add the weighted sum of several normalised, resized maps to ``accumulator``, up to a
    constant per map of the batch (what MLFEM's linear fusions need before their final
    min-max, which removes that constant).

    With ``maps`` (L, B, h, w) (or (L, B, t, h, w)) of one resolution, returns
    ``accumulator + sum_l (weights[l] / span_l) * resize_maps(maps[l], size)``, ``span_l``
    the range of the resized map (:func:`resized_extrema`); a map with no range adds
    nothing. ``accumulator`` (B, *size), owned by the caller, is updated in place; None
    starts a new sum. Every layer of a resolution is handled in a few batched operations,
    and small maps are summed before the one resize (cheaper than resizing each).
    """
    # Non-blocking: a blocking host-to-device copy would synchronise with the host.
    scales = torch.tensor(list(weights), dtype=maps.dtype).to(maps.device, non_blocking=True)
    scales = scales.view(-1, *(1,) * (maps.ndim - 1))
    low, high, resized = _extrema_of_resized(maps, size)
    if resized is not None:  # large maps, resized for their extremes: sum them as they are
        summed = _weighted_sum(resized, scales, high - low)
        return summed if accumulator is None else accumulator.add_(summed)
    return _resize_into(accumulator, _weighted_sum(maps, scales, high - low), size)


def _weighted_sum(maps: Tensor, scales: Tensor, span: Tensor) -> Tensor:
    """``sum_l scales[l] / span[l] * maps[l]``, a fresh tensor; a zero span adds nothing (and
    the clamp keeps a subnormal span from overflowing the scale to infinity)."""
    tiny = torch.finfo(span.dtype).tiny
    scale = torch.where(span > 0, scales / span.clamp(min=tiny), 0.0)
    if maps.shape[0] == 1:
        return maps[0] * scale[0]
    return (maps * scale).sum(0)


def _map_extremes(maps: Tensor, dims: int = 2) -> tuple[Tensor, Tensor]:
    """Minimum and maximum of each map of the trailing ``dims`` dimensions, shaped
    (..., 1, 1) (one 1 per map dimension), by :func:`_extremes` (two reductions on the
    CPU: ``aminmax`` there was 3-7x slower on eight 224x224 maps on a quiet machine,
    ``benchmarks/results/bench_extrema-2026-12-01-quiet.txt``; one kernel elsewhere)."""
    low, high = _extremes(maps.flatten(-dims), keepdim=True)
    shape = (*maps.shape[:-dims],) + (1,) * dims
    return low.view(shape), high.view(shape)


# Resizing as two matrix products costs about h * (w + H) multiply-adds per output pixel
# (for an (h, w) map resized to (H, W)); F.interpolate costs a fixed few nanoseconds per
# output pixel. On the CPU the products are cheaper once the map is at least 4 times
# smaller than the output on both sides (measured with 1 thread on 2026-12-01: 7x7 ->
# 224x224 five times faster, 56x56 about as fast, 112x112 twice as slow).
_MATMUL_RESIZE_FACTOR = 4


def _resize_into(accumulator: Tensor | None, maps: Tensor, size: tuple[int, ...]) -> Tensor:
    """``accumulator + resize_maps(maps, size)``, computed in place in ``accumulator`` (a
    tensor of the resized shape that the caller owns) when one is given.

    Small maps on the CPU are resized by two matrix products with the bilinear weights of
    :func:`resize_maps` (``R @ maps @ C.T``, ``R`` (H, h) and ``C`` (W, w)): the result
    equals F.interpolate's up to float rounding (the sums are taken in another order).
    Other maps go through :func:`resize_maps`.
    """
    height, width = maps.shape[-2], maps.shape[-1]
    if (
        maps.device.type == "cpu"
        and maps.ndim == 3  # images (B, h, w); clips (B, t, h, w) take resize_maps
        and len(size) == 2
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
