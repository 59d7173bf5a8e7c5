"""Each baseline computes what its definition says: reference implementations,
identities between modes, and the attribution-to-map convention."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from mlfem import FEM
from mlfem.explainers._attribution_map import attribution_to_map, gaussian_blur
from mlfem.explainers.attribution import IntegratedGradients, Lime, SmoothGrad
from mlfem.explainers.cam import GradCAM, GradCAMPlusPlus, LayerCAM, MultiLayerCAM
from mlfem.explainers.csfem import CSFEM
from mlfem.explainers.lrp import LRP
from mlfem.explainers.registry import available_methods, create_explainer
from tiny_models import PooledHeadCNN, TinyCNN, all_hooks


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


def pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


# --- CAMs against pytorch-grad-cam -------------------------------------------------

PGC_PAIRS = [("GradCAM", GradCAM), ("GradCAMPlusPlus", GradCAMPlusPlus), ("LayerCAM", LayerCAM)]


@pytest.mark.parametrize(("reference_name", "ours"), PGC_PAIRS)
def test_cams_agree_with_pytorch_grad_cam_on_resnet18(resnet18, reference_name, ours) -> None:
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(2)
    images = torch.randn(4, 3, 128, 128)
    targets = [3, 7, 0, 5]
    with getattr(pgc, reference_name)(model=resnet18, target_layers=[resnet18.layer4[-1]]) as reference:
        expected = torch.from_numpy(
            reference(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
        )
    assert all_hooks(resnet18) == 0
    explainer = ours(resnet18)
    assert explainer.layer_names == ["layer4.1"]
    maps = explainer(images, torch.tensor(targets))
    compared = 0
    for index in range(len(targets)):
        if expected[index].max() <= 0 or maps[index].max() <= 0:  # ReLU removed everything
            assert expected[index].max() <= 1e-6 and maps[index].max() <= 1e-6
            continue
        assert pcc(maps[index], expected[index]) > 0.99, index
        compared += 1
    assert compared >= 2


def test_gradcam_agrees_with_pytorch_grad_cam_on_a_small_cnn() -> None:
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(3)
    model = PooledHeadCNN(classes=4, hidden=32).eval()
    images = torch.randn(3, 3, 24, 24)
    with pgc.GradCAM(model=model, target_layers=[model.features[4]]) as reference:
        expected = torch.from_numpy(reference(input_tensor=images, targets=[ClassifierOutputTarget(1)] * 3))
    maps = GradCAM(model, layer="features.4")(images, 1)
    compared = 0
    for index in range(3):
        if expected[index].max() <= 0 or maps[index].max() <= 0:  # ReLU removed everything
            assert expected[index].max() <= 1e-6 and maps[index].max() <= 1e-6
            continue
        assert pcc(maps[index], expected[index]) > 0.99, index
        compared += 1
    assert compared >= 2  # a comparison of empty maps would prove nothing


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        raise AssertionError("the backward pass went upstream of the explained layer")


class StemWithoutBackward(PooledHeadCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_NoBackward.apply(x))


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "layercam", "layercam-multi", "csfem"])
def test_cam_backward_stops_at_the_explained_layers(method: str) -> None:
    # Autograd starts at the first explained layer, so nothing upstream is kept for
    # backward (memory close to a forward pass for deep layers) or back-propagated.
    model = StemWithoutBackward(mlp_head=True).eval()
    options = {"weights": "gradient", "layers": ["features.1", "features.4"] if method == "layercam-multi" else None}
    maps = create_explainer(method, model, **options)(torch.randn(2, 3, 16, 16))
    assert maps.shape == (2, 16, 16)
    with pytest.raises(AssertionError, match="upstream"):
        create_explainer("ig", model, steps=2)(torch.randn(2, 3, 16, 16))


def test_gradcam_is_class_specific(resnet18) -> None:
    images = torch.randn(2, 3, 96, 96)
    explainer = GradCAM(resnet18)
    assert not torch.allclose(explainer(images, 0), explainer(images, 1))


def test_single_layer_fusion_is_layercam() -> None:
    model = TinyCNN().eval()
    images = torch.randn(2, 3, 16, 16)
    single = LayerCAM(model)
    fused = MultiLayerCAM(model, layers=single.layer_names, gamma=None)
    torch.testing.assert_close(fused(images, 1), single(images, 1))


def test_multilayer_cam_layers_and_fusions(resnet18) -> None:
    auto = MultiLayerCAM(resnet18)
    assert auto.layer_names == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    subset = MultiLayerCAM(resnet18, layers="layer3.1,layer4.1", fusion="mean")
    assert subset.layer_names == ["layer3.1", "layer4.1"]
    images = torch.randn(2, 3, 64, 64)
    per_layer = LayerCAM(resnet18).layer_cams(images.clone(), torch.tensor([1, 2]))
    assert per_layer.shape == (2, 1, 64, 64)
    maps = subset(images, [1, 2])
    assert maps.shape == (2, 64, 64) and maps.max() <= 1
    with pytest.raises(ValueError, match="fusion"):
        MultiLayerCAM(resnet18, fusion="add")
    with pytest.raises(ValueError, match="unknown layer"):
        MultiLayerCAM(resnet18, layers=["layer9"])


# --- Integrated Gradients, LRP -------------------------------------------------------


def test_integrated_gradients_completeness() -> None:
    torch.manual_seed(4)
    model = PooledHeadCNN(classes=4, hidden=32).eval()
    images = torch.randn(2, 3, 16, 16)
    targets = torch.tensor([0, 3])
    explainer = IntegratedGradients(model, steps=64)
    attributions = explainer.attribute(images, targets)
    with torch.no_grad():
        logits, baseline_logits = model(images), model(torch.zeros_like(images))
    gap = (logits - baseline_logits).gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(attributions.sum(dim=(1, 2, 3)), gap, atol=2e-3, rtol=2e-2)


def test_lrp_conserves_relevance_on_resnet50_and_restores_the_model() -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=10).eval()
    state = {key: value.clone() for key, value in model.state_dict().items()}
    relevance = LRP(model).relevance(torch.randn(2, 3, 64, 64), torch.tensor([0, 5]))
    # Relevance starts as 1 on the target logit; EpsilonPlusFlat with the ResNet
    # canonizer passes it down almost entirely (captum's LRP gives ~1e23 here).
    totals = relevance.sum(dim=(1, 2, 3))
    assert torch.all((totals - 1).abs() < 0.2), totals
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all_hooks(model) == 0


def test_lrp_options() -> None:
    model = TinyCNN().eval()
    images = torch.randn(2, 3, 16, 16)
    for composite in ("epsilon-plus", "epsilon-alpha2-beta1-flat", "epsilon-gamma-box"):
        maps = LRP(model, composite=composite, canonizers="none")(images)
        assert maps.shape == (2, 16, 16) and torch.isfinite(maps).all()
    with pytest.raises(ValueError, match="composite"):
        LRP(model, composite="alpha-beta")
    with pytest.raises(ValueError, match="canonizers"):
        LRP(model, canonizers="densenet")


# --- CS-FEM -------------------------------------------------------------------------


def test_csfem_classifier_and_gradient_weights_agree_on_resnet18(resnet18) -> None:
    images = torch.randn(2, 3, 128, 128)
    auto = CSFEM(resnet18)
    maps = auto(images, [1, 4])
    assert auto.weight_source == "classifier"
    gradient = CSFEM(resnet18, weights="gradient")(images, [1, 4])
    torch.testing.assert_close(maps, gradient, atol=1e-4, rtol=1e-4)
    assert maps.amax(dim=(1, 2)).gt(0).all()
    with torch.inference_mode():
        torch.testing.assert_close(auto(images, [1, 4]), maps)


def test_csfem_falls_back_to_gradients_when_the_head_is_not_linear() -> None:
    model = PooledHeadCNN(classes=4, mlp_head=True, hidden=32).eval()
    images = torch.randn(2, 3, 16, 16)
    explainer = CSFEM(model)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        explainer(images)
    maps = explainer(images)
    assert explainer.weight_source == "gradient"
    assert maps.shape == (2, 16, 16)
    with pytest.raises(ValueError, match="weights='gradient'"):
        CSFEM(model, weights="classifier")(images)


def test_csfem_with_uniform_class_weights_is_fem() -> None:
    torch.manual_seed(5)
    model = PooledHeadCNN(classes=4, hidden=32).eval()
    with torch.no_grad():
        model.head.weight[2] = 0.5  # every channel votes equally for class 2
    images = torch.randn(3, 3, 20, 20)
    expected = FEM(model, layer="features.4")(images)
    torch.testing.assert_close(CSFEM(model, layer="features.4")(images, 2), expected, atol=1e-5, rtol=1e-5)


# --- randomness ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SmoothGrad, Lime])
def test_sampling_methods_are_seeded_and_leave_the_callers_rng_alone(cls) -> None:
    model = TinyCNN().eval()
    images = torch.randn(2, 3, 24, 24)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = cls(model, samples=8)(images, 0)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(cls(model, samples=8)(images, 0), first)
    assert not torch.allclose(cls(model, samples=8, seed=1)(images, 0), first)


def test_lime_superpixels() -> None:
    image = torch.zeros(3, 48, 48)
    image[:, 8:24, 8:24] = 1.0
    image[0, 30:44, 20:40] = 1.0
    labels = Lime(TinyCNN().eval(), segments=20).superpixels(image)
    assert labels.shape == (48, 48) and labels.dtype == torch.int64
    assert labels.min() == 0 and torch.equal(labels.unique(), torch.arange(int(labels.max()) + 1))
    # the bright square is not cut by superpixels that spill over its border
    assert labels[8:24, 8:24].unique().numel() <= 4
    square = labels[8:24, 8:24].unique()
    outside = torch.ones(48, 48, dtype=torch.bool)
    outside[8:24, 8:24] = False
    assert not torch.isin(labels[outside], square).any()
    # noise: SLIC merges nearly everything, so a grid of about `segments` cells is used
    noise = Lime(TinyCNN().eval(), segments=16).superpixels(torch.rand(3, 32, 32))
    assert noise.unique().numel() >= 4


# --- attribution to map ---------------------------------------------------------------


def test_attribution_to_map_reductions() -> None:
    attributions = torch.zeros(1, 3, 2, 2)
    attributions[0, :, 0, 0] = torch.tensor([-3.0, 1.0, 0.0])
    attributions[0, :, 0, 1] = torch.tensor([2.0, 2.0, 0.0])
    attributions[0, :, 1, 0] = torch.tensor([1.0, 0.0, 0.0])
    expected = {
        "abs-max": [[1.0, 2 / 3], [1 / 3, 0.0]],
        "abs-sum": [[1.0, 1.0], [0.25, 0.0]],
        "positive-sum": [[0.0, 1.0], [0.25, 0.0]],
        "l2": [[1.0, 8**0.5 / 10**0.5], [1 / 10**0.5, 0.0]],
    }
    for reduction, values in expected.items():
        torch.testing.assert_close(attribution_to_map(attributions, reduction)[0], torch.tensor(values))


def test_attribution_to_map_edge_cases() -> None:
    assert torch.equal(attribution_to_map(torch.full((2, 3, 4, 4), 7.0)), torch.zeros(2, 4, 4))
    with_inf = torch.zeros(1, 1, 2, 2)
    with_inf[0, 0, 0, 0] = float("inf")
    with_inf[0, 0, 1, 1] = float("nan")
    assert torch.isfinite(attribution_to_map(with_inf)).all()
    with pytest.raises(ValueError, match="reduction"):
        attribution_to_map(torch.zeros(1, 3, 2, 2), "mean")
    with pytest.raises(ValueError, match="smooth_sigma"):
        attribution_to_map(torch.zeros(1, 3, 2, 2), smooth_sigma=-1)
    assert attribution_to_map(torch.zeros(1, 3, 2, 2, dtype=torch.float64)).dtype == torch.float64


def test_gaussian_smoothing() -> None:
    delta = torch.zeros(1, 31, 31)
    delta[0, 15, 15] = 1.0
    blurred = gaussian_blur(delta, 2.0)
    torch.testing.assert_close(blurred.sum(), torch.tensor(1.0))
    torch.testing.assert_close(blurred[0], blurred[0].T)
    torch.testing.assert_close(blurred[0], blurred[0].flip(0))
    # the profile is the Gaussian's: exp(-1/2) between the centre and one sigma away
    ratio = blurred[0, 15, 17] / blurred[0, 15, 15]
    torch.testing.assert_close(ratio, torch.tensor(math.exp(-0.5)), rtol=1e-4, atol=0)
    attributions = torch.zeros(1, 3, 31, 31)
    attributions[0, 1, 15, 15] = -5.0
    maps = attribution_to_map(attributions, smooth_sigma=2.0)
    assert maps[0, 15, 15] == 1 and maps[0, 15, 19] < 0.2
    torch.testing.assert_close(maps, blurred / blurred.max())


# --- registry ----------------------------------------------------------------------------


def test_unknown_method_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match="unknown method 'gradcam2'.*gradcam, gradcampp"):
        create_explainer("gradcam2", TinyCNN())


def test_factories_ignore_unknown_options_and_map_layers(resnet18) -> None:
    options = {"layers": "auto", "alpha": 0.5, "k": 2.0, "normalize": "end", "colour": "red"}
    for info in available_methods():
        if info.requires:  # mlfem-net: a trained NET, refused without one
            with pytest.raises(ValueError, match="needs a trained NET"):
                create_explainer(info.name, resnet18, **options)
            continue
        if info.name == "rollout":  # vision transformers only (tests/test_rollout.py)
            with pytest.raises(ValueError, match="needs a vision transformer"):
                create_explainer(info.name, resnet18, **options)
            continue
        create_explainer(info.name, resnet18, **options)
    assert create_explainer("gradcam", resnet18, layers="layer3.1").layer_names == ["layer3.1"]
    assert create_explainer("csfem", resnet18, layers=["layer3.0"]).layer.name == "layer3.0"
    with pytest.raises(ValueError, match="single layer"):
        create_explainer("layercam", resnet18, layers="layer3.1,layer4.1")
    ig = create_explainer("ig", resnet18, steps=5, internal_batch_size=3, reduction="l2")
    assert (ig.steps, ig.internal_batch_size, ig.reduction) == (5, 3, "l2")
    with pytest.raises(ValueError, match="steps"):
        create_explainer("ig", resnet18, steps=0)


def test_listing_and_importing_methods_imports_no_heavy_library() -> None:
    code = (
        "import sys, mlfem\n"
        "assert 'mlfem.explainers.cam' not in sys.modules\n"
        "from mlfem.explainers import GradCAM, LRP, Lime, CSFEM, IntegratedGradients\n"
        "from mlfem.explainers.registry import available_methods\n"
        "names = [m.name for m in available_methods()]\n"
        "assert 'lrp' in names and 'lime' in names, names\n"
        "heavy = [m for m in ('captum', 'zennit', 'skimage', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
