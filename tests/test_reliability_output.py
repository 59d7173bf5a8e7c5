"""Issue 18 item 9: an unwritable output folder is a bad argument (exit 2, one line naming the
option, the path and the reason) in every sub-command that writes one, checked before any
heavy work; a full disk while writing is a one-line error naming the file (exit 1), and the
atomic writers leave no ``*.tmp`` file behind."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlfem.cli import main
from mlfem.cli._output import writable_folder

PROBE = ".mlfem-write-probe"


def _image(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def _fixations(path: Path) -> Path:
    path.write_text("image,observer,x,y\na.jpg,s1,5,5\na.jpg,s2,9,7\n", encoding="utf-8")
    return path


def _arguments(command: str, tmp_path: Path, out: Path) -> tuple[list[str], str]:
    """Minimal valid arguments of ``command`` writing to ``out``, and the option's name."""
    if command == "explain":
        return ["explain", str(_image(tmp_path / "a.png")), "--model", "tiny_models:TinyCNN",
                "--out", str(out)], "--out"
    if command == "evaluate":
        return ["evaluate", "--dataset", "synthetic", "--split", "all", "--dataset-option", "n=2",
                "--model", "tiny_models:TinyCNN", "--methods", "fem", "--out", str(out),
                "--workers", "0", "--no-progress"], "--out"
    if command == "gfdm":
        return ["gfdm", str(_fixations(tmp_path / "fix.csv")), "-o", str(out), "--sigma", "2",
                "--size", "20x20"], "--output"
    if command == "demo":
        return ["demo", "--synthetic", "--quick", "--out", str(out), "--workers", "0",
                "--no-progress"], "--out"
    if command == "train-classifier":
        return ["train-classifier", "--dataset", "synthetic", "--n", "8", "--image-size", "32",
                "--epochs", "1", "--device", "cpu", "--out", str(out), "--quiet"], "--out"
    if command == "train-fusion":
        return ["train-fusion", "--model", "tiny_models:TinyCNN", "--dataset", "synthetic",
                "--epochs", "1", "--device", "cpu", "--out", str(out), "--quiet"], "--out"
    assert command == "report"
    return ["report", str(out)], "DIR"


WRITERS = ["explain", "evaluate", "gfdm", "demo", "train-classifier", "train-fusion"]


def _deny(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """Make the write probe fail with ``code`` (tests run as root: chmod cannot do it)."""
    real = os.open

    def fake(path, *args, **kwargs):
        if PROBE in str(path):
            raise OSError(code, os.strerror(code), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake)


@pytest.mark.parametrize("command", WRITERS)
def test_out_under_a_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture, command: str) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    out = blocker / "out"
    arguments, option = _arguments(command, tmp_path, out)
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert f"{option} {out}" in err and "exists as a file" in err and str(blocker) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [*WRITERS, "report"])
@pytest.mark.parametrize(("code", "reason"), [(errno.EACCES, "permission denied"),
                                              (errno.EROFS, "read-only file system")])
def test_unwritable_out_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
    command: str, code: int, reason: str,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    arguments, option = _arguments(command, tmp_path, out)
    _deny(monkeypatch, code)
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert f"{option} {out}" in err and reason in err and "Traceback" not in err
    assert not any(PROBE in p.name for p in out.iterdir())


def test_read_only_mount_refuses_the_folder_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", fake)
    from mlfem.cli import UsageError

    with pytest.raises(UsageError, match=r"--out .*new: cannot create the folder: read-only file system"):
        writable_folder(tmp_path / "new", "--out")


def test_writable_folder_is_created_and_left_clean(tmp_path: Path) -> None:
    out = writable_folder(tmp_path / "a" / "b", "--out")
    assert out.is_dir() and list(out.iterdir()) == []


# ------------------------------------------------------------------------- disk full


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Make every write of a ``*.tmp`` file write a little, then fail with ENOSPC."""
    real = Path.write_text
    failed: list[Path] = []

    def fake(self, data, *args, **kwargs):
        if self.name.endswith(".tmp"):
            real(self, data[:5], *args, **kwargs)
            failed.append(self)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", fake)
    return failed


def test_atomic_writers_remove_their_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlfem.datasets.splits import Splits
    from mlfem.models.checkpoint import write_json_atomic

    _full_disk(monkeypatch)
    with pytest.raises(OSError) as caught:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "x.json")
    splits = Splits(dataset="d", seed=0, fractions={"train": 1.0}, assignments={"train": ["a"]})
    with pytest.raises(OSError):
        splits.save(tmp_path / "splits.json")
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_and_gallery_writers_remove_their_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch
    import torch

    from mlfem.evaluation import maps
    from mlfem.models.checkpoint import save_checkpoint

    def no_space(*args, **kwargs):
        Path(str(args[1] if len(args) > 1 else args[0])).write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", no_space)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "m.safetensors", {"w": torch.zeros(2)}, {}, "test")

    def no_space_npz(file, **arrays):
        Path(file).write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(maps.np, "savez_compressed", no_space_npz)
    with pytest.raises(OSError):
        maps.save_gallery_entry(tmp_path / "g", 0, "img", torch.zeros(3, 8, 8, dtype=torch.uint8),
                                torch.zeros(8, 8), {"fem": torch.zeros(8, 8)})
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_evaluate_on_a_full_disk_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    arguments, _ = _arguments("evaluate", tmp_path, out)
    failed = _full_disk(monkeypatch)
    assert main(arguments) == 1
    err = capsys.readouterr().err
    assert failed, "no write failed"
    lines = [line for line in err.strip().splitlines() if line.startswith("mlfem evaluate: error")]
    target = failed[0].with_name(failed[0].name[: -len(".tmp")])
    expected = (f"mlfem evaluate: error: cannot write {target}: no space left on device "
                "(free some space and run the command again)")
    assert lines == [expected]
    assert "Traceback" not in err and "During handling" not in err
    assert list(out.rglob("*.tmp")) == []


def test_main_turns_enospc_into_one_line(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(args):
        try:
            raise ValueError("inner")
        except ValueError as inner:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/run/results.csv") from inner

    monkeypatch.setattr("mlfem.cli.build_parser", _parser_with(full))
    assert main(["methods"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "mlfem methods: error: cannot write /data/run/results.csv: no space left on device "
        "(free some space and run the command again)"
    )


def _parser_with(func):
    import argparse

    def build() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="mlfem")
        sub = parser.add_subparsers(dest="command")
        sub.add_parser("methods").set_defaults(func=func)
        return parser

    return build


def test_json_payload_unchanged_by_the_helper(tmp_path: Path) -> None:
    from mlfem.models.checkpoint import write_json_atomic

    write_json_atomic(tmp_path / "x.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_evaluate_with_the_disk_full_mid_run_names_results_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlfem.evaluation import results

    def full(self, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(results.ResultsWriter, "append", full)
    out = tmp_path / "out"
    arguments, _ = _arguments("evaluate", tmp_path, out)
    assert main(arguments) == 1
    err = capsys.readouterr().err
    assert f"mlfem evaluate: error: cannot write {out / 'results.csv'}: no space left on device" in err
    assert "Traceback" not in err and list(out.rglob("*.tmp*")) == []
