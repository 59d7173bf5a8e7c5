"""Which layers MLFEM reads: automatic discovery of a CNN's blocks, or names given by the user.

FEM is meant to read a block's output *after* its non-linearity (docs/design-decisions.md §1). The
rules below pick, per architecture family:

* ResNet / ResNeXt / Wide-ResNet (torchvision and timm): every residual block
  (16 bottlenecks in ResNet-50, 8 basic blocks in ResNet-18);
* VGG: the end of each convolutional stage, i.e. the ReLU just before each max-pool;
* DenseNet: each dense block after its batch-norm + ReLU, which is the ReLU inside
  the following transition, and ``features.norm5`` for the last block (torchvision
  applies that ReLU functionally, so the map is rectified here);
* MobileNetV2/V3, EfficientNet: every inverted-residual / MBConv block, then the
  final 1x1 convolution block (the last layer with a non-linearity);
* ConvNeXt (torchvision and timm): every ConvNeXt block;
* video CNNs (torchvision ``r3d_18``, ``mc3_18``, ``r2plus1d_18``: every residual block;
  ``s3d``: every separable inception block), whose blocks output (B, C, T, H, W) volumes;
* vision transformers (timm ViT, DeiT, EVA, BEiT, Swin; torchvision ViT and Swin, see
  :mod:`mlfem.transformers`): every transformer block, rectified (``layers="auto-signed"``:
  as they are; ``layers="auto-mlp"``: the non-linearity of every block's MLP instead);
  video transformers (torchvision ``mvit_v2_s``, ``swin3d_t/s/b``, see
  :mod:`mlfem.video_transformers`) likewise, their outputs read as (B, C, T, H, W) volumes.

Any other model is probed with one forward pass (:mod:`mlfem.layer_probe`): the activation
modules (ReLU, GELU, SiLU, ...) producing feature maps are candidates, and the last one of
each resolution is kept (the end of each stage).

Block outputs are not always rectified: timm's EfficientNet/MobileNet blocks end with a
linear projection (no activation) plus the skip connection, so their outputs are signed.
``rectify=True`` (or ``layers="auto-rectified"``) clamps every read layer at 0 before FEM,
as FEM's premise of non-negative features requires; the default reads them as they are
(docs/real-network.md measures both on a real network).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mlfem._classes import ORIGINAL_CLASS_ATTRIBUTE, class_name  # noqa: F401 - re-exported
from mlfem.layer_probe import (  # noqa: F401 - EXAMPLE_INPUT_SHAPE_ATTRIBUTE re-exported
    EXAMPLE_INPUT_SHAPE_ATTRIBUTE,
    format_names,
    is_activation,
    probe_stage_ends,
)
from mlfem.transformers import mlp_activations, transformer_blocks

__all__ = [
    "AUTO_MLP", "AUTO_MLP_RECTIFIED", "AUTO_RECTIFIED", "AUTO_SIGNED", "LayerSpec", "auto_reading",
    "find_layers", "fixed_batch_size", "resolve_layers",
]

# ORIGINAL_CLASS_ATTRIBUTE (mlfem._classes): set on modules rebuilt from a torch.export
# program or replayed from TorchScript. On exported programs also: the shape of the example
# input the program was exported with (a valid probe input), and the input's static
# dimensions (int where fixed, None where dynamic), since a program exported with static
# shapes accepts no other.
STATIC_INPUT_SHAPE_ATTRIBUTE = "_mlfem_static_input_shape"


def fixed_batch_size(model: nn.Module) -> int | None:
    """The only batch size ``model`` accepts, for an exported program with a static batch."""
    static = getattr(model, STATIC_INPUT_SHAPE_ATTRIBUTE, None)
    return static[0] if static and isinstance(static[0], int) else None

# Residual-style blocks, by class name so that torchvision and timm (whose classes
# share these names) are covered without importing either library.
_BLOCK_CLASS_NAMES = frozenset(
    {
        "BasicBlock",  # ResNet-18/34 (torchvision, timm)
        "Bottleneck",  # ResNet-50+, ResNeXt, Wide-ResNet (torchvision, timm)
        "InvertedResidual",  # MobileNetV2/V3 (torchvision), timm MobileNets
        "MBConv",  # EfficientNet (torchvision)
        "FusedMBConv",  # EfficientNetV2 (torchvision)
        "CNBlock",  # ConvNeXt (torchvision)
        "ConvNeXtBlock",  # ConvNeXt (timm)
        "SepInceptionBlock3D",  # S3D (torchvision video); r3d/mc3/r2plus1d use BasicBlock
    }
)
# The final 1x1 conv + norm + activation of MobileNet / EfficientNet's ``features``.
_HEAD_CONV_CLASS_NAMES = frozenset({"Conv2dNormActivation"})
@dataclass(frozen=True)
class LayerSpec:
    """A layer FEM reads: a module name, and whether its output must be rectified first.

    ``relu`` is set for modules whose output the network passes through a functional
    ReLU before use (torchvision DenseNet's ``features.norm5``), and for every layer
    when rectification is asked for (``resolve_layers(..., rectify=True)``).
    """

    name: str
    relu: bool = False


def find_layers(model: nn.Module, probe_size: tuple[int, int] = (224, 224)) -> list[LayerSpec]:
    """Discover the blocks of ``model`` that MLFEM reads, in forward order.

    Args:
        model: the network.
        probe_size: (H, W) of the dummy image used only for models that no static rule
            recognises (one forward pass of a single image).

    Raises:
        ValueError: the model produces no 4-D feature map; the message lists candidates.
    """
    for rule in _STATIC_RULES:
        layers = rule(model)
        if layers:
            return layers
    return [LayerSpec(name) for name in probe_stage_ends(model, probe_size)]


#: ``layers`` value meaning "the automatic layers, rectified" (for the command line).
AUTO_RECTIFIED = "auto-rectified"
#: ``layers`` value meaning "the MLP hidden activations of every transformer block".
AUTO_MLP = "auto-mlp"
#: ``layers`` value meaning "the MLP hidden activations, rectified".
AUTO_MLP_RECTIFIED = "auto-mlp-rectified"
#: ``layers`` value meaning "the automatic layers exactly as the modules output them" (a
#: transformer's block outputs unrectified, which ``auto`` rectifies; docs/methods.md).
AUTO_SIGNED = "auto-signed"


def auto_reading(layers: object) -> tuple[str, bool | None] | None:
    """For an automatic ``layers`` value, which automatic layers (``"auto"`` or ``"auto-mlp"``)
    and whether they are rectified: True (all), False (none: ``auto-signed``) or None (as
    discovery says); None for explicit module names."""
    if not isinstance(layers, str):
        return None
    return {"auto": ("auto", None), AUTO_RECTIFIED: ("auto", True), AUTO_SIGNED: ("auto", False),
            AUTO_MLP: (AUTO_MLP, None), AUTO_MLP_RECTIFIED: (AUTO_MLP, True)}.get(layers.strip())


def resolve_layers(
    model: nn.Module,
    layers: str | Sequence[str] | None = "auto",
    probe_size: tuple[int, int] = (224, 224),
    *,
    rectify: bool = False,
) -> list[LayerSpec]:
    """Turn a user's ``layers`` argument into layer specs.

    Args:
        layers: ``"auto"`` (or None) for :func:`find_layers`; ``"auto-rectified"`` for
            the same layers with ``rectify=True``; ``"auto-mlp"`` (``"auto-mlp-rectified"``)
            for the non-linearity of every transformer block's MLP (rectified); ``"auto-signed"``
            for the automatic layers with no rectification at all; a comma-separated string or a
            sequence of module names (as in ``model.named_modules()``) to override it.
            Explicit names keep the order given; fusion treats it as forward order.
        rectify: clamp every layer's output at 0 before FEM (``LayerSpec.relu``), for
            networks whose blocks output signed features (timm EfficientNet/MobileNet
            residual streams). Off by default: the paper reads block outputs as they are.

    Raises:
        ValueError: an unknown module name; the message lists candidate layers.
    """
    reading = auto_reading(layers)
    if reading is not None:
        layers, rectify = reading[0], rectify or bool(reading[1])
    if layers == AUTO_MLP:
        blocks = transformer_blocks(model)
        if not blocks:
            raise ValueError(
                f"layers={AUTO_MLP!r} reads the MLP activations of a vision transformer's blocks; "
                f"{type(model).__name__} is not a transformer mlfem recognises (use 'auto')"
            )
        layers = mlp_activations(model, blocks)
    specs = _resolve(model, layers, probe_size)
    if rectify:
        specs = [LayerSpec(spec.name, relu=True) for spec in specs]
    elif reading is not None and reading[1] is False:
        specs = [LayerSpec(spec.name) for spec in specs]
    return specs


def _resolve(
    model: nn.Module, layers: str | Sequence[str] | None, probe_size: tuple[int, int]
) -> list[LayerSpec]:
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            "TorchScript modules do not support forward hooks, which FEM needs to read layer "
            "outputs. Wrap it with mlfem.models.torchscript.replay_script_module(module) (what "
            "load_model and --model do for TorchScript files), or use torch.export (.pt2)."
        )
    if layers is None or (isinstance(layers, str) and layers == "auto"):
        return find_layers(model, probe_size)
    names = [part.strip() for part in layers.split(",")] if isinstance(layers, str) else list(layers)
    names = [name for name in names if name]
    if not names:
        raise ValueError(
            "layers: expected 'auto', 'auto-rectified' or at least one module name, got nothing"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"layers: each module may be named once; repeated: {', '.join(duplicates)}")
    modules = dict(model.named_modules())
    unknown = [name for name in names if name not in modules or name == ""]
    if unknown:
        raise ValueError(_unknown_layer_message(model, unknown, modules))
    # Keep the rectification flag that auto-discovery would give the same module where the
    # network rectifies it functionally (DenseNet); a transformer's rectification is a reading
    # that "auto" chooses, and named blocks are read as they are.
    auto_flags = {spec.name: spec.relu for spec in _static_layers(model, _CNN_RULES)}
    return [LayerSpec(name, auto_flags.get(name, False)) for name in names]


def _static_layers(model: nn.Module, rules: tuple = ()) -> list[LayerSpec]:
    for rule in rules or _STATIC_RULES:
        layers = rule(model)
        if layers:
            return layers
    return []


def _transformer_blocks(model: nn.Module) -> list[LayerSpec]:
    """Every block of a vision transformer (mlfem.transformers), whose outputs are tokens
    or channels-last maps that mlfem.features.TokenFeatureMap puts on the patch grid.

    Rectified: a block outputs the signed residual stream, and on a ViT trained on the
    synthetic benchmark FEM on the rectified outputs beat the outputs as they are, the MLP
    activations and attention rollout (docs/methods.md, benchmarks/vit_features.py)."""
    return [LayerSpec(name, relu=True) for name in transformer_blocks(model)]


def _residual_blocks(model: nn.Module) -> list[LayerSpec]:
    blocks: list[str] = []
    for name, module in model.named_modules():
        if _class_name(module) not in _BLOCK_CLASS_NAMES:
            continue
        # Keep outermost blocks only (a block nested inside another is part of it).
        if any(name.startswith(parent + ".") for parent in blocks):
            continue
        blocks.append(name)
    if not blocks:
        return []
    layers = [LayerSpec(name) for name in blocks]
    head = _head_conv_after(model, blocks[-1])
    if head is not None:
        layers.append(LayerSpec(head))
    return layers


def _head_conv_after(model: nn.Module, last_block: str) -> str | None:
    """MobileNet/EfficientNet: the final conv-norm-activation following the last block."""
    parent_name, _, _ = last_block.rpartition(".")
    # Blocks sit either directly in ``features`` (MobileNet) or in stages inside it
    # (EfficientNet: features.<stage>.<block>); the head conv is a sibling of the
    # outermost container's children.
    top = parent_name.split(".")[0] if parent_name else ""
    if not top:
        return None
    container = model.get_submodule(top)
    children = list(container.named_children())
    if not children:
        return None
    last_name, last_module = children[-1]
    if _class_name(last_module) in _HEAD_CONV_CLASS_NAMES and _has_activation(last_module):
        candidate = f"{top}.{last_name}"
        if not last_block.startswith(candidate + ".") and candidate != last_block:
            return candidate
    return None


def _has_activation(module: nn.Module) -> bool:
    return any(is_activation(child) for child in module.modules())


_class_name = class_name


def _vgg_stages(model: nn.Module) -> list[LayerSpec]:
    if _class_name(model) != "VGG":
        return []
    features = getattr(model, "features", None)
    if features is None or _class_name(features) != "Sequential":
        return []
    children = list(features.named_children())
    stage_ends: list[LayerSpec] = []
    for (name, module), (_, following) in zip(children, children[1:]):
        if _class_name(module) == "ReLU" and _class_name(following) == "MaxPool2d":
            stage_ends.append(LayerSpec(f"features.{name}"))
    return stage_ends


def _densenet_blocks(model: nn.Module) -> list[LayerSpec]:
    if _class_name(model) != "DenseNet":
        return []
    layers = [
        LayerSpec(f"{name}.relu")
        for name, module in model.named_modules()
        if _class_name(module) == "_Transition" and hasattr(module, "relu")
    ]
    modules = dict(model.named_modules())
    if "features.norm5" in modules:
        layers.append(LayerSpec("features.norm5", relu=True))
    return layers


_CNN_RULES = (_residual_blocks, _vgg_stages, _densenet_blocks)
_STATIC_RULES = (_transformer_blocks, *_CNN_RULES)


def _unknown_layer_message(model: nn.Module, unknown: list[str], modules: dict[str, nn.Module]) -> str:
    all_names = [name for name in modules if name]
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, all_names, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    candidates = [spec.name for spec in _static_layers(model)]
    listed = candidates if candidates else all_names
    label = "candidate layers" if candidates else "modules"
    return (
        f"unknown layer {', '.join(parts)} in {type(model).__name__}; "
        f"{label}: {format_names(listed)}"
    )
