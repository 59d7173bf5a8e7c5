"""Deterministic train/val/test splits by image id, saved to and read back from JSON.

Anything learned (the MLFEM ``net`` fusion, a classifier) must be scored only on images it
never saw.  A split is therefore a property of image *ids*, computed once and written to a
file that both training and evaluation read.  The assignment ranks ids by a seeded SHA-256
hash, so it does not depend on the order in which ids are listed, and the split sizes are
exact (``round(n * fraction)``, the remainder going to ``train``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlfem._atomic import replacing

__all__ = ["SPLIT_NAMES", "Splits", "make_splits", "resolve_splits"]

SPLIT_NAMES = ("train", "val", "test")
_FORMAT = "mlfem-splits/1"


@dataclass
class Splits:
    """Disjoint lists of image ids per split name, plus how they were made."""

    assignments: dict[str, list[str]]
    seed: int | None = None
    fractions: dict[str, float] | None = None
    dataset: str | None = None
    _lookup: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, ids in self.assignments.items():
            for image_id in ids:
                other = self._lookup.setdefault(image_id, name)
                if other != name:
                    raise ValueError(f"image id {image_id!r} is in both {other!r} and {name!r}")
        # A duplicate within one split is as suspicious as an overlap: reject it too.
        total = sum(len(ids) for ids in self.assignments.values())
        if total != len(self._lookup):
            raise ValueError("splits list some image ids more than once")

    def split_of(self, image_id: str) -> str | None:
        """The split holding ``image_id``, or ``None`` when it is in none."""
        return self._lookup.get(image_id)

    def __getitem__(self, name: str) -> list[str]:
        return self.assignments[name]

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._lookup

    @property
    def names(self) -> list[str]:
        return list(self.assignments)

    def save(self, path: str | Path) -> Path:
        """Write the splits as JSON (ids sorted within each split) and return the path."""
        path = Path(path)
        payload = {
            "format": _FORMAT,
            "dataset": self.dataset,
            "seed": self.seed,
            "fractions": self.fractions,
            "splits": {name: sorted(ids) for name, ids in self.assignments.items()},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:  # atomic: a reader never sees a half-written file
            tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        """Read splits written by :meth:`save`; overlapping splits are rejected."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable splits file: {error}") from error
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"{path}: not an mlfem splits file (format {_FORMAT!r} expected)")
        splits = payload.get("splits")
        if not isinstance(splits, dict) or not all(
            isinstance(ids, list) and all(isinstance(i, str) for i in ids)
            for ids in splits.values()
        ):
            raise ValueError(f"{path}: 'splits' must map split names to lists of ids")
        try:
            return cls(
                assignments={str(k): list(v) for k, v in splits.items()},
                seed=payload.get("seed"),
                fractions=payload.get("fractions"),
                dataset=payload.get("dataset"),
            )
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error


def _rank_key(seed: int, image_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{image_id}".encode()).digest()


def make_splits(
    image_ids: Iterable[str],
    fractions: Mapping[str, float] | tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    dataset: str | None = None,
) -> Splits:
    """Assign each image id to one split, deterministically for a given seed and id set.

    Args:
        image_ids: Ids to split (duplicates are ignored; order does not matter).
        fractions: ``(train, val, test)`` or a mapping ``{name: fraction}``; must sum to 1.
        seed: Seed of the hash that orders the ids.
        dataset: Optional dataset name, recorded in the saved file.
    """
    if not isinstance(fractions, Mapping):
        if len(fractions) != len(SPLIT_NAMES):
            raise ValueError(f"fractions must be {SPLIT_NAMES} or a mapping")
        fractions = dict(zip(SPLIT_NAMES, fractions))
    fractions = {str(k): float(v) for k, v in fractions.items()}
    if any(v < 0 for v in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    ids = sorted(set(image_ids), key=lambda i: _rank_key(seed, i))
    n = len(ids)
    names = list(fractions)
    # The first split (train by default) takes what rounding leaves, so sizes add up to n.
    sizes = {name: int(round(n * fractions[name])) for name in names[1:]}
    sizes[names[0]] = n - sum(sizes.values())
    if sizes[names[0]] < 0:
        raise ValueError(f"cannot split {n} ids into {fractions}")
    assignments: dict[str, list[str]] = {}
    start = 0
    for name in names:
        assignments[name] = sorted(ids[start : start + sizes[name]])
        start += sizes[name]
    return Splits(assignments=assignments, seed=seed, fractions=fractions, dataset=dataset)


def resolve_splits(
    splits: Splits | str | Path | None,
    image_ids: Iterable[str],
    *,
    split: str | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    dataset: str | None = None,
) -> Splits:
    """The splits a dataset opened with ``splits=`` and/or ``split=`` uses.

    ``splits`` is a :class:`Splits` (used as is), the path of a splits file (read when it
    exists; otherwise computed from ``image_ids`` with ``seed`` and ``fractions`` and written
    there, so training and evaluation share it) or ``None`` (computed, not written).  Raises
    ``ValueError`` when ``split`` names no split of the result.
    """
    if isinstance(splits, Splits):
        chosen = splits
    elif splits is not None and Path(splits).exists():
        chosen = Splits.load(splits)
    else:
        chosen = make_splits(image_ids, tuple(fractions), seed=seed, dataset=dataset)
        if splits is not None:
            chosen.save(splits)
    if split is not None and split not in chosen.names:
        raise ValueError(f"unknown split {split!r}; available: {chosen.names}")
    return chosen
