"""The real OSIE sample (40 images, 15 observers, 800x600), read in place from ../shared."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _osie import require_osie

from mlfem import metrics
from mlfem.gaze import (
    centre_bias,
    fixation_counts,
    gfdm_batch,
    human_ceiling,
    observer_scores,
    read_osie,
)

SIGMA = 24.0  # the OSIE authors' blur


@pytest.fixture(scope="module")
def osie():
    return read_osie(require_osie())


def test_reads_the_sample_as_shipped(osie):
    assert len(osie) == 40
    assert [f.name for f in osie[:2]] == ["1001", "1002"]
    assert all(f.size == (600, 800) and f.n_observers == 15 for f in osie)
    assert osie[0].durations is not None
    # 1-based MATLAB coordinates become 0-based: first fixation of 1001 is (395.5, 265.7).
    assert osie[0].xs[0] == pytest.approx(394.5) and osie[0].ys[0] == pytest.approx(264.7)
    assert osie[0].durations[0] == 246


def test_gfdms_are_finite_densities(osie):
    batch = gfdm_batch(osie, SIGMA)
    assert batch.maps.shape == (40, 600, 800)
    assert bool(torch.isfinite(batch.maps).all()) and float(batch.maps.min()) >= 0
    sums = batch.maps.sum(dim=(1, 2), dtype=torch.float64)
    assert torch.allclose(sums, torch.ones(40, dtype=torch.float64), atol=1e-5)
    assert int(batch.n_dropped.sum()) == 0
    assert int(batch.n_kept.sum()) == sum(len(f) for f in osie)
    weighted = gfdm_batch(osie[:3], SIGMA, weight_by_duration=True, padding="zero")
    assert torch.allclose(weighted.maps.sum(dim=(1, 2)), torch.ones(3), atol=1e-5)


def _ceiling_vs_centre(images):
    centre = centre_bias(600, 800, dtype=torch.float32)
    ceiling = np.mean([human_ceiling(f, SIGMA, "pcc", dtype=torch.float32).mean for f in images])
    same_protocol = np.mean(
        [observer_scores(centre, f, SIGMA, "pcc", dtype=torch.float32).mean for f in images]
    )
    full = gfdm_batch(images, SIGMA)
    against_full = float(metrics.pcc(centre, full.maps).mean())
    return ceiling, same_protocol, against_full


def test_human_ceiling_beats_centre_bias_on_a_subset(osie):
    """Every 10th image, to stay fast. On all 40 images (benchmarks/bench_gaze.py): ceiling 0.666,
    centre bias 0.229 under the same leave-one-out targets and 0.323 against the full GFDMs."""
    ceiling, same_protocol, against_full = _ceiling_vs_centre(osie[::10])
    assert 0.5 < ceiling < 0.9
    assert ceiling > same_protocol + 0.25
    assert ceiling > against_full + 0.1  # different targets: full GFDM, not one observer


def test_location_metrics_on_real_fixations(osie):
    images = osie[:2]
    counts = fixation_counts([f.xs for f in images], [f.ys for f in images], 600, 800).counts
    maps = gfdm_batch(images, SIGMA).maps
    centre = centre_bias(600, 800)
    table = metrics.evaluate(
        torch.cat([maps, centre.expand(2, -1, -1)]),
        gt=torch.cat([maps, maps]),
        fix=torch.cat([counts, counts]),
        metrics=["pcc", "sim", "nss", "auc_judd", "auc_borji", "kld", "info_gain"],
    )
    assert table.nan_counts == {m: 0 for m in table.metrics}
    rows = table.rows()
    for own, cb in zip(rows[:2], rows[2:]):
        # The GFDM predicts its own fixations better than the centre bias does.
        assert own["pcc"] == pytest.approx(1.0) and own["sim"] == pytest.approx(1.0, abs=1e-5)
        assert own["nss"] > cb["nss"] and own["auc_judd"] > cb["auc_judd"]
        assert own["info_gain"] > 0 and cb["info_gain"] == pytest.approx(0.0, abs=1e-5)
