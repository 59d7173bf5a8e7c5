"""Fine-tuning the classifier to explain (``mlfem train-classifier``).

The paper explains a ResNet-50 fine-tuned per dataset with Adam, binary cross-entropy for
multi-label data (SALICON) and categorical cross-entropy otherwise. :func:`train_classifier`
does that for any torchvision or timm classification model (its final linear layer
replaced for the dataset's classes) or a small built-in CNN, on the ``train`` split of a saved splits
file, validating on ``val`` after every epoch.

Files written to ``out``:

* ``classifier.safetensors`` + ``classifier.json``: the best epoch so far (accuracy, or
  mAP for multi-label data; ties go to the lower validation loss), loadable with
  :func:`mlfem.training.load_classifier` or ``mlfem explain --model out/classifier.safetensors``;
* ``training_state.safetensors`` + ``.json``: model, optimizer, RNG states and progress,
  written after every epoch and on interruption, read by ``resume=True``;
* ``history.json``: per-epoch training loss and validation metrics;
* ``splits.json`` unless another splits file is given.

Reproducibility: the global RNG is seeded before the head is built; each epoch's sample
order comes from a generator seeded by ``(seed, epoch)``; augmentations draw from a
generator whose state is saved. Interrupting (Ctrl-C, or a ``stop`` event) saves the
state at the next step boundary, and resuming continues from that exact step, so on CPU
the final weights equal those of an uninterrupted run.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from mlfem.distributed import all_gather, on_main_first, session, sum_all
from mlfem.models.starting import build_classifier
from mlfem.models.checkpoint import save_classifier
from mlfem.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from mlfem.training._data import DatasetSpec, EpochBatches, ImageBatch
from mlfem.training._distributed import chunk, local_batches, wrap
from mlfem.training._run import StepCallback, TrainingRun
from mlfem.training._state import derived_seed, deterministic_algorithms, ignore_sigint
from mlfem.training.augment import AUGMENTATIONS, augment_batch, augment_clips, normalize_batch
from mlfem.training.classifier_config import ClassifierConfig, ClassifierRun
from mlfem.training.metrics import classification_metrics

__all__ = ["CLASSIFIER_FILE", "ClassifierConfig", "ClassifierRun", "train_classifier"]

CLASSIFIER_FILE = "classifier.safetensors"

# Settings that must not change when a run is resumed (epochs may grow; workers, device
# and progress display are free).
_RESUME_FIXED = (
    "dataset", "root", "dataset_options", "model", "model_options", "weights", "batch_size", "lr",
    "weight_decay",
    "image_size", "augment", "seed", "splits", "split_seed", "split_fractions",
)


def train_classifier(
    config: ClassifierConfig, *, progress: bool = True, stop: threading.Event | None = None,
    on_step: StepCallback | None = None,
) -> ClassifierRun:
    """Fine-tune a classifier as described by ``config`` (see the module docstring).

    Args:
        progress: show tqdm progress bars and per-epoch summaries on stderr.
        stop: setting this event (or pressing Ctrl-C) saves the state and raises
            :class:`TrainingInterrupted` at the next step boundary.
        on_step: called as ``on_step(epoch, step, loss)`` after every optimizer step.

    Raises:
        FileExistsError: ``out`` already holds a training state and ``resume`` is False.
        TrainingInterrupted: the run was stopped; its state is saved.
    """
    with deterministic_algorithms(config.deterministic), session(TrainingRun.device(config.device)):
        run = TrainingRun.of(config, "train-classifier", _RESUME_FIXED, progress, stop, on_step)
        return _Trainer(config, run).run()


class _Trainer:
    def __init__(self, config: ClassifierConfig, run_folder: TrainingRun) -> None:
        self.config = config
        self.run_folder = run_folder
        self.out = Path(config.out)
        self.device = TrainingRun.device(config.device)
        options = dict(config.dataset_options)
        if config.dataset in ("synthetic", "synthetic-video"):
            options.setdefault("size", config.image_size)
        self.spec = DatasetSpec(
            config.dataset,
            config.root,
            options,
            str(config.splits_path),
            config.split_seed,
            config.split_fractions,
        )
        self.augmentation = AUGMENTATIONS[config.augment]
        if config.dataset == "synthetic-video" and self.augmentation is not None and self.augmentation.flip:
            # Its label is the direction the target moves in: a mirrored clip moves the other way.
            raise ValueError(
                "synthetic-video's classes are motion directions, which a horizontal flip swaps "
                "(left <-> right): train it with --augment none (or crop: no augmentation of clips)"
            )
        self.preprocessing = Preprocessing(
            crop_size=config.image_size,
            resize_size=config.image_size,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            fit="whole",
            source="mlfem train-classifier",
        )

    # ------------------------------------------------------------------ set-up
    def run(self) -> ClassifierRun:
        config = self.config
        self.run_folder.claim()
        self.world = self.run_folder.world
        # Rank 0 first: opening a split may write the splits file the others then read.
        self.train_set = on_main_first(self.world, lambda: self.spec.open("train", gfdm="none"))
        self.val_set = self.spec.open("val", gfdm="none")
        self.class_names = list(self.train_set.class_names)
        self.multi_label = bool(getattr(self.train_set, "multi_label", False))
        if not self.class_names:
            raise ValueError(
                f"{config.dataset} has no class labels: a classifier cannot be trained on it"
            )
        if len(self.train_set) < 2:
            raise ValueError(
                f"the train split of {config.dataset} has {len(self.train_set)} image(s)"
            )
        if len(self.val_set) == 0:
            warnings.warn(
                "the val split is empty: the last epoch is kept as the best", stacklevel=3
            )

        torch.manual_seed(config.seed)
        model, self.architecture = build_classifier(
            config.model, len(self.class_names), config.weights, config.model_options
        )
        normalization = self.architecture.get("normalization")
        if normalization:
            # Pretrained weights expect their own normalisation (EfficientNet-Lite: 0.5/0.5).
            self.preprocessing = replace(
                self.preprocessing,
                mean=tuple(normalization["mean"]),
                std=tuple(normalization["std"]),
            )
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.generators = {
            "augment": torch.Generator().manual_seed(derived_seed(config.seed, "augment"))
        }
        self.collate = ImageBatch(config.image_size, len(self.class_names))
        progress = self.run_folder.restore(
            self.model, self.optimizer, self.generators, config.settings()
        )
        # What the steps run: the model itself, or DistributedDataParallel under torchrun.
        self.step_model = wrap(self.model, self.world, self.device)
        with self.run_folder.stopping():
            return self._train(progress)

    # ------------------------------------------------------------------ loop
    def _train(self, progress: dict[str, Any]) -> ClassifierRun:
        config, run = self.config, self.run_folder
        history: list[dict[str, Any]] = progress["history"]
        best = progress["best"]
        for epoch in range(progress["epoch"], config.epochs):
            self.model.train()
            state = {"history": history, "best": best}
            train_loss = run.train_epoch(progress, epoch, self._batches, self._step, **state)
            record = {"epoch": epoch + 1, "train_loss": train_loss, **self._validate()}
            history.append(record)
            if best is None or self._better(record, best):
                best = record
                self._save_best(record)
            run.end_epoch(epoch + 1, history, _summary(record), best=best)
            run.interrupt_if_stopped(epoch + 1)
        assert best is not None
        return ClassifierRun(self.out / CLASSIFIER_FILE, int(best["epoch"]), best, history)

    def _batches(self, epoch: int, start: int) -> tuple[int, DataLoader]:
        """The epoch's number of batches, and its loader from batch ``start`` on."""
        batches = EpochBatches(self._order(epoch), self.config.batch_size, start)
        seed = derived_seed(self.config.seed, "loader", epoch)
        return batches.total, self._loader(self.train_set, local_batches(batches, self.world), seed)

    def _order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(derived_seed(self.config.seed, "shuffle", epoch))
        return torch.randperm(len(self.train_set), generator=generator).tolist()

    def _loader(self, dataset, batch_sampler, seed: int) -> DataLoader:
        # A dedicated generator keeps the loader from drawing on the global RNG, which a
        # resumed run must find exactly as the interrupted run left it.
        workers = self.config.num_workers
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            collate_fn=self.collate,
            num_workers=workers,
            generator=torch.Generator().manual_seed(seed),
            worker_init_fn=ignore_sigint if workers else None,
        )

    def _inputs(
        self, batch: dict[str, Any], train: bool, rows: slice | None = None, total: int | None = None
    ) -> Tensor:
        images = batch["image"].to(self.device, non_blocking=True).float() / 255.0
        if train and self.augmentation is not None:
            # Clips (B, 3, T, H, W) are only flipped, all frames alike (training.augment).
            augment = augment_clips if images.ndim == 5 else augment_batch
            images = augment(images, self.augmentation, self.generators["augment"], rows, total)
        return normalize_batch(images, self.preprocessing.mean, self.preprocessing.std)

    def _loss(self, logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, targets, reduction=reduction)
        # Images without a label (possible in user folders) are ignored, not guessed.
        labels = targets.argmax(1)
        labels[targets.sum(1) == 0] = -100
        return F.cross_entropy(logits, labels, ignore_index=-100, reduction=reduction)

    def _step(self, batch: dict[str, Any]) -> tuple[float, int]:
        """One optimizer step: (the batch's mean loss, its number of images)."""
        if self.world.distributed:
            return self._shared_step(batch)
        logits = _logits(self.model(self._inputs(batch, train=True)))
        loss = self._loss(logits, batch["targets"].to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), len(batch["image_id"])

    def _shared_step(self, batch: dict[str, Any]) -> tuple[float, int]:
        """:meth:`_step` of this process's share of a global batch (see
        :mod:`mlfem.training._distributed`): the same step as one process, up to rounding."""
        targets = batch["targets"].to(self.device)
        size = len(batch["image_id"])
        terms = targets.numel() if self.multi_label else int((targets.sum(1) > 0).sum())
        total, count = (int(v) for v in sum_all([size, terms]))
        images = self._inputs(batch, train=True, rows=chunk(total, self.world), total=total)
        loss_sum = self._loss(_logits(self.step_model(images)), targets, reduction="sum")
        self.optimizer.zero_grad(set_to_none=True)
        # DistributedDataParallel averages over processes: the world size undoes that.
        (loss_sum * (self.world.size / count)).backward()
        self.optimizer.step()
        return sum_all([float(loss_sum.detach())])[0] / count, total

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        if len(self.val_set) == 0:
            return {"val_loss": math.nan}
        self.model.eval()
        order = list(range(len(self.val_set)))
        # Under torchrun each process scores its contiguous share, then all gather them.
        order = order[chunk(len(order), self.world)]
        batches = EpochBatches(order, self.config.batch_size, drop_single=False)
        loader = self._loader(self.val_set, batches, 0)
        logits = [torch.zeros(0, len(self.class_names))]
        targets = [torch.zeros(0, len(self.class_names))]
        for batch in loader:
            logits.append(_logits(self.model(self._inputs(batch, train=False))).float().cpu())
            targets.append(batch["targets"])
        shares = all_gather((torch.cat(logits), torch.cat(targets)))
        all_logits = torch.cat([s[0] for s in shares])
        all_targets = torch.cat([s[1] for s in shares])
        loss = float(self._loss(all_logits, all_targets))
        return {
            "val_loss": loss,
            **classification_metrics(all_logits, all_targets, self.multi_label),
        }

    def _better(self, record: dict[str, float], best: dict[str, float]) -> bool:
        if len(self.val_set) == 0:
            return True
        key = "mAP" if self.multi_label else "accuracy"

        def score(r: dict[str, float]) -> tuple[float, float]:
            metric, loss = r.get(key, math.nan), r.get("val_loss", math.nan)
            return (
                -math.inf if math.isnan(metric) else metric,
                -math.inf if math.isnan(loss) else -loss,
            )

        return score(record) > score(best)

    # ------------------------------------------------------------------ saving
    def _save_best(self, record: dict[str, float]) -> None:
        from mlfem import __version__

        if not self.world.main:
            return

        save_classifier(
            self.out / CLASSIFIER_FILE,
            self.model,
            self.architecture,
            self.class_names,
            self.multi_label,
            self.preprocessing,
            extra={
                "dataset": self.spec.as_dict(),
                "training": {
                    **self.config.settings(),
                    "optimizer": "Adam",
                    "loss": "binary_cross_entropy_with_logits"
                    if self.multi_label
                    else "cross_entropy",
                    "augmentation": None
                    if self.augmentation is None
                    else self.augmentation.as_dict(),
                },
                "epoch": record["epoch"],
                "val_metrics": record,
                "train_ids": list(self.train_set.image_ids),
                "val_ids": list(self.val_set.image_ids),
                "mlfem_version": __version__,
            },
        )


def _logits(output: Any) -> Tensor:
    """The main logits of a model output (Inception/GoogLeNet return a named tuple in training)."""
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    return logits if isinstance(logits, Tensor) else output[0]


def _summary(record: dict[str, float]) -> str:
    parts = [f"epoch {record['epoch']}"]
    parts += [f"{k} {v:.4f}" for k, v in record.items() if k != "epoch"]
    return ", ".join(parts)
