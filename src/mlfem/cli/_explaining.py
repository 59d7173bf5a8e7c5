"""What both routes of ``mlfem explain`` (images and videos) share: the device, the model,
the explainer, and the output names."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from mlfem.cli import UsageError

__all__ = ["build_explainer", "load_model_for", "output_names", "parse_device"]


def parse_device(device: str | None):
    """The ``--device`` as a torch.device (default: cuda when available), or a UsageError."""
    import torch

    parsed = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine")
    return parsed


def load_model_for(args: argparse.Namespace, device, dtype):
    """Load ``--model``/``--weights``, printing the loader's warnings (e.g. "random weights")
    on stderr whatever the warning filters; a bad specification is a UsageError."""
    from mlfem.models import ModelLoadError, load_model

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = load_model(args.model, args.weights, device=device, dtype=dtype)
    except ModelLoadError as error:
        raise UsageError(str(error)) from error
    for warning in caught:  # e.g. "random weights": the user must see it, whatever the filters
        print(f"warning: {warning.message}", file=sys.stderr)
    return loaded


def build_explainer(args: argparse.Namespace, model, **extra_options):
    """The ``--method`` explainer for ``model`` with the command's options; a UsageError when
    the method or an option is refused."""
    from mlfem.explainers.registry import create_explainer

    options = {"layers": args.layers, "alpha": args.alpha, "k": args.k, "normalize": args.normalize}
    if args.fusion is not None:
        options["fusion"] = args.fusion
    options.update(extra_options)
    try:
        return create_explainer(args.method, model, **options)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from error


def output_names(paths: list[Path]) -> dict[Path, str]:
    """Output stem per input; inputs sharing a stem get their parent folder's name added."""
    by_stem: dict[str, list[Path]] = {}
    for path in paths:
        by_stem.setdefault(path.stem, []).append(path)
    names: dict[Path, str] = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            names[group[0]] = stem
            continue
        for number, path in enumerate(group):
            names[path] = f"{path.parent.name}_{stem}" if path.parent.name else f"{stem}_{number}"
        if len(set(names[p] for p in group)) < len(group):
            for number, path in enumerate(group):
                names[path] = f"{stem}_{number}"
    return names


def report_outcome(total: int, unit: str, failures: list[tuple[Any, str]], out: Path) -> int:
    """Say on stderr how many of ``total`` inputs were explained and which failed, and why;
    the command's exit code: 1 when an input failed, 0 otherwise."""
    print(f"wrote maps for {total - len(failures)} of {total} {unit} to {out}", file=sys.stderr)
    if not failures:
        return 0
    print(f"{len(failures)} input(s) failed and were skipped:", file=sys.stderr)
    for path, reason in failures:
        print(f"  {path}: {reason}", file=sys.stderr)
    return 1
