"""FEM: the Feature Explanation Method on a single layer."""

from __future__ import annotations

from torch import Tensor, nn

from mlfem.explainers._layer_fem import LayerFEMExplainer
from mlfem.layers import find_layers
from mlfem.transformers import is_transformer

__all__ = ["FEM"]


class FEM(LayerFEMExplainer):
    """Single-layer FEM (Fuad et al. 2020): class-agnostic and gradient-free.

    Args:
        model: a CNN classifier, in eval mode.
        layer: module name to read (as in ``model.named_modules()``); by default the
            deepest block found by :func:`mlfem.layers.find_layers` (the last
            residual block of a ResNet).
        k: strong activations are those ``>= mean + k * std`` of their channel.
        rectify: clamp the layer's output at 0 before FEM (see :class:`~mlfem.MLFEM`).
        per_frame: for video clips, the channel statistics per frame instead of over the
            clip (:func:`mlfem.fem.fem_saliency`).

    Calling the explainer on images (B, 3, H, W) returns maps (B, H, W) in [0, 1] at
    the input resolution, on the input's device; on the clips (B, 3, T, H, W) of a 3-D
    CNN, maps (B, T, H, W), normalised per clip.
    """

    name = "fem"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        k: float = 2.0,
        rectify: bool = False,
        per_frame: bool = False,
    ) -> None:
        if layer is None:
            deepest = find_layers(model)[-1]
            layer = deepest.name
            # A transformer's blocks are read rectified by default (mlfem.layers); a named
            # layer is read as it is.
            rectify = rectify or (deepest.relu and is_transformer(model))
        elif not isinstance(layer, str):
            raise TypeError(f"layer must be a module name (str) or None, got {type(layer).__name__}")
        super().__init__(model, [layer], k=k, rectify=rectify, per_frame=per_frame)

    @property
    def layer_name(self) -> str:
        """The module whose output is explained."""
        return self.layers[0].name

    def explain(self, images: Tensor, targets: Tensor | None = None) -> Tensor:
        """FEM maps (B, H, W) in [0, 1]; ``targets`` is ignored (FEM is class-agnostic)."""
        return self.layer_maps(images).maps[:, 0]

    def fuse_layer_maps(self, layer_maps: Tensor) -> Tensor:
        """The one layer's map: (B, 1, H, W) -> (B, H, W)."""
        return layer_maps[:, 0]
