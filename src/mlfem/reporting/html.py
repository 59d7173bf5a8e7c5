"""``write_report``: one self-contained HTML page for an evaluation run.

Reads ``DIR/results.csv`` (and ``DIR/run.json``, ``DIR/maps/`` when present), runs the
analyses, and writes ``DIR/report.html`` (figures embedded as base64 PNG, inline CSS and
JS, nothing fetched from the network) plus every figure as PNG and SVG under
``DIR/figures`` and every table as CSV under ``DIR/tables``.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from mlfem.evaluation.analyses import higher_is_better
from mlfem.evaluation.maps import load_gallery
from mlfem.evaluation.results import read_results
from mlfem.reporting import figures as fig
from mlfem.reporting.analysis import RunAnalysis, analyze
from mlfem.reporting.gallery import gallery_html
from mlfem.reporting.tables import write_tables
from mlfem.reporting.template import CSS, ERROR_CAPTURE, SCRIPT

__all__ = ["ReportError", "write_report"]


class ReportError(ValueError):
    """The folder holds no usable evaluation results."""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _figure(png: bytes, name: str, caption: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="{uri}" alt="{_e(name)}">'
        f'<figcaption>{caption} <span class="note">(figures/{_e(name)}.png, .svg)</span></figcaption></figure>'
    )


def _fmt(value: float, digits: int = 3) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _summary_table(analysis: RunAnalysis) -> str:
    metrics = analysis.all_metrics

    def title(metric: str) -> str:
        arrow = "&uarr;" if higher_is_better(metric) else "&darr;"
        return f"{_e(metric.removesuffix('_obs').upper())} {arrow}"

    groups = ""
    network = analysis.network_metrics
    if network:  # gaze metrics first, then the network's, then the per-observer columns
        metrics = analysis.gaze_metrics + network + analysis.observer_metrics
    if analysis.observer_metrics or network:
        gaze = len(analysis.gaze_metrics)
        groups = (
            '<tr><th colspan="2"></th>'
            + (f'<th colspan="{gaze}">against the GFDM of all observers (paper)</th>' if gaze else "")
            + (f'<th colspan="{len(network)}">faithfulness to the network (no gaze)</th>' if network else "")
            + (f'<th colspan="{len(analysis.observer_metrics)}">against each observer (human-ceiling protocol)</th>'
               if analysis.observer_metrics else "")
            + "</tr>"
        )
    head = "".join(f"<th>{title(m)}</th>" for m in metrics)
    body = []
    for method in analysis.methods + analysis.references:
        is_ref = method in analysis.references
        rows = [analysis.mean(method, m) for m in metrics]
        images = max(r.n + r.n_nan for r in rows)
        cells = [f"<td>{_e(method)}{' (reference)' if is_ref else ''}</td>", f"<td>{images}</td>"]
        for metric, row in zip(metrics, rows):
            if row.n == 0:
                cells.append('<td class="na">n/a</td>')
                continue
            best = not is_ref and analysis.best(metric) == method
            mark = "&dagger;" if not is_ref and analysis.tied_with_best(method, metric) else ""
            nan = f' <span class="ci">({row.n_nan} NaN)</span>' if row.n_nan else ""
            cells.append(
                f'<td class="{"best" if best else ""}">{_fmt(row.mean)}{mark} '
                f'<span class="ci">[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]</span>{nan}</td>'
            )
        body.append(f'<tr class="{"reference" if is_ref else "method"}">{"".join(cells)}</tr>')
    return (
        f'<table id="summary-table"><thead>{groups}<tr><th>method</th><th>images</th>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table>'
    )


def _network_note(analysis: RunAnalysis) -> str:
    """What the network columns of the summary are (docs/faithfulness.md)."""
    if not analysis.network_metrics:
        return ""
    return (
        "Faithfulness to the network (docs/faithfulness.md): deletion (lower is better) and insertion "
        "(higher) are areas under the class probability as the map's pixels are removed or revealed; "
        "stability is a local Lipschitz estimate (lower is more stable); rand_* are the similarities with "
        "the map of the fully re-initialised network (lower: the map depends on the learned weights). The "
        "centre bias gets the metrics that need no explainer."
    )


def _tests_table(analysis: RunAnalysis, metric: str) -> str:
    rows = []
    for t in analysis.tests[metric]:
        rows.append(
            f"<tr><td>{_e(t.method)} vs {_e(t.versus)}</td><td>{t.n}</td><td>{t.n_nonzero}</td>"
            f"<td>{_fmt(t.median_difference, 4)}</td><td>{_fmt(t.statistic, 1)}</td>"
            f"<td>{t.pvalue:.3g}</td><td>{t.p_holm:.3g}</td>"
            f"<td>{'yes: ' + _e(t.better) if t.significant and t.better else 'no'}</td></tr>"
        )
    return (
        "<table><thead><tr><th>pair (a vs b)</th><th>n</th><th>non-zero</th><th>median a&minus;b</th>"
        "<th>W</th><th>p</th><th>p (Holm)</th><th>significant: better</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _header(run: dict[str, Any], analysis: RunAnalysis, directory: Path) -> str:
    settings = run.get("settings", {})
    dataset = run.get("dataset", {}).get("name") or settings.get("dataset", "?")
    split = settings.get("split") or "all"
    model = settings.get("model_description") or settings.get("classifier") or settings.get("model") or "?"
    n_images = len(analysis.table.image_ids)
    parts = [
        f"dataset <b>{_e(dataset)}</b> ({_e(split)} split, {n_images} {_unit(run)})",
        f"classifier {_e(model)}",
        f"device {_e(run.get('device', '?'))}",
    ]
    if run.get("elapsed_s") is not None:
        parts.append(f"last run {float(run['elapsed_s']):.1f} s")
    banners = []
    if run and run.get("status") != "complete":
        banners.append(f"The run is <b>{_e(run.get('status', 'unknown'))}</b>: rerun the same evaluate command to finish it.")
    if run.get("model_trained") is False:
        banners.append("The classifier has random weights: its explanations carry no meaning.")
    leakage = run.get("leakage", {})
    if (leakage.get("report") or {}).get("leaked"):
        count = len(leakage["report"].get("leaked_ids", []))
        banners.append(f"<b>Leakage</b>: {count} evaluated image(s) were seen in training by a checkpoint "
                       "(evaluated with --allow-leakage; see run.json). These scores are contaminated.")
    skipped = run.get("skipped", {}).get("count", 0)
    if skipped:
        banners.append(f"{skipped} image(s) could not be read and were skipped (listed in run.json).")
    banner_html = "".join(f'<div class="banner">{b}</div>' for b in banners)
    return (
        f"<header><h1>mlfem evaluation report</h1><div class=\"meta\">{' &middot; '.join(parts)}<br>"
        f"folder {_e(directory.resolve())}</div></header>{banner_html}"
    )


def _unit(run: dict[str, Any]) -> str:
    """What a row scores: images, or clips (a video run: rows per clip, see
    :mod:`mlfem.evaluation.video`)."""
    return "clips" if run.get("video") else "images"


def _gallery_note(run: dict[str, Any]) -> str:
    if run.get("video"):
        return ("Pick a clip: its middle frame, that frame's GFDM, every method's map of that frame, "
                "the per-layer FEM maps of that frame; the metric values are the clip's (means over "
                "its frames with gaze).")
    return "Pick an image: its GFDM, every method's map over the image, the per-layer FEM maps, with metric values."


def _load_run(directory: Path) -> dict[str, Any]:
    path = directory / "run.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}


def write_report(
    directory: str | Path, *, seed: int = 0, resamples: int = 2000, alpha: float = 0.05
) -> Path:
    """Write ``report.html``, ``figures/`` and ``tables/`` for the run in ``directory``.

    Returns the report's path. Raises :class:`ReportError` when ``results.csv`` is missing
    or holds no rows.
    """
    directory = Path(directory)
    results = directory / "results.csv"
    if not results.is_file():
        raise ReportError(f"{directory} holds no results.csv: run 'mlfem evaluate --out {directory}' first")
    table = read_results(results)
    if len(table) == 0 or not table.explanation_methods:
        raise ReportError(f"{results} holds no method rows yet")
    run = _load_run(directory)
    analysis = analyze(table, seed=seed, resamples=resamples, alpha=alpha)
    figures_dir, tables_dir = directory / "figures", directory / "tables"
    write_tables(analysis, tables_dir)

    wins, dists, cw, clutter = [], [], [], []
    for metric in analysis.metrics:
        name = f"fig4_wins_{metric}"
        wins.append(_figure(fig.save_figure(fig.win_matrix_figure(analysis, metric), figures_dir, name), name,
                            f"Fig. 4 ({metric.upper()}): cell (row b, column a) = images on which a scores "
                            "better than b, count and fraction of the images where both are defined; ties "
                            "are in neither (tables/wins_*.csv)."))
        name = f"fig5_distribution_{metric}"
        dists.append(_figure(fig.save_figure(fig.distribution_figure(analysis, metric), figures_dir, name), name,
                             f"Fig. 5 ({metric.upper()}): per-image values; references in grey."))
        if analysis.has_verdicts():
            name = f"fig6_correct_wrong_{metric}"
            cw.append(_figure(fig.save_figure(fig.correct_wrong_figure(analysis, metric), figures_dir, name), name,
                              f"Fig. 6 ({metric.upper()}): means with 95% bootstrap intervals."))
        if analysis.has_clutter():
            name = f"fig7_clutter_{metric}"
            clutter.append(_figure(fig.save_figure(fig.clutter_figure(analysis, metric), figures_dir, name), name,
                                   f"Fig. 7 ({metric.upper()}): means with 95% bootstrap bands."))
    randomisation = ""
    if analysis.curves:
        from mlfem.reporting import randomisation as rnd

        drawn = {}
        for metric in analysis.curves:
            name = f"randomisation_{metric}"
            found = rnd.curves(analysis, metric, seed=seed, resamples=resamples)
            drawn[metric] = _figure(fig.save_figure(rnd.randomisation_figure(found), figures_dir, name), name,
                                    f"Model randomisation ({metric.upper()}): mean similarity of each method's map "
                                    "with its map on the network re-initialised from the top down to the stage "
                                    "named, 95% bootstrap band; dashed: the flag threshold.")
        randomisation = (
            '<h2 id="randomisation">Model randomisation (sanity check)</h2><div class="figures">'
            + rnd.randomisation_html(analysis, drawn, seed=seed, resamples=resamples) + "</div>"
        )
    no_verdicts = '<p class="note">No image has class labels the classifier predicts: no correct/wrong split.</p>'
    no_clutter = '<p class="note">Every image has the same number of classes present: no clutter analysis.</p>'
    tests = "".join(
        f"<details><summary>{_e(m.upper())}: {len(analysis.tests[m])} pairwise tests</summary>{_tests_table(analysis, m)}</details>"
        for m in analysis.all_metrics
    )
    gallery = gallery_html(load_gallery(directory / "maps"), table, analysis.methods)
    versions = ", ".join(f"{k} {v}" for k, v in run.get("versions", {}).items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mlfem report: {_e(run.get('dataset', {}).get('name', 'evaluation'))}</title>
<script>{ERROR_CAPTURE}</script>
<style>{CSS}</style></head>
<body>
{_header(run, analysis, directory)}
<nav><a href="#summary">Summary</a><a href="#wins">Win matrices</a><a href="#distributions">Distributions</a>
<a href="#correct-wrong">Correct vs wrong</a><a href="#clutter">Clutter</a>{'<a href="#randomisation">Randomisation</a>' if randomisation else ''}<a href="#tests">Tests</a><a href="#gallery">Gallery</a></nav>
<main>
<h2 id="summary">Summary</h2>
{_summary_table(analysis)}
<p class="note">Mean over {_unit(run)} [95% percentile-bootstrap interval, {resamples} resamples, seed {seed}].
<b>Bold</b>: best explanation method of the column; &dagger;: not significantly different from it
(paired Wilcoxon signed-rank test, Holm-corrected over all pairs of methods, p &ge; {alpha}).
References in grey: the centre-bias map, and the human ceiling: how well the GFDM of the other
observers predicts each observer (leave-one-observer-out). The ceiling can only be measured against
one observer at a time, so it has no value under the paper's protocol; the columns
&ldquo;against each observer&rdquo; score every map that way, where the ceiling is a fair yardstick
(a map fitted to the pooled GFDMs, such as NET, can exceed it under the paper's protocol).
{_network_note(analysis)}</p>
<h2 id="wins">Which method wins (Fig. 4)</h2><div class="figures">{''.join(wins)}</div>
<h2 id="distributions">Distributions (Fig. 5)</h2><div class="figures">{''.join(dists)}</div>
<h2 id="correct-wrong">Correct vs wrong predictions (Fig. 6)</h2><div class="figures">{''.join(cw) or no_verdicts}</div>
<h2 id="clutter">Sensitivity to clutter (Fig. 7)</h2><div class="figures">{''.join(clutter) or no_clutter}</div>
{randomisation}
<h2 id="tests">Pairwise tests</h2>{tests}
<h2 id="gallery">Gallery</h2>
<p class="note">{_gallery_note(run)}</p>
{gallery}
</main>
<footer>Files beside this report: results.csv, run.json, figures/ (PNG, SVG), tables/ (CSV). {_e(versions)}</footer>
<script>{SCRIPT}</script>
</body></html>
"""
    path = directory / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
