"""Explaining TorchScript files: replaying their code through hookable Python modules.

TorchScript modules take no forward hooks, and FEM needs the outputs of inner blocks.
But a loaded TorchScript module still carries, for every submodule, its class name
(``original_name``) and the source of its methods (``.code``), printed as Python. So
:func:`replay_script_module` builds a tree of ordinary ``nn.Module`` proxies mirroring the
TorchScript hierarchy, with the same names:

* a module with children runs its own TorchScript code, executed as Python, in which
  every call to a child's method goes through that child proxy's ``__call__``, so the
  child's forward hooks fire with its real output;
* a module without children calls its compiled TorchScript method directly.

The arithmetic is the TorchScript module's own (the same operators, in the same order),
and :func:`replay_script_module` checks that on a probe input: the replayed output must
equal the TorchScript module's. Code that uses a construct the replay does not know is
refused with a message pointing to ``torch.export``.
"""

from __future__ import annotations

import importlib
import math
import operator
import re
import types
import typing
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mlfem.layers import ORIGINAL_CLASS_ATTRIBUTE

__all__ = ["ScriptReplayError", "replay_script_module"]


class ScriptReplayError(RuntimeError):
    """The TorchScript code uses a construct the replay cannot run."""


def replay_script_module(
    script: torch.jit.ScriptModule, probe: torch.Tensor | None = None
) -> nn.Module:
    """A hookable ``nn.Module`` computing what ``script`` computes.

    Args:
        script: a TorchScript module (``torch.jit.load``, ``torch.jit.script`` or
            ``torch.jit.trace``).
        probe: an input to check the replay with; the replayed output must equal the
            TorchScript output (skipped when the TorchScript module itself rejects it).

    Raises:
        ScriptReplayError: the code cannot be replayed, or the check fails.
    """
    proxy = _ScriptProxy(script)
    if probe is not None:
        with torch.inference_mode():
            try:
                expected = script(probe)
            except Exception:  # noqa: BLE001 - the probe does not suit this model: no check
                return proxy
            try:
                replayed = proxy(probe)
            except Exception as error:
                raise ScriptReplayError(f"replaying the TorchScript code failed: {type(error).__name__}: {error}") from error
        if not _same(expected, replayed):
            raise ScriptReplayError("the replayed TorchScript code does not reproduce the module's output")
    return proxy


def _same(first: Any, second: Any) -> bool:
    if isinstance(first, torch.Tensor):
        return isinstance(second, torch.Tensor) and torch.equal(first, second)
    if isinstance(first, (tuple, list)):
        # TorchScript returns its own NamedTuple classes: compare as sequences.
        return (
            isinstance(second, (tuple, list)) and len(first) == len(second) and all(map(_same, first, second))
        )
    if isinstance(first, dict):
        return isinstance(second, dict) and first.keys() == second.keys() and all(_same(first[k], second[k]) for k in first)
    return first == second


class _ScriptProxy(nn.Module):
    """One TorchScript module, as an ordinary module whose children are proxies too."""

    def __init__(self, script: torch.jit.ScriptModule) -> None:
        super().__init__()
        object.__setattr__(self, "_script", script)
        object.__setattr__(self, ORIGINAL_CLASS_ATTRIBUTE, script.original_name)
        object.__setattr__(self, "_method", "forward")
        self.training = script.training  # the replayed code reads self.training
        for name, child in script.named_children():
            # Not add_module: it refuses names that __getattr__ below already resolves.
            self._modules[name] = _ScriptProxy(child)
        methods: dict[str, Callable[..., Any]] = {}
        if self._modules:
            for name in script._c._method_names():
                methods[name] = _compile_method(script._c._get_method(name), name, script.original_name)
        object.__setattr__(self, "_methods", methods)
        self._share_tensors()

    def _share_tensors(self) -> None:
        """Expose the TorchScript module's own parameters and buffers on this proxy, so
        that ``parameters()`` (the model's device and dtype) sees them."""
        self._parameters = dict(self._script.named_parameters(recurse=False))
        self._buffers = dict(self._script.named_buffers(recurse=False))

    def train(self, mode: bool = True) -> _ScriptProxy:
        # The compiled methods of the leaves read the TorchScript modules' own flag.
        self._script.train(mode)
        return super().train(mode)

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> _ScriptProxy:
        # .to(), .half(), .cuda(): convert the TorchScript module itself (its descendants
        # included), then expose the converted tensors again at every level.
        self._script._apply(fn)
        for module in self.modules():
            if isinstance(module, _ScriptProxy):
                module._share_tensors()
        return self

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # child proxies
        except AttributeError:
            # Parameters, buffers and constants of the TorchScript module.
            return getattr(object.__getattribute__(self, "_script"), name)

    def forward(self, *args: Any) -> Any:
        # The method _call_method asked for (``forward`` when called from outside).
        method = self._method
        object.__setattr__(self, "_method", "forward")
        return self._call_own(method, *args)

    # Called by the replayed code of the parent for ``(child).method(args)``: through
    # ``__call__``, so that hooks see the call (for whichever method it is).
    def _call_method(self, method: str, *args: Any) -> Any:
        object.__setattr__(self, "_method", method)
        return self(*args)

    # Called by a module's own code for ``(self).method(args)``: no hooks (the module is
    # already inside its own call).
    def _call_own(self, method: str, *args: Any) -> Any:
        if method in self._methods:
            return self._methods[method](self, *args)
        return self._script._c._get_method(method)(*args)

    def extra_repr(self) -> str:
        return f"replayed TorchScript {self._script.original_name}"


# ``(self).name(`` and ``(anything).name(`` in the printed code.
_OWN_CALL = re.compile(r"\(self\)\.(\w+)\(")
_CHILD_CALL = re.compile(r"\)\.(\w+)\(")


def _compile_method(method: Any, name: str, owner: str) -> Callable[..., Any]:
    code, constants = method.code_with_constants
    source = _OWN_CALL.sub(lambda match: f'self._call_own("{match.group(1)}", ', code)
    source = _CHILD_CALL.sub(lambda match: f')._call_method("{match.group(1)}", ', source)
    namespace = dict(_globals())
    # A ConstMap (c0, c1, ... as attributes), or a plain dict for some methods.
    namespace["CONSTANTS"] = types.SimpleNamespace(**constants) if isinstance(constants, dict) else constants
    try:
        # The source is TorchScript's own printout of the file's code, which running the
        # TorchScript module would execute anyway.
        program = compile("from __future__ import annotations\n" + source, f"<torchscript {owner}.{name}>", "exec")
        exec(program, namespace)  # noqa: S102
    except SyntaxError as error:
        raise ScriptReplayError(f"the TorchScript code of {owner}.{name} is not valid Python: {error}") from error
    function = namespace.get(name)
    if not isinstance(function, types.FunctionType):
        raise ScriptReplayError(f"no method {name} found in the TorchScript code of {owner}")
    return function


# TorchScript prints arithmetic on plain numbers as torch.<op>(a, b) (aten::gt.float_int
# and the like), which Python's torch only accepts for tensors.
_NUMBER_OPERATORS: dict[str, Callable[..., Any]] = {
    "gt": operator.gt, "lt": operator.lt, "ge": operator.ge, "le": operator.le,
    "eq": operator.eq, "ne": operator.ne, "add": operator.add, "sub": operator.sub,
    "mul": operator.mul, "div": operator.truediv, "floordiv": operator.floordiv,
    "remainder": operator.mod, "neg": operator.neg, "pow": operator.pow,
    "floor": math.floor, "ceil": math.ceil, "sqrt": math.sqrt,
}



def _append(items: list, value: Any) -> list:
    items.append(value)
    return items


def _extend(items: list, values: Any) -> None:
    items.extend(values)


# List and dict builtins, printed as torch.<op>(container, ...).
_CONTAINER_OPERATORS: dict[str, Callable[..., Any]] = {
    "append": _append, "extend": _extend, "len": len, "__getitem__": operator.getitem,
    "__contains__": operator.contains, "list": list, "keys": lambda d: list(d.keys()),
    "values": lambda d: list(d.values()), "items": lambda d: list(d.items()),
    "format": lambda text, *values: text.format(*values),
}


class _TorchNamespace:
    """``torch`` as TorchScript code sees it: a few builtins have other names there."""

    __is__ = staticmethod(operator.is_)
    __isnot__ = staticmethod(operator.is_not)
    __not__ = staticmethod(operator.not_)

    @staticmethod
    def warn(message: str, stacklevel: int = 2) -> None:
        warnings.warn(message, stacklevel=stacklevel + 1)

    def __getattr__(self, name: str) -> Any:
        # Other names are ATen operators (torch.add_, torch.adaptive_avg_pool2d, ...).
        found = getattr(torch, name, None)
        if found is None:
            found = getattr(torch.ops.aten, name, None)
        number_operator = _NUMBER_OPERATORS.get(name)
        container_operator = _CONTAINER_OPERATORS.get(name)
        if number_operator is None and container_operator is None:
            if found is None:
                raise ScriptReplayError(f"the TorchScript code calls torch.{name}, unknown to the replay")
            return found

        def dispatch(*args: Any, **kwargs: Any) -> Any:
            if container_operator is not None and args and isinstance(args[0], (list, tuple, dict, str)):
                return container_operator(*args, **kwargs)
            if number_operator is not None and not kwargs and all(isinstance(arg, (bool, int, float)) for arg in args):
                return number_operator(*args)
            if found is None:
                raise ScriptReplayError(f"the TorchScript code calls torch.{name} on {args!r:.80}, unknown to the replay")
            return found(*args, **kwargs)

        return dispatch


class _QualifiedNamespace:
    """``__torch__.a.b.c``: TorchScript's name for the compiled version of the Python
    object ``a.b.c`` (e.g. ``torch.nn.functional.relu``); resolved to that object."""

    def __init__(self, path: str = "") -> None:
        self._path = path

    def __getattr__(self, name: str) -> _QualifiedNamespace:
        return _QualifiedNamespace(f"{self._path}.{name}" if self._path else name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def _resolve(self) -> Any:
        # The longest importable module prefix, then attributes: torchvision.models.googlenet
        # is both a module and a function of torchvision.models.
        parts = self._path.split(".")
        for split in range(len(parts) - 1, 0, -1):
            try:
                found: Any = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            try:
                for attribute in parts[split:]:
                    found = getattr(found, attribute)
            except AttributeError:
                break
            return found
        raise ScriptReplayError(f"the TorchScript code calls {self._path}, which cannot be imported here")


def _globals() -> dict[str, Any]:
    return {
        "__torch__": _QualifiedNamespace(),
        "torch": _TorchNamespace(),
        "ops": torch.ops,
        "Tensor": torch.Tensor,
        "annotate": lambda kind, value: value,
        "unchecked_cast": lambda kind, value: value,
        "uninitialized": lambda kind: None,
        "NoneType": type(None),
        **{name: getattr(typing, name) for name in ("List", "Dict", "Tuple", "Optional", "Union", "Any")},
    }
