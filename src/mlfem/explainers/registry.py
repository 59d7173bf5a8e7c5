"""Names of explanation methods, for the CLI and the evaluation.

A method is registered with a factory ``factory(model, **options) -> Explainer`` and a
one-line description. Factories import heavy libraries (captum, zennit) only when
called, so listing the methods stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from mlfem.explainers.base import Explainer

__all__ = ["MethodInfo", "available_methods", "create_explainer", "method_info", "register_method"]

ExplainerFactory = Callable[..., Explainer]


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: its name, a one-line description and its factory."""

    name: str
    description: str
    factory: ExplainerFactory
    #: True for methods that need gradients (they cannot run under inference mode).
    uses_gradients: bool = False


_METHODS: dict[str, MethodInfo] = {}
# Modules whose import registers further methods; imported on first look-up so that
# ``import mlfem`` does not pay for them.
_PLUGIN_MODULES: list[str] = ["mlfem.explainers._builtin", "mlfem.explainers._baselines"]
_plugins_loaded = False


def register_method(
    name: str, factory: ExplainerFactory, description: str, *, uses_gradients: bool = False
) -> None:
    """Register ``factory`` under ``name`` (replacing any earlier registration)."""
    _METHODS[name] = MethodInfo(name, description, factory, uses_gradients)


def add_plugin_module(module: str) -> None:
    """Import ``module`` (which calls :func:`register_method`) on the next registry look-up."""
    global _plugins_loaded
    if module not in _PLUGIN_MODULES:
        _PLUGIN_MODULES.append(module)
        _plugins_loaded = False


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    for module in _PLUGIN_MODULES:
        importlib.import_module(module)
    _plugins_loaded = True


def available_methods() -> list[MethodInfo]:
    """Every registered method, sorted by name."""
    _load_plugins()
    return [_METHODS[name] for name in sorted(_METHODS)]


def method_info(name: str) -> MethodInfo:
    """The registration of ``name``; a clear error listing the known names otherwise."""
    _load_plugins()
    try:
        return _METHODS[name]
    except KeyError:
        known = ", ".join(sorted(_METHODS))
        raise ValueError(f"unknown method {name!r}; available methods: {known}") from None


def create_explainer(name: str, model: nn.Module, **options: Any) -> Explainer:
    """Instantiate the method ``name`` on ``model``; ``options`` go to its factory."""
    return method_info(name).factory(model, **options)
