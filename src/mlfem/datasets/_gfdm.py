"""From parsed gaze to what a :class:`~mlfem.datasets.Sample` holds: fixation tensors with the
outside ones counted (and dropped), and the GFDM, built from fixations or read as shipped.

Shared by the file-based loaders (``_base.py``) and the synthetic benchmark, so both count
outside fixations and build GFDMs with one rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import _io
from .schema import Gaze

__all__ = ["GFDM_SOURCES", "build_gfdm", "clean_gaze", "inside_mask", "read_shipped_map"]

#: What a dataset's ``gfdm=`` option accepts (``"auto"``: the dataset's default source).
GFDM_SOURCES = ("auto", "fixations", "shipped", "none")


def inside_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Which ``(x, y)`` points round to a pixel of an ``height x width`` image.

    Same rule as ``mlfem.gaze`` (a fixation lands on pixel ``floor(x + 0.5)``), so the
    fixations kept here are exactly those the GFDM code counts.
    """
    x, y = points[:, 0], points[:, 1]
    return (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)


def clean_gaze(
    gaze: Gaze, height: int, width: int, drop_outside: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None, int]:
    """Convert parsed gaze to tensors, counting (and by default dropping) outside fixations."""
    fixations: list[torch.Tensor] = []
    durations: list[torch.Tensor] | None = [] if gaze.durations is not None else None
    n_outside = 0
    for j, points in enumerate(gaze.observers):
        keep = inside_mask(points, height, width)
        n_outside += int((~keep).sum())
        if not drop_outside:
            keep = np.ones(len(points), dtype=bool)
        fixations.append(torch.from_numpy(points[keep].astype(np.float32)).reshape(-1, 2))
        if durations is not None and gaze.durations is not None:
            durations.append(torch.from_numpy(gaze.durations[j][keep].astype(np.float32)))
    return fixations, durations, n_outside


def build_gfdm(
    points: torch.Tensor,
    height: int,
    width: int,
    sigma: float,
    collapse: bool = False,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """GFDM from pooled ``(N, 2)`` fixations with the project's GFDM code (``mlfem.gaze.gfdm``).

    Fixations outside the image are dropped by ``gfdm``; ``weights`` (e.g. durations) replace
    the count of one per fixation.  Raises ``ValueError`` when no fixation is inside the image.
    ``mlfem.gaze`` is imported here, not at module import, to keep ``import mlfem.datasets``
    light.
    """
    from mlfem.gaze import gfdm

    density = gfdm(
        points[:, 0].double(),
        points[:, 1].double(),
        height,
        width,
        sigma,
        collapse=collapse,
        weights=None if weights is None else weights.double(),
    )
    return torch.as_tensor(density, dtype=torch.float32)


def read_shipped_map(path: Path, height: int, width: int) -> torch.Tensor:
    """A dataset's own density map, as a float32 density summing to 1."""
    arr = _io.read_gray(path)
    if arr.shape != (height, width):
        raise ValueError(
            f"shipped map is {arr.shape[1]}x{arr.shape[0]} but the image is {width}x{height}"
        )
    total = float(arr.sum())
    if not np.isfinite(total) or total <= 0 or arr.min() < 0:
        raise ValueError("shipped map is empty, negative or not finite")
    return torch.from_numpy((arr / total).astype(np.float32))
