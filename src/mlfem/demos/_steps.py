"""What both demos share: timed steps announced on stderr, and the result record."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["DemoResult", "start_demo", "timed_step", "write_report_and_table"]


@dataclass
class DemoResult:
    """Where a demo wrote everything, and how long each step took (seconds)."""

    out: Path
    #: The explained model: a checkpoint written by the demo, or a model spec.
    classifier: Path | str
    net: Path | None
    evaluation: Path
    report: Path
    timings: dict[str, float]
    table: str


def start_demo(out: str | Path) -> tuple[Path, dict[str, float], float]:
    """The step that starts every demo: its output folder (created), its step timings (empty)
    and its start time (``time.perf_counter``, for the total)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out, {}, time.perf_counter()


@contextlib.contextmanager
def timed_step(name: str, timings: dict[str, float], progress: bool) -> Iterator[None]:
    """Time one step into ``timings[name]`` and announce it on stderr."""
    if progress:
        print(f"demo: {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 2)
    if progress:
        print(f"demo: {name} done in {timings[name]:.1f} s", file=sys.stderr, flush=True)


def write_report_and_table(
    out: Path, plan: Any, timings: dict[str, float], started: float, seed: int, progress: bool
) -> tuple[Path, str]:
    """The steps that end every demo: the HTML report of ``out/evaluation``, the total time,
    ``timings.csv`` and ``plan.txt``; returns the report's path and the headline table."""
    from mlfem.reporting import headline_table, write_report
    from mlfem.reporting.tables import write_csv

    with timed_step("write the report", timings, progress):
        report = write_report(out / "evaluation", seed=seed)
    timings["total"] = round(time.perf_counter() - started, 2)
    table = headline_table(out / "evaluation" / "results.csv", seed=seed)
    write_csv(out / "timings.csv", [{"step": k, "seconds": v} for k, v in timings.items()])
    (out / "plan.txt").write_text("\n".join(f"{k} = {v}" for k, v in asdict(plan).items()) + "\n")
    return report, table
