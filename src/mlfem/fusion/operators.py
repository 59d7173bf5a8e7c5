"""Fusion operators: how MLFEM turns L per-layer maps into one explanation map.

Every operator takes per-layer maps of shape (B, L, H, W), layers in forward order
(shallow to deep), and returns one map (B, H, W) in [0, 1]. The algebraic operators take
the per-layer maps of video clips (B, L, T, H, W) too and return (B, T, H, W), normalised
per clip (docs/design-decisions.md §6).

The algebraic operators of the paper are *recursive* (docs/design-decisions.md §2): the
accumulated map starts as the first layer's map, then for each later layer
``S = op(S, S_l)``; the first operand is always the accumulated map. Subclasses of
:class:`RecursiveFusion` only define that binary step.

A learned operator (the paper's NET) is any object satisfying :class:`FusionOperator`,
typically an ``nn.Module`` whose ``forward`` maps (B, L, H, W) to (B, H, W); it can
declare the layers it was trained for through a ``layer_names`` attribute so that
MLFEM refuses to feed it maps from other layers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from mlfem.normalize import minmax_normalize_

__all__ = [
    "AddFusion",
    "FemFusion",
    "FusionOperator",
    "MaxFusion",
    "Normalization",
    "RecursiveFusion",
    "TopFusion",
]

Normalization = Literal["end", "interleaved"]
_NORMALIZATIONS = ("end", "interleaved")


@runtime_checkable
class FusionOperator(Protocol):
    """Anything that fuses per-layer maps (B, L, H, W) into one map (B, H, W) in [0, 1]."""

    def __call__(self, maps: Tensor) -> Tensor: ...


def check_layer_maps(maps: Tensor, *, clips: bool = False) -> None:
    """Raise a clear error unless ``maps`` has the (B, L, H, W) layout with L >= 1 (or, with
    ``clips``, also (B, L, T, H, W))."""
    expected = "(B, L, H, W) or (B, L, T, H, W)" if clips else "(B, L, H, W)"
    if not isinstance(maps, Tensor):
        raise TypeError(f"maps must be a torch.Tensor of shape {expected}, got {type(maps).__name__}")
    if maps.ndim not in ((4, 5) if clips else (4,)):
        raise ValueError(f"maps must have shape {expected}, got {tuple(maps.shape)}")
    if maps.shape[1] < 1:
        raise ValueError("maps must hold at least one layer (L >= 1)")
    if maps.is_complex():
        raise TypeError(f"maps must hold real values, got {maps.dtype}")


class RecursiveFusion(ABC):
    """Base of the algebraic operators: ``S = S_1``, then ``S = combine(S, S_l)`` for l = 2..L.

    Args:
        normalize: ``"end"`` min-max normalises once, after the last step (the
            default); ``"interleaved"`` normalises after every binary step.
    """

    name: str = "recursive"

    def __init__(self, normalize: Normalization = "end") -> None:
        if normalize not in _NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {_NORMALIZATIONS}, got {normalize!r}")
        self.normalize: Normalization = normalize

    @abstractmethod
    def combine(self, accumulated: Tensor, current: Tensor) -> Tensor:
        """One binary step on maps (B, H, W): the accumulated map first, then the current layer."""

    def combine_(self, accumulated: Tensor, current: Tensor) -> Tensor:
        """:meth:`combine` written into ``accumulated``, which is returned.

        Subclasses override it to avoid a full-resolution temporary per layer.
        """
        return accumulated.copy_(self.combine(accumulated, current))

    def accumulate(self, accumulated: Tensor | None, current: Tensor) -> Tensor:
        """Fold the next layer's map (B, H, W) into the running fusion (None before the first).

        This incremental form lets MLFEM fuse inside the forward hooks, layer by layer,
        without keeping all L full-resolution maps. The running map belongs to the
        fusion and is updated in place; ``current`` is only read.
        """
        if accumulated is None:
            return current.clone()
        fused = self.combine_(accumulated, current)
        return minmax_normalize_(fused, _map_dims(fused)) if self.normalize == "interleaved" else fused

    def finish(self, accumulated: Tensor) -> Tensor:
        """The final map in [0, 1] from the running fusion (normalised in place)."""
        return minmax_normalize_(accumulated, _map_dims(accumulated))

    def linear_weights(self, num_layers: int) -> list[float] | None:
        """Weights ``w`` such that fusing L normalised maps equals ``minmax(sum_l w_l S_l)``.

        None (the default) when the operator is not of that form. When it is, MLFEM
        takes a faster route that gives the same map up to rounding: since both
        bilinear resizing and a weighted sum are linear, and the final min-max ignores
        constant offsets, each layer's map is weighted at its own resolution and only
        one sum per resolution is resized to the input size (see
        :meth:`mlfem.MLFEM.__call__`).
        """
        return None

    def __call__(self, maps: Tensor) -> Tensor:
        check_layer_maps(maps, clips=True)
        if not maps.is_floating_point():  # integer or boolean maps: fused in float32
            maps = maps.float()
        fused = None
        for layer in range(maps.shape[1]):
            fused = self.accumulate(fused, maps[:, layer])
        return self.finish(fused)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize={self.normalize!r})"


class MaxFusion(RecursiveFusion):
    """``max(a, b)``: element-wise maximum (commutative)."""

    name = "max"

    def combine(self, accumulated: Tensor, current: Tensor) -> Tensor:
        return accumulated.maximum(current)

    def combine_(self, accumulated: Tensor, current: Tensor) -> Tensor:
        return torch.maximum(accumulated, current, out=accumulated)


class AddFusion(RecursiveFusion):
    """``add(a, b) = alpha * a + (1 - alpha) * b`` (not commutative).

    With end normalisation this is, up to the final min-max, the geometric sum
    ``alpha^(L-1) S_1 + sum_{l>=2} (1 - alpha) alpha^(L-l) S_l``: a larger alpha keeps
    more of the shallow layers.
    """

    name = "add"

    def __init__(self, alpha: float = 0.5, normalize: Normalization = "end") -> None:
        super().__init__(normalize)
        self.alpha = _check_alpha(alpha)

    def combine(self, accumulated: Tensor, current: Tensor) -> Tensor:
        return accumulated * self.alpha + current * (1.0 - self.alpha)

    def combine_(self, accumulated: Tensor, current: Tensor) -> Tensor:
        return accumulated.mul_(self.alpha).add_(current, alpha=1.0 - self.alpha)

    def linear_weights(self, num_layers: int) -> list[float] | None:
        # Interleaved normalisation rescales the running map after every step: not linear.
        if self.normalize != "end":
            return None
        weights = [1.0]  # the recursion itself, so the weights round as its steps would
        for _ in range(num_layers - 1):
            weights = [weight * self.alpha for weight in weights] + [1.0 - self.alpha]
        return weights

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, normalize={self.normalize!r})"


class TopFusion(AddFusion):
    """``top(a, b) = add(a, b')`` with ``b' = b`` where ``b > mean(b)``, else 0.

    The mean is taken per image over the current layer's map, so only the
    above-average half (roughly) of each deeper layer is added.
    """

    name = "top"

    def combine(self, accumulated: Tensor, current: Tensor) -> Tensor:
        return super().combine(accumulated, self._above_mean(current))

    def combine_(self, accumulated: Tensor, current: Tensor) -> Tensor:
        return super().combine_(accumulated, self._above_mean(current))

    def linear_weights(self, num_layers: int) -> list[float] | None:
        return None  # the above-mean cut depends on each map's values

    @staticmethod
    def _above_mean(current: Tensor) -> Tensor:
        # The mean of the whole map: over (H, W) for images, over (T, H, W) for clips.
        mean = current.mean(dim=tuple(range(-_map_dims(current), 0)), keepdim=True)
        return current * (current > mean)


class FemFusion(RecursiveFusion):
    """``fem(a, b) = b``: keeps the last layer only, i.e. single-layer FEM on the deepest layer."""

    name = "fem"

    def combine(self, accumulated: Tensor, current: Tensor) -> Tensor:
        return current

    def combine_(self, accumulated: Tensor, current: Tensor) -> Tensor:
        return accumulated.copy_(current)

    def linear_weights(self, num_layers: int) -> list[float] | None:
        # Interleaved or not: re-normalising a normalised map leaves it unchanged.
        return [0.0] * (num_layers - 1) + [1.0]


def _map_dims(running: Tensor) -> int:
    """Map dimensions of a running fusion (B, H, W) or (B, T, H, W): 2 or 3."""
    return 3 if running.ndim >= 4 else 2


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return alpha
