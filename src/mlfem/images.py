"""Finding and reading input images."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

__all__ = ["IMAGE_SUFFIXES", "ImageReadError", "find_images", "read_image"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})


class ImageReadError(ValueError):
    """A file that should be an image could not be decoded."""


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories (recursively, sorted) into image files.

    Files named explicitly are kept whatever their suffix (a bad one is reported when
    read); inside directories only known image suffixes are taken.

    Raises:
        FileNotFoundError: a path that does not exist.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"input not found: {path}")
    return found


def read_image(path: str | Path) -> Image.Image:
    """Decode ``path`` fully into an RGB PIL image, or raise :class:`ImageReadError`."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"{path}: not a readable image ({error})") from error
