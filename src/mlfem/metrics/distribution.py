"""Distribution-based metrics: the prediction is compared with a ground-truth density map.

``pred`` and ``gt`` are (H, W) or (B, H, W); the result is a 0-d tensor or a (B,) tensor. A
prediction of another size is resized to ``gt`` bilinearly (:func:`mlfem.metrics.evaluate`
records when that happened). Undefined cases give NaN, never 0, so callers can count them.
"""

from __future__ import annotations

import torch

from mlfem.metrics._common import (
    EPS, chunked, finish, is_constant, minmax, prepare, row_dot, sum_normalise,
)
from mlfem.metrics.registry import register_metric

__all__ = ["SIM_VARIANTS", "kld", "pcc", "sim"]

SIM_VARIANTS: tuple[str, ...] = ("default", "mit")


def _pcc(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    x = pred.flatten(1)
    y = gt.flatten(1)
    undefined = is_constant(pred) | is_constant(gt)  # zero variance
    x = x - x.mean(dim=1, keepdim=True)
    y = y - y.mean(dim=1, keepdim=True)
    den = torch.sqrt(row_dot(x, x) * row_dot(y, y))
    # Clamp guards the last ulp: |r| may exceed 1 by rounding.
    r = (row_dot(x, y) / torch.where(undefined, torch.ones_like(den), den)).clamp(-1.0, 1.0)
    return torch.where(undefined, float("nan"), r)


@register_metric("pcc", needs="gt", higher_is_better=True, aliases=("cc",),
                 summary="Pearson correlation with the GFDM")
def pcc(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Pearson correlation coefficient (CC) of the flattened maps; symmetric.

    NaN when either map is constant (its variance is zero).
    """
    p = prepare(pred, gt)
    return finish(chunked(_pcc, p.pred, p.target), p.squeeze)


def _bring_to_unit_scale(maps: torch.Tensor) -> torch.Tensor:
    """Divide maps whose peak is extremely small or large by that peak. SIM does not depend on
    a map's scale, but the ratio of two sums below overflows (or underflows) when one map's
    values are near the smallest normal float: a map of 2.2e-308 against one of 1.0 gave NaN.
    Other maps are returned with their values unchanged."""
    peak = maps.amax(dim=(1, 2), keepdim=True)
    extreme = (peak > 0) & ((peak < 1e-100) | (peak > 1e100))
    if not bool(extreme.any()):  # the usual case: no full-size temporaries
        return maps
    return torch.where(extreme, maps / torch.where(extreme, peak, torch.ones_like(peak)), maps)


def _sim(pred: torch.Tensor, gt: torch.Tensor, mit: bool) -> torch.Tensor:
    a, b = pred, gt
    if mit:
        a, b = minmax(a), minmax(b)
    a = _bring_to_unit_scale(a.clamp_min(0))
    b = _bring_to_unit_scale(b.clamp_min(0))
    a_sum = a.sum(dim=(1, 2))
    b_sum = b.sum(dim=(1, 2))
    ok = (a_sum > 0) & (b_sum > 0)
    a_safe = torch.where(ok, a_sum, torch.ones_like(a_sum))
    b_safe = torch.where(ok, b_sum, torch.ones_like(b_sum))
    # sum(min(a / A, b / B)) = sum(min(a, b * A / B)) / A: no normalised copies, and the
    # temporaries are reused in place (fresh large allocations cost page faults on the CPU).
    b.mul_((a_safe / b_safe).view(-1, 1, 1))
    inter = torch.minimum(a, b, out=a).sum(dim=(1, 2)) / a_safe
    # The clamp only absorbs rounding (a sum of 1 + 1ulp); NaN passes through.
    return torch.where(ok, inter.clamp(0.0, 1.0), float("nan"))


@register_metric("sim_mit", needs="gt", higher_is_better=True, variant="mit",
                 summary="histogram intersection, MIT min-max variant")
@register_metric("sim", needs="gt", higher_is_better=True,
                 summary="histogram intersection, sum-normalised maps")
def sim(pred: torch.Tensor, gt: torch.Tensor, variant: str = "default") -> torch.Tensor:
    """Similarity (histogram intersection): ``sum(min(p, q))`` of the maps as distributions.

    ``variant="default"`` (pysaliency / Tübingen): each map is clipped at 0 and divided by its
    sum. ``variant="mit"`` (MIT benchmark code): each map is first min-max rescaled to [0, 1],
    so a constant map is undefined there. NaN when a map has zero sum (or is constant, for
    ``"mit"``). Result in [0, 1]; 1 exactly when the two distributions are equal.
    """
    if variant not in SIM_VARIANTS:
        raise ValueError(f"variant must be one of {SIM_VARIANTS}, got {variant!r}")
    p = prepare(pred, gt)
    return finish(chunked(lambda a, b: _sim(a, b, variant == "mit"), p.pred, p.target), p.squeeze)


def _kld(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    pd = sum_normalise(pred)
    qd = sum_normalise(gt)
    return (qd * torch.log(EPS + qd / (pd + EPS))).sum(dim=(1, 2))


@register_metric("kld", needs="gt", higher_is_better=False, aliases=("kl",),
                 summary="KL(GFDM || prediction), nats, MIT form")
def kld(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Kullback-Leibler divergence KL(gt || pred) in nats, MIT form.

    Both maps are clipped at 0 and normalised to sum 1 (``p`` from ``pred``, ``q`` from ``gt``),
    then ``sum(q * log(eps + q / (p + eps)))`` with ``eps = 2.2204e-16``. Lower is better.
    NaN when a map has zero sum.
    """
    p = prepare(pred, gt)
    return finish(chunked(_kld, p.pred, p.target), p.squeeze)
