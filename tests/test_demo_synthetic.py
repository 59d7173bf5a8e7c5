"""mlfem demo --quick, end to end: data, classifier, NET, evaluation, report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlfem.demos.synthetic import PLANS
from mlfem.evaluation import read_results


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from mlfem.cli import main

    out = tmp_path_factory.mktemp("demo") / "run"
    code = main(["demo", "--synthetic", "--quick", "--out", str(out), "--workers", "0", "--no-progress"])
    assert code == 0
    return out


def test_demo_writes_a_complete_evaluation(demo, capsys) -> None:
    plan = PLANS["quick"]
    table = read_results(demo / "evaluation" / "results.csv")
    record = json.loads((demo / "evaluation" / "run.json").read_text())
    assert record["status"] == "complete" and record["skipped"]["count"] == 0
    n_test = record["dataset"]["images"]
    assert n_test == round(plan.n * 0.1)
    assert table.explanation_methods == list(plan.methods)  # NET included: the fusion was trained
    assert table.reference_methods == ["human", "centre-bias"]
    # One row per image and method (and reference), every metric finite.
    pairs = list(zip(table["image_id"], table["method"]))
    assert len(pairs) == len(set(pairs)) == n_test * (len(plan.methods) + 2)
    methods = table.where(table["kind"] == "method")
    for metric in table.metrics:
        assert np.isfinite(methods[metric]).all(), metric
    assert record["nan_total"] == 0
    # Neither the classifier nor the NET saw a test image, and the guard checked it.
    assert record["leakage"]["checked"] is True and record["leakage"]["report"]["leaked"] is False
    assert len(record["settings"]["checkpoints"]) == 4  # weights + sidecar of both
    assert (demo / "evaluation" / "report.html").is_file()
    assert len(list((demo / "evaluation" / "maps").glob("*.npz"))) == plan.gallery


def test_the_human_ceiling_is_above_every_method(demo) -> None:
    # Compared the ceiling's way: every map against each observer, averaged.
    table = read_results(demo / "evaluation" / "results.csv")
    for metric in ("pcc_obs", "sim_obs"):
        _, methods, values = table.pivot(metric)
        means = dict(zip(methods, np.nanmean(values, axis=0)))
        ceiling = means.pop("human")
        means.pop("centre-bias")
        assert all(ceiling > mean for mean in means.values()), (metric, ceiling, means)


def test_demo_prints_the_headline_table_and_the_report_path(demo, capsys) -> None:
    from mlfem.cli import main

    # Rerunning finds every step done: nothing is trained or evaluated again.
    assert main(["demo", "--synthetic", "--quick", "--out", str(demo), "--workers", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith("evaluation/report.html")
    assert out[0].split()[:2] == ["method", "n"]
    assert any(line.startswith("mlfem-net") for line in out)
    assert any(line.startswith("demo finished in") for line in out)
    record = json.loads((demo / "evaluation" / "run.json").read_text())
    assert record["images_evaluated"] == 0 and record["resumed_images"] == record["dataset"]["images"]


def test_evaluating_images_the_classifier_saw_is_refused_or_flagged(demo, tmp_path, capsys) -> None:
    from mlfem.cli import main

    classifier = str(demo / "classifier" / "classifier.safetensors")
    # The dataset, its options and the splits file come from the checkpoint.
    code = main(["evaluate", "--classifier", classifier, "--split", "train", "--methods", "fem",
                 "--out", str(tmp_path / "refused"), "--workers", "0", "--no-progress"])
    assert code == 2 and "LEAKAGE" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "results.csv").exists()
    code = main(["evaluate", "--classifier", classifier, "--split", "val", "--methods", "fem",
                 "--limit", "2", "--allow-leakage", "--out", str(tmp_path / "flagged"),
                 "--workers", "1", "--no-progress"])
    assert code == 0
    record = json.loads((tmp_path / "flagged" / "run.json").read_text())
    report = record["leakage"]["report"]
    assert record["leakage"]["mode"] == "flag" and report["leaked"] is True
    assert len(report["leaked_ids"]) == 2
    assert record["settings"]["dataset"] == "synthetic" and record["settings"]["dataset_options"]["size"] == 48
    assert len(read_results(tmp_path / "flagged" / "results.csv").image_ids) == 2
