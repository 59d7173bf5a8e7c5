"""Registration of the FEM family: ``fem``, ``mlfem`` and one ``mlfem-<fusion>`` per operator."""

from __future__ import annotations

from typing import Any

from torch import nn

from mlfem.explainers.fem import FEM
from mlfem.explainers.mlfem import MLFEM
from mlfem.explainers.registry import register_method
from mlfem.layers import AUTO_RECTIFIED


def _fem(
    model: nn.Module, layer: str | None = None, k: float = 2.0, rectify: bool = False, **options: Any
) -> FEM:
    # layers="auto-rectified" (the command line's spelling of rectify) reaches FEM too.
    rectify = bool(rectify) or options.get("layers") == AUTO_RECTIFIED
    return FEM(model, layer=layer, k=k, rectify=rectify)


def _mlfem_with(default_fusion: str):
    def factory(
        model: nn.Module,
        layers: Any = "auto",
        fusion: Any = None,
        alpha: float = 0.5,
        k: float = 2.0,
        normalize: str = "end",
        rectify: bool = False,
        **_: Any,
    ) -> MLFEM:
        return MLFEM(
            model, layers=layers, fusion=fusion or default_fusion, alpha=alpha, k=k,
            normalize=normalize, rectify=rectify,
        )

    return factory


register_method("fem", _fem, "FEM on the last block: class-agnostic, gradient-free (Fuad et al. 2020)")
register_method("mlfem", _mlfem_with("add"), "MLFEM, FEM on every block fused (fusion option, default add)")
register_method("mlfem-add", _mlfem_with("add"), "MLFEM with weighted-addition fusion (alpha)")
register_method("mlfem-max", _mlfem_with("max"), "MLFEM with element-wise maximum fusion")
register_method("mlfem-top", _mlfem_with("top"), "MLFEM with add fusion of above-mean parts (alpha)")
register_method("mlfem-fem", _mlfem_with("fem"), "MLFEM with the fem operator (= FEM on the last block)")
