"""Fusion operators: the identities of design.md §2, as properties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlfem import fuse, make_fusion, minmax_normalize
from mlfem.fusion import AddFusion, TopFusion

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def layer_maps(draw, min_layers: int = 1) -> torch.Tensor:
    """Per-layer maps (B, L, H, W), each min-max normalised as MLFEM produces them."""
    batch = draw(st.integers(1, 3))
    layers = draw(st.integers(min_layers, 6))
    height = draw(st.integers(1, 6))
    width = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    raw = torch.rand(batch, layers, height, width, generator=torch.Generator().manual_seed(seed))
    return minmax_normalize(raw.double())


@SETTINGS
@given(maps=layer_maps(min_layers=2))
def test_max_is_commutative(maps: torch.Tensor) -> None:
    max_op = make_fusion("max").combine  # type: ignore[attr-defined]
    a, b = maps[:, 0], maps[:, 1]
    torch.testing.assert_close(max_op(a, b), max_op(b, a))
    # And the recursion does not depend on the order of the layers.
    torch.testing.assert_close(fuse(maps, "max"), fuse(maps.flip(1), "max"))


@SETTINGS
@given(maps=layer_maps())
def test_add_with_alpha_zero_is_fem_on_last_layer(maps: torch.Tensor) -> None:
    last = minmax_normalize(maps[:, -1])
    torch.testing.assert_close(fuse(maps, "add", alpha=0.0), last)
    torch.testing.assert_close(fuse(maps, "fem"), last)


@SETTINGS
@given(maps=layer_maps(), alpha=st.floats(0.0, 1.0))
def test_add_equals_closed_form(maps: torch.Tensor, alpha: float) -> None:
    layers = maps.shape[1]
    weights = [alpha ** (layers - 1)] + [(1 - alpha) * alpha ** (layers - l) for l in range(2, layers + 1)]
    closed = sum(w * maps[:, i] for i, w in enumerate(weights))
    torch.testing.assert_close(fuse(maps, "add", alpha=alpha), minmax_normalize(closed))


@SETTINGS
@given(maps=layer_maps(min_layers=2), alpha=st.floats(0.0, 1.0))
def test_top_zeroes_what_is_at_or_below_the_mean(maps: torch.Tensor, alpha: float) -> None:
    a, b = maps[:, 0], maps[:, 1]
    result = TopFusion(alpha=alpha).combine(a, b)
    mean = b.mean(dim=(-2, -1), keepdim=True)
    kept = torch.where(b > mean, b, torch.zeros_like(b))
    torch.testing.assert_close(result, alpha * a + (1 - alpha) * kept)
    # Where b is at or below its mean, only the accumulated map contributes.
    low = b <= mean
    torch.testing.assert_close(result[low], alpha * a[low])


@SETTINGS
@given(
    maps=layer_maps(),
    op=st.sampled_from(["max", "add", "top", "fem"]),
    alpha=st.floats(0.0, 1.0),
    normalize=st.sampled_from(["end", "interleaved"]),
)
def test_outputs_lie_in_unit_interval(maps: torch.Tensor, op: str, alpha: float, normalize: str) -> None:
    fused = fuse(maps, op, alpha=alpha, normalize=normalize)  # type: ignore[arg-type]
    assert fused.shape == (maps.shape[0], *maps.shape[2:])
    assert torch.isfinite(fused).all()
    assert fused.min() >= 0 and fused.max() <= 1


def test_add_is_not_commutative() -> None:
    a = torch.tensor([[[1.0, 0.0, 0.5]]])
    b = torch.tensor([[[0.0, 1.0, 0.2]]])
    add = AddFusion(alpha=0.8)
    assert not torch.allclose(add.combine(a, b), add.combine(b, a))


def test_interleaved_normalises_after_each_step() -> None:
    maps = torch.tensor([[[[0.0, 1.0]], [[0.0, 0.5]], [[1.0, 0.0]]]])  # (1, 3, 1, 2)
    # end: 0.25*S1 + 0.25*S2 + 0.5*S3 = [0.5, 0.375] -> min-max [1, 0]
    torch.testing.assert_close(fuse(maps, "add"), torch.tensor([[[1.0, 0.0]]]))
    # interleaved: step 1 = [0, .75] -> [0, 1]; step 2 = [.5, .5] -> constant -> zeros.
    torch.testing.assert_close(fuse(maps, "add", normalize="interleaved"), torch.tensor([[[0.0, 0.0]]]))


def test_custom_operator_plugs_in() -> None:
    maps = torch.rand(2, 3, 4, 4)
    mean_of_layers = lambda m: minmax_normalize(m.mean(1))  # noqa: E731
    torch.testing.assert_close(fuse(maps, mean_of_layers), minmax_normalize(maps.mean(1)))


def test_errors_name_the_argument() -> None:
    maps = torch.rand(1, 2, 3, 3)
    with pytest.raises(ValueError, match="unknown fusion 'median'.*add"):
        fuse(maps, "median")
    with pytest.raises(ValueError, match="alpha must lie in"):
        fuse(maps, "add", alpha=1.5)
    with pytest.raises(ValueError, match="normalize must be"):
        fuse(maps, "add", normalize="never")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, L, H, W\)"):
        fuse(torch.rand(2, 3, 3), "max")


@pytest.mark.parametrize("op", ["max", "add", "top", "fem"])
@pytest.mark.parametrize("normalize", ["end", "interleaved"])
def test_fusion_leaves_its_input_untouched(op: str, normalize: str) -> None:
    maps = torch.rand(2, 4, 5, 6, generator=torch.Generator().manual_seed(7))
    before = maps.clone()
    fuse(maps, op, normalize=normalize)  # type: ignore[arg-type]
    torch.testing.assert_close(maps, before)


@SETTINGS
@given(maps=layer_maps(), alpha=st.floats(0.0, 1.0))
def test_linear_weights_reproduce_the_recursion(maps: torch.Tensor, alpha: float) -> None:
    # MLFEM's fast route relies on: fusing == minmax(sum_l w_l S_l) for add/fem with end
    # normalisation.
    for fusion in (AddFusion(alpha), make_fusion("fem")):
        weights = fusion.linear_weights(maps.shape[1])
        assert weights is not None and len(weights) == maps.shape[1]
        weighted = sum(weight * maps[:, index] for index, weight in enumerate(weights))
        torch.testing.assert_close(fusion(maps), minmax_normalize(weighted))


def test_nonlinear_fusions_have_no_linear_weights() -> None:
    assert make_fusion("max").linear_weights(4) is None
    assert TopFusion(0.5).linear_weights(4) is None
    assert AddFusion(0.5, normalize="interleaved").linear_weights(4) is None
    assert AddFusion(0.5).linear_weights(3) == [0.25, 0.25, 0.5]
