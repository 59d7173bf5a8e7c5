"""Forward hooks that cannot outlive the call that needs them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from torch import Tensor, nn

__all__ = ["forward_hooks", "module_output_tensor"]

OutputCallback = Callable[[Tensor], None]


@contextmanager
def forward_hooks(model: nn.Module, callbacks: Mapping[str, OutputCallback]) -> Iterator[None]:
    """Call ``callbacks[name](output)`` each time the named submodule runs, within the block.

    Every hook is removed on exit, including when the forward pass raises or the
    registration itself fails half-way (captum's and torchcam's lesson: a leaked hook
    silently changes every later forward pass of the user's model).
    """
    handles = []
    try:
        for name, callback in callbacks.items():
            module = model.get_submodule(name)
            handles.append(module.register_forward_hook(_adapter(name, callback)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _adapter(name: str, callback: OutputCallback):
    def hook(module: nn.Module, inputs: object, output: object) -> None:
        callback(module_output_tensor(name, output))

    return hook


def module_output_tensor(name: str, output: object) -> Tensor:
    """The tensor a module produced (first element of a tuple output), or a clear error."""
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        output = output[0]
    if not isinstance(output, Tensor):
        raise TypeError(f"layer {name!r} returned {type(output).__name__}, not a tensor")
    return output
