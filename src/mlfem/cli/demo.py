"""``mlfem demo``: the paper's protocol end to end (see :mod:`mlfem.demos`).

By default on real gaze: the OSIE sample shipped with mlfem, the pretrained EfficientNet-Lite0
and its bundled NET. ``--synthetic`` runs the synthetic benchmark instead, training its own
classifier and NET. ``--quick`` is the small version of either (CI runs both).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlfem.cli import UsageError, add_command
from mlfem.cli._output import writable_folder

DEFAULT_OUT = Path("runs/demo")


_SUMMARY = "run the paper's protocol on real gaze (or the synthetic benchmark) and write a report"
_DESCRIPTION = """\
Explains 12 real OSIE photos (shipped with mlfem, 15 observers each) with the
ImageNet-pretrained EfficientNet-Lite0: MLFEM (NET, ADD, TOP, MAX), FEM, Grad-CAM, LayerCAM and
Guided Backprop against the human GFDMs, with the human ceiling and the centre bias; prints the
headline table and writes OUT/evaluation/report.html (OUT: runs/demo unless --out says).
Offline; the stage times are printed at the end (measured times, and the machine: "Measured:
the demos" in docs/evaluation.md). --synthetic runs the synthetic benchmark instead (it trains
its own classifier and NET); --quick is a small version of either.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "demo", _SUMMARY, _DESCRIPTION)
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default {DEFAULT_OUT}, or {DEFAULT_OUT}-synthetic with --synthetic)")
    parser.add_argument("--synthetic", action="store_true",
                        help="the synthetic benchmark: generated images, simulated observers, own classifier and NET")
    parser.add_argument("--quick", action="store_true", help="small version (fewer images, methods and metrics)")
    parser.add_argument("--vit", action="store_true",
                        help="with --synthetic: train a small vision transformer (timm ViT, patch 8, "
                        "4 blocks) instead of the small CNN, and add attention rollout")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the training and the evaluation")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: cores - 1, at most 4)")
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: cuda if available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlfem.cli.evaluate import default_workers
    from mlfem.demos import run_real_demo, run_synthetic_demo
    from mlfem.evaluation.runner import EvaluationError

    workers = default_workers() if args.workers is None else args.workers
    if workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    out = args.out or (DEFAULT_OUT.with_name(DEFAULT_OUT.name + "-synthetic") if args.synthetic else DEFAULT_OUT)
    writable_folder(out, "--out")
    if args.vit and not args.synthetic:
        raise UsageError("--vit applies to --synthetic (the real-image demo explains the "
                         "pretrained EfficientNet-Lite0 installed with mlfem)")
    demo = run_synthetic_demo if args.synthetic else run_real_demo
    extra = {"model": "vit"} if args.vit else {}
    try:
        result = demo(out, quick=args.quick, seed=args.seed, workers=workers,
                      device=args.device, progress=not args.no_progress, **extra)
    except (EvaluationError, FileExistsError) as error:
        raise UsageError(str(error)) from error
    print(result.table)
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items() if k != "total")
    print(f"\ndemo finished in {result.timings['total']:.1f} s ({steps})")
    print(result.report)
    return 0
