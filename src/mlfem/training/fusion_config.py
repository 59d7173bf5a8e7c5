"""Settings and result of :func:`mlfem.training.train_fusion` (``mlfem train-fusion``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfem.training._run import TrainingResult

__all__ = ["FusionConfig", "FusionRun"]


@dataclass
class FusionConfig:
    """Settings of :func:`train_fusion` (the options of ``mlfem train-fusion``).

    Give exactly one of ``classifier`` and ``model``.

    Args:
        classifier: checkpoint written by :func:`~mlfem.training.train_classifier`.
        out: output folder.
        model, weights: or any model as :func:`mlfem.models.load_model` takes it
            (``"efficientnet_lite0"`` with ``"imagenet"``, ``"timm:<name>"``, a file...);
            the dataset then has to be named (it need not have class labels).
        dataset, root, dataset_options, splits, split_seed: default to the classifier's
            (``dataset_options`` given for the same dataset are merged over its options);
            with ``model``, ``dataset`` is required and ``splits`` defaults to
            ``out/splits.json``.
        split_fractions: (train, val, test) fractions of a splits file made here
            (default 0.8/0.1/0.1; an existing splits file is read as it is).
        layers: ``"auto"`` or module names (the NET is tied to this list).
        k: FEM threshold.
        resolution: r, side of the cached maps and of the NET's input (multiple of 4).
        patience: early stopping after this many epochs without a lower validation loss.
        cache: folder of the map caches (default ``out/cache``).
        map_batch_size: images per forward pass when computing the maps.
    """

    classifier: str | Path | None = None
    out: str | Path | None = None
    model: str | None = None
    weights: str | None = None
    dataset: str | None = None
    root: str | Path | None = None
    dataset_options: dict[str, Any] | None = None
    splits: str | Path | None = None
    split_seed: int | None = None
    split_fractions: tuple[float, float, float] | None = None
    layers: str | list[str] = "auto"
    k: float = 2.0
    resolution: int = 64
    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 8
    seed: int = 0
    cache: str | Path | None = None
    map_batch_size: int = 16
    shard_size: int = 256
    num_workers: int = 0
    device: str | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        if self.out is None:
            raise ValueError("--out: the output folder is required")
        if (self.classifier is None) == (self.model is None):
            raise ValueError(
                "--classifier/--model: give exactly one: a train-classifier checkpoint "
                "or a model as for mlfem explain (--model SPEC [--weights W])"
            )
        if self.weights is not None and self.model is None:
            raise ValueError("--weights applies to --model, not to --classifier")
        if self.split_fractions is not None:
            fractions = tuple(float(f) for f in self.split_fractions)
            if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
                raise ValueError(
                    f"split fractions must be three numbers >= 0 summing to 1, got {fractions}"
                )
            if fractions[0] == 0 or fractions[1] == 0:
                raise ValueError("split fractions need a train and a val share above 0")
            self.split_fractions = fractions  # type: ignore[assignment]
        if self.resolution < 4 or self.resolution % 4:
            raise ValueError(f"resolution must be a positive multiple of 4, got {self.resolution}")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.map_batch_size < 1:
            raise ValueError("epochs, batch_size, patience and map_batch_size must be >= 1")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError("need lr > 0 and weight_decay >= 0")


@dataclass
class FusionRun(TrainingResult):
    """Result of :func:`train_fusion`: ``checkpoint`` (the NET), ``best_epoch``,
    ``best_metrics`` (validation MSE and PCC), ``history`` and ``comparison``."""

    #: Mean PCC on the val split of the NET and of the algebraic fusions (same cached maps).
    comparison: dict[str, float] = field(default_factory=dict)
