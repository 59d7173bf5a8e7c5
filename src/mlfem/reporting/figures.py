"""The paper's figures for one run (matplotlib, Agg backend), saved as PNG and SVG.

* Fig. 4 :func:`win_matrix_figure` — images on which the column method beats the row method.
* Fig. 5 :func:`distribution_figure` — per-image values of each method (violins, means).
* Fig. 6 :func:`correct_wrong_figure` — means over correctly vs wrongly classified images.
* Fig. 7 :func:`clutter_figure` — means against the number of classes present.

Each function returns a matplotlib ``Figure``; :func:`save_figure` writes it and returns the
PNG bytes for embedding in the HTML report.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlfem.reporting.analysis import RunAnalysis

__all__ = [
    "clutter_figure",
    "correct_wrong_figure",
    "distribution_figure",
    "method_colours",
    "save_figure",
    "win_matrix_figure",
]

_REFERENCE_COLOURS = {"human": "#444444", "centre-bias": "#9a9a9a"}
_CORRECT, _WRONG = "#2e9d4a", "#d1423f"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: figures are only written to files
    import matplotlib.pyplot as plt

    return plt


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """One stable colour per method (tab10, then tab20), grey shades for references."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = [to_hex(c) for c in colormaps["tab10"].colors] + [to_hex(c) for c in colormaps["tab20"].colors[1::2]]
    out: dict[str, str] = {}
    index = 0
    for method in methods:
        if method in _REFERENCE_COLOURS:
            out[method] = _REFERENCE_COLOURS[method]
        else:
            out[method] = palette[index % len(palette)]
            index += 1
    return out


def _label(metric: str) -> str:
    from mlfem.evaluation.analyses import higher_is_better

    arrow = "higher is better" if higher_is_better(metric) else "lower is better"
    return f"{metric.upper()} ({arrow})"


def save_figure(figure: Any, directory: Path, name: str) -> bytes:
    """Write ``name.png`` and ``name.svg`` under ``directory``; return the PNG bytes."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    # Fixed metadata keeps the files byte-identical between runs on the same results.
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    png = buffer.getvalue()
    (directory / f"{name}.png").write_bytes(png)
    figure.savefig(directory / f"{name}.svg", format="svg", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    return png


def win_matrix_figure(analysis: RunAnalysis, metric: str) -> Any:
    """Fig. 4: cell (row b, column a) = images where a scores better than b, as a count and a
    fraction of the images where both are defined (ties are in neither)."""
    plt = _pyplot()
    wins = analysis.wins[metric]
    names = wins.methods
    m = len(names)
    fractions = wins.fractions.T  # column method beats row method, as in the paper
    counts = wins.wins.T
    side = max(3.6, 0.62 * m + 1.8)
    figure, axis = plt.subplots(figsize=(side + 0.9, side))
    shown = np.where(np.isnan(fractions), 0.5, fractions)
    image = axis.imshow(shown, cmap="RdYlGn", vmin=0.0, vmax=1.0)
    for b in range(m):
        for a in range(m):
            if a == b:
                axis.text(a, b, "—", ha="center", va="center", fontsize=8, color="#555555")
                continue
            f = fractions[b, a]
            text = f"{counts[b, a]}\n{f:.0%}" if not math.isnan(f) else "n/a"
            axis.text(a, b, text, ha="center", va="center", fontsize=7 if m > 6 else 8,
                      color="black")
    axis.set_xticks(range(m), names, rotation=40, ha="right", fontsize=8)
    axis.set_yticks(range(m), names, fontsize=8)
    axis.set_xlabel("method a (better)")
    axis.set_ylabel("method b")
    axis.set_title(f"{metric.upper()}: images where a beats b", fontsize=10)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="fraction of images")
    figure.tight_layout()
    return figure


def distribution_figure(analysis: RunAnalysis, metric: str) -> Any:
    """Fig. 5: violins of the per-image values, with the mean (white dot) and median (bar)."""
    plt = _pyplot()
    values = analysis.distributions[metric]
    names = [n for n in analysis.methods + analysis.references if n in values]
    colours = method_colours(names)
    figure, axis = plt.subplots(figsize=(max(5.0, 0.75 * len(names) + 1.5), 3.8))
    positions = np.arange(1, len(names) + 1)
    data = [values[n] if values[n].size else np.array([np.nan]) for n in names]
    drawable = [i for i, d in enumerate(data) if np.isfinite(d).sum() > 1 and np.ptp(d[np.isfinite(d)]) > 0]
    if drawable:
        parts = axis.violinplot([data[i] for i in drawable], positions=positions[drawable],
                                showextrema=False, widths=0.8)
        for body, i in zip(parts["bodies"], drawable):
            body.set_facecolor(colours[names[i]])
            body.set_edgecolor("#333333")
            body.set_alpha(0.75)
    for i, d in enumerate(data):
        finite = d[np.isfinite(d)]
        if finite.size:
            axis.plot([positions[i] - 0.18, positions[i] + 0.18], [np.median(finite)] * 2, color="#222222", lw=1.4)
            axis.scatter([positions[i]], [finite.mean()], color="white", edgecolor="#222222", zorder=3, s=22)
    axis.set_xticks(positions, names, rotation=35, ha="right", fontsize=8)
    axis.set_ylabel(_label(metric))
    axis.set_title(f"Distribution of {metric.upper()} per image (dot: mean, bar: median)", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def correct_wrong_figure(analysis: RunAnalysis, metric: str) -> Any:
    """Fig. 6: mean of ``metric`` over correctly (green) and wrongly (red) classified images,
    with 95 % bootstrap intervals; ``n`` under each pair of bars."""
    plt = _pyplot()
    groups = analysis.correct_wrong[metric]
    names = analysis.methods
    figure, axis = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 2.5), 3.6))
    x = np.arange(len(names))
    for offset, group, colour in ((-0.2, "correct", _CORRECT), (0.2, "wrong", _WRONG)):
        rows = [next(g for g in groups if g.method == n and g.group == group) for n in names]
        means = np.array([r.mean for r in rows])
        low = np.array([r.mean - r.ci_low if r.n else 0.0 for r in rows])
        high = np.array([r.ci_high - r.mean if r.n else 0.0 for r in rows])
        n = rows[0].n if rows else 0
        axis.bar(x + offset, np.nan_to_num(means), width=0.4, color=colour, alpha=0.85,
                 yerr=[np.nan_to_num(low), np.nan_to_num(high)], capsize=2,
                 label=f"{group} (n = {n})", error_kw={"elinewidth": 0.8})
    axis.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
    axis.set_ylabel(_label(metric))
    axis.set_title(f"{metric.upper()} for correctly vs wrongly classified images", fontsize=10)
    axis.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def clutter_figure(analysis: RunAnalysis, metric: str) -> Any:
    """Fig. 7: mean of ``metric`` against the number of classes present, one line per
    method, with 95 % bootstrap intervals as bands."""
    plt = _pyplot()
    groups = analysis.clutter[metric]
    names = analysis.methods
    colours = method_colours(names)
    figure, axis = plt.subplots(figsize=(7.0, 3.8))
    counts: dict[int, int] = {}
    for name in names:
        rows = sorted((g for g in groups if g.method == name and g.n > 0), key=lambda g: g.group)
        if not rows:
            continue
        xs = np.array([int(g.group) for g in rows])
        means = np.array([g.mean for g in rows])
        axis.plot(xs, means, marker="o", ms=4, color=colours[name], label=name)
        axis.fill_between(xs, [g.ci_low for g in rows], [g.ci_high for g in rows], color=colours[name], alpha=0.12)
        for g in rows:
            counts[int(g.group)] = g.n
    ticks = sorted(counts)
    axis.set_xticks(ticks, [f"{t}\n(n={counts[t]})" for t in ticks], fontsize=8)
    axis.set_xlabel("classes present in the image")
    axis.set_ylabel(_label(metric))
    axis.set_title(f"{metric.upper()} against clutter", fontsize=10)
    axis.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure
