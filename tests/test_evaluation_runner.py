"""mlfem evaluate's runner: shared forward pass, rows and references, resume after an
interruption, settings checks, skipped samples and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mlfem.datasets import open_dataset
from mlfem.evaluation import read_results
from mlfem.evaluation.maps import load_gallery
from mlfem.evaluation.methods import MethodRunner
from mlfem.evaluation.model import EvaluatedModel, TensorPreprocessing
from mlfem.evaluation.runner import EvaluationConfig, EvaluationError, run_evaluation
from mlfem.explainers.registry import create_explainer
from mlfem.models import Preprocessing
from _failing_dataset import FailingSamples
from tiny_models import TinyCNN

SIZE = 40


def _model(classes: int = 6) -> EvaluatedModel:
    torch.manual_seed(0)
    preprocessing = Preprocessing(crop_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3, fit="whole")
    return EvaluatedModel(TinyCNN(classes).eval(), TensorPreprocessing(preprocessing), description="tiny")


def _dataset(n: int = 40):
    # 40 generated images, 10 % in the test split, so 4 ... use split=None for more images.
    return open_dataset("synthetic", n=n, seed=1, mode="multi", size=SIZE)


def _config(out, **overrides) -> EvaluationConfig:
    options = dict(
        dataset="synthetic", out=out, split=None, methods=["mlfem-add", "fem", "gradcam"],
        metrics=["pcc", "sim"], batch_size=3, gallery=2, progress=False,
    )
    options.update(overrides)
    return EvaluationConfig(**options)


def test_fem_family_shares_one_forward_pass_and_matches_each_explainer() -> None:
    model = TinyCNN(6).eval()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    images = torch.randn(3, 3, SIZE, SIZE)
    runner = MethodRunner(model, ["fem", "mlfem-add", "mlfem-max", "mlfem-top", "mlfem"])
    calls.clear()  # layer discovery probes the model once when the runner is built
    result = runner.run(images)
    assert len(calls) == 1  # maps of five methods and the logits from one forward pass
    calls.clear()
    for name in ["fem", "mlfem-add", "mlfem-max", "mlfem-top", "mlfem"]:
        with create_explainer(name, model) as explainer:
            torch.testing.assert_close(result.maps[name], explainer(images))
    torch.testing.assert_close(result.logits, model(images).detach())
    assert result.layer_maps.shape == (3, len(runner.layer_names), SIZE, SIZE)


def test_mlfem_net_without_a_checkpoint_and_reference_names_are_refused() -> None:
    with pytest.raises(ValueError, match="--net"):
        MethodRunner(TinyCNN().eval(), ["mlfem-net"])
    with pytest.raises(ValueError, match="reference rows"):
        MethodRunner(TinyCNN().eval(), ["human"])
    with pytest.raises(ValueError, match="unknown method"):
        MethodRunner(TinyCNN().eval(), ["no-such-method"])


def test_rows_columns_references_and_run_record(tmp_path) -> None:
    dataset = _dataset(7)
    summary = run_evaluation(_config(tmp_path, metrics=["pcc", "sim", "nss"]), model=_model(), dataset=dataset)
    assert summary.status == "complete" and summary.n_evaluated == 7
    table = read_results(tmp_path / "results.csv")
    # The paper's protocol, then the same metrics against each observer (8 simulated ones).
    assert table.metrics == ("pcc", "sim", "nss", "pcc_obs", "sim_obs", "nss_obs")
    # One row per image and method, plus the two reference rows.
    assert len(table) == 7 * (3 + 2)
    pairs = set(zip(table["image_id"], table["method"]))
    assert len(pairs) == len(table)
    assert table.explanation_methods == ["mlfem-add", "fem", "gradcam"]
    assert table.reference_methods == ["human", "centre-bias"]
    scored = table.where(table["method"] != "human")
    for metric in table.metrics:
        assert np.isfinite(scored[metric]).all(), metric
    human = table.method_rows("human")
    assert np.isnan(human["pcc"]).all() and np.isfinite(human["pcc_obs"]).all()
    for i in range(7):
        sample = dataset[i]
        rows = table.where(table["image_id"] == sample.image_id)
        assert set(rows["n_classes_present"]) == {sample.n_classes_present}
        assert set(rows["true_labels"]) == {";".join(map(str, sample.labels))}
        assert set(rows["height"]) == {SIZE} and set(rows["correct"]) <= {0.0, 1.0}
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "complete" and record["rows"] == len(table)
    assert record["skipped"]["count"] == 0 and record["nan_total"] == 0
    assert set(record["nan_counts"]["human"]) == {"pcc_obs", "sim_obs", "nss_obs"}
    assert record["versions"]["torch"] and record["device"] == "cpu"
    assert record["settings"]["metrics"] == ["pcc", "sim", "nss"] and record["seed"] == 0
    assert record["observer_protocol"] is True
    gallery = load_gallery(tmp_path / "maps")
    assert [e.index for e in gallery] == [0, 1]
    assert set(gallery[0].maps) == {"mlfem-add", "fem", "gradcam"}
    assert gallery[0].layers.shape[0] == len(gallery[0].layer_names) == 2


def test_reference_rows_agree_with_mlfem_gaze(tmp_path) -> None:
    from mlfem.gaze import Fixations, centre_bias, human_ceiling, observer_scores
    from mlfem.metrics import pcc

    dataset = _dataset(3)
    run_evaluation(_config(tmp_path, methods=["fem"], metrics=["pcc", "nss"]), model=_model(), dataset=dataset)
    table = read_results(tmp_path / "results.csv")
    sigma = dataset.config.effective_sigma
    for i in range(3):
        sample = dataset[i]
        fixations = Fixations.from_observers(
            [(f[:, 0].numpy(), f[:, 1].numpy()) for f in sample.fixations if len(f)], SIZE, SIZE
        )
        rows = {m: table.where((table["image_id"] == sample.image_id) & (table["method"] == m)) for m in ("human", "centre-bias")}
        for metric in ("pcc", "nss"):
            ceiling = human_ceiling(fixations, sigma, metric, needs="gt" if metric == "pcc" else "fix").mean
            assert rows["human"][metric + "_obs"][0] == pytest.approx(ceiling, rel=1e-4, abs=1e-6)
            prior = centre_bias(SIZE, SIZE)
            expected = observer_scores(prior, fixations, sigma, metric, needs="gt" if metric == "pcc" else "fix").mean
            assert rows["centre-bias"][metric + "_obs"][0] == pytest.approx(expected, rel=1e-4, abs=1e-6)
        full = float(pcc(centre_bias(SIZE, SIZE), sample.gfdm))
        assert rows["centre-bias"]["pcc"][0] == pytest.approx(full, rel=1e-5)


def test_an_interrupted_run_resumes_to_the_same_results(tmp_path) -> None:
    # SmoothGrad's noise and AUC-Borji's random pixels depend on the batch: fixed batch
    # boundaries keep them identical after a resume.
    settings = dict(methods=["mlfem-add", "fem", "smoothgrad"], metrics=["pcc", "auc_borji"],
                    method_options={"smoothgrad": {"samples": 2}})
    dataset = _dataset(10)
    whole = tmp_path / "whole"
    run_evaluation(_config(whole, **settings), model=_model(), dataset=dataset)

    parts = tmp_path / "parts"

    def interrupt(batch: int) -> None:
        if batch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_evaluation(_config(parts, **settings), model=_model(), dataset=dataset, on_batch=interrupt)
    record = json.loads((parts / "run.json").read_text())
    assert record["status"] == "interrupted"
    assert len(read_results(parts / "results.csv").image_ids) == 6  # two batches of three
    with open(parts / "results.csv", "a") as handle:  # and a write torn by a kill
        handle.write("1-000006,human,reference,0.4")
    resumed = run_evaluation(_config(parts, **settings), model=_model(), dataset=dataset)
    assert resumed.n_done_before == 6 and resumed.n_evaluated == 4 and resumed.status == "complete"

    def lines(path):
        head, *rows = (path / "results.csv").read_text().splitlines()
        return head, sorted(rows)

    assert lines(parts) == lines(whole)
    assert json.loads((parts / "run.json").read_text())["repaired_bytes"] > 0


def test_changed_settings_are_refused_and_new_methods_are_added(tmp_path) -> None:
    dataset = _dataset(4)
    run_evaluation(_config(tmp_path, methods=["fem"]), model=_model(), dataset=dataset)
    before = (tmp_path / "results.csv").read_text()
    with pytest.raises(EvaluationError, match="alpha"):
        run_evaluation(_config(tmp_path, methods=["fem"], alpha=0.7), model=_model(), dataset=dataset)
    again = run_evaluation(_config(tmp_path, methods=["fem", "mlfem-max"]), model=_model(), dataset=dataset)
    assert again.n_evaluated == 4
    after = (tmp_path / "results.csv").read_text()
    assert after.startswith(before)  # earlier rows untouched, only the new method appended
    table = read_results(tmp_path / "results.csv")
    assert sorted(set(table.methods)) == ["centre-bias", "fem", "human", "mlfem-max"]
    assert len(table) == 4 * 4
    assert "mlfem-max" in load_gallery(tmp_path / "maps")[0].maps
    nothing = run_evaluation(_config(tmp_path, methods=["fem", "mlfem-max"]), model=_model(), dataset=dataset)
    assert nothing.n_evaluated == 0 and nothing.n_done_before == 4


def test_unreadable_samples_are_skipped_and_counted(tmp_path) -> None:
    flaky = FailingSamples(_dataset(4), {1}, "/nowhere.jpg", "truncated JPEG")
    summary = run_evaluation(_config(tmp_path, methods=["fem"]), model=_model(), dataset=flaky)
    assert summary.n_skipped == 1 and summary.n_evaluated == 3
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["skipped"]["items"] == [{"image_id": "1-000001", "reason": "truncated JPEG"}]
    assert "1-000001" not in read_results(tmp_path / "results.csv").image_ids


def test_nan_metrics_are_counted_not_dropped(tmp_path) -> None:
    class Blank(torch.nn.Module):  # constant activations: every FEM map is all zeros
        def __init__(self) -> None:
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
            self.head = torch.nn.Linear(4, 6)
            torch.nn.init.zeros_(self.features[0].weight)
            torch.nn.init.zeros_(self.features[0].bias)

        def forward(self, x):
            return self.head(self.features(x).mean(dim=(2, 3)))

    model = _model()
    model.model = Blank().eval()
    run_evaluation(_config(tmp_path, methods=["fem"], references=False), model=model, dataset=_dataset(3))
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["nan_counts"]["fem"] == {"pcc": 3, "sim": 3}
    assert all(math.isnan(v) for v in read_results(tmp_path / "results.csv")["pcc"])


def test_cli_evaluate_with_a_model_factory(tmp_path, capsys) -> None:
    from mlfem.cli import main

    out = tmp_path / "run"
    code = main([
        "evaluate", "--dataset", "synthetic", "--split", "all",
        "--dataset-option", "n=5", "--dataset-option", "size=40", "--dataset-option", "mode=multi",
        "--model", "tiny_models:TinyCNN", "--methods", "fem,mlfem-top", "--metrics", "pcc,kld",
        "--out", str(out), "--batch-size", "2", "--workers", "0", "--no-progress",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "mlfem-top" in captured.out and "human (ref)" in captured.out
    assert len(read_results(out / "results.csv")) == 5 * 4
    record = json.loads((out / "run.json").read_text())
    assert record["settings"]["model"] == "tiny_models:TinyCNN" and record["model_trained"] is False
    assert any("random weights" in w for w in record["warnings"])
    code = main(["evaluate", "--dataset", "synthetic", "--model", "tiny_models:TinyCNN",
                 "--metrics", "pcc", "--metric-option", "deletion.steps=3", "--out", str(tmp_path / "x")])
    assert code == 2 and "deletion" in capsys.readouterr().err
