"""Opening the training and validation splits of a dataset, and batching its images.

A :class:`DatasetSpec` is everything needed to reopen exactly the same images later (it is
recorded in checkpoints): the dataset name, root, options and the splits file. The splits
file is written on first use (``mlfem.datasets`` splits: ids ranked by a seeded hash) and
read afterwards, so a classifier, a NET and an evaluation that share it never mix splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from mlfem.datasets import Sample, open_dataset
from mlfem.training.augment import resize_clip, resize_image

__all__ = ["DatasetSpec", "EpochBatches", "ImageBatch"]


@dataclass
class DatasetSpec:
    """How to open a dataset and its splits (JSON-able through :meth:`as_dict`)."""

    name: str
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    splits: str | None = None
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def __post_init__(self) -> None:
        self.root = None if self.root is None else str(Path(self.root).resolve())
        self.splits = None if self.splits is None else str(Path(self.splits).resolve())
        self.options = {key: _json_value(value) for key, value in self.options.items()}
        fractions = tuple(float(f) for f in self.split_fractions)
        self.split_fractions = fractions  # type: ignore[assignment]

    def open(self, split: str, **overrides: Any) -> Dataset:
        """The dataset restricted to ``split`` (``"train"``, ``"val"``, ``"test"``)."""
        if self.splits is None:
            raise ValueError("DatasetSpec.open needs a splits file path")
        options = {**self.options, **overrides}
        return open_dataset(
            self.name,
            self.root,
            split=split,
            splits=self.splits,
            split_seed=self.split_seed,
            split_fractions=self.split_fractions,
            **options,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "root": self.root,
            "options": dict(self.options),
            "splits": self.splits,
            "split_seed": self.split_seed,
            "split_fractions": list(self.split_fractions),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetSpec:
        return cls(
            name=data["name"],
            root=data.get("root"),
            options=dict(data.get("options", {})),
            splits=data.get("splits"),
            split_seed=int(data.get("split_seed", 0)),
            split_fractions=tuple(data.get("split_fractions", (0.8, 0.1, 0.1))),
        )


def _json_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


class ImageBatch:
    """Collate function: images resized to ``size`` x ``size`` (uint8), multi-hot ``targets``
    and ``image_id`` lists; the GFDM too (as float32 (B, g, g) maps scaled to max 1) when
    ``gfdm_size`` is given. Clips (samples whose ``image`` is (3, T, H, W)) have every frame
    resized, giving ``image`` (B, 3, T, size, size). Module-level and picklable, for
    ``num_workers > 0``."""

    def __init__(self, size: int, num_classes: int, gfdm_size: int | None = None) -> None:
        self.size = int(size)
        self.num_classes = int(num_classes)
        self.gfdm_size = gfdm_size

    def __call__(self, samples: Sequence[Sample]) -> dict[str, Any]:
        targets = torch.zeros((len(samples), self.num_classes), dtype=torch.float32)
        for row, sample in enumerate(samples):
            if sample.labels:
                targets[row, torch.tensor(sample.labels, dtype=torch.long)] = 1.0
        batch = {
            "image": torch.stack([_resize(s.image, self.size) for s in samples]),
            "targets": targets,
            "image_id": [s.image_id for s in samples],
        }
        if self.gfdm_size is not None:
            batch["gfdm"] = torch.stack([gfdm_target(s, self.gfdm_size) for s in samples])
        return batch


def _resize(image: Tensor, size: int) -> Tensor:
    """An image (3, H, W) or a clip (3, T, H, W) resized to ``size`` x ``size`` per frame."""
    return resize_clip(image, size) if image.ndim == 4 else resize_image(image, size)


def gfdm_target(sample: Sample, size: int) -> Tensor:
    """The NET's regression target: the sample's GFDM resized to ``size`` x ``size``
    (bilinear, antialiased) and divided by its maximum, so values span [0, 1]."""
    if sample.gfdm is None:
        raise ValueError(f"{sample.image_id}: no GFDM (open the dataset with gfdm != 'none')")
    gfdm = sample.gfdm.to(torch.float64)[None, None]
    shrink = gfdm.shape[-2] > size or gfdm.shape[-1] > size
    resized = torch.nn.functional.interpolate(
        gfdm, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )[0, 0].clamp_min(0)
    peak = resized.max()
    return (resized / peak if peak > 0 else resized).to(torch.float32)


class EpochBatches(Sampler[list[int]]):
    """Batches of one epoch, in an order fixed by ``order``, starting at batch ``start``.

    Starting mid-epoch is what makes an interrupted run resumable exactly. With
    ``drop_single``, a last batch of a single sample is dropped (batch-norm cannot train
    on one sample).
    """

    def __init__(
        self, order: Sequence[int], batch_size: int, start: int = 0, drop_single: bool = True
    ) -> None:
        self.batches = [list(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
        if drop_single and len(self.batches) > 1 and len(self.batches[-1]) < 2:
            self.batches.pop()
        self.start = start

    def __iter__(self):
        return iter(self.batches[self.start :])

    def __len__(self) -> int:
        return max(0, len(self.batches) - self.start)

    @property
    def total(self) -> int:
        return len(self.batches)


def progress_bar(total: int, initial: int, desc: str, unit: str, enabled: bool):
    """The training jobs' transient progress bar on stderr, starting at ``initial`` when a
    run resumes mid-way."""
    import sys

    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not enabled,
        leave=False,
        file=sys.stderr,
    )
