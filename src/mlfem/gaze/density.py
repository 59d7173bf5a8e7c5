"""Fixation count maps and Gaze Fixation Density Maps (GFDM).

A GFDM is the per-pixel fixation count of all observers (optionally collapsed to a binary map or
weighted by fixation duration), blurred with an isotropic Gaussian (the fovea's projection) and
normalised to sum 1. Counting is one ``bincount`` over every fixation of a batch and the blur is
one FFT convolution of the count maps, so the cost does not grow with the number of fixations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from mlfem.gaze.blur import _MATRIX_MAX_HW_SUM, _blur_matrix, _check_padding, gaussian_blur
from mlfem.gaze.fixations import Fixations

__all__ = [
    "FixationCounts",
    "GFDMBatch",
    "blur_counts",
    "density_from_counts",
    "fixation_counts",
    "fixation_map",
    "gfdm",
    "gfdm_batch",
]


class FixationCounts(NamedTuple):
    """Count maps of a batch and how many fixations were kept or dropped per map."""

    counts: torch.Tensor  # (B, H, W)
    n_kept: torch.Tensor  # (B,) int64
    n_dropped: torch.Tensor  # (B,) int64, outside the image (or NaN coordinates)


class GFDMBatch(NamedTuple):
    """GFDMs of a batch (each summing to 1) and the per-map fixation bookkeeping."""

    maps: torch.Tensor  # (B, H, W)
    n_kept: torch.Tensor  # (B,) int64
    n_dropped: torch.Tensor  # (B,) int64


def _as_float64(values: object, device: torch.device | None) -> torch.Tensor:
    array = values if torch.is_tensor(values) else np.asarray(values)
    if not torch.is_tensor(array) and array.dtype.kind not in "biuf":
        raise ValueError(
            f"fixation coordinates and weights must be numbers, got {array.dtype} values "
            f"(first: {array.reshape(-1)[:1].tolist()})"
        )
    return torch.as_tensor(array).to(device=device, dtype=torch.float64).reshape(-1)


def fixation_counts(
    xs: Sequence[object],
    ys: Sequence[object],
    height: int,
    width: int,
    *,
    weights: Sequence[object | None] | None = None,
    collapse: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> FixationCounts:
    """Count maps for a batch: ``xs[b]``, ``ys[b]`` (0-based pixels) are map ``b``'s fixations.

    A fixation lands on pixel ``(floor(y + 0.5), floor(x + 0.5))``; those outside the image
    (or with NaN coordinates) are dropped and counted in ``n_dropped``. ``weights[b]`` (e.g.
    durations) replaces the count of 1 per fixation; ``collapse`` turns each map binary
    (1 where at least one fixation landed), as the MIT benchmark does. Both together make no sense
    and raise ``ValueError``.
    """
    if len(xs) != len(ys):
        raise ValueError(f"got {len(xs)} x lists but {len(ys)} y lists")
    if weights is not None and len(weights) != len(xs):
        raise ValueError(f"got {len(weights)} weight lists for {len(xs)} maps")
    if collapse and weights is not None and any(w is not None for w in weights):
        raise ValueError("collapse=True and fixation weights (durations) are mutually exclusive")
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width} (HxW)")
    device = torch.device(device) if device is not None else None
    batch = len(xs)
    flat_index, flat_weight, batch_index = [], [], []
    n_kept = torch.zeros(batch, dtype=torch.int64)
    n_dropped = torch.zeros(batch, dtype=torch.int64)
    for b in range(batch):
        x = _as_float64(xs[b], device)
        y = _as_float64(ys[b], device)
        if x.numel() != y.numel():
            raise ValueError(f"map {b}: {x.numel()} x values but {y.numel()} y values")
        col = torch.floor(x + 0.5)
        row = torch.floor(y + 0.5)
        # NaN fails every comparison, so it is dropped with the out-of-bounds fixations.
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        kept = int(inside.sum())
        n_kept[b] = kept
        n_dropped[b] = x.numel() - kept
        flat_index.append((row[inside] * width + col[inside]).to(torch.int64) + b * height * width)
        batch_index.append(b)
        w = None if weights is None else weights[b]
        if w is None:
            flat_weight.append(torch.ones(kept, dtype=torch.float64, device=x.device))
        else:
            wt = _as_float64(w, device)
            if wt.numel() != x.numel():
                raise ValueError(f"map {b}: {wt.numel()} weights for {x.numel()} fixations")
            if not bool(torch.isfinite(wt).all()) or bool((wt < 0).any()):
                raise ValueError(f"map {b}: weights must be finite and >= 0")
            flat_weight.append(wt[inside])
    size = batch * height * width
    if flat_index:
        index = torch.cat(flat_index)
        weight = torch.cat(flat_weight).to(index.device)
        counts = torch.bincount(index, weights=weight, minlength=size)
    else:
        counts = torch.zeros(size, dtype=torch.float64, device=device)
    counts = counts.reshape(batch, height, width)
    if collapse:
        counts = (counts > 0).to(torch.float64)
    return FixationCounts(counts.to(dtype), n_kept, n_dropped)


def fixation_map(
    xs: object,
    ys: object,
    height: int,
    width: int,
    *,
    weights: object | None = None,
    collapse: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, int]:
    """One (H, W) count map and the number of dropped out-of-bounds fixations."""
    out = fixation_counts(
        [xs],
        [ys],
        height,
        width,
        weights=None if weights is None else [weights],
        collapse=collapse,
        dtype=dtype,
        device=device,
    )
    return out.counts[0], int(out.n_dropped[0])


def blur_counts(
    counts: torch.Tensor, sigma: float, *, padding: str = "reflect", truncate: float = 4.0
) -> torch.Tensor:
    """:func:`gaussian_blur` of (B, H, W) count maps, faster when they are sparse.

    A count map with ``n`` fixated pixels blurs to ``sum_f c_f * k_h[:, y_f] k_w[:, x_f]^T``
    (``k`` the banded blur matrices, padding folded in), i.e. one (H, n) x (n, W) product:
    ``H * W * n`` operations instead of ``H * W * (H + W)`` for the dense blur. One observer's
    dozen fixations then cost almost nothing. Same result as the dense blur up to rounding.
    """
    padding = _check_padding(padding)
    if counts.dim() != 3:
        raise ValueError(f"counts must be (B, H, W), got shape {tuple(counts.shape)}")
    batch, height, width = counts.shape
    nonzero = counts != 0
    n_max = int(nonzero.sum(dim=(1, 2)).max()) if batch else 0
    # Dense-path costs: matrix products ~(H + W) per pixel; FFTs (huge maps) a few hundred.
    dense_cost = height + width if height + width <= _MATRIX_MAX_HW_SUM else 256
    if sigma <= 1e-15 or 2 * n_max >= dense_cost:
        return gaussian_blur(counts, sigma, padding=padding, truncate=truncate)
    key = (float(sigma), float(truncate), padding, counts.dtype, str(counts.device))
    k_h = _blur_matrix(height, *key)
    k_w = _blur_matrix(width, *key)
    out = torch.zeros_like(counts)
    if n_max == 0:
        return out
    b, rows, cols = torch.nonzero(nonzero, as_tuple=True)  # sorted by map
    per_map = torch.bincount(b, minlength=batch)
    first = torch.cumsum(per_map, 0) - per_map
    slot = torch.arange(b.numel(), device=b.device) - first[b]
    # Zero-padded per-map lists of fixated pixels (padding entries have weight 0).
    pix_rows = torch.zeros(batch, n_max, dtype=torch.int64, device=counts.device)
    pix_cols = torch.zeros_like(pix_rows)
    weight = torch.zeros(batch, n_max, dtype=counts.dtype, device=counts.device)
    pix_rows[b, slot] = rows
    pix_cols[b, slot] = cols
    weight[b, slot] = counts[b, rows, cols]
    left = k_h.T[pix_rows] * weight.unsqueeze(-1)  # (B, n, H)
    right = k_w.T[pix_cols]  # (B, n, W)
    return torch.bmm(left.transpose(1, 2), right)


def density_from_counts(
    counts: torch.Tensor, sigma: float, *, padding: str = "reflect", truncate: float = 4.0
) -> torch.Tensor:
    """Blur (B, H, W) count maps and normalise each to sum 1 (all-zero maps become NaN)."""
    blurred = blur_counts(counts, sigma, padding=padding, truncate=truncate)
    # FFT round-off can leave ~1e-17 negative ripples far from any fixation; a density is >= 0.
    blurred = blurred.clamp_min(0)
    total = blurred.sum(dim=(-2, -1), keepdim=True)
    return blurred / total


def _check_nonempty(n_total: int, n_kept: int, height: int, width: int, what: str) -> None:
    if n_total == 0:
        raise ValueError(f"{what}: no fixations given; a GFDM needs at least one fixation")
    if n_kept == 0:
        raise ValueError(
            f"{what}: all {n_total} fixations fall outside the {width}x{height} (WxH) image"
        )


def gfdm(
    xs: object,
    ys: object,
    height: int,
    width: int,
    sigma: float,
    collapse: bool = False,
    padding: str = "reflect",
    *,
    weights: object | None = None,
    truncate: float = 4.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    return_dropped: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, int]:
    """Gaze Fixation Density Map of one image: an (H, W) tensor summing to 1.

    Args:
        xs, ys: fixation coordinates of all observers, 0-based pixels (see :class:`Fixations`).
        height, width: image size in pixels.
        sigma: Gaussian sigma in pixels (see :func:`sigma_from_geometry` for degrees).
        collapse: count each fixated pixel once (binary fixation map, MIT convention).
        padding: ``"reflect"`` (scipy's half-sample symmetric) or ``"zero"``.
        weights: per-fixation weights, e.g. durations (not with ``collapse``).
        truncate: kernel radius in sigmas (scipy's default 4).
        dtype: dtype of the blur and the result; use ``torch.float64`` for exact comparisons.
        device: where to compute.
        return_dropped: also return the number of out-of-bounds fixations that were dropped.

    Raises:
        ValueError: no fixations, or none inside the image.
    """
    n_total = int(np.asarray(xs).size if not torch.is_tensor(xs) else xs.numel())
    counts, n_dropped = fixation_map(
        xs, ys, height, width, weights=weights, collapse=collapse, dtype=dtype, device=device
    )
    _check_nonempty(n_total, n_total - n_dropped, height, width, "gfdm")
    if float(counts.sum()) <= 0:
        raise ValueError("gfdm: the fixation weights sum to zero")
    density = density_from_counts(counts[None], sigma, padding=padding, truncate=truncate)[0]
    if return_dropped:
        return density, n_dropped
    return density


def gfdm_batch(
    fixations: Sequence[Fixations],
    sigma: float,
    *,
    collapse: bool = False,
    padding: str = "reflect",
    weight_by_duration: bool = False,
    truncate: float = 4.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    chunk_size: int = 32,
) -> GFDMBatch:
    """GFDMs of several images of the same size, as a (B, H, W) tensor.

    ``chunk_size`` maps are blurred at a time to bound the FFT work memory. Raises
    ``ValueError`` naming the image when one has no fixation inside it, and when
    ``weight_by_duration`` is asked for an image without durations.
    """
    if len(fixations) == 0:
        raise ValueError("gfdm_batch: no images given")
    sizes = {f.size for f in fixations}
    if len(sizes) != 1:
        raise ValueError(
            f"gfdm_batch: images differ in size {sorted(sizes)}; batch same-size images"
        )
    height, width = sizes.pop()
    for index, fix in enumerate(fixations):
        label = f"image {fix.name or index}"
        if weight_by_duration and fix.durations is None:
            raise ValueError(f"{label}: duration weighting asked but the image has no durations")
    maps, kept, dropped = [], [], []
    for start in range(0, len(fixations), max(1, int(chunk_size))):
        chunk = fixations[start : start + max(1, int(chunk_size))]
        counts = fixation_counts(
            [f.xs for f in chunk],
            [f.ys for f in chunk],
            height,
            width,
            weights=[f.durations for f in chunk] if weight_by_duration else None,
            collapse=collapse,
            dtype=dtype,
            device=device,
        )
        for offset, fix in enumerate(chunk):
            label = f"image {fix.name or start + offset}"
            _check_nonempty(len(fix), int(counts.n_kept[offset]), height, width, label)
            if float(counts.counts[offset].sum()) <= 0:
                raise ValueError(f"{label}: the fixation weights sum to zero")
        maps.append(density_from_counts(counts.counts, sigma, padding=padding, truncate=truncate))
        kept.append(counts.n_kept)
        dropped.append(counts.n_dropped)
    return GFDMBatch(torch.cat(maps), torch.cat(kept), torch.cat(dropped))
