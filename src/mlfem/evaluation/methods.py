"""Running the explanation methods of an evaluation on one batch, sharing work where possible.

Every method is created through the method registry. Methods built on per-layer FEM maps
(``fem``, ``mlfem``, ``mlfem-add``, ``mlfem-net``, ...: those whose explainer has a
:meth:`~mlfem.Explainer.layer_map_source`) are computed from ONE forward pass when their
extractors read with the same settings and one's layers include the others': the largest
extractor's per-layer maps are computed once and each method fuses its own layers
(:meth:`~mlfem.Explainer.fuse_layer_maps`; FEM is the deepest layer's map, docs/design-decisions.md §2). The
logits of that same pass give the predictions. Other methods (Grad-CAM, LayerCAM, pixel
attributions) run on their own, each explaining the predicted top-1 class.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mlfem.explainers.base import Explainer
from mlfem.explainers.registry import create_explainer, method_info
from mlfem.extractor import LayerMapExtractor, module_device

__all__ = ["BatchMaps", "MethodRunner", "REFERENCE_METHODS"]

#: Names of the reference rows (never explanation methods).
REFERENCE_METHODS: tuple[str, ...] = ("human", "centre-bias")


@dataclass
class BatchMaps:
    """What one batch yields: each method's maps (B, h, w) in [0, 1], the per-layer FEM maps
    (B, L, h, w) when a layer-map method ran, and the classifier's logits (B, K)."""

    maps: dict[str, Tensor]
    layer_maps: Tensor | None
    logits: Tensor


@dataclass
class _SharedPass:
    """One forward pass of ``extractor`` serving several methods: each reads its layers
    (indices into the extractor's) and fuses them."""

    extractor: LayerMapExtractor
    members: dict[str, list[int]] = field(default_factory=dict)


class MethodRunner:
    """The explainers of an evaluation, bound to one model.

    Args:
        model: the classifier, in eval mode.
        methods: method names (see ``mlfem methods``).
        layers: MLFEM layers (``"auto"`` or module names); FEM reads the last of them.
        alpha, k, normalize: MLFEM options.
        net: path of a trained NET fusion, required by ``mlfem-net``.
        method_options: extra options per method name (e.g. ``{"ig": {"steps": 16}}``).
    """

    def __init__(
        self,
        model: nn.Module,
        methods: Sequence[str],
        *,
        layers: str | Sequence[str] = "auto",
        alpha: float = 0.5,
        k: float = 2.0,
        normalize: str = "end",
        net: str | None = None,
        method_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.model = model
        self.methods = list(dict.fromkeys(methods))
        options = {key: dict(value) for key, value in (method_options or {}).items()}
        _check_options(options)
        clash = [m for m in self.methods if m in REFERENCE_METHODS]
        if clash:
            raise ValueError(f"{', '.join(clash)} name reference rows, not explanation methods")
        for name in self.methods:
            method_info(name)  # a clear error listing the known names, before building any
        common = {"layers": layers, "alpha": alpha, "k": k, "normalize": normalize}
        if net:
            common["net"] = net
        self.explainers: dict[str, Explainer] = {
            name: create_explainer(name, model, **{**_common_for(name, common), **options.get(name, {})})
            for name in self.methods
        }
        self.passes = _plan_shared_passes(self.explainers)

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    @property
    def extractor(self) -> LayerMapExtractor | None:
        """The extractor of the first shared pass (the MLFEM layers), if any."""
        return self.passes[0].extractor if self.passes else None

    @property
    def layer_names(self) -> list[str]:
        """The MLFEM layers (empty when no layer-map method runs)."""
        return self.extractor.layer_names if self.extractor is not None else []

    def gradient_methods(self) -> list[str]:
        """The methods that back-propagate, or may on this model (CS-FEM does when the head is
        not linear on pooled features: ``may_need_gradients``); the run leaves autograd on for them."""
        return [
            m for m in self.methods
            if method_info(m).uses_gradients or getattr(self.explainers[m], "may_need_gradients", False)
        ]

    def run(
        self, images: Tensor, methods: Collection[str] | None = None, targets: Tensor | None = None
    ) -> BatchMaps:
        """Maps of ``methods`` (default: all) for a batch of model inputs (B, 3, h, w),
        explaining ``targets`` (B,) (default: the model's top-1 classes)."""
        wanted = self.methods if methods is None else [m for m in self.methods if m in methods]
        maps: dict[str, Tensor] = {}
        layer_maps = logits = None
        for index, shared in enumerate(self.passes):
            members = {name: used for name, used in shared.members.items() if name in wanted}
            # The first pass also runs when nothing is wanted: it gives the gallery its
            # per-layer maps and the rows their predictions.
            if not members and (index > 0 or wanted):
                continue
            result = shared.extractor.layer_maps(images)
            if index == 0:
                layer_maps = result.maps
            if logits is None:
                logits = result.logits
            with torch.inference_mode():
                for name, used in members.items():
                    fused = self.explainers[name].fuse_layer_maps(result.maps[:, used])
                    maps[name] = fused.to(images.device, torch.float32).clone()
        if logits is None:
            with torch.inference_mode():
                logits = self.model(images.to(self.device))
            logits = logits.clone()
        if not isinstance(logits, Tensor) or logits.ndim != 2:
            raise ValueError(
                "the classifier must return logits of shape (B, classes); got "
                f"{type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}"
            )
        if targets is None:
            targets = logits.detach().argmax(dim=1).cpu()
        for name in wanted:
            if name not in maps:
                maps[name] = self.explainers[name](images, targets).to(torch.float32)
        return BatchMaps(maps, layer_maps, logits.detach().float().cpu())

    def close(self) -> None:
        for explainer in self.explainers.values():
            explainer.close()


def _plan_shared_passes(explainers: Mapping[str, Explainer]) -> list[_SharedPass]:
    """Group the layer-map methods into as few forward passes as their extractors allow:
    a method joins a pass whose extractor reads with equal settings and includes its layers
    (largest extractors first, so FEM's one layer joins MLFEM's pass)."""
    sources = {name: e.layer_map_source() for name, e in explainers.items()}
    built = [name for name, source in sources.items() if source is not None]
    built.sort(key=lambda name: -len(sources[name].layer_names))  # type: ignore[union-attr]
    passes: list[_SharedPass] = []
    for name in built:
        source = sources[name]
        assert source is not None
        for shared in passes:
            names = shared.extractor.layer_names
            if shared.extractor.settings == source.settings and set(source.layer_names) <= set(names):
                shared.members[name] = [names.index(layer) for layer in source.layer_names]
                break
        else:
            passes.append(_SharedPass(source, {name: list(range(len(source.layer_names)))}))
    return passes


def _check_options(options: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse an option of an unknown method, or one its method does not accept: it would
    otherwise be ignored while ``run.json`` records it as used. Options of registered methods
    not evaluated now are checked too (a resumed run may add those methods)."""
    for method, given in options.items():
        try:
            accepted = method_info(method).options
        except ValueError as error:
            raise ValueError(f"method option {method}.{next(iter(given), '')}: {error}") from None
        unknown = [key for key in given if accepted is not None and key not in accepted]
        if unknown:
            raise ValueError(
                f"method {method!r} has no option {unknown[0]!r} ({method}.{unknown[0]}); "
                f"its options: {', '.join(sorted(accepted or ())) or 'none'}"
            )


def _common_for(name: str, common: Mapping[str, Any]) -> dict[str, Any]:
    """The shared options a method receives. Explicit MLFEM layers go only to methods that
    read layers (the FEM family): a single-layer method (Grad-CAM, LayerCAM, ...) keeps its
    own default layer, and a method's own layer is set with a per-method option
    (``--option gradcam.layer=NAME``)."""
    out = dict(common)
    if out.get("layers") != "auto" and not method_info(name).reads_layers:
        out.pop("layers", None)
    return out
