"""mlfem demo --quick on real data: the OSIE sample, the pretrained network, its bundled NET."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlfem.demos.real import PLANS
from mlfem.evaluation import read_results


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from mlfem.cli import main

    out = tmp_path_factory.mktemp("demo") / "real"
    assert main(["demo", "--quick", "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    # As the first run left it, before a test reruns the demo into the same folder.
    shutil.copytree(out, out.parent / "first-run")
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


# What a run writes that is not its results: wall-clock times (run.json, timings.csv, the
# report's "last run" line), its own folder (the report, results.settings.json's "out") and
# matplotlib's random ids inside the SVG figures (their PNG twins are compared).
NOT_RESULTS = {"evaluation/run.json", "timings.csv", "evaluation/report.html"}


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_second_run_from_scratch_writes_the_same_results_byte_for_byte(demo, tmp_path) -> None:
    # The module's run was in this process, after other tests; this one is a new process.
    first = demo.parent / "first-run"
    second = tmp_path / "second-run"
    command = [sys.executable, "-m", "mlfem", "demo", "--quick", "--out", str(second), "--workers", "0",
               "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    files = _files(first)
    assert files == _files(second)
    compared = [f for f in files if f not in NOT_RESULTS and not f.endswith((".svg", "results.settings.json"))]
    assert "evaluation/results.csv" in compared and any(f.startswith("evaluation/maps/") for f in compared)
    assert any(f.startswith("evaluation/tables/") for f in compared)
    for name in compared:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    settings = [json.loads((run / "evaluation" / "results.settings.json").read_text()) for run in (first, second)]
    for record in settings:
        assert record["settings"].pop("out").endswith("evaluation")
    assert settings[0] == settings[1]
