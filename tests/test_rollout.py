"""Attention rollout: the formula on a tiny ViT checked against attention computed by hand,
fused attention switched off only for the call (restored after a failure too), models
without a class token, torchvision's ViT, refusals (Swin, CNNs), and the transformer
baselines (Grad-CAM, LayerCAM, CS-FEM) through the token adapter."""

from __future__ import annotations

import pytest
import torch
from tiny_models import TinyCNN, all_hooks, tiny_timm_swin, tiny_vit

from mlfem.explainers.registry import create_explainer, method_info
from mlfem.explainers.rollout import fused_attention_off

timm = pytest.importorskip("timm")


def attention_by_hand(model, images: torch.Tensor) -> list[torch.Tensor]:
    """Each block's softmax attention (B, heads, N, N), computed from its weights."""
    x = model.patch_embed(images)
    x = model._pos_embed(x)
    x = model.norm_pre(x)
    result = []
    for block in model.blocks:
        attn = block.attn
        b, n, c = x.shape
        qkv = attn.qkv(block.norm1(x)).reshape(b, n, 3, attn.num_heads, c // attn.num_heads)
        q, k, _ = qkv.permute(2, 0, 3, 1, 4)
        result.append(((q @ k.transpose(-2, -1)) * attn.scale).softmax(dim=-1))
        x = block(x)
    return result


def rollout_by_hand(attentions: list[torch.Tensor], fuse) -> torch.Tensor:
    rollout = None
    for attention in attentions:
        a = fuse(attention.double()) + torch.eye(attention.shape[-1], dtype=torch.float64)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout


@pytest.mark.parametrize(("fusion", "fuse"), [("mean", lambda a: a.mean(1)), ("max", lambda a: a.amax(1))])
def test_rollout_matches_the_formula(fusion: str, fuse) -> None:
    model = tiny_vit(reg_tokens=2)  # prefix: class token + 2 registers
    images = torch.randn(2, 3, 24, 40)
    with torch.no_grad():
        rollout = rollout_by_hand(attention_by_hand(model, images), fuse)
    row = rollout[:, 0, 3:].reshape(2, 3, 5).float()
    expected = torch.nn.functional.interpolate(row[:, None], size=(24, 40), mode="bilinear",
                                               align_corners=False)[:, 0]
    low = expected.amin(dim=(1, 2), keepdim=True)
    expected = (expected - low) / (expected.amax(dim=(1, 2), keepdim=True) - low)
    maps = create_explainer("rollout", model, head_fusion=fusion)(images)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-4)
    assert all(block.attn.fused_attn for block in model.blocks)  # restored


def test_fused_attention_is_restored_after_a_failure() -> None:
    model = tiny_vit()
    model.blocks[1].attn.fused_attn = False  # a user's own setting is kept as it was
    explainer = create_explainer("rollout", model)
    with pytest.raises(RuntimeError):
        explainer(torch.randn(1, 1, 32, 32))  # one channel: the patch embedding fails
    assert [block.attn.fused_attn for block in model.blocks] == [True, False]
    assert all_hooks(model) == 0
    with pytest.raises(ZeroDivisionError), fused_attention_off(model) as changed:
        assert len(changed) == 2 and not any(block.attn.fused_attn for block in model.blocks)
        raise ZeroDivisionError
    assert [block.attn.fused_attn for block in model.blocks] == [True, False]


def test_model_without_class_token_uses_the_mean_of_all_rows() -> None:
    model = tiny_vit(class_token=False, global_pool="avg")
    images = torch.randn(1, 3, 32, 32)
    explainer = create_explainer("rollout", model)
    assert explainer.token == "mean"
    with torch.no_grad():
        rollout = rollout_by_hand(attention_by_hand(model, images), lambda a: a.mean(1))
    coarse = rollout.mean(dim=1).reshape(1, 4, 4).float()
    maps = explainer(images)
    assert torch.equal(maps.argmax(), torch.nn.functional.interpolate(
        coarse[:, None], size=(32, 32), mode="bilinear", align_corners=False).argmax())
    with pytest.raises(ValueError, match="no class token"):
        create_explainer("rollout", model, token="class")


def test_torchvision_vit_weights_are_asked_for_the_call_only() -> None:
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                              mlp_dim=32, num_classes=3).eval()
    maps = create_explainer("rollout", model)(torch.randn(2, 3, 32, 32))
    assert maps.shape == (2, 32, 32) and float(maps.min()) == 0 and float(maps.max()) == 1
    assert all_hooks(model) == 0


def test_rollout_refuses_swin_and_cnns() -> None:
    with pytest.raises(ValueError, match="windows"):
        create_explainer("rollout", tiny_timm_swin())
    with pytest.raises(ValueError, match="vision transformer"):
        create_explainer("rollout", TinyCNN().eval())
    assert not method_info("rollout").uses_gradients


@pytest.mark.parametrize("method", ["gradcam", "layercam", "csfem", "fem", "mlfem", "rollout"])
def test_transformer_contract(method: str) -> None:
    model = tiny_vit()
    images = torch.randn(3, 3, 32, 48)
    maps = create_explainer(method, model)(images)
    assert maps.shape == (3, 32, 48) and maps.dtype == torch.float32
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1 and torch.isfinite(maps).all()
    assert all_hooks(model) == 0 and all(block.attn.fused_attn for block in model.blocks)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", ["gradcam", "layercam", "csfem"])
def test_gradient_baselines_read_the_last_block_input_of_a_class_token_vit(method: str) -> None:
    model = tiny_vit(depth=3)
    explainer = create_explainer(method, model)
    layer = explainer.layer_names[0] if hasattr(explainer, "layer_names") else explainer.layer.name
    assert layer == "blocks.1"
    maps = explainer(torch.randn(2, 3, 32, 32))
    assert (maps.amax(dim=(1, 2)) > 0).all()  # the class token's gradient reaches this block
    pooled = create_explainer(method, tiny_vit(depth=3, class_token=False, global_pool="avg"))
    assert (pooled.layer_names[0] if hasattr(pooled, "layer_names") else pooled.layer.name) == "blocks.2"
    swin = create_explainer(method, tiny_timm_swin())
    assert swin(torch.randn(1, 3, 32, 32)).shape == (1, 32, 32)
