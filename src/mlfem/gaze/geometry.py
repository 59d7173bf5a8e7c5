"""Viewing geometry: how many screen pixels one degree of visual angle spans.

The GFDM blur models the projection of the fovea (about 1 degree of visual angle) on the screen.
At viewing distance ``D`` a 1-degree cone centred on the line of sight covers
``2 * D * tan(0.5 deg)`` on the screen (in the unit of ``D``); multiplying by the screen's
pixel density ``res_px / size`` gives pixels per degree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ViewingGeometry", "pixels_per_degree", "sigma_from_geometry"]


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value}")
    return value


def pixels_per_degree(screen_width_px: float, screen_width_mm: float, distance_mm: float) -> float:
    """Pixels spanned by one degree of visual angle at the centre of the screen.

    ``2 * distance * tan(0.5 deg) * screen_width_px / screen_width_mm``. Any length unit works as
    long as the screen width and the distance share it.
    """
    res = _positive("screen_width_px", screen_width_px)
    size = _positive("screen_width_mm", screen_width_mm)
    dist = _positive("distance_mm", distance_mm)
    return 2.0 * dist * math.tan(math.radians(0.5)) * res / size


def sigma_from_geometry(
    screen_width_px: float,
    screen_width_mm: float,
    distance_mm: float,
    sigma_deg: float = 1.0,
) -> float:
    """GFDM sigma in pixels: ``sigma_deg`` degrees of visual angle (default 1) times px/degree."""
    return _positive("sigma_deg", sigma_deg) * pixels_per_degree(
        screen_width_px, screen_width_mm, distance_mm
    )


@dataclass(frozen=True)
class ViewingGeometry:
    """An eye-tracking set-up: screen width in pixels and in mm, viewing distance in mm.

    Assumes the stimulus is shown at its native resolution (one image pixel per screen pixel);
    otherwise scale the resulting sigma by the display scale factor.
    """

    screen_width_px: float
    screen_width_mm: float
    distance_mm: float

    @property
    def pixels_per_degree(self) -> float:
        """Pixels per degree of visual angle."""
        return pixels_per_degree(self.screen_width_px, self.screen_width_mm, self.distance_mm)

    def sigma_px(self, sigma_deg: float = 1.0) -> float:
        """Sigma in pixels for a Gaussian of ``sigma_deg`` degrees of visual angle."""
        return sigma_from_geometry(
            self.screen_width_px, self.screen_width_mm, self.distance_mm, sigma_deg
        )
