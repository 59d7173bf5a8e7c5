"""What a video dataset's :class:`~mlfem.datasets.Sample` holds about gaze, built one way for
the synthetic video benchmark and the ``video-folder`` loader: per-observer ``(t, x, y)`` rows
with the fixations outside the frame counted (and dropped), and the per-frame GFDMs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["build_video_gfdm", "clean_video_gaze"]


def clean_video_gaze(
    observers: Sequence[np.ndarray], height: int, width: int, drop_outside: bool = True
) -> tuple[list[torch.Tensor], int]:
    """Per-observer ``(N, 3)`` float32 rows ``(t, x, y)`` and the number of rows outside the
    frame (same rule as images: a row is inside when ``(x, y)`` rounds to a pixel)."""
    fixations, n_outside = [], 0
    for rows in observers:
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
        x, y = rows[:, 1], rows[:, 2]
        keep = (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
        n_outside += int((~keep).sum())
        kept = rows[keep] if drop_outside else rows
        fixations.append(torch.from_numpy(kept.astype(np.float32)))
    return fixations, n_outside


def build_video_gfdm(
    fixations: Sequence[torch.Tensor] | torch.Tensor,
    n_frames: int,
    height: int,
    width: int,
    sigma: float,
    temporal_sigma: float = 0.0,
    first_frame: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T, H, W)`` float32 per-frame GFDMs (frames without gaze all zeros) and the ``(T,)``
    ``has_gaze`` flags, with :func:`mlfem.gaze.video.video_gfdm` (imported here so that
    ``import mlfem.datasets`` stays light). Computed in float64, then cast, so a rebuild from
    the sample's rows gives the same float32 maps."""
    from mlfem.gaze.video import video_gfdm

    out = video_gfdm(fixations, n_frames, height, width, sigma, temporal_sigma=temporal_sigma,
                     first_frame=first_frame, dtype=torch.float64)
    return out.maps.to(torch.float32), out.has_gaze
