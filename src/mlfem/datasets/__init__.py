"""Eye-tracking datasets with one sample schema, splits and a synthetic gaze benchmark.

>>> from mlfem.datasets import open_dataset, collate
>>> ds = open_dataset("osie", "/data/osie")                      # doctest: +SKIP
>>> ds = open_dataset("synthetic", n=2000, seed=0, mode="multi")
>>> sample = ds[0]; sample.image.shape, sample.gfdm.sum()        # doctest: +SKIP

Every dataset is a map-style ``torch.utils.data.Dataset`` of :class:`Sample`
(``image_id``, ``image``, ``fixations``, ``gfdm``, ``labels``, ``class_names``,
``n_classes_present``, ``category``, ``split``, ...).  See ``docs/datasets.md`` for each
dataset's on-disk layout, options and GFDM sigma defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from .cat2000 import CAT2000
from .collate import Collate, collate, resize_sample
from .folder import Folder
from .mexculture import MexCulture
from .mit1003 import MIT1003
from .osie import OSIE
from .osie_sample import OSIESample, bundled_osie_root
from .salicon import SALICON
from .schema import DatasetWarning, LayoutError, Sample, SampleError, SkippedItem
from .splits import SPLIT_NAMES, Splits, make_splits
from .synthetic import SyntheticGaze

__all__ = [
    "CAT2000",
    "DATASETS",
    "MIT1003",
    "OSIE",
    "OSIESample",
    "SALICON",
    "SPLIT_NAMES",
    "Collate",
    "DatasetWarning",
    "Folder",
    "LayoutError",
    "MexCulture",
    "Sample",
    "SampleError",
    "SkippedItem",
    "Splits",
    "SyntheticGaze",
    "available_datasets",
    "bundled_osie_root",
    "canonical_name",
    "collate",
    "default_sigma",
    "make_splits",
    "open_dataset",
    "resize_sample",
]

DATASETS: dict[str, type] = {
    "salicon": SALICON,
    "cat2000": CAT2000,
    "mexculture": MexCulture,
    "mit1003": MIT1003,
    "osie": OSIE,
    "osiesample": OSIESample,
    "folder": Folder,
    "synthetic": SyntheticGaze,
}
_ALIASES = {"mexculture142": "mexculture", "mit": "mit1003", "cat": "cat2000"}

#: Environment variable naming a folder with one sub-folder per dataset (``$MLFEM_DATA/osie``).
DATA_ENV = "MLFEM_DATA"


def available_datasets() -> list[str]:
    """Names accepted by :func:`open_dataset`."""
    return [cls.name for cls in DATASETS.values()]


def default_sigma(name: str) -> float | None:
    """The GFDM sigma (pixels) a dataset uses by default, ``None`` when it has none."""
    cls = DATASETS[_canonical(name)]
    return getattr(cls, "default_sigma", None)


def canonical_name(name: str, *, strict: bool = False) -> str:
    """The registry key of a dataset name, so that two spellings of one dataset compare equal.

    Case, ``-`` and ``_`` are ignored and aliases are resolved: ``"MIT"``, ``"mit-1003"`` and
    ``"mit1003"`` all give ``"mit1003"``; ``"osie-sample"`` gives ``"osiesample"``.

    Args:
        name: a dataset name as a user, a CLI option or a checkpoint's record spells it.
        strict: raise ``ValueError`` for a name no registered dataset answers to.  By default
            such a name comes back normalised, so names recorded by other tools still compare.
    """
    key = name.strip().lower().replace("-", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if strict and key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return key


def _canonical(name: str) -> str:
    return canonical_name(name, strict=True)


def open_dataset(name: str, root: str | Path | None = None, **options: Any) -> Dataset:
    """Open a dataset by name.

    Args:
        name: One of :func:`available_datasets` (``"salicon"``, ``"cat2000"``,
            ``"mexculture"``, ``"mit1003"``, ``"osie"``, ``"osie-sample"`` (12 real images
            shipped with mlfem), ``"folder"``, ``"synthetic"``).
        root: The dataset's root folder.  ``None`` uses ``$MLFEM_DATA/<name>``; the synthetic
            benchmark takes no root.
        **options: Options of the dataset class (common: ``gfdm``, ``sigma``, ``collapse``,
            ``weight_by_duration``, ``drop_outside``, ``verify``, ``split``, ``splits``,
            ``split_seed``, ``split_fractions``; synthetic: ``n``, ``seed``, ``mode``, ...).

    Returns:
        A map-style ``Dataset`` of :class:`Sample`, with ``class_names``, ``skipped`` and
        ``summary()``.
    """
    key = _canonical(name)
    cls = DATASETS[key]
    if key == "synthetic":
        if root is not None:
            raise ValueError("the synthetic benchmark is generated on the fly: it takes no root")
        return cls(**options)
    if root is None and key == "osiesample":
        return cls(**options)  # the copy installed with the package
    if root is None:
        base = os.environ.get(DATA_ENV)
        if not base:
            raise ValueError(f"{key}: pass root=<dataset folder> (or set ${DATA_ENV})")
        root = Path(base) / key
    return cls(root, **options)
