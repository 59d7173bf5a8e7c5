"""Per-image fixation records: every observer's fixations on one image, in 0-based pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Fixations"]


def _vector(name: str, values: object, length: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if length is not None and array.size != length:
        raise ValueError(f"{name} has {array.size} values, expected {length}")
    return array


@dataclass(frozen=True)
class Fixations:
    """All observers' fixations on one image.

    Coordinates are 0-based pixel positions (``x`` along the width, ``y`` along the height);
    pixel ``i`` covers ``[i - 0.5, i + 0.5)``, so a fixation lands on pixel
    ``floor(x + 0.5)`` (the rounding of the datasets' MATLAB code, after subtracting 1 from their
    1-based coordinates). ``observers`` gives each fixation's observer id; ``durations`` (any unit,
    e.g. ms) is optional.
    """

    xs: np.ndarray
    ys: np.ndarray
    height: int
    width: int
    observers: np.ndarray = field(default=None)  # type: ignore[assignment]
    durations: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        xs = _vector("xs", self.xs)
        n = xs.size
        object.__setattr__(self, "xs", xs)
        object.__setattr__(self, "ys", _vector("ys", self.ys, n))
        if self.observers is None:
            observers = np.zeros(n, dtype=np.int64)
        else:
            observers = np.asarray(self.observers).reshape(-1).astype(np.int64)
            if observers.size != n:
                raise ValueError(f"observers has {observers.size} values, expected {n}")
        object.__setattr__(self, "observers", observers)
        if self.durations is not None:
            object.__setattr__(self, "durations", _vector("durations", self.durations, n))
        if int(self.height) <= 0 or int(self.width) <= 0:
            raise ValueError(f"image size must be positive, got {self.height}x{self.width} (HxW)")
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "width", int(self.width))

    @classmethod
    def from_observers(
        cls,
        observers: Sequence[Sequence[object]],
        height: int,
        width: int,
        name: str = "",
    ) -> Fixations:
        """Build from one ``(xs, ys)`` or ``(xs, ys, durations)`` tuple per observer.

        Either every observer has durations or none has. Observer ids are their positions.
        """
        xs, ys, ids, durs = [], [], [], []
        with_durations = {len(obs) == 3 for obs in observers}
        if len(with_durations) > 1:
            raise ValueError("either every observer has durations or none has")
        for index, obs in enumerate(observers):
            if len(obs) not in (2, 3):
                raise ValueError(f"observer {index}: expected (xs, ys) or (xs, ys, durations)")
            ox = _vector(f"observer {index} xs", obs[0])
            xs.append(ox)
            ys.append(_vector(f"observer {index} ys", obs[1], ox.size))
            ids.append(np.full(ox.size, index, dtype=np.int64))
            if len(obs) == 3:
                durs.append(_vector(f"observer {index} durations", obs[2], ox.size))
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
        return cls(
            xs=cat(xs),
            ys=cat(ys),
            height=height,
            width=width,
            observers=cat(ids).astype(np.int64),
            durations=cat(durs) if durs else None,
            name=name,
        )

    def __len__(self) -> int:
        return int(self.xs.size)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the image."""
        return self.height, self.width

    @property
    def observer_ids(self) -> np.ndarray:
        """Sorted distinct observer ids."""
        return np.unique(self.observers)

    @property
    def n_observers(self) -> int:
        """Number of distinct observers with at least one fixation."""
        return int(self.observer_ids.size)

    def select(self, mask: np.ndarray) -> Fixations:
        """The fixations where ``mask`` (boolean, one per fixation) is true."""
        mask = np.asarray(mask, dtype=bool)
        return Fixations(
            xs=self.xs[mask],
            ys=self.ys[mask],
            height=self.height,
            width=self.width,
            observers=self.observers[mask],
            durations=None if self.durations is None else self.durations[mask],
            name=self.name,
        )

    def of_observer(self, observer: int) -> Fixations:
        """Only the fixations of ``observer``."""
        return self.select(self.observers == observer)

    def without_observer(self, observer: int) -> Fixations:
        """Every fixation except those of ``observer``."""
        return self.select(self.observers != observer)
