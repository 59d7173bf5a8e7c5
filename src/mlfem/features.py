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

from torch import Tensor, nn

from mlfem.transformers import TokenLayout, is_transformer, token_layout
from mlfem.video_transformers import VideoTokenFeatureMap, is_video_transformer, video_token_layout

__all__ = ["ConvFeatureMap", "FeatureAdapter", "TokenFeatureMap", "adapter_for", "observe_input"]


@runtime_checkable
class FeatureAdapter(Protocol):
    """Turns a layer's output into (B, C, H, W) feature maps for FEM ((B, C, T, H, W) for
    video networks)."""

    def __call__(self, output: Tensor, layer: str, rectify: bool) -> Tensor:
        """``output``: what the module ``layer`` returned; ``rectify``: clamp at 0 (the layer
        is not followed by its own non-linearity, or rectification was asked for)."""
        ...

    def describe(self) -> str:
        """A short name recorded with results and checked against trained fusions."""
        ...


def observe_input(adapter: object, images: Tensor) -> None:
    """Tell ``adapter`` the size of the input about to be run, if it wants to know (an
    adapter that needs it defines ``observe_input((H, W))``, as :class:`TokenFeatureMap`;
    for clips, ``observe_clip((T, H, W))``, as
    :class:`~mlfem.video_transformers.VideoTokenFeatureMap`)."""
    observe = getattr(adapter, "observe_input", None)
    if callable(observe):
        observe((int(images.shape[-2]), int(images.shape[-1])))
    observe_clip = getattr(adapter, "observe_clip", None)
    if callable(observe_clip) and images.ndim == 5:
        observe_clip(tuple(int(n) for n in images.shape[-3:]))


def adapter_for(model: nn.Module) -> FeatureAdapter:
    """The adapter ``model``'s layers need: tokens for a recognised vision transformer
    (:mod:`mlfem.transformers`), token volumes for a video transformer
    (:mod:`mlfem.video_transformers`), CNN maps otherwise."""
    if is_video_transformer(model):
        return VideoTokenFeatureMap(video_token_layout(model))
    return TokenFeatureMap(token_layout(model)) if is_transformer(model) else ConvFeatureMap()


class ConvFeatureMap:
    """CNN activations, already (B, C, H, W), or (B, C, T, H, W) for a 3-D CNN on clips:
    checked, and clamped at 0 when asked."""

    def __call__(self, output: Tensor, layer: str, rectify: bool) -> Tensor:
        if not isinstance(output, Tensor) or output.ndim not in (4, 5):
            what = (f"a tensor of shape {tuple(output.shape)}" if isinstance(output, Tensor)
                    else f"a {type(output).__name__}")
            raise ValueError(
                f"layer {layer!r} produced {what}; FEM needs a 4-D (B, C, H, W) feature map "
                "(or a 5-D (B, C, T, H, W) one for video)"
            )
        return output.clamp(min=0) if rectify else output

    def describe(self) -> str:
        return "conv"


class TokenFeatureMap:
    """A vision transformer's block outputs as (B, C, h, w) maps on its patch grid.

    * Token sequences (B, N, C): the prefix tokens (class, distillation, register) are
      dropped, their number read from the model (:class:`~mlfem.transformers.TokenLayout`),
      and the patch tokens reshaped onto the grid that the patch embedding gives the
      current input size (:meth:`observe_input`), so non-square inputs and other
      resolutions work. Sequences of a coarser stage (Swin's MLP, after patch merging) are
      put on the grid divided by the first power of two that matches their length.
    * Channels-last maps (B, H, W, C) (Swin's blocks): permuted to (B, C, H, W).
    * (B, C, H, W) maps of a model that is not channels-last pass unchanged.

    Args:
        layout: from :func:`mlfem.transformers.token_layout`.
    """

    def __init__(self, layout: TokenLayout) -> None:
        self.layout = layout
        self._size: tuple[int, int] | None = None

    def observe_input(self, size: tuple[int, int]) -> None:
        """Record the (H, W) of the input about to be run (the extractor calls it)."""
        self._size = (int(size[0]), int(size[1]))

    def __call__(self, output: Tensor, layer: str, rectify: bool) -> Tensor:
        if not isinstance(output, Tensor) or output.ndim not in (3, 4):
            what = (f"a tensor of shape {tuple(output.shape)}" if isinstance(output, Tensor)
                    else f"a {type(output).__name__}")
            raise ValueError(
                f"layer {layer!r} produced {what}; a transformer layer must give tokens "
                "(B, N, C) or a feature map (B, H, W, C)"
            )
        if output.ndim == 4:
            maps = output.permute(0, 3, 1, 2) if self.layout.channels_last else output
        else:
            maps = self._tokens_to_grid(output, layer)
        return maps.clamp(min=0) if rectify else maps

    def _tokens_to_grid(self, tokens: Tensor, layer: str) -> Tensor:
        if self._size is None:
            raise RuntimeError("TokenFeatureMap.observe_input((H, W)) must be called before the forward pass")
        batch, count, channels = tokens.shape
        height, width = self.layout.grid(self._size)
        declared = self.layout.prefix_tokens
        for factor in (1, 2, 4, 8, 16, 32, 64):
            h, w = -(-height // factor), -(-width // factor)
            # Undeclared (an exported program): the tokens beyond the grid, fewer than it.
            prefix = count - h * w if declared is None else declared
            if 0 <= prefix < count and count - prefix == h * w:
                patches = tokens[:, prefix:]
                return patches.transpose(1, 2).reshape(batch, channels, h, w)
        prefix = "an unknown number of" if declared is None else declared
        raise ValueError(
            f"layer {layer!r} produced {count} tokens, which do not fit the patch grid "
            f"{height}x{width} of a {self._size[0]}x{self._size[1]} input after "
            f"{prefix} prefix token(s); name a layer whose output is on the patch grid"
        )

    def describe(self) -> str:
        return "tokens"
