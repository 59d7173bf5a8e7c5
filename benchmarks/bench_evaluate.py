"""Throughput of ``mlfem evaluate``, by stage, against an earlier commit of mlfem, in one run.

Not a test. The baseline's ``src/`` (default: commit a95d16a, before the gaze side was made
cheap) is extracted with ``git archive`` into a temporary folder; every round runs the same
evaluation once with each source tree, in fresh processes (``PYTHONPATH`` picks the tree),
alternating which goes first, so that a machine getting busier or quieter affects both.
Each run is ``mlfem evaluate`` itself (``mlfem.cli.main``) with timers wrapped around its
stages; the figures are medians over the rounds, and the gain is the median of the
per-round ratios. The results of both trees are compared at the end (largest absolute
difference per column of results.csv).

Stages (exclusive wall times; a nested stage is not counted twice):
  load        reading and preprocessing the images (DataLoader items), without the GFDM
  gfdm        the pooled GFDM of each image (the dataset's build_gfdm)
  explain     the methods' maps (model forward/backward passes)
  references  the reference maps: each image's observer targets, the human ceiling,
              the centre-bias map
  metrics     every metric of the methods and the centre bias, both protocols
  write       results.csv, the gallery's maps, run.json
  other       the rest of the command (imports, model loading, the loop's bookkeeping)

With ``--workers 0`` (the default here) loading runs in the main process, so the stages add
up to the command's time; with workers, load and gfdm run in the workers and are not timed.

    uv run python benchmarks/bench_evaluate.py                       # OSIE sample, 12 images
    uv run python benchmarks/bench_evaluate.py --dataset osie --root ../shared/data/osie-train \\
        --limit 100 --rounds 2                                       # the issue's 100 images
    uv run python benchmarks/bench_evaluate.py --device cuda         # where a GPU is lent
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGES = ("load", "gfdm", "explain", "references", "metrics", "write", "other")
METHODS = "mlfem-net,mlfem-add,mlfem-top,mlfem-max,fem,gradcam"
METRICS = "pcc,sim,nss,auc_judd"


# ---------------------------------------------------------------------------- child side
class _Timers:
    """Exclusive wall time per stage: time spent in a nested timed call is its own stage's."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._stack: list[list] = []  # [stage, start, time in nested calls]

    def wrap(self, owner: object, name: str, stage: str) -> None:
        function = getattr(owner, name)

        def timed(*args, **kwargs):
            self._stack.append([stage, time.perf_counter(), 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                _, start, nested = self._stack.pop()
                spent = time.perf_counter() - start
                self.seconds[stage] += spent - nested
                if self._stack:
                    self._stack[-1][2] += spent

        setattr(owner, name, timed)


def _install(timers: _Timers) -> None:
    import mlfem.datasets._base as base
    import mlfem.evaluation.observers as observers
    import mlfem.gaze as gaze
    from mlfem.evaluation.record import RunRecord
    from mlfem.evaluation.results import ResultsWriter
    from mlfem.evaluation.scoring import PreparedImages, Scorer

    timers.wrap(PreparedImages, "__getitem__", "load")
    timers.wrap(base, "build_gfdm", "gfdm")
    timers.wrap(Scorer, "_explain", "explain")
    for owner, name in ((Scorer, "_ceiling"), (observers, "targets_for"), (gaze, "centre_bias")):
        timers.wrap(owner, name, "references")
    for name in ("_metric_table", "_observer_means"):
        timers.wrap(Scorer, name, "metrics")
    for owner, name in ((ResultsWriter, "append"), (Scorer, "_save_gallery"), (RunRecord, "start"),
                        (RunRecord, "finish")):
        timers.wrap(owner, name, "write")


def child(args: argparse.Namespace, evaluate_args: list[str]) -> None:
    started = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    import mlfem
    from mlfem.cli import main
    from mlfem.training import bundled_net_path

    timers = _Timers()
    _install(timers)
    code = main(["evaluate", *evaluate_args, "--net", str(bundled_net_path())])
    total = time.perf_counter() - started
    timers.seconds["other"] = total - sum(timers.seconds.values())
    run = json.loads((Path(args.out) / "run.json").read_text())
    print(json.dumps({"code": code, "mlfem": mlfem.__file__, "total": total, "stages": timers.seconds,
                      "images": run["images_evaluated"]}))


# ---------------------------------------------------------------------------- parent side
def _baseline_tree(commit: str, into: Path) -> Path:
    """``src/`` of ``commit`` extracted under ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit, "src"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(into, filter="data")
        else:  # our own git archive: trusted
            tar.extractall(into)
    return into / "src"


def _run(src: Path, out: Path, args: argparse.Namespace, evaluate_args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=str(args.threads))
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--out", str(out),
               "--threads", str(args.threads), "--", *evaluate_args, "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"run with {src} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(result["mlfem"]).resolve().parents[1] != src.resolve():
        raise SystemExit(f"the run imported {result['mlfem']}, not the tree {src}")
    # CPU time (user + system, all threads) of the whole command: less sensitive than wall
    # time to other processes on a shared machine, and it shows allocation churn (system).
    result["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["system"] = after.ru_stime - before.ru_stime
    return result


def _differences(first: Path, second: Path) -> tuple[dict[str, float], int, int]:
    """Largest absolute difference per numeric column, cells that differ, cells compared."""
    with open(first) as a, open(second) as b:
        rows_a, rows_b = list(csv.DictReader(a)), list(csv.DictReader(b))
    if [(r["image_id"], r["method"]) for r in rows_a] != [(r["image_id"], r["method"]) for r in rows_b]:
        raise SystemExit("the two results.csv do not have the same rows")
    worst: dict[str, float] = {}
    differ = cells = 0
    for row_a, row_b in zip(rows_a, rows_b):
        for column, value in row_a.items():
            cells += 1
            if value == row_b[column]:
                continue
            differ += 1
            try:
                x, y = float(value), float(row_b[column])
            except ValueError:
                worst[column] = math.inf  # a text column differs
                continue
            if not (math.isnan(x) and math.isnan(y)):
                worst[column] = max(worst.get(column, 0.0), abs(x - y))
    return worst, differ, cells


def parent(args: argparse.Namespace, evaluate_args: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    trees = {"base": _baseline_tree(args.base, work / "base"), "new": REPO / "src"}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    try:
        for round_ in range(args.rounds):
            order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
            for name in order:
                result = _run(trees[name], work / f"{name}-{round_}", args, evaluate_args)
                runs[name].append(result)
                print(f"round {round_ + 1}/{args.rounds} {name}: {result['images']} images, "
                      f"{result['total']:.1f} s", flush=True)
        _report(args, runs, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _report(args: argparse.Namespace, runs: dict[str, list[dict]], work: Path) -> None:
    import torch

    images = runs["new"][0]["images"]
    print(f"\nmlfem evaluate, {images} images, {args.rounds} interleaved rounds, medians; "
          f"{torch.get_num_threads()} host threads, child threads {args.threads}, "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print(f"base = {args.base} (git archive), new = this checkout\n")
    print(f"{'stage':<12}{'base s':>10}{'new s':>10}{'base img/s':>12}{'new img/s':>12}{'gain':>8}")
    rows = [*STAGES, "loop", "command", "cpu", "system"]
    for stage in rows:
        def seconds(run: dict, stage: str = stage) -> float:
            if stage == "command":
                return run["total"]
            if stage in ("cpu", "system"):
                return run[stage]
            if stage == "loop":  # the command without imports and model loading
                return sum(v for k, v in run["stages"].items() if k != "other")
            return run["stages"][stage]

        base = [seconds(r) for r in runs["base"]]
        new = [seconds(r) for r in runs["new"]]
        gain = statistics.median(b / n for b, n in zip(base, new) if n > 0) if all(new) else math.nan
        rate = lambda s: images / s if s > 0 else math.inf  # noqa: E731
        print(f"{stage:<12}{statistics.median(base):>10.2f}{statistics.median(new):>10.2f}"
              f"{rate(statistics.median(base)):>12.2f}{rate(statistics.median(new)):>12.2f}{gain:>7.2f}x")
    worst, differ, cells = _differences(work / "base-0" / "results.csv", work / "new-0" / "results.csv")
    print(f"\nresults.csv: {differ} of {cells} cells differ from the base's; largest absolute "
          f"difference per column: " + (", ".join(f"{k} {v:.2e}" for k, v in sorted(worst.items())) or "none"))
    print("gain = median over rounds of base time / new time (images per second, new / base); "
          "loop = the stages without 'other'; cpu, system = CPU seconds of the whole command")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--base", default="a95d16a", help="commit to compare with (default a95d16a)")
    parser.add_argument("--dataset", default="osie-sample")
    parser.add_argument("--root", default=None)
    parser.add_argument("--split", default="all")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--metrics", default=METRICS)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each run (default 2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the runs' folders (printed)")
    args, rest = parser.parse_known_args()
    if args.child:
        child(args, [a for a in rest if a != "--"])
        return
    evaluate_args = ["--dataset", args.dataset, "--split", args.split, "--model", "efficientnet_lite0",
                     "--weights", "imagenet", "--methods", args.methods, "--metrics", args.metrics,
                     "--batch-size", str(args.batch_size), "--workers", str(args.workers),
                     "--device", args.device, "--no-progress", "--overwrite", "--allow-leakage"]
    if args.root:
        evaluate_args += ["--root", str(Path(args.root).resolve())]
    if args.limit:
        evaluate_args += ["--limit", str(args.limit)]
    parent(args, evaluate_args)


if __name__ == "__main__":
    main()
