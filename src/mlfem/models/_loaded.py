"""What loading a model yields, and its error: below both the loader and the checkpoint
formats (:mod:`mlfem.models.checkpoint` extends :class:`LoadedModel`), so neither imports
the other's module to get them."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mlfem.models.preprocessing import Preprocessing

__all__ = ["LoadedModel", "ModelLoadError"]


class ModelLoadError(ValueError):
    """The model or weights specification could not be honoured; the message says why."""


@dataclass
class LoadedModel:
    """A model ready to explain, with the preprocessing its weights expect."""

    model: nn.Module
    preprocessing: Preprocessing
    #: Human-readable origin, e.g. "torchvision resnet50 (ImageNet weights)".
    description: str
    #: False for random initialisation: explanations of such a model mean nothing.
    trained: bool
    #: Names of the output classes in index order, when the weights say (ImageNet: 1000).
    class_names: tuple[str, ...] | None = None
