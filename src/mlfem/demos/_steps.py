"""What both demos share: timed steps announced on stderr, and the result record."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoResult", "timed_step"]


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
