"""design.md section 4 reference values (pysaliency's fixture, re-derived independently).

Two 40x40 images; model map exp(-0.5 * r2 / size); gold = binary fixation map blurred with
sigma 10 px, reflect padding (scipy).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from mlfem import metrics
from mlfem.gaze import fixation_counts, gfdm

H = W = 40
FIXATIONS = [([0, 1, 2, 2, 2], [10, 11, 12, 12, 12]), ([1, 5, 3], [21, 25, 33])]


@pytest.fixture(scope="module")
def model() -> torch.Tensor:
    ys, xs = np.mgrid[:H, :W]
    r2 = (xs - W / 2) ** 2 + (ys - H / 2) ** 2
    size = np.sqrt(W**2 + H**2)
    return torch.tensor(np.exp(-0.5 * r2 / size))


@pytest.fixture(scope="module")
def gold() -> torch.Tensor:
    maps = []
    for xs, ys in FIXATIONS:
        binary = np.zeros((H, W))
        binary[ys, xs] = 1  # duplicates collapsed
        maps.append(gaussian_filter(binary, 10, mode="reflect"))
    return torch.tensor(np.stack(maps))


@pytest.fixture(scope="module")
def counts() -> torch.Tensor:
    return fixation_counts([f[0] for f in FIXATIONS], [f[1] for f in FIXATIONS], H, W).counts


def per_fixation_mean(values: torch.Tensor, counts: torch.Tensor) -> float:
    n = counts.sum(dim=(1, 2))
    return float((values * n).sum() / n.sum())


def test_counts_keep_duplicates(counts: torch.Tensor) -> None:
    assert counts.sum(dim=(1, 2)).tolist() == [5.0, 3.0]
    assert counts[0, 12, 2] == 3


def test_sim(model: torch.Tensor, gold: torch.Tensor) -> None:
    assert float(metrics.sim(model, gold).mean()) == pytest.approx(0.315899, abs=1e-6)
    assert float(metrics.sim(model, gold, variant="mit").mean()) == pytest.approx(
        0.3149125, abs=1e-6
    )


def test_sim_against_constant(model: torch.Tensor) -> None:
    assert float(metrics.sim(model, torch.ones(H, W, dtype=torch.float64))) == pytest.approx(
        0.54392, abs=1e-6
    )


def test_cc(model: torch.Tensor, gold: torch.Tensor) -> None:
    assert float(metrics.pcc(model, gold).mean()) == pytest.approx(-0.1542654, abs=1e-6)


def test_nss_per_fixation_and_per_image(model: torch.Tensor, counts: torch.Tensor) -> None:
    values = metrics.nss(model, counts)
    assert per_fixation_mean(values, counts) == pytest.approx(-0.721682239593952, abs=1e-9)
    assert float(values.mean()) == pytest.approx(-0.706711609374163, abs=1e-9)


def test_kld_gold_vs_model(model: torch.Tensor, gold: torch.Tensor) -> None:
    assert float(metrics.kld(model, gold).mean()) == pytest.approx(2.029283206727416, abs=1e-9)


def test_kld_constant_ground_truth(model: torch.Tensor) -> None:
    value = metrics.kld(model, torch.ones(H, W, dtype=torch.float64))
    assert float(value) == pytest.approx(0.8396272788909165, abs=1e-9)


def test_auc_all_pixels_per_fixation(model: torch.Tensor, counts: torch.Tensor) -> None:
    values = metrics.auc_pixels(model, counts)
    assert per_fixation_mean(values, counts) == pytest.approx(0.2403125, abs=1e-9)


def test_auc_judd_per_image(model: torch.Tensor, counts: torch.Tensor) -> None:
    assert float(metrics.auc_judd(model, counts).mean()) == pytest.approx(
        0.44504278856188684, abs=1e-9
    )


def test_gold_from_gfdm_matches_scipy_fixture(gold: torch.Tensor) -> None:
    """The library's collapsed GFDM is the (normalised) fixture gold map."""
    ours = torch.stack(
        [gfdm(xs, ys, H, W, 10, collapse=True, dtype=torch.float64) for xs, ys in FIXATIONS]
    )
    expected = gold / gold.sum(dim=(1, 2), keepdim=True)
    assert torch.allclose(ours, expected, rtol=0, atol=1e-12)
    # Scale does not matter for these metrics: the reference values hold on our GFDM too.
    ys, xs = np.mgrid[:H, :W]
    model = torch.tensor(np.exp(-0.5 * ((xs - 20) ** 2 + (ys - 20) ** 2) / np.sqrt(3200)))
    assert float(metrics.pcc(model, ours).mean()) == pytest.approx(-0.1542654, abs=1e-6)
    assert float(metrics.kld(model, ours).mean()) == pytest.approx(2.029283206727416, abs=1e-9)


def test_table_reproduces_references(
    model: torch.Tensor, gold: torch.Tensor, counts: torch.Tensor
) -> None:
    table = metrics.evaluate(
        model, gt=gold, fix=counts, metrics=["cc", "sim", "sim_mit", "nss", "kld", "auc_judd"]
    )
    means = table.mean()
    assert means["pcc"] == pytest.approx(-0.1542654, abs=1e-6)
    assert means["sim"] == pytest.approx(0.315899, abs=1e-6)
    assert means["sim_mit"] == pytest.approx(0.3149125, abs=1e-6)
    assert means["nss"] == pytest.approx(-0.706711609374163, abs=1e-9)
    assert means["kld"] == pytest.approx(2.029283206727416, abs=1e-9)
    assert means["auc_judd"] == pytest.approx(0.44504278856188684, abs=1e-9)
    assert table.resized is False
    assert table.nan_counts == {m: 0 for m in table.metrics}
    assert len(table) == 2 and [r["image"] for r in table.rows()] == [0, 1]
