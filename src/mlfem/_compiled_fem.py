"""An optional compiled route for FEM's per-layer work (``torch.compile``), off by default.

Eager FEM runs a dozen small operations per layer plus a few passes over the layer's
output; on accelerators those are launch-bound, on the CPU their fixed cost counts on
small layers. Compiled, the statistics become one Welford reduction and the threshold,
mask and weighted channel sum one more, with no mask ever written to memory.

Switch it on for a block of code with :func:`compiled_fem`, or for a whole process with
the environment variable ``MLFEM_COMPILE=1`` (``MLFEM_COMPILE=reduce-overhead`` also asks
for CUDA graphs on CUDA devices: torch records one graph per input shape and records a new
one when the shape changes). The first call for each new shape compiles (tens of seconds
on a small CPU, a few seconds per later shape); a failed compilation warns once and falls
back to the eager route for the rest of the process.

Where it pays: accelerators, where the eager route's cost is kernel launches. It has not
been measured on one yet (no GPU was lent when it was written). On the CPU it does not pay:
with 1 thread on the shared 2-core dev VM (2026-12-01, load 9, thread CPU time), compiled
FEM took about twice the eager time on every ResNet-50 and MobileNetV3 layer shape with
symbolic sizes, and with one static compilation per shape 0.6x the eager time on small
layers but 1.2-1.3x on large ones; so the eager route stays the default.

Numerics: the same formula as the eager route, with the accelerator statistics (one
Welford ``var_mean``, exact for a constant channel: every deviation from the running mean
is 0), the threshold formed in float64 and lowered by the same relative tie tolerance, and
half precision accumulated in float32. Channel sums are taken in another order than the
eager matrix product, so maps agree to float rounding, not bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

__all__ = ["compiled_fem", "compiled_mode"]

_ENVIRONMENT = "MLFEM_COMPILE"
_MODES = {"1": "default", "default": "default", "reduce-overhead": "reduce-overhead"}

# None: follow the environment; otherwise the mode set by compiled_fem ("" for off).
_setting: list[str | None] = [None]
_compiled: dict[str, Callable[[Tensor, float, float], Tensor]] = {}
_failed: list[bool] = [False]


def compiled_mode() -> str | None:
    """The ``torch.compile`` mode FEM runs under now, or None for the eager route."""
    if _failed[0]:
        return None
    value = _setting[0]
    if value is None:
        raw = os.environ.get(_ENVIRONMENT, "").strip().lower()
        if raw in ("", "0", "false", "off"):
            return None
        if raw not in _MODES:
            raise ValueError(
                f"{_ENVIRONMENT}={raw!r}: expected 0, 1, default or reduce-overhead"
            )
        return _MODES[raw]
    return value or None


@contextlib.contextmanager
def compiled_fem(enabled: bool = True, mode: str = "default") -> Iterator[None]:
    """Run FEM (and so FEM and MLFEM explainers) through ``torch.compile`` inside the block.

    Args:
        enabled: False forces the eager route inside the block, whatever ``MLFEM_COMPILE``.
        mode: ``"default"`` or ``"reduce-overhead"`` (CUDA graphs on CUDA devices).

    Example:
        >>> with compiled_fem():                  # doctest: +SKIP
        ...     maps = MLFEM(model)(images)
    """
    if mode not in ("default", "reduce-overhead"):
        raise ValueError(f"mode must be 'default' or 'reduce-overhead', got {mode!r}")
    previous = _setting[0]
    _setting[0] = mode if enabled else ""
    try:
        yield
    finally:
        _setting[0] = previous


def compiled_saliency(
    features: Tensor, k: float, tie_tolerance: float, mode: str
) -> Tensor | None:
    """FEM of ``features`` (B, C, P) through the compiled function, (B, P); None when
    compilation failed (the caller takes the eager route)."""
    function = _compiled.get(mode)
    if function is None:
        # dynamic=None: the first shape is compiled static, a second one makes the sizes
        # symbolic, so a network's few layer shapes cost two or three compilations.
        function = torch.compile(_fem_core, mode=mode, fullgraph=True)
        _compiled[mode] = function
    try:
        with torch.no_grad():  # as on the eager route, the map is not differentiable
            return function(features, k, tie_tolerance)
    except Exception as error:  # noqa: BLE001 - any compiler failure means: use eager
        _failed[0] = True
        warnings.warn(
            f"torch.compile of FEM failed ({type(error).__name__}: {error}); "
            "using the eager route from now on",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _fem_core(features: Tensor, k: float, tie_tolerance: float) -> Tensor:
    """The whole per-layer FEM, written to compile into two fused reductions."""
    rows = features if features.dtype in (torch.float32, torch.float64) else features.float()
    variance, mean = torch.var_mean(rows, dim=-1, correction=0, keepdim=True)
    # The threshold in float64, lowered by the relative tie tolerance, as on the eager route.
    mean64 = mean.double()
    threshold = mean64 + k * variance.double().sqrt()
    threshold = threshold - threshold.abs() * tie_tolerance
    threshold = threshold.to(rows.dtype)
    weights = mean64.to(rows.dtype)
    return torch.where(rows >= threshold, weights, 0.0).sum(1)


def reset_for_tests() -> None:
    """Forget compiled functions and a past failure (tests only)."""
    _compiled.clear()
    _failed[0] = False
