"""The paper's analyses (§3-4), computed from a results table alone.

Every function takes a :class:`~mlfem.evaluation.results.ResultTable`, a dict of columns or a
list of row dicts (anything :func:`~mlfem.evaluation.results.as_table` accepts) and returns
plain data: NumPy arrays, dataclasses, lists of rows. Nothing here reads images or models.

* :func:`win_matrix` — Fig. 4: on how many images method ``a`` scores better than ``b``.
* :func:`distributions` — Fig. 5: each method's per-image values.
* :func:`summarize` — means with seeded bootstrap 95 % intervals.
* :func:`pairwise_tests` — paired Wilcoxon signed-rank tests, Holm-corrected per metric.
* :func:`correct_vs_wrong` — Fig. 6: means over correctly and wrongly classified images.
* :func:`by_classes_present` — Fig. 7: means against the number of classes in the image.

Methods default to the explanation methods (``kind == "method"``); the reference rows (human
ceiling, centre bias) are included where a function says so or when named explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np

from mlfem.evaluation.results import ResultTable, as_table
from mlfem.evaluation.statistics import DEFAULT_RESAMPLES, holm, mean_ci, wilcoxon_paired

__all__ = [
    "GroupMean",
    "PairTest",
    "SummaryRow",
    "WinMatrix",
    "by_classes_present",
    "by_group",
    "correct_vs_wrong",
    "distributions",
    "higher_is_better",
    "pairwise_tests",
    "summarize",
    "win_matrix",
]

TableLike = ResultTable | Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]


def higher_is_better(metric: str) -> bool:
    """Direction of ``metric``: from :data:`mlfem.metrics.METRICS` (KLD is lower-better),
    also for the per-observer columns (``kld_obs``) and the stages of a curve metric
    (``rand_ssim@conv_head``); unknown names are taken as higher-better."""
    from mlfem.metrics import resolve

    try:
        return resolve(metric.partition("@")[0].removesuffix("_obs")).higher_is_better
    except ValueError:
        return True


def _methods(table: ResultTable, methods: Sequence[str] | None, include_references: bool) -> list[str]:
    if methods is not None:
        known = set(table.methods)
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise ValueError(f"no rows for method(s) {', '.join(unknown)}; the table has {', '.join(table.methods)}")
        return list(methods)
    if include_references:
        return table.explanation_methods + table.reference_methods
    return table.explanation_methods


def _check_metric(table: ResultTable, metric: str) -> None:
    if metric not in table.metrics:
        raise ValueError(f"no metric column {metric!r}; the table has {', '.join(table.metrics)}")


@dataclass
class WinMatrix:
    """Pairwise comparison of methods on one metric, image by image.

    ``wins[i, j]``: images where ``methods[i]`` scores strictly better than ``methods[j]``
    (higher, or lower for lower-better metrics); ``ties[i, j]``: images with exactly equal
    scores (counted separately, in neither ``wins``); ``compared[i, j]``: images where both
    scores are defined (NaN scores are left out). So ``wins + wins.T + ties == compared``.
    The paper's Fig. 4 shows ``wins.T``: the column method beats the row method.
    """

    metric: str
    methods: list[str]
    wins: np.ndarray
    ties: np.ndarray
    compared: np.ndarray
    higher_is_better: bool

    @property
    def fractions(self) -> np.ndarray:
        """``wins / compared`` (NaN where nothing was compared, e.g. the diagonal)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.wins / self.compared
        out[self.compared == 0] = np.nan
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per ordered pair (a, b), a != b: wins of a over b, ties, compared, fraction."""
        fractions = self.fractions
        out = []
        for i, a in enumerate(self.methods):
            for j, b in enumerate(self.methods):
                if i != j:
                    out.append({
                        "metric": self.metric, "method": a, "versus": b,
                        "wins": int(self.wins[i, j]), "ties": int(self.ties[i, j]),
                        "losses": int(self.wins[j, i]), "compared": int(self.compared[i, j]),
                        "fraction": float(fractions[i, j]),
                    })
        return out


def win_matrix(
    results: TableLike,
    metric: str,
    methods: Sequence[str] | None = None,
    *,
    higher_better: bool | None = None,
) -> WinMatrix:
    """Count, for every ordered pair of methods, the images on which the first scores better.

    Images are paired by ``image_id``. ``higher_better`` defaults to the metric's direction
    (:func:`higher_is_better`).
    """
    table = as_table(results)
    _check_metric(table, metric)
    names = _methods(table, methods, include_references=False)
    direction = higher_is_better(metric) if higher_better is None else bool(higher_better)
    _, _, values = table.pivot(metric, names)
    if not direction:
        values = -values
    m = len(names)
    wins = np.zeros((m, m), dtype=np.int64)
    ties = np.zeros((m, m), dtype=np.int64)
    compared = np.zeros((m, m), dtype=np.int64)
    finite = ~np.isnan(values)
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            both = finite[:, i] & finite[:, j]
            a, b = values[both, i], values[both, j]
            wins[i, j] = int(np.count_nonzero(a > b))
            ties[i, j] = int(np.count_nonzero(a == b))
            compared[i, j] = int(both.sum())
    return WinMatrix(metric, names, wins, ties, compared, direction)


def distributions(
    results: TableLike,
    metric: str,
    methods: Sequence[str] | None = None,
    *,
    include_references: bool = True,
) -> dict[str, np.ndarray]:
    """Each method's finite per-image values of ``metric`` (NaN values are left out)."""
    table = as_table(results)
    _check_metric(table, metric)
    out = {}
    for method in _methods(table, methods, include_references):
        values = table.method_rows(method)[metric]
        out[method] = values[~np.isnan(values)]
    return out


@dataclass
class SummaryRow:
    """Mean of one metric for one method, with its bootstrap interval."""

    method: str
    kind: str
    metric: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    n_nan: int
    median: float
    std: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    results: TableLike,
    metrics: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    *,
    include_references: bool = True,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[SummaryRow]:
    """Mean, percentile-bootstrap interval (seeded), median and std of every metric for every
    method, over the images where the metric is defined (NaN counted in ``n_nan``)."""
    table = as_table(results)
    metrics = list(metrics) if metrics is not None else list(table.metrics)
    for metric in metrics:
        _check_metric(table, metric)
    names = _methods(table, methods, include_references)
    references = set(table.reference_methods)
    out = []
    for metric in metrics:
        for method in names:
            values = table.method_rows(method)[metric]
            stats = mean_ci(values, confidence=confidence, resamples=resamples, seed=seed)
            finite = values[~np.isnan(values)]
            out.append(SummaryRow(
                method=method,
                kind="reference" if method in references else "method",
                metric=metric,
                mean=stats.mean, ci_low=stats.low, ci_high=stats.high,
                n=stats.n, n_nan=stats.n_nan,
                median=float(np.median(finite)) if finite.size else math.nan,
                std=float(finite.std()) if finite.size else math.nan,
            ))
    return out


@dataclass
class PairTest:
    """A paired Wilcoxon signed-rank test of ``method`` against ``versus`` on one metric.

    ``p_holm`` is Holm-adjusted within the metric's family of all pairs; ``better`` names the
    method with the better median paired difference (respecting the metric's direction) or
    is empty when the median difference is zero.
    """

    metric: str
    method: str
    versus: str
    n: int
    n_nonzero: int
    statistic: float
    pvalue: float
    p_holm: float
    significant: bool
    median_difference: float
    better: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pairwise_tests(
    results: TableLike,
    metric: str,
    methods: Sequence[str] | None = None,
    *,
    alpha: float = 0.05,
) -> list[PairTest]:
    """Wilcoxon signed-rank tests of every unordered pair of methods on ``metric``, paired by
    image (images where either value is NaN are left out of that pair), with Holm's
    correction over the ``M (M - 1) / 2`` tests of the metric."""
    table = as_table(results)
    _check_metric(table, metric)
    names = _methods(table, methods, include_references=False)
    _, _, values = table.pivot(metric, names)
    direction = higher_is_better(metric)
    raw = []
    for i, j in combinations(range(len(names)), 2):
        raw.append((i, j, wilcoxon_paired(values[:, i], values[:, j])))
    adjusted = holm([r.pvalue for _, _, r in raw])
    out = []
    for (i, j, r), p_adj in zip(raw, adjusted):
        diff = r.median_difference
        if math.isnan(diff) or diff == 0:
            better = ""
        else:
            better = names[i] if (diff > 0) == direction else names[j]
        out.append(PairTest(
            metric=metric, method=names[i], versus=names[j], n=r.n, n_nonzero=r.n_nonzero,
            statistic=r.statistic, pvalue=r.pvalue, p_holm=float(p_adj),
            significant=bool(not math.isnan(p_adj) and p_adj < alpha),
            median_difference=diff, better=better,
        ))
    return out


@dataclass
class GroupMean:
    """Mean of one metric for one method within a group of images."""

    method: str
    metric: str
    group: Any
    mean: float
    ci_low: float
    ci_high: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def by_group(
    results: TableLike,
    metric: str,
    column: str,
    methods: Sequence[str] | None = None,
    *,
    include_references: bool = False,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[GroupMean]:
    """Mean (with bootstrap interval) of ``metric`` per method and per value of ``column``.

    Rows whose group value is missing (empty string, NaN, or -1 for integer columns) are
    left out. Groups are sorted.
    """
    table = as_table(results)
    _check_metric(table, metric)
    if column not in table.columns:
        raise ValueError(f"no column {column!r} in the results table")
    keys = table[column]
    if keys.dtype == object:
        present = keys != ""
    elif keys.dtype.kind == "f":
        present = ~np.isnan(keys)
    else:
        present = keys >= 0
    groups = sorted(set(keys[present].tolist()))
    out = []
    for method in _methods(table, methods, include_references):
        is_method = table["method"] == method
        for group in groups:
            values = table[metric][is_method & present & (keys == group)]
            stats = mean_ci(values, confidence=confidence, resamples=resamples, seed=seed)
            out.append(GroupMean(method, metric, group, stats.mean, stats.low, stats.high, stats.n))
    return out


def correct_vs_wrong(
    results: TableLike,
    metric: str,
    methods: Sequence[str] | None = None,
    **options: Any,
) -> list[GroupMean]:
    """Fig. 6: means over correctly (``group="correct"``) and wrongly (``"wrong"``) classified
    images. Images without a verdict (no labels) are left out; a group with no image has a
    NaN mean and ``n == 0``."""
    table = as_table(results)
    verdict = table["correct"]
    labelled = np.where(np.isnan(verdict), "", np.where(verdict > 0.5, "correct", "wrong"))
    columns = dict(table.columns)
    columns["_verdict"] = labelled.astype(object)
    grouped = by_group(ResultTable(columns, table.metrics), metric, "_verdict", methods, **options)
    # Always report both groups, in a fixed order, even when one is empty.
    out = []
    for method in dict.fromkeys(g.method for g in grouped) or _methods(table, methods, False):
        for group in ("correct", "wrong"):
            found = [g for g in grouped if g.method == method and g.group == group]
            out.append(found[0] if found else GroupMean(method, metric, group, math.nan, math.nan, math.nan, 0))
    return out


def by_classes_present(
    results: TableLike,
    metric: str,
    methods: Sequence[str] | None = None,
    **options: Any,
) -> list[GroupMean]:
    """Fig. 7: means as a function of the number of classes present in the image (the
    paper's clutter measure); ``group`` is that number."""
    return by_group(results, metric, "n_classes_present", methods, **options)
