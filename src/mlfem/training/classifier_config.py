"""Settings and result of :func:`mlfem.training.train_classifier` (``mlfem train-classifier``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlfem.training._data import DatasetSpec
from mlfem.training._run import TrainingResult
from mlfem.training.augment import AUGMENTATIONS

__all__ = ["ClassifierConfig", "ClassifierRun"]


@dataclass
class ClassifierConfig:
    """Settings of :func:`train_classifier` (the CLI options of ``mlfem train-classifier``).

    Args:
        dataset: dataset name (``open_dataset``); ``root`` its folder (None for synthetic).
        out: output folder.
        dataset_options: further ``open_dataset`` options (synthetic: ``n``, ``seed``,
            ``mode``; its ``size`` defaults to ``image_size``).
        model: ``"small-cnn"``, a torchvision classification model name, ``"timm:<name>"``
            or ``"efficientnet_lite0"`` (see :func:`~mlfem.training.build_classifier`).
        model_options: keyword arguments of a timm architecture built from scratch (a
            small ViT: ``{"img_size": 64, "patch_size": 8, "depth": 4}``), recorded in the
            checkpoint, which rebuilds the same model.
        weights: starting weights: None, ``"imagenet"`` or a state_dict file of the
            original architecture; the input normalisation follows pretrained weights.
        image_size: the model input is ``image_size`` x ``image_size`` (whole image resized).
        augment: ``"standard"`` (crop, flip, colour jitter), ``"crop"`` (no flip) or ``"none"``.
        splits: splits file (default ``out/splits.json``), created on first use.
        device: ``"cpu"``, ``"cuda"``...; None picks CUDA when available.
        deterministic: deterministic cuDNN kernels (GPU runs; CPU kernels are deterministic).
    """

    dataset: str
    out: str | Path
    root: str | Path | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    model: str = "small-cnn"
    model_options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    image_size: int = 224
    augment: str = "standard"
    seed: int = 0
    splits: str | Path | None = None
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    num_workers: int = 0
    device: str | None = None
    deterministic: bool = True
    resume: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.image_size < 8:
            raise ValueError("need epochs >= 1, batch_size >= 2 and image_size >= 8")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError("need lr > 0 and weight_decay >= 0")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}"
            )
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")

    def settings(self) -> dict[str, Any]:
        """The JSON-able settings recorded in the checkpoint and the training state."""
        data = asdict(self)
        data["out"] = str(Path(self.out).resolve())
        data["root"] = None if self.root is None else str(Path(self.root).resolve())
        data["splits"] = str(self.splits_path.resolve())
        data["split_fractions"] = list(self.split_fractions)
        data["dataset_options"] = DatasetSpec(self.dataset, options=self.dataset_options).options
        return data

    @property
    def splits_path(self) -> Path:
        return Path(self.splits) if self.splits is not None else Path(self.out) / "splits.json"


@dataclass
class ClassifierRun(TrainingResult):
    """Result of :func:`train_classifier`: ``checkpoint``, ``best_epoch``, ``best_metrics``
    (accuracy or mAP, validation loss) and ``history``."""
