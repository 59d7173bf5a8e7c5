"""Metrics by name (:func:`compute`) and :func:`evaluate`: all requested metrics for a batch, as a
tidy table.  The metrics themselves are registered beside their functions (:mod:`.registry`)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mlfem._discovery import import_public_modules
from mlfem.metrics._common import as_batch, match_size
from mlfem.metrics.registry import METRICS, MetricSpec, resolve

__all__ = ["METRICS", "MetricSpec", "MetricTable", "compute", "evaluate", "resolve"]


# Every public module of mlfem.metrics registers its decorated functions on import; discovery
# (rather than a list here) makes a new metric one file. Name order puts ``distribution``
# (pcc, sim, sim_mit, kld) before ``location``, the order of METRICS.
import_public_modules(__package__, Path(__file__).parent, skip=("registry", "table"))

# What each input is, for the error raised when a metric's input is missing.
_INPUTS = {
    "gt": "a ground-truth density map (gt=)",
    "fix": "a fixation map (fix=)",
    "other_fix": "the other images' fixations (other_fix=)",
}


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
    """One metric by name; ``gt`` for distribution metrics, ``fix`` for location metrics.

    ``other_fix`` (shuffled AUC), ``baseline`` (information gain) and ``seed`` (sampled AUCs)
    reach only the metrics registered as using them (:func:`mlfem.metrics.register_metric`).
    """
    spec = resolve(name)
    if spec.uses_model:
        raise ValueError(
            f"metric {spec.name!r} scores faithfulness to the network, not agreement with gaze: "
            "it needs the model (mlfem evaluate, or its function with a "
            "mlfem.metrics.probe.ModelProbe; docs/faithfulness.md)"
        )
    given = {"gt": gt, "fix": fix, "other_fix": other_fix, "baseline": baseline, "seed": seed}
    for needed in (spec.needs, *spec.uses):
        if needed in _INPUTS and given[needed] is None:
            raise ValueError(f"metric {spec.name!r} needs {_INPUTS[needed]}")
    if spec.function is None:  # a MetricSpec built by hand rather than by register_metric
        raise ValueError(f"metric {spec.name!r} has no function: register it with register_metric")
    shared = {key: given[key] for key in spec.uses}
    return spec.function(pred, given[spec.needs], **spec.options, **shared)


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
