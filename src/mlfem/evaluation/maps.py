"""Explanation maps kept for the report's gallery: a bounded number of images, each in one
compressed ``.npz`` file under ``DIR/maps/``.

Each file holds, at a display size (longest side ``max_side`` pixels, the image's aspect ratio):
``image`` (H, W, 3) uint8, ``gfdm`` (H, W) float32 scaled to max 1, one ``map:<method>``
(H, W) float16 per method, and — when a FEM-family method ran — ``layers`` (L, h, w) float16
(per-layer FEM maps, smaller still) with ``layer_names``; plus ``image_id`` and ``index``
(position in the evaluated dataset). Files are written atomically and merged with an
existing file, so methods added by a later run join the same entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mlfem._atomic import replacing

__all__ = ["GalleryEntry", "gallery_size", "load_gallery", "save_gallery_entry"]

#: Longest side of the stored image and maps, and of the per-layer maps.
DISPLAY_SIDE = 192
LAYER_SIDE = 96


@dataclass
class GalleryEntry:
    """One gallery image with its maps (see the module docstring)."""

    index: int
    image_id: str
    image: np.ndarray
    gfdm: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    layers: np.ndarray | None = None
    layer_names: list[str] = field(default_factory=list)


def gallery_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(h, w) with the longest side ``max_side`` (never enlarged) and the aspect ratio kept."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    from mlfem.normalize import resize_maps

    return resize_maps(maps.float(), size)


def _path(directory: Path, index: int) -> Path:
    return directory / f"{index:06d}.npz"


def save_gallery_entry(
    directory: str | Path,
    index: int,
    image_id: str,
    image: torch.Tensor,
    gfdm: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    layers: torch.Tensor | None = None,
    layer_names: Sequence[str] = (),
) -> Path:
    """Store one gallery image: ``image`` uint8 (3, H, W), ``gfdm`` (H, W), ``maps`` (H, W) per
    method and optionally ``layers`` (L, H, W), all at the image's own resolution."""
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    height, width = int(image.shape[-2]), int(image.shape[-1])
    size = gallery_size(height, width, DISPLAY_SIDE)
    picture = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    arrays: dict[str, np.ndarray] = {}
    path = _path(directory, index)
    if path.exists():
        with np.load(path, allow_pickle=False) as old:
            arrays.update({key: old[key] for key in old.files})
    arrays["image"] = np.asarray(picture.resize((size[1], size[0]), Image.Resampling.BILINEAR))
    density = _resize(gfdm[None], size)[0].clamp_min(0)
    peak = float(density.max())
    arrays["gfdm"] = (density / peak if peak > 0 else density).numpy().astype(np.float32)
    for name, saliency in maps.items():
        arrays[f"map:{name}"] = _resize(saliency[None], size)[0].clamp(0, 1).numpy().astype(np.float16)
    if layers is not None:
        layer_size = gallery_size(height, width, LAYER_SIDE)
        arrays["layers"] = _resize(layers, layer_size).clamp(0, 1).numpy().astype(np.float16)
        arrays["layer_names"] = np.array(list(layer_names), dtype=str)
    arrays["image_id"] = np.array(image_id, dtype=str)
    arrays["index"] = np.array(index, dtype=np.int64)
    # Write to a temporary file, then rename: a killed run never leaves half an entry.
    with replacing(path, ".tmp.npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return path


def load_gallery(directory: str | Path) -> list[GalleryEntry]:
    """Every entry under ``directory``, in dataset order (empty when there is none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    entries = []
    for path in sorted(directory.glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        with np.load(path, allow_pickle=False) as data:
            maps = {key[4:]: data[key].astype(np.float32) for key in data.files if key.startswith("map:")}
            entries.append(GalleryEntry(
                index=int(data["index"]),
                image_id=str(data["image_id"]),
                image=data["image"],
                gfdm=data["gfdm"],
                maps=maps,
                layers=data["layers"].astype(np.float32) if "layers" in data.files else None,
                layer_names=[str(n) for n in data["layer_names"]] if "layer_names" in data.files else [],
            ))
    return entries
