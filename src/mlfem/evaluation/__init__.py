"""The paper's evaluation protocol: explanation maps against human GFDMs, image by image,
and the analyses of the resulting table (``docs/evaluation.md``).

>>> from mlfem.evaluation import EvaluationConfig, run_evaluation, read_results
>>> run_evaluation(EvaluationConfig("synthetic", out="run", model="...", ...))  # doctest: +SKIP
>>> table = read_results("run/results.csv")                                  # doctest: +SKIP
>>> win_matrix(table, "pcc").wins, summarize(table)                           # doctest: +SKIP

The analyses are pure functions of the results table (a :class:`ResultTable`, a dict of
columns or a list of row dicts); they import neither torch models nor datasets.
"""

from mlfem.evaluation.analyses import (
    GroupMean,
    PairTest,
    SummaryRow,
    WinMatrix,
    by_classes_present,
    by_group,
    correct_vs_wrong,
    distributions,
    higher_is_better,
    pairwise_tests,
    summarize,
    win_matrix,
)
from mlfem.evaluation.results import (
    LEADING_COLUMNS,
    TRAILING_COLUMNS,
    ResultTable,
    ResultsWriter,
    as_table,
    read_results,
    result_columns,
)
from mlfem.evaluation.statistics import MeanCI, WilcoxonResult, bootstrap_ci, holm, mean_ci, wilcoxon_paired

__all__ = [
    "LEADING_COLUMNS",
    "TRAILING_COLUMNS",
    "EvaluationConfig",
    "EvaluationError",
    "EvaluationSummary",
    "GroupMean",
    "LeakageError",
    "MeanCI",
    "PairTest",
    "ResultTable",
    "ResultsWriter",
    "SummaryRow",
    "WilcoxonResult",
    "WinMatrix",
    "as_table",
    "bootstrap_ci",
    "by_classes_present",
    "by_group",
    "correct_vs_wrong",
    "distributions",
    "higher_is_better",
    "holm",
    "mean_ci",
    "pairwise_tests",
    "read_results",
    "result_columns",
    "run_evaluation",
    "summarize",
    "wilcoxon_paired",
    "win_matrix",
]

# The runner imports the explainers and datasets; resolve it on first use so that the
# analyses (and ``mlfem report``) stay light.
_LAZY = {
    "EvaluationConfig": "mlfem.evaluation.runner",
    "EvaluationError": "mlfem.evaluation.runner",
    "EvaluationSummary": "mlfem.evaluation.runner",
    "LeakageError": "mlfem.evaluation.runner",
    "run_evaluation": "mlfem.evaluation.runner",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
