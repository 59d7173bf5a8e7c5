"""Registration of the FEM family: ``fem``, ``mlfem`` and one ``mlfem-<fusion>`` per operator.

These methods read the MLFEM layer list (``layers``), so they are registered as reading
layers: the evaluation passes them its layers and computes all of them from one forward pass
(:mod:`mlfem.evaluation.methods`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mlfem.explainers.fem import FEM
from mlfem.explainers.mlfem import MLFEM
from mlfem.explainers.registry import register_method
from mlfem.layers import AUTO_MLP, auto_reading, find_layers, resolve_layers


def _fem(
    model: nn.Module,
    layer: str | None = None,
    k: float = 2.0,
    rectify: bool = False,
    layers: Any = None,
    per_frame: bool = False,
    **_: Any,
) -> FEM:
    # layers="auto-rectified" (the command line's spelling of rectify) reaches FEM too, and
    # FEM reads the last of explicit layers (the deepest of the MLFEM layers it goes with).
    reading = auto_reading(layers)
    rectify = bool(rectify) or (reading is not None and reading[1] is True)
    if layer is None and reading is not None and reading[0] == AUTO_MLP:
        layer = resolve_layers(model, AUTO_MLP)[-1].name  # the last block's MLP activation
    if layer is None and layers is not None:
        names = _explicit_names(layers)
        if names:
            layer = names[-1]
    if layer is None and reading is not None and reading[1] is False:
        layer = find_layers(model)[-1].name  # auto-signed: a name given is read as it is
    return FEM(model, layer=layer, k=k, rectify=rectify, per_frame=per_frame)


def _explicit_names(layers: Any) -> list[str]:
    """Module names of an explicit ``layers`` option ([] for ``auto``/``auto-rectified``)."""
    if isinstance(layers, str):
        names = [part.strip() for part in layers.split(",") if part.strip()]
        return [] if len(names) == 1 and auto_reading(names[0]) is not None else names
    return [str(name) for name in layers]


def _mlfem_with(default_fusion: str):
    def factory(
        model: nn.Module,
        layers: Any = "auto",
        fusion: Any = None,
        alpha: float = 0.5,
        k: float = 2.0,
        normalize: str = "end",
        rectify: bool = False,
        per_frame: bool = False,
        **_: Any,
    ) -> MLFEM:
        return MLFEM(
            model, layers=layers, fusion=fusion or default_fusion, alpha=alpha, k=k,
            normalize=normalize, rectify=rectify, per_frame=per_frame,
        )

    return factory


def _mlfem_net(model: nn.Module, net: str | None = None, **options: Any) -> MLFEM:
    """MLFEM fused by a trained NET (``net``: its path, or ``bundled``)."""
    if not net:
        raise ValueError("method mlfem-net needs a trained NET fusion: pass --net PATH")
    options.pop("fusion", None)
    return _mlfem_with("add")(model, fusion=f"net:{net}", **options)


# The options each factory uses (the others, given to every method, are ignored). per_frame:
# FEM's statistics per frame of a clip (docs/design-decisions.md §6); no effect on images.
_FEM_OPTIONS = ("layer", "k", "rectify", "layers", "per_frame")
_MLFEM_OPTIONS = ("layers", "fusion", "alpha", "k", "normalize", "rectify", "per_frame")
_NET_OPTIONS = ("net", "layers", "alpha", "k", "normalize", "rectify")


def _register(name: str, factory: Any, description: str, options: tuple[str, ...] = _MLFEM_OPTIONS,
              requires: tuple[str, ...] = ()) -> None:
    register_method(
        name, factory, description, reads_layers=True, requires=requires, options=options
    )


_register("fem", _fem, "FEM on the last block: class-agnostic, gradient-free (Fuad et al. 2020)",
          _FEM_OPTIONS)
_register("mlfem", _mlfem_with("add"), "MLFEM, FEM on every block fused (fusion option, default add)")
_register("mlfem-add", _mlfem_with("add"), "MLFEM with weighted-addition fusion (alpha)")
_register("mlfem-max", _mlfem_with("max"), "MLFEM with element-wise maximum fusion")
_register("mlfem-top", _mlfem_with("top"), "MLFEM with add fusion of above-mean parts (alpha)")
_register("mlfem-fem", _mlfem_with("fem"), "MLFEM with the fem operator (= FEM on the last block)")
_register("mlfem-net", _mlfem_net, "MLFEM with a NET fusion trained on gaze (net=PATH, or net=bundled)",
          _NET_OPTIONS, requires=("net",))
