"""Vision transformers: token adapter (prefix tokens, grids, non-square inputs, Swin's
channels-last maps), automatic layer discovery, hooks removed, .pt2 programs, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import tiny_timm_swin, tiny_vit
from torch import nn

from mlfem import LayerMapExtractor, find_layers, resolve_layers
from mlfem.features import ConvFeatureMap, TokenFeatureMap, adapter_for
from mlfem.transformers import token_layout, transformer_blocks

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _block_output(model: nn.Module, name: str, images: torch.Tensor) -> torch.Tensor:
    seen = {}
    handle = model.get_submodule(name).register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    try:
        with torch.no_grad():
            model(images)
    finally:
        handle.remove()
    return seen["out"]


@pytest.mark.parametrize(
    ("options", "prefix"),
    [({}, 1), ({"reg_tokens": 4}, 5), ({"class_token": False, "global_pool": "avg"}, 0),
     ({"no_embed_class": True, "reg_tokens": 2}, 3)],
)
def test_prefix_tokens_come_from_the_model(options: dict, prefix: int) -> None:
    model = tiny_vit(**options)
    assert token_layout(model).prefix_tokens == prefix == model.num_prefix_tokens
    images = torch.randn(2, 3, 32, 32)
    adapter = adapter_for(model)
    adapter.observe_input((32, 32))
    tokens = _block_output(model, "blocks.1", images)
    maps = adapter(tokens, "blocks.1", rectify=False)
    assert maps.shape == (2, 32, 4, 4)
    # Patch token i (row-major) is grid cell (i // 4, i % 4); the prefix tokens are gone.
    assert torch.equal(maps[:, :, 1, 2], tokens[:, prefix + 1 * 4 + 2])
    assert torch.equal(adapter(tokens, "blocks.1", rectify=True), maps.clamp(min=0))


def test_distilled_deit_drops_class_and_distillation_tokens() -> None:
    torch.manual_seed(0)
    model = timm.models.deit.VisionTransformerDistilled(
        img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=3
    ).eval()
    assert token_layout(model).prefix_tokens == 2
    extractor = LayerMapExtractor(model)
    assert extractor.layer_names == ["blocks.0"]
    assert extractor.layer_maps(torch.randn(1, 3, 32, 32)).maps.shape == (1, 1, 32, 32)


@pytest.mark.parametrize("size", [(32, 32), (48, 80), (80, 24)])
def test_non_square_inputs_and_other_resolutions(size: tuple[int, int]) -> None:
    model = tiny_vit()
    adapter = adapter_for(model)
    adapter.observe_input(size)
    maps = adapter(_block_output(model, "blocks.0", torch.randn(1, 3, *size)), "blocks.0", False)
    assert maps.shape[-2:] == (size[0] // 8, size[1] // 8)
    result = LayerMapExtractor(model).layer_maps(torch.randn(2, 3, *size))
    assert result.maps.shape == (2, 2, *size) and result.logits.shape == (2, 3)
    assert _no_hooks(model)


def test_padded_patch_embedding_gives_the_ceiling_grid() -> None:
    model = tiny_vit(dynamic_img_pad=True)
    assert token_layout(model).grid((30, 41)) == (4, 6)
    assert LayerMapExtractor(model).layer_maps(torch.randn(1, 3, 30, 41)).maps.shape == (1, 2, 30, 41)


def test_tokens_that_do_not_fit_the_grid_are_named() -> None:
    adapter = TokenFeatureMap(token_layout(tiny_vit()))
    adapter.observe_input((32, 32))
    with pytest.raises(ValueError, match="'blocks.0' produced 7 tokens"):
        adapter(torch.zeros(1, 7, 4), "blocks.0", False)
    with pytest.raises(ValueError, match="tokens"):
        adapter(torch.zeros(3, 4), "x", False)


def test_swin_channels_last_stages() -> None:
    model = tiny_timm_swin()
    layout = token_layout(model)
    assert layout.channels_last and layout.prefix_tokens == 0
    names = [spec.name for spec in find_layers(model)]
    assert names == ["layers.0.blocks.0", "layers.1.blocks.0"]
    images = torch.randn(2, 3, 32, 32)
    adapter = adapter_for(model)
    adapter.observe_input((32, 32))
    nhwc = _block_output(model, "layers.1.blocks.0", images)
    assert nhwc.shape == (2, 4, 4, 32)
    assert torch.equal(adapter(nhwc, "layers.1.blocks.0", False), nhwc.permute(0, 3, 1, 2))
    # The MLP of the second stage runs on tokens of the half-resolution grid.
    mlp = _block_output(model, "layers.1.blocks.0.mlp.act", images)
    assert adapter(mlp, "x", False).shape == (2, mlp.shape[-1], 4, 4)
    for layers in ("auto", "auto-mlp", "auto-rectified"):
        assert LayerMapExtractor(model, layers=layers).layer_maps(images).maps.shape == (2, 2, 32, 32)
    assert _no_hooks(model)


def _torchvision_models() -> dict[str, nn.Module]:
    from torchvision.models import swin_transformer as swin
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return {
        "vit": VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                 mlp_dim=32, num_classes=3),
        "swin": swin.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                     window_size=[4, 4], num_classes=3),
        "swin_v2": swin.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                        window_size=[4, 4], num_classes=3, block=swin.SwinTransformerBlockV2,
                                        downsample_layer=swin.PatchMergingV2),
    }


@pytest.mark.parametrize(
    ("kind", "blocks", "mlp"),
    [("vit", ["encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1"],
      ["encoder.layers.encoder_layer_0.mlp.1", "encoder.layers.encoder_layer_1.mlp.1"]),
     ("swin", ["features.1.0", "features.3.0"], ["features.1.0.mlp.1", "features.3.0.mlp.1"]),
     ("swin_v2", ["features.1.0", "features.3.0"], ["features.1.0.mlp.1", "features.3.0.mlp.1"])],
)
def test_torchvision_transformers(kind: str, blocks: list[str], mlp: list[str]) -> None:
    model = _torchvision_models()[kind].eval()
    assert [s.name for s in find_layers(model)] == blocks
    assert [s.name for s in resolve_layers(model, "auto-mlp")] == mlp
    assert token_layout(model).prefix_tokens == (1 if kind == "vit" else 0)
    for layers in ("auto", "auto-mlp"):
        result = LayerMapExtractor(model, layers=layers).layer_maps(torch.randn(2, 3, 32, 32))
        assert result.maps.shape == (2, 2, 32, 32) and torch.isfinite(result.maps).all()
    assert _no_hooks(model)


@pytest.mark.parametrize(
    ("name", "options", "count"),
    [("eva02_tiny_patch14_224", {"img_size": 28, "depth": 2, "embed_dim": 32, "num_heads": 2}, 2),
     ("beit_base_patch16_224", {"img_size": 32, "depth": 2, "embed_dim": 32, "num_heads": 2}, 2)],
)
def test_eva_and_beit(name: str, options: dict, count: int) -> None:
    model = timm.create_model(name, pretrained=False, num_classes=3, **options).eval()
    assert transformer_blocks(model) == [f"blocks.{i}" for i in range(count)]
    size = options["img_size"]
    for layers in ("auto", "auto-mlp"):
        maps = LayerMapExtractor(model, layers=layers).layer_maps(torch.randn(1, 3, size, size)).maps
        assert maps.shape == (1, count, size, size)


def test_cnns_keep_their_adapter_and_layers() -> None:
    from tiny_models import TinyCNN

    model = TinyCNN()
    assert isinstance(adapter_for(model), ConvFeatureMap) and transformer_blocks(model) == []
    with pytest.raises(ValueError, match="auto-mlp"):
        resolve_layers(model, "auto-mlp")


def test_exported_program(tmp_path: Path) -> None:
    from mlfem.models import load_model

    model = tiny_vit(reg_tokens=2, dynamic_img_size=False)
    images = torch.randn(1, 3, 32, 32)
    path = tmp_path / "vit.pt2"
    torch.export.save(torch.export.export(model, (images,)), str(path))
    loaded = load_model(str(path)).model
    assert token_layout(loaded).prefix_tokens is None  # not recorded: inferred from the grid
    for layers in ("auto", "auto-mlp"):
        ours = LayerMapExtractor(loaded, layers=layers)
        assert ours.layer_names == LayerMapExtractor(model, layers=layers).layer_names
        expected = LayerMapExtractor(model, layers=layers).layer_maps(images).maps
        torch.testing.assert_close(ours.layer_maps(images).maps, expected)


def test_explain_cli_with_a_timm_vit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import numpy as np
    from PIL import Image

    from mlfem.cli import main

    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    code = main(["explain", str(image), "--model", "timm:vit_tiny_patch16_224", "--fit", "none",
                 "--out", str(out), "--device", "cpu"])
    assert code == 0 and "random weights" in capsys.readouterr().err
    saliency = np.load(out / "x.npy")
    assert saliency.shape == (50, 70) and (out / "x_layers.png").is_file()


def test_mlp_readings_reach_mlfem_and_fem() -> None:
    from mlfem.explainers.registry import create_explainer

    model = tiny_vit()
    rectified = create_explainer("mlfem", model, layers="auto-mlp-rectified")
    assert rectified.layer_names == ["blocks.0.mlp.act", "blocks.1.mlp.act"] and rectified.rectify
    assert all(spec.relu for spec in rectified.layers)
    assert not create_explainer("mlfem", model, layers="auto-mlp").rectify
    fem = create_explainer("fem", model, layers="auto-mlp-rectified")
    assert fem.layer_name == "blocks.1.mlp.act" and fem.rectify
    images = torch.randn(1, 3, 32, 32)
    assert rectified(images).shape == fem(images).shape == (1, 32, 32)


def test_transformer_blocks_are_read_rectified_by_default() -> None:
    from mlfem.explainers.registry import create_explainer

    model = tiny_vit()
    images = torch.randn(1, 3, 32, 32)
    default = LayerMapExtractor(model)
    assert default.rectify and all(spec.relu for spec in default.layers)
    assert torch.equal(default.layer_maps(images).maps,
                       LayerMapExtractor(model, layers="auto-rectified").layer_maps(images).maps)
    signed = LayerMapExtractor(model, layers="auto-signed")
    assert not signed.rectify and not any(spec.relu for spec in signed.layers)
    named = LayerMapExtractor(model, layers="blocks.0,blocks.1")  # named blocks: as they are
    assert torch.equal(named.layer_maps(images).maps, signed.layer_maps(images).maps)
    assert create_explainer("fem", model).rectify
    assert not create_explainer("fem", model, layers="auto-signed").rectify
    # CNNs keep their reading: nothing rectified unless the network does it.
    from tiny_models import TinyCNN

    assert not LayerMapExtractor(TinyCNN()).rectify
