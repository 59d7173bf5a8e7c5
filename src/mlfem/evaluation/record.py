"""``DIR/run.json``: what a run was (settings, dataset, model, versions, leakage check) and
what it did (status, timings, counts of images, rows, skipped samples and undefined values).

The file is written when the run starts (``"status": "running"``) and rewritten, atomically,
when it ends, however it ends.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlfem._atomic import replacing
from mlfem.evaluation.config import jsonable

__all__ = ["RunRecord", "nan_counts", "versions"]

FORMAT = "mlfem-evaluation/1"
_PACKAGES = ("mlfem", "torch", "torchvision", "numpy", "scipy", "captum", "zennit", "matplotlib")


def versions() -> dict[str, str]:
    """Python's version and those of the installed packages a result depends on."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def nan_counts(results_path: Path) -> tuple[int, dict[str, dict[str, int]]]:
    """Rows of ``results.csv`` and its undefined metric values per method and metric column.
    The human row's paper-protocol columns are empty by construction (not applicable), and so
    are the centre-bias row's columns of network metrics that need an explainer (stability,
    the randomisation check): they are not counted."""
    from mlfem.evaluation.faithfulness import applies_to_references
    from mlfem.evaluation.observers import OBS_SUFFIX
    from mlfem.evaluation.results import read_results

    table = read_results(results_path)
    counts: dict[str, dict[str, int]] = {}
    for method in table.methods:
        rows = table.method_rows(method)
        columns = [m for m in table.metrics if method != "human" or m.endswith(OBS_SUFFIX)]
        if method in table.reference_methods:
            columns = [m for m in columns if applies_to_references(m)]
        counts[method] = {m: int(np.isnan(rows[m]).sum()) for m in columns}
    return len(table), counts


def _summary(dataset: Any) -> Any:
    summary = getattr(dataset, "summary", None)
    try:
        return summary() if callable(summary) else {}
    except Exception:  # noqa: BLE001 - a summary is informative only
        return {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class RunRecord:
    """``run.json`` of one run: :meth:`start` writes what the run is, :meth:`finish` adds
    what it did.

    ``facts`` (leakage check, layers, labels, GFDM settings, ...) are recorded in their order
    after the environment; ``resumed_images`` and ``repaired_bytes`` say what the run found
    in its output folder.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.payload: dict[str, Any] = {}

    def start(self, settings: dict[str, Any], dataset: Any, dataset_name: str, n_images: int,
              device: torch.device, seed: int, facts: dict[str, Any], resumed_images: int,
              repaired_bytes: int) -> None:
        """Write the record of a starting run (``"status": "running"``)."""
        self.payload = {
            "format": FORMAT,
            "status": "running",
            "settings": jsonable(settings),
            "dataset": {"name": dataset_name, "images": n_images, "summary": jsonable(_summary(dataset))},
            "device": str(device),
            "threads": torch.get_num_threads(),
            "versions": versions(),
            "seed": seed,
            "command": sys.argv,
            **facts,
            "started": _now(),
            "resumed_images": resumed_images,
            "repaired_bytes": repaired_bytes,
        }
        self._write()

    def finish(self, status: str, elapsed: float, evaluated: int, skipped: list[dict[str, str]],
               no_human_ceiling: int, results_path: Path) -> int:
        """Add how the run ended and what ``results_path`` holds; returns its number of rows."""
        rows, counts = nan_counts(results_path)
        self.payload.update({
            "status": status,
            "finished": _now(),
            "elapsed_s": round(elapsed, 3),
            "images_evaluated": evaluated,
            "images_per_s": round(evaluated / elapsed, 3) if elapsed > 0 else None,
            "skipped": {"count": len(skipped), "items": skipped[:100]},
            "no_human_ceiling": no_human_ceiling,
            "rows": rows,
            "nan_counts": counts,
            "nan_total": int(sum(sum(v.values()) for v in counts.values())),
        })
        self._write()
        return rows

    def _write(self) -> None:
        # A temporary file renamed over the old one: a killed run never leaves half a record.
        with replacing(self.path) as tmp:
            tmp.write_text(json.dumps(self.payload, indent=1, default=str) + "\n", encoding="utf-8")
