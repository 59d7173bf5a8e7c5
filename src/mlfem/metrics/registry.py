"""The metric registry: each metric is registered with the function that computes it.

A metric module decorates its public function::

    @register_metric("nss", needs="fix", higher_is_better=True, summary="mean z-score at fixations")
    def nss(pred, fix): ...

and :func:`mlfem.metrics.compute` / :func:`mlfem.metrics.evaluate` call it through its
:class:`MetricSpec`, with no per-metric code of their own.  The function receives
``(pred, target)`` (``target`` the GFDM for ``needs="gt"``, the fixation count map for
``needs="fix"``), the fixed ``options`` it was registered with, and those of the evaluation's
shared arguments it names in ``uses`` (``"seed"``, ``"other_fix"``, ``"baseline"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar

import torch

__all__ = ["CONTEXT", "METRICS", "MetricSpec", "register_metric", "resolve"]

#: The shared arguments of :func:`mlfem.metrics.compute` a metric may ask for in ``uses``.
CONTEXT: tuple[str, ...] = ("seed", "other_fix", "baseline")

MetricFunction = Callable[..., torch.Tensor]
F = TypeVar("F", bound=MetricFunction)


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: what it needs, which direction is better, and its function.

    ``needs`` is ``"gt"`` (a density map) or ``"fix"`` (a fixation count map). ``function``
    is called as ``function(pred, target, **options, **{name: context[name] for name in
    uses})``; ``aliases`` are other names :func:`resolve` accepts.
    """

    name: str
    needs: str
    higher_is_better: bool
    summary: str
    function: MetricFunction | None = field(default=None, compare=False, repr=False)
    uses: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    aliases: tuple[str, ...] = ()


#: Every registered metric by name, in registration order.
METRICS: dict[str, MetricSpec] = {}
_ALIASES: dict[str, str] = {}


def register_metric(
    name: str,
    *,
    needs: Literal["gt", "fix"],
    higher_is_better: bool,
    summary: str,
    uses: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
    **options: Any,
) -> Callable[[F], F]:
    """Register the decorated function as metric ``name``; the function is returned unchanged.

    Args:
        name: the metric's name (a ``results.csv`` column; lower case).
        needs: ``"gt"`` for a density map, ``"fix"`` for a fixation count map.
        higher_is_better: the direction analyses and figures use.
        summary: one line for listings.
        uses: shared arguments of :func:`mlfem.metrics.compute` passed on by keyword
            (some of :data:`CONTEXT`).
        aliases: other names accepted by :func:`resolve`.
        **options: fixed keyword arguments, so one function can back several metrics
            (``sim`` and ``sim_mit`` differ by ``variant``).
    """
    if needs not in ("gt", "fix"):
        raise ValueError(f"needs must be 'gt' or 'fix', got {needs!r}")
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
