"""The explainer contract for every registered method, on ResNet-18/50 and a tiny CNN.

Each method must return (B, H, W) maps in [0, 1] on the input's device and leave the
model exactly as it found it: no hook on any module (nor a global one), no
``requires_grad`` change and no ``.grad`` on parameters or inputs, unchanged
parameters and buffers (LRP's canonizers merge batch-norms temporarily) — also
when the forward pass raises.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules import module as nn_module

from mlfem.explainers.registry import available_methods, create_explainer, method_info
from tiny_models import TRANSFORMER_ONLY, PooledHeadCNN, TinyCNN, all_hooks
from _cuda import requires_cuda

BASELINES = (
    "gradcam",
    "gradcampp",
    "layercam",
    "layercam-multi",
    "ig",
    "smoothgrad",
    "lrp",
    "guided-backprop",
    "deconvnet",
    "occlusion",
    "lime",
    "csfem",
)
GRADIENT_METHODS = tuple(name for name in BASELINES if name not in ("occlusion", "lime", "csfem"))
# Methods that need a trained file (mlfem-net) are built in their own tests, and methods
# defined for vision transformers only (rollout) in theirs (tests/test_rollout.py).
ALL_METHODS = tuple(
    info.name for info in available_methods() if not info.requires and info.name not in TRANSFORMER_ONLY
)
# Cheap settings: enough to exercise every code path, not to give good maps.
CHEAP = {
    "steps": 3,
    "samples": 4,
    "window": 32,
    "stride": 32,
    "segments": 8,
    "internal_batch_size": 8,
}


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    # On a shared 2-core machine a second intra-op thread mostly waits for the other
    # processes; one thread makes these small models several times faster.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[nn.Module, int]]:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return {
        "tiny": (TinyCNN().eval(), 32),
        "resnet18": (torchvision.models.resnet18(num_classes=10).eval(), 64),
        "resnet50": (torchvision.models.resnet50(num_classes=10).eval(), 64),
    }


def global_hooks() -> int:
    names = (
        "_global_forward_hooks",
        "_global_forward_pre_hooks",
        "_global_backward_hooks",
        "_global_backward_pre_hooks",
    )
    return sum(len(getattr(nn_module, name, {})) for name in names)


def snapshot(model: nn.Module) -> dict[str, object]:
    return {
        "state": {key: value.clone() for key, value in model.state_dict().items()},
        "parameters": [(name, id(p), p.requires_grad, p.grad) for name, p in model.named_parameters()],
        "modules": [(name, type(m), m.training) for name, m in model.named_modules()],
        "forwards": [name for name, m in model.named_modules() if "forward" in m.__dict__],
    }


def assert_untouched(model: nn.Module, before: dict[str, object], hooks_before: int = 0) -> None:
    assert all_hooks(model) == hooks_before
    assert global_hooks() == 0
    after = snapshot(model)
    assert after["parameters"] == before["parameters"]
    assert after["modules"] == before["modules"]
    assert after["forwards"] == before["forwards"]
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key


def assert_maps(maps: torch.Tensor, images: torch.Tensor) -> None:
    batch, _, height, width = images.shape
    assert maps.shape == (batch, height, width)
    assert maps.device == images.device
    assert maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert not maps.requires_grad and not maps.is_inference()


def test_the_baselines_are_registered() -> None:
    for name in BASELINES:
        info = method_info(name)
        assert info.description and "\n" not in info.description
        assert info.uses_gradients == (name in GRADIENT_METHODS)


@pytest.mark.parametrize("model_name", ["tiny", "resnet18", "resnet50"])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_contract(models, model_name: str, method: str) -> None:
    model, size = models[model_name]
    torch.manual_seed(1)
    images = torch.randn(2, 3, size, size)
    original = images.clone()
    before = snapshot(model)
    explainer = create_explainer(method, model, **CHEAP)
    with explainer:
        maps = explainer(images)
    assert_maps(maps, images)
    assert torch.equal(images, original)
    assert not images.requires_grad and images.grad is None
    assert_untouched(model, before)


@pytest.mark.parametrize("model_name", ["tiny", "resnet50"])
@pytest.mark.parametrize("method", BASELINES)
def test_no_hook_or_state_survives_an_exception(models, model_name: str, method: str) -> None:
    model, size = models[model_name]
    images = torch.randn(2, 3, size, size)
    explainer = create_explainer(method, model, **CHEAP)
    before = snapshot(model)
    # A hook of the test's own raises in the middle of the network, after the
    # explainer's hooks (and LRP's canonizers) are in place.
    deepest_conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]

    def explode(module: nn.Module, inputs: object, output: object) -> None:
        raise RuntimeError("boom")

    handle = deepest_conv.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            explainer(images, targets=torch.tensor([0, 1]))
    finally:
        handle.remove()
    assert_untouched(model, before)


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_gradient_methods_refuse_inference_mode_but_accept_no_grad(method: str) -> None:
    model = TinyCNN().eval()
    images = torch.randn(2, 3, 16, 16)
    explainer = create_explainer(method, model, **CHEAP)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        explainer(images)
    with torch.no_grad():
        maps = explainer(images)
    assert_maps(maps, images)
    assert all_hooks(model) == 0


@pytest.mark.parametrize("method", ["occlusion", "lime", "csfem", "fem", "mlfem"])
def test_gradient_free_methods_run_in_inference_mode(method: str) -> None:
    model = PooledHeadCNN().eval()
    images = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        maps = create_explainer(method, model, **CHEAP)(images)
    assert maps.shape == (2, 16, 16) and maps.min() >= 0 and maps.max() <= 1
    assert all_hooks(model) == 0


@pytest.mark.parametrize("method", BASELINES)
def test_frozen_parameters_and_existing_grads_are_kept(method: str) -> None:
    torch.manual_seed(0)
    model = TinyCNN().eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    head = model.head.weight
    head.requires_grad_(True)
    users_grad = torch.ones_like(head)
    head.grad = users_grad
    maps = create_explainer(method, model, **CHEAP)(torch.randn(2, 3, 16, 16))
    assert maps.shape == (2, 16, 16)
    assert head.grad is users_grad and torch.equal(users_grad, torch.ones_like(head))
    assert [p.requires_grad for p in model.parameters()] == [p is head for p in model.parameters()]
    assert all(p.grad is None for p in model.parameters() if p is not head)


@pytest.mark.parametrize("method", BASELINES)
def test_default_targets_are_the_top1_class(method: str) -> None:
    torch.manual_seed(0)
    model = TinyCNN(classes=5).eval()
    images = torch.randn(3, 3, 16, 16)
    explainer = create_explainer(method, model, **CHEAP)
    top1 = model(images).argmax(dim=1)
    torch.testing.assert_close(explainer(images), explainer(images, top1))
    # an int, a list and a tensor mean the same thing
    torch.testing.assert_close(explainer(images, 2), explainer(images, torch.tensor([2, 2, 2])))
    torch.testing.assert_close(explainer(images, [0, 4, 1]), explainer(images, torch.tensor([0, 4, 1])))


@pytest.mark.parametrize("method", BASELINES)
def test_bad_targets_are_explained(method: str) -> None:
    model = TinyCNN(classes=3).eval()
    images = torch.randn(2, 3, 16, 16)
    explainer = create_explainer(method, model, **CHEAP)
    with pytest.raises(ValueError, match=r"one class index per image, shape \(2,\)"):
        explainer(images, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        explainer(images, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer class indices"):
        explainer(images, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        explainer(images, [-1, 0])
    with pytest.raises(ValueError, match="out of range: the model has 3 classes"):
        explainer(images, [0, 3])
    assert all_hooks(model) == 0


@pytest.mark.parametrize("method", ["gradcam", "layercam-multi", "ig", "lrp", "occlusion", "csfem"])
def test_max_batch_size_gives_the_same_maps(method: str) -> None:
    torch.manual_seed(0)
    model = TinyCNN().eval()
    images = torch.randn(3, 3, 16, 16)
    whole = create_explainer(method, model, **CHEAP)(images, [0, 1, 2])
    split = create_explainer(method, model, max_batch_size=2, **CHEAP)(images, [0, 1, 2])
    torch.testing.assert_close(whole, split)


def test_float64_images_give_float64_maps() -> None:
    model = TinyCNN().eval().double()
    images = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    for method in ("gradcam", "ig", "csfem"):
        maps = create_explainer(method, model, **CHEAP)(images)
        assert maps.dtype == torch.float64 and maps.shape == (2, 16, 16)


@requires_cuda
@pytest.mark.parametrize("method", BASELINES)
def test_cuda_model_with_cpu_images(method: str) -> None:
    torch.manual_seed(0)
    model = TinyCNN().eval().cuda()
    images = torch.randn(2, 3, 32, 32)
    maps = create_explainer(method, model, **CHEAP)(images)
    assert_maps(maps, images)
    cuda_maps = create_explainer(method, model, **CHEAP)(images.cuda())
    assert cuda_maps.device.type == "cuda"
    torch.testing.assert_close(cuda_maps.cpu(), maps, atol=1e-3, rtol=1e-3)
    assert all_hooks(model) == 0
