"""mlfem report: files written, self-contained HTML, summary marks, gallery, CLI."""

from __future__ import annotations

import csv
import re

import pytest

from _evaluation_run import GALLERY, METHODS, N_IMAGES, make_run
from mlfem.evaluation import read_results
from mlfem.reporting import ReportError, headline_table, write_report
from mlfem.reporting.analysis import analyze


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def report(run_dir):
    return write_report(run_dir, resamples=200)


def test_report_figures_and_tables_are_written(run_dir, report) -> None:
    assert report == run_dir / "report.html"
    for figure in ("fig4_wins", "fig5_distribution", "fig6_correct_wrong", "fig7_clutter"):
        for metric in ("pcc", "sim"):
            assert (run_dir / "figures" / f"{figure}_{metric}.png").stat().st_size > 1000
            svg = (run_dir / "figures" / f"{figure}_{metric}.svg").read_text()
            assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    with open(run_dir / "tables" / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert {row["method"] for row in summary} == {*METHODS, "human", "centre-bias"}
    table = read_results(run_dir / "results.csv")
    fem_pcc = next(r for r in summary if r["method"] == "fem" and r["metric"] == "pcc")
    assert float(fem_pcc["mean"]) == pytest.approx(table.method_rows("fem")["pcc"].mean())
    with open(run_dir / "tables" / "wins_pcc.csv") as handle:
        wins = list(csv.DictReader(handle))
    assert len(wins) == len(METHODS) * (len(METHODS) - 1)
    assert all(int(r["wins"]) + int(r["ties"]) + int(r["losses"]) == int(r["compared"]) for r in wins)
    for name in ("tests_pcc.csv", "tests_sim.csv", "correct_wrong.csv", "clutter.csv"):
        assert (run_dir / "tables" / name).is_file()


def test_report_is_self_contained(report) -> None:
    page = report.read_text()
    # Nothing is fetched: every src/href is a data URI or an in-page anchor.
    for attribute in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attribute.startswith(("data:", "#")), attribute
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") >= 8 + GALLERY * (2 + len(METHODS))
    assert "<script" in page and "selftest" in page


def test_summary_marks_the_best_method_and_the_gallery_lists_each_image(run_dir, report) -> None:
    page = report.read_text()
    analysis = analyze(read_results(run_dir / "results.csv"), resamples=200)
    best = analysis.best("pcc")
    summary_html = page[page.index('id="summary-table"'):page.index("</table>")]
    best_row = next(row for row in summary_html.split("<tr") if f"<td>{best}</td>" in row)
    assert 'class="best"' in best_row
    assert "(reference)" in summary_html
    options = re.findall(r'<option value="(\d+)">', page)
    assert options == [str(i) for i in range(GALLERY)]
    assert page.count('class="gallery-item') == GALLERY
    assert "Per-layer FEM maps" in page


def test_headline_table_lists_methods_then_references(run_dir) -> None:
    text = headline_table(run_dir / "results.csv", resamples=100)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["method", "n", "pcc"]
    names = [line.split()[0] for line in lines[2:] if not line.startswith("-")]
    assert names == [*METHODS, "human", "centre-bias"]
    assert all(f" {N_IMAGES} " in line for line in lines[2:] if not line.startswith("-"))
    assert lines[0].split()[-4:] == ["sim_obs", "mean", "[95%", "CI]"]
    assert sum(line.count(" *") for line in lines) == 4  # one best per metric column
    human = next(line for line in lines if line.startswith("human"))
    assert human.count("n/a") == 2  # no value under the paper's protocol


def test_report_cli_and_errors(run_dir, tmp_path, capsys) -> None:
    from mlfem.cli import main

    assert main(["report", str(run_dir), "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("report.html") and "centre-bias" in out
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.csv" in capsys.readouterr().err
    with pytest.raises(ReportError):
        write_report(tmp_path)
