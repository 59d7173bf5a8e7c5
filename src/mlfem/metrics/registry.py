"""The metric registry: each metric is registered with the function that computes it.

A metric module decorates its public function::

    @register_metric("nss", needs="fix", higher_is_better=True, summary="mean z-score at fixations")
    def nss(pred, fix): ...

and :func:`mlfem.metrics.compute` / :func:`mlfem.metrics.evaluate` call it through its
:class:`MetricSpec`, with no per-metric code of their own.  The function receives
``(pred, target)`` (``target`` the GFDM for ``needs="gt"``, the fixation count map for
``needs="fix"``), the fixed ``options`` it was registered with, and those of the evaluation's
shared arguments it names in ``uses`` (``"seed"``, ``"other_fix"``, ``"baseline"``).

Metrics of the explanation's faithfulness to the network, not to gaze, declare what they need
of it instead of a target: ``needs="model"`` (the classifier and its inputs: deletion,
insertion) or ``needs="explainer"`` (also the method, to explain other inputs or another
network: stability, the randomisation check). Their function is called once per batch for
every method at once, as ``function(maps, probe, **options)`` with ``maps`` a dict of method
name to (B, h, w) maps at the model's input resolution and ``probe`` a
:class:`mlfem.metrics.probe.ModelProbe`; it returns a dict of (B,) values per method, or
(B, S) for a ``curve`` metric (one value per stage of ``probe.stages``, the last one the
metric's own value). ``cost`` says in words how many forward passes it takes per image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar

import torch

__all__ = ["CONTEXT", "GAZE_NEEDS", "METRICS", "MODEL_NEEDS", "MetricSpec", "register_metric", "resolve"]

#: The shared arguments of :func:`mlfem.metrics.compute` a metric may ask for in ``uses``.
CONTEXT: tuple[str, ...] = ("seed", "other_fix", "baseline")
#: What a metric scored against human gaze needs: a density map or a fixation count map.
GAZE_NEEDS: tuple[str, ...] = ("gt", "fix")
#: What a metric of faithfulness to the network needs: the model, or the model and the method.
MODEL_NEEDS: tuple[str, ...] = ("model", "explainer")

MetricFunction = Callable[..., torch.Tensor]
F = TypeVar("F", bound=MetricFunction)


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: what it needs, which direction is better, and its function.

    ``needs`` is ``"gt"`` (a density map) or ``"fix"`` (a fixation count map), and
    ``function`` is called as ``function(pred, target, **options, **{name: context[name] for
    name in uses})``; or ``needs`` is ``"model"`` / ``"explainer"`` and ``function`` is called
    as ``function(maps, probe, **options)`` (see the module's docstring). ``aliases`` are other
    names :func:`resolve` accepts; ``cost`` is the forward passes it takes per image, in words;
    ``curve`` says the function returns one value per stage of ``probe.stages``.
    """

    name: str
    needs: str
    higher_is_better: bool
    summary: str
    function: MetricFunction | None = field(default=None, compare=False, repr=False)
    uses: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    aliases: tuple[str, ...] = ()
    cost: str = "none (no forward pass)"
    curve: bool = False

    @property
    def uses_model(self) -> bool:
        """Whether the metric scores faithfulness to the network (needs the model), not gaze."""
        return self.needs in MODEL_NEEDS


#: Every registered metric by name, in registration order.
METRICS: dict[str, MetricSpec] = {}
_ALIASES: dict[str, str] = {}


def register_metric(
    name: str,
    *,
    needs: Literal["gt", "fix", "model", "explainer"],
    higher_is_better: bool,
    summary: str,
    uses: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
    cost: str | None = None,
    curve: bool = False,
    **options: Any,
) -> Callable[[F], F]:
    """Register the decorated function as metric ``name``; the function is returned unchanged.

    Args:
        name: the metric's name (a ``results.csv`` column; lower case).
        needs: ``"gt"`` for a density map, ``"fix"`` for a fixation count map; ``"model"``
            or ``"explainer"`` for a metric of faithfulness to the network.
        higher_is_better: the direction analyses and figures use.
        summary: one line for listings.
        uses: shared arguments of :func:`mlfem.metrics.compute` passed on by keyword
            (some of :data:`CONTEXT`).
        aliases: other names accepted by :func:`resolve`.
        cost: forward passes per image and method, in words (``mlfem methods --metrics``).
        curve: the function returns (B, S) values, one per stage of ``probe.stages``.
        **options: fixed keyword arguments, so one function can back several metrics
            (``sim`` and ``sim_mit`` differ by ``variant``).
    """
    if needs not in GAZE_NEEDS + MODEL_NEEDS:
        raise ValueError(f"needs must be one of {GAZE_NEEDS + MODEL_NEEDS}, got {needs!r}")
    if uses and needs in MODEL_NEEDS:
        raise ValueError("a metric of the network (needs='model'/'explainer') takes no shared arguments")
    unknown = [u for u in uses if u not in CONTEXT]
    if unknown:
        raise ValueError(f"unknown shared arguments {unknown}; expected some of {CONTEXT}")

    def decorate(function: F) -> F:
        taken = [n for n in (name, *aliases) if n in METRICS or n in _ALIASES]
        if taken:
            raise ValueError(f"metric name(s) {taken} already registered")
        METRICS[name] = MetricSpec(
            name, needs, higher_is_better, summary, function, tuple(uses),
            MappingProxyType(dict(options)), tuple(aliases),
            cost if cost is not None else MetricSpec.cost, curve,
        )
        _ALIASES.update(dict.fromkeys(aliases, name))
        return function

    return decorate


def resolve(name: str) -> MetricSpec:
    """The :class:`MetricSpec` of ``name`` (case-insensitive; aliases such as ``cc`` accepted)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[key]
