"""FEM's per-channel statistics: each channel's mean ``mu`` and threshold ``mu + k * sigma``.

Two routes give the same values (tests/test_fem.py checks them against each other):

* **CPU**: the mean and the variance come from a sum and a sum of squares
  (``torch.var_mean`` is several times slower there), accumulated in float32 whatever the
  activation dtype (float16 sums of squares overflow). The arithmetic that follows, on
  two small vectors per layer, is done by numpy in float64: a dozen torch operations on
  vectors of a few hundred values cost about 140 us per layer in dispatch alone, numpy's
  50 us, and MLFEM runs them inside the forward hook of every block (more than the layer
  itself on the small blocks of a MobileNet).
* **accelerators**: one Welford kernel (``var_mean``) and a few in-place torch
  operations: kernel launches, not memory traffic, dominate there, and nothing may
  synchronise with the host.

On both routes:

* the one-pass variance loses precision when a channel is nearly constant (variance
  below about 1e-5 of the mean square, CPU route): those rare channels are recomputed
  exactly, two-pass in float64, so that a constant channel gets ``sigma = 0`` exactly;
* the threshold is formed in float64 and lowered by a relative :data:`TIE_TOLERANCE`,
  so that an activation equal to ``mu + k * sigma`` (a tie, as in constant or
  small-integer data) is kept as ``>=`` requires even though the float32 statistics
  carry rounding errors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["TIE_TOLERANCE", "channel_mean_and_threshold", "map_dtype"]

# Below this ratio of variance to mean square, float32 one-pass statistics cannot be
# trusted (their relative error is ~1e-6) and the channel is recomputed exactly.
_NEAR_CONSTANT = 1e-5
#: Relative tolerance of the threshold: well above the error of float32 statistics, far
#: below any difference that could matter between two activations.
TIE_TOLERANCE = 1e-6
# Elements squared at once by the channels-last sum of squares (4 MiB of float32).
_SQUARES_CHUNK_ELEMENTS = 1 << 20


def channel_mean_and_threshold(features: Tensor, k: float, dim: int = -1) -> tuple[Tensor, Tensor]:
    """Per-channel mean and threshold, both float64 for float64 features and float32
    otherwise (the dtype the masks and the weighted sum are computed in).

    ``features`` is (N, P), one channel of one image per row, reduced along ``dim=-1``; or
    channels-last (B, P, C), reduced along ``dim=1``. Returns tensors (N,) (or (B, C)) on
    the features' device. The arithmetic is in float64 whatever the features' dtype, and
    without autograd: the statistics select a mask (piecewise constant) and weight it.
    Half-precision activations get a float32 threshold: rounding it to float16 would move
    it by up to 0.05%.
    """
    route = _cpu_mean_and_threshold if features.device.type == "cpu" else _accelerator_mean_and_threshold
    with torch.no_grad():
        return route(features, k, dim)


def map_dtype(features: Tensor) -> torch.dtype:
    """The dtype FEM computes and returns in for these features: float64 for float64,
    float32 otherwise (half precision is accumulated in float32)."""
    return torch.float64 if features.dtype == torch.float64 else torch.float32


def _accelerator_mean_and_threshold(features: Tensor, k: float, dim: int) -> tuple[Tensor, Tensor]:
    """One ``var_mean`` kernel, then the threshold in place in float64: a handful of
    kernels per layer, no host synchronisation."""
    moments = _welford_moments(features, dim)  # row 0 the mean, row 1 the variance
    threshold = moments[1].sqrt_().mul_(k).add_(moments[0])
    threshold.add_(threshold.abs(), alpha=-TIE_TOLERANCE)  # ties are kept
    mean, threshold = moments.to(map_dtype(features))
    return mean, threshold


def _cpu_mean_and_threshold(features: Tensor, k: float, dim: int) -> tuple[Tensor, Tensor]:
    """The sums in torch, the small float64 arithmetic in numpy (module docstring)."""
    mean, variance = _cpu_moments(features, dim)
    threshold = np.sqrt(variance)
    threshold *= k
    threshold += mean
    threshold -= np.abs(threshold) * TIE_TOLERANCE  # ties are kept
    pair = np.empty((2, *mean.shape), dtype=np.float64 if map_dtype(features) == torch.float64 else np.float32)
    pair[0] = mean
    pair[1] = threshold
    mean_tensor, threshold_tensor = torch.from_numpy(pair).unbind()
    return mean_tensor, threshold_tensor


def _welford_moments(features: Tensor, dim: int = -1) -> Tensor:
    """Mean and population variance along ``dim``, float64 (2, ...), from one ``var_mean``
    kernel (accumulated in float32 for half-precision features)."""
    rows = features if features.dtype in (torch.float32, torch.float64) else features.float()
    variance, mean = torch.var_mean(rows, dim=dim, correction=0)
    return torch.stack((mean, variance)).double()


def _cpu_moments(features: Tensor, dim: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance along ``dim``, float64 numpy arrays, from a sum and a
    sum of squares; nearly constant rows, where that formula cancels badly, recomputed
    exactly."""
    pixels = features.shape[dim]
    accumulate = map_dtype(features)
    along_rows = dim in (-1, features.ndim - 1)
    if along_rows:  # a norm reads each row once, with no temporary
        second_source = torch.linalg.vector_norm(features, dim=-1, dtype=accumulate)
    else:
        # Reduced across rows (channels-last), the norm kernel is 4-20x slower than a dot
        # product of the features with themselves; that product squares into a temporary,
        # so it is taken a few images at a time to keep the temporary small (a fresh
        # layer-sized one cost more in page faults than the arithmetic).
        values = features if features.dtype == accumulate else features.to(accumulate)
        step = max(1, _SQUARES_CHUNK_ELEMENTS // max(1, values[0].numel()))
        second_source = torch.cat(
            [torch.linalg.vecdot(part, part, dim=dim) for part in values.split(step)]
        )
    sums = torch.stack((features.sum(dim, dtype=accumulate), second_source))
    moments = sums.numpy().astype(np.float64)  # a copy, ours to modify
    mean, second = moments  # views of rows 0 and 1
    if along_rows:
        np.square(second, out=second)
    moments /= pixels  # row 0 the mean, row 1 the mean square
    variance = second - mean * mean
    # Strict "<": an all-zero row (a dead channel, common after ReLU) is exact already.
    near_constant = variance < second * _NEAR_CONSTANT
    np.maximum(variance, 0.0, out=second)  # row 1 is now the variance
    if near_constant.any():
        # (K, P), K small; for channels-last features, indexing a transposed view.
        exact = features.movedim(dim, -1)[torch.from_numpy(near_constant)].double()
        exact_variance, exact_mean = torch.var_mean(exact, dim=-1, correction=0)
        mean[near_constant] = exact_mean.numpy()
        second[near_constant] = exact_variance.numpy()
    return mean, second


def _welford_mean_and_variance(features: Tensor) -> tuple[Tensor, Tensor]:
    """The accelerator route's mean and population variance (float64, (N,) each)."""
    mean, variance = _welford_moments(features).unbind()
    return mean, variance


def _cpu_mean_and_variance(features: Tensor) -> tuple[Tensor, Tensor]:
    """The CPU route's mean and population variance (float64 tensors, (N,) each)."""
    mean, variance = _cpu_moments(features)
    return torch.from_numpy(mean), torch.from_numpy(variance)
