"""On-disk cache of per-layer FEM maps and GFDM targets, so NET epochs never rerun the classifier.

A cache folder holds, for one split of one dataset and one (classifier, layers, k,
resolution)::

    index.json              format, the identity key, every image id in order, the shards
    maps-00000.npy          float16 (n, L, r, r): per-layer FEM maps resized to r x r
    gfdm-00000.npy          float16 (n, r, r): GFDM resized to r x r, scaled to max 1
    ...

The maps are computed in batches by one forward pass each (``MLFEM.layer_maps``) at the
classifier's input size, resized with :func:`~mlfem.fusion.net.resize_layer_maps`
(exactly what :class:`~mlfem.fusion.net.NetFusion` does at inference) and written
shard by shard; the index is rewritten (atomically) after each shard. An interrupted build
keeps its finished shards, writes the batches it already computed as a last shard, and a
later build with the same key continues after them. A folder built for another key is
refused, never silently reused. ``.npy`` files are read with ``allow_pickle=False``.
Memory: loading a cache holds N·L·r·r float16 values (10 000 images, 16 layers, 64 x 64:
1.3 GB).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from mlfem._atomic import replacing
from mlfem.fusion.net import resize_layer_maps
from mlfem.models.checkpoint import write_json_atomic
from mlfem.training._data import ImageBatch, progress_bar
from mlfem.training._state import TrainingInterrupted
from mlfem.training.augment import normalize_batch

__all__ = ["CACHE_FORMAT", "CacheMismatchError", "MapCache", "cache_key_digest"]

CACHE_FORMAT = "mlfem-map-cache/1"


class CacheMismatchError(ValueError):
    """A cache folder holds maps computed for something else than what is asked."""


def cache_key_digest(key: dict[str, Any]) -> str:
    """A short stable digest of a cache key (used to name cache folders)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class MapCache:
    """A complete cache loaded in memory: ``maps`` (N, L, r, r) and ``gfdm`` (N, r, r), float16."""

    directory: Path
    image_ids: list[str]
    maps: torch.Tensor
    gfdm: torch.Tensor
    key: dict[str, Any]

    def __len__(self) -> int:
        return len(self.image_ids)

    @classmethod
    def load(cls, directory: str | Path) -> MapCache:
        """Read a complete cache folder."""
        directory = Path(directory)
        index = _read_index(directory)
        if index is None or not index.get("complete"):
            raise CacheMismatchError(f"{directory}: not a complete map cache")
        key = index["key"]
        # An empty split still gives well-shaped (0, L, r, r) tensors.
        r = int(key["resolution"])
        maps = [np.zeros((0, len(key["layers"]), r, r), np.float16)]
        gfdm = [np.zeros((0, r, r), np.float16)]
        for shard in index["shards"]:
            maps.append(np.load(directory / shard["maps"], allow_pickle=False))
            gfdm.append(np.load(directory / shard["gfdm"], allow_pickle=False))
        return cls(
            directory,
            list(index["image_ids"]),
            torch.from_numpy(np.concatenate(maps)),
            torch.from_numpy(np.concatenate(gfdm)),
            key,
        )

    @classmethod
    def build(
        cls,
        directory: str | Path,
        key: dict[str, Any],
        explainer: Any,
        dataset: Dataset,
        *,
        image_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        resolution: int,
        batch_size: int = 16,
        shard_size: int = 256,
        num_workers: int = 0,
        progress: bool = True,
        stop: threading.Event | None = None,
    ) -> MapCache:
        """Compute (or finish computing) the cache of ``dataset`` and load it.

        Args:
            key: what identifies the cache: must hold ``layers`` and ``resolution``, and
                whatever else decides the maps (classifier fingerprint, k, dataset, split);
                a folder built for another key is refused.
            explainer: an :class:`~mlfem.MLFEM` bound to the classifier (its ``layer_maps``
                is used).
            image_size, mean, std: the classifier's input size and normalisation.
            resolution: r, the size of the cached maps.
            stop: when set, the batches computed so far are written and
                :class:`~mlfem.training.TrainingInterrupted` is raised.
        """

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ids = [str(i) for i in dataset.image_ids]  # type: ignore[attr-defined]
        index = _read_index(directory)
        if index is not None and (index.get("key") != key or index.get("image_ids") != ids):
            raise CacheMismatchError(
                f"{directory} holds maps of another classifier, layer list, resolution or image "
                "set; delete it or choose another cache folder"
            )
        if index is None:
            index = {
                "format": CACHE_FORMAT,
                "key": key,
                "image_ids": ids,
                "shards": [],
                "complete": False,
            }
            write_json_atomic(directory / "index.json", index)
        index["shards"] = _existing_shards(directory, index["shards"])
        done = sum(shard["count"] for shard in index["shards"])
        if done < len(ids):
            classes = len(getattr(dataset, "class_names", None) or [])
            collate = ImageBatch(image_size, max(1, classes), gfdm_size=resolution)
            loader = DataLoader(
                Subset(dataset, range(done, len(ids))),
                batch_size=batch_size,
                shuffle=False,
                collate_fn=collate,
                num_workers=num_workers,
            )
            device = explainer.model_device
            buffer_maps: list[np.ndarray] = []
            buffer_gfdm: list[np.ndarray] = []
            with progress_bar(len(ids), done, "FEM maps", "img", progress) as bar:
                for batch in loader:
                    images = normalize_batch(batch["image"].to(device), mean, std)
                    layer_maps = explainer.layer_maps(images).maps
                    small = resize_layer_maps(layer_maps.float(), resolution)
                    buffer_maps.append(small.cpu().numpy().astype(np.float16))
                    buffer_gfdm.append(batch["gfdm"].numpy().astype(np.float16))
                    bar.update(len(batch["image_id"]))
                    pending = sum(len(m) for m in buffer_maps)
                    interrupted = stop is not None and stop.is_set()
                    if pending >= shard_size or interrupted:
                        done = _write_shard(directory, index, buffer_maps, buffer_gfdm, done)
                        buffer_maps, buffer_gfdm = [], []
                    if interrupted:
                        raise TrainingInterrupted(directory / "index.json", 0, done)
            if buffer_maps:
                done = _write_shard(directory, index, buffer_maps, buffer_gfdm, done)
        index["complete"] = done == len(ids)
        write_json_atomic(directory / "index.json", index)
        return cls.load(directory)


def _read_index(directory: Path) -> dict[str, Any] | None:
    path = directory / "index.json"
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CacheMismatchError(f"{path}: unreadable map cache index ({error})") from error
    if not isinstance(index, dict) or index.get("format") != CACHE_FORMAT:
        raise CacheMismatchError(f"{path}: not an mlfem map cache index")
    return index


def _existing_shards(directory: Path, shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listed shards up to the first missing file (a shard is listed only once written)."""
    kept = []
    for shard in shards:
        if not ((directory / shard["maps"]).is_file() and (directory / shard["gfdm"]).is_file()):
            break
        kept.append(shard)
    return kept


def _write_shard(directory, index, buffer_maps, buffer_gfdm, done: int) -> int:
    maps = np.concatenate(buffer_maps)
    gfdm = np.concatenate(buffer_gfdm)
    number = len(index["shards"])
    names = {"maps": f"maps-{number:05d}.npy", "gfdm": f"gfdm-{number:05d}.npy"}
    for field, array in (("maps", maps), ("gfdm", gfdm)):
        with replacing(directory / names[field]) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
    index["shards"].append({**names, "start": done, "count": len(maps)})
    write_json_atomic(directory / "index.json", index)
    return done + len(maps)
