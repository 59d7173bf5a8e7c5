"""The metrics of faithfulness to the network in an evaluation (deletion, insertion,
stability, the randomisation check: :mod:`mlfem.metrics` with ``needs="model"`` or
``needs="explainer"``).

:class:`NetworkScores` builds, per batch of one input size, the
:class:`mlfem.metrics.probe.ModelProbe` those metrics are given: the classifier, the model
inputs, the classes the maps explain (the top-1 of the trained network), a seed per image
(:func:`mlfem.evaluation.scoring.image_seed`), the evaluated methods on other inputs (run in
chunks of the run's batch size) and on the randomised networks of a
:class:`mlfem.metrics.randomisation.Cascade`, whose maps are computed once per batch and shared
by ``rand_spearman`` and ``rand_ssim``. The centre-bias reference row gets the metrics that
need only the model (its map, at the input's size, is deleted and inserted like a method's);
it has no explainer, so the others stay empty there.

A curve metric (the randomisation check) writes its value (the last stage) in its own column
and the earlier stages in ``<metric>@<stage>`` columns, so the curve travels in the rows of
``results.csv`` and is resumed and sharded with them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mlfem.evaluation.methods import MethodRunner
from mlfem.metrics.probe import ModelProbe

__all__ = ["CURVE_SEPARATOR", "NetworkScores", "applies_to_references", "check_metric_options", "is_network_metric"]

#: Separates a curve metric's name from its stage in a ``results.csv`` column.
CURVE_SEPARATOR = "@"


def is_network_metric(name: str) -> bool:
    """Whether ``name`` (a registered metric) scores the network rather than gaze."""
    from mlfem.metrics import resolve

    return resolve(name).uses_model


def applies_to_references(column: str) -> bool:
    """Whether a ``results.csv`` metric column has values on the reference rows: every gaze
    metric and the network metrics that need only the model (not an explainer)."""
    from mlfem.metrics import resolve

    try:
        return resolve(column.partition(CURVE_SEPARATOR)[0].removesuffix("_obs")).needs != "explainer"
    except ValueError:
        return True


def check_metric_options(metrics: Sequence[str], options: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse an option of a metric not computed, or one its function does not take.

    Raises:
        ValueError: naming the metric, the option and the options it has.
    """
    from mlfem.metrics import resolve

    for metric, given in options.items():
        spec = resolve(metric)
        if spec.name not in metrics:
            raise ValueError(f"metric option {metric}.{next(iter(given), '')}: {spec.name} is not among --metrics")
        accepted = [  # the keyword options, less those fixed at registration
            p.name for p in inspect.signature(spec.function).parameters.values()  # type: ignore[arg-type]
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in spec.options
        ]
        unknown = [key for key in given if key not in accepted]
        if unknown:
            raise ValueError(
                f"metric {spec.name!r} has no option {unknown[0]!r} ({spec.name}.{unknown[0]}); "
                f"its options: {', '.join(accepted) or 'none'}"
            )


class NetworkScores:
    """The network metrics of a run, bound to its methods (``runner``).

    Args:
        metrics: the run's metrics (only those scoring the network are used here).
        runner: the evaluated methods on the trained classifier.
        options: options per metric (``{"deletion": {"steps": 50}}``).
        seed: the run's seed (the randomised networks' weights).
        batch_size: inputs per forward pass when methods explain other inputs.
        multi_label: sigmoid rather than softmax probabilities.
        make_runner: builds the same methods on another model (the randomised copy).
    """

    def __init__(
        self, metrics: Sequence[str], runner: MethodRunner, *, options: Mapping[str, Mapping[str, Any]],
        seed: int, batch_size: int, multi_label: bool, make_runner: Callable[[torch.nn.Module], MethodRunner],
    ) -> None:
        from mlfem.metrics import resolve

        self.specs = [resolve(m) for m in metrics if resolve(m).uses_model]
        self.runner = runner
        self.options = {resolve(k).name: dict(v) for k, v in options.items()}
        self.batch_size = batch_size
        self.multi_label = multi_label
        self.cascade = None
        self.random_runner: MethodRunner | None = None
        if any(spec.curve for spec in self.specs):
            from mlfem.metrics.randomisation import Cascade

            self.cascade = Cascade(runner.model, seed)
            self.random_runner = make_runner(self.cascade.model)

    @classmethod
    def for_run(cls, config: Any, runner: MethodRunner, multi_label: bool) -> NetworkScores:
        """The network metrics of an evaluation (``config``: its
        :class:`~mlfem.evaluation.config.EvaluationConfig`), the randomised methods built like
        the run's."""

        def make_runner(network: torch.nn.Module) -> MethodRunner:
            return MethodRunner(
                network, config.methods, layers=config.layers, alpha=config.alpha, k=config.k,
                normalize=config.normalize, net=config.net, method_options=config.method_options,
            )

        return cls(
            config.metrics, runner, options=config.metric_options, seed=config.seed,
            batch_size=config.batch_size, multi_label=multi_label, make_runner=make_runner,
        )

    def add_scores(self, items: Sequence[Any], methods: Sequence[str], explained: Sequence[Any],
                   scores: list[dict[str, dict[str, Any]]], seeds: Sequence[int], references: bool) -> None:
        """Add the network metrics to the scores of a batch of prepared images (per group of
        one input size): the rows the scorer made (``scores[i][method]``) get their columns;
        ``seeds`` are the images' seeds, ``references`` whether the centre-bias row exists."""
        from mlfem.metrics.centre import centre_bias

        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, item in enumerate(items):
            by_shape.setdefault(tuple(item.input.shape), []).append(i)
        for members in by_shape.values():
            inputs = torch.stack([items[i].input for i in members]).to(self.runner.device)
            names = [m for m in methods if all(m in explained[i].maps for i in members)]
            maps = {m: torch.stack([explained[i].maps[m] for i in members]) for m in names}
            fixed = {}
            if references and self.model_only():
                height, width = inputs.shape[-2:]
                fixed["centre-bias"] = centre_bias(height, width).expand(len(members), -1, -1)
            targets = torch.stack([explained[i].logits for i in members]).argmax(dim=1)
            values = self.score(inputs, maps, fixed, targets, [seeds[i] for i in members])
            for name, per_image in values.items():
                for j, i in enumerate(members):
                    if name in scores[i]:
                        scores[i][name].update(per_image[j])

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    @property
    def stages(self) -> list[str]:
        return self.cascade.stages if self.cascade is not None else []

    def columns(self) -> list[str]:
        """The curve columns (``rand_spearman@classifier``, ...): every stage but the last,
        whose value is the metric's own column."""
        return [f"{s.name}{CURVE_SEPARATOR}{stage}" for s in self.specs if s.curve for stage in self.stages[:-1]]

    def model_only(self) -> list[str]:
        """The metrics a reference map gets (those that need no explainer)."""
        return [s.name for s in self.specs if s.needs == "model"]

    def close(self) -> None:
        if self.random_runner is not None:
            self.random_runner.close()

    def score(
        self, inputs: Tensor, maps: Mapping[str, Tensor], references: Mapping[str, Tensor],
        targets: Tensor, seeds: Sequence[int],
    ) -> dict[str, list[dict[str, float]]]:
        """Per method (and reference) one dict of column values per image of the batch.

        ``inputs`` (B, C, h, w) on the model's device; ``maps`` the methods' (B, h, w) maps,
        ``references`` the reference rows' maps (model-only metrics); ``targets`` (B,).
        """
        stored: dict[int, Mapping[str, Tensor]] = {}

        def randomised(stage: int) -> Mapping[str, Tensor]:
            if stage not in stored:
                assert self.cascade is not None and self.random_runner is not None
                if stage == 0:
                    stored.clear()
                    self.cascade.restore()
                for missing in range(max(stored, default=-1) + 1, stage + 1):
                    self.cascade.randomise(missing)
                    stored[missing] = self._explain(self.random_runner, inputs, targets, list(maps))
            return stored[stage]

        probe = ModelProbe(
            self.runner.model, inputs, targets.to(inputs.device), list(seeds), self.multi_label,
            explain=lambda x, t: self._explain(self.runner, x, t, list(maps)),
            stages=self.stages, randomised=randomised if self.cascade is not None else None,
        )
        batch = inputs.shape[0]
        out: dict[str, list[dict[str, float]]] = {name: [{} for _ in range(batch)] for name in [*maps, *references]}
        for spec in self.specs:
            scored = dict(maps) | (dict(references) if spec.needs == "model" else {})
            if not scored:
                continue
            values = spec.function(scored, probe, **spec.options, **self.options.get(spec.name, {}))  # type: ignore[misc]
            for name, tensor in values.items():
                rows = tensor.detach().to("cpu", torch.float64)
                for b in range(batch):
                    out[name][b].update(self._cells(spec, rows[b]))
        return out

    def _cells(self, spec: Any, value: Tensor) -> dict[str, float]:
        if not spec.curve:
            return {spec.name: float(value)}
        cells = {f"{spec.name}{CURVE_SEPARATOR}{stage}": float(v) for stage, v in zip(self.stages[:-1], value[:-1])}
        cells[spec.name] = float(value[-1])
        return cells

    def _explain(self, runner: MethodRunner, inputs: Tensor, targets: Tensor, methods: list[str]) -> dict[str, Tensor]:
        """The methods' maps of ``inputs``, in chunks of the run's batch size."""
        chunks: dict[str, list[Tensor]] = {m: [] for m in methods}
        for start in range(0, inputs.shape[0], self.batch_size):
            part = slice(start, start + self.batch_size)
            result = runner.run(inputs[part], methods, targets=targets[part].cpu())
            for m in methods:
                chunks[m].append(result.maps[m].float())
        return {m: torch.cat(v) for m, v in chunks.items()}
