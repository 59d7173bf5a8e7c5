"""``mlfem evaluate`` under ``torchrun``: each process evaluates its own share of the batches,
writes its own shard of rows, and rank 0 merges the shards into one ``results.csv``.

How it works (and why):

* The work is the runner's batches of FIXED boundaries that still lack rows; pending batch
  ``j`` goes to rank ``j mod WORLD_SIZE``. Every image is evaluated once (no padding, unlike
  ``DistributedSampler``) and in the very batch a single process would put it in, so the
  batch-dependent randomness (SmoothGrad's noise) and every value are those of one process.
* Rank ``r`` appends its rows to ``OUT/shards/results-rank<r>.csv`` (the same append-only,
  synced, self-repairing file as ``results.csv``: :class:`~mlfem.evaluation.results.ResultsWriter`)
  and its ``run.json`` to ``OUT/shards/run-rank<r>.json``. What is done is read from
  ``results.csv`` and EVERY shard file before anyone writes (a barrier), so a resumed run
  (after a crash of any rank, with any number of processes, even one) computes exactly the
  rows still missing.
* ``OUT/shards/plan.json`` holds the order of a single-process file: the images in order,
  and per image the references then the methods. :func:`merge_shards` (rank 0, after a
  barrier at the end; or ``mlfem merge-shards OUT`` after a crash) sorts every row found
  into that order and writes ``results.csv`` at once (a temporary file renamed over it), so
  a complete merge is byte for byte the file of one process. The shards are removed once
  every image is complete; until then they stay, and the merged file is a valid partial
  ``results.csv`` that a rerun resumes.
* A rank whose evaluation fails still reaches the final barrier: the others' rows are merged,
  the run says which rank failed and which images lack rows, and every process exits non-zero
  where its own part failed (rank 0 also when any part failed).

A folder with a ``shards`` folder is always run this way, even by one process, so a run
started under ``torchrun`` can be finished without it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlfem._atomic import replacing
from mlfem.distributed import World, all_gather, barrier, broadcast
from mlfem.evaluation.config import EvaluationError
from mlfem.evaluation.methods import REFERENCE_METHODS
from mlfem.models.checkpoint import write_json_atomic

__all__ = ["EvaluationShards", "MergeReport", "merge_shards"]

SHARDS = "shards"
PLAN = "plan.json"
_PLAN_FORMAT = "mlfem-evaluation-shards/1"


def _shard_results(out: Path, rank: int) -> Path:
    return out / SHARDS / f"results-rank{rank:05d}.csv"


def _shard_record(out: Path, rank: int) -> Path:
    return out / SHARDS / f"run-rank{rank:05d}.json"


@dataclass
class MergeReport:
    """What :func:`merge_shards` wrote: rows, and the images of the plan still lacking a
    method row (``missing``), with each rank's status (from its ``run-rank<r>.json``)."""

    results: Path
    rows: int
    images: int
    missing: list[str] = field(default_factory=list)
    ranks: dict[int, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.missing

    def describe(self, limit: int = 10) -> str:
        """One line: which ranks did not complete and which images lack rows."""
        failed = [f"rank {r}: {s}" for r, s in sorted(self.ranks.items()) if s != "complete"]
        parts = failed[:]
        if self.missing:
            names = ", ".join(self.missing[:limit]) + (", ..." if len(self.missing) > limit else "")
            parts.append(f"{len(self.missing)} of {self.images} image(s) lack rows ({names})")
        return "; ".join(parts) or "complete"


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and complete rows of a results file; a partial last line (a killed writer's)
    is ignored, as the writer itself drops it when it resumes."""
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    return (rows[0], rows[1:]) if rows else ([], [])


def _shard_files(out: Path) -> list[Path]:
    return sorted((out / SHARDS).glob("results-rank*.csv"))


def done_rows(out: Path, header: Sequence[str]) -> set[tuple[str, str]]:
    """(image_id, method) of every row in ``results.csv`` and the shard files of ``out``.

    Raises:
        EvaluationError: a file was written with other columns.
    """
    done: set[tuple[str, str]] = set()
    for path in [out / "results.csv", *_shard_files(out)]:
        if not path.exists() or path.stat().st_size == 0:
            continue
        found, rows = _read_rows(path)
        if found and found != list(header):
            raise EvaluationError(
                f"{path} was written with other columns; use another output folder or --overwrite"
            )
        done.update((row[0], row[1]) for row in rows if len(row) == len(header))
    return done


def merge_shards(out: str | Path) -> MergeReport:
    """Merge ``out/results.csv`` and ``out/shards/results-rank*.csv`` into ``out/results.csv``
    in single-process order (``out/shards/plan.json``); remove the shards when every image
    of the plan has its method rows. Safe to run again; never loses a row.

    Raises:
        EvaluationError: no plan (not a sharded run) or files of other columns.
    """
    out = Path(out)
    plan_path = out / SHARDS / PLAN
    if not plan_path.is_file():
        raise EvaluationError(f"{out} holds no sharded evaluation ({plan_path} is missing)")
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    header, ids, order = plan["columns"], plan["image_ids"], plan["row_order"]
    rows: dict[tuple[str, str], list[str]] = {}
    for path in [out / "results.csv", *_shard_files(out)]:
        if path.exists() and path.stat().st_size:
            found, file_rows = _read_rows(path)
            if found != header:
                raise EvaluationError(f"{path} was written with other columns than {plan_path}")
            for row in file_rows:
                rows.setdefault((row[0], row[1]), row)
    position = {image_id: i for i, image_id in enumerate(ids)}
    rank_in_image = {method: i for i, method in enumerate(order)}
    # Rows of images outside the plan (none in a normal run) keep their place after it.
    keys = sorted(
        rows, key=lambda k: (position.get(k[0], len(ids)), rank_in_image.get(k[1], len(order)))
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows[key] for key in keys)
    with replacing(out / "results.csv") as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    skipped = set(plan.get("skipped", []))
    missing = [
        image_id for image_id in ids
        if image_id not in skipped and any((image_id, m) not in rows for m in plan["methods"])
    ]
    ranks = {}
    for record in sorted((out / SHARDS).glob("run-rank*.json")):
        with contextlib.suppress(OSError, ValueError):
            rank = int(record.stem.removeprefix("run-rank"))
            ranks[rank] = json.loads(record.read_text(encoding="utf-8"))["status"]
    report = MergeReport(out / "results.csv", len(keys), len(ids), missing, ranks)
    if report.complete:
        shutil.rmtree(out / SHARDS, ignore_errors=True)
    return report


class EvaluationShards:
    """The sharded side of one evaluation run (see the module docstring); in a world of one
    process with no ``shards`` folder, every method leaves the single-process run as it was.
    """

    def __init__(self, out: Path, world: World) -> None:
        self.out = Path(out)
        self.world = world
        self.sharded = world.distributed or (self.out / SHARDS).is_dir()

    @property
    def results_path(self) -> Path:
        """Where this process appends its rows."""
        if self.sharded:
            return _shard_results(self.out, self.world.rank)
        return self.out / "results.csv"

    @property
    def record_path(self) -> Path:
        """Where this process writes its ``run.json``."""
        return _shard_record(self.out, self.world.rank) if self.sharded else self.out / "run.json"

    @contextlib.contextmanager
    def claimed(self, command: str = "evaluate") -> Iterator[None]:
        """Hold the folder's lock (rank 0 holds it for the whole world): a second run on the
        folder, distributed or not, is refused on every process."""
        from mlfem._run import FolderBusyError, FolderLock

        lock = FolderLock(self.out, command)
        problem = None
        if self.world.main:
            try:
                lock.acquire()
            except FolderBusyError as error:
                problem = str(error)
        problem = broadcast(problem)
        if problem is not None:
            raise EvaluationError(problem)
        try:
            yield
        finally:
            lock.release()

    def clear(self) -> None:
        """``--overwrite``: rank 0 removes the shards (the runner clears the rest)."""
        if self.world.main:
            shutil.rmtree(self.out / SHARDS, ignore_errors=True)
        barrier()
        self.sharded = self.world.distributed

    def prepare(self) -> None:
        """Create the shards folder (before the writers open their files)."""
        if self.sharded:
            (self.out / SHARDS).mkdir(parents=True, exist_ok=True)

    def done(self, own: set[tuple[str, str]], header: Sequence[str]) -> set[tuple[str, str]]:
        """Rows already computed: this writer's ``own`` (one process), or every file's."""
        return done_rows(self.out, header) if self.sharded else own

    def share(self, batches: list[list[int]], image_ids: Sequence[str], methods: Sequence[str],
              header: Sequence[str]) -> list[list[int]]:
        """This process's share of the pending ``batches``; rank 0 writes the plan first, and
        nobody starts (nor writes a row) before every process has read what is done."""
        if not self.sharded:
            return batches
        if self.world.main:
            write_json_atomic(self.out / SHARDS / PLAN, {
                "format": _PLAN_FORMAT,
                "world_size": self.world.size,
                "columns": list(header),
                "image_ids": list(image_ids),
                "methods": list(methods),
                "row_order": [*REFERENCE_METHODS, *methods],
            })
        barrier()
        return batches[self.world.rank :: self.world.size]

    def finish(self, summary: Any, record: Any) -> Any:
        """After this process's part (done or failed, as ``summary.status`` says): wait for
        every process, merge on rank 0, and return the run's summary (totals of all processes; ``status`` says which
        rank failed and which images lack rows). ``record`` is this process's RunRecord, the
        base of the merged ``run.json``."""
        if not self.sharded:
            return summary
        parts = all_gather({
            "rank": self.world.rank, "status": summary.status, "evaluated": summary.n_evaluated,
            "skipped": summary.skipped, "elapsed": summary.elapsed,
            "no_ceiling": record.payload.get("no_human_ceiling", 0),
        })
        report: Any = None
        if self.world.main:
            try:
                report = self._merge(parts, record)
            except Exception as error:  # noqa: BLE001 - every process must hear of it
                report = EvaluationError(f"merging {self.out / SHARDS} failed: {error}")
        report = broadcast(report)
        if isinstance(report, Exception):
            raise report
        status = _world_status(report, parts)
        skipped = [s for p in parts for s in p["skipped"]]
        return replace(
            summary, results=report.results, n_evaluated=sum(p["evaluated"] for p in parts),
            n_skipped=len(skipped), skipped=skipped, rows=report.rows, status=status,
        )

    def _merge(self, parts: list[dict[str, Any]], record: Any) -> MergeReport:
        """Rank 0: merge the shards and write ``run.json`` for the whole world."""
        from mlfem.evaluation.record import RunRecord

        plan_path = self.out / SHARDS / PLAN
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
        # Images no process could read are skipped, as by one process: not "missing".
        plan["skipped"] = sorted({s["image_id"] for p in parts for s in p["skipped"]})
        write_json_atomic(plan_path, plan)
        report = merge_shards(self.out)
        report.ranks = {p["rank"]: p["status"] for p in parts}  # this run's, not older files'
        merged = RunRecord(self.out / "run.json")
        merged.payload = {**record.payload, "world_size": self.world.size, "ranks": [
            {k: p[k] for k in ("rank", "status", "evaluated", "elapsed")} for p in parts
        ]}
        merged.finish(_world_status(report, parts), max(p["elapsed"] for p in parts),
                      sum(p["evaluated"] for p in parts), [s for p in parts for s in p["skipped"]],
                      sum(p["no_ceiling"] for p in parts), report.results)
        return report


def _world_status(report: MergeReport, parts: list[dict[str, Any]]) -> str:
    """``complete``, or ``failed: `` with the ranks that failed and the images lacking rows."""
    if report.complete and all(p["status"] == "complete" for p in parts):
        return "complete"
    return f"failed: {report.describe()}"
