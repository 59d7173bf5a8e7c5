"""All analyses of one run, computed once and shared by the tables, the figures and the HTML."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlfem.evaluation.analyses import (
    GroupMean, PairTest, SummaryRow, WinMatrix, by_classes_present, correct_vs_wrong,
    distributions, higher_is_better, pairwise_tests, summarize, win_matrix,
)
from mlfem.evaluation.results import ResultTable

__all__ = ["RunAnalysis", "analyze", "curve_columns", "is_network_metric", "split_metrics"]


@dataclass
class RunAnalysis:
    """Everything the report shows, per metric."""

    table: ResultTable
    metrics: list[str]  # the paper's protocol: against the image's GFDM (figures are drawn for these)
    methods: list[str]  # explanation methods
    references: list[str]
    summary: list[SummaryRow]
    tests: dict[str, list[PairTest]] = field(default_factory=dict)
    wins: dict[str, WinMatrix] = field(default_factory=dict)
    distributions: dict[str, dict[str, object]] = field(default_factory=dict)
    correct_wrong: dict[str, list[GroupMean]] = field(default_factory=dict)
    clutter: dict[str, list[GroupMean]] = field(default_factory=dict)
    alpha: float = 0.05
    #: The same metrics against each observer separately (``<metric>_obs`` columns).
    observer_metrics: list[str] = field(default_factory=list)
    #: The stage columns of each curve metric (``rand_spearman@classifier``, ...), top down.
    curves: dict[str, list[str]] = field(default_factory=dict)

    @property
    def network_metrics(self) -> list[str]:
        """The metrics of faithfulness to the network (deletion, stability, ...), not gaze."""
        return [m for m in self.metrics if is_network_metric(m)]

    @property
    def gaze_metrics(self) -> list[str]:
        return [m for m in self.metrics if not is_network_metric(m)]

    @property
    def all_metrics(self) -> list[str]:
        return self.metrics + self.observer_metrics

    def mean(self, method: str, metric: str) -> SummaryRow:
        for row in self.summary:
            if row.method == method and row.metric == metric:
                return row
        raise KeyError((method, metric))

    def best(self, metric: str) -> str | None:
        """The explanation method with the best mean on ``metric`` (None if all are NaN)."""
        sign = 1.0 if higher_is_better(metric) else -1.0
        scored = [(sign * self.mean(m, metric).mean, m) for m in self.methods
                  if not math.isnan(self.mean(m, metric).mean)]
        return max(scored)[1] if scored else None

    def tied_with_best(self, method: str, metric: str) -> bool:
        """True when ``method`` is not significantly different from the best method on
        ``metric`` (Holm-adjusted Wilcoxon p >= alpha, or no test possible)."""
        best = self.best(metric)
        if best is None or method == best:
            return False
        for test in self.tests.get(metric, []):
            if {test.method, test.versus} == {method, best}:
                return not test.significant
        return False

    def has_verdicts(self) -> bool:
        """Whether any image has a correct/wrong verdict (the data has labels)."""
        import numpy as np

        return bool((~np.isnan(self.table["correct"])).any())

    def has_clutter(self) -> bool:
        """Whether images differ in their number of classes present."""
        counts = {int(v) for v in self.table["n_classes_present"] if int(v) >= 0}
        return len(counts) > 1


def analyze(table: ResultTable, *, seed: int = 0, resamples: int = 2000, alpha: float = 0.05) -> RunAnalysis:
    """Run every analysis of :mod:`mlfem.evaluation.analyses` on a results table."""
    methods = table.explanation_methods
    references = table.reference_methods
    metrics, observer = split_metrics(table.metrics)
    result = RunAnalysis(
        table=table, metrics=metrics, methods=methods, references=references,
        summary=summarize(table, metrics + observer, seed=seed, resamples=resamples), alpha=alpha,
        observer_metrics=observer, curves=curve_columns(table.metrics),
    )
    for metric in metrics + observer:
        result.tests[metric] = pairwise_tests(table, metric, methods, alpha=alpha)
        result.wins[metric] = win_matrix(table, metric, methods)
    for metric in metrics:
        result.distributions[metric] = {
            k: v for k, v in distributions(table, metric).items() if v.size  # e.g. the human row
        }
        result.correct_wrong[metric] = correct_vs_wrong(table, metric, methods, seed=seed, resamples=resamples)
        result.clutter[metric] = by_classes_present(table, metric, methods, seed=seed, resamples=resamples)
    return result


def split_metrics(columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """(paper-protocol metrics and network metrics, per-observer ``*_obs`` metrics) of a
    results table; the stage columns of curve metrics are in neither (:func:`curve_columns`)."""
    observer = [c for c in columns if c.endswith("_obs")]
    return [c for c in columns if c not in observer and "@" not in c], observer


def curve_columns(columns: Sequence[str]) -> dict[str, list[str]]:
    """For each curve metric of a results table, its stage columns in order (its own column,
    the last stage, not included)."""
    out: dict[str, list[str]] = {}
    for column in columns:
        metric, at, _ = column.partition("@")
        if at:
            out.setdefault(metric, []).append(column)
    return out


def is_network_metric(metric: str) -> bool:
    """Whether a results column is a metric of faithfulness to the network (not gaze)."""
    from mlfem.metrics import resolve

    try:
        return resolve(metric.partition("@")[0]).uses_model
    except ValueError:
        return False
