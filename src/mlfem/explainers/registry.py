"""Names of explanation methods, for the CLI and the evaluation.

An explainer class registers itself with the :func:`register_explainer` decorator, which
reads the method's ``name``, ``description`` and gradient flag (``needs_gradients``) from
the class::

    @register_explainer
    class MyCAM(GradientExplainer):
        name = "mycam"
        description = "my CAM on the last block"

A factory ``factory(model, **options) -> Explainer`` can also be registered directly with
:func:`register_method`.  Explainer modules import heavy libraries (captum, zennit) only
when a method first runs, and this registry imports the explainer modules only on the
first look-up, so ``import mlfem`` and listing the methods stay cheap.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from mlfem._discovery import import_public_modules
from mlfem.explainers.base import Explainer

__all__ = [
    "MethodInfo",
    "available_methods",
    "create_explainer",
    "explainer_class",
    "method_info",
    "register_explainer",
    "register_method",
]

ExplainerFactory = Callable[..., Explainer]
E = TypeVar("E", bound=type)


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: its name, a one-line description and its factory."""

    name: str
    description: str
    factory: ExplainerFactory
    #: True for methods that need gradients (they cannot run under inference mode).
    uses_gradients: bool = False
    #: True for methods that read a list of layers (the FEM family's ``layers`` option):
    #: the evaluation gives them its layers, and other methods keep their own layer.
    reads_layers: bool = False
    #: Options the method cannot do without (``mlfem-net`` needs ``net``, a trained file):
    #: such a method is never built with default options.
    requires: tuple[str, ...] = ()
    #: The option names the method accepts (its constructor's or factory's parameters);
    #: None when they cannot be known (a factory taking ``**options`` and naming none).
    options: tuple[str, ...] | None = None


_METHODS: dict[str, MethodInfo] = {}
# Registered explainer classes by class name, for the lazy ``mlfem.explainers.<Class>``.
_CLASSES: dict[str, type] = {}
# Modules whose import registers further methods, imported on first look-up so that
# ``import mlfem`` does not pay for them: every public module of this package (where
# decorated classes live, so a new method is one file) and the FEM family's factories.
_PLUGIN_MODULES: list[str] = ["mlfem.explainers._builtin"]
_plugins_loaded = False


def register_method(
    name: str,
    factory: ExplainerFactory,
    description: str,
    *,
    uses_gradients: bool = False,
    reads_layers: bool = False,
    requires: tuple[str, ...] = (),
    options: tuple[str, ...] | None = None,
) -> None:
    """Register ``factory`` under ``name`` (replacing any earlier registration).

    ``options`` are the option names the method accepts (so that a misspelled one can be
    refused); by default, the factory's keyword parameters after the model, or None (not
    known) when it also takes ``**options``.
    """
    if options is None:
        options = _parameters(factory)
    _METHODS[name] = MethodInfo(
        name, description, factory, uses_gradients, reads_layers, tuple(requires),
        None if options is None else tuple(options),
    )


def _parameters(function: Callable[..., Any], skip: int = 1) -> tuple[str, ...] | None:
    """Keyword parameters of ``function`` after its first ``skip``; None with ``**kwargs``."""
    try:
        parameters = list(inspect.signature(function).parameters.values())[skip:]
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in parameters if p.kind in keyword)


def register_explainer(cls: E) -> E:
    """Class decorator: register an :class:`Explainer` subclass as a method.

    The method's name is the class's ``name``, its one-line description the class's
    ``description`` (else the first line of its docstring), and it needs gradients when the
    class says so (``needs_gradients``, or ``uses_gradients``), as ``reads_layers`` does for
    the evaluation's layer list (:class:`MethodInfo`).  The factory passes on the
    options the constructor accepts and ignores the others, so a caller (the CLI) can give
    one options dict to every method; a class that takes one ``layer`` (and no ``layers``)
    also accepts ``layers`` naming exactly one module (``"auto"``: its default layer).
    """
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} must define its own method name (a class attribute 'name')")
    description = cls.__dict__.get("description") or (inspect.getdoc(cls) or name).splitlines()[0]
    gradients = getattr(cls, "needs_gradients", getattr(cls, "uses_gradients", False))
    accepted = _parameters(cls.__init__, skip=2)  # after self and model
    if accepted is not None and "layer" in accepted and "layers" not in accepted:
        accepted = (*accepted, "layers")  # one module, see _single_layer
    register_method(
        name, _class_factory(cls), description,
        uses_gradients=bool(gradients), reads_layers=bool(getattr(cls, "reads_layers", False)),
        options=accepted,
    )
    _CLASSES[cls.__name__] = cls
    return cls


def _class_factory(cls: type) -> ExplainerFactory:
    parameters = inspect.signature(cls.__init__).parameters
    accepted = {name for name in parameters if name not in ("self", "model")}
    single_layer = "layer" in accepted and "layers" not in accepted

    def factory(model: nn.Module, **options: Any) -> Explainer:
        if single_layer:
            options = _single_layer(dict(options), cls.name)
        return cls(model, **{key: value for key, value in options.items() if key in accepted})

    factory.__doc__ = f"Create a {cls.__name__} on ``model``; unknown options are ignored."
    return factory


def _single_layer(options: dict[str, Any], method: str) -> dict[str, Any]:
    """Map a ``layers`` option onto ``layer`` for methods that read one layer."""
    layers = options.pop("layers", None)
    if options.get("layer") is not None or layers is None:
        return options
    if isinstance(layers, str):
        names = [part.strip() for part in layers.split(",") if part.strip()]
        if names == ["auto"]:
            return options
    else:
        names = list(layers)
    if len(names) != 1:
        raise ValueError(f"{method} reads a single layer; got {len(names)} layer names: {', '.join(map(str, names))}")
    options["layer"] = names[0]
    return options


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
    import_public_modules(__package__, Path(__file__).parent)
    for module in _PLUGIN_MODULES:
        importlib.import_module(module)
    _plugins_loaded = True


def explainer_class(name: str) -> type | None:
    """The registered explainer class called ``name`` (``"GradCAM"``), None if there is none."""
    _load_plugins()
    return _CLASSES.get(name)


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
