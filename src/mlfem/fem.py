"""The Feature Explanation Method (FEM) on one feature tensor.

FEM keeps, in every channel, the activations that are unusually strong for that
channel (``F >= mu + k * sigma``) and weights the binary mask by the channel's mean
activation: ``s = sum_c [F_c >= mu_c + k * sigma_c] * mu_c`` (design.md §2).

The computation is written for speed and bounded memory, because MLFEM runs it
inside forward hooks on every block of the network (benchmarks/profile_mlfem.py
shows where the time goes):

* channels are processed in chunks through a scratch buffer allocated once per
  call, so the temporaries stay small and no large tensor is allocated (and
  page-faulted) per chunk; on CPU, fresh allocations cost more than the arithmetic;
* on CPU the mean and variance come from a sum and a sum of squares
  (``torch.var_mean`` over (H, W) is several times slower there); on accelerators one
  Welford kernel (``var_mean``) is cheapest. Sums accumulate in float32 whatever the
  activation dtype (float16 sums of squares overflow);
* the one-pass variance loses precision when a channel is nearly constant
  (variance below about 1e-5 of the mean square): those rare channels are recomputed
  exactly, two-pass in float64, so that a constant channel gets ``sigma = 0`` exactly;
* the threshold is formed in float64 and lowered by a relative 1e-6, so that an
  activation equal to ``mu + k * sigma`` (a tie, as in constant or small-integer data)
  is kept as ``>=`` requires even though the float32 statistics carry rounding errors.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["fem_saliency"]

# Elements per chunk (batch x channels x pixels). About 4 MiB of float32 on CPU keeps
# the temporaries in cache; on accelerators fewer, larger kernels are cheaper.
_CPU_CHUNK_ELEMENTS = 1 << 20
_ACCELERATOR_CHUNK_ELEMENTS = 1 << 24


def fem_saliency(activations: Tensor, k: float = 2.0, *, chunk_elements: int | None = None) -> Tensor:
    """Raw FEM saliency of a batch of feature maps.

    Args:
        activations: feature maps of shape (B, C, H, W), normally taken after the
            layer's non-linearity. Any floating dtype.
        k: number of standard deviations above the channel mean that an activation
            must reach to be kept (``>=``). The paper uses 2.
        chunk_elements: optional override of how many elements are processed at once.

    Returns:
        A tensor (B, H, W) on the activations' device, float64 for float64 input and
        float32 otherwise (half-precision activations are accumulated in float32):
        ``sum_c [F_c >= mu_c + k * sigma_c] * mu_c`` with ``mu`` and ``sigma`` the
        per-image, per-channel mean and population standard deviation over (H, W).
        No resizing and no normalisation.
    """
    if not isinstance(activations, Tensor):
        raise TypeError(f"activations must be a torch.Tensor, got {type(activations).__name__}")
    if activations.ndim != 4:
        raise ValueError(
            f"activations must have shape (B, C, H, W), got {tuple(activations.shape)}"
        )
    if not activations.is_floating_point():
        raise TypeError(f"activations must be floating point, got {activations.dtype}")
    if not (k == k) or k in (float("inf"), float("-inf")):  # NaN or infinite
        raise ValueError(f"k must be a finite number, got {k}")

    batch, channels, height, width = activations.shape
    pixels = height * width
    # One row per (image, channel): a contiguous view, so every chunk of rows is
    # contiguous too and the statistics need no copy.
    rows = activations.contiguous().view(batch * channels, pixels)
    if chunk_elements is None:
        chunk_elements = (
            _CPU_CHUNK_ELEMENTS if activations.device.type == "cpu" else _ACCELERATOR_CHUNK_ELEMENTS
        )
    chunk_rows = max(1, min(rows.shape[0], chunk_elements // max(1, pixels)))

    out_dtype = torch.float64 if activations.dtype == torch.float64 else torch.float32
    device = activations.device
    saliency = torch.zeros(batch, pixels, dtype=out_dtype, device=device)
    mask_buffer = torch.empty(chunk_rows * pixels, dtype=out_dtype, device=device)
    row_index = torch.arange(rows.shape[0], device=device)
    for start in range(0, rows.shape[0], chunk_rows):
        features = rows[start : start + chunk_rows]
        count = features.shape[0]
        mean, threshold = _channel_mean_and_threshold(features, k)
        strong = mask_buffer[: count * pixels].view(count, pixels)
        torch.ge(features, threshold.unsqueeze(-1), out=strong)
        # The chunk may span several images: a small block-diagonal weight matrix
        # (images x rows, each row's mean in its image's line) adds every image's
        # weighted channel sum with one matrix product.
        first, last = start // channels, (start + count - 1) // channels + 1
        chunk_index = row_index[start : start + count]
        weights = torch.zeros(last - first, count, dtype=out_dtype, device=device)
        weights[chunk_index // channels - first, chunk_index - start] = mean.to(out_dtype)
        saliency[first:last].addmm_(weights, strong)
    return saliency.view(batch, height, width)


# Below this ratio of variance to mean square, float32 one-pass statistics cannot be
# trusted (their relative error is ~1e-6) and the channel is recomputed exactly.
_NEAR_CONSTANT = 1e-5
# Relative tolerance of the threshold: well above the error of float32 statistics, far
# below any difference that could matter between two activations.
_TIE_TOLERANCE = 1e-6


def _channel_mean_and_threshold(features: Tensor, k: float) -> tuple[Tensor, Tensor]:
    """Per-channel mean (float64) and threshold (float32, float64 for float64 features).

    ``features`` is (N, P), one channel of one image per row. Returns tensors (N,).
    """
    if features.device.type == "cpu":
        mean, variance = _cpu_mean_and_variance(features)
    else:
        # On accelerators a single Welford kernel is both exact enough and the fastest:
        # kernel launches, not memory traffic, dominate there. No host synchronisation.
        rows = features if features.dtype in (torch.float32, torch.float64) else features.float()
        variance, mean = torch.var_mean(rows, dim=-1, correction=0)
        mean, variance = mean.double(), variance.double()
    # Statistics accumulated in float32 carry a relative error of about 1e-7 per sum; an
    # activation within _TIE_TOLERANCE of the threshold is a tie, and ties are kept (>=).
    threshold = mean + k * variance.sqrt()
    threshold = threshold - _TIE_TOLERANCE * threshold.abs()
    # Half-precision activations are compared with a float32 threshold: rounding the
    # threshold to float16 would move it by up to 0.05%.
    return mean, threshold.to(torch.float64 if features.dtype == torch.float64 else torch.float32)


def _cpu_mean_and_variance(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and population variance (float64, (N,)) from a sum and a sum of squares.

    On CPU, a sum and a norm (two reads, no temporary) are several times faster than
    ``torch.var_mean``. Nearly constant rows, where that formula cancels badly, are
    recomputed exactly.
    """
    pixels = features.shape[-1]
    accumulate = torch.float64 if features.dtype == torch.float64 else torch.float32
    mean = features.sum(-1, dtype=accumulate).double() / pixels
    norm = torch.linalg.vector_norm(features, dim=-1, dtype=accumulate).double()
    mean_square = norm * norm / pixels
    variance = (mean_square - mean * mean).clamp(min=0.0)
    near_constant = (variance <= _NEAR_CONSTANT * mean_square) & (mean_square > 0)
    if bool(near_constant.any()):
        exact = features[near_constant].double()  # (K, P), K small
        exact_variance, exact_mean = torch.var_mean(exact, dim=-1, correction=0)
        mean = mean.masked_scatter(near_constant, exact_mean)
        variance = variance.masked_scatter(near_constant, exact_variance)
    return mean, variance
