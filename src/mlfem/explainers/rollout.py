"""Attention rollout (Abnar & Zuidema, ACL 2020): the transformer-specific reference map.

For every block ``l`` of a vision transformer, the attention matrices of its heads (B, h, N, N)
are fused into one (``head_fusion``: their mean by default, or max/min), the identity is added
for the residual connection, and each row is normalised to sum 1:
``A_l = norm_rows(fuse(attn_l) + I)``. The rollout multiplies them across layers,
``R = A_L ... A_2 A_1``, so that ``R[i, j]`` is how much of input token ``j`` flows into output
token ``i``. The map is the class token's row over the patch tokens, put on the patch grid
(:class:`mlfem.features.TokenFeatureMap`), upsampled to the input and min-max normalised.

* Models without a class token (timm ViTs with ``class_token=False`` and global average
  pooling): their prediction reads the mean of all output tokens, so the map is the mean of
  all rows of ``R`` (``token="mean"`` asks for that on any model). With register or
  distillation tokens, ``token="class"`` reads the class token's row (the first token) and
  drops every prefix token from the columns.
* timm computes attention with ``scaled_dot_product_attention`` (``fused_attn``), which never
  builds the matrix: the explainer switches ``fused_attn`` off on every attention module for
  the call only and restores each module's own value afterwards, also when the forward pass
  fails (try/finally). torchvision's ``nn.MultiheadAttention`` is asked for per-head weights
  (``need_weights=True, average_attn_weights=False``) through a forward pre-hook, removed after
  the call.
* Swin's attention is local to windows, so no token attends to all others and rollout is not
  defined: Swin models are refused with that explanation.

Class-agnostic and gradient-free: one forward pass under ``torch.inference_mode()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mlfem.explainers.base import Explainer
from mlfem.explainers.registry import register_explainer
from mlfem.extractor import model_inputs
from mlfem.features import TokenFeatureMap
from mlfem.normalize import minmax_normalize, resize_maps
from mlfem.transformers import token_layout, transformer_blocks

__all__ = ["AttentionRollout", "fused_attention_off"]

HeadFusion = Literal["mean", "max", "min"]


@contextlib.contextmanager
def fused_attention_off(model: nn.Module) -> Iterator[list[nn.Module]]:
    """Switch timm's fused attention off on every module of ``model`` for the block, so that
    the attention matrix is built (and passes through ``attn_drop``); each module's own
    setting is restored on exit, also when the block raises. Yields the modules changed."""
    changed = [(m, m.fused_attn) for m in model.modules() if isinstance(getattr(m, "fused_attn", None), bool)]
    try:
        for module, _ in changed:
            module.fused_attn = False
        yield [module for module, _ in changed]
    finally:
        for module, value in changed:
            module.fused_attn = value


@register_explainer
class AttentionRollout(Explainer):
    """Attention rollout of a vision transformer (see the module docs).

    Args:
        model: a timm ViT/DeiT/EVA/BEiT or torchvision ViT, in eval mode.
        head_fusion: how a block's heads become one matrix: ``"mean"`` (the paper), ``"max"``
            or ``"min"``.
        token: ``"auto"`` (the class token's row when the model has prefix tokens, the mean
            of all rows otherwise), ``"class"`` or ``"mean"``.
    """

    name = "rollout"
    description = (
        "attention rollout of a vision transformer: head-fused attention + identity, multiplied "
        "across blocks, class token's row (Abnar & Zuidema 2020)"
    )
    needs_gradients = False

    def __init__(self, model: nn.Module, head_fusion: HeadFusion = "mean", token: str = "auto") -> None:
        super().__init__(model)
        if head_fusion not in ("mean", "max", "min"):
            raise ValueError(f"head_fusion must be 'mean', 'max' or 'min', got {head_fusion!r}")
        if token not in ("auto", "class", "mean"):
            raise ValueError(f"token must be 'auto', 'class' or 'mean', got {token!r}")
        blocks = transformer_blocks(model)
        if not blocks:
            raise ValueError(
                f"attention rollout needs a vision transformer; {type(model).__name__} is not one "
                "mlfem recognises (timm ViT/DeiT/EVA/BEiT, torchvision ViT)"
            )
        layout = token_layout(model)
        if layout.channels_last:
            raise ValueError(
                "attention rollout is not defined for Swin: its attention is local to windows, "
                "so no token's attention covers the image; use mlfem, gradcam or layercam"
            )
        self.head_fusion = head_fusion
        self.attention_modules = [self._attention_source(model, block) for block in blocks]
        self.adapter = TokenFeatureMap(layout)
        prefix = layout.prefix_tokens
        self.token = token if token != "auto" else ("mean" if prefix == 0 else "class")
        if self.token == "class" and prefix == 0:
            raise ValueError(f"{type(model).__name__} has no class token; use token='mean'")

    @staticmethod
    def _attention_source(model: nn.Module, block: str) -> tuple[str, str]:
        """(module to hook, kind): timm's ``attn.attn_drop`` (the softmax output when fused
        attention is off) or torchvision's ``self_attention`` (per-head weights asked for)."""
        modules = dict(model.named_modules())
        if f"{block}.attn.attn_drop" in modules:
            return f"{block}.attn.attn_drop", "matrix"
        if isinstance(modules.get(f"{block}.self_attention"), nn.MultiheadAttention):
            return f"{block}.self_attention", "multihead"
        raise ValueError(f"block {block!r} has no attention module that attention rollout can read")

    def explain(self, images: Tensor, targets: Tensor | None = None) -> Tensor:
        """Rollout maps (B, H, W) in [0, 1]; ``targets`` is ignored (class-agnostic)."""
        self.check_images(images)
        out_dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        with torch.inference_mode():
            inputs = model_inputs(images, self.model)
            rollout = self._rollout(inputs)
            rows = rollout[:, 0] if self.token == "class" else rollout.mean(dim=1)
            self.adapter.observe_input((inputs.shape[-2], inputs.shape[-1]))
            grid = self.adapter(rows.unsqueeze(-1), "rollout", False)[:, 0]
            maps = minmax_normalize(resize_maps(grid.float(), (images.shape[-2], images.shape[-1])))
        return maps.to(images.device, out_dtype).clone()

    def _rollout(self, inputs: Tensor) -> Tensor:
        state: dict[str, Tensor] = {}
        handles: list[Any] = []

        def on_attention(attention: Tensor) -> None:
            if attention.ndim != 4 or attention.shape[-1] != attention.shape[-2]:
                raise ValueError(f"expected attention (B, heads, N, N), got {tuple(attention.shape)}")
            fused = {"mean": lambda a: a.mean(dim=1), "max": lambda a: a.amax(dim=1),
                     "min": lambda a: a.amin(dim=1)}[self.head_fusion](attention.double())
            fused = fused + torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
            fused = fused / fused.sum(dim=-1, keepdim=True)
            state["rollout"] = fused if "rollout" not in state else fused @ state["rollout"]

        def ask_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

        def matrix_hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            on_attention(output)

        def multihead_hook(module: nn.Module, args: tuple, output: tuple) -> None:
            on_attention(output[1])

        try:
            with fused_attention_off(self.model):
                for name, kind in self.attention_modules:
                    module = self.model.get_submodule(name)
                    if kind == "multihead":
                        handles.append(module.register_forward_pre_hook(ask_weights, with_kwargs=True))
                        handles.append(module.register_forward_hook(multihead_hook))
                    else:
                        handles.append(module.register_forward_hook(matrix_hook))
                self.model(inputs)
        finally:
            for handle in handles:
                handle.remove()
        if "rollout" not in state:
            raise RuntimeError(f"no attention was recorded during the forward pass of {type(self.model).__name__}")
        return state["rollout"]
