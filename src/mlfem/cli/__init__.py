"""The ``mlfem`` command line.

Each sub-command lives in its own module under ``mlfem.cli`` and exposes
``register(subparsers)``, which adds its parser (:func:`add_command`) and sets ``func`` (a callable
taking the parsed namespace and returning an exit code). Sub-command modules
import torch, torchvision and the rest lazily, inside ``func``, so that
``mlfem --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

# Order here is the order in ``mlfem --help``.
_SUBCOMMAND_MODULES: tuple[str, ...] = (
    "explain",
    "gfdm",
    "methods",
    "evaluate",
    "merge_shards",
    "report",
    "demo",
    "train_classifier",
    "train_fusion",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command."""
    from mlfem import __version__

    parser = argparse.ArgumentParser(
        prog="mlfem",
        description="Explain CNN decisions with FEM/MLFEM and compare explanations with human gaze.",
    )
    parser.add_argument("--version", action="version", version=f"mlfem {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f"mlfem.cli.{name}")
        except ModuleNotFoundError as error:
            # A sub-command whose module is not written yet is simply absent.
            if error.name == f"mlfem.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlfem`` console script. Returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Warnings meant for the user (untrained model, training mode) without source lines.
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as error:
        print(f"mlfem {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        from mlfem.cli._output import DISK_FULL, disk_full_message

        if error.errno not in DISK_FULL:
            raise
        # A full disk during a long job: one line naming the file, no chained traceback.
        print(f"mlfem {args.command}: error: {disk_full_message(error)}", file=sys.stderr)
        return 1


class UsageError(Exception):
    """A bad argument or input file; printed without a traceback, exit code 2."""


def add_command(
    subparsers: argparse._SubParsersAction, name: str, summary: str, description: str
) -> argparse.ArgumentParser:
    """Add the parser of sub-command ``name``: ``summary`` is its line in ``mlfem --help``,
    ``description`` the text of ``mlfem NAME --help``. Every ``register`` starts here."""
    return subparsers.add_parser(name, help=summary, description=description)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
