"""Centre bias: the anisotropic Gaussian baseline every saliency evaluation should beat.

Observers look at the middle of the screen far more than elsewhere, whatever the image shows;
a Gaussian centred on the image, wider along the longer side, already scores well against
GFDMs. Its widths are fractions of the image's width and height; :meth:`CentreBias.fit`
estimates them from a dataset's fixations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mlfem.gaze.fixations import Fixations

__all__ = ["CentreBias", "centre_bias"]

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


@dataclass(frozen=True)
class CentreBias:
    """A centre-bias "method": call it with an image size to get its (H, W) map.

    ``sigma_x`` / ``sigma_y`` are fractions of the image width / height.
    """

    sigma_x: float = DEFAULT_SIGMA_FRACTION
    sigma_y: float = DEFAULT_SIGMA_FRACTION

    def __call__(
        self,
        height: int,
        width: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        return centre_bias(
            height, width, sigma_x=self.sigma_x, sigma_y=self.sigma_y, dtype=dtype, device=device
        )

    @classmethod
    def fit(cls, fixations: Sequence[Fixations]) -> CentreBias:
        """Widths from a dataset: RMS distance of its in-image fixations to the image centre,
        as fractions of each image's width and height, pooled over all fixations.

        Fitting on the images you then evaluate on leaks a little; fit on a training split.
        """
        dx, dy = [], []
        for fix in fixations:
            inside = (
                (fix.xs >= -0.5)
                & (fix.xs < fix.width - 0.5)
                & (fix.ys >= -0.5)
                & (fix.ys < fix.height - 0.5)
            )
            dx.append((fix.xs[inside] - (fix.width - 1) / 2) / fix.width)
            dy.append((fix.ys[inside] - (fix.height - 1) / 2) / fix.height)
        x = np.concatenate(dx) if dx else np.zeros(0)
        if x.size < 2:
            raise ValueError("CentreBias.fit needs at least two fixations inside their images")
        y = np.concatenate(dy)
        return cls(float(np.sqrt(np.mean(x * x))), float(np.sqrt(np.mean(y * y))))
