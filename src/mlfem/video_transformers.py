"""Video transformers: which blocks MLFEM reads and how their outputs become feature volumes.

Recognised by class name, as :mod:`mlfem.transformers` recognises image transformers (so
torchvision is never imported):

* torchvision ``MViT`` (``mvit_v2_s``; ``mvit_v1_b`` has the same blocks, untested): blocks
  ``blocks.<i>`` (``MultiscaleBlock``), which take and return ``(tokens, (t, h, w))``. The
  tokens are (B, 1 + t*h*w, C): one class token, then the patch tokens in (t, h, w) order.
  The grid is not in the tensor, and the forward hooks see only the tensor, so it is
  computed from the model: the positional encoding's grid (MViT accepts one clip size
  only), pooled by each block's query pooling;
* torchvision ``SwinTransformer3d`` (``swin3d_t``, ``swin3d_s``, ``swin3d_b``): blocks
  ``features.<s>.<i>`` (``SwinTransformerBlock``, the class 2-D Swin uses too), whose
  outputs are channels-last volumes (B, t, h, w, C).

:class:`VideoTokenFeatureMap` turns either into (B, C, t, h, w) volumes, which FEM reads as
a 3-D CNN's (docs/design-decisions.md §6, docs/video-models.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from mlfem._classes import class_name

__all__ = [
    "VideoTokenFeatureMap", "VideoTokenLayout", "is_video_transformer", "video_token_layout",
    "video_transformer_blocks",
]

# Whole models, or parts only they have, that identify each family.
_MVIT_MARKERS = frozenset({"MViT", "MultiscaleBlock"})
_SWIN3D_MARKERS = frozenset({"SwinTransformer3d", "PatchEmbed3d"})
_BLOCKS = {"mvit": frozenset({"MultiscaleBlock"}), "swin3d": frozenset({"SwinTransformerBlock"})}

Grid = tuple[int, int, int]


def _family(model: nn.Module) -> str | None:
    classes = {class_name(module) for module in model.modules()}
    if classes & _MVIT_MARKERS:
        return "mvit"
    if classes & _SWIN3D_MARKERS:
        return "swin3d"
    return None


def is_video_transformer(model: nn.Module) -> bool:
    """Whether ``model`` is a video transformer mlfem recognises (see the module docs)."""
    return bool(video_transformer_blocks(model))


def video_transformer_blocks(model: nn.Module) -> list[str]:
    """Names of every block of a recognised video transformer, in forward order; [] otherwise."""
    family = _family(model)
    if family is None:
        return []
    found: list[str] = []
    for name, module in model.named_modules():
        if name and class_name(module) in _BLOCKS[family] and not any(
            name.startswith(f + ".") for f in found
        ):
            found.append(name)
    return found


@dataclass(frozen=True)
class VideoTokenLayout:
    """How a video transformer's layer outputs lie on its (t, h, w) token grid.

    Attributes:
        prefix_tokens: class tokens before the patch tokens (1 for MViT, 0 for Swin3D).
        channels_last: 5-D outputs are (B, t, h, w, C) (Swin3D) rather than (B, C, t, h, w)
            (MViT's patch-embedding convolution).
        grids: for each block, ``(name, grid of its input, grid of its output)`` (MViT,
            whose token sequences do not carry their grid); empty for Swin3D.
        input_grid: the patch-embedding convolution's (kernel, stride, padding), each
            (t, h, w), and the grid the model was built for, when the model takes one clip
            size only (MViT); None otherwise.
    """

    prefix_tokens: int
    channels_last: bool
    grids: tuple[tuple[str, Grid, Grid], ...] = ()
    input_grid: tuple[Grid, Grid, Grid, Grid] | None = None

    def grid_for(self, layer: str, patches: int) -> Grid | None:
        """The grid of ``patches`` tokens output by ``layer``: the grids of the block that is
        or contains ``layer`` first (its output, then its input), then every other block's."""
        own = [e for e in self.grids if layer == e[0] or layer.startswith(e[0] + ".")]
        for _, grid_in, grid_out in own + list(self.grids):
            for grid in (grid_out, grid_in):
                if math.prod(grid) == patches:
                    return grid
        return None


def video_token_layout(model: nn.Module) -> VideoTokenLayout:
    """The :class:`VideoTokenLayout` of a recognised video transformer.

    Raises:
        ValueError: ``model`` is not a video transformer mlfem recognises.
    """
    family = _family(model)
    if family is None or not video_transformer_blocks(model):
        raise ValueError(f"{type(model).__name__} is not a video transformer that mlfem recognises")
    if family == "swin3d":
        return VideoTokenLayout(prefix_tokens=0, channels_last=True)
    return VideoTokenLayout(
        prefix_tokens=1, channels_last=False, grids=_mvit_grids(model),
        input_grid=_mvit_input(model),
    )


def _mvit_start(model: nn.Module) -> Grid | None:
    encoding = getattr(model, "pos_encoding", None)
    temporal = getattr(encoding, "temporal_size", None)
    spatial = getattr(encoding, "spatial_size", None)
    if temporal is None or spatial is None:
        return None  # a rebuilt (exported) module without the attributes
    return (int(temporal), int(spatial[0]), int(spatial[1]))


def _mvit_grids(model: nn.Module) -> tuple[tuple[str, Grid, Grid], ...]:
    """Each block's input and output grid, as MViT's forward computes them: it starts from
    the positional encoding's grid, and a block with query pooling outputs the pooled grid."""
    grid = _mvit_start(model)
    if grid is None:
        return ()
    modules = dict(model.named_modules())
    entries = []
    for block in video_transformer_blocks(model):
        pool = getattr(getattr(modules[block], "attn", None), "pool_q", None)
        pooling = getattr(pool, "pool", None)
        out = grid if pooling is None else _pooled(grid, pooling)
        entries.append((block, grid, out))
        grid = out
    return tuple(entries)


def _mvit_input(model: nn.Module) -> tuple[Grid, Grid, Grid, Grid] | None:
    conv = getattr(model, "conv_proj", None)
    start = _mvit_start(model)
    if conv is None or start is None:
        return None
    return (_triple(conv.kernel_size), _triple(conv.stride), _triple(conv.padding), start)


def _pooled(grid: Grid, pooling: nn.Module) -> Grid:
    """Output size of a 3-D convolution or max-pooling (floor rounding) on ``grid``."""
    kernel, stride = _triple(pooling.kernel_size), _triple(pooling.stride)
    padding = _triple(pooling.padding)
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(grid, kernel, stride, padding))


def _triple(value: object) -> Grid:
    if isinstance(value, int):
        return (value, value, value)
    first, second, third = tuple(value)  # type: ignore[arg-type]
    return (int(first), int(second), int(third))


class VideoTokenFeatureMap:
    """A video transformer's layer outputs as (B, C, t, h, w) feature volumes.

    * Token sequences (B, N, C) (MViT): the class token dropped, the patch tokens put on
      the layer's (t, h, w) grid (:meth:`VideoTokenLayout.grid_for`). A ``(tokens, (t, h, w))``
      tuple, what an MViT block returns, uses the grid it carries.
    * Channels-last volumes (B, t, h, w, C) (Swin3D): permuted to (B, C, t, h, w).
    * (B, C, t, h, w) volumes of a model that is not channels-last (MViT's patch
      embedding) pass unchanged.

    Args:
        layout: from :func:`video_token_layout`.
    """

    def __init__(self, layout: VideoTokenLayout) -> None:
        self.layout = layout

    def observe_clip(self, size: tuple[int, int, int]) -> None:
        """Check the clip's (T, H, W) against the one size an MViT accepts (the extractor
        calls it before the forward pass), so that a wrong size is named clearly rather than
        by a failed reshape deep inside the model."""
        if self.layout.input_grid is None:
            return
        kernel, stride, padding, expected = self.layout.input_grid
        grid = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding))
        if grid != expected:
            # The size MViT was built for: its grid times the embedding's stride.
            wanted = "x".join(str(g * s) for g, s in zip(expected, stride))
            raise ValueError(
                f"this MViT was built for clips of {wanted} (T x H x W) and accepts no other "
                f"size; got {'x'.join(str(n) for n in size)}: resample the clips to {wanted}"
            )

    def __call__(self, output: Tensor | tuple, layer: str, rectify: bool) -> Tensor:
        grid = None
        if isinstance(output, (tuple, list)) and len(output) == 2 and isinstance(output[0], Tensor):
            output, grid = output[0], tuple(int(n) for n in output[1])
        if not isinstance(output, Tensor) or output.ndim not in (3, 5):
            what = (f"a tensor of shape {tuple(output.shape)}" if isinstance(output, Tensor)
                    else f"a {type(output).__name__}")
            raise ValueError(
                f"layer {layer!r} produced {what}; a video transformer layer must give tokens "
                "(B, N, C) or a feature volume (B, T, H, W, C)"
            )
        if output.ndim == 5:
            volumes = output.permute(0, 4, 1, 2, 3) if self.layout.channels_last else output
        else:
            volumes = self._tokens_to_volume(output, layer, grid)
        return volumes.clamp(min=0) if rectify else volumes

    def _tokens_to_volume(self, tokens: Tensor, layer: str, grid: Grid | None) -> Tensor:
        batch, count, channels = tokens.shape
        prefix = self.layout.prefix_tokens
        patches = count - prefix
        if grid is None:
            grid = self.layout.grid_for(layer, patches)
        if grid is None or math.prod(grid) != patches:
            known = sorted({g for _, a, b in self.layout.grids for g in (a, b)})
            raise ValueError(
                f"layer {layer!r} produced {count} tokens, which after {prefix} class token(s) fit "
                f"none of the model's (t, h, w) token grids {known}; name a block's output"
            )
        # Tokens are in (t, h, w) order (the patch embedding's output flattened).
        return tokens[:, prefix:].transpose(1, 2).reshape(batch, channels, *grid)

    def describe(self) -> str:
        return "video-tokens"
