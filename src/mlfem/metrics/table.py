"""Metric registry and :func:`evaluate`: all requested metrics for a batch, as a tidy table."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mlfem.metrics._common import as_batch, match_size
from mlfem.metrics.distribution import kld, pcc, sim
from mlfem.metrics.location import auc_borji, auc_judd, auc_pixels, info_gain, nss, sauc

__all__ = ["METRICS", "MetricSpec", "MetricTable", "compute", "evaluate", "resolve"]


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: what it needs and which direction is better."""

    name: str
    needs: str  # "gt": a density map; "fix": a fixation count map
    higher_is_better: bool
    summary: str


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("pcc", "gt", True, "Pearson correlation with the GFDM"),
        MetricSpec("sim", "gt", True, "histogram intersection, sum-normalised maps"),
        MetricSpec("sim_mit", "gt", True, "histogram intersection, MIT min-max variant"),
        MetricSpec("kld", "gt", False, "KL(GFDM || prediction), nats, MIT form"),
        MetricSpec("nss", "fix", True, "mean z-score at fixations"),
        MetricSpec("auc_judd", "fix", True, "AUC-Judd, unfixated pixels as negatives"),
        MetricSpec("auc_borji", "fix", True, "AUC-Borji, random pixels as negatives"),
        MetricSpec("auc_pixels", "fix", True, "AUC per fixation, all pixels as negatives"),
        MetricSpec("sauc", "fix", True, "shuffled AUC, other images' fixations as negatives"),
        MetricSpec("info_gain", "fix", True, "information gain over a baseline, bits/fixation"),
    )
}

_ALIASES: dict[str, str] = {"cc": "pcc", "ig": "info_gain", "s_auc": "sauc", "kl": "kld"}


def resolve(name: str) -> MetricSpec:
    """The :class:`MetricSpec` of ``name`` (aliases ``cc``, ``ig``, ``kl``, ``s_auc`` accepted)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[key]


def compute(
    name: str,
    pred: torch.Tensor,
    *,
    gt: torch.Tensor | None = None,
    fix: torch.Tensor | None = None,
    other_fix: torch.Tensor | None = None,
    baseline: torch.Tensor | str = "centre",
    seed: int | None = 0,
) -> torch.Tensor:
    """One metric by name; ``gt`` for distribution metrics, ``fix`` for location metrics."""
    spec = resolve(name)
    target = gt if spec.needs == "gt" else fix
    if target is None:
        what = "a ground-truth density map (gt=)" if spec.needs == "gt" else "a fixation map (fix=)"
        raise ValueError(f"metric {spec.name!r} needs {what}")
    if spec.name == "pcc":
        return pcc(pred, target)
    if spec.name in ("sim", "sim_mit"):
        return sim(pred, target, variant="mit" if spec.name == "sim_mit" else "default")
    if spec.name == "kld":
        return kld(pred, target)
    if spec.name == "nss":
        return nss(pred, target)
    if spec.name == "auc_judd":
        return auc_judd(pred, target)
    if spec.name == "auc_borji":
        return auc_borji(pred, target, seed=seed)
    if spec.name == "auc_pixels":
        return auc_pixels(pred, target)
    if spec.name == "sauc":
        if other_fix is None:
            raise ValueError("metric 'sauc' needs the other images' fixations (other_fix=)")
        return sauc(pred, target, other_fix, seed=seed)
    return info_gain(pred, target, baseline)


@dataclass
class MetricTable:
    """Per-image metric values of one batch.

    ``columns`` maps ``"image"`` and each metric name to a list (one entry per image; NaN where a
    metric is undefined). ``resized`` is True when the predictions had to be resized to the
    ground truth; ``nan_counts`` gives the number of undefined values per metric.
    """

    metrics: tuple[str, ...]
    columns: dict[str, list] = field(default_factory=dict)
    resized: bool = False
    nan_counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns.get("image", []))

    def rows(self) -> list[dict[str, object]]:
        """One dict per image: ``{"image": ..., "<metric>": value, ...}``."""
        keys = ["image", *self.metrics]
        return [dict(zip(keys, values)) for values in zip(*(self.columns[k] for k in keys))]

    def mean(self) -> dict[str, float]:
        """Mean of each metric over the images where it is defined (NaN if none is)."""
        out = {}
        for name in self.metrics:
            values = [v for v in self.columns[name] if not math.isnan(v)]
            out[name] = sum(values) / len(values) if values else float("nan")
        return out

    def to_csv(self, path: str | Path) -> None:
        """Write the rows as CSV (header: image, metrics...)."""
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["image", *self.metrics])
            writer.writeheader()
            writer.writerows(self.rows())


def evaluate(
    pred: torch.Tensor,
    *,
    gt: torch.Tensor | None = None,
    fix: torch.Tensor | None = None,
    metrics: Sequence[str] = ("pcc", "sim"),
    other_fix: torch.Tensor | None = None,
    baseline: torch.Tensor | str = "centre",
    names: Sequence[object] | None = None,
    seed: int | None = 0,
) -> MetricTable:
    """All ``metrics`` for a batch of predictions, as a :class:`MetricTable`.

    ``pred`` is (B, H, W) or (H, W); ``gt`` the GFDMs (needed by pcc, sim, sim_mit, kld) and
    ``fix`` the fixation count maps (needed by the others), at the ground-truth size. A
    prediction of another size is resized once, bilinearly, and the table says so. ``names``
    label the rows (default: 0..B-1). ``seed`` drives the sampled AUCs.
    """
    specs = [resolve(m) for m in metrics]
    if not specs:
        raise ValueError("no metrics requested")
    references = [t for t in (gt, fix) if t is not None]
    if not references:
        raise ValueError("give gt= (density maps) and/or fix= (fixation count maps)")
    batches = [as_batch(t, "gt/fix")[0] for t in references]
    if len(batches) == 2 and batches[0].shape[-2:] != batches[1].shape[-2:]:
        raise ValueError(
            f"gt and fix differ in size: {tuple(batches[0].shape)} vs {tuple(batches[1].shape)}"
        )
    p, _ = as_batch(pred, "pred")
    p, resized = match_size(p.to(batches[0].device), tuple(batches[0].shape[-2:]))
    values: dict[str, torch.Tensor] = {}
    for spec in specs:
        out = compute(
            spec.name,
            p,
            gt=None if gt is None else as_batch(gt, "gt")[0],
            fix=None if fix is None else as_batch(fix, "fix")[0],
            other_fix=other_fix,
            baseline=baseline,
            seed=seed,
        )
        values[spec.name] = out.reshape(-1)
    count = max(v.numel() for v in values.values())
    labels = list(names) if names is not None else list(range(count))
    if len(labels) != count:
        raise ValueError(f"{len(labels)} names for {count} images")
    table = MetricTable(metrics=tuple(values), resized=resized)
    table.columns["image"] = labels
    for name, tensor in values.items():
        column = tensor.detach().to("cpu", torch.float64).expand(count).tolist()
        table.columns[name] = column
        table.nan_counts[name] = sum(1 for v in column if math.isnan(v))
    return table
