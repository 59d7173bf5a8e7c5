"""The images of an evaluation as its DataLoader workers hand them to the scorer: each
sample read and preprocessed for the model into a :class:`PreparedImage` (or a :class:`Skip`
for a sample that could not be read), and the per-image seed of every random draw
(:func:`image_seed`), which depends on the run's seed and the image's id only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mlfem.gaze import Fixations

if TYPE_CHECKING:
    from mlfem.models import Placement

__all__ = ["PreparedImage", "PreparedImages", "Skip", "as_list", "image_seed", "read_sample"]

def image_seed(seed: int, image_id: str) -> int:
    """The seed of one image's random draws: from the run's ``seed`` and the image's id only."""
    digest = hashlib.sha256(f"{int(seed)}:{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63 bits: any torch seed


@dataclass
class PreparedImage:
    """One image as a DataLoader worker hands it to the scorer.

    ``position`` is the image's index in the evaluated split (its gallery file); ``input`` and
    ``placement`` come from the model's preprocessing; ``fixations`` hold every observer with at
    least one fixation (ids in the dataset's observer order); ``image`` (uint8, 3 x H x W) is
    kept for gallery images only.
    """

    position: int
    image_id: str
    input: torch.Tensor
    placement: Placement
    gfdm: torch.Tensor
    fixations: Fixations
    labels: list[int]
    class_names: list[str]
    n_classes_present: int
    category: str
    split: str
    image: torch.Tensor | None

    @property
    def size(self) -> tuple[int, int]:
        """The image's (height, width): its fixations' image."""
        return self.fixations.size


@dataclass
class Skip:
    """Stands in for a sample that could not be read (``position`` in the evaluated split)."""

    position: int
    image_id: str
    reason: str


class PreparedImages(torch.utils.data.Dataset):
    """Reads samples and preprocesses them for the model, in DataLoader workers."""

    def __init__(self, dataset: Any, indices: Sequence[int], preprocess: Callable, gallery: int) -> None:
        self.dataset = dataset
        self.indices = list(indices)
        self.preprocess = preprocess
        self.gallery = gallery

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> PreparedImage | Skip:
        sample = read_sample(self.dataset, self.indices[position], position)
        if isinstance(sample, Skip):
            return sample
        height, width = int(sample.image.shape[1]), int(sample.image.shape[2])
        observers = [(f[:, 0].numpy(), f[:, 1].numpy()) for f in sample.fixations if len(f)]
        tensor, placement = self.preprocess(sample.image)
        return PreparedImage(
            position=position,
            image_id=sample.image_id,
            input=tensor,
            placement=placement,
            gfdm=sample.gfdm,
            fixations=Fixations.from_observers(observers, height, width, name=sample.image_id),
            labels=list(sample.labels),
            class_names=list(sample.class_names),
            n_classes_present=int(sample.n_classes_present),
            category=sample.category or "",
            split=sample.split or "",
            image=sample.image if position < self.gallery else None,
        )


def as_list(batch: list) -> list:
    """Collate function of the evaluation loader: images differ in size, keep a list."""
    return batch


def read_sample(dataset: Any, index: int, position: int) -> Any:
    """``dataset[index]``, or the :class:`Skip` that reports it (at ``position`` in the run) when
    it cannot be read or has no GFDM to score against."""
    from mlfem.datasets import SampleError

    try:
        sample = dataset[index]
    except SampleError as error:
        return Skip(position, error.image_id, error.reason)
    if sample.gfdm is None:
        return Skip(position, sample.image_id, "no GFDM (dataset opened with gfdm='none')")
    return sample
