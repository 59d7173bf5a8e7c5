"""The markdown table of docs/faithfulness.md ("Measured") from an evaluation folder: mean and
95 % percentile-bootstrap interval (2000 resamples, seed 0; mlfem.evaluation.statistics) of every
metric per method, the randomisation curves' means per stage, and the flagged methods.

Usage (the run is in docs/faithfulness.md)::

    uv run python benchmarks/faithfulness_summary.py runs/faithfulness
"""

from __future__ import annotations

import sys

from mlfem.evaluation.analyses import higher_is_better, summarize
from mlfem.evaluation.results import read_results
from mlfem.reporting.analysis import analyze
from mlfem.reporting.randomisation import curves, flagged


def main(folder: str) -> None:
    table = read_results(f"{folder}/results.csv")
    analysis = analyze(table)
    metrics = [m for m in analysis.metrics]
    rows = {(r.method, r.metric): r for r in summarize(table, metrics)}
    arrow = {m: "↑" if higher_is_better(m) else "↓" for m in metrics}
    print("| method | " + " | ".join(f"{m} {arrow[m]}" for m in metrics) + " |")
    print("|---|" + "---:|" * len(metrics))
    for method in analysis.methods + analysis.references:
        cells = []
        for metric in metrics:
            r = rows[(method, metric)]
            cells.append("–" if r.n == 0 else f"{r.mean:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]")
        print(f"| {method} | " + " | ".join(cells) + " |")
    print(f"\n{len(table.image_ids)} images.")
    for metric in analysis.curves:
        found = curves(analysis, metric)
        print(f"\n{metric} by stage (mean over images; re-initialised from the top down to the stage):\n")
        print("| method | " + " | ".join(found[0].stages) + " |")
        print("|---|" + "---:|" * len(found[0].stages))
        for curve in found:
            print(f"| {curve.method} | " + " | ".join(f"{v:.2f}" for v in curve.mean) + " |")
        print(f"\nflagged on {metric}: {', '.join(flagged(found)) or 'none'}")


if __name__ == "__main__":
    main(sys.argv[1])
