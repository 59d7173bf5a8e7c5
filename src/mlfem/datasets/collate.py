"""Batching samples of variable image sizes for a torch ``DataLoader``.

``collate`` keeps every per-sample field as a list (images of different sizes cannot be
stacked).  ``Collate(size=(H, W))`` instead resizes images and GFDMs to one size, scales the
fixations accordingly, and stacks them into tensors, which is what a training loop wants.
Both are module-level and picklable, so they work with ``num_workers > 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .schema import Sample

__all__ = ["Collate", "collate", "resize_sample"]


def resize_sample(sample: Sample, size: tuple[int, int]) -> Sample:
    """A copy of ``sample`` with image and GFDM resized to ``size = (H, W)``, fixations scaled.

    The image is resized bilinearly (with antialiasing when shrinking) and rounded back to
    ``uint8``; the GFDM bilinearly and renormalised to sum 1.  Fixations map pixel centres to
    pixel centres: ``x' = (x + 0.5) * W'/W - 0.5``.  Object masks in ``extras`` are resized
    with nearest neighbours.
    """
    height, width = int(size[0]), int(size[1])
    h0, w0 = int(sample.image.shape[1]), int(sample.image.shape[2])
    if (h0, w0) == (height, width):
        return sample
    image = F.interpolate(
        sample.image[None].float(), size=(height, width), mode="bilinear",
        align_corners=False, antialias=height < h0 or width < w0,
    )[0]
    image = image.round().clamp(0, 255).to(torch.uint8)
    gfdm = sample.gfdm
    if gfdm is not None:
        gfdm = F.interpolate(
            gfdm[None, None].double(), size=(height, width), mode="bilinear", align_corners=False
        )[0, 0].clamp_min(0)
        gfdm = (gfdm / gfdm.sum()).float()
    scale = torch.tensor([width / w0, height / h0], dtype=torch.float32)
    fixations = [(f + 0.5) * scale - 0.5 for f in sample.fixations]
    extras = dict(sample.extras)
    for key in ("masks", "distractor_masks"):
        masks = extras.get(key)
        if isinstance(masks, torch.Tensor) and masks.ndim == 3:
            extras[key] = (
                F.interpolate(masks[None].float(), size=(height, width), mode="nearest")[0] > 0.5
            )
    for key in ("boxes", "distractor_boxes"):
        boxes = extras.get(key)
        if isinstance(boxes, torch.Tensor) and boxes.ndim == 2 and boxes.shape[1] == 4:
            extras[key] = (boxes + 0.5) * scale.repeat(2) - 0.5
    return Sample(
        image_id=sample.image_id, image=image, fixations=fixations, gfdm=gfdm,
        labels=list(sample.labels), class_names=list(sample.class_names),
        n_classes_present=sample.n_classes_present, category=sample.category,
        split=sample.split, durations=sample.durations, n_outside=sample.n_outside,
        extras=extras,
    )


class Collate:
    """Collate function for ``DataLoader(..., collate_fn=Collate(...))``.

    Args:
        size: ``(H, W)`` to resize every sample to, so ``image`` (``uint8``, ``(B, 3, H, W)``)
            and ``gfdm`` (``(B, H, W)``) are stacked; ``None`` keeps lists.
        num_classes: When given, adds ``targets``: a ``(B, num_classes)`` float multi-hot
            tensor of the labels (single-label data: one 1 per row, ``targets.argmax(1)``).

    Returns a dict with the :class:`Sample` field names (lists, or stacked tensors as above).
    """

    def __init__(self, size: tuple[int, int] | None = None, num_classes: int | None = None):
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.num_classes = num_classes

    def __call__(self, samples: Sequence[Sample]) -> dict[str, Any]:
        if self.size is not None:
            samples = [resize_sample(s, self.size) for s in samples]
        batch: dict[str, Any] = {
            name: [getattr(s, name) for s in samples] for name in Sample.__dataclass_fields__
        }
        batch["n_classes_present"] = torch.tensor(batch["n_classes_present"], dtype=torch.long)
        batch["n_outside"] = torch.tensor(batch["n_outside"], dtype=torch.long)
        if self.size is not None:
            batch["image"] = torch.stack(batch["image"])
            if all(g is not None for g in batch["gfdm"]):
                batch["gfdm"] = torch.stack(batch["gfdm"])
        if self.num_classes is not None:
            targets = torch.zeros((len(samples), self.num_classes), dtype=torch.float32)
            for row, sample in enumerate(samples):
                if sample.labels:
                    targets[row, torch.tensor(sample.labels, dtype=torch.long)] = 1.0
            batch["targets"] = targets
        return batch

    def __repr__(self) -> str:
        return f"Collate(size={self.size}, num_classes={self.num_classes})"


collate = Collate()
"""Default collate: every field as a list, ``n_classes_present`` and ``n_outside`` as tensors."""
