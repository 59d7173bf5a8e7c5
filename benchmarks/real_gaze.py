"""The paper's protocol on real gaze: the pretrained EfficientNet-Lite0 against 15 observers.

Runs ``mlfem evaluate`` (resumable) on OSIE images that nothing learned ever saw (by default the
test sample 1001-1040 in ../shared/data/osie; the bundled NET was trained on 1041-1600 only, and
the leakage guard checks it), then ``mlfem report``, and prints the Markdown tables published in
the README and docs/evaluation.md: every method's mean PCC, SIM, NSS and AUC-Judd with 95%
bootstrap intervals, the human ceiling and the centre bias, and the win matrices.

    uv run python benchmarks/real_gaze.py --root ../shared/data/osie --out runs/real-gaze

Prints the machine, the versions and the elapsed time with the tables.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

METHODS = ["mlfem-net", "mlfem-add", "mlfem-top", "mlfem-max", "fem", "gradcam", "layercam",
           "guided-backprop"]
METRICS = ["pcc", "sim", "nss", "auc_judd"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/data/osie"), help="OSIE folder")
    parser.add_argument("--dataset", default="osie", help="dataset name (default osie)")
    parser.add_argument("--out", type=Path, default=Path("runs/real-gaze"), help="evaluation folder")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--metrics", default=",".join(METRICS))
    parser.add_argument("--layers", default="auto",
                        help="MLFEM layers, e.g. auto-rectified (then leave mlfem-net out: the NET was trained on auto)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    import torch

    from mlfem.evaluation.runner import EvaluationConfig, run_evaluation
    from mlfem.evaluation.results import read_results
    from mlfem.reporting import write_report
    from mlfem.reporting.analysis import analyze
    from mlfem.training import bundled_net_path

    methods = args.methods.split(",")

    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.perf_counter()
    run_evaluation(EvaluationConfig(
        dataset=args.dataset, root=str(args.root), out=args.out, split=None,
        model="efficientnet_lite0", weights="imagenet",
        net=str(bundled_net_path()) if "mlfem-net" in methods else None, layers=args.layers,
        methods=methods, metrics=args.metrics.split(","), batch_size=8,
        workers=args.workers, gallery=12, progress=False,
    ))
    write_report(args.out)
    elapsed = time.perf_counter() - started
    analysis = analyze(read_results(args.out / "results.csv"))
    print(f"<!-- {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, python {platform.python_version()}; {elapsed:.0f} s -->")
    print(means_markdown(analysis))
    for metric in ("pcc", "sim"):
        if metric in analysis.wins:
            print()
            print(wins_markdown(analysis, metric))


def means_markdown(analysis) -> str:
    """Mean [95% CI] per method and metric; ``_obs`` columns (per observer) for the references."""
    metrics = analysis.metrics
    header = "| method | n | " + " | ".join(metrics) + " | " + " | ".join(m + "_obs" for m in metrics) + " |"
    lines = [header, "|---|---:|" + "---:|" * (2 * len(metrics))]
    for method in analysis.methods + analysis.references:
        cells = []
        n = 0
        for metric in metrics + [m + "_obs" for m in metrics]:
            row = analysis.mean(method, metric)
            n = max(n, row.n)
            best = analysis.best(metric) == method
            text = "n/a" if not row.n else f"{row.mean:.3f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
            cells.append(f"**{text}**" if best else text)
        label = method if method in analysis.methods else f"{method} (reference)"
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def wins_markdown(analysis, metric: str) -> str:
    """Row method beats column method on this many images (of those both scored)."""
    wins = analysis.wins[metric]
    lines = [f"| {metric}: row beats column | " + " | ".join(wins.methods) + " |",
             "|---|" + "---:|" * len(wins.methods)]
    for i, a in enumerate(wins.methods):
        cells = ["" if i == j else f"{wins.wins[i, j]}/{wins.compared[i, j]}" for j in range(len(wins.methods))]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
