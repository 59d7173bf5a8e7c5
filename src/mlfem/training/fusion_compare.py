"""The algebraic fusions a trained NET is compared with, scored on the same cached maps."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["compare_fusions", "default_fusions"]


def default_fusions(alphas: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)) -> dict[str, Any]:
    """The algebraic fusions a NET is compared with: max, fem, and add/top over ``alphas``."""
    from mlfem.fusion import make_fusion

    fusions: dict[str, Any] = {"max": make_fusion("max"), "fem": make_fusion("fem")}
    for alpha in alphas:
        fusions[f"add(alpha={alpha})"] = make_fusion("add", alpha=alpha)
        fusions[f"top(alpha={alpha})"] = make_fusion("top", alpha=alpha)
    return fusions


def compare_fusions(
    maps: torch.Tensor,
    gfdm: torch.Tensor,
    fusions: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    batch_size: int = 64,
) -> dict[str, float]:
    """Mean PCC with ``gfdm`` (N, r, r) of each fusion applied to ``maps`` (N, L, r, r).

    Images where the PCC is undefined (a constant map) are left out of the mean.
    """
    from mlfem.metrics import pcc

    totals = {name: [0.0, 0] for name in fusions}
    with torch.inference_mode():
        for start in range(0, len(maps), batch_size):
            batch = maps[start : start + batch_size].float()
            target = gfdm[start : start + batch_size].float()
            for name, fusion in fusions.items():
                values = pcc(fusion(batch).float(), target)
                finite = values[~torch.isnan(values)]
                totals[name][0] += float(finite.sum())
                totals[name][1] += int(finite.numel())
    return {name: (total / count if count else math.nan) for name, (total, count) in totals.items()}
