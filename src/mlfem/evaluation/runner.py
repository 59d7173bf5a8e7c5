"""``run_evaluation``: every image of a dataset split, every method, every metric, written to
``DIR/results.csv`` as it is computed, with ``DIR/run.json`` describing the run.

How a run is organised (and why):

* The evaluated images are cut into batches with FIXED boundaries (images ``0..B-1``,
  ``B..2B-1``, ...). A batch with anything missing is recomputed as a whole, so methods whose
  randomness depends on the batch (SmoothGrad's noise, sampled AUCs) give exactly the values
  an uninterrupted run gives; rows already in the file are not written twice.
* Per image, rows are written references first, then methods, in one synced write per batch:
  when an image's method rows are all in the file, so are its reference rows.
* DataLoader workers read and preprocess the samples; the main process runs the methods
  (one shared forward pass for the FEM family, see :mod:`mlfem.evaluation.methods`) and the
  metrics, batched per image size.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlfem.evaluation.methods import REFERENCE_METHODS, MethodRunner
from mlfem.evaluation.model import EvaluatedModel, file_digests, is_correct, predictions
from mlfem.evaluation.results import ResultsWriter, read_results

__all__ = [
    "EvaluationConfig",
    "EvaluationError",
    "EvaluationSummary",
    "LeakageError",
    "run_evaluation",
]

DEFAULT_METHODS = ("mlfem-add", "mlfem-top", "mlfem-max", "fem", "gradcam")
#: Metrics that need more than one image's fixations; not computed per batch here.
_UNSUPPORTED_METRICS = {"sauc": "needs a pool of other images' fixations (shuffled AUC)"}
# Settings that may change between a run and its resumption without changing any value.
_RESUMABLE_CHANGES = frozenset({"methods", "workers", "device", "gallery", "progress", "limit", "out"})


class EvaluationError(ValueError):
    """The evaluation cannot start as configured (the message says what to change)."""


class LeakageError(EvaluationError):
    """Evaluated images were seen in training by a checkpoint (``leakage="refuse"``)."""


@dataclass
class EvaluationConfig:
    """Everything that defines an evaluation run (see ``mlfem evaluate --help``).

    ``classifier`` is a checkpoint of ``mlfem train-classifier``; alternatively ``model`` (and
    ``weights``) name any model as ``mlfem explain`` does. With a classifier checkpoint,
    ``dataset=None`` evaluates the dataset it was trained on, with its options and splits file
    (so the ``test`` split is the one it never saw). ``limit`` keeps the first N images of
    the split. ``leakage`` is ``"refuse"`` (error when a checkpoint saw an evaluated image) or
    ``"flag"`` (record it in ``run.json`` and go on). ``references`` adds the centre-bias and
    human-ceiling rows; ``observer_protocol`` (when the images have several observers) adds
    a ``<metric>_obs`` column per metric, every row scored against each observer separately
    (the human ceiling's protocol, see :mod:`mlfem.evaluation.observers`).
    """

    dataset: str | None
    out: Path
    root: str | None = None
    split: str | None = "test"
    splits: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    classifier: str | None = None
    model: str | None = None
    weights: str | None = None
    fit: str = "whole"
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    metrics: list[str] = field(default_factory=lambda: ["pcc", "sim"])
    net: str | None = None
    layers: str = "auto"
    alpha: float = 0.5
    k: float = 2.0
    normalize: str = "end"
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_size: int = 8
    workers: int = 0
    device: str | None = None
    seed: int = 0
    references: bool = True
    observer_protocol: bool = True
    gallery: int = 12
    limit: int | None = None
    leakage: str = "refuse"
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.batch_size < 1:
            raise EvaluationError(f"batch size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise EvaluationError(f"workers must be >= 0, got {self.workers}")
        if self.gallery < 0:
            raise EvaluationError(f"gallery must be >= 0, got {self.gallery}")
        if self.limit is not None and self.limit < 1:
            raise EvaluationError(f"limit must be positive, got {self.limit}")
        if self.leakage not in ("refuse", "flag"):
            raise EvaluationError(f"leakage must be 'refuse' or 'flag', got {self.leakage!r}")
        if not self.methods:
            raise EvaluationError("no methods to evaluate")
        if not self.metrics:
            raise EvaluationError("no metrics to compute")
        from mlfem.metrics import resolve

        try:
            self.metrics = list(dict.fromkeys(resolve(m).name for m in self.metrics))
        except ValueError as error:
            raise EvaluationError(str(error)) from None
        for metric in self.metrics:
            if metric in _UNSUPPORTED_METRICS:
                raise EvaluationError(f"metric {metric!r} is not available in evaluate: {_UNSUPPORTED_METRICS[metric]}")
        self.methods = list(dict.fromkeys(self.methods))

    def settings(self) -> dict[str, Any]:
        """The settings recorded in ``run.json`` (JSON-ready)."""
        out = asdict(self)
        out["out"] = str(self.out)
        for key in ("overwrite",):
            out.pop(key)
        return out


@dataclass
class EvaluationSummary:
    """What a finished (or interrupted) run did."""

    out: Path
    results: Path
    n_images: int  # images in the evaluated split (after limit)
    n_done_before: int  # images complete when the run started (resumed work)
    n_evaluated: int  # images computed by this run
    n_skipped: int
    rows: int
    elapsed: float
    status: str


# --------------------------------------------------------------------------- data loading
class _Skip:
    """Stands in for a sample that could not be read."""

    def __init__(self, index: int, image_id: str, reason: str) -> None:
        self.index, self.image_id, self.reason = index, image_id, reason


class _Prepared(torch.utils.data.Dataset):
    """Reads a sample and preprocesses it for the model, in a DataLoader worker."""

    def __init__(self, dataset: Any, indices: Sequence[int], preprocess: Callable, gallery: int) -> None:
        self.dataset = dataset
        self.indices = list(indices)
        self.preprocess = preprocess
        self.gallery = gallery

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, Any] | _Skip:
        from mlfem.datasets import SampleError

        index = self.indices[position]
        try:
            sample = self.dataset[index]
        except SampleError as error:
            return _Skip(position, error.image_id, error.reason)
        if sample.gfdm is None:
            return _Skip(position, sample.image_id, "no GFDM (dataset opened with gfdm='none')")
        tensor, placement = self.preprocess(sample.image)
        return {
            "position": position,
            "image_id": sample.image_id,
            "input": tensor,
            "placement": placement,
            "gfdm": sample.gfdm,
            "fixations": [f for f in sample.fixations if len(f)],
            "labels": list(sample.labels),
            "class_names": list(sample.class_names),
            "n_classes_present": int(sample.n_classes_present),
            "category": sample.category or "",
            "split": sample.split or "",
            "height": int(sample.image.shape[1]),
            "width": int(sample.image.shape[2]),
            "image": sample.image if position < self.gallery else None,
        }


def _as_list(batch: list) -> list:
    """Collate function of the evaluation loader: samples differ in size, keep a list."""
    return batch


def _ignore_sigint(worker_id: int) -> None:
    """Workers leave Ctrl-C to the main process, which stops between batches."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


# --------------------------------------------------------------------------- helpers
def _dataset_gfdm_settings(dataset: Any) -> tuple[float | None, bool]:
    """(sigma, collapse) the dataset builds its GFDMs with, for the human ceiling."""
    config = getattr(dataset, "config", None)
    if config is not None and hasattr(config, "effective_sigma"):
        return float(config.effective_sigma), bool(getattr(config, "collapse", False))
    if getattr(dataset, "gfdm_source", "fixations") != "fixations":
        return None, False  # shipped maps: the sigma that made them is unknown
    sigma = getattr(dataset, "sigma", None)
    return (float(sigma) if sigma else None), bool(getattr(dataset, "collapse", False))


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in ("mlfem", "torch", "torchvision", "numpy", "scipy", "captum", "zennit", "matplotlib"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _fingerprint(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in _RESUMABLE_CHANGES}


def _open_dataset(config: EvaluationConfig) -> Any:
    from mlfem.datasets import open_dataset

    options = dict(config.dataset_options)
    if config.split is not None:
        options["split"] = config.split
    if config.splits is not None:
        options["splits"] = config.splits
    try:
        return open_dataset(config.dataset, config.root, **options)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise EvaluationError(f"could not open dataset {config.dataset!r}: {error}") from error


def _dataset_from_classifier(config: EvaluationConfig) -> None:
    """Default the dataset (name, root, options, splits file) to the one the classifier
    checkpoint was trained on, when no dataset or that same dataset is named; options the
    caller gives override the recorded ones."""
    if config.classifier is None:
        if config.dataset is None:
            raise EvaluationError("name the dataset (--dataset), or pass a --classifier checkpoint that records one")
        return
    try:
        from mlfem.training import read_metadata

        recorded = read_metadata(config.classifier).get("dataset") or {}
    except ImportError as error:
        raise EvaluationError(f"--classifier needs mlfem.training ({error})") from error
    except (ValueError, OSError) as error:
        raise EvaluationError(f"cannot read {config.classifier}: {error}") from error
    name = recorded.get("name")
    if not name:
        if config.dataset is None:
            raise EvaluationError(f"{config.classifier} records no dataset: pass --dataset")
        return
    if config.dataset is not None and _canonical_name(config.dataset) != _canonical_name(name):
        return  # another dataset than the classifier's: the caller's options alone apply
    config.dataset = str(name)
    if config.root is None and recorded.get("root"):
        config.root = str(recorded["root"])
    config.dataset_options = {**dict(recorded.get("options") or {}), **config.dataset_options}
    if config.splits is None and recorded.get("splits"):
        config.splits = str(recorded["splits"])


def _canonical_name(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def _load_model(config: EvaluationConfig, device: torch.device) -> EvaluatedModel:
    if (config.classifier is None) == (config.model is None):
        raise EvaluationError("name the classifier: --classifier CKPT (from train-classifier) or --model SPEC")
    if config.model is not None:
        from mlfem.evaluation.model import from_model_spec
        from mlfem.models import ModelLoadError

        try:
            return from_model_spec(config.model, config.weights, device, config.fit)
        except ModelLoadError as error:
            raise EvaluationError(str(error)) from error
    from mlfem.evaluation.model import from_classifier_checkpoint

    try:
        return from_classifier_checkpoint(config.classifier, device)  # type: ignore[arg-type]
    except ImportError as error:
        raise EvaluationError(f"--classifier needs mlfem.training ({error})") from error
    except (ValueError, FileNotFoundError) as error:  # CheckpointError is a ValueError
        raise EvaluationError(str(error)) from error


def _check_leakage(
    config: EvaluationConfig, dataset_name: str, image_ids: list[str], checkpoints: list[Path]
) -> dict[str, Any]:
    """Run the leakage guard of :mod:`mlfem.training.leakage` over the evaluated images."""
    if not checkpoints:
        return {"checked": False, "reason": "no checkpoint files (model from a library)"}
    try:
        from mlfem.training.leakage import check_leakage
    except ImportError:
        return {"checked": False, "reason": "mlfem.training.leakage is not available"}
    try:
        report = check_leakage(dataset_name, image_ids, [str(p) for p in checkpoints], mode=config.leakage)
    except ValueError as error:
        raise LeakageError(str(error)) from error
    return {"checked": True, "mode": config.leakage, "report": _jsonable(report)}


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return repr(value)


# --------------------------------------------------------------------------- the run
class _Evaluation:
    """One run's state: the model, the methods, the output files."""

    def __init__(self, config: EvaluationConfig, model: EvaluatedModel, dataset: Any) -> None:
        self.config = config
        self.model = model
        self.dataset = dataset
        self.sigma, self.collapse = _dataset_gfdm_settings(dataset)
        dataset_multi = bool(getattr(dataset, "multi_label", False))
        self.multi_label = model.multi_label if model.multi_label is not None else dataset_multi
        self.class_names = model.class_names or list(getattr(dataset, "class_names", []) or [])
        self.labels_comparable = True
        dataset_names = list(getattr(dataset, "class_names", []) or [])
        if model.class_names is not None and dataset_names and model.class_names != dataset_names:
            self.labels_comparable = False
        try:
            self.runner = MethodRunner(
                model.model, config.methods, layers=config.layers, alpha=config.alpha, k=config.k,
                normalize=config.normalize, net=config.net, method_options=config.method_options,
            )
        except (ValueError, TypeError) as error:
            raise EvaluationError(str(error)) from error
        self.gradient_free = not self.runner.gradient_methods()
        self.skipped: list[dict[str, str]] = []
        self.no_ceiling = 0
        self.observer_protocol = _observer_protocol_applies(config, dataset, self.sigma)

    # ---------------------------------------------------------------- per batch
    def process(self, items: list[dict[str, Any]], pending: dict[str, set[str]]) -> list[dict[str, Any]]:
        """Rows for a batch of prepared samples; ``pending`` maps image id to missing methods."""
        wanted = set().union(*(pending[item["image_id"]] for item in items))
        methods = [m for m in self.config.methods if m in wanted]
        # Model inputs of one size are stacked; other sizes (fit "none") run separately.
        outputs: dict[int, tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor]] = {}
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, item in enumerate(items):
            by_shape.setdefault(tuple(item["input"].shape), []).append(i)
        device = self.runner.device
        for members in by_shape.values():
            images = torch.stack([items[i]["input"] for i in members]).to(device)
            result = self.runner.run(images, methods)
            for j, i in enumerate(members):
                maps = {name: value[j] for name, value in result.maps.items()}
                layers = None if result.layer_maps is None else result.layer_maps[j]
                outputs[i] = (maps, layers, result.logits[j])
        scores = self._scores(items, methods, outputs, pending)
        self._save_gallery(items, outputs)
        return self._rows(items, methods, outputs, scores)

    def _metric_table(self, pred: torch.Tensor, gfdm: torch.Tensor, fix: torch.Tensor | None) -> dict[str, list[float]]:
        from mlfem.metrics import evaluate

        table = evaluate(pred, gt=gfdm, fix=fix, metrics=self.config.metrics, seed=self.config.seed)
        return {name: table.columns[name] for name in table.metrics}

    def _scores(self, items, methods, outputs, pending) -> dict[tuple[int, str], dict[str, float | None]]:
        """Metric values per (item position in batch, method or reference)."""
        from mlfem.gaze import centre_bias, fixation_counts
        from mlfem.metrics import resolve

        metrics = self.config.metrics
        needs_fix = any(resolve(m).needs == "fix" for m in metrics)
        scores: dict[tuple[int, str], dict[str, float | None]] = {}
        # Maps at the image's resolution, per item, kept for the per-observer protocol.
        originals: dict[int, dict[str, torch.Tensor]] = {i: {} for i in range(len(items))}
        # Images that share a size and a placement are scored together.
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item["height"], item["width"], item["placement"]), []).append(i)
        for (height, width, placement), members in groups.items():
            gfdm = torch.stack([items[i]["gfdm"].float() for i in members])
            fix = None
            if needs_fix:
                pooled = [torch.cat(items[i]["fixations"]) if items[i]["fixations"] else torch.zeros((0, 2)) for i in members]
                fix = fixation_counts(
                    [p[:, 0].numpy() for p in pooled], [p[:, 1].numpy() for p in pooled], height, width,
                    dtype=torch.float32,
                ).counts
            for method in methods:
                have = [i for i in members if method in outputs[i][0]]
                if not have:
                    continue
                pred = placement.to_original(torch.stack([outputs[i][0][method].cpu() for i in have]))
                rows = [members.index(i) for i in have]
                values = self._metric_table(pred, gfdm[rows], None if fix is None else fix[rows])
                for r, i in enumerate(have):
                    scores[(i, method)] = {m: values[m][r] for m in metrics}
                    originals[i][method] = pred[r]
            if not self.config.references:
                continue
            need_centre = [i for i in members if "centre-bias" in pending[items[i]["image_id"]]]
            if need_centre:
                rows = [members.index(i) for i in need_centre]
                prior = centre_bias(height, width)
                values = self._metric_table(prior.expand(len(rows), -1, -1), gfdm[rows], None if fix is None else fix[rows])
                for r, i in enumerate(need_centre):
                    scores[(i, "centre-bias")] = {m: values[m][r] for m in metrics}
                    originals[i]["centre-bias"] = prior
        if self.observer_protocol:
            for i, item in enumerate(items):
                self._observer_scores(item, originals[i], scores, i, pending)
        return scores

    def _observer_scores(self, item, maps: dict[str, torch.Tensor], scores, i: int, pending) -> None:
        """Fill the ``<metric>_obs`` values of one image (methods, centre bias, human ceiling)."""
        from mlfem.evaluation.observers import OBS_SUFFIX, observer_means, observer_targets

        metrics = self.config.metrics
        if len(item["fixations"]) < 2:
            # One (pseudo-)observer: no per-observer protocol and no ceiling for this image.
            self.no_ceiling += 1
            for name in maps:
                scores[(i, name)].update({m + OBS_SUFFIX: math.nan for m in metrics})
            return
        if maps:
            targets = observer_targets(item["fixations"], item["height"], item["width"], self.sigma, self.collapse)  # type: ignore[arg-type]
            names = list(maps)
            means = observer_means(torch.stack([maps[n].float() for n in names]), targets, metrics, self.config.seed)
            for k, name in enumerate(names):
                scores[(i, name)].update({m + OBS_SUFFIX: means[m][k] for m in metrics})
        if "human" in pending[item["image_id"]]:
            # The paper's protocol has no human value (it needs an independent group of
            # observers): those columns stay empty; the ceiling fills the _obs columns.
            scores[(i, "human")] = {m: None for m in metrics} | {
                m + OBS_SUFFIX: value for m, value in self._ceiling(item).items()
            }

    def _ceiling(self, item: dict[str, Any]) -> dict[str, float]:
        """Leave-one-observer-out human consistency (:func:`mlfem.gaze.human_ceiling`)."""
        from mlfem.gaze import Fixations, human_ceiling

        fixations = Fixations.from_observers(
            [(f[:, 0].numpy(), f[:, 1].numpy()) for f in item["fixations"]],
            item["height"], item["width"], name=item["image_id"],
        )
        return {
            metric: float(human_ceiling(
                fixations, self.sigma, metric, collapse=self.collapse, seed=self.config.seed,  # type: ignore[arg-type]
            ).mean)
            for metric in self.config.metrics
        }

    def _save_gallery(self, items, outputs) -> None:
        from mlfem.evaluation.maps import save_gallery_entry

        for i, item in enumerate(items):
            if item["image"] is None:
                continue
            maps, layers, _ = outputs[i]
            placement = item["placement"]
            originals = {name: placement.to_original(value.cpu()[None])[0] for name, value in maps.items()}
            layer_maps = None if layers is None else placement.to_original(layers.cpu())
            save_gallery_entry(
                self.config.out / "maps", item["position"], item["image_id"], item["image"],
                item["gfdm"], originals, layer_maps, self.runner.layer_names,
            )

    def _rows(self, items, methods, outputs, scores) -> list[dict[str, Any]]:
        rows = []
        for i, item in enumerate(items):
            logits = outputs[i][2]
            predicted = predictions(logits[None], self.multi_label)[0]
            verdict = is_correct(logits, item["labels"], self.multi_label) if self.labels_comparable else None
            names = self.class_names if len(self.class_names) == logits.numel() else []
            common = {
                "image_id": item["image_id"],
                "pred_labels": predicted,
                "true_labels": item["labels"],
                "pred_names": [names[c] for c in predicted] if names else [],
                "true_names": item["class_names"],
                "correct": verdict,
                "n_classes_present": item["n_classes_present"],
                "category": item["category"],
                "split": item["split"],
                "height": item["height"],
                "width": item["width"],
            }
            # References first: once an image's method rows are on disk, so are these.
            for method, kind in [(r, "reference") for r in REFERENCE_METHODS] + [(m, "method") for m in methods]:
                values = scores.get((i, method))
                if values is not None:
                    rows.append({**common, "method": method, "kind": kind, **values})
        return rows


def _observer_protocol_applies(config: EvaluationConfig, dataset: Any, sigma: float | None) -> bool:
    """Whether this run scores per observer: asked for, GFDM sigma known, and the first
    readable sample has at least two observers with fixations."""
    from mlfem.datasets import SampleError

    if not (config.references and config.observer_protocol) or sigma is None:
        return False
    for index in range(min(len(dataset), 3)):
        try:
            sample = dataset[index]
        except SampleError:
            continue
        return sum(1 for f in sample.fixations if len(f)) >= 2
    return False


def _batches(n: int, size: int) -> list[list[int]]:
    return [list(range(start, min(n, start + size))) for start in range(0, n, size)]


def _nan_counts(results_path: Path) -> tuple[int, dict[str, dict[str, int]]]:
    """Undefined metric values per method and metric column. The human row's paper-protocol
    columns are empty by construction (not applicable), so they are not counted."""
    from mlfem.evaluation.observers import OBS_SUFFIX

    table = read_results(results_path)
    counts: dict[str, dict[str, int]] = {}
    for method in table.methods:
        rows = table.method_rows(method)
        columns = [m for m in table.metrics if method != "human" or m.endswith(OBS_SUFFIX)]
        counts[method] = {m: int(np.isnan(rows[m]).sum()) for m in columns}
    return len(table), counts


def run_evaluation(
    config: EvaluationConfig,
    *,
    model: EvaluatedModel | None = None,
    dataset: Any | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EvaluationSummary:
    """Evaluate, resuming whatever ``config.out`` already holds.

    ``model``/``dataset`` may be given ready-made (the demo does); otherwise they are loaded
    from the config. ``on_batch(n)`` is called after the n-th batch of this run is on disk.
    A ``KeyboardInterrupt`` leaves every finished batch in ``results.csv`` and ``run.json``
    saying ``"status": "interrupted"``, then propagates.
    """
    from tqdm import tqdm

    out = config.out
    _dataset_from_classifier(config)
    if config.overwrite:
        for name in ("results.csv", "run.json"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "maps", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    results_path, run_path = out / "results.csv", out / "run.json"
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % (2**32))

    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvaluationError(f"device {config.device}: CUDA is not available on this machine")
    if dataset is None:
        dataset = _open_dataset(config)
    load_warnings: list[str] = []
    if model is None:
        # Loading warnings ("random weights") go to run.json as well as to the caller.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = _load_model(config, device)
        for warning in caught:
            load_warnings.append(str(warning.message))
            warnings.warn(str(warning.message), warning.category, stacklevel=2)
    dataset_name = getattr(dataset, "name", None) or str(config.dataset)
    n_images = len(dataset) if config.limit is None else min(len(dataset), config.limit)
    all_ids = list(dataset.image_ids)[:n_images]

    checkpoints = list(model.checkpoints) + ([Path(config.net)] if config.net else [])
    settings = config.settings()
    settings["checkpoints"] = file_digests(checkpoints)
    settings["model_description"] = model.description
    settings["preprocessing"] = model.preprocessing_info()
    if run_path.exists() and results_path.exists():
        previous = json.loads(run_path.read_text(encoding="utf-8")).get("settings", {})
        old, new = _fingerprint(previous), _fingerprint(_jsonable(settings))
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            raise EvaluationError(
                f"{out} holds a run with other settings ({', '.join(changed)} differ); "
                "use another output folder or --overwrite"
            )
    leakage = _check_leakage(config, dataset_name, all_ids, checkpoints)

    evaluation = _Evaluation(config, model, dataset)
    columns = list(config.metrics)
    if evaluation.observer_protocol:
        from mlfem.evaluation.observers import OBS_SUFFIX

        columns += [m + OBS_SUFFIX for m in config.metrics]
    writer = ResultsWriter(results_path, columns)
    expected_refs: tuple[str, ...] = ()
    if config.references:
        expected_refs = REFERENCE_METHODS if evaluation.observer_protocol else ("centre-bias",)
    pending: dict[str, set[str]] = {}
    for image_id in all_ids:
        missing = {m for m in config.methods if (image_id, m) not in writer.done}
        if missing:
            # References are (re)computed only along with the image's methods.
            missing |= {r for r in expected_refs if (image_id, r) not in writer.done}
        pending[image_id] = missing
    batches = [b for b in _batches(n_images, config.batch_size) if any(pending[all_ids[i]] for i in b)]
    n_done_before = sum(1 for image_id in all_ids if not pending[image_id])
    n_todo = sum(len(b) for b in batches)

    record: dict[str, Any] = {
        "format": "mlfem-evaluation/1",
        "status": "running",
        "settings": _jsonable(settings),
        "dataset": {"name": dataset_name, "images": n_images, "summary": _jsonable(_summary(dataset))},
        "device": str(device),
        "threads": torch.get_num_threads(),
        "versions": _versions(),
        "seed": config.seed,
        "command": sys.argv,
        "leakage": leakage,
        "layer_names": evaluation.runner.layer_names,
        "multi_label": evaluation.multi_label,
        "labels_comparable": evaluation.labels_comparable,
        "model_trained": model.trained,
        "warnings": load_warnings,
        "gfdm_sigma": evaluation.sigma,
        "observer_protocol": evaluation.observer_protocol,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "resumed_images": n_done_before,
        "repaired_bytes": writer.repaired_bytes,
    }
    _write_json(run_path, record)

    loader = torch.utils.data.DataLoader(
        _Prepared(dataset, range(n_images), model.preprocess, config.gallery),
        batch_sampler=batches,
        num_workers=config.workers,
        collate_fn=_as_list,
        worker_init_fn=_ignore_sigint if config.workers else None,
    )
    start = time.perf_counter()
    evaluated = 0
    status = "interrupted"
    progress = tqdm(total=n_todo, unit="img", desc="evaluate", disable=not config.progress,
                    file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    # Gradient-free runs (FEM family, occlusion, LIME) skip autograd bookkeeping entirely;
    # gradient methods enable gradients themselves and refuse inference mode.
    context = torch.inference_mode() if evaluation.gradient_free else contextlib.nullcontext()
    try:
        with context:
            for number, batch in enumerate(loader, start=1):
                items = [item for item in batch if not isinstance(item, _Skip)]
                for item in batch:
                    if isinstance(item, _Skip):
                        evaluation.skipped.append({"image_id": item.image_id, "reason": item.reason})
                if items:
                    writer.append(evaluation.process(items, pending))
                evaluated += len(items)
                progress.update(len(batch))
                if on_batch is not None:
                    on_batch(number)
        status = "complete"
    except KeyboardInterrupt:
        raise
    except Exception as error:
        status = f"failed: {type(error).__name__}: {error}"
        raise
    finally:
        progress.close()
        elapsed = time.perf_counter() - start
        rows, nan_counts = _nan_counts(results_path)
        record.update({
            "status": status,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "elapsed_s": round(elapsed, 3),
            "images_evaluated": evaluated,
            "images_per_s": round(evaluated / elapsed, 3) if elapsed > 0 else None,
            "skipped": {"count": len(evaluation.skipped), "items": evaluation.skipped[:100]},
            "no_human_ceiling": evaluation.no_ceiling,
            "rows": rows,
            "nan_counts": nan_counts,
            "nan_total": int(sum(sum(v.values()) for v in nan_counts.values())),
        })
        _write_json(run_path, record)
        evaluation.runner.close()
    return EvaluationSummary(out, results_path, n_images, n_done_before, evaluated,
                             len(evaluation.skipped), rows, elapsed, status)


def _summary(dataset: Any) -> Any:
    summary = getattr(dataset, "summary", None)
    try:
        return summary() if callable(summary) else {}
    except Exception:  # noqa: BLE001 - a summary is informative only
        return {}

