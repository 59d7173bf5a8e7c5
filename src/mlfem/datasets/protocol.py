"""The dataset protocol: what every registered dataset declares, so that no caller guesses.

Every dataset :func:`mlfem.datasets.open_dataset` opens - the file loaders, the folder
dataset and the synthetic benchmark alike - is a map-style ``Dataset`` of
:class:`~mlfem.datasets.Sample` that also has:

* ``name``: its canonical, registered name (a class attribute, what ``open_dataset`` takes);
* ``takes_root`` and ``default_root()``: whether it is read from a folder, and the folder it
  uses when none is given (``None``: ``$MLFEM_DATA/<name>``);
* ``class_names`` and ``multi_label``: the label space of ``sample.labels``;
* ``gfdm_settings()``: how ``sample.gfdm`` is made (:class:`GFDMSettings`), e.g. the blur
  sigma the evaluation needs for its per-observer targets and human ceiling;
* ``image_ids``, ``skipped`` and ``summary()``.

:class:`GazeDatasetProtocol` states it for type checkers and ``isinstance``;
:class:`DatasetBase` gives the defaults the registered classes share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from torch.utils.data import Dataset

from .schema import Sample, SkippedItem

__all__ = ["GFDM_KINDS", "DatasetBase", "GFDMSettings", "GazeDatasetProtocol"]

#: Where a dataset's GFDMs come from, once resolved (the ``gfdm="auto"`` option is not one).
GFDM_KINDS = ("fixations", "shipped", "none")


@dataclass(frozen=True)
class GFDMSettings:
    """How a dataset makes ``sample.gfdm``.

    Attributes:
        source: ``"fixations"`` (built from the pooled fixations with ``mlfem.gaze.gfdm``),
            ``"shipped"`` (the dataset's own maps) or ``"none"`` (``sample.gfdm`` is ``None``).
        sigma: The Gaussian blur in pixels the GFDMs are built with; ``None`` unless they are
            built from fixations (nobody recorded the sigma of shipped maps).
        collapse: Each fixated pixel counted once before blurring (only with fixations).
        weight_by_duration: Fixations weighted by their durations (only with fixations).
    """

    source: str
    sigma: float | None = None
    collapse: bool = False
    weight_by_duration: bool = False

    def __post_init__(self) -> None:
        if self.source not in GFDM_KINDS:
            raise ValueError(f"GFDM source must be one of {GFDM_KINDS}, got {self.source!r}")
        if self.from_fixations and not (self.sigma is not None and self.sigma > 0):
            raise ValueError(f"GFDMs built from fixations need a sigma > 0, got {self.sigma}")
        shaping = self.sigma is not None or self.collapse or self.weight_by_duration
        if not self.from_fixations and shaping:
            raise ValueError(f"sigma, collapse and weight_by_duration apply to GFDMs built from "
                             f"fixations only, not to source {self.source!r}")

    @classmethod
    def of(cls, source: str, sigma: float | None, collapse: bool = False,
           weight_by_duration: bool = False) -> GFDMSettings:
        """The settings of a dataset whose options say ``source``, ``sigma``, ...: the options
        that build GFDMs from fixations are dropped when the GFDMs are not built that way."""
        if source != "fixations":
            return cls(source)
        return cls(source, float(sigma) if sigma is not None else None, bool(collapse),
                   bool(weight_by_duration))

    @property
    def from_fixations(self) -> bool:
        """Whether the GFDMs are built from the fixations (so ``sigma`` is known)."""
        return self.source == "fixations"


@runtime_checkable
class GazeDatasetProtocol(Protocol):
    """What every registered dataset provides (see the module docstring)."""

    name: ClassVar[str]
    takes_root: ClassVar[bool]
    class_names: list[str]
    multi_label: bool
    skipped: list[SkippedItem]

    @classmethod
    def default_root(cls) -> Path | None: ...

    @property
    def image_ids(self) -> list[str]: ...

    def gfdm_settings(self) -> GFDMSettings: ...

    def summary(self) -> dict[str, Any]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


class DatasetBase(Dataset[Sample]):
    """Defaults of the protocol shared by the registered datasets; a subclass sets ``name``
    and implements ``_entries`` and ``_sample`` (what ``len`` and ``ds[i]`` read),
    ``image_ids``, ``summary`` and :meth:`gfdm_settings`."""

    name: ClassVar[str] = ""
    #: ``False`` for a dataset that is not read from a folder (``open_dataset`` refuses a root).
    takes_root: ClassVar[bool] = True
    multi_label: bool = False
    class_names: list[str]
    skipped: list[SkippedItem]

    @classmethod
    def default_root(cls) -> Path | None:
        """The root used when ``open_dataset`` is given none; ``None``: ``$MLFEM_DATA/<name>``."""
        return None

    def gfdm_settings(self) -> GFDMSettings:
        """How this dataset makes ``sample.gfdm``."""
        raise NotImplementedError(f"{type(self).__name__} does not declare its GFDM settings")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self._entries())

    def __getitem__(self, index: int) -> Sample:
        entries = self._entries()
        if not -len(entries) <= index < len(entries):
            raise IndexError(f"index {index} out of range for {len(entries)} samples")
        return self._sample(entries[index])

    def _entries(self) -> Sequence[Any]:
        """One entry per sample, in order (a loader's records, the synthetic indices)."""
        raise NotImplementedError

    def _sample(self, entry: Any) -> Sample:
        """The sample of one of :meth:`_entries`."""
        raise NotImplementedError
