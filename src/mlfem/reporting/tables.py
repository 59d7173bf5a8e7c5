"""Tables of a run: CSV files for ``DIR/tables`` and the headline table for the terminal."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlfem.evaluation.results import ResultTable, read_results
from mlfem.evaluation.analyses import summarize
from mlfem.reporting.analysis import RunAnalysis, split_metrics

__all__ = ["headline_table", "write_csv", "write_tables"]


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write dict rows to CSV (header from the first row's keys); floats in full precision."""
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        if not rows:
            handle.write("")
            return path
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return path


def write_tables(analysis: RunAnalysis, directory: Path) -> list[Path]:
    """summary.csv, wins_<metric>.csv, tests_<metric>.csv, correct_wrong.csv, clutter.csv."""
    written = [write_csv(directory / "summary.csv", (r.as_dict() for r in analysis.summary))]
    for metric in analysis.all_metrics:
        written.append(write_csv(directory / f"wins_{metric}.csv", analysis.wins[metric].rows()))
        written.append(write_csv(directory / f"tests_{metric}.csv", (t.as_dict() for t in analysis.tests[metric])))
    written.append(write_csv(
        directory / "correct_wrong.csv",
        (g.as_dict() for metric in analysis.metrics for g in analysis.correct_wrong[metric]),
    ))
    written.append(write_csv(
        directory / "clutter.csv",
        (g.as_dict() for metric in analysis.metrics for g in analysis.clutter[metric]),
    ))
    return written


def _cell(mean: float, low: float, high: float) -> str:
    if math.isnan(mean):
        return "nan"
    if math.isnan(low):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def headline_table(
    results: ResultTable | str | Path | RunAnalysis, *, resamples: int = 2000, seed: int = 0
) -> str:
    """Plain-text table: one line per method (references last), mean [95 % CI] per metric
    (``*_obs``: against each observer, the human ceiling's protocol; ``n/a`` where a row has
    no value, e.g. the human ceiling under the paper's protocol); ``*`` marks the best
    explanation method of each metric."""
    if isinstance(results, RunAnalysis):
        analysis = results
    else:
        table = read_results(results) if isinstance(results, str | Path) else results
        # Only the means are needed here: skip the tests and win matrices of analyze().
        metrics, observer = split_metrics(table.metrics)
        analysis = RunAnalysis(
            table=table, metrics=metrics, methods=table.explanation_methods,
            references=table.reference_methods,
            summary=summarize(table, seed=seed, resamples=resamples), observer_metrics=observer,
        )
    header = ["method", "n", *[f"{m} mean [95% CI]" for m in analysis.all_metrics]]
    lines: list[list[str]] = []
    for method in analysis.methods + analysis.references:
        counts = [analysis.mean(method, m) for m in analysis.all_metrics]
        cells = [method + (" (ref)" if method in analysis.references else ""),
                 str(max(r.n + r.n_nan for r in counts))]
        for metric in analysis.all_metrics:
            row = analysis.mean(method, metric)
            mark = " *" if analysis.best(metric) == method else ""
            cells.append((_cell(row.mean, row.ci_low, row.ci_high) if row.n else "n/a") + mark)
        lines.append(cells)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [fmt(header), fmt(["-" * w for w in widths])]
    for index, cells in enumerate(lines):
        if index == len(analysis.methods) and analysis.references:
            out.append(fmt(["-" * w for w in widths]))
        out.append(fmt(cells))
    return "\n".join(out)
