"""The model-randomisation sanity check in the report: one curve per method of its similarity
to itself on the trained network as the network's stages are re-initialised from the top
down (:mod:`mlfem.metrics.randomisation`), and the methods whose map does not change.

The curve of a metric (``rand_spearman``, ``rand_ssim``) reads its stage columns
(``rand_spearman@classifier`` ...) and, for the last stage, the metric's own column.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlfem.evaluation.statistics import mean_ci
from mlfem.reporting.analysis import RunAnalysis

__all__ = ["FLAG_SIMILARITY", "RandomisationCurve", "curves", "flagged", "randomisation_figure", "randomisation_html"]

#: A method whose mean similarity with the fully randomised network's map is at least this is
#: flagged: its map keeps most of its structure once no learned weight is left.
FLAG_SIMILARITY = 0.5


@dataclass
class RandomisationCurve:
    """Mean similarity (95 % bootstrap interval) of one method at each stage."""

    metric: str
    method: str
    stages: list[str]
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: list[int]


def _stage_name(column: str) -> str:
    return column.partition("@")[2]


def curves(analysis: RunAnalysis, metric: str, *, seed: int = 0, resamples: int = 2000) -> list[RandomisationCurve]:
    """The curve of every explanation method on ``metric`` (a curve metric of the table)."""
    columns = [*analysis.curves.get(metric, []), metric]
    stages = [_stage_name(c) for c in columns[:-1]] + ["all"]
    out = []
    for method in analysis.methods:
        rows = analysis.table.method_rows(method)
        cis = [mean_ci(rows[c], seed=seed, resamples=resamples) for c in columns]
        out.append(RandomisationCurve(
            metric, method, stages, np.array([c.mean for c in cis]), np.array([c.low for c in cis]),
            np.array([c.high for c in cis]), [c.n for c in cis],
        ))
    return out


def flagged(found: list[RandomisationCurve]) -> list[str]:
    """Methods whose mean similarity once every stage is random is >= :data:`FLAG_SIMILARITY`."""
    return [c.method for c in found if not math.isnan(c.mean[-1]) and c.mean[-1] >= FLAG_SIMILARITY]


def randomisation_figure(found: list[RandomisationCurve]) -> Any:
    """One line per method: mean similarity against the stages re-initialised (top down)."""
    from mlfem.reporting.figures import _pyplot, method_colours

    plt = _pyplot()
    colours = method_colours([c.method for c in found])
    stages = found[0].stages if found else []
    figure, axis = plt.subplots(figsize=(max(5.5, 0.55 * len(stages) + 2.5), 3.8))
    x = np.arange(len(stages))
    for curve in found:
        axis.plot(x, curve.mean, marker="o", ms=3, color=colours[curve.method], label=curve.method)
        axis.fill_between(x, curve.low, curve.high, color=colours[curve.method], alpha=0.15)
    metric = found[0].metric if found else ""
    axis.axhline(FLAG_SIMILARITY, color="#999999", lw=0.8, ls="--")
    labels = [s if i == 0 else "every stage" if i == len(stages) - 1 else f"+{s}" for i, s in enumerate(stages)]
    axis.set_xticks(x, labels, rotation=40, ha="right", fontsize=8)
    axis.set_xlabel("re-initialised down to (cascading from the top)")
    axis.set_ylabel(f"{metric.upper()} with the trained map")
    axis.set_title(f"Model randomisation ({metric.upper()}): a faithful map changes", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure


def randomisation_html(analysis: RunAnalysis, figure_html: dict[str, str], *, seed: int = 0, resamples: int = 2000) -> str:
    """The report's randomisation section: a figure per curve metric and the flagged methods."""
    parts = []
    for metric in analysis.curves:
        found = curves(analysis, metric, seed=seed, resamples=resamples)
        names = flagged(found)
        verdict = (
            f"<p><b>Flagged</b> ({html.escape(metric)}): {html.escape(', '.join(names))}: mean similarity "
            f"&ge; {FLAG_SIMILARITY} with the map of the fully re-initialised network.</p>"
            if names else
            f"<p>No method flagged on {html.escape(metric)} (every mean similarity with the fully "
            f"re-initialised network's map is below {FLAG_SIMILARITY}).</p>"
        )
        parts.append(figure_html.get(metric, "") + verdict)
    return "".join(parts)
