"""Importing a package's public modules, so that the classes and functions they register
(methods, metrics, datasets) need no list kept elsewhere: a new one is one file."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Collection
from pathlib import Path

__all__ = ["import_public_modules"]


def import_public_modules(package: str, directory: str | Path, skip: Collection[str] = ()) -> None:
    """Import every module of ``package`` (found in ``directory``) whose name does not start
    with ``_`` and is not in ``skip``, in name order (so registration order is stable)."""
    for module in pkgutil.iter_modules([str(directory)]):
        if not module.name.startswith("_") and module.name not in skip:
            importlib.import_module(f"{package}.{module.name}")
