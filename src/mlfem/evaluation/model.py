"""The classifier under evaluation: the model, how a dataset image becomes its input, and
what is known about its classes and checkpoint files.

Two sources: a checkpoint written by ``mlfem train-classifier`` (read with
:func:`mlfem.training.load_classifier`), or any model ``mlfem explain`` accepts
(``--model``/``--weights``, see :mod:`mlfem.models`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlfem.models.preprocessing import Placement, Preprocessing

__all__ = [
    "EvaluatedModel",
    "TensorPreprocessing",
    "file_digests",
    "from_classifier_checkpoint",
    "from_model_spec",
    "is_correct",
    "predictions",
]


class TensorPreprocessing:
    """Picklable adapter: a dataset image (``uint8`` tensor (3, H, W)) to a model input via a
    :class:`~mlfem.models.Preprocessing` (PIL resizing, normalisation), with its placement."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.preprocessing = preprocessing

    def __call__(self, image: Tensor) -> tuple[Tensor, Placement]:
        from PIL import Image

        array = image.permute(1, 2, 0).contiguous().numpy()
        return self.preprocessing(Image.fromarray(np.ascontiguousarray(array)))

    def describe(self) -> dict[str, Any]:
        p = self.preprocessing
        return {
            "fit": p.fit, "crop_size": p.crop_size, "resize_size": p.resize_size,
            "mean": list(p.mean), "std": list(p.std), "interpolation": p.interpolation,
            "source": p.source,
        }


@dataclass
class EvaluatedModel:
    """A classifier ready for evaluation.

    Attributes:
        model: the network, in eval mode, on its device.
        preprocess: picklable callable, ``uint8`` image (3, H, W) to ``(input (3, h, w),
            placement)``; runs in DataLoader workers.
        class_names: the classifier's output classes, when known.
        multi_label: True for sigmoid outputs (present = above 0.5), False for softmax
            (prediction = arg-max), None when unknown (then the dataset decides).
        description: where the model came from, for ``run.json`` and the report.
        checkpoints: files the model was loaded from (hashed into ``run.json``, and what the
            leakage guard checks).
        trained: False for random weights.
    """

    model: nn.Module
    preprocess: Callable[[Tensor], tuple[Tensor, Placement]]
    class_names: list[str] | None = None
    multi_label: bool | None = None
    description: str = ""
    checkpoints: list[Path] = field(default_factory=list)
    trained: bool = True

    @property
    def device(self) -> torch.device:
        for tensor in (*self.model.parameters(), *self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    def preprocessing_info(self) -> dict[str, Any]:
        describe = getattr(self.preprocess, "describe", None)
        return describe() if callable(describe) else {"preprocess": repr(self.preprocess)}


def from_model_spec(
    spec: str, weights: str | None = None, device: str | torch.device = "cpu", fit: str = "whole"
) -> EvaluatedModel:
    """A model named as for ``mlfem explain --model SPEC --weights W``, with the class names
    its weights declare (ImageNet for pretrained torchvision/timm models), if any."""
    from mlfem.models import load_model

    loaded = load_model(spec, weights, device=device)
    files = [Path(p) for p in (spec, weights) if p and Path(p).is_file()]
    return EvaluatedModel(
        model=loaded.model,
        preprocess=TensorPreprocessing(loaded.preprocessing.with_fit(fit)),  # type: ignore[arg-type]
        class_names=list(loaded.class_names) if loaded.class_names else None,
        description=loaded.description,
        checkpoints=files,
        trained=loaded.trained,
    )


def from_classifier_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> EvaluatedModel:
    """A classifier saved by ``mlfem train-classifier`` (weights + JSON sidecar), with the
    class names, multi-label flag and preprocessing its checkpoint records."""
    from mlfem.training import load_classifier

    loaded = load_classifier(path, device=device)
    return EvaluatedModel(
        model=loaded.model,
        preprocess=TensorPreprocessing(loaded.preprocessing),  # type: ignore[arg-type]
        class_names=list(loaded.class_names),
        multi_label=bool(loaded.multi_label),
        description=loaded.description,
        checkpoints=[Path(loaded.path)],
        trained=True,
    )


def file_digests(paths: Sequence[str | Path]) -> dict[str, str]:
    """SHA-256 of each file (and of a JSON sidecar with the same stem, when there is one)."""
    out: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        candidates = [path]
        sidecar = path.with_suffix(".json")
        if path.suffix != ".json" and sidecar.is_file():
            candidates.append(sidecar)
        for file in candidates:
            if file.is_file():
                digest = hashlib.sha256()
                with open(file, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                out[str(file)] = digest.hexdigest()
    return out


def predictions(logits: Tensor, multi_label: bool) -> list[list[int]]:
    """Predicted classes per image: every class with sigmoid > 0.5 (multi-label) or the
    arg-max (single-label). Multi-label images may get an empty list."""
    scores = logits.detach().float().cpu()
    if scores.ndim != 2:
        raise ValueError(f"the classifier returned shape {tuple(scores.shape)}; expected (B, classes)")
    if multi_label:
        return [torch.nonzero(row > 0.0).flatten().tolist() for row in scores]  # sigmoid > 0.5
    return [[int(i)] for i in scores.argmax(dim=1)]


def is_correct(
    logits_row: Tensor, true_labels: Sequence[int], multi_label: bool
) -> bool | None:
    """The paper's verdict: single-label, the arg-max is the true class; multi-label, every
    present class has sigmoid output above 0.5 (extra predicted classes do not count against
    it). ``None`` when the image has no labels or a label is outside the classifier's classes."""
    if not true_labels:
        return None
    scores = logits_row.detach().float().cpu()
    if max(true_labels) >= scores.numel():
        return None
    if multi_label:
        return bool(all(float(scores[c]) > 0.0 for c in true_labels))
    return int(scores.argmax()) in set(true_labels)
