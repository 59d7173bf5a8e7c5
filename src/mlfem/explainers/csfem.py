"""CS-FEM: a class-specific variant of FEM.

FEM (docs/design-decisions.md §1) keeps, in each channel ``c`` of a block's output ``A``, the
strong activations ``b_c = [A_c >= mu_c + k sigma_c]`` and weights them by the
channel mean ``mu_c``: ``sum_c b_c mu_c``. It ignores the class. CS-FEM weights
each channel's term by how much that channel votes for the target class ``y``:

    S_y = ReLU( sum_c b_c * mu_c * w_{y,c} )

When the network ends with global average pooling and a linear classifier (ResNet,
DenseNet), ``mu_c * w_{y,c}`` is exactly channel ``c``'s contribution to the logit
``y`` — so CS-FEM keeps FEM's statistical filtering of *where* a channel fires and
takes *how much it matters for class y* from the classifier: one forward pass, no
gradient. When the head is not a single linear layer on pooled features (VGG,
MobileNet), ``w_{y,c}`` is replaced by the spatial mean of the gradient of the
logit with respect to ``A_c`` — Grad-CAM's weight, equal to ``w_{y,c} / (h w)``
for a pooled linear head, hence the same map after normalisation — at the cost of
a backward pass. The ReLU keeps the evidence *for* the class, as Grad-CAM does.

Source and divergence: CS-FEM is attributed to the FEM authors' group (Zemmari,
Benois-Pineau et al.); we could not find its public description (paper or code)
through the sources available to us, so the formula above is our reading of
"FEM weighted by the classifier row of the target class", not a verified
reproduction. Choices that may differ from theirs: the channel term keeps
FEM's ``mu_c`` factor (``mu_c w_{y,c}``, the logit contribution) rather than
``w_{y,c}`` alone; negative class weights are kept before the final ReLU rather
than dropped channel by channel; the gradient fallback for non-linear heads.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from mlfem.explainers._gradient import TargetExplainer, capture_outputs
from mlfem.explainers.registry import register_explainer
from mlfem.features import ConvFeatureMap, adapter_for, observe_input
from mlfem.layers import LayerSpec, find_layers, resolve_layers
from mlfem.transformers import gradient_layer, is_transformer
from mlfem.normalize import minmax_normalize, resize_maps

__all__ = ["CSFEM"]

WeightSource = Literal["auto", "classifier", "gradient"]


@register_explainer
class CSFEM(TargetExplainer):
    """Class-specific FEM on one block.

    Args:
        model: a CNN classifier returning logits (B, K), in eval mode.
        layer: module name; by default the last block of :func:`mlfem.layers.find_layers`
            (a transformer's: :func:`mlfem.transformers.gradient_layer`).
        k: FEM threshold in standard deviations (``>=``), 2 as in the paper.
        weights: where the class weights come from. ``"auto"`` checks on the first
            call whether the logits equal ``classifier(mean_hw A)`` (a pooled linear
            head) and uses the classifier row if so — gradient-free, it then also runs
            under ``torch.inference_mode()`` — or falls back to pooled gradients
            otherwise (which need grad mode). ``"classifier"`` always uses the
            classifier row (the head must take C inputs); ``"gradient"`` always uses
            pooled gradients.
        classifier: name of the final ``nn.Linear``; by default the last one in
            ``model.named_modules()``.
        max_batch_size: explain at most this many images per pass.
    """

    name = "csfem"
    description = (
        "Class-specific FEM: FEM channel terms weighted by the target's classifier row; gradient-free only "
        "with a linear head on pooled features, otherwise pooled gradients (it then back-propagates)"
    )

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        k: float = 2.0,
        weights: WeightSource = "auto",
        classifier: str | None = None,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(model, max_batch_size=max_batch_size)
        k = float(k)
        if not math.isfinite(k):
            raise ValueError(f"k must be a finite number, got {k}")
        if weights not in ("auto", "classifier", "gradient"):
            raise ValueError(f"weights must be 'auto', 'classifier' or 'gradient', got {weights!r}")
        self.k = k
        self.weights = weights
        if layer is None:
            # A transformer's default is the block its class token's gradient reaches.
            self.layer: LayerSpec = (
                LayerSpec(gradient_layer(model)) if is_transformer(model) else find_layers(model)[-1]
            )
        else:
            self.layer = resolve_layers(model, [layer])[0]
        self.adapter = adapter_for(model)
        self.classifier_name = classifier if classifier is not None else self._last_linear_name(model)
        if weights == "classifier" and self.classifier_name is None:
            raise ValueError(f"weights='classifier' but {type(model).__name__} has no nn.Linear layer")
        if self.classifier_name is not None:
            head = model.get_submodule(self.classifier_name)
            if not isinstance(head, nn.Linear):
                raise TypeError(f"classifier {self.classifier_name!r} is a {type(head).__name__}, not nn.Linear")
        # Resolved on the first call in "auto" mode: "classifier" or "gradient".
        self._mode: str | None = None if weights == "auto" else weights

    @property
    def weight_source(self) -> str | None:
        """``"classifier"`` or ``"gradient"`` once known (``None`` before the first call in auto mode)."""
        return self._mode

    @property
    def may_need_gradients(self) -> bool:
        """Whether a call may back-propagate (and so cannot run under inference mode): true
        unless the weights are known to come from the linear classifier."""
        return self._mode != "classifier"

    @staticmethod
    def _last_linear_name(model: nn.Module) -> str | None:
        names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
        return names[-1] if names else None

    # The base class's grad-mode policy is decided per call here (see _explain_batch).
    def _check_grad_mode(self) -> None:
        if self._mode == "gradient" and torch.is_inference_mode_enabled():
            raise RuntimeError(
                "CSFEM uses pooled gradients for this model (its head is not a linear layer on "
                "pooled features) and cannot run under torch.inference_mode(); call it outside"
            )

    def _grad_context(self):  # type: ignore[override]
        return torch.no_grad() if self._mode != "gradient" else torch.enable_grad()

    def _explain_batch(self, inputs: Tensor, targets: Tensor | None) -> Tensor:
        size = (inputs.shape[-2], inputs.shape[-1])
        observe_input(self.adapter, inputs)
        if self._mode != "gradient":
            with torch.no_grad():
                activations, logits = self._forward(inputs, targets)
                head = self._head_for(activations, logits)
                if head is not None:
                    if targets is None:
                        targets = logits.argmax(dim=1)
                    class_weights = head.weight[targets].to(activations.dtype)
                    return self._map(activations, class_weights, size)
        # Pooled-gradient weights.
        if torch.is_inference_mode_enabled():
            self._check_grad_mode()
        with torch.enable_grad():
            with torch.no_grad(), capture_outputs(self.model, [self.layer.name], start_graph=True) as captured:
                logits = self._model_forward(inputs, targets)
            raw = self._captured(captured)
            if targets is None:
                targets = logits.detach().argmax(dim=1)
            score = logits.gather(1, targets.view(-1, 1)).sum()
            (gradient,) = torch.autograd.grad(score, raw)
        activations = self.adapter(raw.detach(), self.layer.name, self.layer.relu)
        gradient = self.adapter(gradient, self.layer.name, False)
        return self._map(activations, gradient.mean(dim=(2, 3)).to(activations.dtype), size)

    def _forward(self, inputs: Tensor, targets: Tensor | None) -> tuple[Tensor, Tensor]:
        with capture_outputs(self.model, [self.layer.name]) as captured:
            logits = self._model_forward(inputs, targets)
        raw = self._captured(captured)
        return self.adapter(raw, self.layer.name, self.layer.relu), logits

    def _captured(self, captured: dict[str, Tensor]) -> Tensor:
        name = self.layer.name
        if name not in captured:
            raise RuntimeError(f"layer {name!r} did not run during the forward pass of {type(self.model).__name__}")
        output = captured[name]
        if isinstance(self.adapter, ConvFeatureMap) and output.ndim != 4:
            raise ValueError(f"layer {name!r} produced a tensor of shape {tuple(output.shape)}; CS-FEM needs (B, C, H, W)")
        return output

    def _head_for(self, activations: Tensor, logits: Tensor) -> nn.Linear | None:
        """The linear head to take class weights from, or None to use gradients.

        In auto mode the choice is made once, by checking that the logits are the
        head applied to the pooled activations (so the weights are exact logit
        contributions); an explicit ``weights="classifier"`` only checks shapes.
        """
        if self.classifier_name is None:
            self._mode = "gradient"
            return None
        head = self.model.get_submodule(self.classifier_name)
        assert isinstance(head, nn.Linear)
        fits = head.in_features == activations.shape[1] and head.out_features == logits.shape[1]
        if self._mode == "classifier":
            if not fits:
                raise ValueError(
                    f"classifier {self.classifier_name!r} maps {head.in_features} features to "
                    f"{head.out_features} classes, but layer {self.layer.name!r} has "
                    f"{activations.shape[1]} channels and the model {logits.shape[1]} classes; "
                    "use weights='gradient'"
                )
            return head
        if fits:
            pooled = activations.mean(dim=(2, 3)).to(head.weight.dtype)
            predicted = nn.functional.linear(pooled, head.weight, head.bias)
            scale = float(logits.abs().max()) if logits.numel() else 1.0
            fits = torch.allclose(predicted.to(logits.dtype), logits, rtol=1e-3, atol=1e-4 * max(scale, 1e-6))
        self._mode = "classifier" if fits else "gradient"
        return head if fits else None

    def _map(self, activations: Tensor, class_weights: Tensor, size: tuple[int, int]) -> Tensor:
        dtype = torch.promote_types(activations.dtype, torch.float32)
        features = activations.to(dtype)
        variance, mean = torch.var_mean(features, dim=(2, 3), correction=0, keepdim=True)
        strong = features >= mean + self.k * variance.sqrt()
        channel_weights = mean[:, :, 0, 0] * class_weights.to(dtype)
        raw = torch.einsum("bc,bchw->bhw", channel_weights, strong.to(dtype)).clamp(min=0)
        return minmax_normalize(resize_maps(raw, size))
