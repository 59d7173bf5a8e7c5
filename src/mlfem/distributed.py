"""Runs under ``torchrun``: which process this is, and the few collectives mlfem needs.

``torchrun --nproc-per-node N -m mlfem COMMAND ...`` starts N copies of the command with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and the rendezvous address) in their
environment. :func:`current_world` reads them; without them (a plain ``mlfem`` command) it is
a world of one process and nothing here does any communication, so single-process runs are
exactly what they were.

:func:`join` starts the process group once per process: ``nccl`` when the command runs on
CUDA (each process on the GPU numbered by its ``LOCAL_RANK``), ``gloo`` on the CPU. The
collectives (:func:`barrier`, :func:`broadcast`, :func:`all_gather`, :func:`any_true`) are
no-ops in a world of one. Imports nothing above torch, so every layer may use it.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

__all__ = [
    "World",
    "all_gather",
    "any_true",
    "barrier",
    "broadcast",
    "current_world",
    "device_for",
    "join",
    "leave",
    "on_main_first",
    "session",
    "sum_all",
]

T = TypeVar("T")

#: How long a collective waits for the slowest process (a rank that crashed makes the
#: others fail after this; torchrun usually stops them sooner).
TIMEOUT = datetime.timedelta(minutes=int(os.environ.get("MLFEM_DIST_TIMEOUT_MIN", "30")))


@dataclass(frozen=True)
class World:
    """Where this process stands among those ``torchrun`` started."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """More than one process: shards, collectives and a merge are needed."""
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the shared files (checkpoints, merged results)."""
        return self.rank == 0


def current_world() -> World:
    """The world torchrun's environment variables describe (one process without them).

    Raises:
        ValueError: the variables are inconsistent (naming them and their values).
    """
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    values = {name: os.environ.get(name) for name in names}
    if values["WORLD_SIZE"] is None:
        return World()
    try:
        rank, size = int(values["RANK"] or 0), int(values["WORLD_SIZE"] or 1)
        local = int(values["LOCAL_RANK"] or 0)
    except ValueError:
        raise ValueError(f"torchrun environment is not integers: {values}") from None
    if size < 1 or not 0 <= rank < size or local < 0:
        raise ValueError(f"inconsistent torchrun environment: {values}")
    return World(rank, size, local)


def device_for(world: World, device: torch.device) -> torch.device:
    """The device of this process: a CUDA device without an index becomes the one numbered
    by ``LOCAL_RANK`` (one GPU per process); an explicit index or the CPU is kept."""
    if world.distributed and device.type == "cuda" and device.index is None:
        return torch.device("cuda", world.local_rank)
    return device


def join(world: World, device: torch.device) -> bool:
    """Start this process's group (nothing in a world of one, or when the caller has one
    already): ``nccl`` on CUDA, ``gloo`` otherwise. The rendezvous comes from torchrun's
    ``MASTER_ADDR``/``MASTER_PORT``. Returns whether it started one; it is ended when the
    process exits."""
    import torch.distributed as dist

    if not world.distributed or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", rank=world.rank, world_size=world.size, timeout=TIMEOUT)
    else:
        dist.init_process_group("gloo", rank=world.rank, world_size=world.size, timeout=TIMEOUT)
    atexit.register(leave)
    return True


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[World]:
    """This process's world, its group started (on ``device``) if it is not yet. The group
    then lasts as long as the process (:func:`join`): a second group under the same torchrun
    rendezvous would wait for ever, so several commands in one process share the first."""
    world = current_world()
    join(world, device_for(world, device))
    yield world


def leave() -> None:
    """End this process's group (when there is one)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait until every process is here."""
    import torch.distributed as dist

    if _active():
        dist.barrier()


def broadcast(value: T, src: int = 0) -> T:
    """Rank ``src``'s ``value`` (any picklable object), on every process."""
    import torch.distributed as dist

    if not _active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather(value: T) -> list[T]:
    """Every process's ``value`` (any picklable object), in rank order."""
    import torch.distributed as dist

    if not _active():
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def _collective_device() -> torch.device:
    """Where tensors of collectives live: this process's GPU under nccl, else the CPU."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_true(flag: bool) -> bool:
    """Whether ``flag`` is true on any process (e.g. a stop asked for on one of them)."""
    return sum_all([1.0 if flag else 0.0])[0] > 0


def sum_all(values: list[float]) -> list[float]:
    """Element-wise sums of ``values`` over every process (one ``all_reduce``, float64)."""
    import torch.distributed as dist

    if not _active():
        return [float(v) for v in values]
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def on_main_first(world: World, work: Callable[[], T]) -> T:
    """Run ``work`` on rank 0, then (after a barrier) on the others: for steps that write a
    shared file the others then only read (a splits file, a cache index)."""
    if world.main:
        result = work()
        barrier()
        return result
    barrier()
    return work()
