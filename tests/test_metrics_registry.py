"""The metric registry: each metric carries its function, so compute() has no per-metric code."""

from __future__ import annotations

import pytest
import torch

from mlfem import metrics
from mlfem.metrics import METRICS, compute, evaluate, register_metric, resolve
from mlfem.metrics import registry as registry_module


def _maps() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 12, 12, generator=gen)
    gt = torch.rand(2, 12, 12, generator=gen)
    fix = (torch.rand(2, 12, 12, generator=gen) > 0.9).float()
    return pred, gt, fix


def test_every_metric_is_registered_with_its_function_and_direction() -> None:
    assert list(METRICS) == ["pcc", "sim", "sim_mit", "kld", "nss", "auc_judd", "auc_borji",
                             "auc_pixels", "sauc", "info_gain", "deletion", "insertion",
                             "rand_spearman", "rand_ssim", "stability"]
    assert all(callable(spec.function) for spec in METRICS.values())
    gaze = {m: spec for m, spec in METRICS.items() if not spec.uses_model}
    assert [m for m, spec in gaze.items() if not spec.higher_is_better] == ["kld"]
    assert {m for m, spec in METRICS.items() if spec.needs == "gt"} == {"pcc", "sim", "sim_mit", "kld"}
    assert METRICS["sim_mit"].function is metrics.sim and METRICS["sim_mit"].options == {"variant": "mit"}
    for alias, name in (("CC", "pcc"), ("ig", "info_gain"), ("s_auc", "sauc"), ("kl", "kld")):
        assert resolve(alias).name == name


def test_compute_dispatches_to_the_registered_functions() -> None:
    pred, gt, fix = _maps()
    other = torch.roll(fix, 3, dims=-1)
    expected = {
        "pcc": metrics.pcc(pred, gt), "sim": metrics.sim(pred, gt),
        "sim_mit": metrics.sim(pred, gt, variant="mit"), "kld": metrics.kld(pred, gt),
        "nss": metrics.nss(pred, fix), "auc_judd": metrics.auc_judd(pred, fix),
        "auc_borji": metrics.auc_borji(pred, fix, seed=3),
        "auc_pixels": metrics.auc_pixels(pred, fix),
        "sauc": metrics.sauc(pred, fix, other, seed=3),
        "info_gain": metrics.info_gain(pred, fix, "uniform"),
    }
    for name, value in expected.items():
        got = compute(name, pred, gt=gt, fix=fix, other_fix=other, baseline="uniform", seed=3)
        torch.testing.assert_close(got, value, equal_nan=True, msg=name)


def test_missing_inputs_are_named() -> None:
    pred, gt, fix = _maps()
    with pytest.raises(ValueError, match=r"needs a ground-truth density map \(gt=\)"):
        compute("pcc", pred, fix=fix)
    with pytest.raises(ValueError, match=r"needs a fixation map \(fix=\)"):
        compute("nss", pred, gt=gt)
    with pytest.raises(ValueError, match=r"'sauc' needs the other images' fixations"):
        compute("sauc", pred, fix=fix)
    with pytest.raises(ValueError, match="unknown metric"):
        resolve("psnr")


def test_a_new_metric_is_one_decorated_function(monkeypatch) -> None:
    # Work on copies so the test leaves the global registry as it found it.
    monkeypatch.setattr(registry_module, "METRICS", dict(METRICS))
    monkeypatch.setattr(registry_module, "_ALIASES", dict(registry_module._ALIASES))

    @register_metric("mae", needs="gt", higher_is_better=False, aliases=("l1",),
                     summary="mean absolute error", scale=2.0)
    def mae(pred: torch.Tensor, gt: torch.Tensor, scale: float) -> torch.Tensor:
        return scale * (pred - gt).abs().flatten(-2).mean(-1)

    pred, gt, _ = _maps()
    table = evaluate(pred, gt=gt, metrics=["pcc", "l1"])
    assert table.metrics == ("pcc", "mae")
    expected = (2 * (pred - gt).abs().flatten(1).mean(1)).double().tolist()
    assert table.columns["mae"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="already registered"):
        register_metric("mae", needs="gt", higher_is_better=True, summary="again")(mae)
    with pytest.raises(ValueError, match="shared arguments"):
        register_metric("x", needs="gt", higher_is_better=True, summary="x", uses=("labels",))
