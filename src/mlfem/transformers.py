"""What mlfem needs to know about a vision transformer, read from the model itself.

Recognised by class name (so timm and torchvision are never imported, and ``torch.export``
programs, whose modules keep their original class names, are recognised too):

* timm ``VisionTransformer`` (ViT, DeiT, DeiT distilled, register ViTs), ``Eva`` (EVA,
  EVA-02), ``Beit``: blocks ``blocks.<i>``; tokens (B, N, C) with ``num_prefix_tokens``
  class/distillation/register tokens first;
* timm ``SwinTransformer``/``SwinTransformerV2``: blocks ``layers.<s>.blocks.<i>``,
  channels-last (B, H, W, C);
* torchvision ``VisionTransformer`` (``vit_b_16``...): blocks
  ``encoder.layers.encoder_layer_<i>``, tokens (B, 1 + N, C) after one class token;
* torchvision ``SwinTransformer`` (``swin_t``, ``swin_v2_t``...): blocks
  ``features.<s>.<i>``, channels-last;
* video transformers (torchvision ``MViT``, ``SwinTransformer3d``): their blocks are listed
  here too, and :mod:`mlfem.video_transformers` says how their outputs lie on the clip.

:func:`transformer_blocks` lists the blocks (every one, in forward order),
:func:`mlp_activations` the non-linearity inside each block's MLP, and
:func:`token_layout` what :class:`mlfem.features.TokenFeatureMap` needs to put tokens back
on the image grid: how many prefix tokens to drop and how the patch embedding maps an
input size to a grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from mlfem._classes import class_name
from mlfem.video_transformers import (
    is_video_transformer,
    video_token_layout,
    video_transformer_blocks,
)

__all__ = [
    "TokenLayout", "gradient_layer", "is_transformer", "mlp_activations", "token_layout",
    "transformer_blocks",
]

# Block classes whose outputs are tokens (B, N, C).
_TOKEN_BLOCKS = frozenset({"Block", "EvaBlock", "ResPostBlock", "ParallelScalingBlock", "EncoderBlock"})
# Block classes whose outputs are channels-last maps (B, H, W, C).
_SWIN_BLOCKS = frozenset(
    {"SwinTransformerBlock", "SwinTransformerV2Block", "SwinTransformerBlockV2"}
)
# Whole models (or a patch embedding) that make a generic block name ("Block") a
# transformer block rather than some CNN's building block.
_TRANSFORMER_MARKERS = frozenset(
    {"VisionTransformer", "VisionTransformerDistilled", "Eva", "Beit", "SwinTransformer",
     "SwinTransformerV2", "PatchEmbed"}
)


@dataclass(frozen=True)
class TokenLayout:
    """How a transformer's block outputs lie on the image grid.

    Attributes:
        prefix_tokens: class/distillation/register tokens before the patch tokens, as the
            model declares them (timm ``num_prefix_tokens``, torchvision's class token);
            None when the model does not say (an exported program): then inferred as the
            tokens in excess of the patch grid.
        kernel, stride, padding: the patch embedding's convolution, (H, W) each.
        pad_to_stride: the embedding pads the input to a multiple of the stride first
            (timm ``dynamic_img_pad``).
        channels_last: blocks output (B, H, W, C) maps (Swin) instead of token sequences.
    """

    prefix_tokens: int | None
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    pad_to_stride: bool = False
    channels_last: bool = False

    def grid(self, size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the patch grid for an input of ``size`` (H, W)."""
        cells = []
        for extent, kernel, stride, padding in zip(size, self.kernel, self.stride, self.padding):
            if self.pad_to_stride:
                extent = math.ceil(extent / stride) * stride
            cells.append(max((extent + 2 * padding - kernel) // stride + 1, 0))
        return cells[0], cells[1]


def _outermost(model: nn.Module, names: frozenset[str]) -> list[str]:
    found: list[str] = []
    for name, module in model.named_modules():
        if name and class_name(module) in names and not any(name.startswith(f + ".") for f in found):
            found.append(name)
    return found


def is_transformer(model: nn.Module) -> bool:
    """Whether ``model`` is a vision transformer mlfem recognises (see the module docs)."""
    return bool(transformer_blocks(model))


def transformer_blocks(model: nn.Module) -> list[str]:
    """Names of every transformer block of ``model`` in forward order; [] for other models."""
    video = video_transformer_blocks(model)  # before Swin: Swin3D's blocks share its class
    if video:
        return video
    swin = _outermost(model, _SWIN_BLOCKS)
    if swin:
        return swin
    classes = {class_name(module) for module in model.modules()}
    if not classes & _TRANSFORMER_MARKERS and "EncoderBlock" not in classes and "EvaBlock" not in classes:
        return []
    return _outermost(model, _TOKEN_BLOCKS)


def mlp_activations(model: nn.Module, blocks: list[str]) -> list[str]:
    """The non-linearity of each block's MLP (timm ``mlp.act``; torchvision's first
    activation inside ``mlp``): its output is the MLP's hidden layer, (B, N, 4C), the
    closest analogue of a CNN's post-ReLU maps. For SwiGLU MLPs (EVA-02) that is the gate's
    SiLU, before the product with the other branch."""
    modules = dict(model.named_modules())
    names = []
    for block in blocks:
        mlp = f"{block}.mlp"
        if f"{mlp}.act" in modules:
            names.append(f"{mlp}.act")
            continue
        children = [n for n in modules if n.startswith(mlp + ".") and n.count(".") == mlp.count(".") + 1]
        acts = [n for n in children if class_name(modules[n]) in {"GELU", "SiLU", "ReLU", "QuickGELU"}]
        if not acts:
            raise ValueError(f"block {block!r} has no MLP activation that mlfem recognises")
        names.append(acts[0])
    return names


def gradient_layer(model: nn.Module) -> str | None:
    """The block whose output a gradient method (Grad-CAM, LayerCAM, CS-FEM) reads by default
    on a transformer, None for other models. With a class token, the prediction reads only
    that token of the last block's output, so the patch tokens there get no gradient: the
    last block's *input* (the block before it) is read instead, as pytorch-grad-cam advises
    (its ``blocks[-1].norm1``, before the norm). Without prefix tokens: the last block."""
    blocks = transformer_blocks(model)
    if not blocks:
        return None
    video = is_video_transformer(model)
    prefix = (video_token_layout(model) if video else token_layout(model)).prefix_tokens
    return blocks[-2] if len(blocks) > 1 and prefix != 0 else blocks[-1]


def token_layout(model: nn.Module) -> TokenLayout:
    """Where ``model``'s patch tokens are and how its patch grid follows the input size.

    Raises:
        ValueError: ``model`` is not a recognised transformer, or has no patch convolution.
    """
    blocks = transformer_blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} is not a vision transformer that mlfem recognises")
    if is_video_transformer(model):
        raise ValueError(
            f"{type(model).__name__} is a video transformer: its tokens lie on a (T, H, W) grid "
            "(mlfem.video_transformers.video_token_layout), and this method reads image grids"
        )
    modules = dict(model.named_modules())
    conv_name = next(
        (name for name in ("patch_embed.proj", "conv_proj", "features.0.0") if name in modules), None
    )
    if conv_name is None:
        conv_name = next((n for n, m in modules.items() if class_name(m) == "Conv2d"), None)
    if conv_name is None:
        raise ValueError(f"{type(model).__name__} has no patch-embedding convolution mlfem can find")
    conv = modules[conv_name]
    weight = getattr(conv, "weight", None)
    kernel = _pair(getattr(conv, "kernel_size", None) or tuple(weight.shape[-2:]))
    stride = _pair(getattr(conv, "stride", None) or kernel)
    padding = getattr(conv, "padding", (0, 0))
    padding = _pair(padding) if not isinstance(padding, str) else (0, 0)
    embed = modules.get(conv_name.rpartition(".")[0]) if "." in conv_name else None
    pad = bool(getattr(embed, "dynamic_img_pad", False)) if embed is not None else False
    return TokenLayout(
        prefix_tokens=_declared_prefix_tokens(model),
        kernel=kernel,
        stride=stride,
        padding=padding,
        pad_to_stride=pad,
        channels_last=class_name(modules[blocks[0]]) in _SWIN_BLOCKS,
    )


def _declared_prefix_tokens(model: nn.Module) -> int | None:
    """The model's own count of non-patch tokens; the outermost module that declares it."""
    for module in model.modules():
        count = getattr(module, "num_prefix_tokens", None)
        if isinstance(count, int):
            return count
        if class_name(module) == "VisionTransformer" and isinstance(
            getattr(module, "class_token", None), nn.Parameter
        ):
            return 1  # torchvision: one class token, prepended in forward
        if class_name(module) in ("SwinTransformer", "SwinTransformerV2"):
            return 0
    return None


def _pair(value: object) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = tuple(value)  # type: ignore[arg-type]
    return int(first), int(second)
