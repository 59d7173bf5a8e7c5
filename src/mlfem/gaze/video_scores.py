"""Scoring a clip's saliency maps against gaze on video: the image metrics frame by frame,
averaged over the frames, then over clips.

Every registered gaze metric of :mod:`mlfem.metrics` works unchanged: frame ``k``'s map is
scored against frame ``k``'s GFDM (``pcc``, ``sim``, ``kld``, ...) or its fixation count map
(``nss``, ``auc_judd``, ...), exactly as an image would be. A frame is **scored** when every
reference the requested metrics need is non-empty on it (a GFDM that sums to more than 0 for
GFDM metrics, at least one fixation for fixation metrics), so all metrics of a clip average over
the same frames; the other frames (no observer looked during them) are **skipped and counted**
(``frames - frames_scored``). Within the scored frames a metric can still be undefined (NaN,
e.g. PCC of a constant map): it is left out of that metric's mean and counted in
``frames_nan_<metric>``, as :meth:`mlfem.metrics.MetricTable.mean` does for images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mlfem.gaze.video import frame_fixation_counts
from mlfem.metrics import evaluate, resolve

__all__ = ["mean_over_clips", "score_clip"]


def _count_maps(fixations: object, frames: int, size: tuple[int, int],
                device: torch.device) -> torch.Tensor:
    """(T, H, W) fixation counts from count maps, (N, 3) ``(t, x, y)`` rows, or a list of
    per-observer rows (``Sample.fixations`` of a video dataset)."""
    if torch.is_tensor(fixations) and fixations.ndim == 3:
        if tuple(fixations.shape) != (frames, *size):
            raise ValueError(f"fixation count maps are {tuple(fixations.shape)}, expected "
                             f"{(frames, *size)} (T, H, W)")
        return fixations.to(device=device, dtype=torch.float64)
    return frame_fixation_counts(fixations, frames, size[0], size[1], device=device)


def _per_frame(value: object, valid: torch.Tensor, frames: int) -> object:
    """``value`` restricted to the scored frames when it is one map per frame."""
    if torch.is_tensor(value) and value.ndim == 3 and value.shape[0] == frames:
        return value[valid.to(value.device)]
    return value


def score_clip(
    saliency: torch.Tensor,
    gfdm: torch.Tensor | None = None,
    fixations: object | None = None,
    metrics: Sequence[str] = ("pcc", "sim", "nss"),
    *,
    baseline: torch.Tensor | str = "centre",
    other_fix: torch.Tensor | None = None,
    seed: int | None = 0,
    per_frame: bool = False,
) -> dict[str, Any]:
    """Gaze metrics of one clip's maps, averaged over its scored frames (module docstring).

    Args:
        saliency: ``(T, H, W)`` maps, one per frame (another ``H, W`` is resized bilinearly to
            the references' size, frame by frame, and ``resized`` says so).
        gfdm: ``(T, H, W)`` per-frame GFDMs (:func:`mlfem.gaze.video.video_gfdm`); needed by
            the metrics that compare densities (``pcc``, ``sim``, ``kld``, ...).
        fixations: ``(T, H, W)`` fixation count maps, or ``(t, x, y)`` rows (``(N, 3)`` or a
            list per observer, ``t`` the frame index in the clip); needed by the location
            metrics (``nss``, the AUCs, ``info_gain``).
        metrics: names of registered gaze metrics (:data:`mlfem.metrics.METRICS`).
        baseline, other_fix, seed: as for :func:`mlfem.metrics.evaluate`; a ``(T, H, W)``
            ``baseline`` or ``other_fix`` is taken frame by frame.
        per_frame: also return ``"per_frame"``: each metric's ``T`` values (NaN on skipped
            frames).

    Returns:
        ``{"frames": T, "frames_scored": n, "resized": bool, <metric>: mean over the scored
        frames where it is defined (NaN if none), "frames_nan_<metric>": undefined count}``.
    """
    if saliency.ndim != 3:
        raise ValueError(f"saliency must be (T, H, W) maps, got shape {tuple(saliency.shape)}")
    frames = int(saliency.shape[0])
    specs = [resolve(m) for m in metrics]
    if not specs:
        raise ValueError("no metrics requested")
    model_metrics = [s.name for s in specs if s.uses_model]
    if model_metrics:
        raise ValueError(f"metrics {model_metrics} score faithfulness to the network, not gaze")
    needs = {s.needs for s in specs}
    if "gt" in needs and gfdm is None:
        raise ValueError(f"metrics {[s.name for s in specs if s.needs == 'gt']} need gfdm=")
    if "fix" in needs and fixations is None:
        raise ValueError(f"metrics {[s.name for s in specs if s.needs == 'fix']} need fixations=")
    if gfdm is not None and (gfdm.ndim != 3 or gfdm.shape[0] != frames):
        raise ValueError(f"gfdm must be (T, H, W) with T = {frames} like the saliency maps, "
                         f"got shape {tuple(gfdm.shape)}")
    size = tuple(gfdm.shape[-2:]) if gfdm is not None else tuple(saliency.shape[-2:])
    # The references share one device (the GFDMs', else the maps'): evaluate() wants them so.
    device = gfdm.device if gfdm is not None else saliency.device
    counts = _count_maps(fixations, frames, size, device) if "fix" in needs else None

    valid = torch.ones(frames, dtype=torch.bool)
    if "gt" in needs:
        valid &= (gfdm.flatten(1).sum(dim=1) > 0).cpu()
    if counts is not None:
        valid &= (counts.flatten(1).sum(dim=1) > 0).cpu()
    scored = int(valid.sum())

    out: dict[str, Any] = {"frames": frames, "frames_scored": scored, "resized": False}
    values = {s.name: torch.full((frames,), math.nan, dtype=torch.float64) for s in specs}
    if scored:
        index = valid.to(saliency.device)
        table = evaluate(
            saliency[index],
            gt=gfdm[valid.to(gfdm.device)] if "gt" in needs else None,
            fix=counts[valid.to(counts.device)] if counts is not None else None,
            metrics=[s.name for s in specs],
            other_fix=_per_frame(other_fix, valid, frames),
            baseline=_per_frame(baseline, valid, frames),
            names=torch.nonzero(valid).reshape(-1).tolist(),
            seed=seed,
        )
        out["resized"] = table.resized
        for name in values:
            values[name][valid] = torch.tensor(table.columns[name], dtype=torch.float64)
    for name, column in values.items():
        defined = column[valid][~torch.isnan(column[valid])]
        out[name] = float(defined.mean()) if defined.numel() else math.nan
        out[f"frames_nan_{name}"] = scored - int(defined.numel())
    if per_frame:
        out["per_frame"] = {name: column.tolist() for name, column in values.items()}
    return out


def mean_over_clips(scores: Sequence[Mapping[str, Any]],
                    metrics: Sequence[str] | None = None) -> dict[str, Any]:
    """Average :func:`score_clip` results over clips: each clip with a defined value counts
    once (whatever its number of frames); clips where a metric is NaN are left out and counted
    in ``clips_nan_<metric>``. ``frames`` and ``frames_scored`` are summed when every clip has
    them. Works on :func:`~mlfem.gaze.video_reference.clip_human_ceiling` results too."""
    if not scores:
        raise ValueError("no clip scores to average")
    if metrics is None:
        skip = {"frames", "frames_scored", "resized", "per_frame", "observers", "per_observer"}
        metrics = [k for k in scores[0]
                   if k not in skip and not k.startswith(("frames_nan_", "observers_nan_"))]
    out: dict[str, Any] = {"clips": len(scores)}
    for count in ("frames", "frames_scored"):  # absent from e.g. clip_human_ceiling's results
        if all(count in s for s in scores):
            out[count] = sum(int(s[count]) for s in scores)
    for name in metrics:
        defined = [float(s[name]) for s in scores if not math.isnan(float(s[name]))]
        out[name] = sum(defined) / len(defined) if defined else math.nan
        out[f"clips_nan_{name}"] = len(scores) - len(defined)
    return out
