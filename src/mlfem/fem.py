"""The Feature Explanation Method (FEM) on one feature tensor.

FEM keeps, in every channel, the activations that are unusually strong for that
channel (``F >= mu + k * sigma``) and weights the binary mask by the channel's mean
activation: ``s = sum_c [F_c >= mu_c + k * sigma_c] * mu_c`` (design.md §2).

The computation is written for speed and bounded memory, because MLFEM runs it
inside forward hooks on every block of the network:

* channels are processed in chunks, so the temporaries (a boolean mask and its
  float copy) stay small and cache-resident instead of costing a full copy of a
  large early-layer activation;
* the mean and variance come from one pass computing a sum and a sum of squares
  (``torch.var_mean`` over (H, W) is several times slower on CPU). To keep that
  one-pass formula well conditioned, each channel is first shifted by one of its
  own values, which also makes a constant channel give exactly ``sigma = 0``;
* sums accumulate in float32 whatever the activation dtype (float16 sums of
  squares overflow), and the threshold is formed in float64 then rounded *up* to
  the activation dtype, so that ``>=`` is decided as if in exact arithmetic.
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
    flat = activations.reshape(batch, channels, pixels)
    if chunk_elements is None:
        chunk_elements = (
            _CPU_CHUNK_ELEMENTS if activations.device.type == "cpu" else _ACCELERATOR_CHUNK_ELEMENTS
        )
    chunk = max(1, min(channels, chunk_elements // max(1, batch * pixels)))

    # (B, 1, P) so that baddbmm accumulates (B, 1, c) @ (B, c, P) in place.
    out_dtype = torch.float64 if activations.dtype == torch.float64 else torch.float32
    saliency = torch.zeros(batch, 1, pixels, dtype=out_dtype, device=activations.device)
    for start in range(0, channels, chunk):
        features = flat[:, start : start + chunk]
        mean, threshold = _channel_mean_and_threshold(features, k)
        strong = features >= threshold.unsqueeze(-1)
        saliency.baddbmm_(mean.to(out_dtype).unsqueeze(1), strong.to(out_dtype))
    return saliency.view(batch, height, width)


def _channel_mean_and_threshold(features: Tensor, k: float) -> tuple[Tensor, Tensor]:
    """Per-channel mean (float64) and threshold (in the features' dtype, rounded up).

    ``features`` is (B, c, P). Returns tensors of shape (B, c).
    """
    pixels = features.shape[-1]
    pivot = features[..., :1]
    shifted = features - pivot
    accumulate = torch.float64 if features.dtype == torch.float64 else torch.float32
    shifted_sum = shifted.sum(-1, dtype=accumulate).double()
    shifted_sq = torch.linalg.vector_norm(shifted, dim=-1, dtype=accumulate).double().square()
    shifted_mean = shifted_sum / pixels
    variance = (shifted_sq / pixels - shifted_mean * shifted_mean).clamp(min=0.0)
    mean = pivot.squeeze(-1).double() + shifted_mean
    exact_threshold = mean + k * variance.sqrt()

    # Round the threshold up to the features' dtype: x >= t (exact) <=> x >= round_up(t)
    # for every representable x.
    threshold = exact_threshold.to(features.dtype)
    too_low = threshold.double() < exact_threshold
    if bool(too_low.any()):
        threshold = torch.where(
            too_low, torch.nextafter(threshold, torch.full_like(threshold, float("inf"))), threshold
        )
    return mean, threshold
