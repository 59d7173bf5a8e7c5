"""From pixel attributions (B, C, H, W) to saliency maps (B, H, W) in [0, 1].

Pixel-level methods (Integrated Gradients, SmoothGrad, LRP, Guided Backprop,
DeconvNet, occlusion, LIME) give one signed value per pixel *and colour channel*.
Comparing them with CAM-style maps and with gaze densities needs one value per
pixel, so every such explainer goes through :func:`attribution_to_map`:

1. reduce the colour channels (``reduction``):

   * ``"abs-max"`` (default): ``max_c |a_c|`` — Simonyan et al.'s convention for
     gradient maps, also used by SmoothGrad; sign is ignored because a negative
     attribution is as much "evidence the pixel matters" as a positive one;
   * ``"abs-sum"``: ``sum_c |a_c|``;
   * ``"l2"``: ``sqrt(sum_c a_c^2)``;
   * ``"positive-sum"``: ``max(sum_c a_c, 0)`` — only evidence *for* the target
     class (the usual way to display LRP relevance or IG with its sign);

2. optionally smooth with an isotropic Gaussian of ``smooth_sigma`` pixels
   (0 = off, the default). Pixel attributions are speckled; a blur of about one
   degree of visual angle makes them comparable with gaze density maps;

3. min-max normalise each map to [0, 1] (a constant map becomes all zeros,
   never NaN — the convention of :func:`mlfem.normalize.minmax_normalize`).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mlfem.normalize import minmax_normalize

__all__ = ["REDUCTIONS", "Reduction", "attribution_to_map", "gaussian_blur"]

Reduction = Literal["abs-max", "abs-sum", "l2", "positive-sum"]
REDUCTIONS: tuple[str, ...] = ("abs-max", "abs-sum", "l2", "positive-sum")


def check_map_options(reduction: str, smooth_sigma: float) -> tuple[str, float]:
    """Validate the conversion options once, at construction time; returns them cleaned."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")
    smooth_sigma = float(smooth_sigma)
    if not math.isfinite(smooth_sigma) or smooth_sigma < 0:
        raise ValueError(f"smooth_sigma must be a finite number >= 0 (pixels), got {smooth_sigma}")
    return reduction, smooth_sigma


def attribution_to_map(
    attributions: Tensor, reduction: Reduction = "abs-max", smooth_sigma: float = 0.0
) -> Tensor:
    """Turn pixel attributions into saliency maps.

    Args:
        attributions: (B, C, H, W) signed attributions, any floating dtype.
        reduction: how colour channels are combined (see the module docstring).
        smooth_sigma: standard deviation, in pixels, of an optional Gaussian blur
            applied before normalisation; 0 disables it.

    Returns:
        (B, H, W) maps in [0, 1], same device, float32 (float64 for float64 input).
    """
    reduction, smooth_sigma = check_map_options(reduction, smooth_sigma)
    if attributions.ndim != 4:
        raise ValueError(f"attributions must have shape (B, C, H, W), got {tuple(attributions.shape)}")
    dtype = torch.float64 if attributions.dtype == torch.float64 else torch.float32
    values = attributions.detach().to(dtype)
    if reduction == "abs-max":
        maps = values.abs().amax(dim=1)
    elif reduction == "abs-sum":
        maps = values.abs().sum(dim=1)
    elif reduction == "l2":
        maps = values.square().sum(dim=1).sqrt()
    else:  # positive-sum
        maps = values.sum(dim=1).clamp(min=0)
    # Attribution methods can overflow on random-init deep networks (huge logits);
    # a non-finite value would turn the whole normalised map into NaN.
    maps = torch.nan_to_num(maps, nan=0.0, posinf=torch.finfo(dtype).max, neginf=0.0)
    if smooth_sigma > 0:
        maps = gaussian_blur(maps, smooth_sigma)
    return minmax_normalize(maps)


def gaussian_blur(maps: Tensor, sigma: float) -> Tensor:
    """Blur maps (B, H, W) with an isotropic Gaussian of ``sigma`` pixels.

    Separable convolution truncated at 3 sigma, with replicated borders (so the
    blur does not darken the image edges). Runs on the maps' device.
    """
    if sigma <= 0:
        return maps
    radius = max(1, int(math.ceil(3.0 * sigma)))
    offsets = torch.arange(-radius, radius + 1, device=maps.device, dtype=maps.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    height, width = maps.shape[-2:]
    x = maps.unsqueeze(1)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x[:, 0, :height, :width]
