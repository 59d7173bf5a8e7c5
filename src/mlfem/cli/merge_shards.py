"""``mlfem merge-shards``: merge what the processes of a sharded evaluation wrote."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlfem.cli import UsageError, add_command

_SUMMARY = "merge the per-process shards of a 'torchrun ... mlfem evaluate' folder"
_DESCRIPTION = """\
Under torchrun, each process of 'mlfem evaluate' writes its rows to DIR/shards/ and rank 0 merges
them into DIR/results.csv at the end. After a crash (a process killed, a node lost), this merges
what is there into DIR/results.csv, in the order of a single-process run, and lists the images
that still lack rows (exit 1 then). Rerunning the evaluate command resumes and completes the run,
with any number of processes.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "merge-shards", _SUMMARY, _DESCRIPTION)
    parser.add_argument(
        "directory", type=Path, metavar="DIR", help="output folder of 'mlfem evaluate'"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlfem._run import FolderBusyError, FolderLock
    from mlfem.evaluation.config import EvaluationError
    from mlfem.evaluation.sharding import merge_shards

    if not args.directory.is_dir():
        raise UsageError(f"DIR {args.directory} is not a folder")
    try:
        with FolderLock(args.directory, "evaluate"):  # never while a run writes there
            report = merge_shards(args.directory)
    except (EvaluationError, FolderBusyError) as error:
        raise UsageError(str(error)) from error
    print(f"{report.rows} rows in {report.results}", file=sys.stderr)
    if not report.complete:
        print(f"mlfem merge-shards: incomplete: {report.describe()}; rerun the evaluate command "
              "to resume", file=sys.stderr)
        return 1
    return 0
