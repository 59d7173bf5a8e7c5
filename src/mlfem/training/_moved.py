"""Deprecation shims for modules that moved out of ``mlfem.training``.

Model-file formats went to :mod:`mlfem.models` and the NET operator to :mod:`mlfem.fusion`,
so that those lower layers never import the training code. The old module paths keep
working: importing one warns once (``DeprecationWarning``, naming the new path) and forwards
every name, private ones included, to the new module.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

__all__ = ["MOVED", "forward"]

#: Old module path -> new module path.
MOVED: dict[str, str] = {
    "mlfem.training.architectures": "mlfem.models.architectures",
    "mlfem.training.checkpoint": "mlfem.models.checkpoint",
    "mlfem.training.fusion_net": "mlfem.fusion.net",
}


def forward(namespace: dict[str, Any]) -> ModuleType:
    """Turn the shim whose globals are ``namespace`` into an alias of its new module.

    Warns (attributed to the importing code), copies the new module's public names (so
    ``from old import *`` and ``from old import name`` work) and installs a module
    ``__getattr__`` for anything else. Returns the new module.
    """
    old = namespace["__name__"]
    new = MOVED[old]
    warnings.warn(
        f"{old} is deprecated: it moved to {new}; import from there", DeprecationWarning,
        # 3: past this function and the shim's module code, to the importing statement
        # (the import machinery's own frames are skipped by the warnings module).
        stacklevel=3,
    )
    module = importlib.import_module(new)
    public = getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")])
    namespace.update({name: getattr(module, name) for name in public})
    namespace["__all__"] = list(public)

    def __getattr__(name: str) -> Any:
        return getattr(module, name)

    namespace["__getattr__"] = __getattr__
    return module
