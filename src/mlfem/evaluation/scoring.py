"""Scoring one batch of an evaluation: each image, read and preprocessed in a DataLoader worker
into a :class:`PreparedImage`, gets every pending method's map, every metric against its GFDM
(and fixations), the reference rows (centre bias, human ceiling), the per-observer columns,
and its gallery entry; the result is the batch's ``results.csv`` rows.

Fixations travel as one :class:`mlfem.gaze.Fixations` per image from the worker to the
metrics: read once from the sample, never converted again. The human ceiling and the
per-observer targets blur them with the sigma the dataset declares
(:func:`mlfem.evaluation.config.gfdm_settings`).

Randomised metrics (the sampled AUCs) draw from a generator seeded per image
(:func:`image_seed`: the run's seed and the image's id), so an image's values do not depend
on the batch it is in nor on which of its rows a resumed run recomputes. The shuffled AUC's
negatives come from the split's :class:`mlfem.evaluation.pool.FixationPool`. Metrics of
faithfulness to the network (deletion, insertion, stability, the randomisation check) are
scored by :class:`mlfem.evaluation.faithfulness.NetworkScores` on the maps at the model's
input resolution; they have no per-observer column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mlfem.evaluation.config import EvaluationConfig, EvaluationError, gfdm_settings
from mlfem.evaluation.methods import REFERENCE_METHODS, MethodRunner
from mlfem.evaluation.model import EvaluatedModel, is_correct, predictions
from mlfem.evaluation.prepared import PreparedImage, PreparedImages, Skip, as_list, image_seed

if TYPE_CHECKING:
    from mlfem.gaze import ObserverMaps

# PreparedImage, PreparedImages, Skip, as_list and image_seed live in mlfem.evaluation.prepared
# and are re-exported here for the runner and older imports.
__all__ = ["PreparedImage", "PreparedImages", "Scorer", "Skip", "as_list", "image_seed"]

#: Metric values of one row (``None``: not applicable, an empty cell).
Scores = dict[str, float | None]



def _select(maps: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """``maps[rows]``, without the copy when ``rows`` are all of them in order (the usual case)."""
    return maps if rows == list(range(maps.shape[0])) else maps[rows]




@dataclass
class _Explained:
    """One image's maps per method (h, w), per-layer maps (L, h, w) if any, and logits (K,)."""

    maps: dict[str, torch.Tensor]
    layers: torch.Tensor | None
    logits: torch.Tensor


class Scorer:
    """The methods, metrics and references of a run, bound to its model and dataset."""

    def __init__(self, config: EvaluationConfig, model: EvaluatedModel, dataset: Any) -> None:
        self.config = config
        self.metrics = list(config.metrics)
        from mlfem.metrics import resolve

        # Metrics against gaze; the others question the network (self.network).
        self.gaze_metrics = [m for m in self.metrics if not resolve(m).uses_model]
        # Metrics that draw random numbers: computed image by image, seeded per image.
        self.random_metrics = [m for m in self.gaze_metrics if "seed" in resolve(m).uses]
        settings = gfdm_settings(dataset)
        self.sigma, self.collapse = settings.sigma, settings.collapse
        self.multi_label, self.class_names, self.labels_comparable = label_space(model, dataset)
        try:
            self.runner = MethodRunner(
                model.model, config.methods, layers=config.layers, alpha=config.alpha, k=config.k,
                normalize=config.normalize, net=config.net, method_options=config.method_options,
            )
        except (ValueError, TypeError) as error:
            raise EvaluationError(str(error)) from error
        self.gradient_free = not self.runner.gradient_methods()
        self.network = None
        if len(self.gaze_metrics) < len(self.metrics):
            from mlfem.evaluation.faithfulness import NetworkScores

            self.network = NetworkScores.for_run(config, self.runner, self.multi_label)
        self.pool = None
        if "sauc" in self.metrics:
            from mlfem.evaluation.pool import FixationPool

            self.pool = FixationPool.from_dataset(dataset)
        self.observer_protocol = self._observer_protocol_applies(dataset)
        self.no_ceiling = 0  # images with fewer than two observers
        self._observer_buffer: torch.Tensor | None = None  # reused by each image's targets

    def _observer_protocol_applies(self, dataset: Any) -> bool:
        """Asked for, GFDM sigma known, and the first readable sample has at least two
        observers with fixations."""
        from mlfem.datasets import SampleError

        if not (self.config.references and self.config.observer_protocol) or self.sigma is None:
            return False
        for index in range(min(len(dataset), 3)):
            try:
                sample = dataset[index]
            except SampleError:
                continue
            return sum(1 for f in sample.fixations if len(f)) >= 2
        return False

    @property
    def references(self) -> tuple[str, ...]:
        """The reference rows every image gets."""
        if not self.config.references:
            return ()
        return REFERENCE_METHODS if self.observer_protocol else ("centre-bias",)

    def columns(self) -> list[str]:
        """The metric columns of ``results.csv``."""
        from mlfem.evaluation.observers import OBS_SUFFIX

        curves = self.network.columns() if self.network is not None else []
        return self.metrics + curves + ([m + OBS_SUFFIX for m in self.gaze_metrics] if self.observer_protocol else [])

    def close(self) -> None:
        """Release the methods' hooks."""
        self.runner.close()
        if self.network is not None:
            self.network.close()

    # ---------------------------------------------------------------- per batch
    def process(self, items: list[PreparedImage], pending: dict[str, set[str]]) -> list[dict[str, Any]]:
        """Rows for a batch of prepared images; ``pending`` maps image id to missing rows."""
        wanted = set().union(*(pending[item.image_id] for item in items))
        methods = [m for m in self.config.methods if m in wanted]
        explained = self._explain(items, methods)
        scores = self._scores(items, methods, explained, pending)
        if self.network is not None:
            seeds = [image_seed(self.config.seed, item.image_id) for item in items]
            self.network.add_scores(items, methods, explained, scores, seeds, self.config.references)
        self._save_gallery(items, explained)
        return self._rows(items, methods, explained, scores)

    def _explain(self, items: list[PreparedImage], methods: list[str]) -> list[_Explained]:
        # Model inputs of one size are stacked; other sizes (fit "none") run separately.
        explained: dict[int, _Explained] = {}
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, item in enumerate(items):
            by_shape.setdefault(tuple(item.input.shape), []).append(i)
        for members in by_shape.values():
            images = torch.stack([items[i].input for i in members]).to(self.runner.device)
            result = self.runner.run(images, methods)
            for j, i in enumerate(members):
                layers = None if result.layer_maps is None else result.layer_maps[j]
                explained[i] = _Explained({n: v[j] for n, v in result.maps.items()}, layers, result.logits[j])
        return [explained[i] for i in range(len(items))]

    def _metric_table(
        self, pred: torch.Tensor, gfdm: torch.Tensor, fix: torch.Tensor | None, ids: Sequence[str]
    ) -> list[Scores]:
        """One dict of gaze-metric values per map of ``pred`` (the image ``ids[r]``'s); the
        network metrics are None until ``self.network`` fills them."""
        from mlfem.metrics import evaluate

        values: dict[str, list[float | None]] = {m: [None] * pred.shape[0] for m in self.metrics if m not in self.gaze_metrics}
        fixed = [m for m in self.gaze_metrics if m not in self.random_metrics]
        if fixed:
            table = evaluate(pred, gt=gfdm, fix=fix, metrics=fixed, seed=self.config.seed)
            values.update({m: table.columns[m] for m in fixed})
        for m in self.random_metrics:
            values[m] = []
        for r, image_id in enumerate(ids if self.random_metrics else ()):
            table = evaluate(
                pred[r : r + 1], gt=gfdm[r : r + 1], fix=None if fix is None else fix[r : r + 1],
                metrics=self.random_metrics, seed=image_seed(self.config.seed, image_id),
                other_fix=self._others(image_id, pred.shape[-2:]),
            )
            for m in self.random_metrics:
                values[m].append(table.columns[m][0])
        return [{m: values[m][r] for m in self.metrics} for r in range(pred.shape[0])]

    def _scores(self, items, methods, explained, pending) -> list[dict[str, Scores]]:
        """Metric values per item, per method or reference."""
        from mlfem.gaze import centre_bias, fixation_counts
        from mlfem.metrics import resolve

        needs_fix = any(resolve(m).needs == "fix" for m in self.gaze_metrics)
        scores: list[dict[str, Scores]] = [{} for _ in items]
        # Maps at the image's resolution, per item, kept for the per-observer protocol.
        originals: list[dict[str, torch.Tensor]] = [{} for _ in items]
        # Images that share a size and a placement are scored together.
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((*item.size, item.placement), []).append(i)
        device = self.runner.device  # the gaze side stays on the model's device
        for (height, width, placement), members in groups.items():
            gfdm = torch.stack([items[i].gfdm.float() for i in members]).to(device)
            fix = None
            if needs_fix:
                fixations = [items[i].fixations for i in members]
                fix = fixation_counts(
                    [f.xs for f in fixations], [f.ys for f in fixations], height, width, dtype=torch.float32,
                    device=device,
                ).counts
            for method in methods:
                have = [i for i in members if method in explained[i].maps]
                if not have:
                    continue
                pred = placement.to_original(torch.stack([explained[i].maps[method] for i in have]))
                rows = [members.index(i) for i in have]
                values = self._metric_table(
                    pred, _select(gfdm, rows), None if fix is None else _select(fix, rows),
                    [items[i].image_id for i in have],
                )
                for r, i in enumerate(have):
                    scores[i][method] = values[r]
                    originals[i][method] = pred[r]
            if not self.config.references:
                continue
            need_centre = [i for i in members if "centre-bias" in pending[items[i].image_id]]
            if need_centre:
                rows = [members.index(i) for i in need_centre]
                prior = centre_bias(height, width, device=device)
                priors = prior.expand(len(rows), -1, -1)
                values = self._metric_table(
                    priors, _select(gfdm, rows), None if fix is None else _select(fix, rows),
                    [items[i].image_id for i in need_centre],
                )
                for r, i in enumerate(need_centre):
                    scores[i]["centre-bias"] = values[r]
                    originals[i]["centre-bias"] = prior
        if self.observer_protocol:
            for item, maps, item_scores in zip(items, originals, scores):
                self._observer_scores(item, maps, item_scores, "human" in pending[item.image_id])
        return scores

    def _observer_scores(
        self, item: PreparedImage, maps: dict[str, torch.Tensor], scores: dict[str, Scores], human: bool
    ) -> None:
        """Fill the ``<metric>_obs`` values of one image (methods, centre bias and, when
        ``human``, the human ceiling)."""
        from mlfem.evaluation.observers import OBS_SUFFIX, targets_for

        obs = [m + OBS_SUFFIX for m in self.gaze_metrics]
        if item.fixations.n_observers < 2:
            # One (pseudo-)observer: no per-observer protocol and no ceiling for this image.
            self.no_ceiling += 1
            for name in maps:
                scores[name].update(dict.fromkeys(obs, math.nan))
            return
        # Built once per image on the device, into the previous image's buffer when it fits.
        targets = targets_for(item.fixations, self.sigma, self.collapse,  # type: ignore[arg-type]
                              device=self.runner.device, out=self._observer_buffer)
        self._observer_buffer = targets.blurred
        if maps:
            names = list(maps)
            preds = torch.stack([maps[n].float() for n in names])
            means = self._observer_means(item.image_id, preds, targets)
            for k, name in enumerate(names):
                scores[name].update({m + OBS_SUFFIX: means[m][k] for m in self.gaze_metrics})
        if human:
            # The paper's protocol has no human value (it needs an independent group of
            # observers): those columns stay empty; the ceiling fills the _obs columns.
            scores["human"] = dict.fromkeys(self.metrics) | dict(zip(obs, self._ceiling(targets)))

    def _observer_means(
        self, image_id: str, preds: torch.Tensor, targets: Any
    ) -> dict[str, list[float]]:
        """:func:`mlfem.evaluation.observers.observer_means` of one image's maps; randomised
        metrics map by map, seeded by the image (the same draws whichever maps are pending)."""
        from mlfem.evaluation.observers import observer_means

        fixed = [m for m in self.gaze_metrics if m not in self.random_metrics]
        means = observer_means(preds, targets, fixed, self.config.seed) if fixed else {}
        seed = image_seed(self.config.seed, image_id)
        others = self._others(image_id, preds.shape[-2:])
        for m in self.random_metrics:
            means[m] = [
                observer_means(preds[k : k + 1], targets, [m], seed, other_fix=others)[m][0]
                for k in range(preds.shape[0])
            ]
        return means

    def _others(self, image_id: str, size: Sequence[int]) -> torch.Tensor | None:
        """The sAUC negatives of one image (None when ``sauc`` is not computed)."""
        return None if self.pool is None else self.pool.others(image_id, int(size[0]), int(size[1]))

    def _ceiling(self, targets: ObserverMaps) -> list[float]:
        """Leave-one-observer-out human consistency per metric (as :func:`mlfem.gaze.human_ceiling`)."""
        seed = image_seed(self.config.seed, targets.name) if targets.name else self.config.seed
        others = self._others(targets.name, (targets.height, targets.width)) if targets.name else None
        means = []
        for values in targets.ceiling_scores(self.gaze_metrics, seed=seed, other_fix=others).values():
            finite = values[~torch.isnan(values)].cpu()
            means.append(float(finite.mean()) if finite.numel() else math.nan)
        return means

    def _save_gallery(self, items: list[PreparedImage], explained: list[_Explained]) -> None:
        from mlfem.evaluation.maps import save_gallery_entry

        for item, result in zip(items, explained):
            if item.image is None:
                continue
            placement = item.placement
            originals = {name: placement.to_original(v.cpu()[None])[0] for name, v in result.maps.items()}
            layer_maps = None if result.layers is None else placement.to_original(result.layers.cpu())
            save_gallery_entry(
                self.config.out / "maps", item.position, item.image_id, item.image,
                item.gfdm, originals, layer_maps, self.runner.layer_names,
            )

    def _rows(self, items, methods, explained, scores) -> list[dict[str, Any]]:
        rows = []
        for item, result, item_scores in zip(items, explained, scores):
            common = row_identity(item, result.logits, self.class_names, self.multi_label,
                                  self.labels_comparable)
            # References first: once an image's method rows are on disk, so are these.
            kinds = [(r, "reference") for r in REFERENCE_METHODS] + [(m, "method") for m in methods]
            for method, kind in kinds:
                values = item_scores.get(method)
                if values is not None:
                    rows.append({**common, "method": method, "kind": kind, **values})
        return rows


def row_identity(item: Any, logits: Any, class_names: list[str], multi_label: bool,
                 labels_comparable: bool) -> dict[str, Any]:
    """The columns of a results row that say which image (or clip) it is and what the network
    predicted for it; the method and its scores are added by the caller."""
    predicted = predictions(logits[None], multi_label)[0]
    verdict = is_correct(logits, item.labels, multi_label) if labels_comparable else None
    names = class_names if len(class_names) == logits.numel() else []
    return {
        "image_id": item.image_id,
        "pred_labels": predicted,
        "true_labels": item.labels,
        "pred_names": [names[c] for c in predicted] if names else [],
        "true_names": item.class_names,
        "correct": verdict,
        "n_classes_present": item.n_classes_present,
        "category": item.category,
        "split": item.split,
        "height": item.size[0],
        "width": item.size[1],
    }


def label_space(model: Any, dataset: Any) -> tuple[bool, list[str], bool]:
    """``(multi_label, class_names, labels_comparable)`` of an evaluation: the model's label
    space where it declares one, the dataset's otherwise; the dataset's labels can say right or
    wrong only when they are in the model's vocabulary."""
    dataset_names = list(getattr(dataset, "class_names", []) or [])
    dataset_multi = bool(getattr(dataset, "multi_label", False))
    multi_label = model.multi_label if model.multi_label is not None else dataset_multi
    comparable = not (
        model.class_names is not None and dataset_names and model.class_names != dataset_names
    )
    return multi_label, model.class_names or dataset_names, bool(comparable)
