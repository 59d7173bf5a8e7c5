"""The model-randomisation sanity check (Adebayo et al. 2018, "Sanity checks for saliency
maps"): does the map change when the network's learned weights are destroyed?

:class:`Cascade` re-initialises a copy of the classifier from the top down, cumulatively:
stage 1 re-initialises the head (everything after the last block), stage 2 the last block as
well, and so on down to the stem. Stages are the model's parametrised top-level children in
registration order, a container of blocks (``nn.Sequential``, ``nn.ModuleList``) giving one
stage per block, and a stage holding only normalisation layers joining the stage before it
(EfficientNet-Lite0: ``classifier``, ``conv_head``, ``blocks.6`` ... ``blocks.0``,
``conv_stem``). Each module gets its own initialiser (``reset_parameters``), drawn from a
generator seeded by the run's seed and the stage, so every image and batch sees the same
randomised networks.

At each stage the map of the same image and class is compared with the trained network's by
the Spearman rank correlation of the pixels (ties get their average rank) and by SSIM (Wang
et al. 2004: Gaussian window of sigma 1.5 and size 11, data range 1, K1 0.01, K2 0.03, mean over
the windows inside the map). A map that keeps a high similarity once every stage is
re-initialised does not depend on what the network learned: the report flags it. Lower is
better. The metric's value is the similarity at the last stage (all weights re-initialised);
the curve has one value per stage.

Cost: (number of stages) x the method's cost per image (10 stages for EfficientNet-Lite0);
``rand_spearman`` and ``rand_ssim`` share the same randomised maps.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlfem.metrics.probe import ModelProbe
from mlfem.metrics.registry import register_metric

__all__ = ["Cascade", "cascade_stages", "spearman", "ssim"]

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
_SSIM_SIGMA, _SSIM_SIZE, _K1, _K2 = 1.5, 11, 0.01, 0.03


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _only_norms(module: nn.Module) -> bool:
    owners = [m for m in module.modules() if any(True for _ in m.parameters(recurse=False))]
    return bool(owners) and all(isinstance(m, _NORMS) for m in owners)


def cascade_stages(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The randomisation stages of ``model``, top down: (name, modules) pairs."""
    units: list[tuple[str, list[nn.Module]]] = []
    for name, child in model.named_children():
        if not _has_parameters(child):
            continue
        parts = (
            [(f"{name}.{n}", c) for n, c in child.named_children() if _has_parameters(c)]
            if isinstance(child, nn.Sequential | nn.ModuleList) else [(name, child)]
        )
        for part_name, part in parts:
            if units and _only_norms(part):
                units[-1][1].append(part)  # a normalisation belongs to the layer it follows
            else:
                units.append((part_name, [part]))
    if not units and _has_parameters(model):
        units = [("model", [model])]
    return units[::-1]


def _stage_seed(seed: int, stage: int) -> int:
    digest = hashlib.sha256(f"randomisation:{int(seed)}:{stage}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _reinitialise(modules: Sequence[nn.Module], seed: int) -> None:
    """Each module's own initialiser, with the global RNGs forked and seeded (the initialisers
    draw from them); a parameter no initialiser covers is drawn from N(0, its std)."""
    devices = sorted({p.device.index or 0 for m in modules for p in m.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for module in modules:
            covered: set[int] = set()
            for sub in module.modules():
                reset = getattr(sub, "reset_parameters", None)
                if callable(reset):
                    reset()
                    covered.update(id(p) for p in sub.parameters())
            for parameter in module.parameters():
                if id(parameter) not in covered:
                    std = float(parameter.std()) if parameter.numel() > 1 else 0.0
                    parameter.normal_(0.0, std if std > 0 else 0.02)


class Cascade:
    """A copy of ``model`` whose stages are re-initialised top down (see the module docstring).

    Use :meth:`restore` to give the copy the trained weights again, then :meth:`randomise`
    with ``k = 0, 1, ...`` in order: after ``randomise(k)`` stages ``0..k`` are random.
    The copy is made once; its re-initialisation is seeded by ``seed`` and the stage only.
    """

    def __init__(self, model: nn.Module, seed: int = 0) -> None:
        with torch.inference_mode(False):
            self.model = copy.deepcopy(model).eval()
            self._trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.stages = [name for name, _ in cascade_stages(self.model)]
        self._modules = [modules for _, modules in cascade_stages(self.model)]
        self.seed = int(seed)
        self._done = -1

    def restore(self) -> None:
        """The trained weights (and normalisation statistics) back in the copy."""
        with torch.inference_mode(False), torch.no_grad():
            self.model.load_state_dict(self._trained)
        self._done = -1

    def randomise(self, stage: int) -> None:
        """Re-initialise stage ``stage`` (the stages above it must be random already)."""
        if stage != self._done + 1:
            raise ValueError(f"stages are randomised in order: {self._done + 1} next, not {stage}")
        with torch.inference_mode(False):
            _reinitialise(self._modules[stage], _stage_seed(self.seed, stage))
        self._done = stage


def _average_ranks(x: Tensor) -> Tensor:
    """(B, N) ranks 0..N-1 of each row's values, ties sharing their average rank."""
    values, order = torch.sort(x, dim=1, stable=True)
    ranks = torch.empty_like(x, dtype=torch.float64)
    for b in range(x.shape[0]):
        _, counts = torch.unique_consecutive(values[b], return_counts=True)
        ends = counts.cumsum(0)
        average = (ends - counts).double() + (counts.double() - 1) / 2
        ranks[b, order[b]] = average.repeat_interleave(counts)
    return ranks


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """(B,) Spearman rank correlation of (B, h, w) maps ``a`` and ``b`` (NaN when one is
    constant)."""
    ra = _average_ranks(a.reshape(a.shape[0], -1).float())
    rb = _average_ranks(b.reshape(b.shape[0], -1).float().to(a.device))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    denominator = ra.norm(dim=1) * rb.norm(dim=1)
    return torch.where(denominator > 0, (ra * rb).sum(1) / denominator, math.nan)


def ssim(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """(B,) mean SSIM of (B, h, w) maps (Gaussian window, sigma 1.5, size 11; windows
    inside the map only). Maps smaller than the window are compared with one smaller window."""
    x = a.double()[:, None]
    y = b.double().to(x.device)[:, None]
    size = min(_SSIM_SIZE, x.shape[-1], x.shape[-2])
    offsets = torch.arange(size, dtype=torch.float64, device=x.device) - (size - 1) / 2
    g = torch.exp(-(offsets**2) / (2 * _SSIM_SIGMA**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :])[None, None]

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.mean(dim=(1, 2, 3))


def _similarity_curves(maps: Mapping[str, Tensor], probe: ModelProbe, similarity) -> dict[str, Tensor]:
    if probe.randomised is None or not probe.stages:
        raise ValueError("the randomisation check needs probe.randomised and probe.stages")
    curves: dict[str, list[Tensor]] = {name: [] for name in maps}
    for stage in range(len(probe.stages)):
        randomised = probe.randomised(stage)
        for name, m in maps.items():
            curves[name].append(similarity(m.float(), randomised[name].float().to(m.device)).cpu())
    return {name: torch.stack(values, dim=1) for name, values in curves.items()}


_COST = "stages x the method's (10: Lite0)"


@register_metric("rand_spearman", needs="explainer", higher_is_better=False, curve=True, cost=_COST,
                 summary="model randomisation: Spearman correlation of the map with the randomised network's")
def rand_spearman_metric(maps: Mapping[str, Tensor], probe: ModelProbe) -> dict[str, Tensor]:
    """Spearman similarity at each cascade stage (:class:`Cascade`), per method: (B, stages)."""
    return _similarity_curves(maps, probe, spearman)


@register_metric("rand_ssim", needs="explainer", higher_is_better=False, curve=True, cost=_COST,
                 summary="model randomisation: SSIM of the map with the randomised network's")
def rand_ssim_metric(maps: Mapping[str, Tensor], probe: ModelProbe) -> dict[str, Tensor]:
    """SSIM at each cascade stage (:class:`Cascade`), per method: (B, stages)."""
    return _similarity_curves(maps, probe, ssim)
