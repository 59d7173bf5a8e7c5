"""A module's class name, as written or as it was before ``torch.export``/TorchScript.

Modules rebuilt from a ``torch.export`` program (:mod:`mlfem.models.exported`) or replayed
from TorchScript (:mod:`mlfem.models.torchscript`) are all of generic classes; the class each
had originally is kept in an attribute, which layer discovery and the transformer support read.
"""

from __future__ import annotations

from torch import nn

__all__ = ["ORIGINAL_CLASS_ATTRIBUTE", "class_name"]

ORIGINAL_CLASS_ATTRIBUTE = "_mlfem_original_class"


def class_name(module: nn.Module) -> str:
    """The module's class name, or the one it had before export or TorchScript."""
    return getattr(module, ORIGINAL_CLASS_ATTRIBUTE, None) or type(module).__name__
