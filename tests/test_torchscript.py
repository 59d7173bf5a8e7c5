"""TorchScript files replayed through hookable modules (mlfem.models.torchscript).

Each case exercises constructs of TorchScript's printed code that plain Python spells
differently: aten operators under torch (torch.add_), compiled functions under
__torch__ (torch.nn.functional), arithmetic and list builtins on plain values
(torch.gt(float, int), torch.append), string formatting, warnings, NamedTuple outputs,
helper methods, and modules that read self.training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

from mlfem import MLFEM
from mlfem.models.torchscript import replay_script_module


def _torchvision(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        torchvision = pytest.importorskip("torchvision")
        return getattr(torchvision.models, name)()

    return make


def _timm(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        timm = pytest.importorskip("timm")
        return timm.create_model(name)

    return make


CASES = {
    "densenet121-script": (_torchvision("densenet121"), "script", "auto"),
    "googlenet-script": (_torchvision("googlenet"), "script", "inception3a,inception4a,inception5b"),
    "mobilenet_v3_small-trace": (_torchvision("mobilenet_v3_small"), "trace", "auto"),
    "timm-mobilenetv3-script": (_timm("mobilenetv3_small_050"), "script", "auto"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_replay_reproduces_the_model_and_its_explanations(case: str) -> None:
    make, how, layers = CASES[case]
    torch.manual_seed(0)
    model = make().eval()
    images = torch.randn(2, 3, 96, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.* deprecation warnings
        script = torch.jit.script(model) if how == "script" else torch.jit.trace(model, images)
    replayed = replay_script_module(script, probe=images)
    explainer = MLFEM(replayed, layers=layers)
    reference = MLFEM(model, layers=layers)
    assert explainer.layer_names == reference.layer_names
    fused, per_layer = explainer(images, return_layers=True)
    expected_fused, expected_layers = reference(images, return_layers=True)
    torch.testing.assert_close(per_layer, expected_layers, rtol=0, atol=0)
    torch.testing.assert_close(fused, expected_fused, rtol=0, atol=0)
