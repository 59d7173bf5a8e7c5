"""``torchrun --nproc-per-node 2 -m mlfem evaluate``: two CPU processes (gloo) share the
images, and the merged results.csv is byte for byte the single-process file, also after a
rank failed (its error reported, the other's rows kept) or was killed, once resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlfem.cli import main
from mlfem.evaluation.sharding import merge_shards

TESTS = Path(__file__).resolve().parent
# 12 images in batches of 2: six batches, three per rank. SmoothGrad's noise and the sampled
# AUC are random: equal files show that each image is computed in the batch, and with the
# seed, of a single-process run.
ARGS = [
    "evaluate", "--dataset", "synthetic", "--split", "all", "--dataset-option", "n=12",
    "--dataset-option", "size=40", "--dataset-option", "mode=multi",
    "--model", "_dist_models:FailingCNN", "--methods", "fem,mlfem-top,smoothgrad",
    "--option", "smoothgrad.samples=2", "--metrics", "pcc,auc_borji", "--batch-size", "2",
    "--workers", "0", "--no-progress",
]


def _env(fail: str | None = None, out: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("MLFEM_TEST_FAIL", None)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    if fail is not None:
        env["MLFEM_TEST_FAIL"], env["MLFEM_TEST_OUT"] = fail, str(out)
    return env


def _torchrun(out: Path, fail: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "mlfem", *ARGS, "--out", str(out)]
    return subprocess.run(command, env=_env(fail, out), capture_output=True, text=True, timeout=600)


def _single(out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mlfem", *ARGS, "--out", str(out)]
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> bytes:
    """results.csv of one process."""
    out = tmp_path_factory.mktemp("single") / "run"
    done = _single(out)
    assert done.returncode == 0, done.stderr
    assert not (out / "shards").exists()
    return (out / "results.csv").read_bytes()


def test_a_failed_rank_is_reported_and_one_process_finishes_the_run(tmp_path, reference, capsys) -> None:
    out = tmp_path / "run"
    failed = _torchrun(out, fail="1:5:raise")  # in rank 1's second batch
    assert failed.returncode != 0
    assert "rank 1: failed: RuntimeError: rank 1 fails on purpose" in failed.stderr
    assert "image(s) lack rows" in failed.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["status"].startswith("failed: rank 1") and record["world_size"] == 2
    assert [r["status"] for r in record["ranks"]][0] == "complete"
    # Rank 0's rows are all there, in the merged file; the shards stay for the resume.
    rows = (out / "results.csv").read_bytes().splitlines()
    assert 1 < len(rows) < len(reference.splitlines())
    assert set(rows) <= set(reference.splitlines())
    assert (out / "shards").is_dir()
    # Other settings are refused on the shards' rows as on results.csv's.
    changed = [*ARGS[: ARGS.index("--metrics") + 1], "pcc", *ARGS[ARGS.index("--metrics") + 2 :]]
    assert main([*changed, "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err
    # A plain single-process run resumes the sharded folder and merges it.
    resumed = _single(out)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "results.csv").read_bytes() == reference
    assert not (out / "shards").exists()


def test_a_killed_rank_resumes_under_torchrun_to_the_same_file(tmp_path, reference, capsys) -> None:
    out = tmp_path / "run"
    killed = _torchrun(out, fail="1:5:kill")
    assert killed.returncode != 0
    shard = out / "shards" / "results-rank00001.csv"
    assert shard.exists() and len(shard.read_bytes().splitlines()) > 1  # its first batch
    # The explicit merge after a crash: a partial file, and the images still missing.
    report = merge_shards(out)
    assert not report.complete and report.missing and (out / "shards").is_dir()
    assert main(["merge-shards", str(out)]) == 1
    assert f"{len(report.missing)} of 12 image(s) lack rows" in capsys.readouterr().err
    assert main(["merge-shards", str(tmp_path / "nothing")]) == 2
    resumed = _torchrun(out)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "results.csv").read_bytes() == reference
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["resumed_images"] > 0
    assert sum(r["evaluated"] for r in record["ranks"]) == 12 - record["resumed_images"]
