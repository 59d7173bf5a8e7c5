"""Machinery shared by the file-based loaders: indexing, verification, splits, sample assembly.

A loader subclasses :class:`GazeDataset` and implements ``_index`` (list the samples as
:class:`Record` objects, parsing small shared annotation files eagerly) and, if its fixations
live in per-sample files, ``_parse_gaze`` (read them lazily).  Everything else - checking
files, counting fixations outside images, building GFDMs (helpers in ``_gfdm.py``), splits
(``splits.resolve_splits``), skipped-item bookkeeping, the dataset protocol
(``protocol.DatasetBase``) - is shared, so every dataset behaves the same way.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from . import _io
# The GFDM helpers moved to _gfdm.py; they stay importable from here.
from ._gfdm import GFDM_SOURCES, build_gfdm, clean_gaze, inside_mask, read_shipped_map
from .protocol import DatasetBase, GFDMSettings
from .schema import DatasetWarning, Gaze, LayoutError, Record, Sample, SampleError, SkippedItem
from .splits import Splits, resolve_splits

__all__ = ["GFDM_SOURCES", "VERIFY_LEVELS", "GazeDataset", "build_gfdm", "clean_gaze",
           "inside_mask", "read_shipped_map"]

VERIFY_LEVELS = ("none", "header", "full")


class GazeDataset(DatasetBase):
    """Base class of the file-based datasets (a map-style torch ``Dataset`` of :class:`Sample`).

    Args:
        root: Dataset root folder, laid out as the dataset ships (see ``layout``).
        gfdm: Where the GFDM comes from: ``"fixations"`` (built from the pooled fixations of
            all observers with ``mlfem.gaze.gfdm``), ``"shipped"`` (the dataset's own maps),
            ``"none"`` (``sample.gfdm`` is ``None``), or ``"auto"`` (the dataset's default).
        sigma: Gaussian sigma in pixels for GFDMs built from fixations; ``None`` uses the
            dataset's default (``default_sigma``).
        collapse: Count each fixated pixel once (binary fixation map) instead of counting
            duplicates, before blurring.
        weight_by_duration: Weight each fixation by its duration (datasets with durations:
            OSIE, MexCulture scanpaths, folder with a duration column, synthetic).
        drop_outside: Remove fixations outside the image from ``sample.fixations`` (they are
            counted either way in ``sample.n_outside`` and ``n_fixations_outside``).
        verify: ``"header"`` (default): check every referenced file exists, every image
            header is readable and JPEG/PNG files are not truncated, and check fixations
            parsed at open time against image sizes;
            ``"full"``: also decode every image, per-sample fixation file and map once at
            open time, so ``__getitem__`` cannot fail later; ``"none"``: trust the listing.
            Items that fail are skipped and listed in ``skipped``.
        split: Keep only this split (``"train"``, ``"val"`` or ``"test"``).
        splits: A :class:`Splits`, or the path of a splits JSON file; a path that does not
            exist yet is created from this dataset's ids (``split_seed``, ``split_fractions``).
        split_seed: Seed for splits computed here (no ``splits`` given, or a new file).
        split_fractions: ``(train, val, test)`` fractions for computed splits.
    """

    layout: ClassVar[str] = ""
    default_sigma: ClassVar[float | None] = None
    default_gfdm: ClassVar[str] = "fixations"

    def __init__(
        self,
        root: str | Path,
        *,
        gfdm: str = "auto",
        sigma: float | None = None,
        collapse: bool = False,
        weight_by_duration: bool = False,
        drop_outside: bool = True,
        verify: str = "header",
        split: str | None = None,
        splits: Splits | str | Path | None = None,
        split_seed: int = 0,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    ) -> None:
        if verify not in VERIFY_LEVELS:
            raise ValueError(f"verify must be one of {VERIFY_LEVELS}, got {verify!r}")
        if gfdm not in GFDM_SOURCES:
            raise ValueError(f"gfdm must be one of {GFDM_SOURCES}, got {gfdm!r}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise LayoutError(self.name, self.root, self.layout)
        self.collapse = bool(collapse)
        self.weight_by_duration = bool(weight_by_duration)
        if self.collapse and self.weight_by_duration:
            raise ValueError("collapse and weight_by_duration are mutually exclusive")
        self.drop_outside = bool(drop_outside)
        self.verify = verify
        self.class_names: list[str] = []
        self.skipped: list[SkippedItem] = []
        self.n_fixations_outside = 0
        self.n_unassigned = 0
        self.has_fixations = True
        self.has_durations = False
        self.has_shipped_maps = False
        self.maps_location: Path | None = None  # where shipped maps were expected
        self.splits: Splits | None = None
        self.info: dict[str, Any] = {}

        records = self._index()
        self.gfdm_source = self._resolve_gfdm(gfdm)
        if self.weight_by_duration and not self.has_durations:
            raise ValueError(f"{self.name}: weight_by_duration needs fixation durations, "
                             "which this dataset (or its chosen fixation source) lacks")
        self.sigma = float(sigma) if sigma is not None else self.default_sigma
        if self.gfdm_source == "fixations" and self.sigma is None:
            raise ValueError(
                f"{self.name}: no default sigma for GFDMs built from fixations; "
                "pass sigma=<pixels> (about one degree of visual angle)"
            )
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        records = self._verify_records(records)
        self._records = self._apply_splits(records, split, splits, split_seed, split_fractions)
        self._report()

    # ----------------------------------------------------------------- loader hooks
    def _index(self) -> list[Record]:
        """List the samples (subclasses). Call ``self._skip`` for items that cannot be used."""
        raise NotImplementedError

    def _parse_gaze(self, record: Record, size: tuple[int, int] | None) -> Gaze:
        """Read a record's per-sample fixation files (subclasses with lazy fixations).

        ``size`` is the image's ``(H, W)`` when known, for formats that must match it.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps its fixations in memory")

    # ----------------------------------------------------------------- public API
    def _entries(self) -> list[Record]:
        return self._records

    @property
    def records(self) -> list[Record]:
        """The index entries (read-only use: paths, labels, ids)."""
        return list(self._records)

    @property
    def image_ids(self) -> list[str]:
        return [r.image_id for r in self._records]

    def gfdm_settings(self) -> GFDMSettings:
        """How ``sample.gfdm`` is made: the resolved ``gfdm`` source and, for GFDMs built from
        fixations, the sigma (given or the dataset's default), ``collapse`` and
        ``weight_by_duration``."""
        return GFDMSettings.of(self.gfdm_source, self.sigma, self.collapse, self.weight_by_duration)

    def subset(self, split: str) -> GazeDataset:
        """A view of this dataset restricted to one split (requires splits to be applied)."""
        if self.splits is None:
            raise ValueError("no splits applied: open the dataset with splits=... or split=...")
        if split not in self.splits.names:
            raise ValueError(f"unknown split {split!r}; available: {self.splits.names}")
        view = copy.copy(self)
        view._records = [r for r in self._records if r.split == split]
        return view

    def summary(self) -> dict[str, Any]:
        """Counts worth logging next to any result computed on this dataset."""
        return {
            "dataset": self.name,
            "root": str(self.root),
            "samples": len(self),
            "skipped": self.n_skipped,
            "fixations_outside": self.n_fixations_outside,
            "unassigned_to_splits": self.n_unassigned,
            "gfdm": self.gfdm_source,
            "sigma": self.sigma,
            "collapse": self.collapse,
            "weight_by_duration": self.weight_by_duration,
            "classes": self.num_classes,
            **self.info,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, samples={len(self)}, "
            f"skipped={self.n_skipped}, gfdm={self.gfdm_source!r}, sigma={self.sigma})"
        )

    # ----------------------------------------------------------------- internals
    def _skip(self, image_id: str, path: Path | str, reason: str) -> None:
        self.skipped.append(SkippedItem(image_id=image_id, path=str(path), reason=reason))

    def _require(self, path: Path, kind: str = "dir") -> Path:
        """Raise :class:`LayoutError` naming ``path`` unless it exists as a ``kind``."""
        ok = path.is_dir() if kind == "dir" else path.is_file()
        if not ok:
            raise LayoutError(self.name, path, self.layout)
        return path

    def _resolve_gfdm(self, requested: str) -> str:
        source = self.default_gfdm if requested == "auto" else requested
        if source == "shipped" and not self.has_shipped_maps and requested == "auto":
            source = "fixations"
        if source == "fixations" and not self.has_fixations:
            if requested == "auto" and self.has_shipped_maps:
                return "shipped"
            raise ValueError(f"{self.name}: this dataset has no fixations to build GFDMs from")
        if source == "shipped" and not self.has_shipped_maps:
            where = self.maps_location or self.root
            raise LayoutError(self.name, where, self.layout)
        return source

    def _read_gaze(self, record: Record, size: tuple[int, int] | None) -> Gaze:
        if record.gaze is not None:
            return record.gaze
        if not record.gaze_paths:
            return Gaze(observers=[])
        return self._parse_gaze(record, size)

    def _load(self, record: Record) -> Sample:
        try:
            image = _io.read_image(record.image_path)
        except ValueError as error:
            raise SampleError(record.image_id, record.image_path, str(error)) from None
        height, width = int(image.shape[1]), int(image.shape[2])
        try:
            gaze = self._read_gaze(record, (height, width))
        except ValueError as error:
            where = record.gaze_paths[0] if record.gaze_paths else record.image_path
            raise SampleError(record.image_id, where, f"malformed fixations: {error}") from None
        fixations, durations, n_outside = clean_gaze(gaze, height, width, self.drop_outside)
        gfdm = self._gfdm(record, fixations, durations, height, width)
        return Sample(
            image_id=record.image_id,
            image=image,
            fixations=fixations,
            gfdm=gfdm,
            labels=list(record.labels),
            class_names=[self.class_names[k] for k in record.labels],
            n_classes_present=len(set(record.labels)),
            category=record.category,
            split=record.split,
            durations=durations,
            n_outside=n_outside,
        )

    def _sample(self, entry: Record) -> Sample:
        return self._load(entry)  # a call, not an alias, so a subclass's _load is used

    def _gfdm(
        self,
        record: Record,
        fixations: list[torch.Tensor],
        durations: list[torch.Tensor] | None,
        height: int,
        width: int,
    ) -> torch.Tensor | None:
        if self.gfdm_source == "none":
            return None
        if self.gfdm_source == "shipped":
            if record.map_path is None:
                raise SampleError(record.image_id, record.image_path, "no shipped map")
            try:
                return read_shipped_map(record.map_path, height, width)
            except ValueError as error:
                raise SampleError(record.image_id, record.map_path, str(error)) from None
        points = torch.cat(fixations) if fixations else torch.zeros((0, 2))
        weights = None
        if self.weight_by_duration:
            if durations is None:
                raise SampleError(record.image_id, record.image_path, "no fixation durations")
            weights = torch.cat(durations) if durations else torch.zeros(0)
        if len(points) == 0:
            raise SampleError(record.image_id, record.image_path, "no fixations to build a GFDM")
        assert self.sigma is not None
        try:
            return build_gfdm(points, height, width, self.sigma, self.collapse, weights)
        except ValueError as error:  # e.g. every fixation outside the image
            raise SampleError(record.image_id, record.image_path, str(error)) from None

    def _verify_records(self, records: list[Record]) -> list[Record]:
        if self.verify == "none":
            return records
        kept: list[Record] = []
        for record in records:
            reason, path = self._check_record(record)
            if reason is None:
                kept.append(record)
            else:
                self._skip(record.image_id, path, reason)
        return kept

    def _check_record(self, record: Record) -> tuple[str | None, Path]:
        """``(reason, path)`` when the record is unusable, ``(None, path)`` otherwise."""
        try:
            record.size = _io.check_image(record.image_path)
        except FileNotFoundError:
            return "image file missing", record.image_path
        except ValueError as error:
            return str(error), record.image_path
        for path in record.gaze_paths:
            if not path.is_file():
                return "fixation file missing", path
            if path.stat().st_size == 0:
                return "fixation file is empty", path
        if self.gfdm_source == "shipped":
            if record.map_path is None or not record.map_path.is_file():
                return "shipped map missing", record.map_path or record.image_path
        if self.verify == "full":
            try:
                sample = self._load(record)
            except SampleError as error:
                return error.reason, Path(error.path)
            self.n_fixations_outside += sample.n_outside
        elif record.gaze is not None:
            height, width = record.size
            points = (
                np.concatenate(record.gaze.observers)
                if record.gaze.observers
                else np.zeros((0, 2))
            )
            inside = inside_mask(points, height, width)
            self.n_fixations_outside += int((~inside).sum())
            if self.gfdm_source == "fixations" and not inside.any():
                return "no fixation inside the image to build a GFDM", record.image_path
        return None, record.image_path

    def _apply_splits(
        self,
        records: list[Record],
        split: str | None,
        splits: Splits | str | Path | None,
        seed: int,
        fractions: Sequence[float],
    ) -> list[Record]:
        if splits is None and split is None:
            return records
        ids = [r.image_id for r in records]
        chosen = resolve_splits(splits, ids, split=split, seed=seed, fractions=fractions,
                                dataset=self.name)
        self.splits = chosen
        self.n_unassigned = 0
        for record in records:
            record.split = chosen.split_of(record.image_id)
            self.n_unassigned += record.split is None
        if split is not None:
            records = [r for r in records if r.split == split]
        return records

    def _report(self) -> None:
        if self.skipped:
            first = self.skipped[0]
            warnings.warn(
                f"{self.name}: skipped {len(self.skipped)} item(s) (see .skipped); first: "
                f"{first.image_id}: {first.reason} ({first.path})",
                DatasetWarning,
                stacklevel=3,
            )
        if self.n_unassigned:
            warnings.warn(
                f"{self.name}: {self.n_unassigned} image(s) are in no split of the splits file "
                "and belong to no split",
                DatasetWarning,
                stacklevel=3,
            )
