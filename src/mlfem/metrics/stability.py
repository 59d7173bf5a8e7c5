"""Stability: a local Lipschitz estimate of the explanation (Alvarez-Melis and Jaakkola 2018,
"On the robustness of interpretability methods"; the stability metric Zhukov, Benois-Pineau and
Giot (2023) report for FEM and MLFEM).

For an image ``x`` with map ``e(x)``, ``copies`` noisy copies ``x' = x + n`` are drawn, with
``n`` Gaussian of standard deviation ``noise`` in the model's input space (after the
normalisation: 0.1 is about 6 grey levels of an ImageNet-normalised image), and

    L(x) = max over the copies of ||e(x') - e(x)||_2 / ||x' - x||_2

is the estimate (the maximum of a sampled ball, as in Alvarez-Melis and Jaakkola's sampling
estimate and Quantus' ``LocalLipschitzEstimate``). The maps are the evaluation's, in [0, 1]
at the model's input resolution; lower is more stable. The noise of an image comes from a
generator seeded with the image's seed and is the same for every method, so all methods are
judged on the same copies and an image's value does not depend on its batch.

Cost: ``copies`` times the method's own cost per image (10 forward passes of a FEM-family
method by default; the FEM family shares one pass for all its methods).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from mlfem.metrics.probe import ModelProbe, image_generator
from mlfem.metrics.registry import register_metric

__all__ = ["lipschitz_estimate", "local_lipschitz", "noisy_copies"]

DEFAULT_NOISE = 0.1
DEFAULT_COPIES = 10


def noisy_copies(inputs: Tensor, seeds: Sequence[int], *, noise: float = DEFAULT_NOISE,
                 copies: int = DEFAULT_COPIES) -> Tensor:
    """(B, copies, C, h, w) copies of each input plus Gaussian noise of std ``noise``, drawn on
    the CPU from a generator seeded with the image's seed (the same on every device)."""
    if noise <= 0:
        raise ValueError(f"noise must be positive, got {noise}")
    if int(copies) < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    draws = [
        torch.randn((int(copies), *inputs.shape[1:]), generator=image_generator(seed), dtype=torch.float32)
        for seed in seeds
    ]
    return inputs[:, None] + noise * torch.stack(draws).to(inputs.device, inputs.dtype)


def lipschitz_estimate(maps: Tensor, noisy_maps: Tensor, inputs: Tensor, noisy_inputs: Tensor) -> Tensor:
    """(B,) the largest ||e(x') - e(x)|| / ||x' - x|| over the copies.

    ``maps`` (B, h, w), ``noisy_maps`` (B, N, h, w), ``inputs`` (B, C, h, w) and
    ``noisy_inputs`` (B, N, C, h, w). NaN for an image whose maps are not finite.
    """
    batch, n = noisy_maps.shape[:2]
    numerator = (noisy_maps.double() - maps.double()[:, None]).reshape(batch, n, -1).norm(dim=2)
    denominator = (noisy_inputs.double() - inputs.double()[:, None]).reshape(batch, n, -1).norm(dim=2)
    return (numerator / denominator).amax(dim=1)


def local_lipschitz(
    explain: Callable[[Tensor], Tensor], inputs: Tensor, maps: Tensor | None = None, *,
    seeds: Sequence[int] | None = None, noise: float = DEFAULT_NOISE, copies: int = DEFAULT_COPIES,
) -> Tensor:
    """(B,) local Lipschitz estimate of ``explain`` ((N, C, h, w) inputs -> (N, h, w) maps)
    around each of ``inputs``; ``maps`` are ``explain(inputs)`` when not given, ``seeds`` one
    per image (default 0, 1, ...)."""
    seeds = list(range(inputs.shape[0])) if seeds is None else list(seeds)
    if maps is None:
        maps = explain(inputs)
    noisy = noisy_copies(inputs, seeds, noise=noise, copies=copies)
    batch, n = noisy.shape[:2]
    noisy_maps = explain(noisy.reshape(batch * n, *inputs.shape[1:]))
    return lipschitz_estimate(maps, noisy_maps.reshape(batch, n, *maps.shape[1:]), inputs, noisy)


@register_metric(
    "stability", needs="explainer", higher_is_better=False,
    cost="copies x the method's (10 by default)",
    summary="local Lipschitz estimate of the map (Alvarez-Melis & Jaakkola): max change per input change",
)
def stability_metric(
    maps: Mapping[str, Tensor], probe: ModelProbe, *, noise: float = DEFAULT_NOISE,
    copies: int = DEFAULT_COPIES,
) -> dict[str, Tensor]:
    """The ``stability`` metric of the evaluation: every method on the same noisy copies."""
    if probe.explain is None:
        raise ValueError("stability needs probe.explain (the methods on other inputs)")
    inputs = probe.inputs
    noisy = noisy_copies(inputs, probe.seeds, noise=noise, copies=copies)
    # One image's copies at a time: the passes never mix images, so a value does not depend
    # on the batch (a batched pass may differ in the last bits).
    redone: dict[str, list[Tensor]] = {name: [] for name in maps}
    for b in range(inputs.shape[0]):
        explained = probe.explain(noisy[b], probe.targets[b].expand(noisy.shape[1]))
        for name in maps:
            redone[name].append(explained[name])
    out = {}
    for name, m in maps.items():
        noisy_maps = torch.stack(redone[name]).to(m.device)
        out[name] = lipschitz_estimate(m, noisy_maps, inputs.to(m.device), noisy.to(m.device))
    return out
