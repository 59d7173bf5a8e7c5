"""Centre bias and inter-observer consistency on synthetic observers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlfem import metrics
from mlfem.gaze import (
    CenterBias,
    CentreBias,
    Fixations,
    center_bias,
    centre_bias,
    gfdm,
    human_ceiling,
    human_ceiling_per_image,
    observer_scores,
)


def test_centre_bias_is_an_anisotropic_centred_density():
    cb = centre_bias(60, 100, dtype=torch.float64)
    assert cb.shape == (60, 100)
    assert float(cb.sum()) == pytest.approx(1.0)
    # symmetric about the image centre, peak in the middle four pixels
    assert torch.allclose(cb, cb.flip(0)) and torch.allclose(cb, cb.flip(1))
    assert float(cb[29:31, 49:51].min()) == float(cb.max())
    # widths are fractions of each side: wider along the width, in pixels
    col = cb[30]
    row = cb[:, 50]
    half_width_x = int((col > col.max() / 2).sum())
    half_width_y = int((row > row.max() / 2).sum())
    assert half_width_x > half_width_y
    assert half_width_x / 100 == pytest.approx(half_width_y / 60, abs=0.05)
    narrow = centre_bias(60, 100, sigma_x=0.1, sigma_y=0.3, dtype=torch.float64)
    assert int((narrow[30] > narrow[30].max() / 2).sum()) < half_width_x
    assert center_bias is centre_bias and CenterBias is CentreBias
    with pytest.raises(ValueError, match="sigma_x"):
        centre_bias(10, 10, sigma_x=0)


def test_centre_bias_as_a_method_and_fit():
    method = CentreBias(0.15, 0.25)
    assert torch.allclose(method(30, 40), centre_bias(30, 40, sigma_x=0.15, sigma_y=0.25))
    rng = np.random.default_rng(0)
    images = [
        Fixations(
            xs=(99) / 2 + rng.normal(0, 0.1 * 100, 4000),
            ys=(79) / 2 + rng.normal(0, 0.3 * 80, 4000),
            height=80,
            width=100,
        )
    ]
    fitted = CentreBias.fit(images)
    assert fitted.sigma_x == pytest.approx(0.1, abs=0.01)
    # fixations outside the image are ignored, which truncates the wide vertical spread
    assert 0.2 < fitted.sigma_y < 0.3
    with pytest.raises(ValueError, match="at least two fixations"):
        CentreBias.fit([Fixations(xs=[], ys=[], height=5, width=5)])


def _observers(rng, n_obs, spots, height=48, width=64, jitter=2.0, per=8):
    observers = []
    for _ in range(n_obs):
        idx = rng.integers(0, len(spots), per)
        pts = np.asarray(spots)[idx] + rng.normal(0, jitter, (per, 2))
        observers.append((pts[:, 0], pts[:, 1]))
    return Fixations.from_observers(observers, height, width, name="synthetic")


def test_identical_observers_reach_the_ceiling():
    same = Fixations.from_observers([([10.0, 40.0], [12.0, 30.0])] * 4, 48, 64)
    result = human_ceiling(same, 4.0, "pcc")
    assert result.scores.shape == (4,) and result.n_nan == 0
    assert result.mean == pytest.approx(1.0, abs=1e-12)
    assert human_ceiling(same, 4.0, "sim").mean == pytest.approx(1.0, abs=1e-12)
    assert human_ceiling(same, 4.0, "kld").mean == pytest.approx(0.0, abs=1e-9)


def test_human_ceiling_matches_explicit_leave_one_out():
    rng = np.random.default_rng(1)
    fix = _observers(rng, 5, [(15, 12), (45, 30), (30, 40)])
    for collapse in (False, True):
        result = human_ceiling(fix, 3.0, "pcc", collapse=collapse)
        expected = []
        for o in fix.observer_ids:
            rest, own = fix.without_observer(o), fix.of_observer(o)
            pred = gfdm(rest.xs, rest.ys, 48, 64, 3.0, collapse=collapse, dtype=torch.float64)
            gt = gfdm(own.xs, own.ys, 48, 64, 3.0, collapse=collapse, dtype=torch.float64)
            expected.append(float(metrics.pcc(pred, gt)))
        assert result.scores.tolist() == pytest.approx(expected, abs=1e-10)
        assert result.mean == pytest.approx(np.mean(expected), abs=1e-10)
        assert result.observers.tolist() == [0, 1, 2, 3, 4]


def test_location_metric_and_callable_metric():
    rng = np.random.default_rng(2)
    fix = _observers(rng, 4, [(20, 20), (44, 28)])
    nss = human_ceiling(fix, 3.0, "nss")
    assert nss.mean > 1.0  # the other observers' density is high where each observer looked
    own_counts = lambda o: torch.tensor(  # noqa: E731
        np.histogram2d(
            np.floor(fix.of_observer(o).ys + 0.5),
            np.floor(fix.of_observer(o).xs + 0.5),
            bins=(48, 64),
            range=((-0.5, 47.5), (-0.5, 63.5)),
        )[0]
    )
    rest = fix.without_observer(0)
    pred0 = gfdm(rest.xs, rest.ys, 48, 64, 3.0, dtype=torch.float64)
    assert float(nss.scores[0]) == pytest.approx(float(metrics.nss(pred0, own_counts(0))), abs=1e-9)
    custom = human_ceiling(fix, 3.0, lambda p, fx: (p * fx).sum(dim=(1, 2)), needs="fix")
    assert custom.scores.shape == (4,) and bool((custom.scores > 0).all())
    with pytest.raises(ValueError, match="sauc"):
        human_ceiling(fix, 3.0, "sauc")
    with pytest.raises(ValueError, match="at least two observers"):
        human_ceiling(fix.of_observer(0), 3.0)


def test_observer_scores_put_a_fixed_map_beside_the_ceiling():
    rng = np.random.default_rng(3)
    # Observers look at two off-centre spots: the ceiling must beat the centre bias.
    dataset = [_observers(rng, 6, [(8, 8), (56, 40)]) for _ in range(3)]
    ceiling = human_ceiling_per_image(dataset, 3.0, "pcc")
    assert ceiling.shape == (3,)
    centre = centre_bias(48, 64, dtype=torch.float64)
    for fix, top in zip(dataset, ceiling):
        baseline = observer_scores(centre, fix, 3.0, "pcc")
        assert baseline.scores.shape == (6,)
        assert float(top) > baseline.mean + 0.3
    with pytest.raises(ValueError, match="one \\(H, W\\) map"):
        observer_scores(torch.rand(2, 48, 64), dataset[0], 3.0)


def test_observer_without_fixation_inside_is_nan_and_counted():
    fix = Fixations.from_observers(
        [([10.0, 12.0], [10.0, 11.0]), ([11.0], [10.0]), ([500.0], [500.0])], 32, 32
    )
    result = human_ceiling(fix, 2.0, "pcc")
    assert result.n_nan == 1 and math.isnan(float(result.scores[2]))
    assert math.isfinite(result.mean)
