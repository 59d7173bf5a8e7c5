"""Checkpoints: weights in safetensors, everything else in a JSON sidecar.

A checkpoint is a pair of files with the same stem::

    classifier.safetensors   the state_dict (never pickled: safetensors only)
    classifier.json          format, architecture, class names, preprocessing, training
                             settings, dataset, training image ids, fingerprint, history

The *fingerprint* is a SHA-256 over the state_dict's names, dtypes, shapes and bytes
(sorted by name). It identifies the weights independently of how the file was written,
can be recomputed from a model in memory, and is checked on every load, so a weights file
and a sidecar that do not belong together (a torn write, a copied file) are refused.
A NET records its classifier's fingerprint to refuse fusing maps of another classifier.

The files are written by ``mlfem.training`` (``train-classifier``, ``train-fusion``) and read
here, below it, so that loading a model never imports the training code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlfem._atomic import replacing
from mlfem.models._loaded import LoadedModel
from mlfem.models.architectures import rebuild_classifier
from mlfem.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

__all__ = [
    "CLASSIFIER_FORMAT",
    "NET_FORMAT",
    "CheckpointError",
    "LoadedClassifier",
    "load_classifier",
    "model_fingerprint",
    "read_checkpoint",
    "read_metadata",
    "save_checkpoint",
    "save_classifier",
    "sidecar_path",
    "state_fingerprint",
    "weights_path",
    "write_json_atomic",
]

CLASSIFIER_FORMAT = "mlfem-classifier/1"
NET_FORMAT = "mlfem-net/1"

#: Attribute set on models loaded from a checkpoint: the fingerprint of the weights they
#: were loaded with (kept when the model is later cast to another dtype).
FINGERPRINT_ATTRIBUTE = "mlfem_fingerprint"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, of another kind, or inconsistent."""


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a checkpoint given by its weights or sidecar path."""
    return Path(path).with_suffix(".json")


def weights_path(path: str | Path) -> Path:
    """The safetensors file of a checkpoint given by its weights or sidecar path."""
    return Path(path).with_suffix(".safetensors")


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of a state_dict: names, dtypes, shapes and raw bytes, sorted by name."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        # Bytes through a uint8 view: works for every dtype, bfloat16 included.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_fingerprint(model: nn.Module) -> str:
    """The fingerprint of a model's weights.

    A model loaded from an mlfem checkpoint carries the fingerprint of that checkpoint
    (so casting it to float16 for inference keeps its identity); any other model is
    fingerprinted from its current state_dict.
    """
    recorded = getattr(model, FINGERPRINT_ATTRIBUTE, None)
    if isinstance(recorded, str):
        return recorded
    return state_fingerprint(model.state_dict())


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON through a temporary file and a rename: readers never see half a file."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def save_checkpoint(
    path: str | Path, state: Mapping[str, torch.Tensor], metadata: Mapping[str, Any], kind: str
) -> dict[str, Any]:
    """Write ``state`` to ``path`` (.safetensors) and ``metadata`` to its JSON sidecar.

    The sidecar gets ``format`` (``kind``), ``fingerprint`` and ``weights_file`` added;
    the completed metadata is returned. Both files are written atomically, weights first,
    so an interrupted save leaves the previous pair or a pair that fails the fingerprint
    check, never a silently mismatched one.
    """
    from safetensors.torch import save_file

    path = weights_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Own, contiguous CPU copies: safetensors refuses shared or strided storage.
    tensors = {name: value.detach().to("cpu").contiguous().clone() for name, value in state.items()}
    fingerprint = state_fingerprint(tensors)
    full = {"format": kind, **dict(metadata), "fingerprint": fingerprint, "weights_file": path.name}
    with replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": kind, "fingerprint": fingerprint})
    write_json_atomic(sidecar_path(path), full)
    return full


def read_metadata(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint's JSON sidecar (cheap: the weights are not read).

    Args:
        path: the checkpoint's ``.safetensors`` or ``.json`` path.
        kind: the expected ``format`` (:data:`CLASSIFIER_FORMAT`, :data:`NET_FORMAT`), or
            None to accept any mlfem checkpoint.
    """
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise CheckpointError(
            f"{path}: no JSON sidecar {sidecar.name} beside it; an mlfem checkpoint is a "
            ".safetensors file plus a .json file with the same stem"
        )
    try:
        metadata = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{sidecar}: not a readable JSON file ({error})") from error
    found = metadata.get("format") if isinstance(metadata, dict) else None
    if not isinstance(found, str) or not found.startswith("mlfem-"):
        raise CheckpointError(f"{sidecar}: not an mlfem checkpoint sidecar (no mlfem 'format')")
    if kind is not None and found != kind:
        raise CheckpointError(f"{sidecar}: is a {found!r} checkpoint, expected {kind!r}")
    return metadata


def read_checkpoint(path: str | Path, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint's state_dict and metadata, checking its format and fingerprint."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    metadata = read_metadata(path, kind)
    weights = sidecar_path(path).with_name(metadata.get("weights_file") or weights_path(path).name)
    if not weights.is_file():
        raise CheckpointError(f"{sidecar_path(path)}: its weights file {weights} is missing")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({error})") from error
    fingerprint = state_fingerprint(state)
    if fingerprint != metadata.get("fingerprint"):
        raise CheckpointError(
            f"{weights}: its weights do not match the fingerprint recorded in "
            f"{sidecar_path(path).name} (the two files come from different saves)"
        )
    return state, metadata


# --------------------------------------------------------------------------- classifiers
@dataclass
class LoadedClassifier(LoadedModel):
    """A classifier rebuilt from an mlfem checkpoint: a :class:`~mlfem.models.LoadedModel`
    (so ``load_model`` can return it) plus what the checkpoint records."""

    #: The checkpoint's weights file.
    path: Path = field(default_factory=Path)
    #: The sidecar's content (architecture, class_names, multi_label, preprocessing,
    #: training, dataset, train_ids, val_ids, fingerprint, ...).
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # ``class_names`` is a field of LoadedModel: filled from the checkpoint's record.
        if self.class_names is None and "class_names" in self.metadata:
            self.class_names = list(self.metadata["class_names"])  # type: ignore[assignment]

    @property
    def fingerprint(self) -> str:
        return str(self.metadata["fingerprint"])

    @property
    def multi_label(self) -> bool:
        return bool(self.metadata["multi_label"])


def save_classifier(
    path: str | Path,
    model: nn.Module,
    architecture: dict[str, Any],
    class_names: list[str],
    multi_label: bool,
    preprocessing: Preprocessing,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Save a classifier checkpoint; ``extra`` adds metadata (training settings, dataset,
    ``train_ids``, ``val_ids``, validation metrics...). Returns the written metadata."""
    metadata: dict[str, Any] = {
        "architecture": architecture,
        "class_names": list(class_names),
        "multi_label": bool(multi_label),
        "preprocessing": {
            "crop_size": preprocessing.crop_size,
            "resize_size": preprocessing.resize_size,
            "mean": list(preprocessing.mean),
            "std": list(preprocessing.std),
            "interpolation": preprocessing.interpolation,
            "fit": preprocessing.fit,
        },
        **dict(extra or {}),
    }
    return save_checkpoint(path, model.state_dict(), metadata, CLASSIFIER_FORMAT)


def load_classifier(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> LoadedClassifier:
    """Rebuild a classifier saved by ``mlfem train-classifier`` and load its weights.

    The model is in eval mode on ``device``/``dtype`` and carries its checkpoint fingerprint
    (``model.mlfem_fingerprint``, see :func:`model_fingerprint`).

    Raises:
        CheckpointError: missing or inconsistent files, unknown architecture.
    """
    state, metadata = read_checkpoint(path, CLASSIFIER_FORMAT)
    try:
        model = rebuild_classifier(metadata["architecture"])
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: cannot rebuild the classifier: {error}") from error
    setattr(model, FINGERPRINT_ATTRIBUTE, metadata["fingerprint"])
    model = model.to(device=device, dtype=dtype).eval()
    p = metadata.get("preprocessing", {})
    preprocessing = Preprocessing(
        crop_size=int(p.get("crop_size", 224)),
        resize_size=int(p.get("resize_size", p.get("crop_size", 256))),
        mean=tuple(p.get("mean", IMAGENET_MEAN)),
        std=tuple(p.get("std", IMAGENET_STD)),
        interpolation=str(p.get("interpolation", "bilinear")),
        fit=p.get("fit", "whole"),
        source=f"mlfem checkpoint {Path(path).name}",
    )
    architecture = metadata["architecture"]
    description = (
        f"{architecture['name']} fine-tuned on {metadata.get('dataset', {}).get('name', '?')} "
        f"({len(metadata['class_names'])} classes, {Path(path).name})"
    )
    return LoadedClassifier(
        model=model,
        preprocessing=preprocessing,
        description=description,
        trained=True,
        path=weights_path(path),
        metadata=metadata,
    )
