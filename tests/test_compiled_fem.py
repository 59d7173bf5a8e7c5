"""The optional compiled FEM route (mlfem._compiled_fem): its switch, its fallback, and
its numerics against the eager route."""

from __future__ import annotations

import pytest
import torch

import mlfem._compiled_fem as compiled
from mlfem import fem_saliency
from mlfem._compiled_fem import compiled_fem, compiled_mode


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFEM_COMPILE", raising=False)
    compiled.reset_for_tests()
    yield
    compiled.reset_for_tests()


def test_the_switch_follows_the_block_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compiled_mode() is None
    with compiled_fem():
        assert compiled_mode() == "default"
        with compiled_fem(False):
            assert compiled_mode() is None
    assert compiled_mode() is None
    monkeypatch.setenv("MLFEM_COMPILE", "reduce-overhead")
    assert compiled_mode() == "reduce-overhead"
    with compiled_fem(False):
        assert compiled_mode() is None
    monkeypatch.setenv("MLFEM_COMPILE", "0")
    assert compiled_mode() is None
    monkeypatch.setenv("MLFEM_COMPILE", "yes please")
    with pytest.raises(ValueError, match="MLFEM_COMPILE"):
        compiled_mode()
    with pytest.raises(ValueError, match="mode"):
        with compiled_fem(mode="max-autotune"):
            pass


def test_a_failed_compilation_warns_once_and_falls_back_to_eager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(function, **options):  # type: ignore[no-untyped-def]
        def fail(*args):  # type: ignore[no-untyped-def]
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(torch, "compile", broken)
    activations = torch.relu(torch.randn(2, 5, 6, 6, generator=torch.Generator().manual_seed(0)))
    expected = fem_saliency(activations)
    with compiled_fem():
        with pytest.warns(RuntimeWarning, match="no compiler here"):
            first = fem_saliency(activations)
        second = fem_saliency(activations)  # no second warning: eager from now on
        assert compiled_mode() is None
    assert torch.equal(first, expected) and torch.equal(second, expected)


def test_the_compiled_core_equals_the_eager_route_without_compiling() -> None:
    # The function handed to torch.compile, run eagerly: the same formula, ties included.
    generator = torch.Generator().manual_seed(1)
    activations = torch.relu(torch.randn(3, 12, 7, 9, generator=generator))
    activations[:, 3] = 0.25  # a constant channel: sigma 0, every pixel a tie, kept
    activations[:, 4] = 0.0  # a dead channel
    rows = activations.view(3, 12, 63)
    core = compiled._fem_core(rows, 2.0, 1e-6).view(3, 7, 9)
    torch.testing.assert_close(core, fem_saliency(activations), rtol=1e-6, atol=1e-6)
    half = compiled._fem_core(rows.bfloat16(), 2.0, 1e-6)
    assert half.dtype == torch.float32
    expected_half = fem_saliency(activations.bfloat16())
    torch.testing.assert_close(half.view(3, 7, 9), expected_half, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_gives_the_eager_maps() -> None:
    # Compiles for real (C++ code generation: about a minute on 2 busy cores; two shapes,
    # so the second compilation is the dynamic-shape one MLFEM's layers would use).
    generator = torch.Generator().manual_seed(2)
    shapes = [(2, 16, 8, 8), (2, 32, 4, 4)]
    for dtype in (torch.float32, torch.float64):
        for shape in shapes:
            activations = torch.relu(torch.randn(shape, generator=generator, dtype=dtype))
            activations[:, 1] = 0.5
            expected = fem_saliency(activations)
            with compiled_fem():
                result = fem_saliency(activations)
            assert compiled_mode() is None and not compiled._failed[0], "compilation failed"
            assert result.dtype == expected.dtype
            torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)

    # MLFEM's hook path (inference mode, several layer shapes) under the compiled route.
    from mlfem import MLFEM
    from tiny_models import TinyCNN

    torch.manual_seed(0)
    explainer = MLFEM(TinyCNN().eval())
    images = torch.rand(2, 3, 40, 48, generator=generator)
    expected = explainer(images)
    with compiled_fem():
        result = explainer(images)
    assert not compiled._failed[0]
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)
