"""Small layers' FEM computed together after the forward pass (mlfem._deferred_fem): the same
maps as FEM in each hook, in layer order, safe from in-place changes, and off where it must be."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mlfem._deferred_fem
import mlfem.fem
from mlfem import MLFEM, fem_saliency
from mlfem.extractor import LayerMapExtractor


class MixedSizes(nn.Module):
    """Large and small blocks interleaved, two small ones of one map size (one group), a
    small one of another size, and a block whose output the next block changes in place."""

    def __init__(self) -> None:
        super().__init__()
        self.large = nn.Sequential(nn.Conv2d(3, 80, 3, padding=1), nn.ReLU())  # 80 x 32 x 32
        self.small_a = nn.Sequential(nn.Conv2d(80, 12, 3, stride=2, padding=1), nn.ReLU())  # 12 x 16 x 16
        self.small_b = nn.Sequential(nn.Conv2d(12, 20, 3, padding=1), nn.ReLU())  # 20 x 16 x 16
        self.small_c = nn.Sequential(nn.Conv2d(20, 24, 3, stride=2, padding=1), nn.ReLU())  # 24 x 8 x 8
        self.head = nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.small_a(self.large(x))
        y = self.small_b(x)
        y.mul_(-1.0).add_(3.0)  # changes small_b's output after its hook ran
        return self.head(self.small_c(y.relu()).mean(dim=(2, 3)))


LAYERS = ["large", "small_a", "small_b", "small_c"]


def _reference_maps(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """FEM of each layer's output as it was when its hook ran."""
    outputs: list[torch.Tensor] = []
    handles = [
        model.get_submodule(name).register_forward_hook(lambda m, i, o: outputs.append(o.clone()))
        for name in LAYERS
    ]
    try:
        with torch.inference_mode():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return [fem_saliency(output) for output in outputs]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_deferred_maps_equal_fem_in_each_hook(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = MixedSizes().eval().to(dtype)
    images = torch.randn(3, 3, 32, 32, dtype=dtype)
    assert [mlfem._deferred_fem.SmallLayerFEM.accepts(torch.zeros(1, *shape)) for shape in
            [(80, 32, 32), (12, 16, 16), (20, 16, 16), (24, 8, 8)]] == [False, True, True, True]
    delivered: list[tuple[int, torch.Tensor]] = []
    extractor = LayerMapExtractor(model, LAYERS)
    extractor.forward_raw_maps(images, lambda index, raw: delivered.append((index, raw)))
    assert [index for index, _ in delivered] == [0, 1, 2, 3]  # layer order, deferred or not
    tolerance = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    for (_, raw), expected in zip(delivered, _reference_maps(model, images)):
        assert raw.dtype == dtype
        torch.testing.assert_close(raw, expected, **tolerance)


@pytest.mark.parametrize("fusion", ["add", "max", "top", "fem"])
def test_mlfem_is_the_same_with_and_without_deferral(fusion: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    model = MixedSizes().eval()
    images = torch.randn(2, 3, 32, 32)
    deferred, deferred_layers = MLFEM(model, LAYERS, fusion=fusion)(images, return_layers=True)
    streamed = MLFEM(model, LAYERS, fusion=fusion)(images)
    monkeypatch.setattr(mlfem._deferred_fem, "_ELEMENTS_PER_IMAGE", 0)  # every layer in its hook
    in_hooks, in_hook_layers = MLFEM(model, LAYERS, fusion=fusion)(images, return_layers=True)
    torch.testing.assert_close(deferred_layers, in_hook_layers, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(deferred, in_hooks, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(streamed, in_hooks, rtol=1e-5, atol=1e-6)


def test_no_deferral_under_the_compiled_route_or_for_clips(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlfem.extractor

    accepts = mlfem._deferred_fem.SmallLayerFEM.accepts
    assert not accepts(torch.zeros(2, 8, 4, 4, 4))  # a clip's (B, C, T, H, W)
    assert not accepts(torch.zeros(2, 8, 0, 4))  # nothing to compute
    kept: list[int] = []
    original = mlfem._deferred_fem.SmallLayerFEM.keep
    monkeypatch.setattr(
        mlfem._deferred_fem.SmallLayerFEM, "keep", lambda self, *a: kept.append(1) or original(self, *a)
    )
    model = MixedSizes().eval()
    LayerMapExtractor(model, LAYERS).layer_maps(torch.randn(1, 3, 32, 32))
    assert len(kept) == 3  # the three small blocks
    kept.clear()
    # Under the compiled route every layer goes through fem_saliency in its hook.
    monkeypatch.setattr(mlfem.extractor, "compiled_mode", lambda: "default")
    monkeypatch.setattr(mlfem.fem, "compiled_mode", lambda: None)  # run FEM eagerly all the same
    LayerMapExtractor(model, LAYERS).layer_maps(torch.randn(1, 3, 32, 32))
    assert kept == []
