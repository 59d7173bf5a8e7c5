"""Centre bias: the anisotropic Gaussian baseline every saliency evaluation should beat.

Observers look at the middle of the screen far more than elsewhere, whatever the image shows;
a Gaussian centred on the image, wider along the longer side, already scores well against
GFDMs. Its widths are fractions of the image's width and height; :meth:`CentreBias.fit`
estimates them from a dataset's fixations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mlfem.gaze.fixations import Fixations

# The map itself lives with the metrics, whose information gain uses it as its default
# baseline; the metrics sit below the gaze package and must not import it.
from mlfem.metrics.centre import DEFAULT_SIGMA_FRACTION, centre_bias

__all__ = ["CentreBias", "centre_bias"]

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
