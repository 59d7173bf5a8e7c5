"""The per-observer protocol: a map scored against each observer separately, averaged.

Why a second protocol: the paper scores a map against the GFDM of *all* observers, but the
human ceiling (:func:`mlfem.gaze.human_ceiling`) can only be measured leave-one-observer-out,
against *one* observer's GFDM (or fixations) at a time. One observer's GFDM is much sparser
than the pooled one, so a smooth map fitted to pooled GFDMs (the NET fusion) can score above
the ceiling under the paper's protocol without being more human-like. Scoring every method
the ceiling's way (as :func:`mlfem.gaze.observer_scores` does) makes the ceiling a fair
yardstick. These scores fill the ``<metric>_obs`` columns of ``results.csv``.

The targets are built once per image, on the evaluation's device (:class:`mlfem.gaze.ObserverMaps`:
observers' own GFDMs, their fixation counts blurred with the dataset's sigma and normalised,
duplicates collapsed when the dataset collapses), and every method is scored against them at
once, without a full-size copy of each map per observer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mlfem.gaze import Fixations, ObserverMaps

__all__ = ["OBS_SUFFIX", "observer_means", "observer_targets", "targets_for"]

#: Suffix of the per-observer metric columns (``pcc_obs`` is PCC under this protocol).
OBS_SUFFIX = "_obs"


def targets_for(
    fixations: Fixations, sigma: float, collapse: bool = False, *,
    device: torch.device | str | None = None, out: torch.Tensor | None = None,
) -> ObserverMaps:
    """Targets of the per-observer protocol for one image, one per observer with a fixation
    (in the order of their ids), on ``device``: :class:`mlfem.gaze.ObserverMaps` (its ``own``
    GFDMs and fixation ``counts``), in float64; ``out`` as there."""
    from mlfem.gaze import ObserverMaps

    return ObserverMaps(fixations, sigma, collapse=collapse, device=device, out=out)


def observer_targets(
    fixations: Sequence[torch.Tensor], height: int, width: int, sigma: float, collapse: bool = False
) -> ObserverMaps:
    """:func:`targets_for` of one (N, 2) x/y tensor per observer (observers without a fixation
    left out by the caller) on an image of ``height`` x ``width`` pixels."""
    from mlfem.gaze import Fixations

    observers = [(f[:, 0].numpy(), f[:, 1].numpy()) for f in fixations]
    return targets_for(Fixations.from_observers(observers, height, width), sigma, collapse)


def observer_means(
    preds: torch.Tensor, targets: ObserverMaps, metrics: Sequence[str], seed: int | None = 0,
    other_fix: torch.Tensor | None = None,
) -> dict[str, list[float]]:
    """For each of the M maps ``preds`` (M, H, W) and each metric, the mean over observers of
    the metric against that observer (NaN scores left out; NaN when none is defined).
    ``other_fix`` (H, W): the other images' fixations, for ``sauc``."""
    scores = targets.cross_scores(preds, metrics, seed=seed, other_fix=other_fix)
    out: dict[str, list[float]] = {}
    for metric, values in scores.items():
        means = []
        for row in values.to("cpu", torch.float64):
            finite = row[~torch.isnan(row)]
            means.append(float(finite.mean()) if finite.numel() else math.nan)
        out[metric] = means
    return out
