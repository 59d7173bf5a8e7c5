"""The layer-map extractor: FEM maps of many layers from one forward pass.

:class:`LayerMapExtractor` is the one object that resolves which layers are read
(:mod:`mlfem.layers`), owns the forward hooks (installed for one call, always removed), turns
each layer's output into feature maps through a :class:`~mlfem.features.FeatureAdapter`, and
delivers each layer's FEM map as soon as it is computed. MLFEM is this extractor plus a
fusion; FEM is the extractor on one layer.

FEM is evaluated inside each layer's forward hook, so an activation is reduced to one
(B, h, w) map as soon as it is produced and is never kept alive for later: peak memory stays
close to that of a plain forward pass. The exception is small outputs on the CPU, copied in
their hook and reduced together after the pass (:mod:`mlfem._deferred_fem`): inside a hook
each operation costs more, and on a small network that fixed cost is most of FEM's.

>>> extractor = LayerMapExtractor(model, layers="auto")        # doctest: +SKIP
>>> per_layer, logits = extractor.layer_maps(images)           # (B, L, H, W), (B, K)
>>> extractor.check_fusion(operator)    # a trained fusion fits these layers and this model
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from mlfem._compiled_fem import compiled_mode
from mlfem._deferred_fem import SmallLayerFEM
from mlfem.features import FeatureAdapter, adapter_for, observe_input
from mlfem.fem import fem_saliency
from mlfem.hooks import forward_hooks
from mlfem.layers import LayerSpec, auto_reading, fixed_batch_size, resolve_layers
from mlfem.normalize import minmax_normalize_, resize_maps

__all__ = [
    "LayerMapExtractor",
    "LayerMaps",
    "check_images",
    "explain_input_error",
    "map_size",
    "model_inputs",
    "module_device",
]


class LayerMaps(NamedTuple):
    """What one forward pass yields: the per-layer FEM maps and the model's output."""

    #: (B, L, H, W), each layer's FEM map upsampled to the input size and min-max normalised.
    maps: Tensor
    #: The model's own output for the batch (logits for a classifier).
    logits: Any


def map_size(images: Tensor) -> tuple[int, ...]:
    """The size of an explanation map of ``images``: (H, W) for images (B, C, H, W), (T, H, W)
    for clips (B, C, T, H, W)."""
    return tuple(int(n) for n in images.shape[2:])


def module_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a parameterless model)."""
    # Lazily: listing every parameter and buffer first cost 1.3 ms a call on MobileNetV3's
    # 255 modules (thread CPU time, 1 thread), about 0.5% of its forward pass.
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _stem(model: nn.Module) -> nn.Module | None:
    """The model's first 2-D or 3-D convolution, None without one."""
    return next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))), None)


def _input_channels(model: nn.Module) -> int | None:
    """Input channels of the model's first 2-D or 3-D convolution (its stem), None without one."""
    stem = _stem(model)
    if stem is None:
        return None
    channels = int(stem.in_channels)
    return channels if channels > 0 else None  # a lazy convolution not built yet


def check_images(images: Any, argument: str = "images", *, clips: bool = False) -> None:
    """Raise a clear error unless ``images`` is a floating (B, C, H, W) tensor with pixels, all
    of them finite; with ``clips``, video clips (B, C, T, H, W) are accepted too."""
    layout = "(B, C, H, W) or clips (B, C, T, H, W)" if clips else "(B, C, H, W)"
    if not isinstance(images, Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor {layout}, got {type(images).__name__}")
    if images.ndim not in ((4, 5) if clips else (4,)):
        raise ValueError(
            f"{argument} must have shape {layout}; got {tuple(images.shape)}"
            + (" (add a batch dimension with images.unsqueeze(0))" if images.ndim == 3 else "")
            + (" (this method explains images only)" if images.ndim == 5 and not clips else "")
        )
    if images.shape[0] == 0:
        raise ValueError(f"{argument} is an empty batch")
    if 0 in images.shape[2:]:
        extent = "x".join(str(n) for n in images.shape[2:])
        axes = "H x W" if images.ndim == 4 else "T x H x W"
        raise ValueError(
            f"{argument} are empty: {extent} pixels ({axes}), shape {tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise TypeError(
            f"{argument} must be floating point (normalised as the model expects), got {images.dtype}"
        )
    if not _all_finite(images):
        raise ValueError(
            f"{argument} contain NaN or infinite values; every pixel must be a finite number"
        )


def _all_finite(images: Tensor) -> bool:
    """Whether every value is finite, in one reduction: a sum is finite when every term is
    and it does not overflow; only when it is not finite are the values checked one by one
    (``isfinite(...).all()`` took 5.9 ms on 8 images of 224x224 with 1 thread, 2.5% of a
    MobileNetV3 forward pass; the sum 0.16 ms)."""
    return bool(torch.isfinite(images.sum())) or bool(torch.isfinite(images).all())


def explain_input_error(
    images: Tensor, model: nn.Module, error: BaseException, argument: str = "images"
) -> ValueError | None:
    """A clearer error for a forward pass that failed with ``error``, when the cause is
    visible: ``images`` have another channel count than the model's first convolution takes
    (channels-last batches, grey or RGBA images). None otherwise (re-raise ``error``).

    Only used after a failure: a model may legitimately add channels itself (coordinates,
    say), so a mismatch alone is no error."""
    if not isinstance(error, RuntimeError):
        return None
    stem = _stem(model)
    # Clips for an image network, or images for a video network.
    if stem is not None and images.ndim == (5 if isinstance(stem, nn.Conv2d) else 4):
        wanted = "images (B, C, H, W)" if isinstance(stem, nn.Conv2d) else "clips (B, C, T, H, W)"
        return ValueError(
            f"{argument} have shape {tuple(images.shape)}, but the model's first convolution is "
            f"{'2-D' if isinstance(stem, nn.Conv2d) else '3-D'}: it takes {wanted} "
            f"(the model failed with: {error})"
        )
    expected = _input_channels(model)
    if expected is None or images.shape[1] == expected:
        return None
    hint = (
        f"; it looks channels-last (B, H, W, C): pass {argument}.permute(0, 3, 1, 2)"
        if images.shape[3] == expected
        else ""
    )
    extent = "T, H, W" if images.ndim == 5 else "H, W"
    return ValueError(
        f"{argument} have {images.shape[1]} channels but the model's first convolution takes "
        f"{expected}: expected (B, {expected}, {extent}), got {tuple(images.shape)}{hint} "
        f"(the model failed with: {error})"
    )


def model_inputs(images: Tensor, model: nn.Module) -> Tensor:
    """``images`` on the model's device and in its floating dtype (float64 images for a
    float32 model, say, are converted: torch's layers refuse mixed dtypes)."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype is None:
        dtype = next((b.dtype for b in model.buffers() if b.is_floating_point()), images.dtype)
    return images.to(module_device(model), dtype)


class LayerMapExtractor:
    """FEM maps of a list of layers, computed inside their forward hooks in one pass.

    Args:
        model: the network, in eval mode.
        layers: ``"auto"`` (the blocks :func:`mlfem.layers.find_layers` discovers),
            ``"auto-rectified"`` (the same, rectified), ``"auto-mlp"`` /
            ``"auto-mlp-rectified"`` (a vision transformer's MLP activations, as they are or
            rectified: :func:`mlfem.layers.resolve_layers`), or module names (a list or a
            comma-separated string).
        k: FEM threshold in standard deviations.
        probe_size: (H, W) of the probe image used by layer discovery when no static rule
            recognises the model.
        rectify: clamp every layer's output at 0 before FEM.
        per_frame: for video clips (B, C, T, H, W): FEM's channel statistics per frame
            instead of over the whole clip (:func:`mlfem.fem.fem_saliency`).
        adapter: turns a layer's output into (B, C, H, W) feature maps (default:
            :func:`mlfem.features.adapter_for`: tokens on the patch grid for a vision
            transformer, CNN maps otherwise).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str] | None = "auto",
        k: float = 2.0,
        probe_size: tuple[int, int] = (224, 224),
        *,
        rectify: bool = False,
        per_frame: bool = False,
        adapter: FeatureAdapter | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        k = float(k)
        #: For clips: FEM statistics per frame rather than over the clip.
        self.per_frame = bool(per_frame)
        if not torch.isfinite(torch.tensor(k)):
            raise ValueError(f"k must be a finite number, got {k}")
        self.model = model
        self.k = k
        #: Whether every layer's output is clamped at 0 before FEM (``rectify=True`` or
        #: ``layers="auto-rectified"``); see :func:`mlfem.layers.resolve_layers`.
        reading = auto_reading(layers)
        self.rectify = bool(rectify) or (reading is not None and reading[1] is True)
        self.layers: list[LayerSpec] = resolve_layers(model, layers, probe_size, rectify=self.rectify)
        # A transformer's automatic layers are rectified by default (mlfem.layers): say so.
        if reading is not None and reading[1] is None and self.layers and all(s.relu for s in self.layers):
            self.rectify = True
        self.adapter: FeatureAdapter = adapter if adapter is not None else adapter_for(model)

    @property
    def layer_names(self) -> list[str]:
        """Names of the modules read, in the order their maps are stacked."""
        return [spec.name for spec in self.layers]

    @property
    def settings(self) -> tuple[Any, ...]:
        """What, besides the layers, determines the maps: extractors with equal settings give
        the same map for the same layer (so one pass can serve several explainers)."""
        return (id(self.model), self.k, self.rectify, self.per_frame, self.adapter.describe())

    def check_fusion(self, fusion: Any) -> None:
        """Refuse a trained fusion that does not fit this extractor: other layers, the other
        reading (rectified or not), or another model. Untrained operators pass.

        Raises:
            ValueError: the message says what differs and how to fix it.
        """
        expected = getattr(fusion, "layer_names", None)
        if expected is not None and list(expected) != self.layer_names:
            raise ValueError(
                f"fusion {fusion!r} was trained on layers {list(expected)}, but this "
                f"explainer reads {self.layer_names}; use the same layers or retrain it"
            )
        trained_rectified = getattr(fusion, "rectify", None)
        if trained_rectified is not None and bool(trained_rectified) != self.rectify:
            raise ValueError(
                f"fusion {fusion!r} was trained on "
                f"{'rectified' if trained_rectified else 'unrectified'} layer outputs, but this "
                f"explainer reads them {'rectified' if self.rectify else 'unrectified'}; pass "
                f"rectify={bool(trained_rectified)} (layers='auto-rectified' for True) or retrain it"
            )
        # A trained fusion (NET) also knows which classifier it was trained for.
        check_model = getattr(fusion, "check_model", None)
        if callable(check_model):
            check_model(self.model)

    def layer_maps(self, images: Tensor) -> LayerMaps:
        """Run the model once on ``images`` (B, C, H, W) and return every layer's FEM map.

        Video clips (B, C, T, H, W) give maps (B, L, T, H, W). The maps are float32 (float64
        for float64 images), on the images' device.
        """
        stored: list[Tensor] = []
        logits = self.forward_layer_maps(images, lambda index, layer_map: stored.append(layer_map))
        with torch.inference_mode():
            maps = torch.stack(stored, dim=1).to(images.device)
        # Cloning outside inference mode returns ordinary tensors that callers may
        # modify in place or feed to autograd code.
        return LayerMaps(maps.clone(), logits)

    def forward_layer_maps(self, images: Tensor, deliver: Callable[[int, Tensor], None]) -> Any:
        """Run the model once, calling ``deliver(index, map)`` for each layer in layer order.

        Each map is (B, H, W) ((B, T, H, W) for clips): the layer's FEM map upsampled to the
        input size and min-max normalised (over the whole clip for clips), on the model's
        device. Returns the model's output, as an ordinary (non-inference) tensor.
        """
        size = map_size(images)

        def normalise(index: int, raw: Tensor) -> None:
            # The resized map is a fresh tensor (or the raw map itself): normalise in place.
            deliver(index, minmax_normalize_(resize_maps(raw, size), len(size)))

        return self.forward_raw_maps(images, normalise)

    def forward_raw_maps(self, images: Tensor, deliver: Callable[[int, Tensor], None]) -> Any:
        """Run the model once, calling ``deliver(index, raw)`` for each layer in layer order.

        ``raw`` is the layer's FEM map (B, h, w) ((B, t, h, w) for clips) at the layer's own
        resolution, neither
        resized nor normalised, float32 (float64 for float64 images), on the model's
        device, and owned by the callee. It is computed inside the layer's forward hook
        (or, for a small layer on the CPU, right after the forward pass) and delivered as
        soon as the layers before it in ``self.layers`` are delivered. Returns the model's output, as an
        ordinary (non-inference) tensor.

        A model that accepts only one batch size (a ``torch.export`` program exported
        with static shapes) is run on zero-padded batches of that size instead; FEM is
        computed per image, so the padding changes nothing.
        """
        check_images(images, clips=True)
        fixed = fixed_batch_size(self.model)
        if fixed is not None and images.shape[0] != fixed:
            return self._forward_in_fixed_batches(images, deliver, fixed)
        return self._forward_once(images, deliver)

    def _forward_in_fixed_batches(
        self, images: Tensor, deliver: Callable[[int, Tensor], None], fixed: int
    ) -> Any:
        count = images.shape[0]
        parts: list[list[Tensor]] = [[] for _ in self.layers]
        outputs = []
        for start in range(0, count, fixed):
            chunk = images[start : start + fixed]
            used = chunk.shape[0]
            if used < fixed:
                chunk = torch.cat([chunk, chunk.new_zeros(fixed - used, *chunk.shape[1:])])
            output = self._forward_once(chunk, lambda index, raw: parts[index].append(raw[:used]))
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"{type(self.model).__name__} accepts only batches of {fixed} and returns "
                    f"{type(output).__name__}, which mlfem cannot split back; pass {fixed} images at a time"
                )
            outputs.append(output[:used])
        for index, layer_parts in enumerate(parts):
            deliver(index, torch.cat(layer_parts))
        return torch.cat(outputs)

    def _forward_once(self, images: Tensor, deliver: Callable[[int, Tensor], None]) -> Any:
        out_dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        pending: dict[int, Tensor] = {}
        next_index = [0]
        seen = [False] * len(self.layers)

        def on_map(index: int, layer_map: Tensor) -> None:
            pending[index] = layer_map
            while next_index[0] in pending:
                deliver(next_index[0], pending.pop(next_index[0]))
                next_index[0] += 1

        # Small layers' FEM waits for the end of the pass (mlfem._deferred_fem).
        small = SmallLayerFEM(self.k) if compiled_mode() is None else None
        with torch.inference_mode():
            inputs = model_inputs(images, self.model)
            observe_input(self.adapter, inputs)
            callbacks = {
                spec.name: self._layer_callback(
                    index, spec, out_dtype, seen, on_map, tuple(inputs.shape), small
                )
                for index, spec in enumerate(self.layers)
            }
            with forward_hooks(self.model, callbacks):
                try:
                    logits = self.model(inputs)
                except RuntimeError as error:
                    clearer = explain_input_error(images, self.model, error)
                    if clearer is None:
                        raise
                    raise clearer from error
            for index, raw in small.maps() if small is not None else ():
                on_map(index, raw.to(out_dtype))
        missing = [spec.name for spec, ran in zip(self.layers, seen) if not ran]
        if missing:
            raise RuntimeError(
                f"layer(s) {', '.join(missing)} did not run during the forward pass of "
                f"{type(self.model).__name__}; choose modules that the model's forward calls"
            )
        return logits.clone() if isinstance(logits, Tensor) else logits

    def _layer_callback(self, index, spec, out_dtype, seen, on_map, input_shape, small):
        input_ndim = len(input_shape)

        def on_output(output: Tensor) -> None:
            if seen[index]:
                raise RuntimeError(
                    f"layer {spec.name!r} ran more than once in one forward pass, so it has no "
                    "single output to explain; choose the block that contains it instead"
                )
            seen[index] = True
            features = self.adapter(output, spec.name, spec.relu)
            if features.ndim != input_ndim:
                raise ValueError(
                    f"layer {spec.name!r} produced features of shape {tuple(features.shape)} for "
                    f"inputs of shape {input_shape}: FEM reads (B, C, H, W) layers of images and "
                    "(B, C, T, H, W) layers of clips; choose layers of the same kind as the input"
                )
            if small is not None and small.accepts(features):
                small.keep(index, features)
                return
            on_map(index, fem_saliency(features, self.k, per_frame=self.per_frame).to(out_dtype))

        return on_output
