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

from mlfem.gaze.fixations import Fixations
from mlfem.gaze.observer_maps import ObserverMaps

__all__ = [
    "ObserverScores", "human_ceiling", "human_ceiling_per_image", "human_ceilings", "observer_scores",
]

#: A metric: a registered name, or a callable ``f(pred, target)`` on (O, H, W) batches.
MetricArg = str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ObserverScores(NamedTuple):
    """Leave-one-observer-out scores of one image."""

    mean: float  # mean over observers with a defined score (NaN if none)
    scores: torch.Tensor  # (O,), one per observer, NaN where undefined
    observers: np.ndarray  # (O,) observer ids, in the order of ``scores``
    n_nan: int  # observers whose score is undefined


def _observer_maps(
    fixations: Fixations, sigma: float, collapse: bool, padding: str, truncate: float,
    dtype: torch.dtype, device: torch.device | str | None,
) -> ObserverMaps:
    maps = ObserverMaps(fixations, sigma, collapse=collapse, padding=padding, truncate=truncate,
                        dtype=dtype, device=device)
    if maps.n_observers < 2:
        raise ValueError(
            f"image {fixations.name or '?'}: inter-observer consistency needs at least two "
            f"observers, got {maps.n_observers}"
        )
    return maps


def _callable_target(maps: ObserverMaps, needs: str) -> torch.Tensor:
    if needs not in ("gt", "fix"):
        raise ValueError(f"needs must be 'gt' or 'fix', got {needs!r}")
    return maps.own if needs == "gt" else maps.counts


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
    if callable(metric):
        return _summarise(metric(maps.others, _callable_target(maps, needs)), maps.observers)
    (scores,) = maps.ceiling_scores([metric], seed=seed, baseline=baseline, other_fix=other_fix).values()
    return _summarise(scores, maps.observers)


def human_ceilings(
    fixations: Fixations, sigma: float, metrics: Sequence[str], *, collapse: bool = False,
    padding: str = "reflect", truncate: float = 4.0, baseline: torch.Tensor | str = "centre",
    seed: int | None = 0, dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None, other_fix: torch.Tensor | None = None,
) -> dict[str, ObserverScores]:
    """:func:`human_ceiling` of one image under several registered metrics at once (the
    observers' GFDMs are built once), keyed by the metrics' registered names."""
    maps = _observer_maps(fixations, sigma, collapse, padding, truncate, dtype, device)
    scores = maps.ceiling_scores(list(metrics), seed=seed, baseline=baseline, other_fix=other_fix)
    return {name: _summarise(values, maps.observers) for name, values in scores.items()}


def observer_scores(
    pred: torch.Tensor, fixations: Fixations, sigma: float, metric: MetricArg = "pcc", *,
    needs: str = "gt", collapse: bool = False, padding: str = "reflect", truncate: float = 4.0,
    baseline: torch.Tensor | str = "centre", seed: int | None = 0,
    dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
) -> ObserverScores:
    """Score a fixed (H, W) map against each observer separately (same targets as
    :func:`human_ceiling`), so a method or the centre bias can be put beside the ceiling.
    """
    pred = torch.as_tensor(pred)
    if pred.dim() != 2:
        raise ValueError(f"pred must be one (H, W) map, got shape {tuple(pred.shape)}")
    maps = _observer_maps(fixations, sigma, collapse, padding, truncate, dtype, device)
    pred = pred.to(device=maps.device)
    if callable(metric):
        batch = pred.unsqueeze(0).expand(maps.n_observers, -1, -1)
        return _summarise(metric(batch, _callable_target(maps, needs)), maps.observers)
    (scores,) = maps.cross_scores(pred[None], [metric], seed=seed, baseline=baseline).values()
    return _summarise(scores[0], maps.observers)


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
