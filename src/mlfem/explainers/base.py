"""The base class every explainer derives from."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn

from mlfem.extractor import check_images, module_device

if TYPE_CHECKING:
    from mlfem.extractor import LayerMapExtractor

__all__ = ["Explainer", "Explanation"]


class Explanation(NamedTuple):
    """What :meth:`Explainer.explain_layers` returns for a batch."""

    #: (B, H, W) maps in [0, 1], as the explainer's call returns them.
    maps: Tensor
    #: (B, L, H, W) per-layer maps the result was fused from, for multi-layer methods (None
    #: otherwise).
    layer_maps: Tensor | None
    #: The model's output of the same forward pass, when the method exposes it (None
    #: otherwise: the caller runs the model itself if it needs the prediction).
    logits: Any


class Explainer(ABC):
    """An explanation method bound to a model.

    Calling the explainer on a batch of images (B, 3, H, W) returns saliency maps
    (B, H, W) with values in [0, 1], at the input resolution, on the input's device.
    Explainers leave the model as they found it: no hook survives a call, and no
    gradient state is left behind. They can be used as context managers; leaving the
    ``with`` block releases what the explainer holds.

    Subclasses implement :meth:`explain`.
    """

    #: Short registry name, e.g. ``"mlfem"``.
    name: str = "explainer"
    #: Whether the method depends on the target class (``targets`` is ignored otherwise).
    class_specific: bool = False

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        if model.training:
            warnings.warn(
                f"{type(model).__name__} is in training mode: batch-norm and dropout make "
                "explanations depend on the batch. Call model.eval() first.",
                stacklevel=3,
            )

    @abstractmethod
    def explain(self, images: Tensor, targets: Tensor | None = None) -> Tensor:
        """Saliency maps (B, H, W) in [0, 1] for images (B, 3, H, W)."""

    def __call__(self, images: Tensor, targets: Tensor | None = None) -> Tensor:
        return self.explain(images, targets)

    def explain_layers(self, images: Tensor, targets: Tensor | None = None) -> Explanation:
        """The maps with what produced them: the per-layer maps of multi-layer methods and
        the model's output when the method has it. Callers (the CLI, the evaluation) use
        this one method whatever the explainer."""
        return Explanation(self(images, targets), None, None)

    def layer_map_source(self) -> LayerMapExtractor | None:
        """The extractor this explainer's maps are fused from (None for methods that are not
        built on per-layer FEM maps). Explainers with extractors of equal ``settings`` can
        share one forward pass: see :meth:`fuse_layer_maps`."""
        return None

    def fuse_layer_maps(self, layer_maps: Tensor) -> Tensor:
        """The maps (B, H, W) from the per-layer maps of :meth:`layer_map_source`'s layers
        (B, L, H, W); only for explainers that have a layer-map source."""
        raise NotImplementedError(f"{type(self).__name__} is not built on per-layer maps")

    def close(self) -> None:
        """Release what the explainer holds. Hooks never outlive a call, so this only drops
        the reference to the model."""

    def __enter__(self) -> Explainer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Helpers for subclasses -----------------------------------------------------------

    @property
    def model_device(self) -> torch.device:
        """Device of the model's first parameter or buffer (CPU for a parameterless model)."""
        return module_device(self.model)

    @staticmethod
    def check_images(images: Tensor, argument: str = "images") -> None:
        """Raise a clear error unless ``images`` is a floating (B, C, H, W) tensor of finite
        pixels (:func:`mlfem.extractor.check_images`)."""
        check_images(images, argument)
