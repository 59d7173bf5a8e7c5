"""Fusion of per-layer FEM maps into one MLFEM map.

``fuse(maps, op)`` is the functional entry point; ``make_fusion(spec)`` turns a name
such as ``"add"`` into an operator. Further operators (the learned NET fusion) plug
in through :func:`register_fusion`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from mlfem.fusion.operators import (
    AddFusion,
    FemFusion,
    FusionOperator,
    MaxFusion,
    Normalization,
    RecursiveFusion,
    TopFusion,
    check_layer_maps,
)

__all__ = [
    # the operators (mlfem.fusion.operators)
    "AddFusion", "FemFusion", "FusionOperator", "MaxFusion", "Normalization", "RecursiveFusion",
    "TopFusion",
    # the registry of fusion specs and the functional entry point
    "available_fusions", "fuse", "make_fusion", "register_fusion",
]

# A factory receives (argument, alpha, normalize); ``argument`` is what follows
# "name:" in a spec such as "net:/path/to/net.safetensors", or None.
FusionFactory = Callable[[str | None, float, Normalization], FusionOperator]

_FACTORIES: dict[str, FusionFactory] = {
    "max": lambda argument, alpha, normalize: MaxFusion(normalize=normalize),
    "add": lambda argument, alpha, normalize: AddFusion(alpha=alpha, normalize=normalize),
    "top": lambda argument, alpha, normalize: TopFusion(alpha=alpha, normalize=normalize),
    "fem": lambda argument, alpha, normalize: FemFusion(normalize=normalize),
}


def _net_factory(argument: str | None, alpha: float, normalize: Normalization) -> FusionOperator:
    """``net:PATH``: a NET trained by ``mlfem train-fusion`` (:mod:`mlfem.fusion.net`).
    Imported on first use, so ``import mlfem`` does not load the checkpoint reader."""
    from mlfem.fusion.net import net_fusion_factory

    return net_fusion_factory(argument, alpha, normalize)


_FACTORIES["net"] = _net_factory


def register_fusion(name: str, factory: FusionFactory) -> None:
    """Make ``name`` (or ``name:ARG``) usable wherever a fusion spec is accepted."""
    _FACTORIES[name] = factory


def available_fusions() -> list[str]:
    """Names accepted by :func:`make_fusion`."""
    return sorted(_FACTORIES)


def make_fusion(
    spec: str | FusionOperator, alpha: float = 0.5, normalize: Normalization = "end"
) -> FusionOperator:
    """Build a fusion operator from a spec.

    Args:
        spec: ``"max"``, ``"add"``, ``"top"``, ``"fem"``, a registered ``"name:ARG"``
            spec, or an operator object (returned as is).
        alpha: weight of the accumulated map for ``add`` and ``top``.
        normalize: ``"end"`` or ``"interleaved"``.
    """
    if not isinstance(spec, str):
        if callable(spec):
            return spec
        raise TypeError(f"fusion must be a name or a callable operator, got {type(spec).__name__}")
    name, _, argument = spec.partition(":")
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(
            f"unknown fusion {spec!r}; expected one of {', '.join(available_fusions())}"
        )
    return factory(argument or None, alpha, normalize)


def fuse(
    maps: Tensor,
    op: str | FusionOperator = "add",
    alpha: float = 0.5,
    normalize: Normalization = "end",
) -> Tensor:
    """Fuse per-layer maps (B, L, H, W), layers in forward order, into (B, H, W) in [0, 1]
    (the algebraic operators also fuse clips' maps (B, L, T, H, W) into (B, T, H, W)).

    See :mod:`mlfem.fusion.operators` for the semantics of each operator.
    """
    check_layer_maps(maps, clips=True)
    if not maps.is_floating_point():  # integer or boolean maps: fused in float32
        maps = maps.float()
    return make_fusion(op, alpha=alpha, normalize=normalize)(maps)
