"""``mlfem evaluate``: score explanation methods against human GFDMs, image by image."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlfem.cli import UsageError, add_command
from mlfem.cli._output import writable_folder

DEFAULT_METHODS = "mlfem-add,mlfem-top,mlfem-max,fem,gradcam"


_SUMMARY = "compare explanation maps with human gaze maps over a dataset split"
_DESCRIPTION = """\
For every image of the split and every method, writes one row to OUT/results.csv (every metric,
predicted and true labels, correct or wrong, classes present, category, image size), plus
reference rows (human ceiling, centre bias). OUT/run.json records the settings, versions,
checkpoint hashes and counts. Rerunning the same command resumes: finished images are skipped.
Then 'mlfem report OUT' draws the figures. On a video dataset (synthetic-video, video-folder) each row is one clip:
its metrics are computed frame by frame and averaged over the frames with gaze (docs/video-eval.md).
Under 'torchrun --nproc-per-node N -m -- mlfem evaluate'
the processes share the images and rank 0 merges their rows into the same results.csv
(docs/scale.md).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "evaluate", _SUMMARY, _DESCRIPTION)
    parser.add_argument(
        "--dataset", default=None,
        help="salicon, cat2000, mexculture, mit1003, osie, osie-sample (shipped with mlfem), folder, synthetic, synthetic-video and video-folder (clips) (default with --classifier: "
        "the dataset, options and splits file it was trained with)",
    )
    parser.add_argument("--root", default=None, help="dataset folder (default $MLFEM_DATA/<dataset>; none for synthetic)")
    parser.add_argument("--split", default="test", help="split to evaluate: train, val, test or 'all' (default test)")
    parser.add_argument("--splits", default=None, help="splits JSON file (read, or written when missing); see docs/datasets.md")
    parser.add_argument(
        "--dataset-option", action="append", default=[], metavar="KEY=VALUE",
        help="dataset option, repeatable (e.g. sigma=24, n=200, mode=multi, size=96)",
    )
    model = parser.add_argument_group("classifier (one of)")
    model.add_argument("--classifier", default=None, help="checkpoint written by 'mlfem train-classifier'")
    model.add_argument("--model", default=None, help="or a model as for 'mlfem explain' (torchvision name, timm:, file, module:factory)")
    model.add_argument("--weights", default=None, help="weights for --model (imagenet or a local state_dict)")
    model.add_argument("--fit", choices=("whole", "crop", "none"), default="whole", help="image to input fit for --model")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated methods (default {DEFAULT_METHODS}); mlfem-net needs --net")
    parser.add_argument("--metrics", default="pcc,sim", help="comma-separated metrics (default pcc,sim): gaze metrics "
                        "(pcc, sim, kld, nss, auc_*, sauc, info_gain) and network metrics (deletion, insertion, "
                        "stability, rand_spearman, rand_ssim; docs/faithfulness.md); 'mlfem methods --metrics' lists them")
    parser.add_argument(
        "--metric-option", action="append", default=[], metavar="METRIC.KEY=VALUE",
        help="option of one metric, repeatable (e.g. deletion.steps=50, insertion.baseline=zeros, stability.copies=20)",
    )
    parser.add_argument("--net", default=None, help="trained NET fusion checkpoint for mlfem-net ('mlfem train-fusion')")
    parser.add_argument("--layers", default="auto", help="MLFEM layers: 'auto', 'auto-rectified' (auto, signed "
                        "block outputs clamped at 0; docs/real-network.md), 'auto-mlp'/'auto-mlp-rectified' "
                        "(a vision transformer's MLP activations; docs/methods.md) or comma-separated module names")
    parser.add_argument("--alpha", type=float, default=0.5, help="MLFEM add/top weight of the accumulated map")
    parser.add_argument("--k", type=float, default=2.0, help="FEM threshold in standard deviations")
    parser.add_argument("--normalize", choices=("end", "interleaved"), default="end", help="fusion normalisation")
    parser.add_argument(
        "--option", action="append", default=[], metavar="METHOD.KEY=VALUE",
        help="option of one method, repeatable (e.g. ig.steps=16, smoothgrad.samples=8)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created; resumed when it holds a run)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default 8)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader worker processes (default: cores - 1, at most 4)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--gallery", type=int, default=12, help="images whose maps are kept for the report (default 12)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images of the split")
    parser.add_argument("--no-reference", action="store_true", help="skip the human-ceiling and centre-bias rows")
    parser.add_argument(
        "--allow-leakage", action="store_true",
        help="evaluate even images a checkpoint was trained on (flagged in run.json) instead of refusing",
    )
    parser.add_argument("--overwrite", action="store_true", help="discard what OUT holds instead of resuming")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def parse_value(text: str) -> Any:
    """A command-line option value: int, float, true/false, none, or the string itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_pairs(items: list[str], flag: str) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def parse_method_options(items: list[str], flag: str = "--option", owner: str = "METHOD") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_pairs(items, flag).items():
        method, dot, name = key.rpartition(".")
        if not dot or not method or not name:
            raise UsageError(f"{flag} expects {owner}.KEY=VALUE, got {key!r}")
        out.setdefault(method, {})[name] = value
    return out


def default_workers() -> int:
    import os

    return max(0, min(4, (os.cpu_count() or 1) - 1))


def run(args: argparse.Namespace) -> int:
    from mlfem.evaluation.runner import EvaluationConfig, EvaluationError, run_evaluation

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    try:
        config = EvaluationConfig(
            dataset=args.dataset, out=args.out, root=args.root,
            split=None if args.split == "all" else args.split, splits=args.splits,
            dataset_options=parse_pairs(args.dataset_option, "--dataset-option"),
            classifier=args.classifier, model=args.model, weights=args.weights, fit=args.fit,
            methods=methods, metrics=metrics, net=args.net, layers=args.layers,
            alpha=args.alpha, k=args.k, normalize=args.normalize,
            method_options=parse_method_options(args.option),
            metric_options=parse_method_options(args.metric_option, "--metric-option", "METRIC"),
            batch_size=args.batch_size,
            workers=default_workers() if args.workers is None else args.workers,
            device=args.device, seed=args.seed, references=not args.no_reference,
            gallery=args.gallery, limit=args.limit,
            leakage="flag" if args.allow_leakage else "refuse",
            overwrite=args.overwrite, progress=not args.no_progress,
        )
        writable_folder(args.out, "--out")  # before the data and the model are loaded
        summary = run_evaluation(config)
    except EvaluationError as error:
        raise UsageError(str(error)) from error
    print(
        f"evaluated {summary.n_evaluated} image(s) in {summary.elapsed:.1f} s "
        f"({summary.n_done_before} already done, {summary.n_skipped} skipped); "
        f"{summary.rows} rows in {summary.results}",
        file=sys.stderr,
    )
    if summary.n_evaluated == 0 and summary.n_done_before == 0:
        print(f"mlfem evaluate: error: {_nothing_usable(summary)}", file=sys.stderr)
        return 1  # failed inputs
    if summary.status != "complete":  # under torchrun: a rank failed (its rows are kept)
        print(f"mlfem evaluate: error: {summary.status}; rerun the command to resume", file=sys.stderr)
        return 1
    from mlfem.distributed import current_world

    if not current_world().main:
        return 0  # rank 0 prints the table of the merged file
    from mlfem.reporting.tables import headline_table

    print(headline_table(summary.results))
    return 0


def _nothing_usable(summary: Any) -> str:
    """Why a run evaluated no image at all (an EvaluationSummary's skipped images)."""
    if summary.n_images == 0:
        return "the split holds no image: nothing was evaluated"
    first = "; ".join(f"{s['image_id']}: {s['reason']}" for s in summary.skipped[:3])
    more = ", ..." if summary.n_skipped > 3 else ""
    return (
        f"no image could be used: all {summary.n_skipped} image(s) were skipped ({first}{more}); "
        f"{summary.out / 'run.json'} lists them"
    )
