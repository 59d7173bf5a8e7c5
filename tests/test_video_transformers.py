"""Video transformers (torchvision MViT and Swin3D): block discovery, the adapter that puts
their outputs on the clip's (t, h, w) grid, and MLFEM/FEM maps of clips.

The models are torchvision's own classes (MultiscaleBlock, SwinTransformerBlock, ...) in tiny
configurations with random weights, so the tests are fast; the real ``mvit_v2_s`` and
``swin3d_t`` are built once in tests marked slow (never downloaded)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import all_hooks

from mlfem import FEM, MLFEM, find_layers, resolve_layers
from mlfem.extractor import LayerMapExtractor
from mlfem.features import TokenFeatureMap, adapter_for
from mlfem.fem import fem_saliency
from mlfem.normalize import minmax_normalize, resize_maps
from mlfem.transformers import gradient_layer, is_transformer, token_layout
from mlfem.video_transformers import (
    VideoTokenFeatureMap,
    VideoTokenLayout,
    is_video_transformer,
    video_token_layout,
    video_transformer_blocks,
)

torchvision = pytest.importorskip("torchvision")
# Single-threaded (conftest.one_thread): on busy cores, OpenMP threads spin against each other.
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_mvit() -> torch.nn.Module:
    """MViT-v2 (relative positions, residual pooling) on 4x48x48 clips: 4 blocks, two of
    which pool the queries (stride 1x2x2), so the grids are 2x12x12, 2x6x6 and 2x3x3 (at
    least 9 tokens a frame: FEM's k=2 needs more than 5 values to pass the threshold)."""
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    def block(channels_in: int, channels_out: int, heads: int, stride_q: list[int]) -> MSBlockConfig:
        return MSBlockConfig(
            num_heads=heads, input_channels=channels_in, output_channels=channels_out,
            kernel_q=[3, 3, 3] if stride_q else [], kernel_kv=[3, 3, 3], stride_q=stride_q,
            stride_kv=[1, 2, 2],
        )

    torch.manual_seed(0)
    settings = [block(8, 16, 1, []), block(16, 16, 1, [1, 2, 2]), block(16, 32, 2, []),
                block(32, 32, 2, [1, 2, 2])]
    return MViT(
        spatial_size=(48, 48), temporal_size=4, block_setting=settings, residual_pool=True,
        residual_with_cls_embed=False, rel_pos_embed=True, proj_after_attn=True, num_classes=5,
    ).eval()


def tiny_swin3d() -> torch.nn.Module:
    """Video Swin with two stages (1 and 2 blocks, 8 and 16 channels), any clip size."""
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    torch.manual_seed(0)
    return SwinTransformer3d(
        patch_size=[2, 4, 4], embed_dim=8, depths=[1, 2], num_heads=[1, 2], window_size=[2, 4, 4],
        num_classes=5,
    ).eval()


MVIT_BLOCKS = ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
SWIN3D_BLOCKS = ["features.0.0", "features.2.0", "features.2.1"]


@pytest.mark.parametrize(("build", "blocks"), [(tiny_mvit, MVIT_BLOCKS), (tiny_swin3d, SWIN3D_BLOCKS)])
def test_every_block_is_discovered_and_read_rectified(build, blocks: list[str]) -> None:
    model = build()
    assert video_transformer_blocks(model) == blocks
    assert is_video_transformer(model) and is_transformer(model)
    assert find_layers(model) == [type(find_layers(model)[0])(name, relu=True) for name in blocks]
    assert isinstance(adapter_for(model), VideoTokenFeatureMap)
    # The MLP readings: the GELU inside every block's MLP.
    assert [s.name for s in resolve_layers(model, "auto-mlp")] == [f"{b}.mlp.1" for b in blocks]


def test_image_models_are_not_video_transformers() -> None:
    from torchvision.models import swin_transformer as swin

    image_swin = swin.SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 1],
                                      window_size=[2, 2], num_classes=3)
    assert not is_video_transformer(image_swin)
    assert isinstance(adapter_for(image_swin), TokenFeatureMap)
    assert video_transformer_blocks(torchvision.models.video.r3d_18()) == []
    with pytest.raises(ValueError, match="not a video transformer"):
        video_token_layout(image_swin)


def test_mvit_grids_are_those_its_blocks_return() -> None:
    # An MViT block returns (tokens, (t, h, w)); the hooks of the extractor see only the
    # tokens, so the layout computes the grids from the model: they must be the same.
    model = tiny_mvit()
    returned: dict[str, tuple[int, ...]] = {}
    handles = [
        model.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: returned.__setitem__(name, tuple(output[1]))
        )
        for name in MVIT_BLOCKS
    ]
    try:
        with torch.inference_mode():
            model(torch.randn(1, 3, 4, 48, 48))
    finally:
        for handle in handles:
            handle.remove()
    layout = video_token_layout(model)
    assert layout.prefix_tokens == 1 and not layout.channels_last
    assert {name: grid_out for name, _, grid_out in layout.grids} == returned
    assert returned == {"blocks.0": (2, 12, 12), "blocks.1": (2, 6, 6), "blocks.2": (2, 6, 6),
                        "blocks.3": (2, 3, 3)}


def _as_tokens(volumes: torch.Tensor, class_value: float) -> torch.Tensor:
    """(B, C, t, h, w) -> (B, 1 + t*h*w, C) with a class token first, as MViT lays them out."""
    batch, channels = volumes.shape[:2]
    patches = volumes.flatten(2).transpose(1, 2)
    return torch.cat([torch.full((batch, 1, channels), class_value), patches], dim=1)


def test_tokens_become_the_volume_without_the_class_token() -> None:
    layout = VideoTokenLayout(
        prefix_tokens=1, channels_last=False,
        grids=(("blocks.0", (2, 4, 4), (2, 4, 4)), ("blocks.1", (2, 4, 4), (2, 2, 2))),
    )
    adapter = VideoTokenFeatureMap(layout)
    volumes = torch.randn(2, 6, 2, 2, 2)
    tokens = _as_tokens(volumes, class_value=100.0)
    # The grid is found by the layer's block, for the block itself and a module inside it.
    torch.testing.assert_close(adapter(tokens, "blocks.1", False), volumes, rtol=0, atol=0)
    torch.testing.assert_close(adapter(tokens, "blocks.1.mlp.1", True), volumes.clamp(min=0), rtol=0, atol=0)
    # The tuple an MViT block returns carries its grid.
    wide = torch.randn(1, 3, 1, 2, 4)
    torch.testing.assert_close(adapter((_as_tokens(wide, 5.0), (1, 2, 4)), "other", False), wide)
    with pytest.raises(ValueError, match=r"'blocks.1' produced 10 tokens"):
        adapter(torch.zeros(2, 10, 6), "blocks.1", False)
    with pytest.raises(ValueError, match="feature volume"):
        adapter(torch.zeros(2, 3, 4, 5), "blocks.0", False)


def test_volumes_channels_last_are_permuted_and_channels_first_pass() -> None:
    volumes = torch.randn(2, 3, 4, 5, 6)  # (B, C, T, H, W)
    swin = VideoTokenFeatureMap(VideoTokenLayout(prefix_tokens=0, channels_last=True))
    torch.testing.assert_close(swin(volumes.permute(0, 2, 3, 4, 1), "features.0.0", False), volumes)
    mvit = VideoTokenFeatureMap(VideoTokenLayout(prefix_tokens=1, channels_last=False))
    assert mvit(volumes, "conv_proj", False) is volumes


def test_mvit_layer_map_is_fem_of_the_block_volume() -> None:
    # The whole route written out for one block: its tokens on the grid, rectified, FEM over
    # the clip, resized trilinearly to the clip, normalised per clip.
    model = tiny_mvit()
    clips = torch.randn(2, 3, 4, 48, 48, generator=torch.Generator().manual_seed(1))
    captured = {}
    handle = model.get_submodule("blocks.1").register_forward_hook(
        lambda module, inputs, output: captured.__setitem__("out", output)
    )
    try:
        with torch.inference_mode():
            model(clips)
    finally:
        handle.remove()
    tokens, grid = captured["out"]
    volume = tokens[:, 1:].transpose(1, 2).reshape(2, tokens.shape[-1], *grid).clamp(min=0)
    expected = minmax_normalize(resize_maps(fem_saliency(volume), (4, 48, 48)), dims=3)
    maps = LayerMapExtractor(model).layer_maps(clips).maps
    assert maps.shape == (2, 4, 4, 48, 48)
    torch.testing.assert_close(maps[:, 1], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("build", "shape"), [(tiny_mvit, (2, 3, 4, 48, 48)), (tiny_swin3d, (2, 3, 5, 30, 34))])
@pytest.mark.parametrize("per_frame", [False, True])
def test_mlfem_and_fem_give_clip_maps_in_unit_range(build, shape, per_frame: bool) -> None:
    model = build()
    clips = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    for explainer in (MLFEM(model, per_frame=per_frame), FEM(model, per_frame=per_frame)):
        maps = explainer(clips)
        assert maps.shape == (shape[0], *shape[2:])
        assert torch.isfinite(maps).all()
        flat = maps.flatten(1)
        assert torch.equal(flat.amin(1), torch.zeros(shape[0]))
        assert torch.equal(flat.amax(1), torch.ones(shape[0]))
    assert all_hooks(model) == 0
    # FEM reads the deepest block, rectified as MLFEM's blocks are.
    assert FEM(model).layers[0].relu


def test_hooks_are_removed_when_the_clip_size_is_wrong() -> None:
    model = tiny_mvit()
    with pytest.raises(ValueError, match=r"built for clips of 4x48x48 .* got 4x64x64"):
        MLFEM(model)(torch.randn(1, 3, 4, 64, 64))
    assert all_hooks(model) == 0


def test_gradient_layer_and_image_only_methods() -> None:
    mvit, swin3d = tiny_mvit(), tiny_swin3d()
    # MViT predicts from its class token: the last block's patch tokens get no gradient.
    assert gradient_layer(mvit) == "blocks.2"
    assert gradient_layer(swin3d) == "features.2.1"
    with pytest.raises(ValueError, match=r"video transformer.*\(T, H, W\)"):
        token_layout(mvit)


@pytest.mark.slow
def test_real_mvit_v2_s_structure() -> None:
    """torchvision's mvit_v2_s (random weights): 16 blocks and the grids of a 16x224x224
    clip. Its forward pass (~25 s on 2 busy cores) is run by benchmarks/bench_video.py, not here."""
    model = torchvision.models.video.mvit_v2_s().eval()
    assert find_layers(model) == [type(find_layers(model)[0])(f"blocks.{i}", relu=True) for i in range(16)]
    grids = [grid_out for _, _, grid_out in video_token_layout(model).grids]
    assert grids == [(8, 56, 56)] + [(8, 28, 28)] * 2 + [(8, 14, 14)] * 11 + [(8, 7, 7)] * 2
    adapter = adapter_for(model)
    adapter.observe_clip((16, 224, 224))
    with pytest.raises(ValueError, match="16x224x224"):
        adapter.observe_clip((16, 112, 112))


@pytest.mark.slow
def test_real_swin3d_t_maps() -> None:
    model = torchvision.models.video.swin3d_t().eval()
    assert len(find_layers(model)) == 12  # depths 2, 2, 6, 2
    clips = torch.randn(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(3))
    maps = MLFEM(model)(clips)
    assert maps.shape == (1, 4, 64, 64)
    assert float(maps.amin()) == 0.0 and float(maps.amax()) == 1.0
    assert all_hooks(model) == 0
