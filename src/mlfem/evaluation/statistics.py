"""Statistics for comparing explanation methods: bootstrap confidence intervals, paired
Wilcoxon signed-rank tests and Holm's multiple-comparison correction.

Everything works on plain sequences or NumPy arrays; NaN values (undefined metrics,
docs/design-decisions.md §4) are dropped before any computation and counted, never turned into numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["MeanCI", "WilcoxonResult", "bootstrap_ci", "holm", "mean_ci", "wilcoxon_paired"]

#: Bootstrap resamples used when a caller does not say (enough for stable 95 % bounds).
DEFAULT_RESAMPLES = 2000


class MeanCI(NamedTuple):
    """The mean of the finite values with a percentile-bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int  # finite values used
    n_nan: int  # values dropped because they were NaN


class WilcoxonResult(NamedTuple):
    """A paired two-sided Wilcoxon signed-rank test of ``a - b``."""

    n: int  # pairs where both values are finite
    n_nonzero: int  # pairs with a non-zero difference (the ones the test ranks)
    statistic: float  # scipy's statistic: the smaller of the positive and negative rank sums
    pvalue: float  # two-sided; 1.0 when every difference is zero, NaN when n == 0
    median_difference: float  # median of a - b over the n pairs


def _finite(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, int]:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = ~np.isnan(array)
    return array[keep], int((~keep).sum())


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of the finite ``values``.

    Resamples with replacement ``resamples`` times from a ``numpy.random.default_rng(seed)``
    generator, so the interval is reproducible. One value gives a zero-width interval, none
    gives ``(nan, nan)``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    data, _ = _finite(values)
    if data.size == 0:
        return math.nan, math.nan
    if data.size == 1:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    # Resample in chunks so that a large table never needs a resamples x n index matrix at once.
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // data.size)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, data.size, size=(stop - start, data.size))
        means[start:stop] = data[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> MeanCI:
    """Mean of the finite ``values`` and its bootstrap interval (see :func:`bootstrap_ci`)."""
    data, n_nan = _finite(values)
    mean = float(data.mean()) if data.size else math.nan
    low, high = bootstrap_ci(data, confidence=confidence, resamples=resamples, seed=seed)
    return MeanCI(mean, low, high, int(data.size), n_nan)


def wilcoxon_paired(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of the paired differences ``a - b``.

    Pairs where either value is NaN are dropped. Zero differences are discarded before
    ranking (Wilcoxon's original treatment, scipy's ``zero_method="wilcox"``); scipy picks the
    exact null distribution for small samples without ties and the normal approximation
    otherwise. When no pair differs the test has nothing to rank: the p-value is 1.
    """
    from scipy.stats import wilcoxon

    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} and {y.size}")
    keep = ~(np.isnan(x) | np.isnan(y))
    diff = x[keep] - y[keep]
    n = int(diff.size)
    if n == 0:
        return WilcoxonResult(0, 0, math.nan, math.nan, math.nan)
    median = float(np.median(diff))
    nonzero = int(np.count_nonzero(diff))
    if nonzero == 0:
        return WilcoxonResult(n, 0, math.nan, 1.0, median)
    with warnings.catch_warnings():
        # A single non-zero pair makes scipy warn about the sample size; the p-value it
        # returns (1.0) is still the right answer for such a test.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        result = wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
    return WilcoxonResult(n, nonzero, float(result.statistic), float(result.pvalue), median)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (same order as given).

    With the ``m`` finite p-values sorted ascending, ``p_adj(i) = max_{j <= i} min(1, (m - j + 1)
    p(j))`` (1-based ``j``). NaN p-values are not part of the family and stay NaN. Rejecting
    where ``p_adj < alpha`` controls the family-wise error rate at ``alpha``.
    """
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted
