"""``run_evaluation``: every image of a dataset split, every method, every metric, written to
``DIR/results.csv`` as it is computed, with ``DIR/run.json`` describing the run.

A run has three parts, one module each; this one is the loop that ties them together:

* :mod:`mlfem.evaluation.config`: :class:`EvaluationConfig`, and what it names resolved
  (dataset, model, checkpoint files, GFDM settings), the leakage check and the check that an
  output folder holds a run with the same settings (so it can be resumed);
* :mod:`mlfem.evaluation.prepared`: each image read into a ``PreparedImage`` in a DataLoader
  worker;
* :mod:`mlfem.evaluation.scoring`: the methods (one shared forward pass for the FEM family, see
  :mod:`mlfem.evaluation.methods`), the metrics and the reference rows, batched per image size;
* :mod:`mlfem.evaluation.record`: ``run.json``.

How a run is organised (and why):

* The evaluated images are cut into batches with FIXED boundaries (images ``0..B-1``,
  ``B..2B-1``, ...). A batch with anything missing is recomputed as a whole, so methods whose
  randomness depends on the batch (SmoothGrad's noise, sampled AUCs) give exactly the values
  an uninterrupted run gives; rows already in the file are not written twice.
* Per image, rows are written references first, then methods, in one synced write per batch:
  when an image's method rows are all in the file, so are its reference rows.
* One run at a time per folder (:class:`mlfem._run.FolderLock`), and the settings of the
  rows are kept beside them (``results.settings.json``): a run never adds rows of other
  settings to a file, even when ``run.json`` is gone.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlfem.distributed import device_for
from mlfem.evaluation.config import (
    FINGERPRINT,
    EvaluationConfig,
    EvaluationError,
    LeakageError,
    check_leakage,
    check_resumable,
    checkpoint_files,
    dataset_from_classifier,
    load_model,
    open_dataset,
    resolve_device,
    run_settings,
    write_fingerprint,
)
from mlfem.evaluation.model import EvaluatedModel
from mlfem.evaluation.record import RunRecord
from mlfem.evaluation.results import ResultsWriter
from mlfem.evaluation.prepared import PreparedImages, Skip, as_list
from mlfem.evaluation.scoring import Scorer
from mlfem.evaluation.sharding import EvaluationShards
from mlfem.evaluation.video import PreparedClips, VideoScorer, is_video_dataset

__all__ = [
    "EvaluationConfig",
    "EvaluationError",
    "EvaluationSummary",
    "LeakageError",
    "run_evaluation",
]


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
    skipped: list[dict[str, str]] = field(default_factory=list)  # image_id, reason of each


def run_evaluation(
    config: EvaluationConfig,
    *,
    model: EvaluatedModel | None = None,
    dataset: Any | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EvaluationSummary:
    """Evaluate, resuming whatever ``config.out`` already holds.

    ``model``/``dataset`` may be given ready-made (the demo does); otherwise they are loaded
    from the config. A dataset given ready-made implements the dataset protocol
    (:class:`mlfem.datasets.GazeDatasetProtocol`; its GFDM settings above all). ``on_batch(n)`` is called after the n-th batch of this run is on disk.
    A ``KeyboardInterrupt`` leaves every finished batch in ``results.csv`` and ``run.json``
    saying ``"status": "interrupted"``, then propagates. The run holds the folder's lock
    throughout: a second run on the same folder meanwhile raises :class:`EvaluationError`.
    Under ``torchrun`` each process evaluates its share of the batches and rank 0 merges the
    rows into the single-process file (:mod:`mlfem.evaluation.sharding`).
    """
    from mlfem.distributed import session

    dataset_from_classifier(config)
    # Under torchrun the processes share the work (mlfem.evaluation.sharding).
    with session(resolve_device(config)) as world:
        shards = EvaluationShards(config.out, world)
        with shards.claimed():
            return _evaluate(config, model, dataset, on_batch, shards)


def _evaluate(
    config: EvaluationConfig,
    model: EvaluatedModel | None,
    dataset: Any | None,
    on_batch: Callable[[int], None] | None,
    shards: EvaluationShards,
) -> EvaluationSummary:
    """:func:`run_evaluation` once the folder is claimed."""
    from tqdm import tqdm

    from mlfem._run import ignore_sigint

    # What the run is: its folder, dataset, model and settings (mlfem.evaluation.config).
    out = config.out
    if config.overwrite:
        if shards.world.main:
            _clear(out)
        shards.clear()
    shards.prepare()
    results_path, run_path = shards.results_path, shards.record_path
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % (2**32))

    device = device_for(shards.world, resolve_device(config))
    if dataset is None:
        dataset = open_dataset(config)
    load_warnings: list[str] = []
    if model is None:
        model, load_warnings = _load_model(config, device)
    dataset_name = getattr(dataset, "name", None) or str(config.dataset)
    n_images = len(dataset) if config.limit is None else min(len(dataset), config.limit)
    all_ids = list(dataset.image_ids)[:n_images]

    checkpoints = checkpoint_files(config, model)
    settings = run_settings(config, model, checkpoints)
    check_resumable(out, settings)
    leakage = check_leakage(config, dataset_name, all_ids, checkpoints)

    # What is left to do: the rows results.csv lacks, in batches of fixed boundaries.
    # Clips (a video dataset) have their own preparation and scoring (mlfem.evaluation.video).
    video = is_video_dataset(dataset)
    scorer = VideoScorer(config, model, dataset) if video else Scorer(config, model, dataset)
    try:
        writer = ResultsWriter(results_path, scorer.columns())
    except ValueError as error:  # another run's columns, a damaged row
        scorer.close()
        raise EvaluationError(str(error)) from None
    if shards.world.main:
        write_fingerprint(out, settings)  # before the first row
    done = shards.done(writer.done, writer.columns)
    pending = _pending(all_ids, config.methods, scorer.references, done)
    batches = [b for b in _batches(n_images, config.batch_size) if any(pending[all_ids[i]] for i in b)]
    batches = shards.share(batches, all_ids, config.methods, writer.columns)
    n_done_before = sum(1 for image_id in all_ids if not pending[image_id])

    # The run: run.json says it started, each batch's rows join results.csv, run.json says
    # how it ended, however it ends.
    record = RunRecord(run_path)
    facts = {
        "leakage": leakage,
        "layer_names": scorer.runner.layer_names,
        "multi_label": scorer.multi_label,
        "labels_comparable": scorer.labels_comparable,
        "model_trained": model.trained,
        "warnings": load_warnings,
        "gfdm_sigma": scorer.sigma,
        "observer_protocol": scorer.observer_protocol,
    }
    if video:
        facts["video"] = scorer.describe()
    record.start(settings, dataset, dataset_name, n_images, device, config.seed, facts=facts,
                 resumed_images=n_done_before, repaired_bytes=writer.repaired_bytes)

    prepared = PreparedClips if video else PreparedImages
    loader = torch.utils.data.DataLoader(
        prepared(dataset, range(n_images), model.preprocess, config.gallery),
        batch_sampler=batches,
        num_workers=config.workers,
        collate_fn=as_list,
        worker_init_fn=ignore_sigint if config.workers else None,
    )
    start = time.perf_counter()
    evaluated = 0
    skipped: list[dict[str, str]] = []
    status = "interrupted"
    failure: Exception | None = None
    progress = tqdm(total=sum(len(b) for b in batches), unit="img", desc="evaluate",
                    disable=not (config.progress and shards.world.main), file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    # Gradient-free runs (FEM family, occlusion, LIME) skip autograd bookkeeping entirely;
    # gradient methods enable gradients themselves and refuse inference mode.
    context = torch.inference_mode() if scorer.gradient_free else contextlib.nullcontext()
    try:
        with context:
            for number, batch in enumerate(loader, start=1):
                items = [item for item in batch if not isinstance(item, Skip)]
                skipped += [{"image_id": i.image_id, "reason": i.reason} for i in batch if isinstance(i, Skip)]
                if items:
                    writer.append(scorer.process(items, pending))
                evaluated += len(items)
                progress.update(len(batch))
                if on_batch is not None:
                    on_batch(number)
        status = "complete"
    except KeyboardInterrupt:
        raise
    except Exception as error:
        status = f"failed: {type(error).__name__}: {error}"
        failure = error
        if not shards.sharded:
            raise
    finally:
        progress.close()
        elapsed = time.perf_counter() - start
        rows = record.finish(status, elapsed, evaluated, skipped, scorer.no_ceiling, results_path)
        scorer.close()
    summary = EvaluationSummary(
        out, results_path, n_images, n_done_before, evaluated, len(skipped), rows, elapsed, status,
        skipped,
    )
    # Sharded: every process waits for the others, rank 0 merges (sharding.py).
    summary = shards.finish(summary, record)
    if failure is not None:
        raise failure
    return summary


def _clear(out: Path) -> None:
    """``--overwrite``: remove what an earlier run left in ``out``."""
    for name in ("results.csv", "run.json", FINGERPRINT):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "maps", ignore_errors=True)


def _load_model(config: EvaluationConfig, device: torch.device) -> tuple[EvaluatedModel, list[str]]:
    """The config's model, and its loading warnings ("random weights"): they go to run.json
    as well as to the caller."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(config, device)
    for warning in caught:
        warnings.warn(str(warning.message), warning.category, stacklevel=3)
    return model, [str(warning.message) for warning in caught]


def _pending(
    image_ids: Iterable[str], methods: list[str], references: tuple[str, ...], done: Any
) -> dict[str, set[str]]:
    """The rows (methods and references) each image still lacks in ``results.csv``."""
    pending: dict[str, set[str]] = {}
    for image_id in image_ids:
        missing = {m for m in methods if (image_id, m) not in done}
        if missing:
            # References are (re)computed only along with the image's methods.
            missing |= {r for r in references if (image_id, r) not in done}
        pending[image_id] = missing
    return pending


def _batches(n: int, size: int) -> list[list[int]]:
    # Fixed boundaries, whatever is done already: see the module docstring.
    return [list(range(start, min(n, start + size))) for start in range(0, n, size)]

