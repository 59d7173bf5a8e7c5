"""What the training loops share: resumable state files, RNG states and clean interruption.

A training state is ``training_state.safetensors`` (model, optimizer and RNG tensors under
``model.``, ``optim.`` and ``rng.`` prefixes) plus ``training_state.json`` (progress, the
non-tensor parts of the optimizer state, RNG states of numpy and ``random``). Nothing is
pickled. It is written at the end of every epoch and when a run is interrupted, so a
resumed run continues from exactly where the interrupted one stopped.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# Re-exported: they moved to the run helper shared with the evaluation runner.
from mlfem._run import ignore_sigint, stop_on_sigint
from mlfem.models.checkpoint import CheckpointError, read_checkpoint, save_checkpoint

__all__ = [
    "STATE_FORMAT",
    "TrainingInterrupted",
    "derived_seed",
    "deterministic_algorithms",
    "ignore_sigint",
    "load_training_state",
    "restore_rng_states",
    "rng_states",
    "save_training_state",
    "stop_on_sigint",
]

STATE_FORMAT = "mlfem-training-state/1"


class TrainingInterrupted(Exception):
    """Training stopped on request (Ctrl-C or a stop event) after saving its state."""

    def __init__(self, state_path: Path, epoch: int, step: int) -> None:
        self.state_path = state_path
        self.epoch = epoch
        self.step = step
        super().__init__(
            f"training interrupted at epoch {epoch + 1}, step {step}; state saved to "
            f"{state_path}; resume with --resume (resume=True)"
        )


def derived_seed(seed: int, *parts: int | str) -> int:
    """A 63-bit seed derived from ``seed`` and labels, e.g. ``derived_seed(0, "shuffle", 3)``."""
    sequence = np.random.SeedSequence([seed, *(_as_int(part) for part in parts)])
    return int(sequence.generate_state(1, dtype=np.uint64)[0]) & ((1 << 63) - 1)


def _as_int(part: int | str) -> int:
    if isinstance(part, int):
        return part
    return int.from_bytes(part.encode(), "little") % (1 << 32)


def rng_states(
    generators: dict[str, torch.Generator],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every RNG a training step may touch: torch (CPU, CUDA), numpy, ``random``, ``generators``."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    for name, generator in generators.items():
        tensors[f"rng.gen.{name}"] = generator.get_state()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    info = {
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }
    return tensors, info


def restore_rng_states(
    tensors: dict[str, torch.Tensor], info: dict[str, Any], generators: dict[str, torch.Generator]
) -> None:
    """Inverse of :func:`rng_states`."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    for name, generator in generators.items():
        generator.set_state(tensors[f"rng.gen.{name}"])
    kind, keys, position, has_gauss, cached = info["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    version, internal, gauss_next = info["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, values in info["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": info["param_groups"]}


def save_training_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Generator],
    progress: dict[str, Any],
) -> None:
    """Write model, optimizer, RNG states and ``progress`` (JSON-able) to ``path``."""
    optim_tensors, optim_info = _flatten_optimizer(optimizer.state_dict())
    rng_tensors, rng_info = rng_states(generators)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(optim_tensors)
    tensors.update(rng_tensors)
    save_checkpoint(
        path,
        tensors,
        {"progress": progress, "optimizer": optim_info, "rng": rng_info},
        STATE_FORMAT,
    )


def load_training_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Generator],
) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote; returns the saved ``progress``."""
    try:
        tensors, metadata = read_checkpoint(path, STATE_FORMAT)
    except CheckpointError as error:
        raise CheckpointError(f"cannot resume: {error}") from error
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    optimizer.load_state_dict(_unflatten_optimizer(optim, metadata["optimizer"]))
    restore_rng_states(tensors, metadata["rng"], generators)
    return metadata["progress"]


@contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Deterministic cuDNN kernels and no autotuning during a run, restored after.

    The CPU kernels a CNN training step uses are deterministic already;
    ``torch.use_deterministic_algorithms`` is not called because importing what it needs
    costs seconds and it does not change CPU results.
    """
    previous = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if enabled:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous
