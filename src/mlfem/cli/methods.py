"""``mlfem methods``: list the registered explanation methods with one-line descriptions
(``--metrics``: the metrics, with what they need and their cost in forward passes)."""

from __future__ import annotations

import argparse

_DESCRIPTION = (
    "List the explanation methods that 'mlfem explain --method NAME' and the evaluation accept. "
    "The GRAD column says whether a method back-propagates gradients (it then needs autograd "
    "and costs at least a backward pass); the others are gradient-free. --metrics lists the metrics "
    "of 'mlfem evaluate --metrics' instead: what each needs (gt: the GFDM, fix: fixations, model: "
    "the network, explainer: the network and the method), its direction and its cost in forward "
    "passes per image and method."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``methods`` sub-command."""
    parser = subparsers.add_parser("methods", help="list the explanation methods", description=_DESCRIPTION)
    parser.add_argument("--names", action="store_true", help="print only the names, one per line")
    parser.add_argument("--metrics", action="store_true", help="list the metrics (needs, direction, cost) instead")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the methods; returns the exit code (0)."""
    from mlfem.explainers.registry import available_methods

    if getattr(args, "metrics", False):
        return _list_metrics(getattr(args, "names", False))
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


def _list_metrics(names_only: bool) -> int:
    """Print the registered metrics; returns the exit code (0)."""
    from mlfem.metrics import METRICS

    if names_only:
        for name in METRICS:
            print(name)
        return 0
    width = max(len(name) for name in METRICS)
    print(f"{'NAME':<{width}}  NEEDS      BETTER  {'COST (passes per image, method)':<36}  DESCRIPTION")
    for name, spec in METRICS.items():
        better = "higher" if spec.higher_is_better else "lower"
        print(f"{name:<{width}}  {spec.needs:<9}  {better:<6}  {spec.cost:<36}  {spec.summary}")
    return 0
