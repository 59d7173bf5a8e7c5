"""What a NET is trained for: a classifier checkpoint or any model ``mlfem explain`` takes.

:func:`load_source` loads the model whose per-layer FEM maps the NET will fuse and says how
to record it in the NET's sidecar (``classifier`` for a ``mlfem train-classifier``
checkpoint, ``model`` for a model spec such as ``efficientnet_lite0 --weights imagenet``);
both record the weights' fingerprint, which :class:`~mlfem.training.NetFusion` checks.
:func:`fusion_dataset_spec` decides the dataset and the splits file the NET trains on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mlfem.models.checkpoint import load_classifier, model_fingerprint, state_fingerprint
from mlfem.models.preprocessing import Preprocessing
from mlfem.training._data import DatasetSpec

if TYPE_CHECKING:
    from mlfem.training.fusion_config import FusionConfig

__all__ = ["FusionSource", "cast_fingerprints", "fusion_dataset_spec", "load_source"]

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclass
class FusionSource:
    """The model a NET is trained for, and how the NET records it."""

    model: nn.Module
    preprocessing: Preprocessing
    #: Fingerprint of the model's weights (:func:`~mlfem.training.model_fingerprint`).
    fingerprint: str
    #: ``"classifier"`` or ``"model"``: the sidecar key of :attr:`record`.
    kind: str
    #: What the NET's sidecar records under :attr:`kind` (fingerprint included).
    record: dict[str, Any]
    #: The dataset a classifier checkpoint records (None for a model spec).
    dataset: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """The checkpoint path or the model spec, for messages and the settings."""
        return str(self.record.get("path") or self.record.get("spec"))


def load_source(config: FusionConfig, device: torch.device) -> FusionSource:
    """Load ``config.classifier`` or ``config.model`` (+ ``config.weights``) on ``device``.

    Raises:
        ValueError: neither or both given, or the model cannot be loaded (the message
            names the argument).
    """
    if (config.classifier is None) == (config.model is None):
        raise ValueError(
            "--classifier/--model: give exactly one: a train-classifier checkpoint "
            "(--classifier CKPT) or a model as for mlfem explain (--model SPEC [--weights W])"
        )
    if config.classifier is not None:
        if config.weights is not None:
            raise ValueError("--weights applies to --model, not to --classifier")
        loaded = load_classifier(config.classifier, device=device)
        metadata = loaded.metadata
        record = {
            "path": str(Path(config.classifier).resolve()),
            "fingerprint": loaded.fingerprint,
            "architecture": metadata.get("architecture"),
            "dataset": (metadata.get("dataset") or {}).get("name"),
            "train_ids": metadata.get("train_ids", []),
            "val_ids": metadata.get("val_ids", []),
        }
        return FusionSource(
            loaded.model,
            loaded.preprocessing,
            loaded.fingerprint,
            "classifier",
            record,
            dataset=metadata.get("dataset"),
        )
    from mlfem.models import load_model

    # ModelLoadError is a ValueError whose message names --model or --weights.
    loaded_model = load_model(str(config.model), config.weights, device=device)
    fingerprint = model_fingerprint(loaded_model.model)
    p = loaded_model.preprocessing
    record = {
        "spec": _resolved(str(config.model)),
        "weights": None if config.weights is None else _resolved(config.weights),
        "description": loaded_model.description,
        "trained": loaded_model.trained,
        "fingerprint": fingerprint,
        # The same weights cast for inference (mlfem explain --dtype) are the same model.
        "cast_fingerprints": cast_fingerprints(loaded_model.model),
        "input": {"size": p.crop_size, "mean": list(p.mean), "std": list(p.std), "fit": "whole"},
    }
    return FusionSource(loaded_model.model, p, fingerprint, "model", record)


def fusion_dataset_spec(config: FusionConfig, source: FusionSource, out: Path) -> DatasetSpec:
    """The dataset and splits file a NET trains on.

    For a classifier they default to the classifier's (so the NET's train/val images are
    the classifier's and its ``test`` split stays unseen by both); a model spec needs the
    dataset (``--dataset``), and its splits file defaults to ``out/splits.json``, made on
    first use from ``split_seed`` and ``split_fractions`` (default 0.8/0.1/0.1).
    """
    recorded = source.dataset
    if recorded is not None and config.dataset in (None, recorded["name"]):
        spec = DatasetSpec.from_dict(recorded)
        if config.root is not None:
            spec.root = str(Path(config.root).resolve())
        if config.dataset_options:
            spec = replace(spec, options={**spec.options, **config.dataset_options})
    elif config.dataset is None:
        what = (
            f"{config.classifier} records no dataset"
            if source.kind == "classifier"
            else "a NET for --model is trained on a dataset with gaze data"
        )
        raise ValueError(f"--dataset: {what}: pass --dataset NAME (and --root DIR)")
    else:
        spec = DatasetSpec(
            config.dataset,
            config.root,
            dict(config.dataset_options or {}),
            None,
            0,
            tuple(config.split_fractions or DEFAULT_FRACTIONS),  # type: ignore[arg-type]
        )
    if config.split_fractions is not None:
        spec.split_fractions = tuple(float(f) for f in config.split_fractions)  # type: ignore[assignment]
    if config.splits is not None:
        spec.splits = str(Path(config.splits).resolve())
    elif spec.splits is None:
        spec.splits = str((out / "splits.json").resolve())
    if config.split_seed is not None:
        spec.split_seed = int(config.split_seed)
    return spec


def cast_fingerprints(
    model: nn.Module, dtypes: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)
) -> dict[str, str]:
    """Fingerprints of ``model``'s weights after ``model.to(dtype)`` (floating tensors cast,
    others kept), by dtype name: what a float32 model cast for inference hashes to."""
    state = model.state_dict()
    return {
        str(dtype).removeprefix("torch."): state_fingerprint(
            {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        )
        for dtype in dtypes
    }


def _resolved(value: str) -> str:
    """An existing file as an absolute path; anything else (a name, ``imagenet``) unchanged."""
    path = Path(value)
    return str(path.resolve()) if path.is_file() else value
