"""The report's gallery: for each stored image, the image, its GFDM, every method's map and
the per-layer FEM maps, each captioned with its metric values.

Pictures are small PNGs embedded as base64 ``data:`` URIs, so the report needs no other file.
The reader switches images with a ``<select>`` or the previous/next buttons (vanilla JS in
:mod:`mlfem.reporting.template`).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlfem.evaluation.maps import GalleryEntry
from mlfem.evaluation.results import ResultTable

__all__ = ["gallery_html", "png_data_uri"]


def png_data_uri(array: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of an (H, W, 3) uint8 array."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _heat(saliency: np.ndarray, image: np.ndarray | None = None, alpha: float = 0.55) -> np.ndarray:
    from mlfem.visualize import colorize

    heat = colorize(np.nan_to_num(saliency.astype(np.float32)), "jet").astype(np.float32)
    if image is None:
        return heat.astype(np.uint8)
    return ((1 - alpha) * image.astype(np.float32) + alpha * heat).round().astype(np.uint8)


def _values(row: Mapping[str, Any] | None, metrics: Sequence[str]) -> str:
    if row is None:
        return ""
    parts = []
    for metric in metrics:
        value = row.get(metric)
        text = "nan" if value is None or math.isnan(value) else f"{value:.3f}"
        label = metric.removesuffix("_obs").upper()
        parts.append(f'<span class="metric">{html.escape(label)} {text}</span>')
    return " ".join(parts)


def _tile(uri: str, title: str, values: str = "", css: str = "tile") -> str:
    return (
        f'<figure class="{css}"><img src="{uri}" alt="{html.escape(title)}">'
        f'<figcaption><b>{html.escape(title)}</b>{"<br>" + values if values else ""}</figcaption></figure>'
    )


def _rows_by_key(table: ResultTable) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for row in table.rows():
        out[(row["image_id"], row["method"])] = row
    return out


def _item_label(entry: GalleryEntry, row: Mapping[str, Any] | None) -> str:
    label = entry.image_id
    if row is not None:
        verdict = row.get("correct")
        if verdict is not None and not (isinstance(verdict, float) and math.isnan(verdict)):
            label += " — correct" if verdict > 0.5 else " — wrong"
        n = row.get("n_classes_present")
        if isinstance(n, int) and n >= 0 and row.get("true_labels"):  # datasets with labels only
            label += f", {n} class{'es' if n != 1 else ''}"
    return label


def gallery_html(entries: Sequence[GalleryEntry], table: ResultTable, methods: Sequence[str]) -> str:
    """The gallery section (controls and one hidden ``div`` per image), or a note when the run
    kept no maps."""
    if not entries:
        return '<p class="note">No maps were kept for a gallery (run evaluate with --gallery N &gt; 0).</p>'
    from mlfem.gaze import centre_bias

    rows = _rows_by_key(table)
    # Captions show the paper's protocol; the human ceiling exists only per observer.
    metrics = [m for m in table.metrics if not m.endswith("_obs")]
    observer = [m for m in table.metrics if m.endswith("_obs")]
    options, items = [], []
    for position, entry in enumerate(entries):
        first = next((rows.get((entry.image_id, m)) for m in methods if (entry.image_id, m) in rows), None)
        options.append(
            f'<option value="{position}">{html.escape(_item_label(entry, first))}</option>'
        )
        tiles = []
        caption = ""
        if first is not None:
            true = first.get("true_names") or first.get("true_labels") or "—"
            pred = first.get("pred_names") or first.get("pred_labels") or "—"
            caption = f"true: {html.escape(str(true))}<br>predicted: {html.escape(str(pred))}"
        tiles.append(_tile(png_data_uri(entry.image), "image", caption))
        tiles.append(_tile(png_data_uri(_heat(entry.gfdm)), "GFDM (human gaze)",
                           "human ceiling, per observer:<br>" + _values(rows.get((entry.image_id, "human")), observer)
                           if (entry.image_id, "human") in rows else ""))
        if (entry.image_id, "centre-bias") in rows:
            height, width = entry.gfdm.shape
            prior = centre_bias(height, width).numpy()
            tiles.append(_tile(png_data_uri(_heat(prior / prior.max(), entry.image)), "centre bias",
                               _values(rows.get((entry.image_id, "centre-bias")), metrics)))
        for method in methods:
            if method in entry.maps:
                tiles.append(_tile(png_data_uri(_heat(entry.maps[method], entry.image)), method,
                                   _values(rows.get((entry.image_id, method)), metrics)))
        layers = ""
        if entry.layers is not None and len(entry.layer_names):
            layer_tiles = "".join(
                _tile(png_data_uri(_heat(layer)), name, css="tile small")
                for name, layer in zip(entry.layer_names, entry.layers)
            )
            layers = f'<h4>Per-layer FEM maps (shallow to deep)</h4><div class="tiles">{layer_tiles}</div>'
        items.append(
            f'<div class="gallery-item{" active" if position == 0 else ""}" data-index="{position}" '
            f'data-image-id="{html.escape(entry.image_id)}"><div class="tiles">{"".join(tiles)}</div>{layers}</div>'
        )
    return (
        '<div class="gallery-controls">'
        '<button type="button" id="gallery-prev" aria-label="previous image">&#9664;</button>'
        f'<select id="gallery-select" aria-label="image">{"".join(options)}</select>'
        '<button type="button" id="gallery-next" aria-label="next image">&#9654;</button>'
        f'<span class="note" id="gallery-count">{len(entries)} images</span></div>'
        + "".join(items)
    )
