"""Eye-tracking datasets with one sample schema, splits and a synthetic gaze benchmark.

>>> from mlfem.datasets import open_dataset, collate
>>> ds = open_dataset("osie", "/data/osie")                      # doctest: +SKIP
>>> ds = open_dataset("synthetic", n=2000, seed=0, mode="multi")
>>> sample = ds[0]; sample.image.shape, sample.gfdm.sum()        # doctest: +SKIP

Every dataset is a map-style ``torch.utils.data.Dataset`` of :class:`Sample`
(``image_id``, ``image``, ``fixations``, ``gfdm``, ``labels``, ``class_names``,
``n_classes_present``, ``category``, ``split``, ...) and follows one protocol
(:class:`GazeDatasetProtocol`: canonical ``name``, ``class_names``, ``multi_label``,
``gfdm_settings()``, ...).  See ``docs/datasets.md`` for each
dataset's on-disk layout, options and GFDM sigma defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from mlfem._discovery import import_public_modules

# The dataset modules register their classes on import (@register_dataset), in this order:
# the order of available_datasets().
from .salicon import SALICON  # isort: skip
from .cat2000 import CAT2000  # isort: skip
from .mexculture import MexCulture  # isort: skip
from .mit1003 import MIT1003  # isort: skip
from .osie import OSIE  # isort: skip
from .osie_sample import OSIESample, bundled_osie_root  # isort: skip
from .folder import Folder  # isort: skip
from .synthetic import SyntheticGaze  # isort: skip
from .synthetic_video import SyntheticVideo  # isort: skip
from .video_folder import VideoFolder  # isort: skip
from .collate import Collate, collate, resize_sample
from .protocol import DatasetBase, GazeDatasetProtocol, GFDMSettings
from .registry import DATASETS, canonical_name, image_id_space, register_dataset
from .schema import DatasetWarning, LayoutError, Sample, SampleError, SkippedItem
from .splits import SPLIT_NAMES, Splits, make_splits

# Any other module of the package registers too, so a new dataset is one file.
import_public_modules(__package__, Path(__file__).parent)

__all__ = [
    "CAT2000",
    "DATASETS",
    "MIT1003",
    "OSIE",
    "OSIESample",
    "SALICON",
    "SPLIT_NAMES",
    "Collate",
    "DatasetBase",
    "DatasetWarning",
    "Folder",
    "GFDMSettings",
    "GazeDatasetProtocol",
    "LayoutError",
    "MexCulture",
    "Sample",
    "SampleError",
    "SkippedItem",
    "Splits",
    "SyntheticGaze",
    "SyntheticVideo",
    "VideoFolder",
    "available_datasets",
    "bundled_osie_root",
    "canonical_name",
    "image_id_space",
    "collate",
    "default_sigma",
    "make_splits",
    "open_dataset",
    "register_dataset",
    "resize_sample",
]

#: Environment variable naming a folder with one sub-folder per dataset (``$MLFEM_DATA/osie``).
DATA_ENV = "MLFEM_DATA"


def available_datasets() -> list[str]:
    """Names accepted by :func:`open_dataset`."""
    return [cls.name for cls in DATASETS.values()]


def default_sigma(name: str) -> float | None:
    """The GFDM sigma (pixels) a dataset uses by default, ``None`` when it has none."""
    cls = DATASETS[_canonical(name)]
    return getattr(cls, "default_sigma", None)


def _canonical(name: str) -> str:
    return canonical_name(name, strict=True)


def open_dataset(name: str, root: str | Path | None = None, **options: Any) -> Dataset:
    """Open a dataset by name.

    Args:
        name: One of :func:`available_datasets` (``"salicon"``, ``"cat2000"``,
            ``"mexculture"``, ``"mit1003"``, ``"osie"``, ``"osie-sample"`` (12 real images
            shipped with mlfem), ``"folder"``, ``"synthetic"``; video clips:
            ``"synthetic-video"``, ``"video-folder"``).
        root: The dataset's root folder.  ``None`` uses the class's ``default_root()`` (the
            installed copy for ``"osie-sample"``), else ``$MLFEM_DATA/<name>``; a dataset
            with ``takes_root = False`` (the synthetic benchmark) takes none.
        **options: Options of the dataset class (common: ``gfdm``, ``sigma``, ``collapse``,
            ``weight_by_duration``, ``drop_outside``, ``verify``, ``split``, ``splits``,
            ``split_seed``, ``split_fractions``; synthetic: ``n``, ``seed``, ``mode``, ...).

    Returns:
        A map-style ``Dataset`` of :class:`Sample`, with ``class_names``, ``skipped`` and
        ``summary()``.
    """
    key = _canonical(name)
    cls = DATASETS[key]
    if not cls.takes_root:
        if root is not None:
            raise ValueError(f"{cls.name} is generated on the fly: it takes no root")
        return cls(**options)
    if root is None:
        root = cls.default_root()  # e.g. the OSIE sample installed with the package
    if root is None:
        base = os.environ.get(DATA_ENV)
        if not base:
            raise ValueError(f"{key}: pass root=<dataset folder> (or set ${DATA_ENV})")
        root = Path(base) / key
    return cls(root, **options)
