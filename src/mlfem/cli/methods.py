"""``mlfem methods``: list the registered explanation methods with one-line descriptions."""

from __future__ import annotations

import argparse

_DESCRIPTION = (
    "List the explanation methods that 'mlfem explain --method NAME' and the evaluation accept. "
    "The GRAD column says whether a method back-propagates gradients (it then needs autograd "
    "and costs at least a backward pass); the others are gradient-free."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``methods`` sub-command."""
    parser = subparsers.add_parser("methods", help="list the explanation methods", description=_DESCRIPTION)
    parser.add_argument("--names", action="store_true", help="print only the names, one per line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the methods; returns the exit code (0)."""
    from mlfem.explainers.registry import available_methods

    methods = available_methods()
    if getattr(args, "names", False):
        for info in methods:
            print(info.name)
        return 0
    width = max([len("NAME"), *(len(info.name) for info in methods)])
    print(f"{'NAME':<{width}}  GRAD  DESCRIPTION")
    for info in methods:
        print(f"{info.name:<{width}}  {'yes' if info.uses_gradients else 'no':<4}  {info.description}")
    return 0
