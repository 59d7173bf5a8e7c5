"""Shared plumbing of the metrics: batching, size matching, dtype/device and normalisations.

Every metric works on (B, H, W) batches; (H, W) inputs are treated as a batch of one and give a
0-d result. A batch of one broadcasts against a batch of B (one centre-bias map against many
ground truths, say).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "EPS",
    "Prepared",
    "as_batch",
    "chunked",
    "finish",
    "is_constant",
    "match_size",
    "minmax",
    "prepare",
    "row_dot",
    "sort_rows",
    "sum_normalise",
    "weighted_mean",
]

#: The MIT benchmark's regulariser (MATLAB ``eps`` rounded as in docs/design-decisions.md §4).
EPS: float = 2.2204e-16


def _to_tensor(x: object, name: str) -> torch.Tensor:
    if torch.is_tensor(x):
        return x
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}") from error


def as_batch(x: object, name: str) -> tuple[torch.Tensor, bool]:
    """``x`` as a (B, H, W) tensor, and whether it was a single (H, W) map."""
    t = _to_tensor(x, name)
    if t.dim() == 2:
        return t.unsqueeze(0), True
    if t.dim() == 3:
        return t, False
    raise ValueError(f"{name} must have shape (H, W) or (B, H, W), got {tuple(t.shape)}")


def _float_dtype(*tensors: torch.Tensor) -> torch.dtype:
    dtypes = [t.dtype for t in tensors if torch.is_floating_point(t)]
    if not dtypes:
        return torch.float32
    out = dtypes[0]
    for d in dtypes[1:]:
        out = torch.promote_types(out, d)
    # Half precision sums over a whole image lose too much; compute in at least float32.
    return torch.promote_types(out, torch.float32)


def match_size(pred: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, bool]:
    """Resize (B, H, W) ``pred`` to ``size`` bilinearly; also say whether it had to.

    ``align_corners=False`` (the convention for upsampled explanation maps) with antialiasing,
    which only matters when shrinking: it keeps a large prediction from aliasing.
    """
    if tuple(pred.shape[-2:]) == tuple(size):
        return pred, False
    dtype = pred.dtype if torch.is_floating_point(pred) else torch.float32
    resized = F.interpolate(
        pred.to(dtype).unsqueeze(1),
        size=tuple(size),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    return resized.squeeze(1), True


class Prepared(NamedTuple):
    """Inputs of a metric after :func:`prepare`."""

    pred: torch.Tensor  # (B, H, W), floating
    target: torch.Tensor  # (B, H, W), same dtype and device
    squeeze: bool  # both inputs were (H, W): return a 0-d result
    resized: bool  # pred was resized to the target's size


def prepare(pred: object, target: object, target_name: str = "gt") -> Prepared:
    """Batch, broadcast, resize ``pred`` to ``target`` and move both to one float dtype/device."""
    p, p2d = as_batch(pred, "pred")
    t, t2d = as_batch(target, target_name)
    for name, maps in (("pred", p), (target_name, t)):
        if 0 in maps.shape[-2:]:
            height, width = maps.shape[-2:]
            raise ValueError(f"{name} maps are empty ({height}x{width}); a map needs pixels")
    p = p.to(t.device)
    dtype = _float_dtype(p, t)
    p, resized = match_size(p.to(dtype), tuple(t.shape[-2:]))
    t = t.to(dtype)
    if p.shape[0] != t.shape[0]:
        if p.shape[0] == 1:
            p = p.expand(t.shape[0], -1, -1)
        elif t.shape[0] == 1:
            t = t.expand(p.shape[0], -1, -1)
        else:
            raise ValueError(
                f"batch sizes differ: pred has {p.shape[0]} maps, {target_name} has {t.shape[0]}"
            )
    return Prepared(p, t, p2d and t2d, resized)


def finish(values: torch.Tensor, squeeze: bool) -> torch.Tensor:
    """(B,) per-map values, or a 0-d tensor for single-map inputs."""
    return values[0] if squeeze else values


def is_constant(maps: torch.Tensor) -> torch.Tensor:
    """(B,) True where a map has a single value (exact test, no tolerance)."""
    # Separate amax / amin over (H, W) rather than aminmax: on the CPU, faster for large
    # batches of maps (benchmarks/bench_extrema.py times both).
    dims = tuple(range(1, maps.dim()))
    return maps.amax(dim=dims) == maps.amin(dim=dims)


def minmax(maps: torch.Tensor, constant: str = "nan") -> torch.Tensor:
    """Rescale each map to [0, 1]; a constant map becomes NaN, zeros or ones
    (``constant="nan" | "zero" | "one"``)."""
    lo = maps.amin(dim=(1, 2), keepdim=True)
    hi = maps.amax(dim=(1, 2), keepdim=True)
    span = hi - lo
    out = (maps - lo) / torch.where(span > 0, span, torch.ones_like(span))
    fill = {"nan": float("nan"), "zero": 0.0, "one": 1.0}[constant]
    return torch.where(span > 0, out, torch.full_like(out, fill))


def sum_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Clip each map at 0 and divide by its sum; maps whose sum is not positive become NaN."""
    clipped = maps.clamp_min(0)
    total = clipped.sum(dim=(1, 2), keepdim=True)
    ok = total > 0
    return torch.where(ok, clipped / torch.where(ok, total, torch.ones_like(total)), float("nan"))


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-map mean of (B, H, W) ``values`` weighted by ``weights`` (NaN where weights sum to 0)."""
    total = weights.sum(dim=(1, 2))
    # Pixels without weight must not contribute, even if their value is inf or NaN.
    contrib = torch.where(weights > 0, values * weights, torch.zeros_like(values))
    return torch.where(total > 0, contrib.sum(dim=(1, 2)) / total, float("nan"))


# Elements per chunk on the CPU (256 MB of float32): only bounds the temporaries of very large
# batches. Smaller, cache-sized chunks were measured slower on the 2-core development machine
# (200 maps of 480x640: 23 ms/map unchunked, 28 with 16 MB chunks, 74 with 4 MB chunks): each
# extra operation is a thread barrier, which costs most when the cores are shared.
_CPU_CHUNK_ELEMENTS = 1 << 26


def chunked(
    fn: Callable[..., torch.Tensor], *maps: torch.Tensor, elements: int | None = None
) -> torch.Tensor:
    """``fn`` over slices of the (B, ...) ``maps`` on the CPU (bounded memory), concatenated.

    ``fn`` must compute one value per map independently. Other devices get the whole batch.
    """
    batch = maps[0].shape[0]
    per_map = max(1, maps[0][0].numel()) if batch else 1
    step = max(1, (elements or _CPU_CHUNK_ELEMENTS) // per_map)
    if maps[0].device.type != "cpu" or step >= batch:
        return fn(*maps)
    return torch.cat([fn(*(m[i : i + step] for m in maps)) for i in range(0, batch, step)])


def sort_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row of a 2-D tensor sorted ascending (NaN last).

    On the CPU numpy's SIMD sort is used: for float32 rows of 307 200 values it took ~1.6 ms
    where ``torch.sort`` took ~37 ms on the 2-core development machine.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(np.sort(x.detach().contiguous().numpy(), axis=1))
    return torch.sort(x, dim=1).values


def row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of (B, N) tensors.

    ``vecdot`` sums with torch's cascade reduction (relative error ~1e-7 in float32 over 307 200
    pixels); ``bmm`` / ``einsum`` were measured ~200x less accurate (~2e-5).
    """
    return torch.linalg.vecdot(a, b)
