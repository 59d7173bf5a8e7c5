"""Classifier architectures to fine-tune: torchvision or timm models with a new head, or a
small CNN.

An architecture is described by a JSON-able *spec* recorded in the checkpoint, from which
:func:`rebuild_classifier` makes the same module (random weights, nothing downloaded) for
the saved state_dict (:func:`mlfem.models.starting.build_classifier` makes a fresh one to
fine-tune, from starting weights)::

    {"name": "resnet50", "library": "torchvision", "num_classes": 80, "head": "fc"}
    {"name": "tf_efficientnet_lite0", "library": "timm", "num_classes": 5, "head": "classifier"}
    {"name": "small-cnn", "library": "mlfem", "num_classes": 6, "options": {"widths": [...]}}
    {"name": "small-cnn3d", "library": "mlfem", "num_classes": 6, "options": {"widths": [...]}}

A pretrained start also records the input normalisation its weights expect
(``"normalization": {"mean": [...], "std": [...]}``), which training then uses.
timm models are named ``timm:<name>``, or by an alias of a network whose ImageNet weights
install with mlfem (``efficientnet_lite0``, :data:`mlfem.models.pretrained.OFFLINE_TIMM_NAMES`).
torchvision and timm are imported only when one of their architectures is asked for.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

__all__ = [
    "SMALL_CNN",
    "SMALL_CNN3D",
    "BasicBlock",
    "SmallCNN",
    "SmallCNN3d",
    "create_timm_model",
    "find_head",
    "fresh_timm_model",
    "fresh_torchvision_model",
    "rebuild_classifier",
    "replace_head",
    "timm_name",
]

SMALL_CNN = "small-cnn"
SMALL_CNN3D = "small-cnn3d"


class SmallCNN(nn.Module):
    """A small CNN for fast CPU runs: one conv-BN-ReLU stage per resolution, then a linear head.

    Stage ``i`` is a 3x3 convolution to ``widths[i]`` channels (stride 2 in the first stage,
    which keeps the cost of full-resolution layers away), batch-norm and ReLU, followed by
    2x2 max-pooling except after the last stage. MLFEM's automatic layer discovery (last
    activation of each resolution) therefore finds one layer per stage,
    ``features.stage1.relu`` ... ``features.stageN.relu``, at 1/2, 1/4, 1/8... of the input.
    With the default widths (16, 32, 64, 128): about 100 k parameters.
    """

    def __init__(self, num_classes: int, widths: Sequence[int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        if num_classes < 1 or not widths or min(widths) < 1:
            raise ValueError("SmallCNN needs num_classes >= 1 and positive widths")
        self.widths = [int(w) for w in widths]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = 3
        for index, width in enumerate(self.widths, start=1):
            layers[f"stage{index}"] = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(
                        channels, width, 3, stride=2 if index == 1 else 1, padding=1, bias=False
                    ),
                    bn=nn.BatchNorm2d(width),
                    # Not in place: FEM reads this output in a hook.
                    relu=nn.ReLU(),
                )
            )
            if index < len(self.widths):
                layers[f"pool{index}"] = nn.MaxPool2d(2)
            channels = width
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


class BasicBlock(nn.Module):
    """A 3-D residual block: two 3x3x3 conv-BN, a projection shortcut when the shape changes,
    then ReLU (the layout of torchvision's video ResNets).

    The class is named ``BasicBlock`` on purpose: :func:`mlfem.layers.find_layers` recognises
    residual blocks by class name (torchvision's r3d_18 blocks share it), so MLFEM reads every
    block's rectified output without probing the model.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_channels)
        # Not in place: FEM and Grad-CAM read this output in a hook.
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels or any(s != 1 for s in stride):
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallCNN3d(nn.Module):
    """A small 3-D CNN for clips (B, 3, T, H, W), fast enough to train on a CPU in minutes.

    A 3x3x3 conv-BN-ReLU stem to ``widths[0]`` channels halving H and W, then one
    :class:`BasicBlock` per width: the first halves H and W again, the others halve T, H and W
    (time is kept whole early, where the maps must follow motion frame by frame), then global
    average pooling and a linear head. MLFEM's layer discovery finds ``blocks.1`` ...
    ``blocks.N``, at 1/4, 1/8, 1/16... of the frame size. With the default widths
    (16, 32, 64): about 0.2 M parameters; any clip length and frame size >= 16 work.
    """

    def __init__(self, num_classes: int, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        if num_classes < 1 or not widths or min(widths) < 1:
            raise ValueError("SmallCNN3d needs num_classes >= 1 and positive widths")
        self.widths = [int(w) for w in widths]
        self.stem = nn.Sequential(
            OrderedDict(
                conv=nn.Conv3d(3, self.widths[0], 3, stride=(1, 2, 2), padding=1, bias=False),
                bn=nn.BatchNorm3d(self.widths[0]),
                relu=nn.ReLU(),
            )
        )
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        channels = self.widths[0]
        for index, width in enumerate(self.widths, start=1):
            stride = (1, 2, 2) if index == 1 else (2, 2, 2)
            blocks[str(index)] = BasicBlock(channels, width, stride)
            channels = width
        self.blocks = nn.Sequential(blocks)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5:
            raise ValueError(f"SmallCNN3d takes clips (B, 3, T, H, W), got shape {tuple(x.shape)}")
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


def find_head(model: nn.Module) -> str:
    """Name of the classification head: the last ``nn.Linear`` registered in the model.

    That is ``fc`` for ResNet/RegNet/Inception, ``classifier.6`` for VGG,
    ``classifier`` for DenseNet, ``classifier.<last>`` for MobileNet/EfficientNet/ConvNeXt,
    ``heads.head`` for ViT.
    """
    name = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name = module_name
    if name is None:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear layer to replace with a new head; "
            "architectures whose classifier is a convolution (SqueezeNet) are not supported"
        )
    return name


def replace_head(model: nn.Module, num_classes: int, head: str | None = None) -> str:
    """Replace the model's final linear layer by a new one with ``num_classes`` outputs.

    Returns the name of the replaced module. The new layer uses PyTorch's default
    initialisation, drawn from the global RNG (seed it first for reproducibility).
    """
    name = head or find_head(model)
    old = model.get_submodule(name)
    if not isinstance(old, nn.Linear):
        raise ValueError(f"{name} is a {type(old).__name__}, not an nn.Linear head")
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
    return name


def rebuild_classifier(spec: dict[str, Any]) -> nn.Module:
    """The module described by an architecture spec, with random weights (to load a state into)."""
    try:
        library, name, num_classes = spec["library"], spec["name"], int(spec["num_classes"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"incomplete architecture spec {spec!r}") from error
    if library == "mlfem" and name == SMALL_CNN:
        return SmallCNN(num_classes, **spec.get("options", {}))
    if library == "mlfem" and name == SMALL_CNN3D:
        return SmallCNN3d(num_classes, **spec.get("options", {}))
    if library == "torchvision":
        model = fresh_torchvision_model(name)
    elif library == "timm":
        model = fresh_timm_model(f"timm:{name}", name, spec.get("options"))
    else:
        raise ValueError(f"unknown architecture {library}:{name}")
    replace_head(model, num_classes, spec.get("head"))
    return model


def timm_name(architecture: str) -> str | None:
    """The timm model name of ``timm:<name>`` or of an installed-weights alias, else None."""
    from mlfem.models.pretrained import OFFLINE_TIMM_NAMES

    if architecture.startswith("timm:"):
        return architecture.removeprefix("timm:")
    return OFFLINE_TIMM_NAMES.get(architecture)


def fresh_timm_model(spec: str, name: str, options: dict[str, Any] | None = None) -> nn.Module:
    """timm's ``name`` with random weights (``spec``: how the user named it, for errors;
    ``options``: keyword arguments of the architecture, e.g. a small ViT's ``depth``)."""
    try:
        import timm
    except ImportError as error:  # pragma: no cover - timm is a dependency
        raise ValueError(f"{spec}: timm is not installed") from error
    if not timm.is_model(name):
        raise ValueError(f"{spec!r}: {name!r} is not a timm architecture (see timm.list_models())")
    try:
        return create_timm_model(name, pretrained=False, **(options or {}))
    except TypeError as error:
        raise ValueError(f"{spec!r}: timm's {name} does not take the options {options}: {error}") from error


# timm families whose patch embedding and position embedding follow the input size when
# built with dynamic_img_size=True (same weights; at the native size the same outputs), and
# those that also pad an input to a multiple of the patch size (dynamic_img_pad).
_DYNAMIC_SIZE_FAMILIES = frozenset({"vision_transformer", "deit", "eva", "swin_transformer", "swin_transformer_v2"})
_DYNAMIC_PAD_FAMILIES = frozenset({"vision_transformer", "deit", "eva"})


def create_timm_model(name: str, pretrained: bool = False, **options: Any) -> nn.Module:
    """``timm.create_model``, with ``dynamic_img_size=True`` for the vision transformers
    that support it (and ``dynamic_img_pad=True`` for ViT, DeiT and EVA), so that they
    explain inputs of any size and aspect ratio."""
    import timm

    family = timm.models.model_entrypoint(name).__module__.rpartition(".")[2]
    if family in _DYNAMIC_SIZE_FAMILIES:
        options.setdefault("dynamic_img_size", True)
    if family in _DYNAMIC_PAD_FAMILIES:
        options.setdefault("dynamic_img_pad", True)
    return timm.create_model(name, pretrained=pretrained, **options)


def fresh_torchvision_model(name: str) -> nn.Module:
    """torchvision's classification model ``name`` with random weights."""
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(
            f"{name!r} is neither {SMALL_CNN!r}, {SMALL_CNN3D!r}, timm:<name>, nor a torchvision classification "
            "model (see torchvision.models.list_models())"
        )
    return torchvision.models.get_model(name, weights=None)
