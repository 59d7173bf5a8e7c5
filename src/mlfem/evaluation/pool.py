"""The negatives of the shuffled AUC (``sauc``) in an evaluation: the fixations of the other
images of the same split.

:class:`FixationPool` reads every image of the evaluated split once (the whole split, whatever
``--limit`` says) and keeps each fixation in coordinates relative to its image's size. An
image's negatives are all the other images' fixations, rescaled to its size
(``floor(relative * size)``) and counted on its pixel grid. They depend on the split's
fixations and the image's id and size only (a sum of counts, taken in no particular order),
never on which images a run, a resumed run or a shard processes; the draws among them are
seeded per image (:func:`mlfem.evaluation.scoring.image_seed`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["FixationPool"]


class FixationPool:
    """Every image's fixations, relative to its size: ``{image_id: (x / W, y / H)}`` with the
    0-based pixel coordinates of the fixation's pixel centre."""

    def __init__(self, fixations: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.fixations = dict(fixations)
        self._totals: dict[tuple[int, int], torch.Tensor] = {}

    @classmethod
    def from_dataset(cls, dataset: Any) -> FixationPool:
        """The pool of every readable sample of ``dataset`` (unreadable ones are left out, as
        the evaluation skips them)."""
        from mlfem.datasets import SampleError

        pool: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for index in range(len(dataset)):
            try:
                sample = dataset[index]
            except SampleError:
                continue
            height, width = int(sample.image.shape[1]), int(sample.image.shape[2])
            points = [f for f in sample.fixations if len(f)]
            if not points:
                pool[sample.image_id] = (np.zeros(0), np.zeros(0))
                continue
            xy = torch.cat(points).double().numpy()
            # Pixel centres (the fixation's pixel, as fixation_counts rounds it) over the size.
            pool[sample.image_id] = ((np.floor(xy[:, 0] + 0.5) + 0.5) / width, (np.floor(xy[:, 1] + 0.5) + 0.5) / height)
        return cls(pool)

    def _counts(self, points: tuple[np.ndarray, np.ndarray], height: int, width: int) -> torch.Tensor:
        xs = np.clip(np.floor(points[0] * width), 0, width - 1).astype(np.int64)
        ys = np.clip(np.floor(points[1] * height), 0, height - 1).astype(np.int64)
        counts = np.bincount(ys * width + xs, minlength=height * width).astype(np.float32)
        return torch.from_numpy(counts.reshape(height, width))

    def others(self, image_id: str, height: int, width: int) -> torch.Tensor:
        """(H, W) count map of the other images' fixations rescaled to ``height`` x ``width``."""
        key = (int(height), int(width))
        if key not in self._totals:
            everything = tuple(np.concatenate([p[i] for p in self.fixations.values()] or [np.zeros(0)]) for i in (0, 1))
            self._totals[key] = self._counts(everything, *key)  # type: ignore[arg-type]
        total = self._totals[key]
        own = self.fixations.get(image_id)
        return total if own is None else total - self._counts(own, *key)
