"""Distribution-based metrics: the prediction is compared with a ground-truth density map.

``pred`` and ``gt`` are (H, W) or (B, H, W); the result is a 0-d tensor or a (B,) tensor. A
prediction of another size is resized to ``gt`` bilinearly (:func:`mlfem.metrics.evaluate`
records when that happened). Undefined cases give NaN, never 0, so callers can count them.
"""

from __future__ import annotations

import torch

from mlfem.metrics._common import EPS, finish, is_constant, minmax, prepare, sum_normalise

__all__ = ["SIM_VARIANTS", "kld", "pcc", "sim"]

SIM_VARIANTS: tuple[str, ...] = ("default", "mit")


def pcc(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Pearson correlation coefficient (CC) of the flattened maps; symmetric.

    NaN when either map is constant (its variance is zero).
    """
    p = prepare(pred, gt)
    x = p.pred.flatten(1)
    y = p.target.flatten(1)
    x = x - x.mean(dim=1, keepdim=True)
    y = y - y.mean(dim=1, keepdim=True)
    num = (x * y).sum(dim=1)
    den = torch.sqrt((x * x).sum(dim=1) * (y * y).sum(dim=1))
    undefined = is_constant(p.pred) | is_constant(p.target)
    # Clamp guards the last ulp: |r| may exceed 1 by rounding.
    r = (num / torch.where(undefined, torch.ones_like(den), den)).clamp(-1.0, 1.0)
    return finish(torch.where(undefined, float("nan"), r), p.squeeze)


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
    a, b = p.pred, p.target
    if variant == "mit":
        a, b = minmax(a), minmax(b)
    a, b = sum_normalise(a), sum_normalise(b)
    # The clamp only absorbs rounding (a sum of 1 + 1ulp); NaN passes through.
    return finish(torch.minimum(a, b).sum(dim=(1, 2)).clamp(0.0, 1.0), p.squeeze)


def kld(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Kullback-Leibler divergence KL(gt || pred) in nats, MIT form.

    Both maps are clipped at 0 and normalised to sum 1 (``p`` from ``pred``, ``q`` from ``gt``),
    then ``sum(q * log(eps + q / (p + eps)))`` with ``eps = 2.2204e-16``. Lower is better.
    NaN when a map has zero sum.
    """
    p = prepare(pred, gt)
    pd = sum_normalise(p.pred)
    qd = sum_normalise(p.target)
    return finish((qd * torch.log(EPS + qd / (pd + EPS))).sum(dim=(1, 2)), p.squeeze)
