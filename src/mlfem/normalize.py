"""Map post-processing shared by every explainer: resizing and min-max normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["minmax_normalize", "minmax_normalize_", "resize_maps"]


def minmax_normalize(maps: Tensor) -> Tensor:
    """Min-max normalise each map of a batch to [0, 1].

    Args:
        maps: (..., H, W). Each trailing (H, W) map is normalised on its own.

    Returns:
        A tensor of the same shape and dtype. A constant map (max == min, e.g. a layer
        where no channel fires) becomes all zeros rather than NaN (design.md §2).
    """
    flat = maps.flatten(-2)
    low, high = torch.aminmax(flat, dim=-1, keepdim=True)
    span = high - low
    # Where span is 0, divide by 1 instead: (x - low) is exactly 0 there.
    normalised = (flat - low) / torch.where(span > 0, span, torch.ones_like(span))
    return normalised.view_as(maps)


def minmax_normalize_(maps: Tensor) -> Tensor:
    """In-place :func:`minmax_normalize` of a contiguous tensor the caller owns; returns it."""
    flat = maps.view(*maps.shape[:-2], -1)
    low, high = torch.aminmax(flat, dim=-1, keepdim=True)
    span = high - low
    flat.sub_(low).div_(torch.where(span > 0, span, torch.ones_like(span)))
    return maps


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
