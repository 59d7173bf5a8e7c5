"""Explaining ``torch.export`` programs (``.pt2`` files).

An exported program is a flat graph. ``torch.export.unflatten`` rebuilds the module
hierarchy, so forward hooks fire by module name as on the original model, but every
rebuilt module is a generic ``InterpreterModule``: the class names that automatic layer
discovery relies on (``Bottleneck``, ``ReLU``, ``VGG``, ...) are gone. The graph still
records them, in each node's ``nn_module_stack`` metadata; :func:`unflatten_program`
copies them back onto the rebuilt modules, where :mod:`mlfem.layers` reads them. It
also records the program's example input shape: a program exported with static shapes
accepts only that shape, so layer discovery must probe with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mlfem.layers import (
    EXAMPLE_INPUT_SHAPE_ATTRIBUTE,
    ORIGINAL_CLASS_ATTRIBUTE,
    STATIC_INPUT_SHAPE_ATTRIBUTE,
)

if TYPE_CHECKING:
    from torch.export import ExportedProgram

__all__ = ["static_input_shape", "unflatten_program"]


def unflatten_program(program: ExportedProgram) -> nn.Module:
    """A callable, hookable module tree from an exported program, with class names kept."""
    model = torch.export.unflatten(program)
    class_names: dict[str, str] = {}
    for node in program.graph.nodes:
        for path, qualified_type in (node.meta.get("nn_module_stack") or {}).values():
            if isinstance(path, str) and isinstance(qualified_type, str):
                class_names.setdefault(path, qualified_type.rpartition(".")[2])
    # object.__setattr__: plain attributes, not registered as submodules or buffers.
    for name, module in model.named_modules():
        if name in class_names:
            object.__setattr__(module, ORIGINAL_CLASS_ATTRIBUTE, class_names[name])
    shape = _example_input_shape(program)
    if shape is not None:
        object.__setattr__(model, EXAMPLE_INPUT_SHAPE_ATTRIBUTE, shape)
    static = static_input_shape(program)
    if static is not None:
        object.__setattr__(model, STATIC_INPUT_SHAPE_ATTRIBUTE, static)
    return model


def static_input_shape(program: ExportedProgram) -> tuple[int | None, ...] | None:
    """The first user input's dimensions: an int where fixed, None where dynamic."""
    user_inputs = program.graph_signature.user_inputs
    if not user_inputs:
        return None
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name == user_inputs[0]:
            value = node.meta.get("val")
            if isinstance(value, torch.Tensor):
                return tuple(size if isinstance(size, int) else None for size in value.shape)
    return None


def _example_input_shape(program: ExportedProgram) -> tuple[int, ...] | None:
    """Shape of the program's first example input (saved with the program), if any."""
    example = getattr(program, "example_inputs", None)
    if not example:
        return None
    args, _ = example
    first = args[0] if args else None
    return tuple(first.shape) if isinstance(first, torch.Tensor) else None

