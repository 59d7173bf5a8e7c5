"""The base class every explainer derives from."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from types import TracebackType

import torch
from torch import Tensor, nn

__all__ = ["Explainer"]


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
        for tensor in (*self.model.parameters(), *self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    @staticmethod
    def check_images(images: Tensor, argument: str = "images") -> None:
        """Raise a clear error unless ``images`` is a floating (B, C, H, W) tensor."""
        if not isinstance(images, Tensor):
            raise TypeError(f"{argument} must be a torch.Tensor (B, 3, H, W), got {type(images).__name__}")
        if images.ndim != 4:
            raise ValueError(
                f"{argument} must have shape (B, C, H, W); got {tuple(images.shape)}"
                + (" (add a batch dimension with images.unsqueeze(0))" if images.ndim == 3 else "")
            )
        if images.shape[0] == 0:
            raise ValueError(f"{argument} is an empty batch")
        if not images.is_floating_point():
            raise TypeError(
                f"{argument} must be floating point (normalised as the model expects), got {images.dtype}"
            )
