"""What an evaluation run is and what it runs on: :class:`EvaluationConfig`, then the dataset,
the model and the checkpoint files it names, the GFDM settings of the dataset, the leakage
check and the fingerprint that decides whether an output folder can be resumed.

Everything here happens before the first image is read; every failure is an
:class:`EvaluationError` whose message says what to change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mlfem.datasets.protocol import GFDMSettings
from mlfem.evaluation.model import EvaluatedModel

__all__ = [
    "DEFAULT_METHODS",
    "FINGERPRINT",
    "EvaluationConfig",
    "EvaluationError",
    "GFDMSettings",
    "LeakageError",
    "check_leakage",
    "check_resumable",
    "checkpoint_files",
    "dataset_from_classifier",
    "gfdm_settings",
    "jsonable",
    "load_model",
    "open_dataset",
    "resolve_device",
    "run_settings",
    "write_fingerprint",
]

DEFAULT_METHODS = ("mlfem-add", "mlfem-top", "mlfem-max", "fem", "gradcam")
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
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
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
        from mlfem.evaluation.faithfulness import check_metric_options

        try:
            check_metric_options(self.metrics, self.metric_options)
        except ValueError as error:
            raise EvaluationError(str(error)) from None
        self.methods = list(dict.fromkeys(self.methods))

    def settings(self) -> dict[str, Any]:
        """The settings recorded in ``run.json`` (JSON-ready)."""
        out = asdict(self)
        out["out"] = str(self.out)
        for key in ("overwrite",):
            out.pop(key)
        if not out["metric_options"]:
            out.pop("metric_options")  # absent as in runs made before metrics had options
        return out


def jsonable(value: Any) -> Any:
    """``value`` with dataclasses, paths and containers turned into JSON types (else ``repr``)."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return repr(value)


# --------------------------------------------------------------------------- the dataset
def dataset_from_classifier(config: EvaluationConfig) -> None:
    """Default the dataset (name, root, options, splits file) to the one the classifier
    checkpoint was trained on, when no dataset or that same dataset is named (under any of
    its names: ``mit`` is ``mit1003``, as for the leakage guard); options the caller gives
    override the recorded ones."""
    from mlfem.datasets import canonical_name

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
    if config.dataset is not None and canonical_name(config.dataset) != canonical_name(name):
        return  # another dataset than the classifier's: the caller's options alone apply
    config.dataset = str(name)
    if config.root is None and recorded.get("root"):
        config.root = str(recorded["root"])
    config.dataset_options = {**dict(recorded.get("options") or {}), **config.dataset_options}
    if config.splits is None and recorded.get("splits"):
        config.splits = str(recorded["splits"])


def open_dataset(config: EvaluationConfig) -> Any:
    """The dataset split the config names (:func:`mlfem.datasets.open_dataset`)."""
    from mlfem.datasets import open_dataset as open_named

    options = dict(config.dataset_options)
    if config.split is not None:
        options["split"] = config.split
    if config.splits is not None:
        options["splits"] = config.splits
    try:
        return open_named(config.dataset, config.root, **options)  # type: ignore[arg-type]
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise EvaluationError(f"could not open dataset {config.dataset!r}: {error}") from error


def gfdm_settings(dataset: Any) -> GFDMSettings:
    """The GFDM settings the dataset declares (:class:`mlfem.datasets.GFDMSettings`: the blur
    ``sigma``, None for maps shipped with a dataset, whose sigma nobody recorded, so no
    per-observer protocol; and ``collapse``), for the human ceiling and the per-observer
    targets."""
    declare = getattr(dataset, "gfdm_settings", None)
    if not callable(declare):
        raise EvaluationError(
            f"dataset {getattr(dataset, 'name', dataset)!r} does not declare its GFDM settings "
            "(gfdm_settings(), see mlfem.datasets.GazeDatasetProtocol)"
        )
    return declare()


# --------------------------------------------------------------------------- the model
def resolve_device(config: EvaluationConfig) -> torch.device:
    """The config's device, or CUDA when there is one."""
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvaluationError(f"device {config.device}: CUDA is not available on this machine")
    return device


def load_model(config: EvaluationConfig, device: torch.device) -> EvaluatedModel:
    """The classifier the config names: a ``--classifier`` checkpoint or a ``--model`` spec."""
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


def checkpoint_files(config: EvaluationConfig, model: EvaluatedModel) -> list[Path]:
    """Every learned file the run depends on: the model's checkpoints, then the NET's."""
    return list(model.checkpoints) + ([Path(config.net)] if config.net else [])


def run_settings(config: EvaluationConfig, model: EvaluatedModel, checkpoints: list[Path]) -> dict[str, Any]:
    """The settings ``run.json`` records and a resumed run must match: the config's, the
    digests of the checkpoint files, and the model's description and preprocessing."""
    from mlfem.evaluation.model import file_digests

    settings = config.settings()
    settings["checkpoints"] = file_digests(checkpoints)
    settings["model_description"] = model.description
    settings["preprocessing"] = model.preprocessing_info()
    return settings


# --------------------------------------------------------------------------- before the run
def check_leakage(
    config: EvaluationConfig, dataset_name: str, image_ids: list[str], checkpoints: list[Path]
) -> dict[str, Any]:
    """Run the leakage guard of :mod:`mlfem.training.leakage` over the evaluated images; the
    result is ``run.json``'s ``leakage`` entry."""
    if not checkpoints:
        return {"checked": False, "reason": "no checkpoint files (model from a library)"}
    try:
        from mlfem.training.leakage import check_leakage as guard
    except ImportError:
        return {"checked": False, "reason": "mlfem.training.leakage is not available"}
    try:
        report = guard(dataset_name, image_ids, [str(p) for p in checkpoints], mode=config.leakage)
    except ValueError as error:
        raise LeakageError(str(error)) from error
    return {"checked": True, "mode": config.leakage, "report": jsonable(report)}


#: The settings of the rows of ``results.csv``, written beside it before its first row:
#: rows of other settings are refused even when ``run.json`` is gone.
FINGERPRINT = "results.settings.json"
_FINGERPRINT_FORMAT = "mlfem-evaluation-settings/1"


def check_resumable(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to add rows to ``out/results.csv`` made with settings that change values.

    The rows' settings are read from :data:`FINGERPRINT` and from ``run.json`` (each that
    exists must agree); rows with neither are refused, since nothing says how they were made.

    Raises:
        EvaluationError: a setting differs, a record is damaged, or the rows are unexplained.
    """
    from mlfem._run import changed_settings

    results = out / "results.csv"
    # Rows of torchrun processes (mlfem.evaluation.sharding) count as well.
    shards = sorted((out / "shards").glob("results-rank*.csv"))
    if not results.exists() and not shards:
        return
    records = [path for path in (out / FINGERPRINT, out / "run.json") if path.exists()]
    if not records:
        if any(_has_rows(path) for path in [results, *shards] if path.exists()):
            raise EvaluationError(
                f"{results} holds rows, but neither {FINGERPRINT} nor run.json says which "
                "settings made them: use another output folder or --overwrite"
            )
        return
    current = jsonable(settings)
    for path in records:
        previous = _read_settings(path)
        changed = changed_settings(previous, current, ignore=_RESUMABLE_CHANGES)
        if changed:
            raise EvaluationError(
                f"{out} holds a run with other settings ({', '.join(changed)} differ, "
                f"according to {path.name}); use another output folder or --overwrite"
            )


def write_fingerprint(out: Path, settings: dict[str, Any]) -> None:
    """Record the settings of the rows beside ``results.csv`` (atomically)."""
    from mlfem.models.checkpoint import write_json_atomic

    payload = {"format": _FINGERPRINT_FORMAT, "settings": jsonable(settings)}
    write_json_atomic(out / FINGERPRINT, payload)


def _read_settings(path: Path) -> dict[str, Any]:
    """The ``settings`` of a run record (``run.json`` or :data:`FINGERPRINT`)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EvaluationError(
            f"{path} is not valid JSON ({error}): the run's record is damaged (truncated?). "
            "Delete it to resume (the other record beside results.csv is then checked), "
            "or use --overwrite or another output folder"
        ) from None
    settings = payload.get("settings") if isinstance(payload, dict) else None
    if not isinstance(settings, dict):
        raise EvaluationError(
            f"{path} records no settings: it is not an mlfem evaluation record. "
            "Use --overwrite or another output folder"
        )
    return settings


def _has_rows(results: Path) -> bool:
    """Whether ``results.csv`` has anything after its header line."""
    with open(results, "rb") as handle:
        handle.readline()
        return bool(handle.read(1))
