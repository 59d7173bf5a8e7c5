"""Data-parallel training under ``torchrun`` that follows the single-process run step by step.

A single process takes the epoch's batches (seeded order) one after another and averages the
loss over each batch. Under ``torchrun`` every process walks the SAME global batches in the
same order; process ``r`` computes the contiguous slice :func:`chunk` of each one, and:

* the loss of a slice is its SUM divided by the global batch's count (a scalar
  ``all_reduce``), times the number of processes: DistributedDataParallel averages the
  gradients over processes, so the step gets the gradient of the global batch mean, as one
  process does, whatever the slices' sizes;
* random augmentation draws the whole global batch's numbers and keeps its rows, so every
  process's generator stays in the single-process state (rank 0 saves it);
* batch normalisation uses the statistics of the global batch (:class:`GlobalBatchNorm` on
  the CPU, ``torch.nn.SyncBatchNorm`` on CUDA), running statistics included.

What differs is the order of floating-point sums (gradients reduced across processes, loss
and statistics summed in pieces), so the weights equal those of one process up to rounding:
``docs/scale.md`` gives the tolerance the tests check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Sampler

from mlfem.distributed import World
from mlfem.training._data import EpochBatches

__all__ = [
    "GlobalBatchNorm", "LocalBatches", "chunk", "local_batches", "synchronize_batch_norm", "wrap",
]


def chunk(n: int, world: World) -> slice:
    """Process ``world.rank``'s contiguous share of ``n`` items (sizes differ by at most one;
    rank order is item order, so concatenating the shares gives the items back)."""
    base, extra = divmod(n, world.size)
    start = world.rank * base + min(world.rank, extra)
    return slice(start, start + base + (1 if world.rank < extra else 0))


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch, for the CPU (``gloo``), where
    ``torch.nn.SyncBatchNorm`` is not supported: per-channel sums and sums of squares
    (float64) are added over processes by a differentiable ``all_reduce``, so gradients flow
    to every process's inputs. Same parameters and buffers as the layer it replaces (the
    state dict is unchanged). In eval mode, or in one process, it is plain batch norm."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, input: Tensor) -> Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        wide = input.double()
        count = wide.new_tensor([input.numel() / channels])
        local = torch.cat([wide.sum(dims), (wide * wide).sum(dims), count])
        totals = _SumOverProcesses.apply(local)
        n = totals[-1]
        mean = totals[:channels] / n
        var = (totals[channels : 2 * channels] / n - mean * mean).clamp_min(0)
        shape = [1, channels] + [1] * (input.dim() - 2)
        scale = torch.rsqrt(var + self.eps).to(input.dtype)
        out = (input - mean.to(input.dtype).view(shape)) * scale.view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None \
                    else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * n / torch.clamp(n - 1, min=1)
                kind = self.running_mean.dtype
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach().to(kind))
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.to(kind))
        return out


class _SumOverProcesses(torch.autograd.Function):
    """``all_reduce`` (sum) with its gradient: the sum of every process's gradient, since
    each process's output depends on every process's input."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        import torch.distributed as dist

        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        import torch.distributed as dist

        out = grad.clone()
        dist.all_reduce(out)
        return out


def synchronize_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every batch-norm layer computing global-batch statistics (in place
    where possible; parameters and buffers kept, so checkpoints are unchanged)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in list(model.named_children()):
        batch_norm = isinstance(child, nn.modules.batchnorm._BatchNorm)
        if batch_norm and not isinstance(child, GlobalBatchNorm):
            child.__class__ = GlobalBatchNorm  # same attributes, parameters and buffers
        else:
            synchronize_batch_norm(child, device)
    return model


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``model`` for the training steps: itself in one process, else (its batch norms made
    global) in DistributedDataParallel on this process's device."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    model = synchronize_batch_norm(model, device)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


class LocalBatches(Sampler[list[int]]):
    """This process's :func:`chunk` of each of the global ``batches`` (an
    :class:`~mlfem.training._data.EpochBatches`), in the same order; ``total`` is theirs."""

    def __init__(self, batches: EpochBatches, world: World) -> None:
        self.batches = batches
        self.world = world
        small = [len(b) for b in batches.batches if len(b) < world.size]
        if small:
            raise ValueError(
                f"a batch of the epoch has {small[0]} sample(s), fewer than the {world.size} "
                "torchrun processes: choose a batch size (and number of processes) such that "
                "every batch, the last one included, has at least one sample per process"
            )

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch[chunk(len(batch), self.world)]

    def __len__(self) -> int:
        return len(self.batches)

    @property
    def total(self) -> int:
        return self.batches.total


def local_batches(batches: EpochBatches, world: World) -> Sampler[list[int]]:
    """``batches`` themselves in one process, else this process's :class:`LocalBatches`."""
    return LocalBatches(batches, world) if world.distributed else batches
