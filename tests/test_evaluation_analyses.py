"""Analyses and statistics on hand-made results tables with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlfem.evaluation import (
    as_table,
    bootstrap_ci,
    by_classes_present,
    correct_vs_wrong,
    distributions,
    holm,
    mean_ci,
    pairwise_tests,
    summarize,
    wilcoxon_paired,
    win_matrix,
)

NAN = float("nan")

# Five images, three methods; image 4 has no PCC for method a (a constant map, say).
PCC = {
    "a": [0.5, 0.6, 0.7, 0.8, NAN],
    "b": [0.4, 0.6, 0.9, 0.1, 0.3],
    "c": [0.1, 0.2, 0.3, 0.4, 0.5],
}
CORRECT = [1, 1, 0, 0, None]  # image 4 has no labels
N_CLASSES = [1, 1, 2, 2, 3]


def _rows() -> list[dict]:
    rows = []
    for method, values in PCC.items():
        for image, value in enumerate(values):
            rows.append({
                "image_id": f"img{image}", "method": method, "kind": "method",
                "pcc": value, "kld": -value if not math.isnan(value) else NAN,
                "correct": CORRECT[image], "n_classes_present": N_CLASSES[image],
            })
    rows.append({"image_id": "img0", "method": "human", "kind": "reference", "pcc": 0.9, "kld": 0.1,
                 "correct": 1, "n_classes_present": 1})
    return rows


def test_win_matrix_counts_wins_ties_and_skips_nan() -> None:
    wins = win_matrix(_rows(), "pcc")
    assert wins.methods == ["a", "b", "c"]  # references are not part of the comparison
    # a vs b: img0 a wins, img1 tie, img2 b wins, img3 a wins, img4 NaN for a.
    assert wins.wins.tolist() == [[0, 2, 4], [1, 0, 3], [0, 2, 0]]
    assert wins.ties.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    assert wins.compared.tolist() == [[0, 4, 4], [4, 0, 5], [4, 5, 0]]
    np.testing.assert_array_equal(wins.wins + wins.wins.T + wins.ties, wins.compared)
    assert wins.fractions[0, 1] == pytest.approx(0.5)
    assert wins.fractions[1, 2] == pytest.approx(0.6)
    assert math.isnan(wins.fractions[0, 0])
    row = next(r for r in wins.rows() if r["method"] == "a" and r["versus"] == "b")
    assert (row["wins"], row["ties"], row["losses"], row["compared"]) == (2, 1, 1, 4)


def test_win_matrix_follows_the_metric_direction() -> None:
    # kld = -pcc and KLD is lower-better: the same images are won.
    assert win_matrix(_rows(), "kld").wins.tolist() == win_matrix(_rows(), "pcc").wins.tolist()
    reversed_ = win_matrix(_rows(), "pcc", higher_better=False)
    assert reversed_.wins.tolist() == win_matrix(_rows(), "pcc").wins.T.tolist()


def test_summary_means_counts_and_reproducible_intervals() -> None:
    summary = {(r.method, r.metric): r for r in summarize(_rows(), ["pcc"], resamples=500, seed=3)}
    a = summary[("a", "pcc")]
    assert a.mean == pytest.approx(0.65) and a.n == 4 and a.n_nan == 1
    assert a.median == pytest.approx(0.65)
    assert a.ci_low <= a.mean <= a.ci_high
    assert 0.5 <= a.ci_low and a.ci_high <= 0.8  # a bootstrap mean stays within the data
    assert summary[("b", "pcc")].mean == pytest.approx(0.46)
    assert summary[("human", "pcc")].kind == "reference"
    again = {(r.method, r.metric): r for r in summarize(_rows(), ["pcc"], resamples=500, seed=3)}
    assert (again[("a", "pcc")].ci_low, again[("a", "pcc")].ci_high) == (a.ci_low, a.ci_high)


def test_bootstrap_edge_cases() -> None:
    assert bootstrap_ci([0.3, 0.3, 0.3]) == (pytest.approx(0.3), pytest.approx(0.3))
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert all(math.isnan(v) for v in bootstrap_ci([NAN, NAN]))
    stats = mean_ci([1.0, 2.0, NAN, 3.0], resamples=200)
    assert stats.mean == pytest.approx(2.0) and stats.n == 3 and stats.n_nan == 1
    # A wider confidence level gives a wider interval from the same resamples.
    narrow = bootstrap_ci(np.arange(20.0), confidence=0.5, seed=1)
    wide = bootstrap_ci(np.arange(20.0), confidence=0.99, seed=1)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


# scipy.stats.wilcoxon's documented example (Darwin's paired plant heights, differences):
# the negative differences -48 and -67 have ranks 11 and 13 among the 15 |d|, so the
# statistic is 11 + 13 = 24, and the exact two-sided p-value is 0.041259765625.
DARWIN = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]


def test_wilcoxon_reproduces_the_documented_example() -> None:
    base = np.linspace(0.1, 0.9, len(DARWIN))
    result = wilcoxon_paired(base + np.array(DARWIN) / 100.0, base)
    assert result.statistic == pytest.approx(24.0)
    assert result.pvalue == pytest.approx(0.041259765625, rel=1e-9)
    assert result.n == result.n_nonzero == 15


def test_wilcoxon_edge_cases() -> None:
    same = wilcoxon_paired([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    assert same.pvalue == 1.0 and same.n_nonzero == 0 and math.isnan(same.statistic)
    empty = wilcoxon_paired([NAN], [0.2])
    assert empty.n == 0 and math.isnan(empty.pvalue)
    with pytest.raises(ValueError, match="length"):
        wilcoxon_paired([0.1, 0.2], [0.1])


def test_holm_adjustment_by_hand() -> None:
    # Sorted: 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, max(0.06, 0.04 * 1) = 0.06.
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    adjusted = holm([0.2, NAN, 0.01])
    assert math.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.2, 0.02])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]  # capped at 1


def test_pairwise_tests_pair_by_image_and_apply_holm() -> None:
    base = np.linspace(0.1, 0.9, len(DARWIN))
    rows = []
    for i in range(len(DARWIN)):
        for method, value in (("x", base[i] + DARWIN[i] / 100.0), ("y", base[i]), ("z", base[i] + 0.5)):
            rows.append({"image_id": f"i{i}", "method": method, "pcc": value})
    tests = {(t.method, t.versus): t for t in pairwise_tests(rows[::-1], "pcc")}  # row order is irrelevant
    xy = tests[("x", "y")] if ("x", "y") in tests else tests[("y", "x")]
    assert xy.pvalue == pytest.approx(0.041259765625, rel=1e-9)
    raw = [t.pvalue for t in tests.values()]
    np.testing.assert_allclose([t.p_holm for t in tests.values()], holm(raw))
    assert len(tests) == 3
    zy = tests.get(("y", "z")) or tests[("z", "y")]
    assert zy.significant and zy.better == "z"


def test_correct_vs_wrong_and_clutter_means() -> None:
    groups = {(g.method, g.group): g for g in correct_vs_wrong(_rows(), "pcc", resamples=200)}
    assert groups[("a", "correct")].mean == pytest.approx(0.55) and groups[("a", "correct")].n == 2
    assert groups[("a", "wrong")].mean == pytest.approx(0.75) and groups[("a", "wrong")].n == 2
    assert groups[("c", "wrong")].mean == pytest.approx(0.35)
    assert ("human", "correct") not in groups  # references only when asked for
    clutter = {(g.method, g.group): g for g in by_classes_present(_rows(), "pcc", resamples=200)}
    assert clutter[("b", 1)].mean == pytest.approx(0.5)
    assert clutter[("b", 2)].mean == pytest.approx(0.5)
    assert clutter[("b", 3)].mean == pytest.approx(0.3) and clutter[("b", 3)].n == 1
    assert clutter[("a", 3)].n == 0 and math.isnan(clutter[("a", 3)].mean)


def test_row_list_and_column_dict_inputs_agree() -> None:
    rows = _rows()
    columns = {key: [row.get(key) for row in rows] for key in rows[0]}
    assert win_matrix(rows, "pcc").wins.tolist() == win_matrix(columns, "pcc").wins.tolist()
    from_rows = distributions(rows, "pcc")
    from_columns = distributions(columns, "pcc")
    assert from_rows.keys() == from_columns.keys() == {"a", "b", "c", "human"}
    for method in from_rows:
        np.testing.assert_array_equal(from_rows[method], from_columns[method])
    assert from_rows["a"].size == 4  # NaN left out
    table = as_table(rows)
    assert table.metrics == ("pcc", "kld")
    assert table.explanation_methods == ["a", "b", "c"] and table.reference_methods == ["human"]


def test_unknown_metric_or_method_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no metric column 'nss'"):
        win_matrix(_rows(), "nss")
    with pytest.raises(ValueError, match="no rows for method"):
        summarize(_rows(), methods=["gradcam"])
