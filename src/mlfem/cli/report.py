"""``mlfem report``: the HTML report, figures and tables of an evaluation run."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlfem.cli import UsageError, add_command
from mlfem.cli._output import writable_folder


_SUMMARY = "write the HTML report (figures, tables, gallery) of an evaluation folder"
_DESCRIPTION = """\
Reads DIR/results.csv (and DIR/run.json, DIR/maps/) written by 'mlfem evaluate' and writes
DIR/report.html (self-contained: open it in any browser, offline), the figures as PNG and SVG
in DIR/figures and the tables as CSV in DIR/tables.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "report", _SUMMARY, _DESCRIPTION)
    parser.add_argument("directory", type=Path, metavar="DIR", help="output folder of 'mlfem evaluate'")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals (default 0)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the tests (default 0.05)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlfem.reporting import ReportError, headline_table, write_report

    if args.resamples < 1:
        raise UsageError(f"--resamples must be positive, got {args.resamples}")
    if not 0.0 < args.alpha < 1.0:
        raise UsageError(f"--alpha must lie in (0, 1), got {args.alpha}")
    if args.directory.is_dir():  # report.html, figures/ and tables/ are written into DIR
        writable_folder(args.directory, "DIR", create=False)
    try:
        path = write_report(args.directory, seed=args.seed, resamples=args.resamples, alpha=args.alpha)
    except (ReportError, ValueError) as error:
        raise UsageError(str(error)) from error
    print(headline_table(args.directory / "results.csv", resamples=args.resamples, seed=args.seed))
    print(path)
    return 0
