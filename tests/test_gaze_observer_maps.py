"""ObserverMaps' fast per-observer scores (PCC, SIM, NSS, AUC-Judd) against the metric
functions on full-size maps, i.e. the definitions (the fast forms are another order of the
same sums): both protocols, edge cases (constant map, observer outside the image, collapse,
float32, NaN maps) and the buffer reuse of the evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlfem.gaze import Fixations, ObserverMaps, human_ceilings
from mlfem.metrics import compute

FAST = ["pcc", "sim", "nss", "auc_judd"]


def _fixations(seed: int = 0, n_obs: int = 5, height: int = 36, width: int = 52) -> Fixations:
    rng = np.random.default_rng(seed)
    observers = []
    for o in range(n_obs):
        n = int(rng.integers(3, 9))
        xs = rng.uniform(-0.4, width - 0.6, n)
        ys = rng.uniform(-0.4, height - 0.6, n)
        if o == 1:  # a duplicate fixation: counts 2
            xs, ys = np.append(xs, xs[0]), np.append(ys, ys[0])
        observers.append((xs, ys))
    return Fixations.from_observers(observers, height, width, name="img")


def _maps(height: int = 36, width: int = 52, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(3, 1, 5, 7), size=(height, width), mode="bilinear")[:, 0]
    constant = torch.full((1, height, width), 0.25)
    return torch.cat([smooth, constant]).to(dtype)


def _expected_cross(maps: ObserverMaps, preds: torch.Tensor, metric: str) -> torch.Tensor:
    n_maps, n_obs = preds.shape[0], maps.n_observers
    return compute(
        metric, preds.repeat_interleave(n_obs, dim=0),
        gt=maps.own.to(preds.dtype).repeat(n_maps, 1, 1), fix=maps.counts.to(preds.dtype).repeat(n_maps, 1, 1),
    ).double().reshape(n_maps, n_obs)


@pytest.mark.parametrize("collapse", [False, True])
def test_cross_scores_agree_with_the_metric_functions(collapse: bool) -> None:
    maps = ObserverMaps(_fixations(), 3.0, collapse=collapse)
    preds = _maps()
    got = maps.cross_scores(preds, FAST)
    for metric in FAST:
        expected = _expected_cross(maps, preds, metric)
        # float32 maps: the metric functions sum in float32, the fast forms in float64.
        torch.testing.assert_close(got[metric], expected, rtol=0, atol=2e-6, equal_nan=True)
    assert torch.isnan(got["pcc"][3]).all() and torch.isnan(got["nss"][3]).all()  # constant map
    assert torch.equal(got["auc_judd"][3], torch.full((maps.n_observers,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("collapse", [False, True])
def test_ceiling_scores_agree_with_the_metric_functions(collapse: bool) -> None:
    maps = ObserverMaps(_fixations(1, n_obs=6), 2.5, collapse=collapse)
    got = maps.ceiling_scores(FAST + ["kld"])
    for metric in FAST + ["kld"]:
        expected = compute(metric, maps.others, gt=maps.own, fix=maps.counts).double()
        torch.testing.assert_close(got[metric], expected, rtol=1e-10, atol=1e-12, equal_nan=True)
    means = human_ceilings(_fixations(1, n_obs=6), 2.5, FAST, collapse=collapse)
    assert [means[m].mean for m in FAST] == pytest.approx([float(got[m].mean()) for m in FAST], abs=1e-15)


def test_support_boxes_smaller_than_the_image() -> None:
    # Observers looking at one corner each: their boxes are a fraction of the image, so SIM
    # and the ceiling read only part of it; the scores are still the metric functions'.
    rng = np.random.default_rng(4)
    corners = [(8, 6), (70, 40), (10, 44), (75, 8), (40, 25)]
    observers = [(x + rng.normal(0, 2, 4), y + rng.normal(0, 2, 4)) for x, y in corners]
    fixations = Fixations.from_observers(observers, 50, 84, name="corners")
    maps = ObserverMaps(fixations, 2.0)
    assert all((r1 - r0) * (c1 - c0) < 50 * 84 / 2 for r0, r1, c0, c1 in maps.boxes)
    preds = _maps(50, 84)
    cross = maps.cross_scores(preds, FAST)
    for metric in FAST:
        torch.testing.assert_close(cross[metric], _expected_cross(maps, preds, metric), rtol=0, atol=2e-6,
                                   equal_nan=True)
    ceiling = maps.ceiling_scores(FAST)
    for metric in FAST:
        expected = compute(metric, maps.others, gt=maps.own, fix=maps.counts).double()
        torch.testing.assert_close(ceiling[metric], expected, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_an_observer_outside_the_image_and_float32_maps() -> None:
    inside = _fixations(2)
    outside = Fixations(xs=np.r_[inside.xs, 500.0], ys=np.r_[inside.ys, 3.0], height=inside.height,
                        width=inside.width, observers=np.r_[inside.observers, 99])
    maps = ObserverMaps(outside, 3.0, dtype=torch.float32)
    assert maps.n_observers == 6 and float(maps.sums[-1]) == 0.0
    preds = _maps()
    cross = maps.cross_scores(preds, FAST)
    ceiling = maps.ceiling_scores(FAST)
    for metric in FAST:
        assert torch.isnan(cross[metric][:, -1]).all() and torch.isnan(ceiling[metric][-1])
        torch.testing.assert_close(cross[metric][:, :-1], _expected_cross(maps, preds, metric)[:, :-1],
                                   rtol=0, atol=2e-6, equal_nan=True)


def test_maps_with_nan_take_the_metric_functions_route_and_buffers_are_reused() -> None:
    fixations = _fixations(3)
    first = ObserverMaps(fixations, 3.0)
    again = ObserverMaps(fixations, 3.0, out=first.blurred)
    assert again.blurred.data_ptr() == first.blurred.data_ptr()
    preds = _maps()
    preds[0, 2, 2] = float("nan")
    got = again.cross_scores(preds, FAST)
    for metric in FAST:
        torch.testing.assert_close(got[metric], _expected_cross(again, preds, metric), rtol=0, atol=0,
                                   equal_nan=True)
    with pytest.raises(ValueError, match="sauc"):
        again.cross_scores(preds, ["sauc"])
