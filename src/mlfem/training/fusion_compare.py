"""Scoring a NET on cached maps, and the algebraic fusions it is compared with on them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["compare_fusions", "default_fusions", "validate_net"]


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


def validate_net(
    net: nn.Module, maps: torch.Tensor, gfdm: torch.Tensor, device: torch.device, batch_size: int = 64
) -> dict[str, float]:
    """``val_mse`` (mean over pixels) and ``val_pcc`` (mean over images with a defined PCC)
    of ``net``'s raw output on ``maps`` (N, L, r, r) against ``gfdm`` (N, r, r)."""
    from mlfem.metrics import pcc

    if len(maps) == 0:
        return {"val_mse": math.nan}
    net.eval()
    squared, pccs = 0.0, []
    with torch.no_grad():
        for start in range(0, len(maps), batch_size):
            x = maps[start : start + batch_size].to(device).float()
            y = gfdm[start : start + batch_size].to(device).float()
            pred = net(x)
            squared += float(F.mse_loss(pred, y, reduction="sum"))
            pccs.append(pcc(pred, y).cpu())
    values = torch.cat(pccs)
    values = values[~torch.isnan(values)]
    return {
        "val_mse": squared / (gfdm[0].numel() * len(gfdm)),
        "val_pcc": float(values.mean()) if len(values) else math.nan,
    }
