"""The centre-bias map: an anisotropic Gaussian centred on the image.

Here, below :mod:`mlfem.gaze` (which fits its widths to fixations, :class:`mlfem.gaze.CentreBias`),
because :func:`mlfem.metrics.info_gain` uses it as its default baseline.
"""

from __future__ import annotations

import math

import torch

__all__ = ["DEFAULT_SIGMA_FRACTION", "centre_bias"]

#: Default widths (fractions of width and height). The OSIE sample's fixations spread with an
#: RMS distance to the centre of 0.21 W and 0.19 H; 0.2 is the round figure.
DEFAULT_SIGMA_FRACTION: float = 0.2


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value}")
    return value


def centre_bias(
    height: int,
    width: int,
    *,
    sigma_x: float = DEFAULT_SIGMA_FRACTION,
    sigma_y: float = DEFAULT_SIGMA_FRACTION,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(H, W) centre-bias density (sum 1): a Gaussian centred on the image.

    ``sigma_x`` and ``sigma_y`` are fractions of the width and of the height; the centre is
    ``((W - 1) / 2, (H - 1) / 2)`` in 0-based pixel coordinates.
    """
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width} (HxW)")
    sx = _positive("sigma_x", sigma_x) * width
    sy = _positive("sigma_y", sigma_y) * height
    x = (torch.arange(width, dtype=torch.float64) - (width - 1) / 2) / sx
    y = (torch.arange(height, dtype=torch.float64) - (height - 1) / 2) / sy
    # Separable: the outer product of two 1-D Gaussians.
    density = torch.outer(torch.exp(-0.5 * y * y), torch.exp(-0.5 * x * x))
    return (density / density.sum()).to(dtype=dtype, device=device)
