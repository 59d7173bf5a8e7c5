"""Methods register through @register_explainer, which reads name, description and the
gradient flag from the class; register_method stays for plain factories."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import Tensor, nn

import mlfem.explainers
from mlfem.explainers import Explainer
from mlfem.explainers import registry as registry_module
from mlfem.explainers.registry import (
    available_methods,
    create_explainer,
    explainer_class,
    method_info,
    register_explainer,
    register_method,
)


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies of the registry's tables, so a test's registrations do not outlive it."""
    registry_module._load_plugins()
    monkeypatch.setattr(registry_module, "_METHODS", dict(registry_module._METHODS))
    monkeypatch.setattr(registry_module, "_CLASSES", dict(registry_module._CLASSES))


class _Flat(Explainer):
    """A constant map (first docstring line)."""

    def __init__(self, model: nn.Module, layer: str | None = None, k: float = 2.0) -> None:
        super().__init__(model)
        self.layer, self.k = layer, k

    def explain(self, images: Tensor, targets: Tensor | None = None) -> Tensor:
        return torch.zeros(images.shape[0], *images.shape[-2:])


def test_the_decorator_reads_name_description_and_gradient_flag(scratch_registry: None) -> None:
    @register_explainer
    class Flat(_Flat):
        name = "flat-test"
        needs_gradients = True

    @register_explainer
    class Described(_Flat):
        name = "described-test"
        description = "a one-line description"

    info = method_info("flat-test")
    assert (info.uses_gradients, info.description) == (True, "A constant map (first docstring line).")
    assert method_info("described-test").description == "a one-line description"
    assert not method_info("described-test").uses_gradients
    assert {"flat-test", "described-test"} <= {m.name for m in available_methods()}
    assert explainer_class("Flat") is Flat and mlfem.explainers.Described is Described
    model = nn.Conv2d(3, 1, 1).eval()
    made = create_explainer("flat-test", model, layers="conv", k=3.0, colour="red")
    assert isinstance(made, Flat) and (made.layer, made.k) == ("conv", 3.0)
    with pytest.raises(ValueError, match="single layer"):
        create_explainer("flat-test", model, layers="a,b")


def test_a_class_must_name_its_own_method(scratch_registry: None) -> None:
    with pytest.raises(TypeError, match="method name"):
        register_explainer(_Flat)


def test_register_method_still_takes_a_factory(scratch_registry: None) -> None:
    register_method("factory-test", lambda model, **_: _Flat(model), "from a factory", uses_gradients=True)
    assert method_info("factory-test").uses_gradients
    assert isinstance(create_explainer("factory-test", nn.Identity().eval()), _Flat)


def test_baseline_classes_are_registered_from_their_modules() -> None:
    for cls_name, method in (("GradCAM", "gradcam"), ("Lime", "lime"), ("LRP", "lrp"), ("CSFEM", "csfem")):
        cls = getattr(mlfem.explainers, cls_name)
        assert cls.name == method and explainer_class(cls_name) is cls
        assert method_info(method).uses_gradients == bool(getattr(cls, "needs_gradients", False))
    from mlfem.explainers.attribution import Lime, PixelAttributionExplainer

    assert Lime is mlfem.explainers.Lime and issubclass(Lime, PixelAttributionExplainer)
    with pytest.raises(AttributeError):
        mlfem.explainers.NoSuchExplainer  # noqa: B018


def test_listing_stays_lazy() -> None:
    code = (
        "import sys, mlfem\n"
        "from mlfem.explainers.registry import available_methods\n"
        "assert 'lime' in [m.name for m in available_methods()]\n"
        "heavy = [m for m in ('captum', 'zennit', 'skimage', 'torchvision') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
