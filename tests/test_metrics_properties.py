"""Property-based checks of the metrics (hypothesis; modest example counts, no deadline)."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlfem import metrics

SETTINGS = settings(max_examples=40, deadline=None)

shapes = st.tuples(st.integers(2, 9), st.integers(2, 9))
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)
positive = st.floats(0.0, 1e3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def map_pairs(draw, elements=finite):
    shape = draw(shapes)
    a = draw(arrays(np.float64, shape, elements=elements))
    b = draw(arrays(np.float64, shape, elements=elements))
    return torch.tensor(a), torch.tensor(b)


@st.composite
def map_and_fixations(draw):
    shape = draw(shapes)
    s = draw(arrays(np.float64, shape, elements=finite))
    fix = draw(arrays(np.int64, shape, elements=st.integers(0, 3)))
    assume(fix.sum() > 0)
    return torch.tensor(s), torch.tensor(fix)


def _not_constant(t: torch.Tensor) -> bool:
    return bool(t.max() > t.min()) and float(t.std()) > 1e-6 * (1 + float(t.abs().max()))


@SETTINGS
@given(map_pairs())
def test_pcc_symmetric(pair):
    a, b = pair
    assume(_not_constant(a) and _not_constant(b))
    assert math.isclose(float(metrics.pcc(a, b)), float(metrics.pcc(b, a)), abs_tol=1e-9)


@SETTINGS
@given(
    map_pairs(),
    st.floats(0.01, 100),
    st.floats(-100, 100),
    st.floats(0.01, 100),
    st.floats(-100, 100),
)
def test_pcc_invariant_to_positive_affine(pair, scale_a, shift_a, scale_b, shift_b):
    a, b = pair
    assume(_not_constant(a) and _not_constant(b))
    base = float(metrics.pcc(a, b))
    moved = float(metrics.pcc(a * scale_a + shift_a, b * scale_b + shift_b))
    assert -1.0 <= base <= 1.0
    assert math.isclose(base, moved, abs_tol=1e-7)


@SETTINGS
@given(finite, arrays(np.float64, (4, 4), elements=finite))
def test_constant_map_gives_nan_pcc(value, other):
    constant = torch.full((4, 4), value, dtype=torch.float64)
    assert math.isnan(float(metrics.pcc(constant, torch.tensor(other))))
    assert math.isnan(float(metrics.pcc(torch.tensor(other), constant)))


@SETTINGS
@given(map_pairs(elements=positive))
def test_sim_in_unit_interval_and_reflexive(pair):
    a, b = pair
    assume(float(a.sum()) > 0 and float(b.sum()) > 0)
    for variant in ("default", "mit"):
        value = float(metrics.sim(a, b, variant=variant))
        if variant == "mit" and (not bool(a.max() > a.min()) or not bool(b.max() > b.min())):
            assert math.isnan(value)
            continue
        assert 0.0 <= value <= 1.0
    assert math.isclose(float(metrics.sim(a, a)), 1.0, abs_tol=1e-12)


@SETTINGS
@given(map_and_fixations(), st.floats(0.01, 100), st.floats(-100, 100))
def test_nss_invariant_to_positive_affine(data, scale, shift):
    s, fix = data
    assume(_not_constant(s))
    base = float(metrics.nss(s, fix))
    assert math.isclose(
        base, float(metrics.nss(s * scale + shift, fix)), rel_tol=1e-6, abs_tol=1e-6
    )


@SETTINGS
@given(shapes, finite, st.data())
def test_auc_of_constant_map_is_half(shape, value, data):
    fix = torch.tensor(data.draw(arrays(np.int64, shape, elements=st.integers(0, 3))))
    assume(int(fix.sum()) > 0 and bool((fix == 0).any()))
    constant = torch.full(shape, value, dtype=torch.float64)
    assert float(metrics.auc_judd(constant, fix)) == 0.5
    assert float(metrics.auc_pixels(constant, fix)) == 0.5
    assert float(metrics.auc_borji(constant, fix, n_splits=5)) == 0.5


@SETTINGS
@given(map_and_fixations())
def test_aucs_in_unit_interval(data):
    s, fix = data
    assume(bool((fix == 0).any()))
    for value in (
        metrics.auc_judd(s, fix),
        metrics.auc_pixels(s, fix),
        metrics.auc_borji(s, fix, n_splits=3),
    ):
        assert 0.0 <= float(value) <= 1.0


@SETTINGS
@given(map_pairs(elements=positive))
def test_kld_nonnegative_and_zero_on_itself(pair):
    a, b = pair
    assume(float(a.sum()) > 0 and float(b.sum()) > 0)
    assert float(metrics.kld(a, b)) >= -1e-12
    assert abs(float(metrics.kld(a, a))) < 1e-9


def test_sim_of_a_map_near_the_smallest_normal_float() -> None:
    """Found by hypothesis: the ratio of the two sums overflowed and SIM came out NaN."""
    a = torch.ones(2, 2, dtype=torch.float64)
    b = torch.zeros(2, 2, dtype=torch.float64)
    b[0, 0] = torch.finfo(torch.float64).tiny
    assert math.isclose(float(metrics.sim(a, b)), 0.25, abs_tol=1e-12)
    assert math.isclose(float(metrics.sim(b, a)), 0.25, abs_tol=1e-12)
    huge = torch.full((2, 2), 1e300, dtype=torch.float64)
    assert math.isclose(float(metrics.sim(huge, a)), 1.0, abs_tol=1e-12)
