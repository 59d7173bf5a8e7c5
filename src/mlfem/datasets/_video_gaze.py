"""What a video dataset's :class:`~mlfem.datasets.Sample` holds about gaze, built one way for
the synthetic video benchmark and the ``video-folder`` loader: per-observer ``(t, x, y)`` rows
with the fixations outside the frame counted (and dropped), and the per-frame GFDMs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .folder import _read_csv

__all__ = ["build_video_gfdm", "clean_video_gaze", "read_fixation_rows"]


def read_fixation_rows(
    path: Path, fps: float | None, time_unit: str = "s"
) -> tuple[np.ndarray, int, int, str]:
    """A ``video-folder`` fixation CSV (header ``observer,t,x,y[,duration]``) as ``(M, 4)``
    rows ``(observer index, video frame, x, y)``, one per frame a fixation is on, with the
    number of observers, of malformed rows left out, and the first one's reason.

    ``t`` is in seconds (``time_unit="s"``) or a frame index (``"frame"``); ``duration`` in ms.
    Raises ``ValueError`` for a missing header, an unknown frame rate that is needed, or a file
    without one usable row.
    """
    from mlfem.gaze.video import expand_fixations

    header, lines = _read_csv(path, ("observer", "t", "x", "y"))
    col = {name: header.index(name) for name in header}
    with_duration = "duration" in col
    if fps is None and (time_unit == "s" or with_duration):
        raise ValueError("frame rate unknown (a folder of frames): pass fps=")
    observers: dict[str, int] = {}
    kept: list[tuple[int, float, float, float, float]] = []
    n_bad, first_bad = 0, ""
    for line, row in enumerate(lines, start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            if len(row) < len(header):
                raise ValueError(f"{len(row)} fields, header has {len(header)}")
            t, x, y = (float(row[col[c]]) for c in ("t", "x", "y"))
            duration = float(row[col["duration"]]) if with_duration else 0.0
            if not all(math.isfinite(v) for v in (t, x, y, duration)) or duration < 0:
                raise ValueError("a value is not finite, or the duration is negative")
        except ValueError as error:
            n_bad += 1
            first_bad = first_bad or f"line {line}: {error}"
            continue
        observer = observers.setdefault(row[col["observer"]].strip(), len(observers))
        kept.append((observer, t, x, y, duration))
    if not kept:
        raise ValueError(f"no usable fixation row ({n_bad} malformed)")
    table = np.asarray(kept, dtype=np.float64)
    rate = fps if fps is not None else 1.0  # frame times without durations: the rate cancels
    seconds = table[:, 1] if time_unit == "s" else table[:, 1] / rate
    parts = []
    for observer in range(len(observers)):
        mine = table[:, 0] == observer
        frames = expand_fixations(seconds[mine], table[mine, 2], table[mine, 3], rate,
                                  table[mine, 4] if with_duration else None)
        parts.append(np.concatenate([np.full((len(frames), 1), observer), frames], axis=1))
    return np.concatenate(parts), len(observers), n_bad, first_bad


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
