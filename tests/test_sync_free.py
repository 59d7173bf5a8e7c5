"""MLFEM's per-layer path never waits for the device (issue: GPU cost).

On an accelerator, a call that reads a tensor's value on the host (``.item()``, ``bool(t)``,
``.nonzero()``, a boolean-mask index, ``.cpu()``...) stalls the host until every queued
kernel has run, so the next layer's kernels cannot be queued behind the current ones.
MLFEM runs a few dozen small kernels per layer inside forward hooks; one such call per
layer would serialise them all.

Two guards:

* on every machine, a :class:`~torch.overrides.TorchFunctionMode` records the
  synchronising calls made while MLFEM explains a batch with the accelerator statistics
  route forced on CPU (the CPU route's near-constant check reads a flag on the host,
  which costs nothing there and is never taken on an accelerator);
* where CUDA is present, the same calls under ``torch.cuda.set_sync_debug_mode("error")``.

The input check at the entry of a call (``check_images``: NaN or infinite pixels) reads
one flag on the host, once per call and before the forward pass is queued; it is not part
of the per-layer path and is switched off here so that the guards see only that path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch.overrides import TorchFunctionMode

import mlfem
import mlfem._fem_statistics
import mlfem.extractor
import mlfem.fem
import mlfem.normalize
from _cuda import requires_cuda
from tiny_models import TinyCNN

# Tensor methods and functions that copy a value to the host (and so wait for the device).
_SYNCHRONISING = frozenset(
    {
        "__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy", "cpu",
        "nonzero", "argwhere", "masked_select", "unique", "unique_consecutive",
    }
)
_FUSIONS = ("add", "max", "top", "fem", "net")


class SynchronisingCalls(TorchFunctionMode):
    """Records the synchronising tensor calls made while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", str(func))
        if name in _SYNCHRONISING or (name == "__getitem__" and _boolean_index(args[1])):
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def _boolean_index(index: object) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(part, torch.Tensor) and part.dtype == torch.bool for part in parts)


@contextmanager
def _per_layer_path_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The entry check switched off, the accelerator statistics route on every device."""
    monkeypatch.setattr(mlfem.extractor, "check_images", lambda images, argument="images", **options: None)
    monkeypatch.setattr(
        mlfem._fem_statistics, "_cpu_mean_and_threshold", mlfem._fem_statistics._accelerator_mean_and_threshold
    )
    yield


def _explainer(fusion: str, model: torch.nn.Module) -> mlfem.MLFEM:
    if fusion == "net":
        # The bundled NET is trained for EfficientNet-Lite0's layers: a NET of the tiny
        # model's layer count exercises the same code.
        from mlfem.fusion.net import FusionNet, NetFusion

        layers = mlfem.MLFEM(model, layers="auto").layer_names
        torch.manual_seed(0)
        net = NetFusion(FusionNet(len(layers)), {"layers": layers, "resolution": 16})
        return mlfem.MLFEM(model, layers=layers, fusion=net)
    return mlfem.MLFEM(model, layers="auto", fusion=fusion)


@pytest.mark.parametrize("fusion", _FUSIONS)
def test_per_layer_path_makes_no_synchronising_call(fusion: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = TinyCNN().eval()
    images = torch.rand(2, 3, 40, 48)
    with _per_layer_path_only(monkeypatch):
        explainer = _explainer(fusion, model)
        explainer(images)  # first call: fills the cached interpolation weights (host-side constants)
        with SynchronisingCalls() as recorder:
            explainer(images)
            explainer(images, return_layers=True)
    assert recorder.calls == [], f"synchronising calls on MLFEM's per-layer path: {recorder.calls}"


def test_the_recorder_sees_synchronising_calls() -> None:
    """The guard itself: it must notice the calls it is meant to catch."""
    values = torch.arange(6.0)
    with SynchronisingCalls() as recorder:
        bool((values > 2).any())
        values[values > 2]
        values.nonzero()
        values[0].item()
    assert recorder.calls == ["__bool__", "__getitem__", "nonzero", "item"]


@requires_cuda
@pytest.mark.parametrize("fusion", _FUSIONS)
def test_no_synchronisation_on_cuda(fusion: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = TinyCNN().eval().cuda()
    images = torch.rand(2, 3, 40, 48, device="cuda")
    monkeypatch.setattr(mlfem.extractor, "check_images", lambda images, argument="images", **options: None)
    explainer = _explainer(fusion, model)
    explainer(images)  # warm-up: cached weights are built and copied once
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        maps = explainer(images)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert maps.shape == (2, 40, 48)
