"""Reliability of ``mlfem evaluate`` (and ``mlfem gfdm``) against bad inputs and faults
(issue 18): a folder used by two runs at once, rows made with other settings, misspelled
method options, resumes that must be byte-identical for randomised metrics, damaged files,
and runs where no image can be used."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch
from _failing_dataset import FailingSamples
from tiny_models import TinyCNN

from mlfem.cli import main
from mlfem.datasets import open_dataset
from mlfem.evaluation import read_results
from mlfem.evaluation.methods import MethodRunner
from mlfem.evaluation.model import EvaluatedModel, TensorPreprocessing
from mlfem.evaluation.runner import EvaluationConfig, EvaluationError, run_evaluation
from mlfem.models import Preprocessing

SIZE = 40
LOCK = ".mlfem-evaluate.lock"
FINGERPRINT = "results.settings.json"


def _model() -> EvaluatedModel:
    torch.manual_seed(0)
    preprocessing = Preprocessing(crop_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3, fit="whole")
    return EvaluatedModel(TinyCNN(6).eval(), TensorPreprocessing(preprocessing), description="tiny")


def _dataset(n: int = 6):
    return open_dataset("synthetic", n=n, seed=1, mode="multi", size=SIZE)


def _config(out, **overrides) -> EvaluationConfig:
    options = dict(
        dataset="synthetic", out=out, split=None, methods=["mlfem-add", "fem"],
        metrics=["pcc", "sim"], batch_size=3, gallery=0, progress=False,
    )
    options.update(overrides)
    return EvaluationConfig(**options)


def _cli(out, *extra: str) -> list[str]:
    return [
        "evaluate", "--dataset", "synthetic", "--split", "all",
        "--dataset-option", "n=4", "--dataset-option", "size=40", "--dataset-option", "mode=multi",
        "--model", "tiny_models:TinyCNN", "--methods", "fem", "--gallery", "0",
        "--out", str(out), "--batch-size", "2", "--workers", "0", "--no-progress", *extra,
    ]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --------------------------------------------------------------- 1. one run per folder
def test_a_second_run_on_a_busy_folder_is_refused_and_rows_stay_single(tmp_path) -> None:
    dataset, refusals = _dataset(6), []

    def second_run(batch: int) -> None:
        if batch == 1:  # the first run holds the folder: a second one must not start
            with pytest.raises(EvaluationError, match="in use") as error:
                run_evaluation(_config(tmp_path), model=_model(), dataset=dataset)
            refusals.append(str(error.value))

    summary = run_evaluation(_config(tmp_path), model=_model(), dataset=dataset, on_batch=second_run)
    assert summary.status == "complete" and len(refusals) == 1
    assert str(os.getpid()) in refusals[0] and str(tmp_path) in refusals[0]
    table = read_results(tmp_path / "results.csv")
    keys = list(zip(table["image_id"], table["method"]))
    assert len(keys) == len(set(keys)) == 6 * 4  # 2 methods + 2 references, each row once
    assert not (tmp_path / LOCK).exists()  # released when the run ends


def test_cli_refuses_a_folder_locked_by_a_live_process(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(_cli(out)) == 0
    before = (out / "results.csv").read_bytes()
    from mlfem._run import FolderLock

    with FolderLock(out, "evaluate"):  # a live run holds the folder
        assert (out / LOCK).read_text() == f"{os.getpid()}\n"
        code = main(_cli(out, "--overwrite"))
    err = capsys.readouterr().err
    assert code == 2 and "in use by process" in err and str(out) in err
    assert (out / "results.csv").read_bytes() == before  # --overwrite did not clear it


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    pid = _dead_pid()
    (out / LOCK).write_text(f"{pid}\n")
    code = main(_cli(out))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "stale lock" in err and str(pid) in err
    assert not (out / LOCK).exists()


def test_two_processes_one_refused(tmp_path) -> None:
    # A real second process, while this one holds the folder's lock.
    from mlfem._run import FolderLock

    out = tmp_path / "run"
    with FolderLock(out, "evaluate"):
        process = subprocess.run(
            [sys.executable, "-m", "mlfem", *_cli(out)], capture_output=True, text=True, check=False,
            cwd=os.path.dirname(__file__), env={**os.environ, "PYTHONPATH": os.path.dirname(__file__)},
        )
    assert process.returncode == 2, process.stderr
    assert "in use by process" in process.stderr and not (out / "results.csv").exists()


# --------------------------------------------------------------- 3. settings kept with the rows
def test_rows_of_other_settings_are_refused_without_run_json(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(_cli(out, "--k", "2")) == 0
    assert (out / FINGERPRINT).exists()
    before = (out / "results.csv").read_bytes()
    (out / "run.json").unlink()
    code = main(_cli(out, "--k", "3"))
    err = capsys.readouterr().err
    assert code == 2 and "k" in err and FINGERPRINT in err
    assert (out / "results.csv").read_bytes() == before
    assert main(_cli(out, "--k", "2")) == 0  # the same settings resume
    assert "4 already done" in capsys.readouterr().err


def test_rows_without_any_settings_record_are_refused(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(_cli(out)) == 0
    (out / "run.json").unlink()
    (out / FINGERPRINT).unlink()
    code = main(_cli(out))
    err = capsys.readouterr().err
    assert code == 2 and "results.csv" in err and "--overwrite" in err
    assert main(_cli(out, "--overwrite")) == 0


# --------------------------------------------------------------- 4. unknown method options
def test_a_misspelled_method_option_is_refused(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(_cli(out, "--methods", "gradcam", "--option", "gradcam.layr=features.3"))
    err = capsys.readouterr().err
    assert code == 2 and "'layr'" in err and "layer" in err and "max_batch_size" in err
    assert not (out / "results.csv").exists()
    code = main(_cli(out, "--option", "fem.kk=3"))
    err = capsys.readouterr().err
    assert code == 2 and "'kk'" in err and "rectify" in err
    code = main(_cli(out, "--option", "gradcma.layer=features.3"))
    assert code == 2 and "unknown method 'gradcma'" in capsys.readouterr().err


def test_known_method_options_are_accepted() -> None:
    model = TinyCNN(6).eval()
    runner = MethodRunner(model, ["gradcam", "fem", "mlfem-top"], method_options={
        "gradcam": {"layer": "features.3"}, "fem": {"k": 1.5}, "mlfem-top": {"alpha": 0.3},
        "smoothgrad": {"samples": 2},  # a method not run now (added on a resume later)
    })
    runner.close()
    with pytest.raises(ValueError, match="'alpa'"):
        MethodRunner(model, ["mlfem-add"], method_options={"mlfem-add": {"alpa": 0.3}})


def test_registry_records_accepted_options() -> None:
    from mlfem.explainers.registry import method_info

    assert "layer" in method_info("gradcam").options
    assert "layers" in method_info("gradcam").options  # one module, as single-layer methods take
    assert {"layers", "alpha", "k", "normalize", "fusion"} <= set(method_info("mlfem-add").options)
    assert "net" in method_info("mlfem-net").options


# --------------------------------------------------------------- 6. randomised metrics on resume
def test_resume_after_a_torn_batch_is_byte_identical_for_random_metrics(tmp_path) -> None:
    settings = dict(methods=["mlfem-add", "fem"], metrics=["pcc", "auc_borji"])
    dataset = _dataset(6)
    whole = tmp_path / "whole"
    run_evaluation(_config(whole, **settings), model=_model(), dataset=dataset)
    lines = (whole / "results.csv").read_text().splitlines(keepends=True)
    # Rows: header, then per image human, centre-bias, mlfem-add, fem (4 rows, 3 images a
    # batch). Cut the second batch after image 4's references and a torn part of its next row.
    keep = 1 + 3 * 4 + 2
    parts = tmp_path / "parts"
    run_evaluation(_config(parts, **settings), model=_model(), dataset=dataset)
    (parts / "results.csv").write_text("".join(lines[:keep]) + lines[keep][:20])
    resumed = run_evaluation(_config(parts, **settings), model=_model(), dataset=dataset)
    assert resumed.n_done_before == 3 and resumed.status == "complete"
    assert sorted((parts / "results.csv").read_text().splitlines()) == sorted(
        (whole / "results.csv").read_text().splitlines()
    )


def test_random_draws_depend_on_the_image_not_on_its_batch(tmp_path) -> None:
    settings = dict(methods=["fem"], metrics=["pcc", "sim", "auc_borji"])
    dataset = _dataset(5)
    run_evaluation(_config(tmp_path / "a", batch_size=5, **settings), model=_model(), dataset=dataset)
    run_evaluation(_config(tmp_path / "b", batch_size=1, **settings), model=_model(), dataset=dataset)
    a, b = read_results(tmp_path / "a" / "results.csv"), read_results(tmp_path / "b" / "results.csv")
    # Batches of 5 and of 1 image run the network on other batch shapes (float round-off,
    # ~1e-7); other random draws would move the sampled AUCs by ~1e-2.
    for column in ("auc_borji", "auc_borji_obs"):
        assert a[column].tolist() == pytest.approx(b[column].tolist(), nan_ok=True, rel=0, abs=1e-5)


# --------------------------------------------------------------- 10. damaged files
def test_a_garbled_middle_row_is_named_with_its_line(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(_cli(out)) == 0
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    lines[3] = "\x00\x00garbage,,\n"
    (out / "results.csv").write_text("".join(lines))
    code = main(_cli(out))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{out / 'results.csv'}, line 4" in err and "--overwrite" in err
    with pytest.raises(ValueError, match="line 4"):
        read_results(out / "results.csv")


def test_a_bad_metric_value_in_a_middle_row_is_named(tmp_path) -> None:
    out = tmp_path / "run"
    run_evaluation(_config(out), model=_model(), dataset=_dataset(3))
    path = out / "results.csv"
    rows = list(csv.reader(path.read_text().splitlines()))
    rows[2][rows[0].index("pcc")] = "0.3x"
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    with pytest.raises(EvaluationError, match=r"results\.csv, line 3.*pcc"):
        run_evaluation(_config(out), model=_model(), dataset=_dataset(3))


def test_a_truncated_run_json_is_named(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(_cli(out)) == 0
    text = (out / "run.json").read_text()
    (out / "run.json").write_text(text[: len(text) // 2])
    code = main(_cli(out))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{out / 'run.json'}" in err and "not valid JSON" in err


# --------------------------------------------------------------- 13. nothing usable
def test_evaluate_exits_1_when_no_image_can_be_used(tmp_path, capsys, monkeypatch) -> None:
    from mlfem.evaluation import runner

    monkeypatch.setattr(runner, "open_dataset", lambda config: FailingSamples(_dataset(4), None, "/data/fixations.mat", "no subjects"))
    code = main(_cli(tmp_path / "run"))
    err = capsys.readouterr().err
    assert code == 1 and "no image" in err and "no subjects" in err and "Traceback" not in err


def test_gfdm_skips_an_image_whose_fixations_all_fall_outside(tmp_path, capsys) -> None:
    path = tmp_path / "fix.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "observer", "x", "y"])
        writer.writerows([["a", 1, 1, 1], ["a", 2, 2, 3], ["far", 1, 90, 1], ["b", 1, 3, 3]])
    code = main(["gfdm", str(path), "-o", str(tmp_path / "o"), "--sigma", "2", "--size", "4x4"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (tmp_path / "o" / "a.npy").exists() and (tmp_path / "o" / "b.npy").exists()
    assert not (tmp_path / "o" / "far.npy").exists()
    assert "skipped 1 image" in captured.err and "far" in captured.err
    assert "all 1 fixations fall outside" in captured.err
    summary = (tmp_path / "o" / "summary.csv").read_text()
    assert "far" not in summary and summary.count("\n") == 3
