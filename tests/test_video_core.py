"""FEM and MLFEM on video clips (B, C, T, H, W): the formula on feature volumes, trilinear
resizing and its extrema, per-clip normalisation, the fusions, and layer discovery on
torchvision's video CNNs (random weights, never downloaded)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlfem import FEM, MLFEM, fem_saliency, find_layers
from mlfem.extractor import LayerMapExtractor, check_images
from mlfem.fusion import fuse
from mlfem.normalize import minmax_normalize, minmax_normalize_, resize_maps, resized_extrema
from tiny_models import TinyCNN, TinyCNN3D, all_hooks


def _direct_fem(volumes: torch.Tensor, k: float, over: tuple[int, ...]) -> torch.Tensor:
    """The formula written out: channel statistics over the dimensions ``over``."""
    mean = volumes.mean(dim=over, keepdim=True)
    std = volumes.std(dim=over, correction=0, keepdim=True)
    return ((volumes >= mean + k * std) * mean).sum(1)


def test_volume_fem_takes_channel_statistics_over_the_whole_clip() -> None:
    volumes = torch.relu(torch.randn(2, 12, 5, 6, 7, generator=torch.Generator().manual_seed(0)))
    result = fem_saliency(volumes.float(), k=2.0)
    assert result.shape == (2, 5, 6, 7) and result.dtype == torch.float32
    expected = _direct_fem(volumes.double(), 2.0, over=(2, 3, 4))
    torch.testing.assert_close(result.double(), expected, rtol=1e-5, atol=1e-5)


def test_per_frame_fem_is_image_fem_on_each_frame() -> None:
    volumes = torch.relu(torch.randn(2, 10, 4, 5, 6, generator=torch.Generator().manual_seed(1)))
    result = fem_saliency(volumes, k=1.5, per_frame=True)
    for frame in range(volumes.shape[2]):
        torch.testing.assert_close(result[:, frame], fem_saliency(volumes[:, :, frame], k=1.5))
    torch.testing.assert_close(result.double(), _direct_fem(volumes.double(), 1.5, over=(3, 4)),
                               rtol=1e-5, atol=1e-5)


def test_clip_statistics_let_a_busy_frame_stand_out() -> None:
    # One channel, quiet everywhere except a burst in frame 2: over the clip only the burst
    # passes the threshold; per frame, every frame has its own strongest pixels.
    volumes = torch.full((1, 1, 4, 3, 3), 1.0)
    volumes[0, 0, :, 0, 0] = 1.5
    volumes[0, 0, 2] = 6.0
    volumes[0, 0, 2, 1, 1] = 9.0
    over_clip = fem_saliency(volumes, k=1.0)
    assert over_clip[0, 2].count_nonzero() == 9
    assert over_clip[0, [0, 1, 3]].count_nonzero() == 0
    per_frame = fem_saliency(volumes, k=1.0, per_frame=True)
    assert per_frame[0, 0, 0, 0] > 0 and per_frame[0, 2, 1, 1] > 0


def test_volume_fem_keeps_ties_and_chunking_changes_nothing() -> None:
    constant = torch.full((1, 2, 3, 2, 2), 0.5)
    torch.testing.assert_close(fem_saliency(constant), torch.full((1, 3, 2, 2), 1.0))
    volumes = torch.relu(torch.randn(3, 9, 4, 5, 5, generator=torch.Generator().manual_seed(2)))
    for per_frame in (False, True):
        torch.testing.assert_close(
            fem_saliency(volumes, per_frame=per_frame, chunk_elements=17),
            fem_saliency(volumes, per_frame=per_frame),
        )


def test_fem_refuses_other_ranks() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        fem_saliency(torch.zeros(1, 2, 3, 4, 5, 6))


@pytest.mark.parametrize(
    ("shape", "size"),
    [((2, 3, 4, 5), (16, 20, 22)), ((1, 2, 7, 3, 9), (2, 28, 4)), ((2, 6, 8, 8), (3, 5, 17))],
)
def test_trilinear_resize_and_its_extrema(shape: tuple[int, ...], size: tuple[int, int, int]) -> None:
    maps = torch.rand(shape, generator=torch.Generator().manual_seed(3))
    resized = resize_maps(maps, size)
    assert resized.shape == (*shape[:-3], *size)
    flat = maps.reshape(-1, 1, *shape[-3:])
    expected = F.interpolate(flat, size=size, mode="trilinear", align_corners=False)
    torch.testing.assert_close(resized, expected.view_as(resized))
    low, high = resized_extrema(maps, size)
    assert low.shape == (*shape[:-3], 1, 1, 1)
    torch.testing.assert_close(low.flatten(), resized.flatten(-3).amin(-1).flatten(), atol=1e-6, rtol=0)
    torch.testing.assert_close(high.flatten(), resized.flatten(-3).amax(-1).flatten(), atol=1e-6, rtol=0)


def test_resize_refuses_a_size_of_one_dimension() -> None:
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        resize_maps(torch.zeros(1, 4, 4), (4,))


def test_minmax_over_a_clip_normalises_the_clip_not_each_frame() -> None:
    maps = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(4))
    maps[:, 1] *= 0.1  # a quiet frame
    clip = minmax_normalize(maps, dims=3)
    assert torch.equal(clip.flatten(1).amin(1), torch.zeros(2))
    assert torch.equal(clip.flatten(1).amax(1), torch.ones(2))
    assert clip[:, 1].amax() < 0.2  # stays quiet next to the others
    torch.testing.assert_close(minmax_normalize_(maps.clone(), dims=3), clip)
    assert torch.equal(minmax_normalize(torch.full((1, 2, 2, 2), 3.0), dims=3), torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match="dims"):
        minmax_normalize(maps, dims=4)


@pytest.mark.parametrize("operator", ["add", "max", "top", "fem"])
def test_fusing_clips_equals_fusing_the_frames_as_one_map(operator: str) -> None:
    # Each algebraic step is point-wise and normalisation is per clip, so fusing (B, L, T, H, W)
    # is fusing the same values laid out as one (B, L, T*H, W) map.
    maps = torch.rand(2, 4, 3, 5, 6, generator=torch.Generator().manual_seed(5))
    fused = fuse(maps, operator)
    assert fused.shape == (2, 3, 5, 6)
    torch.testing.assert_close(fused, fuse(maps.view(2, 4, 15, 6), operator).view(2, 3, 5, 6))
    interleaved = fuse(maps, operator, normalize="interleaved")
    torch.testing.assert_close(
        interleaved, fuse(maps.view(2, 4, 15, 6), operator, normalize="interleaved").view(2, 3, 5, 6)
    )


def _clips(batch: int = 2, frames: int = 6, size: int = 12, seed: int = 6) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def test_mlfem_on_clips_gives_clip_maps_and_the_fast_route_agrees() -> None:
    model = TinyCNN3D().eval()
    clips = _clips()
    explainer = MLFEM(model)
    assert explainer.layer_names == ["features.1", "features.3"]  # found by probing a clip
    fused, layer_maps = explainer(clips, return_layers=True)
    assert fused.shape == (2, 6, 12, 12) and layer_maps.shape == (2, 2, 6, 12, 12)
    assert torch.equal(layer_maps.flatten(2).amax(-1), torch.ones(2, 2))  # per clip, per layer
    # The linear route (maps weighted at their own resolution) equals fusing the full maps.
    torch.testing.assert_close(explainer(clips), fused, atol=1e-5, rtol=0)
    # The per-layer maps are FEM of each layer, trilinearly resized and normalised per clip.
    volumes = {}
    handles = [model.features[i].register_forward_hook(
        lambda m, i_, o, i=i: volumes.__setitem__(i, o.detach())) for i in (1, 3)]
    try:
        with torch.no_grad():
            model(clips)
    finally:
        for handle in handles:
            handle.remove()
    for index, layer in enumerate((1, 3)):
        expected = minmax_normalize(resize_maps(fem_saliency(volumes[layer]), (6, 12, 12)), dims=3)
        torch.testing.assert_close(layer_maps[:, index], expected, atol=1e-6, rtol=0)
    assert all_hooks(model) == 0


def test_per_frame_statistics_reach_the_maps() -> None:
    model = TinyCNN3D().eval()
    clips = _clips(seed=7)
    clip_stats = FEM(model)(clips)
    frame_stats = FEM(model, per_frame=True)(clips)
    assert frame_stats.shape == clip_stats.shape == (2, 6, 12, 12)
    assert not torch.allclose(frame_stats, clip_stats)
    assert MLFEM(model, per_frame=True).per_frame is True
    # Extractors with other statistics never share a forward pass.
    assert LayerMapExtractor(model).settings != LayerMapExtractor(model, per_frame=True).settings


def test_image_and_clip_mismatches_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"first convolution is 2-D: it takes images"):
        MLFEM(TinyCNN().eval())(_clips())
    with pytest.raises(ValueError, match="explains images only"):
        check_images(_clips())
    check_images(_clips(), clips=True)
    with pytest.raises(ValueError, match="T x H x W"):
        check_images(torch.zeros(1, 3, 0, 4, 4), clips=True)


def test_a_trained_net_fusion_refuses_clips() -> None:
    from mlfem.fusion.net import NetFusion

    with pytest.raises(ValueError, match="video clips"):
        NetFusion.__call__(object.__new__(NetFusion), torch.zeros(1, 2, 3, 4, 4))


@pytest.mark.parametrize(
    ("name", "count", "first", "last"),
    [
        ("r3d_18", 8, "layer1.0", "layer4.1"),
        ("mc3_18", 8, "layer1.0", "layer4.1"),
        ("r2plus1d_18", 8, "layer1.0", "layer4.1"),
        ("s3d", 9, "features.5", "features.15"),
    ],
)
def test_torchvision_video_cnns_are_discovered(name: str, count: int, first: str, last: str) -> None:
    from torchvision.models import video

    layers = [spec.name for spec in find_layers(getattr(video, name)())]
    assert (len(layers), layers[0], layers[-1]) == (count, first, last)


def test_mlfem_runs_on_r3d_18() -> None:
    from torchvision.models import video

    torch.manual_seed(0)
    model = video.r3d_18(num_classes=5).eval()
    clips = _clips(batch=1, frames=8, size=32, seed=8)
    maps, layer_maps = MLFEM(model)(clips, return_layers=True)
    assert maps.shape == (1, 8, 32, 32) and layer_maps.shape == (1, 8, 8, 32, 32)
    assert float(maps.amin()) == 0.0 and float(maps.amax()) == 1.0
    assert all_hooks(model) == 0


class _FramesPooledThen2D(torch.nn.Module):
    """A clip network that averages its frames away and continues in 2-D."""

    def __init__(self) -> None:
        super().__init__()
        self.volume = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.ReLU())
        self.image = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.image(self.volume(x).mean(2)).mean(dim=(1, 2, 3))


def test_a_2d_layer_of_a_clip_network_is_refused_by_name() -> None:
    model = _FramesPooledThen2D().eval()
    assert MLFEM(model, layers=["volume.1"])(_clips()).shape == (2, 6, 12, 12)
    with pytest.raises(ValueError, match=r"'image.1'.*same kind as the input"):
        MLFEM(model, layers=["volume.1", "image.1"])(_clips())
    assert all_hooks(model) == 0
