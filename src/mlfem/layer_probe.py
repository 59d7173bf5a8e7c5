"""Layer discovery by probing: one forward pass of a dummy input, for models that no static
rule of :mod:`mlfem.layers` recognises.

The activation modules (ReLU, GELU, SiLU, ...) that output feature maps are candidates, and
the last one of each resolution is kept: the end of each stage. A model whose first
convolution is 3-D (a video network) is probed with a clip (1, C, T, H, W), and its 5-D
feature volumes are the candidates; any other model with an image (1, C, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mlfem._classes import class_name

__all__ = [
    "EXAMPLE_INPUT_SHAPE_ATTRIBUTE", "PROBE_FRAMES", "format_names", "is_activation", "probe_input_shape",
    "probe_stage_ends",
]

#: Frames of the probe clip of a video network: enough for the temporal strides of
#: torchvision's video CNNs (8 frames become 1 after three temporal halvings).
PROBE_FRAMES = 8
#: Set on modules rebuilt from a torch.export program: the shape of the example input the
#: program was exported with, a valid probe input.
EXAMPLE_INPUT_SHAPE_ATTRIBUTE = "_mlfem_example_input_shape"

_ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Softplus,
)
# By class name too: modules replayed from TorchScript or rebuilt from exported programs.
_ACTIVATION_CLASS_NAMES = frozenset(kind.__name__ for kind in _ACTIVATION_TYPES)


def is_activation(module: nn.Module) -> bool:
    """Whether ``module`` is a point-wise non-linearity (ReLU, GELU, SiLU, ...)."""
    return isinstance(module, _ACTIVATION_TYPES) or class_name(module) in _ACTIVATION_CLASS_NAMES


def format_names(names: Sequence[str], limit: int = 40) -> str:
    """``names`` comma-separated, the first ``limit`` of them, for error messages."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names) - limit} more)"


def probe_input_shape(model: nn.Module, probe_size: tuple[int, int]) -> tuple[int, ...]:
    """The dummy input's shape: the exported example input when there is one, else one clip
    of :data:`PROBE_FRAMES` frames for a model whose first convolution is 3-D, else one image
    of ``probe_size`` = (H, W). Always 3 channels: a model may add input channels itself
    (coordinates, say), so its first convolution does not say what it takes."""
    example = getattr(model, EXAMPLE_INPUT_SHAPE_ATTRIBUTE, None)
    if example:
        return tuple(example)
    stem = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))), None)
    if isinstance(stem, nn.Conv3d):
        return (1, 3, PROBE_FRAMES, *probe_size)
    return (1, 3, *probe_size)


def probe_stage_ends(model: nn.Module, probe_size: tuple[int, int]) -> list[str]:
    """Run one dummy input and return the last activation module of each resolution.

    Raises:
        ValueError: no activation module outputs feature maps, or each is called more than
            once per forward pass; the message lists what to name instead.
    """
    shape = probe_input_shape(model, probe_size)
    # Images give 4-D feature maps, clips 5-D feature volumes.
    ndim = len(shape)
    kind = "4-D (B, C, H, W) feature map" if ndim == 4 else "5-D (B, C, T, H, W) feature volume"
    calls = [call for call in _probe_output_shapes(model, shape) if len(call[2]) == ndim]
    activations = [(name, shape) for name, module, shape in calls if is_activation(module)]
    if not activations:
        if calls:
            raise ValueError(
                f"could not choose layers automatically: no activation module (ReLU, GELU, ...) "
                f"produces a {kind}. Name the layers to explain explicitly, e.g. layers=[...]; "
                f"modules with {ndim}-D outputs: {format_names([n for n, _, _ in calls])}"
            )
        raise ValueError(
            f"the model produces no {kind} that FEM could read; "
            f"its modules are: {format_names([n for n, _ in model.named_modules() if n])}"
        )
    counts: dict[str, int] = {}
    for name, _ in activations:
        counts[name] = counts.get(name, 0) + 1
    # A module called several times per forward (a shared ReLU) has no single output.
    activations = [(name, shape) for name, shape in activations if counts[name] == 1]
    stage_ends: list[str] = []
    for (name, shape), following in zip(activations, activations[1:] + [None]):
        # A stage ends where the resolution, (H, W) or (T, H, W), changes.
        if following is None or tuple(following[1][2:]) != tuple(shape[2:]):
            stage_ends.append(name)
    if not stage_ends:
        raise ValueError(
            "could not choose layers automatically: every activation module is called more than "
            "once per forward pass. Name the blocks to explain explicitly."
        )
    return stage_ends


def _probe_output_shapes(
    model: nn.Module, shape: tuple[int, ...]
) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, module, output shape) of every module call during one forward pass of zeros."""
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    handles = []

    def record(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if isinstance(output, torch.Tensor):
                calls.append((name, module, tuple(output.shape)))

        return hook

    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(record(name)))
        with torch.inference_mode():
            try:
                model(torch.zeros(shape, device=device, dtype=dtype))
            except RuntimeError as error:  # a model that takes one input size only, say
                raise ValueError(
                    f"could not find the layers of {type(model).__name__} automatically: its "
                    f"forward pass failed on a probe {'clip' if len(shape) == 5 else 'image'} of shape "
                    f"{tuple(shape)} ({error}). "
                    "Name the layers explicitly (layers=[...]), or give find_layers or "
                    "LayerMapExtractor probe_size=(H, W) of your images"
                ) from error
    finally:
        for handle in handles:
            handle.remove()
    return calls
