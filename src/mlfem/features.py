"""Feature adapters: how one layer's output becomes the feature maps FEM reads.

FEM (docs/design-decisions.md §1) needs (B, C, H, W) activations with strong positive responses. A layer's
raw output is not always that: a block of a timm EfficientNet outputs a signed residual
stream (rectify it), a vision transformer outputs a token sequence (to be reshaped onto its
patch grid), a video network a 5-D tensor. An adapter is the single place where that
conversion happens; :class:`~mlfem.extractor.LayerMapExtractor` applies it inside each
layer's forward hook. A new kind of network is one adapter plus its test.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["ConvFeatureMap", "FeatureAdapter"]


@runtime_checkable
class FeatureAdapter(Protocol):
    """Turns a layer's output into (B, C, H, W) feature maps for FEM."""

    def __call__(self, output: Tensor, layer: str, rectify: bool) -> Tensor:
        """``output``: what the module ``layer`` returned; ``rectify``: clamp at 0 (the layer
        is not followed by its own non-linearity, or rectification was asked for)."""
        ...

    def describe(self) -> str:
        """A short name recorded with results and checked against trained fusions."""
        ...


class ConvFeatureMap:
    """CNN activations, already (B, C, H, W): checked, and clamped at 0 when asked."""

    def __call__(self, output: Tensor, layer: str, rectify: bool) -> Tensor:
        if not isinstance(output, Tensor) or output.ndim != 4:
            what = (f"a tensor of shape {tuple(output.shape)}" if isinstance(output, Tensor)
                    else f"a {type(output).__name__}")
            raise ValueError(
                f"layer {layer!r} produced {what}; FEM needs a 4-D (B, C, H, W) feature map"
            )
        return output.clamp(min=0) if rectify else output

    def describe(self) -> str:
        return "conv"
