"""The run skeleton both trainers share: a :class:`~mlfem._run.RunFolder` whose state is a
model, its optimizer and RNG states (:mod:`mlfem.training._state`), trained epoch by epoch.

A trainer builds its model and optimizer, then::

    run = TrainingRun.of(config, "train-fusion", ("lr", "seed"), progress, stop, on_step)
    run.claim()                                   # refuse a used folder unless resuming
    progress = run.restore(model, optimizer, generators, settings, bad_epochs=0)
    with run.stopping():
        for epoch in range(progress["epoch"], run.epochs):
            train_loss = run.train_epoch(progress, epoch, batches, step, history=...)
            ...validate, keep the best...
            run.end_epoch(epoch + 1, history, summary, best=best)
            run.interrupt_if_stopped(epoch + 1)

Interrupting (Ctrl-C or ``stop``) saves the state at the next step boundary and raises
:class:`~mlfem.training.TrainingInterrupted`; :meth:`TrainingRun.restore` continues from that
exact step, so on CPU a resumed run ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlfem._run import RunFolder
from mlfem.distributed import any_true, current_world
from mlfem.training._data import progress_bar
from mlfem.training._state import TrainingInterrupted, load_training_state, save_training_state

__all__ = ["HISTORY_FILE", "STATE_FILE", "StepCallback", "TrainingResult", "TrainingRun"]

STATE_FILE = "training_state.safetensors"
HISTORY_FILE = "history.json"

#: ``on_step(epoch, step, loss)``, called after every optimizer step.
StepCallback = Callable[[int, int, float], None]


@dataclass
class TrainingResult:
    """What a finished training run returns (``ClassifierRun``, ``FusionRun``)."""

    #: The best checkpoint (weights file; its sidecar is beside it).
    checkpoint: Path
    #: Its epoch (1-based) and validation record.
    best_epoch: int
    best_metrics: dict[str, float]
    #: One record per epoch trained (training loss, validation metrics).
    history: list[dict[str, Any]]


class TrainingRun(RunFolder):
    """A resumable training run in ``out`` (see the module docstring).

    Args:
        fixed: the settings a resumed run must share with the saved one.
        epochs: how many epochs the run trains (at most).
        on_step: see :data:`StepCallback`.
        bar: the progress bar's label prefix (``"{label}epoch e/E"``), the name of its
            running mean loss and that mean's decimals.
        Others: as :class:`~mlfem._run.RunFolder` (the state file is :data:`STATE_FILE`).
    """

    def __init__(
        self,
        out: str | Path,
        command: str,
        *,
        fixed: Sequence[str],
        epochs: int,
        resume: bool = False,
        verbose: bool = True,
        stop: threading.Event | None = None,
        on_step: StepCallback | None = None,
        bar: tuple[str, str, int] = ("", "loss", 4),
    ) -> None:
        # Under torchrun every process trains; rank 0 alone writes files and shows progress.
        self.world = current_world()
        verbose = verbose and self.world.main
        super().__init__(out, command, STATE_FILE, resume=resume, verbose=verbose, stop=stop)
        self.fixed = tuple(fixed)
        self.epochs = epochs
        self.on_step = on_step
        self.bar = bar
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.generators: dict[str, torch.Generator] = {}
        self.settings: dict[str, Any] = {}

    @classmethod
    def of(
        cls,
        config: Any,
        command: str,
        fixed: Sequence[str],
        progress: bool,
        stop: threading.Event | None,
        on_step: StepCallback | None,
        bar: tuple[str, str, int] = ("", "loss", 4),
    ) -> TrainingRun:
        """The run a trainer's ``config`` describes (its ``out``, ``epochs`` and ``resume``);
        ``progress``, ``stop`` and ``on_step`` are those of ``train_classifier`` and
        ``train_fusion``."""
        return cls(
            config.out,
            command,
            fixed=fixed,
            epochs=config.epochs,
            resume=config.resume,
            verbose=progress,
            stop=stop,
            on_step=on_step,
            bar=bar,
        )

    @staticmethod
    def device(name: str | None) -> torch.device:
        """The device a trainer runs on: ``name``, or CUDA when available, else the CPU;
        under torchrun, CUDA without an index is the GPU numbered by ``LOCAL_RANK``."""
        from mlfem.distributed import device_for

        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
        return device_for(current_world(), device)

    def restore(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        generators: dict[str, torch.Generator],
        settings: Mapping[str, Any],
        **initial: Any,
    ) -> dict[str, Any]:
        """The progress to start from: the saved one when the folder holds a run (its model,
        optimizer and RNG states restored, its settings checked against ``settings``), else
        a fresh one (epoch 0, empty history, no best, plus ``initial``).

        The objects given here are what :meth:`save` writes from then on.
        """
        self.model, self.optimizer, self.generators = model, optimizer, generators
        self.settings = dict(settings)
        progress: dict[str, Any] = {
            "epoch": 0,
            "step": 0,
            "loss_sum": 0.0,
            "count": 0,
            "history": [],
            "best": None,
            **initial,
        }
        if self.holds_run:
            progress = load_training_state(self.state_path, model, optimizer, generators)
            self.check_settings(progress["settings"], self.settings, self.fixed)
            self.log(f"resuming from epoch {progress['epoch'] + 1}, step {progress['step']}")
        elif self.resume:
            self.log(f"nothing to resume in {self.out}: starting a new run")
        return progress

    def save(self, **progress: Any) -> None:
        """Write the state: model, optimizer, RNGs, ``progress`` and the run's settings."""
        assert self.model is not None and self.optimizer is not None, "restore() first"
        if not self.world.main:
            return  # every process holds the same state: rank 0 writes it
        save_training_state(
            self.state_path,
            self.model,
            self.optimizer,
            self.generators,
            {**progress, "settings": self.settings},
        )

    def train_epoch(
        self,
        progress: Mapping[str, Any],
        epoch: int,
        batches: Callable[[int, int], tuple[int, Iterable[Any]]],
        step: Callable[[Any], tuple[float, int]],
        **state: Any,
    ) -> float:
        """Run one epoch's optimizer steps; return the mean training loss per sample.

        Args:
            progress: where the run stands (an interrupted epoch resumes at its step).
            batches: ``batches(epoch, first_step)`` gives (the epoch's total number of
                batches, the batches from ``first_step`` on).
            step: one optimizer step on a batch; returns (loss, number of samples).
            state: further progress saved if the run is stopped (history, best...).

        Raises:
            TrainingInterrupted: ``stop`` was set (Ctrl-C); the state is saved first.
        """
        start = progress["step"] if epoch == progress["epoch"] else 0
        loss_sum = progress["loss_sum"] if start else 0.0
        count = progress["count"] if start else 0
        total, items = batches(epoch, start)
        label, metric, digits = self.bar
        at = start
        with progress_bar(
            total, start, f"{label}epoch {epoch + 1}/{self.epochs}", "batch", self.verbose
        ) as bar:
            for item in items:
                loss, size = step(item)
                at += 1
                loss_sum += loss * size
                count += size
                bar.set_postfix({metric: f"{loss_sum / count:.{digits}f}"})
                bar.update(1)
                if self.on_step is not None:
                    self.on_step(epoch, at, loss)
                if self.stop_asked():
                    self.save(epoch=epoch, step=at, loss_sum=loss_sum, count=count, **state)
                    raise TrainingInterrupted(self.state_path, epoch, at)
        return loss_sum / max(count, 1)

    def stop_asked(self) -> bool:
        """Whether a stop was asked for (under torchrun: on any process, so that all stop at
        the same step)."""
        return any_true(self.stop.is_set())

    def write_json(self, name: str, payload: Any) -> Path:
        """As :meth:`RunFolder.write_json`, by rank 0 only under torchrun."""
        path = self.out / name
        if self.world.main:
            super().write_json(name, payload)
        return path

    def end_epoch(
        self, epochs_done: int, history: list[dict[str, Any]], summary: str, **state: Any
    ) -> None:
        """After an epoch: save the state (at the start of the next one), write
        ``history.json`` and log ``summary``."""
        self.save(epoch=epochs_done, step=0, loss_sum=0.0, count=0, history=history, **state)
        self.write_json(HISTORY_FILE, history)
        self.log(summary)

    def interrupt_if_stopped(self, epochs_done: int) -> None:
        """Between epochs: raise :class:`TrainingInterrupted` if a stop was asked for
        (the state is already saved by :meth:`end_epoch`)."""
        if self.stop_asked():
            raise TrainingInterrupted(self.state_path, epochs_done, 0)
