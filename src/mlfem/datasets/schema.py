"""The one sample schema shared by every dataset, and the errors loaders raise.

Conventions (all loaders convert to these, whatever the file format):

- Fixations are ``(N, 2)`` float tensors of ``(x, y)`` in 0-based pixel coordinates of the
  image as loaded: ``x`` is the column, ``y`` the row, and pixel ``(c, r)`` is centred on
  ``(c, r)``.  MATLAB's 1-based coordinates are shifted by one on reading.  One tensor per
  observer; datasets that only ship pooled fixations have a single pseudo-observer.
- A fixation is *inside* the image when it rounds to an existing pixel:
  ``-0.5 <= x < W - 0.5`` and ``-0.5 <= y < H - 0.5``.
- Durations, when a dataset has them, are in milliseconds.
- ``gfdm`` is an ``(H, W)`` float32 density that sums to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "DatasetWarning",
    "Gaze",
    "LayoutError",
    "Record",
    "Sample",
    "SampleError",
    "SkippedItem",
]


@dataclass
class Sample:
    """One image with its human gaze ground truth and class labels.

    Attributes:
        image_id: Identifier, unique within the dataset (also the key used by splits).
        image: ``uint8`` tensor ``(3, H, W)``, RGB.
        fixations: One ``(N, 2)`` float32 tensor of ``(x, y)`` per observer (0-based pixels).
            Empty list when the dataset has no fixations.
        gfdm: ``(H, W)`` float32 gaze fixation density map summing to 1, or ``None`` when the
            dataset was opened with ``gfdm="none"``.
        labels: Class indices present in the image (one for single-label datasets, several
            for multi-label ones, none for datasets without classes).
        class_names: Names of ``labels``, in the same order (the full vocabulary is the
            dataset's ``class_names``).
        n_classes_present: Number of distinct classes in the image (the paper's clutter
            measure).
        category: Dataset-specific category (CAT2000 category, MexCulture style), or ``None``.
        split: ``"train"``/``"val"``/``"test"`` when splits were applied; otherwise the
            dataset's official split if it has one (SALICON), else ``None``.
        durations: Per-observer fixation durations in ms (aligned with ``fixations``), or
            ``None`` when the dataset has none.
        n_outside: Fixations recorded outside the image for this sample (dropped from
            ``fixations`` unless the dataset was opened with ``drop_outside=False``).
        extras: Dataset-specific extras (e.g. object masks of the synthetic benchmark).
    """

    image_id: str
    image: torch.Tensor
    fixations: list[torch.Tensor]
    gfdm: torch.Tensor | None
    labels: list[int]
    class_names: list[str]
    n_classes_present: int
    category: str | None = None
    split: str | None = None
    durations: list[torch.Tensor] | None = None
    n_outside: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    def all_fixations(self) -> torch.Tensor:
        """All observers' fixations pooled into one ``(N, 2)`` tensor."""
        if not self.fixations:
            return torch.zeros((0, 2), dtype=torch.float32)
        return torch.cat(self.fixations, dim=0)

    def as_dict(self) -> dict[str, Any]:
        """The sample as a plain dict (same field names)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class Gaze:
    """Fixations of one image as parsed from disk, before any clean-up.

    ``observers[j]`` is an ``(N_j, 2)`` float64 array of ``(x, y)`` 0-based pixel coordinates;
    ``durations[j]`` (ms) is aligned with it when the format has durations.
    """

    observers: list[np.ndarray]
    durations: list[np.ndarray] | None = None

    @property
    def n_fixations(self) -> int:
        return int(sum(len(o) for o in self.observers))


@dataclass
class Record:
    """Lightweight, picklable index entry for one sample: paths and small parsed metadata.

    Loaders build a list of these when a dataset is opened; images, per-sample fixation
    files and shipped maps are only read in ``__getitem__`` (no file handle is kept).
    """

    image_id: str
    image_path: Path
    labels: tuple[int, ...] = ()
    category: str | None = None
    split: str | None = None
    gaze: Gaze | None = None
    gaze_paths: tuple[Path, ...] = ()
    map_path: Path | None = None
    size: tuple[int, int] | None = None  # (H, W), when known without decoding the image


@dataclass(frozen=True)
class SkippedItem:
    """An item left out of a dataset, and why (corrupt image, malformed fixations, ...)."""

    image_id: str
    path: str
    reason: str


class LayoutError(FileNotFoundError):
    """A dataset root lacks a folder or file of the expected on-disk layout."""

    def __init__(self, dataset: str, missing: Path | str, layout: str) -> None:
        self.dataset = dataset
        self.missing = str(missing)
        self.layout = layout
        super().__init__(
            f"{dataset}: missing {self.missing}\nExpected layout:\n{layout.rstrip()}"
        )


class SampleError(RuntimeError):
    """One sample could not be loaded (corrupt image, malformed fixation file, ...)."""

    def __init__(self, image_id: str, path: Path | str, reason: str) -> None:
        self.image_id = image_id
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{image_id}: {reason} ({self.path})")


class DatasetWarning(UserWarning):
    """Items were skipped or fixations fell outside images while opening a dataset."""
