"""The public layer-map extractor, feature adapters, and the one way explainers give
per-layer maps (``explain_layers``) and share a forward pass in the evaluation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlfem import FEM, MLFEM, Explanation, LayerMapExtractor, fem_saliency
from mlfem.explainers.registry import create_explainer
from tiny_models import TinyCNN, all_hooks

LAYERS = ["features.1", "features.4"]


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_the_extractor_gives_what_mlfem_fuses(tiny_cnn, images) -> None:
    extractor = LayerMapExtractor(tiny_cnn, LAYERS)
    maps, logits = extractor.layer_maps(images)
    assert maps.shape == (2, 2, 32, 32) and logits.shape == (2, 3)
    with MLFEM(tiny_cnn, layers=LAYERS, fusion="max") as explainer:
        assert torch.equal(explainer.layer_maps(images).maps, maps)
        assert torch.allclose(explainer(images), explainer.fuse_layer_maps(maps))
    assert all_hooks(tiny_cnn) == 0


def test_raw_maps_are_fem_of_the_layer_outputs(tiny_cnn, images) -> None:
    outputs = {}
    handle = tiny_cnn.features[4].register_forward_hook(lambda m, i, o: outputs.update(last=o.detach()))
    raw = {}
    try:
        LayerMapExtractor(tiny_cnn, LAYERS, k=1.5).forward_raw_maps(images, lambda i, m: raw.update({i: m}))
    finally:
        handle.remove()
    assert torch.allclose(raw[1], fem_saliency(outputs["last"], 1.5))


def test_hooks_are_removed_when_a_layer_output_is_refused() -> None:
    model = TinyCNN().eval()
    extractor = LayerMapExtractor(model, ["features.4", "head"])
    with pytest.raises(ValueError, match="'head' produced a tensor of shape"):
        extractor.layer_maps(torch.rand(1, 3, 16, 16))
    assert all_hooks(model) == 0


class TokenBlock(nn.Module):
    """A layer that outputs a token sequence (B, N, C), as a transformer block does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class TokenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 4, stride=4)
        self.tokens = TokenBlock()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.tokens(self.stem(x)).mean(dim=1))


class TokensToGrid:
    """A feature adapter for square token grids without class tokens."""

    def __call__(self, output: torch.Tensor, layer: str, rectify: bool) -> torch.Tensor:
        side = int(output.shape[1] ** 0.5)
        grid = output.transpose(1, 2).reshape(output.shape[0], output.shape[2], side, side)
        return grid.clamp(min=0) if rectify else grid

    def describe(self) -> str:
        return "tokens"


def test_an_adapter_turns_other_outputs_into_feature_maps() -> None:
    torch.manual_seed(0)
    model = TokenNet().eval()
    images = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="4-D"):
        LayerMapExtractor(model, ["tokens"]).layer_maps(images)
    extractor = LayerMapExtractor(model, ["tokens"], adapter=TokensToGrid(), rectify=True)
    maps = extractor.layer_maps(images).maps
    grid = model.stem(images).clamp(min=0)
    expected = torch.nn.functional.interpolate(fem_saliency(grid, 2.0)[:, None], size=(32, 32), mode="bilinear")
    assert maps.shape == (2, 1, 32, 32)
    low = expected.amin(dim=(2, 3), keepdim=True)
    span = expected.amax(dim=(2, 3), keepdim=True) - low
    assert torch.allclose(maps, (expected - low) / span, atol=1e-5)
    assert extractor.settings != LayerMapExtractor(model, ["tokens"], adapter=TokensToGrid()).settings


class TrainedFusion:
    """Stands for a trained fusion (a NET): it knows its layers, reading and model."""

    def __init__(self, layers, rectify=False, model=None) -> None:
        self.layer_names, self.rectify, self.model = layers, rectify, model

    def check_model(self, model) -> None:
        if self.model is not None and model is not self.model:
            raise ValueError("trained for another model")

    def __call__(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=1)


def test_check_fusion_is_the_one_place_that_refuses_a_trained_fusion(tiny_cnn) -> None:
    extractor = LayerMapExtractor(tiny_cnn, LAYERS)
    extractor.check_fusion("add")  # untrained operators pass
    extractor.check_fusion(TrainedFusion(LAYERS, model=tiny_cnn))
    with pytest.raises(ValueError, match="trained on layers"):
        extractor.check_fusion(TrainedFusion(LAYERS[:1]))
    with pytest.raises(ValueError, match="rectified"):
        extractor.check_fusion(TrainedFusion(LAYERS, rectify=True))
    with pytest.raises(ValueError, match="another model"):
        extractor.check_fusion(TrainedFusion(LAYERS, model=TinyCNN()))
    # MLFEM goes through the same check.
    with pytest.raises(ValueError, match="trained on layers"):
        MLFEM(tiny_cnn, layers=LAYERS, fusion=TrainedFusion(LAYERS[:1]))


def test_every_explainer_gives_its_layer_maps_through_one_method(tiny_cnn, images) -> None:
    with MLFEM(tiny_cnn, layers=LAYERS) as mlfem:
        result = mlfem.explain_layers(images)
        assert isinstance(result, Explanation)
        assert result.layer_maps.shape == (2, 2, 32, 32) and result.logits.shape == (2, 3)
        assert torch.allclose(result.maps, mlfem(images), atol=1e-6)
    with FEM(tiny_cnn, layer="features.4") as fem:
        result = fem.explain_layers(images)
        assert result.layer_maps.shape == (2, 1, 32, 32) and torch.equal(result.maps, fem(images))
    with create_explainer("gradcam", tiny_cnn) as gradcam:
        result = gradcam.explain_layers(images)
        assert result.layer_maps is None and result.logits is None and result.maps.shape == (2, 32, 32)
        assert gradcam.layer_map_source() is None


def test_the_evaluation_computes_the_fem_family_from_one_forward_pass(tiny_cnn, images) -> None:
    from mlfem.evaluation.methods import MethodRunner

    runner = MethodRunner(tiny_cnn, ["fem", "mlfem-add", "mlfem-max", "gradcam"], layers=",".join(LAYERS))
    calls = []
    handle = tiny_cnn.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        batch = runner.run(images, methods=["fem", "mlfem-add", "mlfem-max"])
    finally:
        handle.remove()
    assert len(calls) == 1 and len(runner.passes) == 1
    assert runner.layer_names == LAYERS
    # FEM reads the last of the evaluation's layers; each fusion its own operator.
    assert torch.equal(batch.maps["fem"], batch.layer_maps[:, -1])
    with MLFEM(tiny_cnn, layers=LAYERS, fusion="max") as reference:
        assert torch.allclose(batch.maps["mlfem-max"], reference(images), atol=1e-6)
    runner.close()
    assert all_hooks(tiny_cnn) == 0
