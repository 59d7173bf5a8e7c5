"""mlfem demo --quick on real data: the OSIE sample, the pretrained network, its bundled NET."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlfem.demos.real import PLANS
from mlfem.evaluation import read_results


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from mlfem.cli import main

    out = tmp_path_factory.mktemp("demo") / "real"
    assert main(["demo", "--quick", "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    return out


def test_the_real_demo_scores_every_method_against_real_observers(demo) -> None:
    plan = PLANS["quick"]
    table = read_results(demo / "evaluation" / "results.csv")
    record = json.loads((demo / "evaluation" / "run.json").read_text())
    assert record["status"] == "complete" and record["skipped"]["count"] == 0
    assert record["dataset"]["images"] == plan.limit
    assert table.explanation_methods == list(plan.methods)
    assert table.reference_methods == ["human", "centre-bias"]
    methods = table.where(table["kind"] == "method")
    for metric in table.metrics:
        assert np.isfinite(methods[metric]).all(), metric
    # The NET never saw these images, and the guard compared their ids with the NET's.
    leakage = record["leakage"]
    assert leakage["checked"] is True and leakage["report"]["leaked"] is False
    assert leakage["report"]["other_dataset"] == {}
    # Predictions carry ImageNet class names.
    first = dict(zip(table["image_id"], table["pred_names"]))
    assert first["1004"] == ["swimming trunks"] or first["1004"] == "swimming trunks"
    assert (demo / "evaluation" / "report.html").is_file()


def test_the_human_ceiling_is_above_every_method(demo) -> None:
    table = read_results(demo / "evaluation" / "results.csv")
    _, methods, values = table.pivot("pcc_obs")
    means = dict(zip(methods, np.nanmean(values, axis=0)))
    ceiling = means.pop("human")
    assert all(ceiling > mean for mean in means.values()), means


def test_the_headline_table_is_printed_with_a_net_row(demo, capsys) -> None:
    from mlfem.cli import main

    assert main(["demo", "--quick", "--out", str(demo), "--workers", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["method", "n"]
    assert any(line.startswith("mlfem-net") for line in out)
    assert any(line.startswith("human (ref)") for line in out)
    assert out[-1].endswith("evaluation/report.html")
