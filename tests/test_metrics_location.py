"""Location metrics against straightforward ports of the MIT benchmark code, NaN handling,
batching, resizing and the evaluate() table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlfem import metrics
from mlfem.metrics.centre import centre_bias
from mlfem.metrics.location import _sampled_auc, _thresholds
from _cuda import requires_cuda


def mit_auc_judd(s: np.ndarray, fixmap: np.ndarray) -> float:
    """Port of MIT AUC_Judd.m (no jitter) for a binary fixation map."""
    s = (s - s.min()) / (s.max() - s.min())
    S, F = s.ravel(), fixmap.ravel()
    sth = S[F > 0]
    n_fix, n_pix = sth.size, S.size
    thresholds = np.sort(sth)[::-1]
    tp = np.zeros(n_fix + 2)
    fp = np.zeros(n_fix + 2)
    tp[-1] = fp[-1] = 1
    for i, t in enumerate(thresholds):
        above = (S >= t).sum()
        tp[i + 1] = (i + 1) / n_fix
        fp[i + 1] = (above - (i + 1)) / (n_pix - n_fix)
    return float(np.trapezoid(tp, fp))


def mit_borji_curve(sth: np.ndarray, randfix: np.ndarray, step: float = 0.1) -> float:
    """The per-split loop of MIT AUC_Borji.m / AUC_shuffled.m for given negatives."""
    aucs = []
    for curfix in randfix:
        top = max(sth.max(), curfix.max())
        thresholds = np.arange(0, top + 1e-12, step)[::-1]
        tp = np.zeros(thresholds.size + 2)
        fp = np.zeros(thresholds.size + 2)
        tp[-1] = fp[-1] = 1
        for i, t in enumerate(thresholds):
            tp[i + 1] = (sth >= t).sum() / sth.size
            fp[i + 1] = (curfix >= t).sum() / curfix.size
        aucs.append(np.trapezoid(tp, fp))
    return float(np.mean(aucs))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(7)
    s = rng.random((4, 24, 30))
    fix = np.zeros((4, 24, 30), dtype=np.int64)
    for b in range(4):
        idx = rng.choice(24 * 30, size=10 + 3 * b, replace=False)
        fix[b].flat[idx] = 1
    return torch.tensor(s), torch.tensor(fix)


def test_auc_judd_matches_mit_port(batch):
    s, fix = batch
    ours = metrics.auc_judd(s, fix)
    expected = [mit_auc_judd(s[b].numpy(), fix[b].numpy()) for b in range(4)]
    assert torch.allclose(ours, torch.tensor(expected, dtype=ours.dtype), atol=1e-12)


def test_auc_judd_counts_duplicates():
    s = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=torch.float64)
    once = torch.tensor([[0, 1], [0, 1]])
    twice = torch.tensor([[0, 2], [0, 1]])  # extra weight on the lower-ranked fixation
    assert float(metrics.auc_judd(s, twice)) < float(metrics.auc_judd(s, once))


def test_sampled_curve_matches_mit_loop():
    rng = np.random.default_rng(3)
    s = torch.tensor(rng.random(200))
    counts = torch.zeros(200, dtype=torch.float64)
    counts[rng.choice(200, 15, replace=False)] = 1
    negatives = torch.tensor(rng.random((7, 15)))
    ours = _sampled_auc(s, counts, lambda: negatives, _thresholds(0.1, s.dtype, s.device))
    expected = mit_borji_curve(s[counts > 0].numpy(), negatives.numpy())
    assert float(ours) == pytest.approx(expected, abs=1e-12)


def test_auc_borji_seeded_and_converges_to_expectation(batch):
    s, fix = batch
    first = metrics.auc_borji(s, fix, seed=1)
    assert torch.equal(first, metrics.auc_borji(s, fix, seed=1))
    gen = torch.Generator().manual_seed(1)
    assert torch.equal(first, metrics.auc_borji(s, fix, generator=gen))
    assert not torch.equal(first, metrics.auc_borji(s, fix, seed=2))
    # The trapezoid area is linear in the FPRs, so the split mean converges to the curve whose
    # FPR is the fraction of *all* pixels above each threshold.
    many = metrics.auc_borji(s, fix, n_splits=4000, seed=0)
    for b in range(4):
        norm = s[b].numpy()
        norm = (norm - norm.min()) / (norm.max() - norm.min())
        expected = mit_borji_curve(norm[fix[b].numpy() > 0], norm.ravel()[None, :])
        assert float(many[b]) == pytest.approx(expected, abs=0.01)


def test_sauc_exact_and_sampled(batch):
    s, fix = batch
    other = fix.flip(0)
    exact = metrics.sauc(s, fix, other, exact=True)
    for b in range(4):
        pos = s[b][fix[b] > 0]
        neg = s[b][other[b] > 0]
        expected = (
            (pos[:, None] > neg[None, :]).double() + 0.5 * (pos[:, None] == neg[None, :]).double()
        ).mean()
        assert float(exact[b]) == pytest.approx(float(expected), abs=1e-12)
    sampled = metrics.sauc(s, fix, other, seed=0)
    assert torch.equal(sampled, metrics.sauc(s, fix, other, seed=0))
    assert bool(((sampled >= 0) & (sampled <= 1)).all())
    # A single shared (H, W) map of other fixations broadcasts over the batch.
    shared = metrics.sauc(s, fix, other[0], exact=True)
    assert shared.shape == (4,)


def test_sampled_sauc_by_hand_on_a_six_pixel_map():
    # Values already span [0, 1] (min-max leaves them), each in its own 0.1 threshold bucket.
    # Positives 0.6 and 1.0 against negatives 0.4 and 0.8: 3 of the 4 pairs are ordered right,
    # so the ROC area is 3/4. Two other fixations for two fixations: every split draws both.
    s = torch.tensor([[0.0, 0.2, 0.4], [0.6, 0.8, 1.0]], dtype=torch.float64)
    fix = torch.tensor([[0, 0, 0], [1, 0, 1]])
    other = torch.tensor([[0, 0, 1], [0, 1, 0]])
    for seed in (0, 1, 2):
        assert float(metrics.sauc(s, fix, other, seed=seed)) == pytest.approx(0.75, abs=1e-12)
    assert float(metrics.sauc(s, fix, other, exact=True)) == pytest.approx(0.75, abs=1e-12)


def _normalised(s: np.ndarray) -> np.ndarray:
    return (s - s.min()) / (s.max() - s.min())


def test_sampled_sauc_equals_the_mit_loop_when_every_other_fixation_is_drawn(batch):
    # With no more other fixations than fixations, each split draws all of them (without
    # replacement), so every split is the MIT loop with those negatives, whatever the seed.
    s, _ = batch
    rng = np.random.default_rng(11)
    fix = np.zeros((4, 24, 30), dtype=np.int64)
    other = np.zeros((4, 24, 30), dtype=np.int64)
    for b in range(4):
        fix[b].flat[rng.choice(720, 12, replace=False)] = 1
        fix[b].flat[rng.choice(720, 2, replace=False)] += 1  # duplicates weigh twice
        other[b].flat[rng.choice(720, 6 + b, replace=False)] = 1
        other[b].flat[rng.choice(720, 1)] += 1
    sampled = metrics.sauc(s, torch.tensor(fix), torch.tensor(other), seed=3)
    for b in range(4):
        norm = _normalised(s[b].numpy()).ravel()
        positives = np.repeat(norm, fix[b].ravel())
        negatives = np.repeat(norm, other[b].ravel())
        assert float(sampled[b]) == pytest.approx(mit_borji_curve(positives, negatives[None]), abs=1e-12)
    assert torch.equal(sampled, metrics.sauc(s, torch.tensor(fix), torch.tensor(other), seed=4))


def test_sampled_sauc_converges_to_the_curve_over_all_other_fixations(batch):
    # More other fixations than fixations: each split draws a random subset. The trapezoid area
    # is linear in the FPRs and a random subset's FPR is unbiased, so the mean over many splits
    # tends to the MIT curve with every other fixation as a negative (standard error ~0.002 here).
    s, fix = batch
    rng = np.random.default_rng(12)
    other = np.zeros((4, 24, 30), dtype=np.int64)
    for b in range(4):
        other[b].flat[rng.choice(720, 60, replace=False)] = 1
    sampled = metrics.sauc(s, fix, torch.tensor(other), n_splits=4000, seed=0)
    for b in range(4):
        norm = _normalised(s[b].numpy()).ravel()
        expected = mit_borji_curve(norm[fix[b].numpy().ravel() > 0], norm[other[b].ravel() > 0][None])
        assert float(sampled[b]) == pytest.approx(expected, abs=0.01)
    few = metrics.sauc(s, fix, torch.tensor(other), n_splits=3, seed=0)
    assert not torch.allclose(few, sampled, atol=1e-6)  # the draws are random, not the full set


def test_sauc_is_blind_to_the_shared_centre_bias():
    """sAUC negatives share the positives' spatial bias: a centre map that beats AUC-Judd
    scores 0.5 under sAUC when every image has the same fixations."""
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(20.0), indexing="ij")
    centre = torch.exp(-((xs - 9.5) ** 2 + (ys - 9.5) ** 2) / 20)
    fix = torch.zeros(20, 20)
    fix[8:12, 8:12] = 1
    assert float(metrics.auc_judd(centre, fix)) > 0.9
    assert float(metrics.sauc(centre, fix, fix, exact=True)) == pytest.approx(0.5)


def test_info_gain_baselines():
    rng = np.random.default_rng(0)
    fix = torch.tensor(rng.integers(0, 2, (3, 16, 16)))
    gt_like = torch.tensor(rng.random((3, 16, 16))) + fix * 5.0
    uniform = torch.ones(16, 16, dtype=torch.float64)
    # Against itself: zero gain; a map concentrated on the fixations gains over uniform.
    assert torch.allclose(
        metrics.info_gain(gt_like, fix, gt_like), torch.zeros(3, dtype=torch.float64)
    )
    assert bool((metrics.info_gain(gt_like, fix, "uniform") > 0).all())
    assert torch.allclose(
        metrics.info_gain(uniform, fix, "uniform"), torch.zeros(3, dtype=torch.float64), atol=1e-12
    )
    # bits: a map twice as dense on every fixation as the baseline gains exactly 1 bit.
    pred = torch.ones(2, 2, dtype=torch.float64)
    pred[0, 0] = 3.0  # p = 1/2 at the fixation vs 1/4 for uniform
    one_fix = torch.tensor([[1, 0], [0, 0]])
    assert float(metrics.info_gain(pred, one_fix, "uniform")) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="baseline"):
        metrics.info_gain(gt_like, fix, "nope")


def test_info_gain_by_hand():
    # p = (1/4, 3/4, 0, 0) against the uniform 1/4: the pixel of 3/4 fixated twice gains
    # log2(3) bits each time, the one of 1/4 fixated once gains 0: 2 log2(3) / 3 bits per fixation.
    pred = torch.tensor([[1.0, 3.0], [0.0, 0.0]], dtype=torch.float64)
    fix = torch.tensor([[1, 2], [0, 0]])
    assert float(metrics.info_gain(pred, fix, "uniform")) == pytest.approx(2 * math.log2(3) / 3, abs=1e-12)
    # The MIT variant rescales min-max first: (1, 3, 0, 0) is already 3 x (1/3, 1, 0, 0): the same.
    mit = metrics.info_gain(pred, fix, "uniform", variant="mit")
    assert float(mit) == pytest.approx(2 * math.log2(3) / 3, abs=1e-12)
    # Against a baseline map b = (3, 1, 0, 0) / 4: log2(3/1) at (0, 1) twice, log2(1/3) at (0, 0).
    base = torch.tensor([[3.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    assert float(metrics.info_gain(pred, fix, base)) == pytest.approx(math.log2(3) / 3, abs=1e-12)


def _numpy_info_gain(pred: np.ndarray, fix: np.ndarray, base: np.ndarray, mit: bool) -> float:
    if mit:
        pred, base = _normalised(pred), _normalised(base)
    p, b = pred / pred.sum(), base / base.sum()
    gain = np.log2(2.2204e-16 + p) - np.log2(2.2204e-16 + b)
    return float((gain * fix).sum() / fix.sum())


@pytest.mark.parametrize("variant", ["default", "mit"])
def test_info_gain_over_the_centre_bias_matches_numpy(batch, variant):
    s, fix = batch
    centre = centre_bias(24, 30, dtype=torch.float64).numpy()
    ours = metrics.info_gain(s, fix, variant=variant)  # default baseline: the centre bias
    for b in range(4):
        expected = _numpy_info_gain(s[b].numpy(), fix[b].numpy(), centre, variant == "mit")
        assert float(ours[b]) == pytest.approx(expected, abs=1e-9)


def test_nan_cases_are_reported_not_zero():
    zeros = torch.zeros(2, 8, 8)
    fix = torch.zeros(2, 8, 8)
    fix[0, 1, 1] = 1
    s = torch.rand(2, 8, 8)
    assert bool(torch.isnan(metrics.sim(zeros, s)).all())
    assert bool(torch.isnan(metrics.kld(zeros, s)).all())
    assert bool(torch.isnan(metrics.nss(torch.ones(2, 8, 8), fix)).all())
    judd = metrics.auc_judd(s, fix)
    assert not math.isnan(float(judd[0])) and math.isnan(float(judd[1]))  # no fixations
    assert math.isnan(float(metrics.nss(s, fix)[1]))
    assert math.isnan(float(metrics.auc_borji(s, fix)[1]))
    table = metrics.evaluate(
        s, gt=zeros.clone().fill_(1), fix=fix, metrics=["pcc", "nss", "auc_judd"]
    )
    assert table.nan_counts == {"pcc": 2, "nss": 1, "auc_judd": 1}
    assert math.isnan(table.mean()["pcc"])
    assert table.mean()["nss"] == pytest.approx(table.columns["nss"][0])


def test_batched_equals_per_image(batch):
    s, fix = batch
    gt = torch.rand(4, 24, 30, dtype=torch.float64)
    for name in ("pcc", "sim", "kld"):
        full = metrics.compute(name, s, gt=gt)
        single = torch.stack([metrics.compute(name, s[b], gt=gt[b]) for b in range(4)])
        assert full.shape == (4,) and single[0].dim() == 0
        assert torch.allclose(full, single, atol=1e-12)
    for name in ("nss", "auc_judd", "auc_pixels"):
        full = metrics.compute(name, s, fix=fix)
        single = torch.stack([metrics.compute(name, s[b], fix=fix[b]) for b in range(4)])
        assert torch.allclose(full, single, atol=1e-12)


def test_single_prediction_broadcasts_over_batch(batch):
    s, fix = batch
    out = metrics.nss(s[0], fix)
    assert out.shape == (4,)
    assert float(out[0]) == pytest.approx(float(metrics.nss(s[0], fix[0])))


def test_prediction_resized_bilinearly_and_recorded():
    gt = torch.rand(3, 20, 30, dtype=torch.float64)
    small = torch.nn.functional.interpolate(
        gt.unsqueeze(1), size=(10, 15), mode="bilinear"
    ).squeeze(1)
    table = metrics.evaluate(small, gt=gt, metrics=["pcc", "sim"], names=["a", "b", "c"])
    assert table.resized is True
    assert [row["image"] for row in table.rows()] == ["a", "b", "c"]
    resized, was = metrics.match_size(small, (20, 30))
    assert was and resized.shape == (3, 20, 30)
    assert torch.allclose(metrics.pcc(small, gt), metrics.pcc(resized, gt))
    same = metrics.evaluate(gt, gt=gt, metrics=["pcc"])
    assert same.resized is False and same.mean()["pcc"] == pytest.approx(1.0)


def test_table_rows_columns_and_csv(tmp_path, batch):
    s, fix = batch
    gt = torch.rand(4, 24, 30, dtype=torch.float64)
    table = metrics.evaluate(
        s,
        gt=gt,
        fix=fix,
        other_fix=fix.flip(0),
        metrics=["pcc", "sim", "nss", "auc_judd", "auc_borji", "sauc", "ig", "kld"],
    )
    assert table.metrics == (
        "pcc",
        "sim",
        "nss",
        "auc_judd",
        "auc_borji",
        "sauc",
        "info_gain",
        "kld",
    )
    assert len(table.rows()) == 4 and set(table.rows()[0]) == {"image", *table.metrics}
    table.to_csv(tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "image,pcc,sim,nss,auc_judd,auc_borji,sauc,info_gain,kld" and len(lines) == 5


def test_table_errors(batch):
    s, fix = batch
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.evaluate(s, fix=fix, metrics=["nope"])
    with pytest.raises(ValueError, match="needs a ground-truth density"):
        metrics.evaluate(s, fix=fix, metrics=["pcc"])
    with pytest.raises(ValueError, match="other_fix"):
        metrics.evaluate(s, fix=fix, metrics=["sauc"])
    with pytest.raises(ValueError, match="shape"):
        metrics.pcc(torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5))
    with pytest.raises(ValueError, match="batch sizes differ"):
        metrics.pcc(torch.rand(2, 4, 5), torch.rand(3, 4, 5))
    with pytest.raises(ValueError, match="fixation counts"):
        metrics.nss(torch.rand(4, 5), -torch.ones(4, 5))
    with pytest.raises(ValueError, match="variant"):
        metrics.sim(torch.rand(4, 5), torch.rand(4, 5), variant="x")


def test_float32_inputs_and_numpy_inputs(batch):
    s, fix = batch
    gt = torch.rand(4, 24, 30, dtype=torch.float64)
    out32 = metrics.pcc(s.float(), gt.float())
    assert out32.dtype == torch.float32
    assert torch.allclose(out32.double(), metrics.pcc(s, gt), atol=1e-5)
    assert torch.allclose(metrics.pcc(s.numpy(), gt.numpy()), metrics.pcc(s, gt))


@requires_cuda
def test_metrics_on_cuda(batch):
    s, fix = batch
    gt = torch.rand(4, 24, 30, dtype=torch.float64)
    for name in ("pcc", "sim", "kld"):
        assert torch.allclose(
            metrics.compute(name, s.cuda(), gt=gt.cuda()).cpu(), metrics.compute(name, s, gt=gt)
        )
    for name in ("nss", "auc_judd", "auc_pixels"):
        assert torch.allclose(
            metrics.compute(name, s.cuda(), fix=fix.cuda()).cpu(), metrics.compute(name, s, fix=fix)
        )
    assert bool(torch.isfinite(metrics.auc_borji(s.cuda(), fix.cuda())).all())
    assert bool(torch.isfinite(metrics.sauc(s.cuda(), fix.cuda(), fix.flip(0).cuda())).all())


def test_float32_accuracy_on_full_size_maps():
    """Sums over 307 200 pixels stay accurate in float32 (cascade sums, not BLAS dot products)."""
    rng = np.random.default_rng(5)
    pred = torch.tensor(rng.random((2, 480, 640)) * 0.1 + 5.0)
    gt = torch.tensor(rng.random((2, 480, 640))) + 0.2 * pred
    fix = torch.tensor(rng.integers(0, 2, (2, 480, 640)) * (rng.random((2, 480, 640)) < 0.01))
    for name in ("pcc", "sim", "kld"):
        exact = metrics.compute(name, pred, gt=gt)
        single = metrics.compute(name, pred.float(), gt=gt.float()).double()
        assert torch.allclose(single, exact, rtol=0, atol=2e-6), name
    # (a map offset by 5 would already lose z-score digits when rounded to float32 itself)
    saliency = torch.tensor(rng.random((2, 480, 640)))
    for name in ("nss", "auc_judd"):
        exact = metrics.compute(name, saliency, fix=fix)
        single = metrics.compute(name, saliency.float(), fix=fix.float()).double()
        assert torch.allclose(single, exact, rtol=0, atol=2e-6), name
