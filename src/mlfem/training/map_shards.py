"""The FEM map cache of ``train-fusion`` built in shards under ``torchrun``.

The images a cache still lacks are cut into one contiguous part per process; process ``r``
builds its part as a cache folder of its own, ``part-<start>-<stop>/`` inside the cache
(:meth:`MapCache.build`: resumable, refused if built for something else), then rank 0 lists
the parts' files, in image order, in the cache's ``index.json``, which is then complete and
exactly what one process would have listed (the same images, in the same order; the maps of
an image do not depend on the process that computed them, up to rounding). An interrupted
sharded build resumes its parts when run again with the same number of processes (with
another number, the unfinished parts are recomputed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from mlfem.distributed import World, barrier, broadcast
from mlfem.models.checkpoint import write_json_atomic
from mlfem.training._distributed import chunk
from mlfem.training.map_cache import (
    CACHE_FORMAT,
    CacheMismatchError,
    MapCache,
    _existing_shards,
    _read_index,
)

__all__ = ["build_cache"]


class _Part(Dataset):
    """Images ``part`` (a range) of ``dataset``, with the attributes a cache build reads."""

    def __init__(self, dataset: Any, part: range) -> None:
        self.dataset = dataset
        self.part = part
        self.image_ids = [str(i) for i in dataset.image_ids][part.start : part.stop]
        self.class_names = getattr(dataset, "class_names", None)

    def __len__(self) -> int:
        return len(self.part)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.part[index]]


def _progress(directory: Path, key: dict[str, Any], ids: list[str]) -> tuple[int, str | None]:
    """Rank 0: the number of images a cache folder already holds, or why it cannot be used."""
    try:
        index = _read_index(directory)
    except CacheMismatchError as error:
        return 0, str(error)
    if index is None:
        return 0, None
    if index.get("key") != key or index.get("image_ids") != ids:
        return 0, (f"{directory} holds maps of another classifier, layer list, resolution or "
                   "image set; delete it or choose another cache folder")
    return sum(s["count"] for s in _existing_shards(directory, index["shards"])), None


def _parts(start: int, n: int, world: World) -> list[range]:
    """The contiguous part of images ``start..n-1`` of each process, in rank order."""
    todo = range(start, n)
    return [todo[chunk(len(todo), World(rank, world.size))] for rank in range(world.size)]


def _part_dir(directory: Path, part: range) -> Path:
    return directory / f"part-{part.start:07d}-{part.stop:07d}"


def build_cache(world: World, directory: str | Path, key: dict[str, Any], explainer: Any,
                dataset: Any, **options: Any) -> MapCache:
    """:meth:`MapCache.build` (same arguments), its missing images shared by the processes
    of ``world`` (see the module docstring); every process returns the complete cache."""
    if not world.distributed:
        return MapCache.build(directory, key, explainer, dataset, **options)
    directory = Path(directory)
    ids = [str(i) for i in dataset.image_ids]
    start, problem = broadcast(_progress(directory, key, ids) if world.main else None)
    if problem is not None:
        raise CacheMismatchError(problem)
    if start < len(ids):
        parts = _parts(start, len(ids), world)
        mine = parts[world.rank]
        if len(mine):
            progress = options.get("progress", True) and world.main
            MapCache.build(
                _part_dir(directory, mine), {**key, "part": [mine.start, mine.stop]}, explainer,
                _Part(dataset, mine), **{**options, "progress": progress},
            )
        barrier()
        if world.main:
            _assemble(directory, key, ids, parts)
    barrier()
    return MapCache.load(directory)


def _assemble(directory: Path, key: dict[str, Any], ids: list[str], parts: list[range]) -> None:
    """Rank 0: list the finished parts' files after the shards the cache already held."""
    index = _read_index(directory) or {
        "format": CACHE_FORMAT, "key": key, "image_ids": ids, "shards": [], "complete": False,
    }
    index["shards"] = _existing_shards(directory, index["shards"])
    done = sum(s["count"] for s in index["shards"])
    for part in parts:
        if not len(part):
            continue
        folder = _part_dir(directory, part)
        for shard in (_read_index(folder) or {"shards": []})["shards"]:
            index["shards"].append({
                "maps": f"{folder.name}/{shard['maps']}", "gfdm": f"{folder.name}/{shard['gfdm']}",
                "start": done, "count": shard["count"],
            })
            done += shard["count"]
    index["complete"] = done == len(ids)
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / "index.json", index)
