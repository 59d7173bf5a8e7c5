"""The human ceiling of a clip: inter-observer consistency on video, frame by frame.

As for images (:mod:`mlfem.gaze.reference`): for each observer ``o``, the per-frame GFDMs of
all the *other* observers are the prediction, scored with :func:`score_clip` against observer
``o``'s own per-frame GFDMs (distribution metrics) or fixations (location metrics), and the
clip's ceiling is the mean over observers. Frames where observer ``o`` has no gaze are skipped
(as :func:`score_clip` does); frames where nobody else looked make the prediction an all-zero
map, whose PCC is undefined: such values are left out and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from mlfem.gaze.video import _as_rows, video_gfdm
from mlfem.gaze.video_scores import score_clip
from mlfem.metrics import resolve

__all__ = ["clip_human_ceiling"]


def clip_human_ceiling(
    fixations: Sequence[object],
    n_frames: int,
    height: int,
    width: int,
    sigma: float,
    metrics: Sequence[str] = ("pcc", "sim", "nss"),
    *,
    temporal_sigma: float = 0.0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Leave-one-observer-out scores of a clip (module docstring).

    Args:
        fixations: one ``(N, 3)`` ``(t, x, y)`` tensor per observer (``Sample.fixations``).
        n_frames, height, width: the clip's ``(T, H, W)``.
        sigma, temporal_sigma: how the GFDMs are built (the dataset's settings).
        metrics: registered gaze metrics.

    Returns:
        ``{"observers": O, <metric>: mean over observers with a defined value,
        "observers_nan_<metric>": how many had none, "per_observer": {metric: [O values]}}``.

    Raises:
        ValueError: fewer than two observers with a row.
    """
    metrics = [resolve(name).name for name in metrics]  # aliases (cc) become the result's keys
    observers = [_as_rows(rows) for rows in fixations]
    observers = [rows for rows in observers if len(rows)]
    if len(observers) < 2:
        raise ValueError(f"inter-observer consistency needs at least two observers with "
                         f"fixations, got {len(observers)}")

    def maps(rows: torch.Tensor) -> torch.Tensor:
        return video_gfdm(rows, n_frames, height, width, sigma, temporal_sigma=temporal_sigma,
                          dtype=dtype, device=device).maps

    per_observer: dict[str, list[float]] = {name: [] for name in metrics}
    for o, own in enumerate(observers):
        others = torch.cat([rows for j, rows in enumerate(observers) if j != o])
        scores = score_clip(maps(others), maps(own), own, metrics)
        for name in metrics:
            per_observer[name].append(float(scores[name]))
    out: dict[str, Any] = {"observers": len(observers)}
    for name, values in per_observer.items():
        defined = [v for v in values if not math.isnan(v)]
        out[name] = sum(defined) / len(defined) if defined else math.nan
        out[f"observers_nan_{name}"] = len(values) - len(defined)
    out["per_observer"] = per_observer
    return out
