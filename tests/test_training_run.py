"""The resumable-run helper both trainers share (mlfem._run, mlfem.training._run)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from mlfem._run import RunFolder, changed_settings
from mlfem.training import TrainingInterrupted
from mlfem.training._run import HISTORY_FILE, TrainingRun


def test_changed_settings_follow_the_given_keys_or_all_keys() -> None:
    saved = {"lr": 0.1, "seed": 0, "workers": 2}
    current = {"lr": 0.2, "seed": 0, "workers": 4, "new": 1}
    assert changed_settings(saved, current, keys=("seed", "lr")) == ["lr"]
    assert changed_settings(saved, current) == ["lr", "new", "workers"]
    assert changed_settings(saved, current, ignore=("workers",)) == ["lr", "new"]


def test_a_folder_holding_a_run_is_refused_unless_resumed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert RunFolder(out, "x", "state.safetensors").claim() is False
    assert out.is_dir()
    (out / "state.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--resume"):
        RunFolder(out, "x", "state.safetensors").claim()
    assert RunFolder(out, "x", "state.safetensors", resume=True).claim() is True


def test_other_settings_are_named_with_both_values(tmp_path: Path) -> None:
    run = RunFolder(tmp_path, "x", "state.safetensors")
    with pytest.raises(ValueError, match=r"lr: 0\.1 -> 0\.2") as error:
        run.check_settings({"lr": 0.1, "layers": ["a"] * 50}, {"lr": 0.2, "layers": ["b"] * 50})
    assert "layers: ['a', " in str(error.value) and "..." in str(error.value)
    run.check_settings({"lr": 0.1, "workers": 1}, {"lr": 0.1, "workers": 2}, keys=("lr",))


def _train_toy(out: Path, stop_after: int | None = None, resume: bool = False) -> torch.Tensor:
    """Two epochs of 4 steps on a linear model through TrainingRun, as the trainers do;
    ``stop_after`` steps sets the stop event (what Ctrl-C does)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    stop = threading.Event()
    run = TrainingRun(
        out, "toy", fixed=("lr",), epochs=2, resume=resume, verbose=False, stop=stop
    )
    run.claim()
    progress = run.restore(model, optimizer, {}, {"lr": 0.1})
    data = torch.linspace(0, 1, 24).reshape(8, 3)
    steps = [0]

    def batches(epoch: int, start: int) -> tuple[int, list[torch.Tensor]]:
        order = torch.arange(8).roll(epoch)
        return 4, [data[order[i * 2 : i * 2 + 2]] for i in range(start, 4)]

    def step(x: torch.Tensor) -> tuple[float, int]:
        loss = (model(x) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps[0] += 1
        if steps[0] == stop_after:
            stop.set()
        return float(loss.detach()), len(x)

    history = progress["history"]
    for epoch in range(progress["epoch"], run.epochs):
        loss = run.train_epoch(progress, epoch, batches, step, history=history, best=None)
        history.append({"epoch": epoch + 1, "train_loss": loss})
        run.end_epoch(epoch + 1, history, f"epoch {epoch + 1}", best=None)
        run.interrupt_if_stopped(epoch + 1)
    return model.weight.detach().clone()


def test_an_epoch_stopped_mid_way_resumes_at_the_same_step(tmp_path: Path) -> None:
    full = _train_toy(tmp_path / "full")
    with pytest.raises(TrainingInterrupted) as stopped:
        _train_toy(tmp_path / "cut", stop_after=3)
    assert (stopped.value.epoch, stopped.value.step) == (0, 3)
    with pytest.raises(ValueError, match="lr"):
        # Same folder, other fixed settings: refused.
        run = TrainingRun(tmp_path / "cut", "toy", fixed=("lr",), epochs=2, resume=True)
        model = torch.nn.Linear(3, 1)
        run.restore(model, torch.optim.SGD(model.parameters(), lr=0.5), {}, {"lr": 0.5})
    resumed = _train_toy(tmp_path / "cut", resume=True)
    assert torch.equal(resumed, full)
    history = (tmp_path / "cut" / HISTORY_FILE).read_text()
    assert history == (tmp_path / "full" / HISTORY_FILE).read_text()
