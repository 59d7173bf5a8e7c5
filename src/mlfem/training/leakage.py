"""Leakage guard: anything learned must be scored only on images it never saw (docs/design-decisions.md §5).

Every mlfem checkpoint records the dataset and the image ids it saw:

* a classifier: ``train_ids`` (gradient steps) and ``val_ids`` (model selection);
* a NET: its own ``train_ids``/``val_ids`` and, under ``classifier``, those of the
  classifier whose maps it fuses (roles ``classifier-train``/``classifier-val``).

:func:`check_leakage` compares them with the image ids about to be evaluated::

    report = check_leakage("synthetic", test_ids, [classifier_path, net_path])
    report.leaked, report.leaked_ids, report.overlaps, report.summary()

``mode="refuse"`` raises :class:`LeakageError` (a ``ValueError``) on any overlap;
``mode="flag"`` emits a :class:`LeakageWarning` and returns the report, for results that are
then marked as contaminated. Ids are compared only for checkpoints trained on the same
dataset (names compared case- and separator-insensitively, with the loaders' aliases).
Checkpoints that record no images (a torchvision or timm download, a bare state_dict) are
listed in ``report.unknown`` (with the reason); they never raise, since nothing is known.
For the synthetic benchmark an id is ``"<seed>-<index>"``: the same id with other generator
options is counted as an overlap (conservative).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlfem.datasets import image_id_space
from mlfem.models.checkpoint import CheckpointError, read_metadata

__all__ = [
    "ROLES",
    "LeakageError",
    "LeakageReport",
    "LeakageWarning",
    "SeenImages",
    "check_leakage",
    "find_overlap",
    "seen_images",
]

#: Roles of the ids a checkpoint records.
ROLES: tuple[str, ...] = ("train", "val", "classifier-train", "classifier-val")


class LeakageError(ValueError):
    """Evaluated images were seen by a checkpoint in training or validation."""


class LeakageWarning(UserWarning):
    """Evaluated images were seen by a checkpoint (``mode="flag"``)."""


@dataclass
class SeenImages:
    """What one checkpoint says it saw."""

    checkpoint: str
    kind: str  # "classifier", "net", or "unknown"
    dataset: str | None
    ids: dict[str, list[str]] = field(default_factory=dict)  # role -> image ids
    reason: str | None = None  # why nothing is known (kind "unknown")


@dataclass
class LeakageReport:
    """Overlap of evaluated image ids with what checkpoints saw (JSON-able with ``asdict``)."""

    dataset: str
    mode: str
    n_images: int
    roles: list[str]
    #: True when any evaluated id was seen in a checked role.
    leaked: bool
    #: The evaluated ids seen by any checkpoint, sorted.
    leaked_ids: list[str]
    #: checkpoint -> role -> overlapping ids (only non-empty overlaps).
    overlaps: dict[str, dict[str, list[str]]]
    #: checkpoint -> the other dataset it was trained on (ids not comparable).
    other_dataset: dict[str, str]
    #: checkpoint -> why its training images are unknown.
    unknown: dict[str, str]

    def summary(self) -> str:
        """One paragraph for logs and error messages."""
        if not self.leaked:
            text = (
                f"no leakage: none of the {self.n_images} {self.dataset} images was seen "
                "by a checkpoint"
            )
        else:
            parts = [
                f"{checkpoint}: "
                + ", ".join(f"{len(ids)} in its {role} ids" for role, ids in roles.items())
                for checkpoint, roles in self.overlaps.items()
            ]
            text = (
                f"LEAKAGE: {len(self.leaked_ids)} of the {self.n_images} evaluated {self.dataset} "
                f"images were seen by a checkpoint ({'; '.join(parts)}); "
                f"e.g. {', '.join(self.leaked_ids[:5])}. "
                "Evaluate on the test split (or images none of the checkpoints saw)."
            )
        if self.unknown:
            text += f" Training images unknown for: {', '.join(self.unknown)}."
        return text


def seen_images(checkpoint: Any) -> SeenImages:
    """The ids a checkpoint saw, by role.

    Args:
        checkpoint: a checkpoint path (``.safetensors`` or its ``.json`` sidecar), a loaded
            object with ``metadata`` (:class:`~mlfem.training.LoadedClassifier`,
            :class:`~mlfem.training.NetFusion`), or the metadata mapping itself.
    """
    label = _label(checkpoint)
    if isinstance(checkpoint, Mapping):
        metadata: Any = checkpoint
    elif isinstance(checkpoint, (str, Path)):
        try:
            metadata = read_metadata(checkpoint)
        except CheckpointError as error:
            return SeenImages(label, "unknown", None, reason=str(error))
    else:
        metadata = getattr(checkpoint, "metadata", None)
        if not isinstance(metadata, Mapping):
            return SeenImages(label, "unknown", None, reason="no mlfem metadata")
    fmt = str(metadata.get("format", ""))
    kind = (
        "net"
        if fmt.startswith("mlfem-net")
        else "classifier"
        if fmt.startswith("mlfem-classifier")
        else "unknown"
    )
    dataset = (metadata.get("dataset") or {}).get("name")
    ids = {role: list(metadata.get(f"{role}_ids") or []) for role in ("train", "val")}
    classifier = metadata.get("classifier") or {}
    if isinstance(classifier, Mapping):
        for role in ("train", "val"):
            if classifier.get(f"{role}_ids"):
                ids[f"classifier-{role}"] = list(classifier[f"{role}_ids"])
    if kind == "unknown" or "train_ids" not in metadata:
        return SeenImages(
            label, "unknown", dataset, reason="the checkpoint records no training images"
        )
    return SeenImages(label, kind, dataset, ids)


def find_overlap(
    dataset_name: str,
    image_ids: Iterable[str],
    checkpoints: Sequence[Any],
    roles: Sequence[str] = ROLES,
    mode: str = "flag",
) -> LeakageReport:
    """The overlap of ``image_ids`` with what ``checkpoints`` saw (no error, no warning)."""
    unknown_roles = [role for role in roles if role not in ROLES]
    if unknown_roles:
        raise ValueError(f"unknown roles {unknown_roles}; expected some of {ROLES}")
    evaluated = {str(i) for i in image_ids}
    target = _canonical(dataset_name)
    overlaps: dict[str, dict[str, list[str]]] = {}
    other: dict[str, str] = {}
    unknown: dict[str, str] = {}
    for checkpoint in checkpoints:
        seen = seen_images(checkpoint)
        if seen.kind == "unknown":
            unknown[seen.checkpoint] = seen.reason or "unknown"
            continue
        # A checkpoint that does not name its dataset is compared anyway (conservative).
        if seen.dataset is not None and _canonical(seen.dataset) != target:
            other[seen.checkpoint] = seen.dataset
            continue
        found = {role: sorted(evaluated.intersection(seen.ids.get(role, ()))) for role in roles}
        found = {role: ids for role, ids in found.items() if ids}
        if found:
            overlaps[seen.checkpoint] = found
    leaked_ids = sorted({i for roles_ in overlaps.values() for ids in roles_.values() for i in ids})
    return LeakageReport(
        dataset=dataset_name,
        mode=mode,
        n_images=len(evaluated),
        roles=list(roles),
        leaked=bool(leaked_ids),
        leaked_ids=leaked_ids,
        overlaps=overlaps,
        other_dataset=other,
        unknown=unknown,
    )


def check_leakage(
    dataset_name: str,
    image_ids: Iterable[str],
    checkpoints: Sequence[Any],
    mode: Literal["refuse", "flag"] = "refuse",
    roles: Sequence[str] = ROLES,
) -> LeakageReport:
    """Guard an evaluation against images seen by its checkpoints.

    Args:
        dataset_name: the evaluated dataset (``"salicon"``, ``"synthetic"``...).
        image_ids: the ids of the images to be scored.
        checkpoints: paths of the classifier / NET checkpoints involved (or loaded objects).
        mode: ``"refuse"`` raises :class:`LeakageError` on any overlap; ``"flag"`` warns
            (:class:`LeakageWarning`) and returns the report.
        roles: which recorded ids count (default all: train and val of the checkpoint and,
            for a NET, of its classifier).

    Returns:
        The :class:`LeakageReport` (also when nothing leaked).
    """
    if mode not in ("refuse", "flag"):
        raise ValueError(f"mode must be 'refuse' or 'flag', got {mode!r}")
    report = find_overlap(dataset_name, image_ids, checkpoints, roles, mode)
    if report.leaked:
        if mode == "refuse":
            raise LeakageError(report.summary())
        warnings.warn(report.summary(), LeakageWarning, stacklevel=2)
    return report


def _canonical(name: str) -> str:
    return image_id_space(name)


def _label(checkpoint: Any) -> str:
    if isinstance(checkpoint, (str, Path)):
        return str(checkpoint)
    path = getattr(checkpoint, "path", None)
    if path is not None:
        return str(path)
    if isinstance(checkpoint, Mapping):
        return str(checkpoint.get("weights_file", "<metadata>"))
    return type(checkpoint).__name__
