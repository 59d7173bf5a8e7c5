"""Human reference points: inter-observer consistency (the "human ceiling") and per-observer
scoring of any fixed map (e.g. the centre bias) under the same leave-one-out protocol.

Human ceiling of one image: for each observer ``o``, the metric between the GFDM of all the
*other* observers (the prediction) and observer ``o`` (their GFDM for distribution metrics,
their fixation counts for location metrics), averaged over ``o``. No model trained on the same
observers can be expected to do better on average.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from mlfem.gaze.density import blur_counts, density_from_counts, fixation_counts
from mlfem.gaze.fixations import Fixations
from mlfem.metrics.table import compute, resolve

__all__ = ["ObserverScores", "human_ceiling", "human_ceiling_per_image", "observer_scores"]

#: A metric: a registered name, or a callable ``f(pred, target)`` on (O, H, W) batches.
MetricArg = str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ObserverScores(NamedTuple):
    """Leave-one-observer-out scores of one image."""

    mean: float  # mean over observers with a defined score (NaN if none)
    scores: torch.Tensor  # (O,), one per observer, NaN where undefined
    observers: np.ndarray  # (O,) observer ids, in the order of ``scores``
    n_nan: int  # observers whose score is undefined


class _ObserverMaps(NamedTuple):
    observers: np.ndarray
    counts: torch.Tensor  # (O, H, W) each observer's own fixation counts (duplicates kept)
    own: torch.Tensor  # (O, H, W) each observer's GFDM (NaN map if no fixation inside)
    others: torch.Tensor  # (O, H, W) GFDM of everyone else


def _per_observer_counts(
    fixations: Fixations, dtype: torch.dtype, device: torch.device | str | None
) -> tuple[np.ndarray, torch.Tensor]:
    observers = fixations.observer_ids
    groups = [fixations.observers == o for o in observers]
    counts = fixation_counts(
        [fixations.xs[g] for g in groups],
        [fixations.ys[g] for g in groups],
        fixations.height,
        fixations.width,
        dtype=dtype,
        device=device,
    ).counts
    return observers, counts


def _observer_maps(
    fixations: Fixations, sigma: float, collapse: bool, padding: str, truncate: float,
    dtype: torch.dtype, device: torch.device | str | None,
) -> _ObserverMaps:
    observers, counts = _per_observer_counts(fixations, dtype, device)
    if observers.size < 2:
        raise ValueError(
            f"image {fixations.name or '?'}: inter-observer consistency needs at least two "
            f"observers, got {observers.size}"
        )
    if collapse:
        own = density_from_counts((counts > 0).to(dtype), sigma, padding=padding, truncate=truncate)
        others_counts = (counts.sum(0, keepdim=True) - counts) > 0
        others = density_from_counts(
            others_counts.to(dtype), sigma, padding=padding, truncate=truncate
        )
    else:
        # The blur is linear: blur each observer once and get "everyone else" by subtraction,
        # O blurs instead of 2 O.
        blurred = blur_counts(counts, sigma, padding=padding, truncate=truncate).clamp_min(0)
        rest = (blurred.sum(0, keepdim=True) - blurred).clamp_min(0)
        own = blurred / blurred.sum(dim=(1, 2), keepdim=True)
        others = rest / rest.sum(dim=(1, 2), keepdim=True)
    return _ObserverMaps(observers, counts, own, others)


def _score(
    metric: MetricArg,
    needs: str,
    pred: torch.Tensor,
    maps: _ObserverMaps,
    seed: int | None,
    baseline: torch.Tensor | str,
    other_fix: torch.Tensor | None = None,
) -> torch.Tensor:
    if callable(metric):
        if needs not in ("gt", "fix"):
            raise ValueError(f"needs must be 'gt' or 'fix', got {needs!r}")
        return metric(pred, maps.own if needs == "gt" else maps.counts)
    spec = resolve(metric)
    if spec.name == "sauc" and other_fix is None:
        raise ValueError("sauc needs other images' fixations (other_fix=)")
    return compute(spec.name, pred, gt=maps.own, fix=maps.counts, seed=seed, baseline=baseline, other_fix=other_fix)


def _summarise(scores: torch.Tensor, observers: np.ndarray) -> ObserverScores:
    scores = scores.reshape(-1)
    values = scores.detach().to("cpu", torch.float64)
    valid = ~torch.isnan(values)
    mean = float(values[valid].mean()) if bool(valid.any()) else math.nan
    return ObserverScores(mean, scores, observers, int((~valid).sum()))


def human_ceiling(
    fixations: Fixations, sigma: float, metric: MetricArg = "pcc", *, needs: str = "gt",
    collapse: bool = False, padding: str = "reflect", truncate: float = 4.0,
    baseline: torch.Tensor | str = "centre", seed: int | None = 0,
    dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
    other_fix: torch.Tensor | None = None,
) -> ObserverScores:
    """Inter-observer consistency of one image under ``metric``.

    ``metric`` is a registered name (see :data:`mlfem.metrics.METRICS`; ``sauc`` needs
    ``other_fix``, the (H, W) count map of other images' fixations) or a
    callable ``f(pred, target)`` on (O, H, W) batches whose target is the left-out observer's
    GFDM (``needs="gt"``) or fixation counts (``needs="fix"``). GFDMs use ``sigma``,
    ``collapse`` and ``padding`` as in :func:`mlfem.gaze.gfdm`; fixation counts always keep
    duplicates. Needs at least two observers.
    """
    maps = _observer_maps(fixations, sigma, collapse, padding, truncate, dtype, device)
    return _summarise(_score(metric, needs, maps.others, maps, seed, baseline, other_fix), maps.observers)


def observer_scores(
    pred: torch.Tensor, fixations: Fixations, sigma: float, metric: MetricArg = "pcc", *,
    needs: str = "gt", collapse: bool = False, padding: str = "reflect", truncate: float = 4.0,
    baseline: torch.Tensor | str = "centre", seed: int | None = 0,
    dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
) -> ObserverScores:
    """Score a fixed (H, W) map against each observer separately (same targets as
    :func:`human_ceiling`), so a method or the centre bias can be put beside the ceiling.
    """
    maps = _observer_maps(fixations, sigma, collapse, padding, truncate, dtype, device)
    pred = torch.as_tensor(pred).to(device=maps.own.device)
    if pred.dim() != 2:
        raise ValueError(f"pred must be one (H, W) map, got shape {tuple(pred.shape)}")
    batch = pred.unsqueeze(0).expand(maps.own.shape[0], -1, -1)
    return _summarise(_score(metric, needs, batch, maps, seed, baseline), maps.observers)


def human_ceiling_per_image(
    dataset: Sequence[Fixations],
    sigma: float,
    metric: MetricArg = "pcc",
    **kwargs: object,
) -> torch.Tensor:
    """:func:`human_ceiling` ``.mean`` of every image of a dataset, as an (N,) float64 tensor."""
    return torch.tensor(
        [human_ceiling(f, sigma, metric, **kwargs).mean for f in dataset], dtype=torch.float64
    )
