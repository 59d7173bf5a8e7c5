"""Pictures of explanation maps: heat-map overlays and per-layer grids (the paper's Fig. 1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["colorize", "overlay", "save_layer_grid"]


def colorize(saliency: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """A map in [0, 1] (H, W) as an RGB uint8 array through a matplotlib colour map."""
    from matplotlib import colormaps

    rgba = colormaps[cmap](np.clip(saliency, 0.0, 1.0))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay(image: Image.Image, saliency: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """Blend a heat map of ``saliency`` (same H, W as the image) over the image."""
    if saliency.shape != (image.height, image.width):
        raise ValueError(
            f"saliency shape {saliency.shape} does not match the image size {(image.height, image.width)}"
        )
    heat = colorize(saliency, cmap).astype(np.float32)
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    return Image.fromarray(((1 - alpha) * base + alpha * heat).round().astype(np.uint8))


def save_layer_grid(
    path: str | Path,
    layer_maps: np.ndarray,
    layer_names: Sequence[str],
    image: Image.Image | None = None,
    fused: np.ndarray | None = None,
    title: str | None = None,
    cmap: str = "jet",
) -> None:
    """Save a grid with the image, every layer's map (titled with its name), and the fusion.

    Args:
        layer_maps: (L, H, W) maps in [0, 1], shallow to deep.
        layer_names: L names.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(layer_maps) != len(layer_names):
        raise ValueError(f"{len(layer_maps)} layer maps but {len(layer_names)} layer names")
    panels: list[tuple[str, np.ndarray | Image.Image, bool]] = []
    if image is not None:
        panels.append(("image", image, False))
    panels.extend((name, layer_map, True) for name, layer_map in zip(layer_names, layer_maps))
    if fused is not None:
        panels.append(("fused", fused, True))
    columns = min(6, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.3 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (name, content, is_map) in zip(axes.flat, panels):
        if is_map:
            axis.imshow(content, cmap=cmap, vmin=0.0, vmax=1.0)
        else:
            axis.imshow(content)
        axis.set_title(name, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
