"""Gaze Fixation Density Maps of a video clip: one GFDM per frame.

Fixations on video are rows ``(t, x, y)``: ``x``, ``y`` in 0-based pixels (the convention of
:class:`~mlfem.gaze.Fixations`) and ``t`` a **frame index**, counted from the first frame of the
clip (or video) the rows belong to. Frame ``k`` is shown during ``[k, k + 1)`` in frame units,
so a row lands on frame ``floor(t)``; a time in seconds becomes a frame index with
:func:`frames_from_seconds` (``t * fps``). Frame indices, not seconds, are the unit here because
the maps and the clip tensors are indexed by frame, and the frame rate is needed only once, when
a recording is read.

A fixation lasting several frames is one row per frame it is on screen
(:func:`expand_fixations` makes them from start times and durations), so each row is "this
observer looked here during this frame", as a gaze sample at the frame rate is.

A frame's GFDM is the image GFDM of the rows on that frame (:func:`mlfem.gaze.gfdm`: counts,
an isotropic Gaussian of ``sigma`` pixels, normalised to sum 1). With ``temporal_sigma > 0``
(in frames) a row also counts on the neighbouring frames, with the weight of scipy's normalised
1-D Gaussian kernel (``gaussian_kernel1d(temporal_sigma)``, radius ``int(4 * sigma + 0.5)``) at
their distance: frame ``k`` sums ``g(k - floor(t_r))`` over the rows ``r``. The kernel's
normalisation cancels in each frame's normalisation; it is kept so that a frame's total weight
reads as "rows on this frame", smoothed. Rows outside the clip's frames but within the kernel's
radius still count on the clip's edge frames (``first_frame`` places the clip in a longer
recording): cutting a video into clips does not change its maps.

Frames that no row reaches are **all zeros** (not NaN) and flagged ``False`` in
``VideoGFDM.has_gaze``: zeros keep a (T, H, W) stack finite for batching and losses, and the
flag (or the zero sum) lets metrics skip them (:func:`mlfem.gaze.video_scores.score_clip`
counts the frames it skipped). Rows outside the image are dropped and counted, as for images.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from mlfem.gaze.blur import gaussian_kernel1d
from mlfem.gaze.density import density_from_counts, fixation_counts

__all__ = [
    "FRAME_EPS",
    "VideoGFDM",
    "expand_fixations",
    "frame_fixation_counts",
    "frames_from_seconds",
    "temporal_weights",
    "video_gfdm",
]

#: Slack for times that fall on a frame boundary up to float round-off (0.5 s * 30 fps).
FRAME_EPS = 1e-6


class VideoGFDM(NamedTuple):
    """Per-frame GFDMs of a clip and their bookkeeping."""

    maps: torch.Tensor  # (T, H, W); each frame sums to 1, or is all zeros (no gaze)
    has_gaze: torch.Tensor  # (T,) bool: the frames whose map is a density
    n_rows: torch.Tensor  # (T,) int64: rows inside the image that weigh on each frame
    n_dropped: int  # rows outside the image (or with NaN coordinates), not used


def frames_from_seconds(t: object, fps: float) -> np.ndarray:
    """Frame indices (int64) of times ``t`` in seconds: ``floor(t * fps)`` (frame ``k`` is
    shown during ``[k / fps, (k + 1) / fps)``), with :data:`FRAME_EPS` slack at boundaries."""
    if not (math.isfinite(float(fps)) and float(fps) > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps}")
    seconds = np.asarray(t, dtype=np.float64)
    return np.floor(seconds * float(fps) + FRAME_EPS).astype(np.int64)


def expand_fixations(
    t: object,
    x: object,
    y: object,
    fps: float,
    durations_ms: object | None = None,
) -> np.ndarray:
    """One ``(frame, x, y)`` row per frame each fixation is on screen, as an (M, 3) float64 array.

    A fixation starting at ``t`` seconds and lasting ``d`` ms is on every frame whose display
    interval overlaps ``[t, t + d)``: frames ``floor(t * fps)`` to ``ceil((t + d) * fps) - 1``,
    at least the first. Without durations (gaze samples), each fixation is on one frame.
    Rows come out fixation by fixation, in frame order.
    """
    ts = np.asarray(t, dtype=np.float64).reshape(-1)
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    if not ts.size == xs.size == ys.size:
        raise ValueError(f"t, x, y differ in length: {ts.size}, {xs.size}, {ys.size}")
    first = frames_from_seconds(ts, fps)
    if durations_ms is None:
        return np.stack([first.astype(np.float64), xs, ys], axis=1).reshape(-1, 3)
    durations = np.asarray(durations_ms, dtype=np.float64).reshape(-1)
    if durations.size != ts.size:
        raise ValueError(f"{durations.size} durations for {ts.size} fixations")
    if not np.isfinite(durations).all() or (durations < 0).any():
        raise ValueError("durations must be finite and >= 0 (ms)")
    end = ts + durations / 1000.0
    last = np.ceil(end * float(fps) - FRAME_EPS).astype(np.int64) - 1
    count = np.maximum(last - first + 1, 1)
    index = np.repeat(np.arange(ts.size), count)
    # Frame of each output row: its fixation's first frame plus its position in the run.
    offset = np.arange(index.size) - np.repeat(np.cumsum(count) - count, count)
    return np.stack([(first[index] + offset).astype(np.float64), xs[index], ys[index]], axis=1)


def _as_rows(points: object) -> torch.Tensor:
    """(N, 3) float64 rows from a tensor/array or a list of per-observer (N_j, 3) tensors."""
    if isinstance(points, (list, tuple)):
        parts = [torch.as_tensor(np.asarray(p) if not torch.is_tensor(p) else p)
                 for p in points]
        parts = [p.reshape(-1, 3).to(torch.float64) for p in parts]
        return torch.cat(parts) if parts else torch.zeros((0, 3), dtype=torch.float64)
    rows = points if torch.is_tensor(points) else torch.as_tensor(np.asarray(points))
    if rows.ndim != 2 or rows.shape[1] != 3:
        raise ValueError(
            f"fixations must be (N, 3) rows of (t, x, y), got shape {tuple(rows.shape)}"
        )
    return rows.to(torch.float64)


def temporal_weights(
    frames: torch.Tensor,
    n_frames: int,
    temporal_sigma: float = 0.0,
    *,
    first_frame: int = 0,
    truncate: float = 4.0,
) -> torch.Tensor:
    """The (T, N) weight of row ``r`` (on frame ``frames[r]``) on each of the clip's frames
    ``first_frame .. first_frame + T - 1``: 1 on its own frame when ``temporal_sigma`` is 0,
    else scipy's normalised Gaussian kernel at the frame distance (0 beyond its radius)."""
    if n_frames <= 0:
        raise ValueError(f"n_frames must be > 0, got {n_frames}")
    frames = torch.as_tensor(frames).to(torch.float64).reshape(-1)
    frame = torch.floor(frames + FRAME_EPS)
    clip = torch.arange(n_frames, dtype=torch.float64, device=frames.device) + int(first_frame)
    distance = clip[:, None] - frame[None, :]  # NaN times give NaN distances: weight 0
    if float(temporal_sigma) <= 0:
        return (distance == 0).to(torch.float64)
    kernel = gaussian_kernel1d(float(temporal_sigma), truncate, device=frames.device)
    radius = (kernel.numel() - 1) // 2
    near = distance.abs() <= radius
    index = torch.where(near, distance + radius, torch.zeros_like(distance)).to(torch.int64)
    return torch.where(near, kernel[index], torch.zeros_like(distance))


def _frame_counts(
    rows: torch.Tensor, weights: torch.Tensor, height: int, width: int,
    dtype: torch.dtype, device: torch.device | str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, H, W) weighted counts and (T,) number of rows with weight on each frame."""
    xs, ys, ws = [], [], []
    for frame_weights in weights:
        on = frame_weights > 0
        xs.append(rows[on, 1])
        ys.append(rows[on, 2])
        ws.append(frame_weights[on])
    counts = fixation_counts(xs, ys, height, width, weights=ws, dtype=dtype, device=device)
    return counts.counts, counts.n_kept


def frame_fixation_counts(
    points: object,
    n_frames: int,
    height: int,
    width: int,
    *,
    first_frame: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(T, H, W) fixation count maps of a clip: frame ``k`` counts the rows on that frame (no
    temporal spread). What the location metrics (NSS, AUCs) score a frame's map against."""
    rows = _as_rows(points)
    weights = temporal_weights(rows[:, 0], n_frames, 0.0, first_frame=first_frame)
    return _frame_counts(rows, weights, height, width, dtype, device)[0]


def video_gfdm(
    points: object,
    n_frames: int,
    height: int,
    width: int,
    sigma: float,
    *,
    temporal_sigma: float = 0.0,
    first_frame: int = 0,
    padding: str = "reflect",
    truncate: float = 4.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> VideoGFDM:
    """Per-frame GFDMs of a clip (see the module docstring).

    Args:
        points: ``(N, 3)`` rows ``(t, x, y)``, ``t`` in frames (see :func:`expand_fixations`),
            or a list of such tensors, one per observer (``Sample.fixations`` of a video dataset).
        n_frames: ``T``, the clip's number of frames.
        height, width: frame size in pixels.
        sigma: spatial Gaussian sigma in pixels, as for :func:`mlfem.gaze.gfdm`.
        temporal_sigma: temporal Gaussian sigma in frames; 0 (default) keeps each row on its frame.
        first_frame: frame index (in the rows' time base) of the clip's first frame.
        padding, truncate: the spatial blur's, as for :func:`mlfem.gaze.gfdm` (``truncate`` also
            sets the temporal kernel's radius).
        dtype, device: of the computation and the result (float64 for exact comparisons).

    Returns:
        :class:`VideoGFDM`; frames no row reaches are zeros with ``has_gaze`` False.
    """
    rows = _as_rows(points)
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width} (HxW)")
    col = torch.floor(rows[:, 1] + 0.5)
    row = torch.floor(rows[:, 2] + 0.5)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height) & torch.isfinite(rows[:, 0])
    n_dropped = int((~inside).sum())
    rows = rows[inside]
    weights = temporal_weights(rows[:, 0], n_frames, temporal_sigma, first_frame=first_frame,
                               truncate=truncate)
    counts, n_rows = _frame_counts(rows, weights, height, width, dtype, device)
    has_gaze = counts.flatten(1).sum(dim=1) > 0
    maps = torch.zeros_like(counts)
    if bool(has_gaze.any()):
        maps[has_gaze] = density_from_counts(counts[has_gaze], sigma, padding=padding,
                                             truncate=truncate)
    return VideoGFDM(maps, has_gaze.cpu(), n_rows, n_dropped)

