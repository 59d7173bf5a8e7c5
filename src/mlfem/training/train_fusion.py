"""Training the NET fusion (``mlfem train-fusion``): a light CNN from per-layer FEM maps to GFDMs.

Steps:

1. load the model the NET is for: a classifier checkpoint (the dataset, its options and its
   splits file then default to those the classifier was trained with, so the NET's
   train/val images are the classifier's and the ``test`` split stays unseen by both), or
   any model ``mlfem explain`` accepts (``model``/``weights``: the dataset must be named,
   and the splits file defaults to ``out/splits.json``); see
   :mod:`mlfem.training._fusion_source`;
2. compute the per-layer FEM maps of the ``train`` and ``val`` splits once, in batches, into
   on-disk caches at r x r (:mod:`mlfem.training.map_cache`, resumable);
3. train :class:`~mlfem.fusion.net.FusionNet` with Adam on the MSE between its
   output and the GFDM (resized to r x r, scaled to max 1), validating on ``val`` every
   epoch, stopping early after ``patience`` epochs without a lower validation loss;
4. keep the best epoch as ``net.safetensors`` + ``net.json`` (layers, k, resolution, the
   fingerprint of the model's weights, dataset, train/val ids, validation metrics and, for
   reference, the validation PCC of the algebraic fusions on the same maps).

Files in ``out``: ``net.safetensors``/``net.json``, ``training_state.*`` (resume),
``history.json``, ``splits.json`` (unless another splits file is used),
``cache/<split>-<digest>/`` unless ``cache`` names another folder.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mlfem.distributed import broadcast, on_main_first, session, sum_all
from mlfem.fusion.net import FusionNet, save_fusion_net
from mlfem.models.checkpoint import read_metadata, sidecar_path, write_json_atomic
from mlfem.training._data import EpochBatches
from mlfem.training._distributed import local_batches, wrap
from mlfem.training._fusion_source import FusionSource, fusion_dataset_spec, load_source
from mlfem.training._run import StepCallback, TrainingRun
from mlfem.training._state import derived_seed
from mlfem.training.fusion_compare import compare_fusions, default_fusions, validate_net
from mlfem.training.fusion_config import FusionConfig, FusionRun
from mlfem.training.map_cache import MapCache, cache_key_digest
from mlfem.training.map_shards import build_cache

__all__ = [
    "NET_FILE",
    "FusionConfig",
    "FusionRun",
    "compare_fusions",
    "default_fusions",
    "train_fusion",
]

NET_FILE = "net.safetensors"
TARGET = "GFDM resized to r x r (bilinear, antialiased when shrinking), divided by its maximum"

_RESUME_FIXED = (
    "classifier_fingerprint", "layers", "rectify", "k", "resolution", "batch_size", "lr",
    "weight_decay", "seed", "dataset",
)


def train_fusion(
    config: FusionConfig, *, progress: bool = True, stop: threading.Event | None = None,
    on_step: StepCallback | None = None,
) -> FusionRun:
    """Train a NET fusion as described by ``config`` (see the module docstring).

    Raises:
        FileExistsError: ``out`` holds a training state and ``resume`` is False.
        TrainingInterrupted: stopped by Ctrl-C or ``stop``; what was computed is saved.
    """
    bar = ("NET ", "mse", 5)
    with session(TrainingRun.device(config.device)):
        run = TrainingRun.of(config, "train-fusion", _RESUME_FIXED, progress, stop, on_step, bar)
        return _FusionTrainer(config, run).run()


class _FusionTrainer:
    def __init__(self, config: FusionConfig, run_folder: TrainingRun) -> None:
        self.config = config
        self.run_folder = run_folder
        self.out = Path(config.out)  # type: ignore[arg-type]  # FusionConfig requires it
        self.device = TrainingRun.device(config.device)

    def run(self) -> FusionRun:
        from mlfem.explainers import MLFEM

        config = self.config
        self.run_folder.claim()
        self.world = self.run_folder.world
        self.source: FusionSource = load_source(config, self.device)
        self.spec = fusion_dataset_spec(config, self.source, self.out)
        # Rank 0 first: opening a split may write the splits file the others then read.
        on_main_first(self.world, lambda: self.spec.open("train"))
        explainer = MLFEM(self.source.model, layers=config.layers, fusion="fem", k=config.k)
        self.layers = explainer.layer_names
        self.rectify = bool(getattr(explainer, "rectify", False))
        with self.run_folder.stopping():
            started = time.perf_counter()
            self.train_cache = self._cache("train", explainer)
            self.val_cache = self._cache("val", explainer)
            self.seconds = {"maps": time.perf_counter() - started}
            if len(self.train_cache) < 1:
                raise ValueError("the train split is empty")
            self.train_started = time.perf_counter()
            try:
                return self._train()
            finally:
                explainer.close()

    # ------------------------------------------------------------------ data
    def _cache(self, split: str, explainer) -> MapCache:
        config = self.config
        dataset = self.spec.open(split)
        ids = "\n".join(str(i) for i in dataset.image_ids).encode()
        key = {
            "classifier_fingerprint": self.source.fingerprint,
            "layers": self.layers,
            "rectify": self.rectify,
            "k": config.k,
            "resolution": config.resolution,
            "dataset": {
                "name": self.spec.name,
                "root": self.spec.root,
                "options": self.spec.options,
            },
            "split": split,
            # Another splits file gives another image set, hence another cache folder.
            "ids_sha256": hashlib.sha256(ids).hexdigest(),
        }
        root = Path(config.cache) if config.cache is not None else self.out / "cache"
        p = self.source.preprocessing
        self.run_folder.log(f"FEM maps of the {split} split ({len(dataset)} images) -> {root}")
        # Under torchrun each process computes a contiguous part of the maps (map_shards.py).
        return build_cache(
            self.world,
            root / f"{split}-{cache_key_digest(key)}",
            key,
            explainer,
            dataset,
            image_size=p.crop_size,
            mean=p.mean,
            std=p.std,
            resolution=config.resolution,
            batch_size=config.map_batch_size,
            shard_size=config.shard_size,
            num_workers=config.num_workers,
            progress=self.run_folder.verbose,
            stop=self.run_folder.stop,
        )

    # ------------------------------------------------------------------ loop
    def _settings(self) -> dict[str, Any]:
        data = asdict(self.config)
        data.update(
            classifier=None
            if self.config.classifier is None
            else str(Path(self.config.classifier).resolve()),
            model=self.source.record.get("spec"),
            weights=self.source.record.get("weights"),
            split_fractions=None
            if self.config.split_fractions is None
            else list(self.config.split_fractions),
            classifier_fingerprint=self.source.fingerprint,
            rectify=self.rectify,
            root=None if self.config.root is None else str(Path(self.config.root).resolve()),
            splits=None if self.config.splits is None else str(Path(self.config.splits).resolve()),
            layers=self.layers,
            dataset=self.spec.as_dict(),
            out=str(self.out.resolve()),
            cache=None if self.config.cache is None else str(Path(self.config.cache).resolve()),
        )
        return data

    def _train(self) -> FusionRun:
        config, run = self.config, self.run_folder
        torch.manual_seed(config.seed)
        self.net = FusionNet(len(self.layers)).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        progress = run.restore(
            self.net, self.optimizer, {}, self._settings(), bad_epochs=0, finished=False
        )
        # What the steps run: the NET itself, or DistributedDataParallel under torchrun.
        self.step_net = wrap(self.net, self.world, self.device)
        history, best = progress["history"], progress["best"]
        bad_epochs = progress["bad_epochs"]
        # A finished run resumed again trains nothing, and must leave net.json as it is (its
        # hash is what evaluations record).
        already_finished = bool(progress["finished"])
        epoch = progress["epoch"]
        while not progress["finished"] and epoch < config.epochs:
            self.net.train()
            state = {"history": history, "best": best, "bad_epochs": bad_epochs, "finished": False}
            train_mse = run.train_epoch(progress, epoch, self._batches, self._step, **state)
            record = {"epoch": epoch + 1, "train_mse": train_mse, **self._validate(self.net)}
            history.append(record)
            # Without validation images, the latest epoch is kept.
            if (
                best is None
                or len(self.val_cache) == 0
                or _lower(record["val_mse"], best["val_mse"])
            ):
                best, bad_epochs = record, 0
                self._save_net(record)
            else:
                bad_epochs += 1
            epoch += 1
            finished = bad_epochs >= config.patience or epoch >= config.epochs
            summary = ", ".join(f"{k} {v:.5g}" for k, v in record.items())
            run.end_epoch(
                epoch, history, summary, best=best, bad_epochs=bad_epochs, finished=finished
            )
            if bad_epochs >= config.patience:
                run.log(
                    f"early stop: no lower val MSE for {bad_epochs} epochs "
                    f"(best epoch {best['epoch']})"
                )
            progress["finished"] = finished
            if not finished:
                run.interrupt_if_stopped(epoch)
        assert best is not None
        self.seconds["training"] = time.perf_counter() - self.train_started
        comparison = broadcast(self._compare(rewrite=not already_finished) if self.world.main else None)
        return FusionRun(self.out / NET_FILE, int(best["epoch"]), best, history, comparison)

    def _batches(self, epoch: int, start: int) -> tuple[int, EpochBatches]:
        """The epoch's number of batches, and its batches (image indices) from ``start`` on."""
        generator = torch.Generator().manual_seed(derived_seed(self.config.seed, "shuffle", epoch))
        order = torch.randperm(len(self.train_cache.maps), generator=generator).tolist()
        batches = EpochBatches(order, self.config.batch_size, start, drop_single=False)
        return batches.total, local_batches(batches, self.world)

    def _step(self, indices: list[int]) -> tuple[float, int]:
        """One optimizer step on cached maps: (the batch's MSE, its number of images)."""
        x = self.train_cache.maps[indices].to(self.device).float()
        y = self.train_cache.gfdm[indices].to(self.device).float()
        if self.world.distributed:
            # This process's share of the global batch: the sum over its pixels, scaled so
            # that DistributedDataParallel's average is the gradient of the global mean.
            total, count = (int(v) for v in sum_all([len(indices), y.numel()]))
            loss_sum = F.mse_loss(self.step_net(x), y, reduction="sum")
            self.optimizer.zero_grad(set_to_none=True)
            (loss_sum * (self.world.size / count)).backward()
            self.optimizer.step()
            return sum_all([float(loss_sum.detach())])[0] / count, total
        loss = F.mse_loss(self.net(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), len(indices)

    def _validate(self, net: FusionNet) -> dict[str, float]:
        return validate_net(net, self.val_cache.maps, self.val_cache.gfdm, self.device)

    def _compare(self, rewrite: bool = True) -> dict[str, float]:
        """Val PCC of the best NET and of the algebraic fusions, recorded in net.json
        (read back instead when ``rewrite`` is False and net.json has them)."""
        from mlfem.fusion.net import load_fusion_net

        path = self.out / NET_FILE
        if len(self.val_cache) == 0 or not path.exists():
            return {}
        recorded = read_metadata(path).get("val_comparison")
        if not rewrite and recorded:
            return dict(recorded["values"])
        fusions = {"net": load_fusion_net(path), **default_fusions()}
        comparison = compare_fusions(self.val_cache.maps, self.val_cache.gfdm, fusions)
        metadata = read_metadata(path)
        metadata["val_comparison"] = {"split": "val", "metric": "mean PCC", "values": comparison}
        # Wall-clock seconds of this process (a resumed run counts only its own part).
        metadata["seconds"] = {key: round(value, 1) for key, value in self.seconds.items()}
        write_json_atomic(sidecar_path(path), metadata)
        self.run_folder.log("val mean PCC: " + ", ".join(f"{k} {v:.3f}" for k, v in comparison.items()))
        return comparison

    # ------------------------------------------------------------------ saving
    def _save_net(self, record: dict[str, float]) -> None:
        from mlfem import __version__

        if not self.world.main:
            return

        save_fusion_net(
            self.out / NET_FILE,
            self.net,
            {
                "layers": self.layers,
                "rectify": self.rectify,
                "k": self.config.k,
                "resolution": self.config.resolution,
                "architecture": {
                    "name": "mlfem-net",
                    "channels": [len(self.layers) * m for m in (1, 2, 4, 8)] + [1],
                    "pooling": "2x2 max after conv1 and conv2 (x4 in all); 1x1 weighted sum; "
                    "bilinear x4",
                },
                "target": TARGET,
                "output": "raw; min-max normalised per image when used as a fusion operator",
                self.source.kind: self.source.record,
                "dataset": self.spec.as_dict(),
                "training": self._settings(),
                "epoch": record["epoch"],
                "val_metrics": record,
                "train_ids": list(self.train_cache.image_ids),
                "val_ids": list(self.val_cache.image_ids),
                "mlfem_version": __version__,
            },
        )


def _lower(value: float, best: float) -> bool:
    if math.isnan(best):
        return not math.isnan(value)
    return value < best
