"""FEM and MLFEM explainers on real architectures with random weights and on tiny models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlfem import FEM, MLFEM, fem_saliency, fuse, minmax_normalize, resize_maps
from tiny_models import TinyCNN, all_hooks
from _cuda import requires_cuda
from _precision import HALF_PRECISION_BOUNDS, pcc_per_image


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def test_mlfem_shapes_range_and_layers(resnet18: nn.Module) -> None:
    images = torch.randn(3, 3, 64, 80)
    with MLFEM(resnet18, fusion="add") as explainer:
        fused, layers = explainer(images, return_layers=True)
    assert explainer.layer_names == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert fused.shape == (3, 64, 80) and layers.shape == (3, 8, 64, 80)
    assert fused.dtype == torch.float32
    for maps in (fused, layers):
        assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    torch.testing.assert_close(fused, fuse(layers, "add"))


def test_layer_maps_match_fem_on_captured_activations(resnet18: nn.Module) -> None:
    images = torch.randn(2, 3, 64, 64)
    captured: dict[str, torch.Tensor] = {}
    handles = [
        resnet18.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: captured.__setitem__(name, o.detach().clone())
        )
        for name in ("layer1.0", "layer4.1")
    ]
    try:
        with torch.no_grad():
            resnet18(images)
    finally:
        for handle in handles:
            handle.remove()
    maps = MLFEM(resnet18, layers=["layer1.0", "layer4.1"]).layer_maps(images).maps
    for index, name in enumerate(("layer1.0", "layer4.1")):
        expected = minmax_normalize(resize_maps(fem_saliency(captured[name]), (64, 64)))
        torch.testing.assert_close(maps[:, index], expected)


def test_fem_default_is_last_block_and_equals_mlfem_fem_fusion(resnet18: nn.Module) -> None:
    images = torch.randn(2, 3, 64, 64)
    fem = FEM(resnet18)
    assert fem.layer_name == "layer4.1"
    torch.testing.assert_close(fem(images), MLFEM(resnet18, fusion="fem")(images))
    torch.testing.assert_close(fem(images), MLFEM(resnet18, fusion="add", alpha=0.0)(images))


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_batch_results_equal_per_image_results(tiny_cnn: TinyCNN, batch: int) -> None:
    images = torch.randn(batch, 3, 20, 24)
    explainer = MLFEM(tiny_cnn, fusion="max")
    together = explainer(images)
    one_by_one = torch.cat([explainer(images[i : i + 1]) for i in range(batch)])
    torch.testing.assert_close(together, one_by_one)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("architecture", ["tiny", "resnet18"])
def test_half_precision_maps_match_float32(resnet18: nn.Module, architecture: str, dtype: torch.dtype) -> None:
    model, size = (TinyCNN().eval(), 32) if architecture == "tiny" else (resnet18, 96)
    images = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))
    reference = MLFEM(model, fusion="add")(images)
    try:
        maps = MLFEM(model.to(dtype), fusion="add")(images.to(dtype))
    finally:
        model.to(torch.float32)
    assert maps.dtype == torch.float32 and maps.shape == reference.shape
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    min_pcc, max_mean_error = HALF_PRECISION_BOUNDS[dtype]
    pcc = pcc_per_image(maps, reference)
    assert bool((pcc > min_pcc).all()), pcc
    assert float((maps - reference).abs().mean()) < max_mean_error


def test_outputs_are_ordinary_tensors(tiny_cnn: TinyCNN) -> None:
    maps = MLFEM(tiny_cnn)(torch.randn(1, 3, 16, 16))
    assert not maps.is_inference()
    maps.mul_(2)  # in-place edits are allowed on what the explainer returns


def test_model_parameters_untouched(tiny_cnn: TinyCNN) -> None:
    before = {name: p.detach().clone() for name, p in tiny_cnn.named_parameters()}
    MLFEM(tiny_cnn)(torch.randn(2, 3, 16, 16))
    for name, p in tiny_cnn.named_parameters():
        assert p.grad is None and p.requires_grad
        torch.testing.assert_close(p, before[name])
    assert all_hooks(tiny_cnn) == 0


class ExplodingModel(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.features(x)
        raise RuntimeError("boom")


def test_no_hook_survives_an_exception() -> None:
    model = ExplodingModel().eval()
    explainer = MLFEM(model, layers=["features.1", "features.4"])
    with pytest.raises(RuntimeError, match="boom"):
        explainer(torch.randn(1, 3, 16, 16))
    assert all_hooks(model) == 0


def test_no_hook_survives_a_failing_layer_check() -> None:
    model = TinyCNN().eval()
    explainer = MLFEM(model, layers=["features.1", "head"])  # head outputs (B, classes)
    with pytest.raises(ValueError, match="'head' produced a tensor of shape"):
        explainer(torch.randn(1, 3, 16, 16))
    assert all_hooks(model) == 0


class SharedReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x)))).mean((2, 3))


def test_module_called_twice_is_refused() -> None:
    model = SharedReLU().eval()
    with pytest.raises(RuntimeError, match="ran more than once"):
        MLFEM(model, layers=["relu"])(torch.randn(1, 3, 12, 12))
    assert all_hooks(model) == 0


def test_layer_that_never_runs_is_reported() -> None:
    model = TinyCNN().eval()
    model.unused = nn.Conv2d(3, 3, 1)
    with pytest.raises(RuntimeError, match="unused did not run"):
        MLFEM(model, layers=["features.1", "unused"])(torch.randn(1, 3, 8, 8))


def test_input_errors(tiny_cnn: TinyCNN) -> None:
    explainer = MLFEM(tiny_cnn)
    with pytest.raises(ValueError, match="unsqueeze"):
        explainer(torch.randn(3, 16, 16))
    with pytest.raises(TypeError, match="floating point"):
        explainer(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="k must be"):
        MLFEM(tiny_cnn, k=float("inf"))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        MLFEM("resnet50")  # type: ignore[arg-type]


def test_training_mode_warns() -> None:
    with pytest.warns(UserWarning, match="training mode"):
        MLFEM(TinyCNN().train())


def test_trained_fusion_must_match_layers(tiny_cnn: TinyCNN) -> None:
    class FakeNet:
        layer_names = ["features.1"]

        def __call__(self, maps: torch.Tensor) -> torch.Tensor:
            return maps[:, 0]

    with pytest.raises(ValueError, match="trained on layers"):
        MLFEM(tiny_cnn, fusion=FakeNet())


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda(resnet18: nn.Module, dtype: torch.dtype) -> None:
    model = resnet18.to("cuda", dtype)
    try:
        images = torch.randn(4, 3, 96, 96, device="cuda", dtype=dtype)
        maps = MLFEM(model)(images)
        assert maps.device.type == "cuda" and maps.shape == (4, 96, 96)
        assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
        # CPU images on a CUDA model come back on the CPU.
        assert MLFEM(model)(images.cpu()).device.type == "cpu"
    finally:
        resnet18.to("cpu", torch.float32)


@pytest.mark.parametrize("fusion", ["max", "add", "top", "fem"])
@pytest.mark.parametrize("normalize", ["end", "interleaved"])
def test_fusing_inside_hooks_equals_fusing_stored_maps(resnet18: nn.Module, fusion: str, normalize: str) -> None:
    images = torch.randn(2, 3, 64, 64)
    explainer = MLFEM(resnet18, fusion=fusion, alpha=0.3, normalize=normalize)  # type: ignore[arg-type]
    streamed = explainer(images)
    fused, layers = explainer(images, return_layers=True)
    torch.testing.assert_close(streamed, fused)
    torch.testing.assert_close(streamed, fuse(layers, fusion, alpha=0.3, normalize=normalize))  # type: ignore[arg-type]


def test_explicit_layer_order_is_the_fusion_order(resnet18: nn.Module) -> None:
    images = torch.randn(1, 3, 64, 64)
    backwards = MLFEM(resnet18, layers=["layer4.1", "layer2.0", "layer1.0"], fusion="add", alpha=0.7)
    fused, layers = backwards(images, return_layers=True)
    forwards = MLFEM(resnet18, layers=["layer1.0", "layer2.0", "layer4.1"]).layer_maps(images).maps
    torch.testing.assert_close(layers, forwards.flip(1))
    torch.testing.assert_close(fused, fuse(layers, "add", alpha=0.7))


def test_linear_fusion_takes_the_fast_route(resnet18: nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    # add/end is fused at the layers' own resolutions, never through the per-layer route.
    def refuse(*args, **kwargs):
        raise AssertionError("add with end normalisation should be fused linearly")

    monkeypatch.setattr(MLFEM, "_fuse_while_forwarding", refuse)
    images = torch.randn(2, 3, 64, 64)
    explainer = MLFEM(resnet18, fusion="add", alpha=0.4)
    fused, _ = explainer(images, return_layers=True)
    torch.testing.assert_close(explainer(images), fused)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_route_with_a_layer_at_input_size_and_a_silent_layer(dtype: torch.dtype) -> None:
    # features.1 is at the input's resolution (no resize); "silent" outputs zeros, whose
    # map is constant and must contribute nothing rather than NaN.
    class WithSilentLayer(TinyCNN):
        def __init__(self) -> None:
            super().__init__()
            self.silent = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features = self.features(x)
            self.silent(-features.abs() - 1.0)
            return self.head(features.mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = WithSilentLayer().eval().to(dtype)
    images = torch.randn(3, 3, 20, 20, dtype=dtype)
    explainer = MLFEM(model, layers=["features.1", "silent", "features.4"], fusion="add", alpha=0.6)
    streamed = explainer(images)
    fused, layers = explainer(images, return_layers=True)
    assert streamed.dtype == dtype and torch.isfinite(streamed).all()
    assert torch.equal(layers[:, 1], torch.zeros_like(layers[:, 1]))
    torch.testing.assert_close(streamed, fused)
